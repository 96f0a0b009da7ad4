"""Narrow 64-bit inputs and casts: int64/uint64 → int32, float64 → float32 (QF103 wide-64bit-tensor).

Token ids and counts fit in int32; the float64 → float32 narrowing of an input rounds values
the model would have rounded at its first float32 layer anyway. Layers that compute in
float64 are left alone (changing their policy changes numbers).
"""

from __future__ import annotations

from qfix.model.edit import ModelEdit

NARROW = {"int64": "int32", "uint64": "int32", "float64": "float32"}


def narrow_64bit(edit: ModelEdit, scope: tuple[str, ...], name: str) -> str:
    """`name` is a 64-bit input or a cast to 64 bits; the casts to the same type in its model
    are narrowed with it (their outputs' references follow)."""
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
        return f"{name!r}: nothing 64-bit to narrow"
    return "; ".join(notes)
