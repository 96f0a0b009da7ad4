"""One layer entry's config, Keras 3 → tf_keras (values only; the graph is `graph.py`'s).

Found by saving the same layers from both Keras versions and reading tf_keras's constructors
(`layers` accept only their own arguments plus a few base ones, so every Keras 3-only key must
go): `DTypePolicy` objects become dtype strings, `shared_object_id` and Keras 3's `__tuple__`
wrappers go, initializers lose `input_axes`/`output_axes`, `InputLayer.batch_shape` becomes
`batch_input_shape`, `LeakyReLU.negative_slope` becomes `alpha`, and the keys in `DROPPED`
go when they hold Keras 3's default (any other value has no tf_keras spelling: Untranslatable).
"""

from __future__ import annotations

from typing import Any

from qfix.model.to_tf_keras.errors import Untranslatable

_UNSET = object()

# Keras 3-only constructor keys → the value that means "as tf_keras does it".
_EVERY_LAYER = {"quantization_config": None, "lora_rank": None, "lora_alpha": None,
                "gptq_unpacked_column_size": None}
_RNN = {"zero_output_for_mask": _UNSET, "use_cudnn": _UNSET, "seed": _UNSET}  # masks/dropout RNG only
_IMAGE = {"data_format": "channels_last", "factor": None, "bounding_box_format": None}
DROPPED: dict[str, dict[str, Any]] = {
    "LayerNormalization": {"rms_scaling": False},
    "MultiHeadAttention": {"use_gate": False, "sliding_window": None, "flash_attention": None, "seed": _UNSET},
    "LSTM": _RNN, "GRU": _RNN, "SimpleRNN": _RNN, "RNN": _RNN,
    "ConvLSTM1D": _RNN, "ConvLSTM2D": _RNN, "ConvLSTM3D": _RNN,
    "Resizing": {**_IMAGE, "pad_to_aspect_ratio": False, "fill_mode": "constant", "fill_value": 0.0,
                 "antialias": False},
    "CenterCrop": _IMAGE, "RandomCrop": _IMAGE, "RandomFlip": _IMAGE, "RandomRotation": _IMAGE,
    "RandomTranslation": _IMAGE, "RandomZoom": _IMAGE, "RandomBrightness": _IMAGE,
    "RandomContrast": {**_IMAGE, "value_range": [0, 255]},
    "ZeroPadding1D": {"data_format": "channels_last"},
    "IntegerLookup": {"oov_method": "floormod", "salt": None},
    "StringLookup": {"oov_method": "floormod", "salt": None},
}
RENAMED: dict[str, dict[str, str]] = {"LeakyReLU": {"negative_slope": "alpha"}, "InputLayer": {"batch_shape": "batch_input_shape"}}
_INITIALIZER_DROPPED = {"input_axes": None, "output_axes": None}

# Activation names both versions compute alike (checked numerically on [-8, 8]); Keras 3 spells
# swish "silu". hard_sigmoid is relu6(x+3)/6 in Keras 3 but clip(0.2x+0.5) in tf_keras, and
# hard_silu/hard_swish do not exist there: graph.py expands those into layers (HARD).
ACTIVATIONS = {"elu", "exponential", "gelu", "leaky_relu", "linear", "log_softmax", "mish", "relu",
               "relu6", "selu", "sigmoid", "softmax", "softplus", "softsign", "swish", "tanh"}
ACTIVATION_ALIASES = {"silu": "swish"}
HARD = {"hard_sigmoid", "hard_silu", "hard_swish"}

# keras.applications layers: graph.py replaces them with built-in layers.
APPLICATION_MODULES: dict[str, str] = {}


def translate_entry(raw: dict[str, Any], *, keep_activation: bool = False) -> dict[str, Any]:
    """A layer entry (module, class_name, config, registered_name, build_config) without its
    graph keys (`name`/`inbound_nodes` are graph.py's). `keep_activation`: the caller expands a
    HARD activation itself."""
    cls = str(raw.get("class_name"))
    name = str((raw.get("config") or {}).get("name") or raw.get("name"))
    module = str(raw.get("module") or "")
    out: dict[str, Any] = {
        "module": APPLICATION_MODULES.get(module, module),
        "class_name": cls,
        "config": translate_config(cls, name, raw.get("config") or {}, keep_activation),
        "registered_name": raw.get("registered_name"),
    }
    if "build_config" in raw:
        out["build_config"] = value(raw["build_config"], name)
    return out


def translate_config(cls: str, layer: str, config: dict[str, Any], keep_activation: bool = False) -> dict[str, Any]:
    if cls == "Lambda":
        return _lambda_config(layer, config)
    dropped = {**_EVERY_LAYER, **DROPPED.get(cls, {})}
    renamed = RENAMED.get(cls, {})
    out: dict[str, Any] = {}
    for key, v in config.items():
        if key in dropped:
            default = dropped[key]
            if default is _UNSET or v == default:
                continue
            raise Untranslatable(layer, f"{cls}({key}={v!r}) has no tf_keras equivalent")
        if key in ("activation", "recurrent_activation"):
            out[key] = v if keep_activation and v in HARD else activation(v, layer)
            continue
        out[renamed.get(key, key)] = value(v, layer)
    return out


def _lambda_config(layer: str, config: dict[str, Any]) -> dict[str, Any]:
    """Keras 3 and tf_keras marshal a lambda's bytecode alike (base64 of marshal.dumps); only
    the wrapping differs. The bytecode is carried, never run here; tf_keras runs it only when
    the caller lifts safe_mode (--trust-lambdas), under tf_keras's globals (a body that names
    Keras 3's `ops` then fails there). `module` "builtins" keeps the vet flagging it as code."""
    fn = config.get("function")
    out = {k: value(v, layer) for k, v in config.items() if k not in ("function", "output_shape")}
    if isinstance(fn, dict) and fn.get("class_name") == "__lambda__":
        c = fn.get("config") or {}
        out.update(function=[c.get("code"), c.get("defaults"), c.get("closure")], function_type="lambda",
                   module="builtins")
    elif isinstance(fn, dict) and fn.get("class_name") == "function":
        out.update(function=fn.get("config"), function_type="function", module=fn.get("module"))
    else:
        raise Untranslatable(layer, "a Lambda whose function is neither bytecode nor a named function")
    shape = config.get("output_shape")
    if isinstance(shape, dict):
        raise Untranslatable(layer, "a Lambda whose output_shape is a function")
    out.update(output_shape=shape, output_shape_type="raw", output_shape_module=None)
    return out


def activation(v: Any, layer: str) -> Any:
    """A tf_keras activation name for a Keras 3 one (HARD ones are graph.py's to expand)."""
    if isinstance(v, dict) and v.get("module") == "keras.activations" and isinstance(v.get("config"), str):
        v = v["config"]
    if not isinstance(v, str):
        return value(v, layer)  # a serialized custom activation object: kept for its registry
    v = ACTIVATION_ALIASES.get(v, v)
    if v not in ACTIVATIONS:
        raise Untranslatable(layer, f"activation {v!r} has no tf_keras equivalent")
    return v


def value(v: Any, layer: str) -> Any:
    """A config value: dtype policies to strings, tuples to lists, nested objects translated."""
    if isinstance(v, list):
        return [value(x, layer) for x in v]
    if not isinstance(v, dict):
        return v
    cls = v.get("class_name")
    if cls in ("DTypePolicy", "FloatDTypePolicy"):
        return (v.get("config") or {}).get("name")
    if cls and "DTypePolicy" in str(cls):  # QuantizedDTypePolicy, GPTQDTypePolicy, ...
        raise Untranslatable(layer, f"dtype policy {cls} (a Keras 3-quantized layer) has no tf_keras equivalent")
    if cls == "__tuple__":
        return value((v.get("config") or {}).get("value", []), layer)
    if cls == "__numpy__":
        return value((v.get("config") or {}).get("value"), layer)
    module = str(v.get("module") or "")
    if module == "keras.layers" or module in APPLICATION_MODULES:  # a wrapped layer (Bidirectional)
        return translate_entry(v)
    out = {k: value(x, layer) for k, x in v.items() if k != "shared_object_id"}
    if module == "keras.initializers" and isinstance(out.get("config"), dict):
        cfg = out["config"]
        for key, default in _INITIALIZER_DROPPED.items():
            if key in cfg:
                if cfg[key] != default:
                    raise Untranslatable(layer, f"initializer {cls}({key}={cfg[key]!r}) has no tf_keras equivalent")
                del cfg[key]
    return out
