"""Splice a nested model into its parent, weights preserved (QF201 nested-model)."""

from __future__ import annotations

from qfix.model.edit import ModelEdit


def flatten_nested(edit: ModelEdit, scope: tuple[str, ...], name: str) -> str:
    """Replace the nested model `name` by its layers; clashing names get the model's prefix."""
    renames = edit.splice(name, scope)
    moved = [f"{old}→{new}" for old, new in renames.items() if old != new]
    note = f"flattened nested model {name!r} ({len(renames)} layers)"
    if moved:
        note += "; renamed " + ", ".join(moved)
    return note
