"""Split an activation tfmot refuses off its layer (QF504 tfmot-unsupported-activation, exact).

tfmot wraps the `activation` of a Dense/Conv2D/DepthwiseConv2D/Conv2DTranspose in a
QuantizeAwareActivation that knows only linear, relu, swish, gelu, softmax, sigmoid and tanh;
anything else (relu6, elu, hard_sigmoid, leaky_relu, ...) makes `quantize_model` raise "Only
some Keras activations under `keras.activations` are supported" (errors.md B9). The layer
becomes linear and the activation follows as its own layer: `ReLU(max_value=6.0)` for relu6
(quantized by tfmot; the converter fuses it back into the conv), `Activation(name)` otherwise.
swish/silu, which tfmot accepts on the layer but which then converts to float, are split the
same way (an `Activation("swish")` converts to integer). An `Activation` tfmot refuses too is annotated with qfix's OutputQuantizeConfig
(`annotate_quantize`; tf_keras configs only: in a Keras 3 config it is annotated once the model
is translated). f(act(z)) computed as act(f(z)) by two layers: the float outputs are identical.
"""

from __future__ import annotations

from qfix.model import tfmot_registry as reg
from qfix.model.config import activation_name, policy_name
from qfix.model.edit import EditError, ModelEdit, make_layer
from qfix.model.rewrites.annotate_quantize import wrap

SPLITTABLE = reg.ACTIVATED | {"SeparableConv2D"}  # tfmot rebuilds a SeparableConv2D as a Conv2D with its activation


def split_activation(edit: ModelEdit, scope: tuple[str, ...], name: str) -> str:
    """`name` is a Dense/Conv2D/DepthwiseConv2D/Conv2DTranspose/SeparableConv2D whose activation
    tfmot refuses."""
    raw = edit.layer(name, scope)
    cls = raw.get("class_name")
    act = activation_name(raw)
    if cls not in SPLITTABLE:
        raise EditError(f"{name!r} ({cls}) is not a layer whose activation tfmot wraps")
    if reg.layer_activation_ok(act) and act not in reg.FLOAT_WHEN_FUSED:
        raise EditError(f"tfmot accepts {act!r} on {name!r}")
    cfg = raw["config"]
    dtype = policy_name(cfg.get("dtype")) or "float32"
    if act in reg.SPLIT_AS:
        new_cls, new_cfg = reg.SPLIT_AS[act]
    else:
        new_cls, new_cfg = "Activation", {"activation": act}
    shape = edit.tensor_meta((name, 0, 0), scope)[0]
    layer = make_layer(new_cls, dict(new_cfg), edit.dialect, f"{name}_{act}", dtype=dtype,
                       input_shape=shape if isinstance(shape, list) else None)
    cfg["activation"] = "linear"
    new = edit.insert_after((name, 0, 0), layer, scope)
    new = edit.take_output_name(new, name, scope)
    note = f"{act} of {cls} {name!r} → {new_cls} {new!r} after it (the layer is linear now)"
    if new_cls == "Activation" and not reg.activation_layer_ok(act) and edit.dialect == "tf_keras":
        qconfig = reg.activation_qconfig(act)
        wrap(edit, scope, new, qconfig)
        note += f", annotated with qfix's {qconfig}"
    return note
