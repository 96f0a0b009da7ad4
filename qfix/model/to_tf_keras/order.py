"""The order tf_keras lists a functional model's layers in after loading it: its
`_map_graph_network` (tf_keras/src/engine/functional.py), ported. Layers by node depth from
the outputs, ties in depth-first discovery order from the outputs (first input first).
`model.weights.h5` is keyed by that order (qfix.model.weights), so the translated config lists
its layers in it; Keras 3's own order can differ once an expansion deepens one branch.
"""

from __future__ import annotations

from typing import Any, Iterator

from qfix.model.config import is_model

Ref = list  # [layer, node, tensor]


def tf_keras_order(entries: list[dict[str, Any]], outputs: Any, inputs: Any) -> list[dict[str, Any]]:
    """`entries` in the order tf_keras's `_map_graph_network` lists the layers of the model
    they build (tf_keras/src/engine/functional.py), iteratively (deep models would exhaust
    Python's recursion)."""
    by_name = {e["name"]: e for e in entries}

    def parents(node: tuple[str, int]) -> list[tuple[str, int]]:
        entry = by_name[node[0]]
        if entry["class_name"] == "InputLayer":
            return []
        skipped = 1 if is_model(entry) and skips_first_node(entry) else 0  # its own node 0
        return [(r[0], r[1]) for r in _node_inputs(entry["inbound_nodes"][node[1] - skipped])]

    finished: set[tuple[str, int]] = set()
    in_order: list[tuple[str, int]] = []
    index: dict[str, int] = {}
    for out in flat_refs(outputs):
        start = (out[0], out[1])
        if start in finished:
            continue
        index.setdefault(start[0], len(index))
        stack = [(start, iter(parents(start)))]
        while stack:
            node, todo = stack[-1]
            for p in todo:
                if p not in finished and all(p != s[0] for s in stack):
                    index.setdefault(p[0], len(index))
                    stack.append((p, iter(parents(p))))
                    break
            else:
                stack.pop()
                finished.add(node)
                in_order.append(node)
    node_depth: dict[tuple[str, int], int] = {}
    layer_depth: dict[str, int] = {}
    for node in reversed(in_order):
        depth = max(node_depth.setdefault(node, 0), layer_depth.get(node[0], 0))
        layer_depth[node[0]] = node_depth[node] = depth
        for p in parents(node):
            node_depth[p] = max(depth + 1, node_depth.get(p, 0))
    for r in flat_refs(inputs):
        if r[0] not in layer_depth:
            layer_depth[r[0]], index[r[0]] = 0, -1
    ordered = sorted(layer_depth, key=lambda n: (-layer_depth[n], index[n]))
    return [by_name[n] for n in ordered]


def _node_inputs(node: Any) -> list[Ref]:
    """A tf_keras node's Keras inputs, in Node.keras_inputs order: the first argument's
    tensors, then tensors in the keyword arguments (sorted by key, as tf.nest flattens)."""
    entries = [node] if is_ref(node) else list(_entries(node))
    found = [e[:3] for e in entries]
    kwargs = entries[-1][3] if entries and len(entries[-1]) > 3 else {}
    found += list(flat_refs(kwargs))
    return found


def _entries(node: Any) -> Iterator[list]:
    if is_ref(node):
        yield node
    elif isinstance(node, list):
        for x in node:
            yield from _entries(x)
    elif isinstance(node, dict):
        for k in sorted(node):
            yield from _entries(node[k])


def flat_refs(v: Any) -> Iterator[Ref]:
    if is_ref(v) and len(v) == 3:
        yield v
    elif isinstance(v, list):
        for x in v:
            yield from flat_refs(x)
    elif isinstance(v, dict):
        for k in sorted(v):
            yield from flat_refs(v[k])


def skips_first_node(l: dict[str, Any]) -> bool:
    """tf_keras's `_should_skip_first_node`: a Functional, or a Sequential built from an Input."""
    if l.get("class_name") == "Functional":
        return True
    first = ((l.get("config") or {}).get("layers") or [{}])[0]
    return l.get("class_name") == "Sequential" and first.get("class_name") == "InputLayer"


def is_ref(v: Any) -> bool:
    return isinstance(v, list) and len(v) in (3, 4) and isinstance(v[0], str)
