"""The settings one document is checked with: `[tool.qfix]` from the pyproject.toml nearest to
it (`qfix.source.config`, as `qfix FILE` reads it), overridden by the editor's settings
(`initializationOptions`, or `workspace/didChangeConfiguration`'s `settings`, either bare or
under a `"qfix"` key).

Editor settings (camelCase, kebab-case or snake_case keys):

    target       "edgetpu", "int8", "tflm", "ethos-u" or a profile .toml: replaces [tool.qfix] target
    select       rule codes, prefixes or names (a list or a comma-separated string): replaces select
    ignore       the same: added to [tool.qfix] ignore (as `--ignore` is on the command line)
    unsafeFixes  true/false: replaces [tool.qfix] unsafe-fixes (what source.fixAll.qfix applies)

Resolution follows `qfix.cli.source.run`, so that the editor's fix-all gives what
`qfix FILE --write` gives with the same configuration. `.keras` models are checked with the
same target, select and ignore (`edgetpu` when neither sets a target; the command line's
`qfix MODEL.keras` does not read [tool.qfix]).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qfix.types import QfixError

_KEYS = {"target": "target", "select": "select", "ignore": "ignore", "unsafefixes": "unsafe_fixes"}


@dataclass(frozen=True)
class Overrides:
    """What the editor's settings override (None: not set)."""

    target: str | None = None
    select: tuple[str, ...] | None = None
    ignore: tuple[str, ...] = ()
    unsafe_fixes: bool | None = None

    @classmethod
    def parse(cls, raw: Any) -> tuple["Overrides", list[str]]:
        """Overrides from the client's JSON value, and one message per setting it ignored
        (unknown key, wrong type). Never raises."""
        if isinstance(raw, dict) and isinstance(raw.get("qfix"), dict):
            raw = raw["qfix"]
        if raw is None:
            return cls(), []
        if not isinstance(raw, dict):
            return cls(), [f"qfix settings must be an object, not {type(raw).__name__}: ignored"]
        values: dict[str, Any] = {}
        problems = []
        for key, value in raw.items():
            name = _KEYS.get(re.sub(r"[-_]", "", str(key)).lower())
            if name is None:
                problems.append(f"unknown qfix setting {key!r} (known: target, select, ignore, unsafeFixes): ignored")
                continue
            if value is None:
                continue
            if name == "target":
                if isinstance(value, str) and value.strip():
                    values[name] = value.strip()
                    continue
            elif name == "unsafe_fixes":
                if isinstance(value, bool):
                    values[name] = value
                    continue
            else:
                codes = _codes(value)
                if codes is not None:
                    values[name] = codes
                    continue
            problems.append(f"qfix setting {key!r} has the wrong type ({type(value).__name__}): ignored")
        return cls(**values), problems


def _codes(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, str):
        value = value.split(",")
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(v.strip() for v in value if v.strip())
    return None


@dataclass
class Settings:
    """The resolved settings for one document. `error` (QF9xx) when the configuration is
    unusable: the document then gets that one diagnostic."""

    rules: list[type] = field(default_factory=list)
    target: str | None = None
    select: list[str] | None = None
    ignore: list[str] = field(default_factory=list)
    unsafe_fixes: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    excluded: bool = False  # the document matches [tool.qfix] exclude
    config: Path | None = None  # the pyproject.toml read
    error: QfixError | None = None


def resolve(path: Path | None, overrides: Overrides, root: Path | None = None, *, model: bool = False) -> Settings:
    """Settings for the document at `path` (None: an unsaved document; the configuration is
    then looked up from the workspace `root`, and none is read without one). `model`: for a
    `.keras` file (target `edgetpu` by default; `rules` left empty, the model linter selects
    its own with `select`/`ignore`)."""
    # imported here: the server answers `initialize` before libcst and the rules load
    from qfix.rules import select as select_rules, source_rules, unknown_selectors
    from qfix.source.config import SourceConfig, load_config
    from qfix.source.engine import target_profile

    settings = Settings()
    try:
        start = path if path is not None else root
        cfg = load_config([start]) if start is not None else SourceConfig()
        settings.config = cfg.path
        settings.target = overrides.target or cfg.target or "edgetpu"  # as on the command line
        if settings.target == "none" and not model:  # no target rules, as `--target none`
            settings.target = None
        settings.select = list(overrides.select) if overrides.select else cfg.select
        settings.ignore = [*cfg.ignore, *overrides.ignore]
        settings.unsafe_fixes = cfg.unsafe_fixes if overrides.unsafe_fixes is None else overrides.unsafe_fixes
        settings.options = cfg.rule_options()
        settings.excluded = path is not None and _excluded(path, cfg)
        if settings.target is not None:
            target_profile(settings.target)  # QF910 / QF912, as on the command line
        unknown = unknown_selectors([*(settings.select or []), *settings.ignore])
        if unknown:
            raise QfixError("QF914", f"unknown rule selector {', '.join(unknown)} in the select/ignore settings "
                                     "or [tool.qfix] (see `qfix rules`)")
        if not model:
            settings.rules = select_rules(source_rules(), settings.select, settings.ignore)
            if settings.select and not settings.rules:
                raise QfixError("QF914", f"select {','.join(settings.select)} matches no source rule")
    except QfixError as exc:
        settings.error = exc
    return settings


def _excluded(path: Path, cfg) -> bool:
    """The file, or a folder it is in below the configuration's folder, matches `exclude`
    (the command line does not descend into an excluded folder)."""
    from qfix.source.runner import excluded

    if not cfg.exclude:
        return False
    root = cfg.root.resolve() if cfg.root is not None else None
    folders = [f for f in path.resolve().parents if root is not None and f != root and f.is_relative_to(root)]
    return any(excluded(p, cfg.exclude, cfg.root) for p in [path, *folders])
