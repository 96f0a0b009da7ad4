"""Two ways one profile derives from another, so a family of targets shares one op table.

- `extends = "<built-in id>"` at the top of a profile: the profile is the built-in's TOML with
  this file's tables laid over it. Tables merge key by key, except that an `[op.NAME]` table
  replaces the base's whole (a fact is never half inherited: its source goes with it) and
  `target.aliases` is never inherited (an alias names one target).
- `T:N` on the command line (`--target ethos-u55:128`): the accelerator configuration of T
  with N MACs per cycle, from the profile's `toolchain.accelerator_configs`
  (Vela's `--accelerator-config` names, e.g. `ethos-u55-128`). The conversion recipe and the
  op table are the family's; the configuration changes what the compiler schedules, so its
  estimates.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from qfix.types import QfixError

MAX_DEPTH = 4  # extends chains; a longer one is a loop


def lay_over(base: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` over `base` (both parsed TOML): tables merge recursively, other values replace;
    `[op.NAME]` tables replace whole; the base's `target.aliases` are dropped."""
    out = _merge(base, {k: v for k, v in doc.items() if k != "extends"}, ())
    target = out.get("target")
    if isinstance(target, dict):
        own = doc.get("target", {}) if isinstance(doc.get("target"), dict) else {}
        target["aliases"] = own.get("aliases", [])
    return out


def _merge(base: dict[str, Any], top: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        whole = path == ("op",)  # an op's facts come from one file
        if isinstance(value, dict) and isinstance(out.get(key), dict) and not whole:
            out[key] = _merge(out[key], value, (*path, key))
        else:
            out[key] = value
    return out


def resolve(doc: dict[str, Any], where: str, builtin_doc: Callable[[str], dict[str, Any] | None],
            depth: int = 0) -> dict[str, Any]:
    """The profile `doc` with its `extends` chain applied. Raises QF912 (bad or looping
    `extends`, naming the file)."""
    name = doc.get("extends")
    if name is None:
        return doc
    if not isinstance(name, str):
        raise QfixError("QF912", f"bad target profile {where}: extends must be a built-in target id (a string), "
                                 f"got {name!r:.40}")
    if depth >= MAX_DEPTH:
        raise QfixError("QF912", f"bad target profile {where}: extends chain deeper than {MAX_DEPTH} "
                                 f"(a loop?) at {name!r:.40}")
    base = builtin_doc(name)
    if base is None:
        raise QfixError("QF912", f"bad target profile {where}: extends = {name!r:.40} names no built-in target")
    base = resolve(base, name, builtin_doc, depth + 1)
    return lay_over(base, doc)


def accelerator_configs(toolchain: dict[str, Any], where: str) -> None:
    """Check `toolchain.accelerator_configs` (list of names ending in `-<MACs>`) and
    `toolchain.accelerator_config` (the default, one of them). Raises QF912."""
    configs = toolchain.get("accelerator_configs")
    if configs is None:
        return
    if (not isinstance(configs, list) or not configs
            or not all(isinstance(c, str) and c.rsplit("-", 1)[-1].isdigit() for c in configs)):
        raise QfixError("QF912", f"bad target profile {where}: target.toolchain.accelerator_configs must be a "
                                 f"non-empty list of names ending in -<MACs> (e.g. 'ethos-u55-128')")
    if toolchain.get("accelerator_config") not in configs:
        raise QfixError("QF912", f"bad target profile {where}: target.toolchain.accelerator_config must be one "
                                 f"of target.toolchain.accelerator_configs ({', '.join(configs)})")


def macs_of(config: str) -> int:
    """'ethos-u55-128' -> 128."""
    return int(config.rsplit("-", 1)[-1])


def with_macs(profile: Any, option: str, asked: str) -> Any:
    """`profile` run on its accelerator configuration with `option` MACs per cycle.

    Raises QF910 (the profile has no such configuration, or none at all), naming the choices."""
    configs = profile.toolchain.get("accelerator_configs") or []
    choices = ", ".join(f"{profile.id}:{macs_of(c)}" for c in configs)
    if not configs:
        raise QfixError("QF910", f"target '{asked}': {profile.id} has no MAC configurations (':N' is for "
                                 f"targets whose compiler takes one, e.g. ethos-u55:128)")
    chosen = next((c for c in configs if option == str(macs_of(c))), None)  # ASCII digits as written
    if chosen is None:
        raise QfixError("QF910", f"unknown MAC configuration '{asked}' (known: {choices})")
    name = f"{profile.name} ({macs_of(chosen)} MACs)"
    return dataclasses.replace(profile, name=name, toolchain={**profile.toolchain, "accelerator_config": chosen})
