"""The input shape of a layer as a config records it, in both dialects and both model kinds.

Keras 3 functional configs record the shape on every tensor reference; tf_keras and Sequential
configs only on the build config of the layer (or the input layer before it)."""

from __future__ import annotations

from qfix.model.graph import Graph, Layer


def input_shape_of(graph: Graph, layer: Layer) -> tuple[int | None, ...] | None:
    """The (batch-first) shape of the first tensor `layer` reads, None when nothing records it."""
    refs = layer.inputs
    if refs and refs[0].shape is not None:
        return tuple(refs[0].shape)
    built = (layer.raw.get("build_config") or {}).get("input_shape")
    if isinstance(built, list) and built and all(d is None or isinstance(d, int) for d in built):
        return tuple(built)
    producer = graph.layers.get(refs[0].layer) if refs else None
    return tuple(producer.out_shape) if producer is not None and producer.out_shape is not None else None
