"""QF301 dynamic-shape (batch only): fix the batch dimension, 1 by default (Edge TPU).

Spatial dimensions are left alone: choosing them is the user's call (display-only).
"""

from __future__ import annotations

from typing import Any

from qfix.model.edit import ModelEdit
from qfix.model.fixes import FixResult, guarded, resolve_dialect

CODE = "QF301"


def accepts(raw: dict[str, Any]) -> bool:
    """An input whose batch is dynamic (the spatial findings of QF301 are display-only)."""
    cfg = raw.get("config") or {}
    shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
    return raw.get("class_name") == "InputLayer" and isinstance(shape, list) and bool(shape) and shape[0] is None


@guarded
def apply(
    config: dict[str, Any], weights_bytes: bytes, target: Any = None, dialect: str | None = None, batch: int = 1
) -> FixResult:
    # Every input gets the batch: a model runs all its inputs at one batch size.
    edit = ModelEdit(config, resolve_dialect(config, dialect))
    edit.set_batch(batch)
    # No layer was added, removed or re-classed: the weights file is unchanged.
    return edit.config, weights_bytes, f"fixed the batch dimension of every input to {batch}"
