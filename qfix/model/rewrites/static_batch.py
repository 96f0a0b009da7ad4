"""Fix the batch dimension of every input, 1 by default (QF301 dynamic-shape, batch only).

Spatial dimensions are left alone: choosing them is the user's call (display-only).
"""

from __future__ import annotations

from qfix.model.edit import ModelEdit


def static_batch(edit: ModelEdit, scope: tuple[str, ...], name: str, batch: int = 1) -> str:
    """`name` is the input with the dynamic batch; every input of the model gets the batch
    (a model runs all its inputs at one batch size). No layer is added, removed or re-classed,
    so the weights file stays as it is."""
    edit.set_batch(batch, scope)
    return f"fixed the batch dimension of every input to {batch}"


# qfix's recipe already converts with batch 1: the converted model is the same.
static_batch.recipe_neutral = True  # type: ignore[attr-defined]
