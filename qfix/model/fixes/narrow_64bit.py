"""QF103 wide-64bit-tensor: int64/uint64 inputs and casts → int32, float64 → float32.

Token ids and counts fit in int32; the float64 → float32 narrowing of an input rounds values
the model would have rounded at its first float32 layer anyway. Layers that compute in
float64 are left alone (changing their policy changes numbers).
"""

from __future__ import annotations

from typing import Any

from qfix.model.edit import ModelEdit
from qfix.model.fixes import FixResult, guarded, locate, resolve_dialect

NARROW = {"int64": "int32", "uint64": "int32", "float64": "float32"}
CODE = "QF103"


def accepts(raw: dict[str, Any]) -> bool:
    """A 64-bit input or a cast to 64 bits (not a layer computing in float64)."""
    cfg = raw.get("config") or {}
    if raw.get("class_name") in ("InputLayer", "Cast"):
        return cfg.get("dtype") in NARROW
    if raw.get("class_name") == "TFOpLambda" and cfg.get("function") == "cast":
        return any(isinstance(e, list) and len(e) > 3 and isinstance(e[3], dict) and e[3].get("dtype") in NARROW
                   for node in raw.get("inbound_nodes") or [] for e in ([node] if node and isinstance(node[0], str) else node))
    return False


@guarded
def apply(config: dict[str, Any], weights_bytes: bytes, target: Any, dialect: str | None = None) -> FixResult:
    scope, name = locate(config, target)
    edit = ModelEdit(config, resolve_dialect(config, dialect))
    raw = edit.layer(name, scope)
    notes = []
    if raw.get("class_name") == "InputLayer":
        old = raw["config"].get("dtype")
        if old in NARROW:
            edit.set_input(name, dtype=NARROW[old], scope=scope)
            notes.append(f"input {name!r} {old} → {NARROW[old]}")
    else:
        for old, new in NARROW.items():
            for changed in edit.retype_casts(old, new, scope):
                if changed == name:
                    notes.append(f"cast {name!r} to {new} instead of {old}")
    if not notes:
        return config, weights_bytes, f"{name!r}: nothing 64-bit to narrow"
    return edit.config, weights_bytes, "; ".join(notes)
