"""Rule registry: every module in this package holds one code (model side, source side or both).

`select()` is the one rule selection for both front ends (Ruff semantics); the source engine
and the model linter receive the classes it returns instead of looking rules up themselves.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache
from typing import Iterable, Sequence, TypeVar

from qfix.errors import CODES as ERROR_CODES

_SKIP = {"base", "lint", "docs"}

R = TypeVar("R", bound=type)


@lru_cache(maxsize=1)
def rule_modules() -> tuple:
    mods = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name in _SKIP or info.name.startswith("_"):
            continue
        mods.append(importlib.import_module(f"{__name__}.{info.name}"))
    return tuple(mods)


def _classes(side: str) -> list[type]:
    out = []
    for mod in rule_modules():
        for obj in vars(mod).values():
            if (
                isinstance(obj, type)
                and getattr(obj, "SIDE", None) == side
                and obj.__module__ == mod.__name__
                and getattr(obj, "code", None)
            ):
                out.append(obj)
    return sorted(out, key=lambda c: c.code)


def model_rules() -> list[type]:
    return _classes("model")


def source_rules() -> list[type]:
    return _classes("source")


def verify_rules() -> list[type]:
    """Rules over the converted model's placement (what the static rules could not predict)."""
    return _classes("verify")


def all_rules() -> list[type]:
    return [*model_rules(), *source_rules(), *verify_rules()]


def _clean(selectors: Iterable[str] | None) -> list[str]:
    return [s.strip() for s in selectors or () if s and s.strip()]


def _matches(rule: type, selectors: Sequence[str]) -> bool:
    """A selector matches a rule if it is `ALL`, a prefix of its code, or its name
    (case-insensitive: the CLI upper-cases what it is given)."""
    code, name = rule.code.upper(), rule.name.lower()
    return any(s.upper() == "ALL" or code.startswith(s.upper()) or s.lower() == name for s in selectors)


def select(rule_classes: Iterable[R], select: Iterable[str] | None = None,
           ignore: Iterable[str] | None = None) -> list[R]:
    """The rules kept by `--select` / `--ignore` (Ruff semantics, same on both sides).

    No selectors selects every rule; `ignore` is applied after `select`. A selector is a full
    code (`QF302`), a code prefix (`QF3`, `QF`), `ALL`, or a rule name (`lambda-layer`).
    Order of `rule_classes` is kept.
    """
    sel, ign = _clean(select), _clean(ignore)
    return [r for r in rule_classes if (not sel or _matches(r, sel)) and not (ign and _matches(r, ign))]


def unknown_selectors(selectors: list[str]) -> list[str]:
    """The selectors that can match nothing, in the order given (the CLI reports them as QF914).

    Known: `ALL`, any rule name, or a prefix of at least one rule code or QF9xx error code.
    """
    rules = all_rules()
    names = {r.name.lower() for r in rules}
    codes = {r.code.upper() for r in rules} | set(ERROR_CODES)
    return [
        s for s in _clean(selectors)
        if s.upper() != "ALL" and s.lower() not in names and not any(c.startswith(s.upper()) for c in codes)
    ]
