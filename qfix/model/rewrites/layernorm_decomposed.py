"""Write a Keras 3 LayerNormalization over the channels without its float NEG (QF308, exact).

Keras 3.15 computes `LayerNormalization` as x·inv + (β − mean·inv) with inv = γ/√(var + ε)
(keras/src/ops/nn.py `_layer_normalization`); the `-mean` is a TFLite NEG that full-integer
quantization leaves in float (TF 2.21: MEAN, DEQUANTIZE, NEG, QUANTIZE, SQUARED_DIFFERENCE, ...:
a float island per layer, which integer targets cannot run). The same function, over the last
axis, is

    mean     = a linear map to one channel with every weight 1/C, no bias
               (rank 4: Conv2D(1, 1); rank 3: Conv1D(1, 1); rank 2: Dense(1))
    centred  = Subtract()([x, mean])                      (broadcast over the channels)
    normed   = RMSNormalization(epsilon=ε), scale γ (ones when scale=False)
    out      = normed + β, when center=True: a 1×1 depthwise conv of ones with bias β
               (rank 4: DepthwiseConv2D; rank 3: DepthwiseConv1D; rank 2: the DepthwiseConv2D
               between Reshape((1, 1, C)) and Reshape((C,)))

RMSNormalization divides by √(mean(centred²) + ε), and the centred input has mean 0, so
mean(centred²) = var(x): the same denominator (it would be for Keras 3's deprecated
`rms_scaling=True` too, which divides by √(var + ε)). No Dense on a rank 3/4 input for the mean:
that is FULLY_CONNECTED v5 with keep_num_dims, above the Edge TPU compiler's version (4).

Observed (1×4×4×16, TF 2.21, full-integer recipe): FULLY_CONNECTED/CONV_2D, SUB,
SQUARED_DIFFERENCE, MEAN, ADD, RSQRT, MUL, MUL, DEPTHWISE_CONV_2D, no float tensor; float
outputs within 1e-6 of the original's. The mean layer keeps the layer's name; the last new
layer takes it back when it is a model output. A Sequential becomes the Functional it stands
for (the subtraction reads two tensors).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# numpy is imported where used: source-side start-up (the LSP, `qfix script.py`) never needs it.
if TYPE_CHECKING:
    import numpy as np

from qfix.model.config import policy_name
from qfix.model.edit import EditError, ModelEdit, initializer, make_layer
from qfix.model.rewrites.batchnorm_as_depthwise import depthwise_1x1

_NONE = {"kernel_regularizer": None, "bias_regularizer": None, "activity_regularizer": None,
         "kernel_constraint": None, "bias_constraint": None}


def decomposable(shape: Any, cfg: dict[str, Any]) -> str | None:
    """Why a LayerNormalization of config `cfg` on an input of `shape` cannot be decomposed
    (None when it can): the rewrite needs the last axis alone and a static channel count on a
    rank 2-4 input, and a float32 policy (the new layers compute in the policy's dtype, the
    LayerNormalization in float32 at least)."""
    if cfg.get("rms_scaling"):
        return "it uses rms_scaling (no NEG)"
    if not isinstance(shape, (list, tuple)) or len(shape) not in (2, 3, 4):
        return "its input is not of rank 2, 3 or 4 (or its shape is not recorded)"
    if not isinstance(shape[-1], int):
        return "its input's channel count is not static"
    axis = cfg.get("axis", -1)
    axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
    if axis not in (-1, len(shape) - 1):
        return f"it normalizes axis {cfg.get('axis')}, not the last axis alone"
    dtype = policy_name(cfg.get("dtype")) or "float32"
    if dtype != "float32":
        return f"its dtype policy is {dtype}, not float32"
    return None


def _conv(cls: str, rank: int) -> dict[str, Any]:
    return {"filters": 1, "kernel_size": [1] * rank, "strides": [1] * rank, "padding": "valid",
            "data_format": "channels_last", "dilation_rate": [1] * rank, "groups": 1, "activation": "linear",
            "use_bias": False, "kernel_initializer": initializer("GlorotUniform"),
            "bias_initializer": initializer("Zeros"), **_NONE}


def _mean_layer(rank: int, channels: int, name: str, dialect: str, dtype: str) -> tuple[dict, np.ndarray]:
    """The 1-output linear map with weights 1/C over the last axis, and its kernel."""
    import numpy as np

    w = np.float32(1.0 / channels)
    if rank == 2:
        cfg = {"units": 1, "activation": "linear", "use_bias": False,
               "kernel_initializer": initializer("GlorotUniform"), "bias_initializer": initializer("Zeros"), **_NONE}
        return make_layer("Dense", cfg, dialect, name, dtype=dtype), np.full((channels, 1), w, np.float32)
    cls = "Conv2D" if rank == 4 else "Conv1D"
    kernel = np.full((*[1] * (rank - 2), channels, 1), w, np.float32)
    return make_layer(cls, _conv(cls, rank - 2), dialect, name, dtype=dtype), kernel


def _depthwise_1d(name: str, dialect: str, dtype: str) -> dict[str, Any]:
    return make_layer(
        "DepthwiseConv1D",
        {"kernel_size": [1], "strides": [1], "padding": "valid", "depth_multiplier": 1,
         "data_format": "channels_last", "dilation_rate": [1], "activation": "linear", "use_bias": True,
         "depthwise_initializer": initializer("Ones"), "bias_initializer": initializer("Zeros"),
         "depthwise_regularizer": None, "bias_regularizer": None, "activity_regularizer": None,
         "depthwise_constraint": None, "bias_constraint": None},
        dialect, name, dtype=dtype)


def layernorm_decomposed(edit: ModelEdit, scope: tuple[str, ...], name: str) -> str:
    """`name` is a Keras 3 LayerNormalization over the last axis of a static rank 2-4 input, called once."""
    if edit.dialect != "keras3":
        raise EditError("the LayerNormalization decomposition is written for Keras 3 configs only "
                        "(tf_keras's converts to int8 ops already)")
    raw = edit.layer(name, scope)
    cfg = raw.get("config") or {}
    if raw.get("class_name") != "LayerNormalization":
        raise EditError(f"{name!r} is not a LayerNormalization")
    if "inbound_nodes" in raw and len(raw["inbound_nodes"]) != 1:
        raise EditError(f"{name!r} is called {len(raw['inbound_nodes'])} times; only a single call can be rewritten")
    source = edit.origin.get((*scope, name))
    if source is None:
        raise EditError(f"{name!r} was added by this edit; its weights are not in the file yet")
    edit.functional(scope)  # the subtraction reads two tensors: call nodes, not a chain
    raw = edit.layer(name, scope)
    (x,) = edit.inputs_of(name, scope)
    shape = (raw.get("build_config") or {}).get("input_shape")
    if not isinstance(shape, list):
        shape = edit.tensor_meta(x, scope)[0]
    why = decomposable(shape, cfg)
    if why:
        raise EditError(f"{name!r} cannot be decomposed: {why}")
    rank, channels = len(shape), shape[-1]
    eps = float(cfg.get("epsilon", 1e-3))
    scale, center = bool(cfg.get("scale", True)), bool(cfg.get("center", True))
    dtype = "float32"

    mean_raw, kernel = _mean_layer(rank, channels, f"{name}_mean", edit.dialect, dtype)
    mean_raw["build_config"] = {"input_shape": list(shape)}
    mean = edit.add(mean_raw, [x], scope, weights=[kernel])
    sub = edit.add(make_layer("Subtract", {}, edit.dialect, f"{name}_centre", dtype=dtype),
                   [x, (mean, 0, 0)], scope)
    rms_raw = make_layer("RMSNormalization", {"axis": -1, "epsilon": eps}, edit.dialect, f"{name}_rms",
                         dtype=dtype, input_shape=shape)
    rms = edit.add(rms_raw, [(sub, 0, 0)], scope)
    edit.new_vars[(*scope, rms)] = _gamma(source, channels, scale)
    last = rms
    if center:
        beta = _beta(source, channels, scale)
        if rank == 4:
            dw = depthwise_1x1(f"{name}_beta", edit.dialect, dtype)
            dw["build_config"] = {"input_shape": list(shape)}
            last = edit.add(dw, [(rms, 0, 0)], scope)
            edit.new_vars[(*scope, last)] = beta((1, 1, channels, 1))
        elif rank == 3:
            dw = _depthwise_1d(f"{name}_beta", edit.dialect, dtype)
            dw["build_config"] = {"input_shape": list(shape)}
            last = edit.add(dw, [(rms, 0, 0)], scope)
            edit.new_vars[(*scope, last)] = beta((1, channels, 1))
        else:
            wide = [shape[0], 1, 1, channels]
            up = edit.add(make_layer("Reshape", {"target_shape": [1, 1, channels]}, edit.dialect,
                                     f"{name}_beta_4d", dtype=dtype, input_shape=shape), [(rms, 0, 0)], scope)
            dw = depthwise_1x1(f"{name}_beta", edit.dialect, dtype)
            dw["build_config"] = {"input_shape": wide}
            conv = edit.add(dw, [(up, 0, 0)], scope)
            edit.new_vars[(*scope, conv)] = beta((1, 1, channels, 1))
            last = edit.add(make_layer("Reshape", {"target_shape": [channels]}, edit.dialect, f"{name}_beta_2d",
                                       dtype=dtype, input_shape=wide), [(conv, 0, 0)], scope)
    edit.rewire((name, 0, 0), (last, 0, 0), scope)
    edit.remove(name, scope)
    edit.rename(mean, name, scope)
    out = edit.take_output_name(last, name, scope)
    steps = ["mean (1/C weights)", "Subtract", f"RMSNormalization(ε={eps:g}{', γ' if scale else ''})"]
    if center:
        steps.append("+β (1×1 depthwise conv)")
    return (f"LayerNormalization {name!r} → {', '.join(steps)} ({out!r}): the same values without the float NEG")


def _gamma(source, channels: int, scale: bool):
    import numpy as np

    def derive(read):
        if not scale:  # RMSNormalization always has a scale: ones (the original has no variable for it)
            return [np.ones(channels, np.float32)]
        found = read(source)
        if not found:  # a weights file without this layer's variables (an unbuilt case)
            return []
        gamma = np.asarray(found[0], np.float32)
        return [gamma.reshape(channels).copy()]
    return derive


def _beta(source, channels: int, scale: bool):
    import numpy as np

    def make(kernel_shape):
        def derive(read):
            found = read(source)
            if not found:
                return []
            beta = np.asarray(found[1] if scale else found[0], np.float32).reshape(channels)
            return [np.ones(kernel_shape, np.float32), beta.copy()]
        return derive
    return make
