"""Fixes of the model rules, one module per fix.

Each module has `apply(config, weights_bytes, target, dialect=None) -> (config, weights_bytes,
note)`: it returns a new config and a re-keyed `model.weights.h5` (the inputs are not
modified) and a one-line note saying what changed. `target` is the rule's Violation (its
`location.pointer` / `location.layer` name the layer), a layer name, or `(scope, name)`.
Each also names the rule it fixes (`CODE`) and says which layers it handles (`accepts(raw)`),
so `find_fix(config, violation)` can pick the module for a finding (QF302 has several).
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable
from types import ModuleType
from typing import Any

from qfix.types import Applicability, QfixError, Violation
from qfix.model.archive import detect_dialect
from qfix.model.edit import EditError, ModelEdit, make_layer, policy_name, scope_of
from qfix.model.weights import layer_name

FixResult = tuple[dict[str, Any], bytes, str]


def guarded(apply: Callable[..., FixResult]) -> Callable[..., FixResult]:
    """A fix meets configs no fixture has: an unexpected structure is an EditError (the
    finding stays, reported as not fixed), never a traceback."""

    @functools.wraps(apply)
    def run(*args: Any, **kwargs: Any) -> FixResult:
        try:
            return apply(*args, **kwargs)
        except EditError:
            raise
        except (KeyError, IndexError, TypeError, AttributeError, StopIteration, ValueError, QfixError) as exc:
            raise EditError(f"{apply.__module__.rsplit('.', 1)[-1]}: unexpected config structure "
                            f"({type(exc).__name__}: {exc})") from exc

    return run


def activation_name(raw: dict[str, Any]) -> str | None:
    """The `activation` a layer entry applies (a name, or a serialized function's name)."""
    act = (raw.get("config") or {}).get("activation")
    if isinstance(act, dict):
        act = act.get("config") if isinstance(act.get("config"), str) else act.get("class_name")
    return act if isinstance(act, str) else None


def open_edit(config: dict[str, Any], target: Any, dialect: str | None):
    """The edit, the finding's scope and layer name, and the graph of that scope: what a fix
    that reasons about the graph around its layer starts from."""
    from qfix.model.graph import build_graph

    dialect = resolve_dialect(config, dialect)
    scope, name = locate(config, target)
    edit = ModelEdit(config, dialect)
    graph = build_graph(edit.model(scope) if scope else edit.config, dialect)
    return edit, scope, name, graph


class Detached:
    """A layer whose activation is being replaced by built-in layers computed from `x`.

    A standalone Activation layer is dropped and its input is x; any other layer keeps its
    weights, loses the activation, and its output is x. `finish(out)` makes the new layer the
    activation's output (keeping the layer name, or the model output name, readers use)."""

    def __init__(self, config: dict[str, Any], target: Any, dialect: str | None, names: set[str]):
        self.dialect = resolve_dialect(config, dialect)
        self.scope, self.name = locate(config, target)
        self.edit = ModelEdit(config, self.dialect)
        raw = self.edit.layer(self.name, self.scope)
        if activation_name(raw) not in names:
            raise EditError(f"{self.name!r} does not apply {'/'.join(sorted(names))}")
        if len(raw.get("inbound_nodes") or []) != 1:
            raise EditError(f"{self.name!r} is not called exactly once in a functional model")
        self.dtype = policy_name(raw["config"].get("dtype")) or "float32"
        self.standalone = raw.get("class_name") == "Activation"
        if self.standalone:
            self.x = self.edit.inputs_of(self.name, self.scope)[0]
        else:
            raw["config"]["activation"] = "linear"
            self.x = (self.name, 0, 0)

    def add(self, cls: str, cfg: dict[str, Any], suffix: str, inputs: list) -> tuple[str, int, int]:
        layer = make_layer(cls, cfg, self.dialect, f"{self.name}_{suffix}", dtype=self.dtype)
        return (self.edit.add(layer, inputs, self.scope), 0, 0)

    def finish(self, out: tuple[str, int, int]) -> str:
        edit, name, scope = self.edit, self.name, self.scope
        edit.rewire((name, 0, 0), out, scope)
        if self.standalone:  # nobody reads the Activation now; its name goes to the result
            edit.remove(name, scope)
            edit.rename(out[0], name, scope)
            return name
        return edit.take_output_name(out[0], name, scope)


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


def modules() -> list[ModuleType]:
    """Every fix module of this package (a new fix is a new module: nothing to register)."""
    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
    return [importlib.import_module(f"{__name__}.{n}") for n in names]


def find_fix(config: dict[str, Any], violation: Violation) -> ModuleType | None:
    """The fix module for a finding (its `apply`), or None when none handles it here. Safe and
    unsafe findings qualify (the caller decides whether unsafe fixes run); display-only ones
    (QF301's spatial sizes) never do."""
    if violation.fix is None or violation.fix.applicability is Applicability.DISPLAY_ONLY:
        return None
    try:
        scope, name = locate(config, violation)
        model = config
        for part in scope:
            model = next(r for r in model["config"]["layers"] if layer_name(r) == part)
        raw = next(r for r in model["config"]["layers"] if layer_name(r) == name)
    except (EditError, StopIteration, KeyError, TypeError):
        return None
    for module in modules():
        if getattr(module, "CODE", None) != violation.code or not module.accepts(raw):
            continue
        defer = getattr(module, "defers", None)  # another finding's fix covers this one
        if defer is not None and defer(model, name, resolve_dialect(config, None)):
            return None
        return module
    return None


__all__ = ["FixResult", "EditError", "find_fix", "guarded", "locate", "modules", "resolve_dialect"]
