"""Drop a cast to the dtype its input already has (exact: the identity).

`keras.ops.cast(x, "float32")` on a float32 tensor (or tf_keras `tf.cast(x, tf.float32)`) changes
no value, yet it stays a layer: Keras 3 saves it as a `Cast` op node, which the tf_keras
translation writes as a `tf.cast` TFOpLambda. tfmot's `quantize_model` then fails on the model
("expected ndim=4, found ndim=5" at the layer after it: issue 10's review, k3_ops and
cast_probe.py), and the static check reports a CAST the Edge TPU does not run. Removing the
layer (its readers read its input) computes the same values bit for bit.

`drop_noop_casts` runs it on every such cast of a tf_keras or Keras 3 config (top level and
nested models) and returns the names dropped; the QAT job calls it on the model it hands to
tfmot.
"""

from __future__ import annotations

from typing import Any

from qfix.model.edit import EditError, ModelEdit
from qfix.model.graph import Graph, build_graph
from qfix.model.rewrites._shared import graph_of


def _noop(graph: Graph, name: str) -> bool:
    layer = graph.layers.get(name)
    if layer is None or not layer.is_cast or len(layer.calls) != 1 or len(layer.inputs) != 1:
        return False
    kw = layer.call_kwargs[0] if layer.call_kwargs else {}
    target = kw.get("dtype") or layer.config.get("dtype")
    src = graph.layers.get(layer.inputs[0].layer)
    source = layer.inputs[0].dtype or (src.out_dtype if src is not None else None)
    return isinstance(target, str) and target == source


def drop_noop_cast(edit: ModelEdit, scope: tuple[str, ...], name: str) -> str:
    """`name` is a cast (Keras 3 `Cast` op, tf_keras `tf.cast`) called once on a tensor of its
    target dtype. Raises EditError otherwise."""
    if not _noop(graph_of(edit, scope), name):
        raise EditError(f"{name!r} is not a cast to the dtype its input already has")
    edit.remove(name, scope)
    return f"cast {name!r} to the dtype its input already has removed (the identity)"


def noop_casts(config: dict[str, Any], dialect: str) -> list[str]:
    """The top-level casts of `config` to the dtype their input already has, model outputs
    aside (an output keeps its place: the output is named after it)."""
    graph = build_graph(config, dialect)
    outputs = {t.layer for t in graph.outputs}
    return [l.name for l in graph if l.name not in outputs and _noop(graph, l.name)]


def drop_noop_casts(config: dict[str, Any], weights: bytes, dialect: str) -> tuple[dict[str, Any], bytes, list[str]]:
    """Every cast `noop_casts` finds removed: (config, `model.weights.h5` re-keyed, names
    dropped). The input is never modified; with nothing to drop, the same objects come back.
    Raises EditError."""
    names = noop_casts(config, dialect)
    if not names:
        return config, weights, []
    edit = ModelEdit(config, dialect)
    for name in names:
        drop_noop_cast(edit, (), name)
    return edit.config, edit.weights(weights), names
