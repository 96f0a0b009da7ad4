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
