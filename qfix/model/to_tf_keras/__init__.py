"""Translate a Keras 3 `.keras` model into the archive tf_keras 2.x loads
(`tf_keras.models.load_model`), the form tfmot's `quantize_model` needs. Pure Python (json,
h5py, numpy): nothing of TensorFlow or Keras is imported, nothing from the model runs.

    t = translate(config, weights)        # config.json as a dict, model.weights.h5 bytes
    write_archive(path, t.config, t.metadata, t.weights)

What changes (found by saving the same models from both versions; see layers.py, graph.py,
ops.py, weights.py for the details):

* layer configs: DTypePolicy objects → dtype strings; `batch_shape` → `batch_input_shape`;
  initializers without `input_axes`/`output_axes`; Keras 3-only keys at their defaults dropped
  (quantization_config, lora_*, rms_scaling, use_cudnn, zero_output_for_mask, seed of RNNs and
  MultiHeadAttention, Resizing's pad_to_aspect_ratio/fill_*/antialias, data_format of image
  preprocessing layers, ...); `LeakyReLU.negative_slope` → `alpha`; activation `silu` →
  `swish`.
* a Sequential with hard_silu/hard_swish (whose tf_keras form, x · hard_sigmoid(x), branches)
  becomes the Functional it stands for first (sequential.py).
* the graph: Keras 3 `{"args", "kwargs"}` nodes → tf_keras node lists; references to nested
  models one node up; `input_layers`/`output_layers` as lists of references; layers in tf_keras's
  own order; Sequential and nested models (Functional, Sequential) recursively; shared layers.
* op nodes → TFOpLambda/SlicingOpLambda: Add, Subtract, Multiply, Divide, TrueDivide,
  Maximum, Minimum, Power, Matmul, Cast, Reshape, Transpose, ExpandDims, Squeeze, Softmax,
  Relu, Relu6, Sigmoid, Silu, Tanh, Sqrt, Rsqrt, Square, Exp, Log, Negative, Abs(olute),
  Reciprocal, Erf, Floor, Ceil, Mean, Sum, Max, Min, Concatenate, Stack, Clip, GetItem
  (slices, integer indices, None, Ellipsis spelled out).
* expanded into built-in layers: hard_sigmoid, hard_silu/hard_swish (activation or op),
  InceptionResNetV2's CustomScaleLayer, ConvNeXt's LayerScale (a 1x1 DepthwiseConv2D) and
  StochasticDepth (Dropout per sample): tf_keras lacks them, computes them differently, or
  cannot load its own copy.
* weights: groups re-keyed for tf_keras's layer list; MultiHeadAttention's sublayer groups renamed.
* metadata.json: `keras_version` 2.21.0, so both tf_keras and `sniff_dialect` take it as tf_keras.

Anything else raises Untranslatable(layer, reason).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from qfix.model.to_tf_keras.errors import Untranslatable
from qfix.model.to_tf_keras.graph import translate_model
from qfix.model.to_tf_keras.sequential import branch_free
from qfix.model.to_tf_keras.notes import written_notes
from qfix.model.to_tf_keras.weights import translate_weights

TF_KERAS_VERSION = "2.21.0"

__all__ = ["Translation", "Untranslatable", "translate", "written_notes"]


@dataclass
class Translation:
    config: dict[str, Any]  # config.json for tf_keras
    weights: bytes  # model.weights.h5 for tf_keras
    metadata: dict[str, Any]  # metadata.json
    notes: list[str] = field(default_factory=list)  # what changed beyond spelling, one line each


def translate(config: dict[str, Any], weights: bytes) -> Translation:
    """Translate a Keras 3 model config and its `model.weights.h5` bytes. Raises Untranslatable
    for a layer or construct tf_keras cannot express; the inputs are not modified."""
    notes: list[str] = []
    if str(config.get("module") or "").startswith("tf_keras") or not _is_keras3(config):
        raise Untranslatable(str((config.get("config") or {}).get("name")), "not a Keras 3 model config")
    config, weights = branch_free(config, weights, notes)
    new_config = translate_model(copy.deepcopy(config), notes)
    new_weights = translate_weights(weights, config, new_config)
    return Translation(new_config, new_weights, {"keras_version": TF_KERAS_VERSION}, notes)


def _is_keras3(config: dict[str, Any]) -> bool:
    """A Keras 3 Functional or Sequential: tf_keras writes its own module for Functional, and
    `batch_input_shape` (not `batch_shape`) in its InputLayers."""
    if config.get("class_name") not in ("Functional", "Sequential"):
        return False
    layers = (config.get("config") or {}).get("layers") or []
    return not any("batch_input_shape" in (l.get("config") or {}) for l in layers if l.get("class_name") == "InputLayer")
