"""What tfmot 0.8's default 8-bit scheme does with each Keras layer class, and qfix's remedy.

The one table of QAT support (pure data, no TensorFlow). Derived from the installed tfmot source
(`default_8bit/default_8bit_quantize_registry.py`: `_LAYER_QUANTIZE_INFO` and the configs of
Activation / Conv2D / DepthwiseConv2D / Conv2DTranspose; `default_8bit_transforms.py`: the
BatchNormalization and SeparableConv folds; `quantize_aware_activation.py`: the activation
names) and checked against it: tests/rules/test_tfmot_registry.py (`-m tf`) builds a one-layer
tf_keras model per class, calls the real `quantize_model`, and asserts each row's claim (which
quantizers tfmot attaches, or the error it raises), so it fails when tfmot changes.

Keys are tf_keras class names; Keras 3 spells every class listed the same. A class not in the
table is not in tfmot's registry either: `quantize_model` rejects it (`supports()` is a lookup
by exact class, so a subclass of a supported layer is rejected too).

Users of the table:
- the model rules QF502 (`tfmot-rejected-layer`), QF503 (`activation-before-batchnorm`) and QF504
  (`tfmot-unsupported-activation`): `entry()`, `folds_batchnorm()`, `activation_remedy()`;
- `qfix.convert.qat_configs`, whose QuantizeConfig classes the `qconfig` fields name;
- the source side: QF205 (`qfix/rules/tfmot_unsupported_layer.py`) can look up the class of a
  layer constructor it resolves (`keras.layers.Multiply` → `entry("Multiply")`) and report a
  rejected layer with the same remedy text (`Entry.advice`) as the model side.
"""

from __future__ import annotations

from dataclasses import dataclass

# What tfmot does with a layer (Entry.tfmot).
QUANTIZED = "quantized"      # wrapped with quantizers: weights, its `activation`, and/or its output
SUPPORTED = "supported"      # accepted, wrapped without any quantizer (shape-only / identity layers)
TRANSFORMED = "transformed"  # accepted only as a layout transform rebuilds it (see `why`)
REJECTED = "rejected"        # quantize_model raises `error`

# qfix's remedy for a rejected layer (Entry.remedy; None: qfix knows no QAT route for it).
REWRITE = "rewrite"    # an exact structural rewrite into layers tfmot quantizes (Entry.rewrite)
ANNOTATE = "annotate"  # annotate with a QuantizeConfig qfix ships; checked: its op converts to integer
FLOAT = "float"        # annotate output-only; checked: its op stays float, the layers around it integer
KEEP_FLOAT = "keep-float"  # left out: not annotated, the rest annotated and quantize_apply'd (checked: trains)

# quantize_model's error for a class outside the registry (quantize.py), after
# "Layer <name>:<class '<module>.<Class>'> ".
NOT_SUPPORTED = ("is not supported. You can quantize this layer by passing a "
                 "`tfmot.quantization.keras.QuantizeConfig` instance to the `quantize_annotate_layer` API.")
# SeparableConv1D's transform rebuilds it around two Lambda layers, which tf_keras then refuses
# to deserialize in safe mode.
LAMBDA_REFUSED = "Requested the deserialization of a Lambda layer with a Python `lambda` inside it."

# qfix.convert.qat_configs. Even a layer left float is annotated output-only, not NoOp: checked,
# a NoOp layer leaves its reader without an input range, so the reader converts to float too.
OUTPUT_CONFIG = "OutputQuantizeConfig"


@dataclass(frozen=True)
class Entry:
    """One row. `weights` are the attributes tfmot fake-quantizes (kernel: per channel for
    Conv2D/DepthwiseConv2D, per tensor for Dense/Conv2DTranspose); `activation`: the layer's
    `activation` is wrapped (QuantizeAwareActivation); `output`: an 8-bit moving-average
    quantizer on the output."""

    tfmot: str
    weights: tuple[str, ...] = ()
    activation: bool = False
    output: bool = False
    config: str = ""  # tfmot's QuantizeConfig class for the layer ("" when rejected or transformed)
    error: str | None = None
    remedy: str | None = None
    rewrite: str | None = None  # qfix.model.rewrites.<name>
    qconfig: str | None = None  # qfix.convert.qat_configs.<name>
    why: str = ""

    @property
    def rejected(self) -> bool:
        return self.tfmot == REJECTED

    @property
    def advice(self) -> str:
        """The remedy in one line (a finding's fix text)."""
        if self.remedy == REWRITE:
            return f"rewrite it exactly ({self.rewrite}): {self.why}"
        if self.remedy == ANNOTATE:
            return f"annotate it with qfix's {self.qconfig}: {self.why}"
        if self.remedy == FLOAT:
            return f"annotate it with qfix's {self.qconfig}; it stays float: {self.why}"
        if self.remedy == KEEP_FLOAT:
            return (f"leave it float ({self.why}): qfix annotates the rest of the model and trains it with "
                    "quantize_apply")
        return f"no QAT route: {self.why}"


_D8 = "Default8BitQuantizeConfig"


def _q(weights=(), activation=False, output=False, config=_D8) -> Entry:
    return Entry(QUANTIZED, tuple(weights), activation, output, config)


def _s() -> Entry:
    return Entry(SUPPORTED, config=_D8)


def _rw(rewrite: str, why: str) -> Entry:
    return Entry(REJECTED, error=NOT_SUPPORTED, remedy=REWRITE, rewrite=rewrite, why=why)


def _ann(op: str) -> Entry:
    return Entry(REJECTED, error=NOT_SUPPORTED, remedy=ANNOTATE, qconfig=OUTPUT_CONFIG,
                 why=f"output-only; the converter quantizes its {op} from the ranges around it")


def _float(ops: str) -> Entry:
    return Entry(REJECTED, error=NOT_SUPPORTED, remedy=FLOAT, qconfig=OUTPUT_CONFIG,
                 why=f"its {ops} stays float (the converter has no range for its constants or no int8 kernel); "
                     "the output quantizer keeps the next layers integer")


def _keep_float(why: str) -> Entry:
    return Entry(REJECTED, error=NOT_SUPPORTED, remedy=KEEP_FLOAT, why=why)


def _none(why: str, error: str = NOT_SUPPORTED) -> Entry:
    return Entry(REJECTED, error=error, why=why)


_RNN = "tfmot has no QAT recipe for recurrent layers (commented out of its registry); use int8 PTQ"

LAYERS: dict[str, Entry] = {
    # Weighted layers tfmot quantizes.
    "Dense": _q(["kernel"], activation=True),
    "Conv2D": _q(["kernel"], activation=True, config="Default8BitConvQuantizeConfig"),
    "DepthwiseConv2D": _q(["depthwise_kernel"], activation=True, config="Default8BitConvQuantizeConfig"),
    "Conv2DTranspose": _q(["kernel"], activation=True, config="Default8BitConvTransposeQuantizeConfig"),
    "SeparableConv2D": Entry(TRANSFORMED, why="split into DepthwiseConv2D + Conv2D, both quantized"),
    "BatchNormalization": Entry(
        TRANSFORMED, error=NOT_SUPPORTED, remedy=REWRITE, rewrite="batchnorm_as_depthwise",
        why="folded only right after a Conv2D/DepthwiseConv2D/Dense whose activation is linear; anywhere else "
            "rejected, and folded by qfix into a 1×1 DepthwiseConv2D (the same affine map)"),
    # Activations, merges and pooling with an output quantizer.
    "ReLU": _q(output=True),
    "LeakyReLU": _q(output=True),
    "Softmax": _q(),
    "Activation": _q(output=True, config="Default8BitActivationQuantizeConfig"),
    "Add": _q(output=True),
    "Concatenate": _q(output=True),
    "UpSampling2D": _q(output=True),
    "AveragePooling1D": _q(output=True),
    "AveragePooling2D": _q(output=True),
    "GlobalAveragePooling1D": _q(output=True),
    "GlobalAveragePooling2D": _q(output=True),
    "GlobalAveragePooling3D": _q(output=True),
    # Accepted without quantizers: they move values, the converter keeps their ranges.
    **{c: _s() for c in (
        "Cropping1D", "Cropping2D", "Cropping3D", "ZeroPadding1D", "ZeroPadding2D", "ActivityRegularization",
        "Dropout", "Flatten", "Permute", "Reshape", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
        "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D", "MaxPooling2D")},
    # Rejected, with an exact rewrite.
    "Conv1D": _rw("conv1d_as_conv2d", "Reshape → Conv2D(1×k) → Reshape, the kernel reshaped (TFLite runs a "
                                      "Conv1D as that CONV_2D anyway)"),
    "DepthwiseConv1D": _rw("conv1d_as_conv2d", "Reshape → DepthwiseConv2D(1×k) → Reshape, the kernel reshaped"),
    "MaxPooling1D": _rw("pool1d_as_pool2d", "Reshape → MaxPooling2D(1×p) → Reshape"),
    # Annotated output-only its SUB + MUL stay float (no range for the constants), at the input of
    # the model at that: folded instead.
    "Normalization": _rw("normalization_as_depthwise", "a 1×1 DepthwiseConv2D with kernel 1/√σ², bias −μ/√σ² "
                                                       "(the same affine map)"),
    # Rejected; annotated output-only, the op converts to its integer kernel (checked).
    "Rescaling": _ann("MUL"),
    "Multiply": _ann("MUL"),
    "Subtract": _ann("SUB"),
    "Maximum": _ann("MAXIMUM"),
    "Minimum": _ann("MINIMUM"),
    "PReLU": _ann("PRELU"),
    "Resizing": _ann("RESIZE_BILINEAR"),
    "UpSampling1D": _ann("SPLIT/CONCATENATION"),
    "RepeatVector": _ann("TILE"),
    "UnitNormalization": _ann("L2_NORMALIZATION"),
    "GaussianNoise": _ann("nothing (an identity at inference)"),
    "GaussianDropout": _ann("nothing (an identity at inference)"),
    # Rejected; annotated output-only, the op stays float between integer neighbours (checked).
    "LayerNormalization": _float("MEAN/RSQRT/MUL/ADD"),
    "ELU": _float("ELU"),
    "Average": _float("ADD + MUL"),
    # Rejected, and no QuantizeConfig route: left out of the annotated model, as the hub layer
    # of a plain SavedModel is (qfix.model.rewrites.annotate_float_part). Checked, TF 2.21 / tfmot
    # 0.8: quantize_apply clones it as it is, the model trains one step and converts; its
    # BATCH_MATMUL / SOFTMAX / FULLY_CONNECTED ops stay float in the .tflite.
    "MultiHeadAttention": _keep_float("tfmot's 8-bit registry has no MultiHeadAttention: QuantizeAnnotate cannot "
                                      "wrap it (its call takes query and value) and its EinsumDense kernels get "
                                      "no fake-quant"),
    # Rejected; no route qfix has checked.
    "SeparableConv1D": _none("tfmot's own transform rebuilds it around Lambda layers that tf_keras refuses to load",
                             error=LAMBDA_REFUSED),
    "EinsumDense": _none("no QuantizeConfig for an einsum kernel in tfmot"),
    "Attention": _none("a matmul of two activations: no QAT recipe"),
    "Dot": _none("a matmul of two activations: no QAT recipe"),
    "Conv3D": _none("3-D convolution: no QAT recipe"),
    "Conv1DTranspose": _none("not in tfmot's registry; no rewrite shipped yet"),
    "LSTM": _none(_RNN), "GRU": _none(_RNN), "SimpleRNN": _none(_RNN), "Bidirectional": _none(_RNN),
    "TimeDistributed": _none("a wrapper tfmot does not look into"),
    "LocallyConnected1D": _none("unshared kernels: no QAT recipe"),
    "LocallyConnected2D": _none("unshared kernels: no QAT recipe"),
    "ThresholdedReLU": _none("not in tfmot's registry"),
    "GroupNormalization": _none("not in tfmot's registry"),
    "CenterCrop": _none("preprocessing: move it into the input pipeline"),
    "Masking": _none("masks are not quantized"),
    "Embedding": _none("an integer lookup; tfmot leaves it out of its registry"),
    "MaxPooling3D": _none("3-D pooling: no QAT recipe"),
    "AveragePooling3D": _none("3-D pooling: no QAT recipe"),
    "ZeroPadding3D": _none("not in tfmot's registry"),
    "UpSampling3D": _none("not in tfmot's registry"),
}

# Layers BatchNormalization folds into (default_8bit_transforms: Conv2DBatchNormQuantize,
# DenseBatchNormQuantize): the pattern requires `activation == "linear"` on them.
BN_FOLDS_INTO = frozenset({"Conv2D", "DepthwiseConv2D", "Dense"})

# String activations. On a quantized layer (`activation=` of Dense/Conv2D/DepthwiseConv2D/
# Conv2DTranspose) tfmot wraps it in QuantizeAwareActivation, which knows only these
# (_PRE_QUANT | _POST_QUANT; tf_keras "silu" deserializes to its swish function):
LAYER_ACTIVATIONS = frozenset({"linear", "relu", "swish", "silu", "gelu", "softmax", "sigmoid", "tanh"})
# In an `Activation` layer, Default8BitActivationQuantizeConfig knows these (relu6 included):
ACTIVATION_LAYER = frozenset({"linear", "relu", "relu6", "swish", "silu", "gelu", "softmax", "sigmoid", "tanh"})
LAYER_ACTIVATION_ERROR = ("Only some Keras activations under `keras.activations` are supported. For other "
                          "activations, use `Quantizer` directly, and update layer config using `QuantizeConfig`.")
ACTIVATION_LAYER_ERROR = "Activation <function {name} at 0x...> not supported by Default8BitActivationQuantizeConfig."
# The layer an activation split off its layer becomes (exact). relu6 → ReLU(6.0), which tfmot
# quantizes and the converter fuses; any other becomes an Activation layer of the same name,
# annotated output-only when tfmot refuses it there too.
SPLIT_AS = {"relu6": ("ReLU", {"max_value": 6.0, "negative_slope": 0.0, "threshold": 0.0})}
# Accepted on a layer, but the converter then leaves the layer's op and the activation float
# (checked: Conv2D(activation="swish") → float CONV_2D, LOGISTIC, MUL: swish is quantized only
# after it, the conv's own output gets no range). As an `Activation` after a linear layer the
# same graph converts to integer CONV_2D, LOGISTIC, MUL: QF504 splits it off (a warning).
FLOAT_WHEN_FUSED = frozenset({"swish", "silu"})
# Layers whose `activation` tfmot wraps (the others are rejected or have none).
ACTIVATED = frozenset({"Dense", "Conv2D", "DepthwiseConv2D", "Conv2DTranspose"})


def kept_float(class_name: str) -> bool:
    """`--mode qat` leaves layers of this class float, unannotated (Entry.remedy KEEP_FLOAT)."""
    return entry(class_name).remedy == KEEP_FLOAT


def entry(class_name: str) -> Entry:
    """The row for a class; a class outside the table is rejected, with no remedy qfix knows."""
    return LAYERS.get(class_name) or _none(f"{class_name} is not in tfmot's registry")


def folds_batchnorm(class_name: str | None, activation: str | None) -> bool:
    """Whether a BatchNormalization right after a `class_name` layer with `activation` is folded
    by tfmot's transforms (else quantize_model rejects the BatchNormalization)."""
    return class_name in BN_FOLDS_INTO and activation in (None, "linear")


def layer_activation_ok(name: str | None) -> bool:
    """Whether tfmot accepts `activation=name` on a layer it quantizes."""
    return name is None or name in LAYER_ACTIVATIONS


def activation_layer_ok(name: str | None) -> bool:
    """Whether tfmot accepts `Activation(name)`."""
    return name is None or name in ACTIVATION_LAYER


# Activations tfmot refuses everywhere whose op converts to an integer kernel once an Activation
# layer carrying it is annotated output-only (checked: LEAKY_RELU int8); the others (elu,
# hard_sigmoid, softplus, ...) stay float between quantized neighbours.
INTEGER_WHEN_ANNOTATED = frozenset({"leaky_relu"})


def activation_qconfig(name: str | None) -> str:
    """The QuantizeConfig for an `Activation(name)` tfmot refuses: output-only, so the layers
    around it stay integer even where the activation itself stays float."""
    return OUTPUT_CONFIG
