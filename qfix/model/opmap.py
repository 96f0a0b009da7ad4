"""Which TFLite builtin ops a Keras activation or layer becomes after conversion.

Observed with TF 2.21's converter (full-int8 PTQ); used by the static rules to predict, before
any conversion, which layers a target cannot run. The verification step has the last word.
"""

from __future__ import annotations

# Keras activation name -> TFLite ops it lowers to (Keras 3 saves hard_swish as hard_silu).
ACTIVATION_OPS: dict[str, tuple[str, ...]] = {
    "relu": ("RELU",),
    "relu6": ("RELU6",),
    "sigmoid": ("LOGISTIC",),
    "tanh": ("TANH",),
    "softmax": ("SOFTMAX",),
    "swish": ("LOGISTIC", "MUL"),
    "silu": ("LOGISTIC", "MUL"),
    "hard_swish": ("HARD_SWISH",),
    "hard_silu": ("HARD_SWISH",),
    "hard_sigmoid": ("ADD", "RELU6", "MUL"),
    "leaky_relu": ("LEAKY_RELU",),
    "gelu": ("GELU",),
    "elu": ("ELU",),
    "selu": ("ELU", "MUL"),
    "exponential": ("EXP",),
    "softplus": ("EXP", "LOG", "ADD"),
    "softsign": ("ABS", "ADD", "DIV"),
    "mish": ("EXP", "LOG", "ADD", "TANH", "MUL"),
    "log_softmax": ("LOG_SOFTMAX",),
}

# Layers whose TFLite op carries an `activation=` as its fused_activation_function (TFLite
# schema ActivationFunctionType), and the activation ops the converter fuses that way: a
# Conv2D(activation="relu") becomes one CONV_2D with RELU fused, no RELU op (TF 2.21).
FUSING_LAYER_OPS: dict[str, str] = {
    "Conv1D": "CONV_2D",
    "Conv2D": "CONV_2D",
    "DepthwiseConv2D": "DEPTHWISE_CONV_2D",
    "SeparableConv2D": "CONV_2D",  # the pointwise half carries the activation
    "Dense": "FULLY_CONNECTED",
}
FUSABLE_ACTIVATION_OPS = frozenset({"RELU", "RELU6", "RELU_N1_TO_1"})

# Keras layer / op-node class -> TFLite ops that the target must have (the distinctive ones).
LAYER_OPS: dict[str, tuple[str, ...]] = {
    "LeakyReLU": ("LEAKY_RELU",),
    "ELU": ("ELU",),
    "MultiHeadAttention": ("BATCH_MATMUL", "SOFTMAX"),
    "Attention": ("BATCH_MATMUL", "SOFTMAX"),
    "AdditiveAttention": ("BATCH_MATMUL", "TANH", "SOFTMAX"),
    "GroupQueryAttention": ("BATCH_MATMUL", "SOFTMAX"),
    "Dot": ("BATCH_MATMUL",),
    "LayerNormalization": ("MEAN", "SQUARED_DIFFERENCE", "RSQRT"),
    "GroupNormalization": ("MEAN", "SQUARED_DIFFERENCE", "RSQRT"),
    "RMSNormalization": ("MEAN", "RSQRT"),
    "UnitNormalization": ("L2_NORMALIZATION",),
    "LSTM": ("UNIDIRECTIONAL_SEQUENCE_LSTM",),
    "GRU": ("WHILE",),
    "SimpleRNN": ("WHILE",),
    "RNN": ("WHILE",),  # a generic RNN over a cell
    "ConvLSTM1D": ("WHILE",),
    "ConvLSTM2D": ("WHILE",),
    "ConvLSTM3D": ("WHILE",),
    # A Bidirectional is keyed by the layer it wraps (layer_key): two passes and a REVERSE_V2
    # (the converter emits no BIDIRECTIONAL_SEQUENCE_LSTM for Keras models; TF 2.21).
    "Bidirectional(LSTM)": ("UNIDIRECTIONAL_SEQUENCE_LSTM", "REVERSE_V2"),
    "Bidirectional(GRU)": ("WHILE", "REVERSE_V2"),
    "Bidirectional(SimpleRNN)": ("WHILE", "REVERSE_V2"),
    "Bidirectional(RNN)": ("WHILE", "REVERSE_V2"),
    "Conv3D": ("CONV_3D",),
    "Conv1DTranspose": ("TRANSPOSE_CONV",),
    "Conv2DTranspose": ("TRANSPOSE_CONV",),
    "Embedding": ("GATHER",),
    "Resizing": ("RESIZE_BILINEAR",),
    "Discretization": ("BUCKETIZE",),
    "CategoryEncoding": ("ONE_HOT",),
    "Softmax": ("SOFTMAX",),
    # Masking.call: any(inputs != mask_value, axis=-1), then Keras 3 selects with where
    # (SELECT_V2); the converter keeps NOT_EQUAL in float in an int8 model (TF 2.21, seen).
    "Masking": ("NOT_EQUAL", "REDUCE_ANY", "SELECT_V2"),
    # Keras 3 keras.ops nodes
    "Matmul": ("BATCH_MATMUL",),
    "Einsum": ("BATCH_MATMUL",),
    "Erf": ("GELU",),
    "Exp": ("EXP",),
    "Divide": ("DIV",),
    "Argmax": ("ARG_MAX",),
    "Cumsum": ("CUMSUM",),
    "TopK": ("TOPK_V2",),
    "Cast": ("CAST",),
    # tf_keras TFOpLambda functions (config "function")
    "math.reduce_mean": ("MEAN",),
    "linalg.matmul": ("BATCH_MATMUL",),
    "math.exp": ("EXP",),
    "math.divide": ("DIV",),
    "math.argmax": ("ARG_MAX",),
    "math.cumsum": ("CUMSUM",),
    "cast": ("CAST",),
}


def layer_key(layer) -> str:
    """Key into LAYER_OPS: the class name, or the tf.* function of a TFOpLambda."""
    if layer.class_name == "TFOpLambda":
        return str(layer.config.get("function", ""))
    if layer.class_name == "Bidirectional":
        inner = layer.config.get("layer")
        return f"Bidirectional({inner.get('class_name') if isinstance(inner, dict) else None})"
    return layer.class_name


# Where a dialect lowers a layer differently (TF 2.21, all seen in converted models): Keras 3
# saves a rolled LSTM as a generic RNN loop, which converts to a WHILE (with STRIDED_SLICEs
# inside); tf_keras's LSTM converts to the fused UNIDIRECTIONAL_SEQUENCE_LSTM (with its defaults
# and no mask, fuses_lstm; otherwise it is a WHILE too, which this table does not tell apart).
DIALECT_LAYER_OPS: dict[str, dict[str, tuple[str, ...]]] = {
    "keras3": {
        "LSTM": ("WHILE",),
        "Bidirectional(LSTM)": ("WHILE", "REVERSE_V2"),
    },
    # tf_keras's Masking casts the boolean mask and multiplies by it instead of selecting.
    "tf_keras": {
        "Masking": ("NOT_EQUAL", "REDUCE_ANY", "CAST"),
    },
}


# A rolled tf_keras LSTM (also each pass of a Bidirectional) converts to the fused
# UNIDIRECTIONAL_SEQUENCE_LSTM, which full-integer quantization gives int8 activations and an
# int16 cell state (a variable tensor; TF 2.21, seen): a target runs it only when it runs the op
# and computes (or keeps as state) int16 tensors, as the op-by-op check judges it
# (qfix.targets.check: activation_dtypes, aux_dtypes, state_dtypes).
FUSED_LSTM_OP = "UNIDIRECTIONAL_SEQUENCE_LSTM"
FUSED_LSTM_STATE_DTYPE = "int16"


# tf_keras takes the fused path (the one the converter fuses) only for the defaults cuDNN has:
# tanh and sigmoid, a bias, no recurrent dropout (tf_keras lstm.py `_could_use_gpu_kernel`), and
# without a mask; otherwise its LSTM is a generic RNN loop, a WHILE (TF 2.21, seen: with
# activation="relu" and after a Masking layer the int8 calibration crashes like a GRU's).
FUSED_LSTM_DEFAULTS = {"activation": "tanh", "recurrent_activation": "sigmoid", "use_bias": True}
MASK_SOURCES = {"Masking": None, "Embedding": "mask_zero"}  # a layer that makes a mask (when its key is set)


def fuses_lstm(cfg: dict, masked: bool) -> bool:
    """A rolled tf_keras LSTM with config `cfg` converts to FUSED_LSTM_OP (else to a WHILE loop);
    `masked`: a mask reaches it (masked_input)."""
    return (not masked and all(cfg.get(k, v) == v for k, v in FUSED_LSTM_DEFAULTS.items())
            and not cfg.get("recurrent_dropout"))


def masked_input(graph, layer) -> bool:
    """A mask reaches `layer` (of `graph`): a Masking, or an Embedding with mask_zero, upstream,
    not consumed on the way by a recurrent layer that returns no sequence. Other layers are taken
    to pass the mask on (tf_keras raises for a layer that supports no masking)."""
    seen: set[str] = set()
    todo = [r.layer for r in layer.inputs]
    while todo:
        name = todo.pop()
        up = graph.layers.get(name)
        if name in seen or up is None:
            continue
        seen.add(name)
        if up.class_name in MASK_SOURCES and (MASK_SOURCES[up.class_name] is None
                                              or up.config.get(MASK_SOURCES[up.class_name])):
            return True
        if (up.class_name in _RECURRENT or up.class_name == "Bidirectional") and not returns_sequences(up):
            continue
        todo.extend(r.layer for r in up.inputs)
    return False


_RECURRENT = frozenset({"GRU", "LSTM", "SimpleRNN", "RNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D"})


def fused_lstm_cut(target) -> str | None:
    """Why `target` (a qfix.targets.Profile with a full-integer recipe) cannot run the fused
    integer LSTM a rolled tf_keras LSTM converts to, as a clause ("which ... does not run"), or
    None when it runs it (the int8 CPU, TFLM, Ethos-U)."""
    if not target.supports(FUSED_LSTM_OP):
        return f"which {target.name} does not run"
    dtypes = set(target.activation_dtypes) | set(target.aux_dtypes) | set(target.state_dtypes)
    if FUSED_LSTM_STATE_DTYPE not in dtypes:
        return (f"whose int8 kernel keeps its cell state in {FUSED_LSTM_STATE_DTYPE}, which {target.name} does not "
                f"compute (it computes in {'/'.join(target.activation_dtypes)})")
    return None


# What an unrolled recurrent layer (unroll=True: one cell per time step) lowers to, beyond the
# plain ops of its cell (FULLY_CONNECTED or CONV_2D, LOGISTIC, TANH, MUL, ADD, SPLIT, SPLIT_V,
# STRIDED_SLICE, PACK): the time steps are read with one UNPACK of the time-major input (both
# dialects' backend rnn() calls tf.unstack; TF 2.21 keeps it as UNPACK, also at batch 1: GRU,
# LSTM, go_backwards LSTM, Bidirectional(LSTM), ConvLSTM2D, reproduced), and a Bidirectional
# that returns sequences flips its backward pass back (Bidirectional.call: ops.flip /
# backend.reverse, a REVERSE_V2). go_backwards alone reverses the Python list of steps: no op.
# For a target without UNPACK, qfix's conversion slices the steps instead (steps_sliced).
UNROLLED_OPS = ("UNPACK",)
UNROLLED_BIDIRECTIONAL_SEQUENCE_OPS = ("REVERSE_V2",)


def steps_sliced(target) -> bool:
    """qfix's conversion reads an unrolled RNN's time steps with STRIDED_SLICE instead of UNPACK
    for a target (a qfix.targets.Profile) that runs the one and not the other
    (qfix.convert.unstack: exact)."""
    return not target.supports("UNPACK") and target.supports("STRIDED_SLICE")


def packs_off_batch(target) -> bool:
    """qfix's conversion stacks an unrolled RNN's returned sequence (a PACK on axis 0 of steps
    [1, ...]) on axis 1 and RESHAPEs it back, for a target (a qfix.targets.Profile) whose PACK
    refuses axis 0 and that runs RESHAPE (qfix.convert.unbatched_pack: exact)."""
    spec = target.op("PACK")
    if spec is None or not spec.supported or not target.supports("RESHAPE"):
        return False
    return any(r.predicate == "attr_not_in" and r.args.get("name") == "axis" and 0 in r.args.get("values", ())
               and r.severity == "blocker" for r in spec.constraints)


def splits_equal(target) -> bool:
    """qfix's conversion turns a SPLIT_V of equal sizes (tf_keras's GRU gates) into a SPLIT for a
    target (a qfix.targets.Profile) that runs the one and not the other (qfix.convert.equal_split:
    exact)."""
    return not target.supports("SPLIT_V") and target.supports("SPLIT")


def converted_ops(ops, target) -> tuple[str, ...]:
    """`ops` as qfix's conversion for `target` leaves them (steps_sliced: no UNPACK)."""
    if steps_sliced(target):
        ops = tuple(dict.fromkeys("STRIDED_SLICE" if op == "UNPACK" else op for op in ops))
    return tuple(ops)


# A rolled pass with go_backwards=True reverses its input first (tf.reverse: a REVERSE_V2);
# a rolled Bidirectional's entry (LAYER_OPS) already lists it.
ROLLED_BACKWARD_OPS = ("REVERSE_V2",)


def _recurrent_config(layer) -> tuple[bool, dict]:
    """(is a Bidirectional, the config of the recurrent layer it is or wraps)."""
    bi = layer.class_name == "Bidirectional"
    raw = layer.config.get("layer") if bi else layer.raw
    return bi, ((raw.get("config") or {}) if isinstance(raw, dict) else {})


def unrolled(layer) -> bool:
    """A recurrent layer (or the one a Bidirectional wraps) with unroll=True."""
    return bool(_recurrent_config(layer)[1].get("unroll"))


def returns_sequences(layer) -> bool:
    """A recurrent layer (or the one a Bidirectional wraps) with return_sequences=True: unrolled,
    it stacks its steps with one PACK on the time-major axis (tf.stack)."""
    return bool(_recurrent_config(layer)[1].get("return_sequences"))


def unrolled_ops(layer) -> tuple[str, ...]:
    """The distinctive ops of `layer` once unrolled (UNROLLED_OPS); the same whether or not it
    is unrolled yet, so that QF305's fix can say what remains after it."""
    bi, cfg = _recurrent_config(layer)
    return UNROLLED_OPS + (UNROLLED_BIDIRECTIONAL_SEQUENCE_OPS if bi and cfg.get("return_sequences") else ())


def layer_ops(layer, dialect: str) -> tuple[str, ...] | None:
    """The TFLite ops `layer` lowers to in `dialect` ("keras3" or "tf_keras"), None when
    LAYER_OPS does not know its class. An unrolled recurrent layer lowers to its unrolled ops."""
    key = layer_key(layer)
    ops = DIALECT_LAYER_OPS.get(dialect, {}).get(key, LAYER_OPS.get(key))
    if ops is None:
        return None
    if unrolled(layer):
        return unrolled_ops(layer)
    bi, cfg = _recurrent_config(layer)
    if not bi and cfg.get("go_backwards") and not set(ROLLED_BACKWARD_OPS) <= set(ops):
        return ops + ROLLED_BACKWARD_OPS
    return ops


def activations_of(layer) -> list[str]:
    """Activations the layer applies: its `activation` config, or the layer's own function."""
    acts = list(layer.activations())
    if layer.class_name == "Activation":
        return acts
    if layer.class_name == "ReLU":
        slope = layer.config.get("negative_slope") or 0
        return ["leaky_relu"] if slope else []
    return acts
