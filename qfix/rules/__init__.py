"""Rule registry: every module in this package holds one code (model side, source side or both)."""

from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache

_SKIP = {"base", "lint"}


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


def unknown_selectors(selectors: list[str] | tuple[str, ...] | None) -> list[str]:
    """The `--select`/`--ignore` entries that name nothing, in the order given. A selector is
    known if it is `ALL`, a rule name (`float-io`), or a prefix of at least one rule code or
    QF9xx error code (`QF3`, `QF302`, `QF9`); case does not matter."""
    from qfix.errors import CODES

    classes = (*model_rules(), *source_rules(), *verify_rules())
    codes = {c.code for c in classes} | set(CODES)
    names = {c.name.lower() for c in classes}
    unknown = []
    for sel in selectors or ():
        s = sel.strip()
        if s.upper() == "ALL" or s.lower() in names or any(code.startswith(s.upper()) for code in codes):
            continue
        unknown.append(sel)
    return unknown
