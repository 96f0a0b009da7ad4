"""QF201 nested-model: splice the nested model into its parent, weights preserved."""

from __future__ import annotations

from typing import Any

from qfix.model.edit import ModelEdit
from qfix.model.fixes import FixResult, guarded, locate, resolve_dialect

CODE = "QF201"


def accepts(raw: dict[str, Any]) -> bool:
    return raw.get("class_name") in ("Functional", "Sequential", "Model") and "layers" in (raw.get("config") or {})


@guarded
def apply(config: dict[str, Any], weights_bytes: bytes, target: Any, dialect: str | None = None) -> FixResult:
    scope, name = locate(config, target)
    edit = ModelEdit(config, resolve_dialect(config, dialect))
    renames = edit.splice(name, scope)
    moved = [f"{old}→{new}" for old, new in renames.items() if old != new]
    note = f"flattened nested model {name!r} ({len(renames)} layers)"
    if moved:
        note += "; renamed " + ", ".join(moved)
    return edit.config, edit.weights(weights_bytes), note
