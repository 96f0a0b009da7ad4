"""Unified diffs of what a fix changes: a model's config.json, or a source file's text."""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Iterator
from typing import Any

from qfix.model.config import layer_name


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
    """What the fixes change in a model's config.json, as unified diffs of its normalized parts.

    Structural, so its cost grows with the size of the changes, not of the model (difflib over
    a whole EfficientNetV2L config took minutes): layers are matched by name in each model
    (nested models included), and each changed layer gets its own diff, labelled
    `a/<name>/config.json#<JSON pointer>`; an added layer is diffed against nothing, a removed
    one against nothing. The model itself, with its layer list reduced to the layer names in
    order, is diffed as `a/<name>/config.json`, which shows insertions, removals and moves."""
    out = []
    for pointer, a, b in _changed_parts(old, new):
        label = f"{name}/config.json" + (f"#{pointer}" if pointer else "")
        out.append("".join(difflib.unified_diff(a.splitlines(True), b.splitlines(True), f"a/{label}", f"b/{label}")))
    return "".join(out)


def _layers(model: Any) -> list[Any] | None:
    cfg = model.get("config") if isinstance(model, dict) else None
    layers = cfg.get("layers") if isinstance(cfg, dict) else None
    return layers if isinstance(layers, list) else None


def _changed_parts(old: Any, new: Any) -> Iterator[tuple[str, str, str]]:
    """(pointer, old text, new text) of every changed part: a model's own keys and layer names,
    then its layers in their new order, then removed layers; nested models after their parent
    (breadth first, iteratively)."""
    todo = [("", old, new)]
    while todo:
        pointer, a, b = todo.pop(0)
        la, lb = _layers(a), _layers(b)
        if la is None or lb is None:
            if a != b:
                yield pointer, _text(a), _text(b)
            continue
        shell_a, shell_b = _shell(a, la), _shell(b, lb)
        if shell_a != shell_b:
            yield pointer, _text(shell_a), _text(shell_b)
        olds = {layer_name(r): (i, r) for i, r in enumerate(la)}
        news = {layer_name(r) for r in lb}
        for j, rb in enumerate(lb):
            here = f"{pointer}/config/layers/{j}"
            if layer_name(rb) not in olds:
                yield here, "", _text(rb)
            elif olds[layer_name(rb)][1] != rb:
                ra = olds[layer_name(rb)][1]
                if _layers(ra) is not None and _layers(rb) is not None:
                    todo.append((here, ra, rb))  # a nested model: its own layers, after these
                else:
                    yield here, _text(ra), _text(rb)
        for n, (i, ra) in olds.items():
            if n not in news:
                yield f"{pointer}/config/layers/{i}", _text(ra), ""


def _text(value: Any) -> str:
    """Normalized text ending in a newline, so consecutive diffs never run into each other."""
    return normalized(value) + "\n"


def _shell(model: dict[str, Any], layers: list[Any]) -> dict[str, Any]:
    """The model without its layers' contents: the layer list becomes the names, in order."""
    return {**model, "config": {**model["config"], "layers": [layer_name(r) for r in layers]}}


def unified_diff(path: str, old: str, new: str) -> str:
    """Unified diff of a source file's text, labelled `a/<path>` / `b/<path>` (git style)."""
    name = rel(path).lstrip("/")
    return "".join(
        difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                             fromfile=f"a/{name}", tofile=f"b/{name}")
    )
