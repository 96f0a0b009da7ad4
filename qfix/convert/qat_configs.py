"""The tfmot QuantizeConfigs qfix ships for `--mode qat` (registered, serializable), and the
objects a quantize scope needs to load a model annotated with them.

Which layer gets which config is decided by the table in `qfix.model.tfmot_registry` (its
`config` field names one of the classes here); the `-m tf` tests in
tests/rules/test_tfmot_registry.py convert a model annotated with each one and check which ops
come out integer.

- `OutputQuantizeConfig`: no weight or activation quantizers, one 8-bit moving-average quantizer
  on the output (asymmetric, per tensor: what tfmot puts on Add/Concatenate). For layers whose
  math the converter quantizes from the ranges around them (Rescaling, Multiply, LayerNorm, ...).
- `NoOpQuantizeConfig`: no quantizer at all, to keep a layer float on purpose; `quantize_model`
  then accepts the rest of the model. Checked: the layer reading it converts to float as well
  (no range on its input), so qfix's table never picks it; it is for users' own annotations.

Imported only in the worker's child process and by the user's training script (the report's
snippet), never by the static side: it imports tf_keras and tfmot.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tfmot works with tf_keras only

import tf_keras  # noqa: E402
import tensorflow_model_optimization as tfmot  # noqa: E402

_QuantizeConfig = tfmot.quantization.keras.QuantizeConfig
_MovingAverage = tfmot.quantization.keras.quantizers.MovingAverageQuantizer
PACKAGE = "qfix"


class _NoWeights(_QuantizeConfig):
    """A config that quantizes none of the layer's weights or inner activations."""

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_config(self) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config(cls, config: dict[str, Any]):
        return cls(**config)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    def __hash__(self) -> int:
        return hash(type(self))


@tf_keras.utils.register_keras_serializable(package=PACKAGE)
class OutputQuantizeConfig(_NoWeights):
    """Quantize the layer's output only: 8 bits, per tensor, asymmetric, moving-average range
    (the quantizer tfmot's registry gives Add, Concatenate and pooling layers)."""

    def get_output_quantizers(self, layer):
        return [_MovingAverage(num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]


@tf_keras.utils.register_keras_serializable(package=PACKAGE)
class NoOpQuantizeConfig(_NoWeights):
    """Quantize nothing: the layer stays float between quantized neighbours."""

    def get_output_quantizers(self, layer):
        return []


CONFIGS = (OutputQuantizeConfig, NoOpQuantizeConfig)


def custom_objects(module: str | None = None) -> dict[str, Any]:
    """The names `tfmot.quantization.keras.quantize_scope` needs: qfix's QuantizeConfigs, keyed
    as they appear in a saved config (`qfix>OutputQuantizeConfig`) and by class name (what
    `quantize_annotate_layer` users write), and, with `module` (the --custom-objects module,
    imported here), its tf_keras layer classes by class name: a QuantizeAnnotate wrapping a
    custom layer deserializes it inside the scope."""
    out: dict[str, Any] = {}
    for cls in CONFIGS:
        out[f"{PACKAGE}>{cls.__name__}"] = cls
        out[cls.__name__] = cls
    if module:
        import importlib

        out.update({name: obj for name, obj in vars(importlib.import_module(module)).items()
                    if isinstance(obj, type) and issubclass(obj, tf_keras.layers.Layer)})
    return out


# Modules whose layer classes tfmot, Keras or TF-Hub define: any other class is the user's.
_LIBRARY_MODULES = ("tf_keras.", "keras.", "tensorflow.", "tensorflow_model_optimization.", "tensorflow_hub.")


def custom_layer_weights(model: Any) -> dict[str, list[tuple[str | None, str, list[int]]]]:
    """Each layer of `model` (tf_keras, loaded) whose class is the user's, by layer name → its
    trainable variables as (attribute of the layer holding it or None, variable name without
    the layer's scope, shape): `{"scaled_tanh": [("alpha", "alpha", [4])]}`. A layer inside a
    QuantizeAnnotate is read through it. The names exist only on the loaded layer: the weights
    file keys variables by index (`layers/scaled_tanh/vars/0`)."""
    out = {}
    for wrapper in model.layers:
        layer = getattr(wrapper, "layer", wrapper) if type(wrapper).__name__ == "QuantizeAnnotate" else wrapper
        if type(layer).__module__.startswith(_LIBRARY_MODULES):
            continue
        held = {id(v): attr for attr, v in vars(layer).items() if any(v is w for w in layer.trainable_weights)}
        out[wrapper.name] = [(held.get(id(w)), w.name.split(":")[0].rpartition("/")[2], list(w.shape))
                             for w in layer.trainable_weights]
    return out
