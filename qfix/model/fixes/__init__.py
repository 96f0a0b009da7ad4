"""Safe fixes of the model rules, one module per fix.

Each module has `apply(config, weights_bytes, target, dialect=None) -> (config, weights_bytes,
note)`: it returns a new config and a re-keyed `model.weights.h5` (the inputs are not
modified) and a one-line note saying what changed. `target` is the rule's Violation (its
`location.pointer` / `location.layer` name the layer), a layer name, or `(scope, name)`.
"""

from __future__ import annotations

from typing import Any

from ...types import Violation
from ..archive import detect_dialect
from ..edit import EditError, scope_of

FixResult = tuple[dict[str, Any], bytes, str]


def resolve_dialect(config: dict[str, Any], dialect: str | None) -> str:
    return dialect or detect_dialect(config, {})


def locate(config: dict[str, Any], target: Any) -> tuple[tuple[str, ...], str]:
    """(scope, layer name) for a Violation, a top-level layer name, or a (scope, name) pair."""
    if isinstance(target, Violation):
        if target.location.pointer:
            return scope_of(config, target.location.pointer)
        if target.location.layer:
            return (), target.location.layer
        raise EditError(f"{target.code} finding names no layer")
    if isinstance(target, str):
        return (), target
    if isinstance(target, tuple) and len(target) == 2:
        return tuple(target[0]), str(target[1])
    raise EditError(f"cannot locate a layer from {target!r}")


__all__ = ["FixResult", "EditError", "locate", "resolve_dialect"]
