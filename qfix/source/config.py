"""`[tool.qfix]` from pyproject.toml (the nearest one above the first path, else the cwd).

Keys (kebab or snake case): `select`, `ignore`, `target`, `unsafe-fixes`, `exclude`,
`extend-exclude` (glob patterns matched against paths relative to the config's folder and
against file names), `representative-dataset` (the calibration generator: `module.object`,
`module:object`, or a name the file defines; lets QF401 insert
`converter.representative_dataset = module.object` with `import module`).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qfix.types import QfixError


@dataclass
class SourceConfig:
    select: list[str] | None = None
    ignore: list[str] = field(default_factory=list)
    target: str | None = None
    unsafe_fixes: bool = False
    exclude: list[str] = field(default_factory=list)
    representative_dataset: str | None = None
    root: Path | None = None  # folder of the pyproject.toml it came from
    path: Path | None = None

    def rule_options(self) -> dict[str, Any]:
        return {"representative_dataset": self.representative_dataset}


def find_pyproject(start: Path) -> Path | None:
    start = start.resolve()
    folder = start if start.is_dir() else start.parent
    for d in (folder, *folder.parents):
        candidate = d / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def _list(value: Any, key: str, where: Path) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise QfixError("QF914", f"{where}: [tool.qfix] {key} must be a string or a list of strings")


def load_config(paths: list[Path]) -> SourceConfig:
    start = paths[0] if paths else Path.cwd()
    pyproject = find_pyproject(start)
    if pyproject is None:
        return SourceConfig()
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise QfixError("QF914", f"{pyproject}: cannot read [tool.qfix]: {exc}") from None
    section = data.get("tool", {}).get("qfix", {})
    if not isinstance(section, dict):
        raise QfixError("QF914", f"{pyproject}: [tool.qfix] must be a table")
    src = section.get("source", {}) if isinstance(section.get("source"), dict) else {}
    merged = {**{k: v for k, v in section.items() if not isinstance(v, dict)}, **src}
    norm = {k.replace("-", "_"): v for k, v in merged.items()}
    cfg = SourceConfig(root=pyproject.parent, path=pyproject)
    if "select" in norm:
        cfg.select = _list(norm["select"], "select", pyproject)
    if "ignore" in norm:
        cfg.ignore = _list(norm["ignore"], "ignore", pyproject)
    if "target" in norm:
        if not isinstance(norm["target"], str):
            raise QfixError("QF914", f"{pyproject}: [tool.qfix] target must be a string")
        cfg.target = norm["target"]
    if "unsafe_fixes" in norm:
        cfg.unsafe_fixes = bool(norm["unsafe_fixes"])
    for key in ("exclude", "extend_exclude"):
        if key in norm:
            cfg.exclude.extend(_list(norm[key], key, pyproject))
    if "representative_dataset" in norm:
        if not isinstance(norm["representative_dataset"], str):
            raise QfixError("QF914", f"{pyproject}: [tool.qfix] representative-dataset must be a string")
        cfg.representative_dataset = norm["representative_dataset"]
    return cfg
