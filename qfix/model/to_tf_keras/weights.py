"""`model.weights.h5`, Keras 3 → tf_keras.

Both versions write the same variables in the same order for every layer class tried (the
keras.applications models and Dense, Conv1D-3D, Conv*Transpose, SeparableConv1D/2D,
DepthwiseConv1D/2D, BatchNormalization, LayerNormalization, GroupNormalization, Normalization,
Embedding, PReLU, LSTM, GRU, SimpleRNN, Bidirectional, TimeDistributed), so a layer's group
moves as a whole. What differs is where groups live: tf_keras lists TFOpLambda layers (and
the layers of an expansion) in `model.layers`, so it keys groups by the translated config's
order (weights.migrate does the re-keying), and MultiHeadAttention's sublayers are private
attributes in tf_keras (`_query_dense`, … instead of `query_dense`).
"""

from __future__ import annotations

import io
from typing import Any

from qfix.model.weights import group_keys, layer_paths, migrate

_PRIVATE_SUBLAYERS = {"MultiHeadAttention": ("query_dense", "key_dense", "value_dense", "output_dense")}


def translate_weights(weights: bytes, old_config: dict[str, Any], new_config: dict[str, Any]) -> bytes:
    old_paths = set(layer_paths(old_config))
    origin = {p: (p if p in old_paths else None) for p in layer_paths(new_config)}
    # Keras 3's op nodes have no group, and every other name survives: keying both configs the
    # tf_keras way (an op's module is not a layer's) gives each surviving layer's old group.
    data = migrate(weights, old_config, new_config, "tf_keras", origin)
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


def _sublayer_renames(config: dict[str, Any]) -> list[tuple[str, str]]:
    classes = {}

    def walk(model: dict[str, Any], path: tuple[str, ...]) -> None:
        for raw in (model.get("config") or {}).get("layers") or []:
            name = (raw.get("config") or {}).get("name") or raw.get("name")
            classes[(*path, name)] = raw.get("class_name")
            if raw.get("class_name") in ("Functional", "Sequential"):
                walk(raw, (*path, name))

    walk(config, ())
    out = []
    for path, group in group_keys(config, "tf_keras").items():
        for sub in _PRIVATE_SUBLAYERS.get(classes.get(path), ()):
            out.append((f"{group}/{sub}", f"{group}/_{sub}"))
    return out
