"""Unified diffs of what a fix changes: a model's config.json, or a source file's text."""

from __future__ import annotations

import difflib
import json
import os
from typing import Any


def rel(path: str) -> str:
    """`path` relative to the working folder when it lies below it (shorter report lines)."""
    try:
        r = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return path
    return path if r.startswith("..") else r


def normalized(config: dict[str, Any]) -> str:
    """A model config as stable text: sorted keys, one value per line, so diffs are minimal."""
    return json.dumps(config, indent=1, sort_keys=True)


def config_diff(old: dict[str, Any], new: dict[str, Any], name: str) -> str:
    """Unified diff of two model configs, labelled `a/<name>/config.json`."""
    return "".join(difflib.unified_diff(normalized(old).splitlines(True), normalized(new).splitlines(True),
                                        f"a/{name}/config.json", f"b/{name}/config.json"))


def unified_diff(path: str, old: str, new: str) -> str:
    """Unified diff of a source file's text, labelled `a/<path>` / `b/<path>` (git style)."""
    name = rel(path).lstrip("/")
    return "".join(
        difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                             fromfile=f"a/{name}", tofile=f"b/{name}")
    )
