"""`model.weights.h5`, Keras 3 → tf_keras.

Both versions write the same variables in the same order for every layer class tried (the
keras.applications models and Dense, Conv1D-3D, Conv*Transpose, SeparableConv1D/2D,
DepthwiseConv1D/2D, BatchNormalization, LayerNormalization, GroupNormalization, Normalization,
Embedding, PReLU, LSTM, GRU, SimpleRNN, Bidirectional, TimeDistributed), so a layer's group
moves as a whole. What differs is where groups live: tf_keras lists TFOpLambda layers (and
the layers of an expansion) in `model.layers`, so it keys groups by the translated config's
order (weights.migrate does the re-keying), ConvNeXt's LayerScale becomes a DepthwiseConv2D
(its gamma reshaped into the kernel), and MultiHeadAttention's sublayers are private
attributes in tf_keras (`_query_dense`, … instead of `query_dense`).
"""

from __future__ import annotations

import io
from typing import Any

from qfix.model.config import is_model, layer_name
from qfix.model.weights import group_keys, migrate

_PRIVATE_SUBLAYERS = {"MultiHeadAttention": ("query_dense", "key_dense", "value_dense", "output_dense")}


def translate_weights(weights: bytes, old_config: dict[str, Any], new_config: dict[str, Any]) -> bytes:
    old_classes, new_classes = _classes(old_config), _classes(new_config)
    origin = {p: (p if p in old_classes else None) for p in new_classes}
    # Keras 3's op nodes have no group, and every other name survives: keying both configs the
    # tf_keras way (an op's module is not a layer's) gives each surviving layer's old group.
    new_vars = {}
    for path, cls in new_classes.items():
        if old_classes.get(path) == "LayerScale" and cls == "DepthwiseConv2D":  # gamma (C,) → kernel (1, 1, C, 1)
            origin[path] = None
            new_vars[path] = lambda read, p=path: [read(p)[0].reshape(1, 1, -1, 1)]
    data = migrate(weights, old_config, new_config, "tf_keras", origin, new_vars)
    renames = _sublayer_renames(new_config)
    if not renames:
        return data
    import h5py

    buf = io.BytesIO(data)
    with h5py.File(buf, "r+") as f:
        for old, new in renames:
            if old in f:
                f.move(old, new)
    return buf.getvalue()


def _classes(config: dict[str, Any]) -> dict[tuple[str, ...], str]:
    """Every layer path (as weights.layer_paths) → its class name."""
    classes = {}

    def walk(model: dict[str, Any], path: tuple[str, ...]) -> None:
        for raw in (model.get("config") or {}).get("layers") or []:
            name = layer_name(raw)
            classes[(*path, name)] = str(raw.get("class_name"))
            if is_model(raw):
                walk(raw, (*path, name))

    walk(config, ())
    return classes


def _sublayer_renames(config: dict[str, Any]) -> list[tuple[str, str]]:
    classes = _classes(config)
    out = []
    for path, group in group_keys(config, "tf_keras").items():
        for sub in _PRIVATE_SUBLAYERS.get(classes.get(path), ()):
            out.append((f"{group}/{sub}", f"{group}/_{sub}"))
    return out
