"""Give a layer whose TensorFlow kernels take float only the float tensor it needs (QF106
integer-into-float-kernel).

Keras 3 lets an integer tensor (a uint8 frame) reach a `Conv2D` and saves the model, but
TensorFlow's convolution (and sigmoid, softmax, PReLU, ...) kernels take float only: tracing
the model for conversion fails. When the integer tensor is a model input whose values the
layer reads unchanged, the cast folds into the input (`fold_input_cast`: the input becomes
float32, the TFLite input stays the raw integer frame through qfix's integer-I/O recipe);
otherwise an explicit cast to float32 is inserted before the layer, for it alone
(`insert_casts`). float32 holds every 8- and 16-bit integer exactly: the values the layer
reads are the integers it was given.
"""

from __future__ import annotations

from qfix.model.edit import EditError, ModelEdit
from qfix.model.graph import (VALUE_PRESERVING, Graph, Layer, TensorRef, integer_sources, is_integer,
                              preserves_values, tensor_dtype)
from qfix.model.rewrites._shared import graph_of
from qfix.model.rewrites.fold_input_cast import fold_input_cast
from qfix.model.rewrites.mixed_merge_cast import insert_casts

# Keras 3 layers that fail on an integer input under TensorFlow (measured with Keras 3.x and
# TF 2.x: a uint8 and an int32 input each, tf.function-traced): their kernels take float only.
# Measured again with Keras 3.15 / TF 2.21, a uint8, int8, int16 and int32 input into the layer
# alone: `model(x)` raises and qfix's Edge TPU conversion fails ("DataType uint8 not in list of
# allowed values"), also for AveragePooling1D/2D/3D ('value' of AvgPool), ELU and
# UnitNormalization; tf_keras refuses the same models when they are built, but for
# UnitNormalization, which casts there (`dialects`: where the entry holds)
FLOAT_KERNELS = {
    "Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D",
    "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose", "PReLU", "Softmax",
    "AveragePooling1D", "AveragePooling2D", "AveragePooling3D", "ELU",
}
FLOAT_KERNELS_KERAS3 = {"UnitNormalization"}
# tf_keras layers that take the mean of an integer tensor in its integer type, truncated
# (measured, tf_keras 2.21 / TF 2.21: GlobalAveragePooling2D of uint8 gives 55 where the float
# mean is 55.33). The TFLite converter refuses that MEAN for int8 and int16 ("'tf.Mean' op is
# neither a custom op nor a flex op") and leaves the uint8 one outside the integer model (a uint8
# MEAN, then a CAST). Keras 3's cast first (QF102's implicit casts).
TRUNCATING_MEANS_TF_KERAS = {"GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D"}
# Keras 3 layers that TensorFlow runs on an integer tensor, but whose integer op the TFLite
# converter has no builtin for, by the tensor's dtype (measured, Keras 3.15 / TF 2.21, each layer
# on a uint8, int8, int16, uint16 and int32 input, qfix's int8 recipe: "'tf.SelectV2' /
# 'tf.Transpose' op is neither a custom op nor a flex op"). Masking selects among the integers;
# the RNNs transpose their input to time-major first, rolled or unrolled. tf_keras refuses an
# integer Masking when the model is built.
UNCONVERTED_INTEGER_OPS_KERAS3 = {
    "Masking": ("SelectV2", frozenset({"uint8", "uint16"})),
    "GRU": ("Transpose", frozenset({"int16", "uint16"})),
    "LSTM": ("Transpose", frozenset({"int16", "uint16"})),
    "SimpleRNN": ("Transpose", frozenset({"int16", "uint16"})),
    "Bidirectional": ("Transpose", frozenset({"int16", "uint16"})),  # its forward and backward RNNs
}
# activations that run on integers and hand them on as integers (Keras 3.15: a uint8 input gives
# a uint8 output); `Activation(...)` with one of CASTING_ACTIVATIONS casts the integer input to
# float itself (a float32 output and, converted, a CAST op: QF102's implicit casts), with any
# other (sigmoid, softmax, gelu, swish, silu, elu, selu, softplus, softsign, hard_sigmoid,
# hard_silu, mish, log_softmax: measured) it is a float kernel too
INTEGER_ACTIVATIONS = {None, "linear", "relu", "relu6"}
CASTING_ACTIVATIONS = {"tanh", "leaky_relu", "exponential"}


# Layers whose TensorFlow kernels hand on an integer tensor as an integer, though Keras 3's
# symbolic pass records their output as float32 (a uint8 frame max-pooled stays uint8): the
# single-input value-preserving layers, max pooling, ReLU, dropout and Masking
KEEPS_INTEGERS = (VALUE_PRESERVING - {"Concatenate"}) | {
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
    "ReLU", "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
    "Masking",  # zeroes the masked steps: an int16 Masking hands int16 on to its RNN (second review)
}


# Merges TensorFlow runs on integers, handing on an integer when every input is the same integer
# dtype (measured with Keras 3 under TensorFlow: two uint8 tensors give uint8; Keras 3 records
# float32). Concatenate, Maximum and Minimum hand on their inputs' values, which float32 copies
# give exactly; Add, Subtract and Multiply compute in the integer type, which wraps (uint8:
# 200 + 100 = 44), where float32 copies give the true sum. Average adds in the integer type
# (wrapping the same way) and then divides: a float result (uint8 200, 100 give 22.0).
INTEGER_MERGES = {"Concatenate", "Maximum", "Minimum"}
WRAPPING_MERGES = {"Add", "Subtract", "Multiply"}

# Merges of integer tensors the TFLite converter cannot convert on their own, whatever follows
# them, by the inputs' integer dtype (measured with Keras 3.15, TF 2.21, qfix's recipes for the
# Edge TPU and int8, a merge alone and into a Dense: "'tf.AddV2' / 'tf.BiasAdd' / 'tf.Sub' /
# 'tf.Mul' / 'tf.Maximum' / 'tf.Minimum' / 'tf.ConcatV2' op is neither a custom op nor a flex
# op"; uint64 fails earlier, at the merge's own 'tf.Cast'). What converts: Subtract, Maximum and
# Minimum of int32 and int64; Multiply of int16, int32, uint32 and int64; Concatenate except of
# uint16 and uint64; Dot of every measured type but uint64. Average wraps as Add does before
# it divides.
_EIGHT_BIT = frozenset({"uint8", "int8"})
UNCONVERTED_MERGES = {
    "Add": _EIGHT_BIT | {"uint16", "int16", "int32", "uint32", "int64", "uint64"},
    "Average": _EIGHT_BIT | {"uint16", "int16", "int32", "uint32", "int64", "uint64"},
    "Subtract": _EIGHT_BIT | {"uint16", "int16", "uint32", "uint64"},
    "Multiply": _EIGHT_BIT | {"uint16", "uint64"},
    "Maximum": _EIGHT_BIT | {"uint16", "int16", "uint32", "uint64"},
    "Minimum": _EIGHT_BIT | {"uint16", "int16", "uint32", "uint64"},
    "Concatenate": frozenset({"uint16", "uint64"}),
}


def _merge_of_integers(layer: Layer) -> bool:
    return (layer.class_name in INTEGER_MERGES | WRAPPING_MERGES and len(layer.inputs) > 1
            and len(layer.calls) == 1 and layer.subgraph is None)


def _keeps_integers(layer: Layer) -> bool:
    """TensorFlow's kernel for `layer` hands on an integer tensor as an integer (same values)."""
    if layer.class_name == "UpSampling2D":
        return layer.config.get("interpolation", "nearest") == "nearest"
    if layer.class_name == "Activation":
        return layer.config.get("activation") in INTEGER_ACTIVATIONS
    return layer.class_name in KEEPS_INTEGERS


def runtime_dtype(graph: Graph, ref: TensorRef, depth: int = 0) -> str | None:
    """The dtype TensorFlow gives the tensor `ref`: the recorded one, or an integer dtype that
    reaches it unchanged through layers that keep integers, whose recorded float32 is only
    Keras 3's symbolic guess."""
    recorded = tensor_dtype(graph, ref)
    src = graph.layers.get(ref.layer)
    if is_integer(recorded) or depth > 64 or src is None or src.is_input or src.subgraph is not None or not src.inputs:
        return recorded
    if _keeps_integers(src):
        inner = runtime_dtype(graph, src.inputs[0], depth + 1)
        if is_integer(inner):
            return inner
    if _merge_of_integers(src):
        inner = {runtime_dtype(graph, r, depth + 1) for r in src.inputs}
        if len(inner) == 1 and is_integer(d := inner.pop()):
            return d
    return recorded


def hands_on_integers(layer: Layer) -> bool:
    """`layer` passes an integer tensor's values on unchanged and as integers: it joins or moves
    them (`preserves_values`), picks among them (Maximum, Minimum), or it is a single-input layer
    whose kernel keeps integers. On float32 copies of its inputs it computes the same values."""
    return (preserves_values(layer) or (_merge_of_integers(layer) and layer.class_name in INTEGER_MERGES)
            or (_keeps_integers(layer) and len(layer.inputs) == 1 and len(layer.calls) == 1
                and layer.subgraph is None))


def _computes_on_integers(layer: Layer) -> bool:
    """`layer` hands on integers (`hands_on_integers`) or computes integer arithmetic on them
    (Add, Subtract, Multiply), which float32 copies compute without wrapping."""
    return hands_on_integers(layer) or _merge_of_integers(layer)


def wrapping_merges(graph: Graph, layer: Layer) -> list[Layer]:
    """The integer Add, Subtract and Multiply merges whose result `layer` reads (through layers
    that hand on integers): folding the inputs' cast above them computes the true sums, not the
    wrapped integer ones TensorFlow gives."""
    if integer_sources(graph, layer, through=hands_on_integers) is not None:
        return []
    found: dict[str, Layer] = {}

    def visit(refs, depth: int) -> None:
        for ref in refs:
            src = graph.layers.get(ref.layer)
            if src is None or src.is_input or depth > 64 or not _computes_on_integers(src):
                continue
            if _merge_of_integers(src) and src.class_name in WRAPPING_MERGES:
                found[src.name] = src
            visit(src.inputs, depth + 1)

    if integer_sources(graph, layer, through=_computes_on_integers) is not None:
        visit(layer.inputs, 0)
    return list(found.values())


def merges_above(graph: Graph, layer: Layer) -> set[str]:
    """The merges of integer tensors whose result `layer` reads through layers that hand on or
    compute integers, when every tensor it reads comes so from model inputs exact in float32:
    the merges `float_inputs`' fold makes compute in float32 for `layer`."""
    if integer_sources(graph, layer, through=_computes_on_integers) is None:
        return set()
    found: set[str] = set()

    def visit(refs, depth: int) -> None:
        for ref in refs:
            src = graph.layers.get(ref.layer)
            if src is None or src.is_input or depth > 64 or src.name in found:
                continue
            if _merge_of_integers(src):
                found.add(src.name)
            visit(src.inputs, depth + 1)

    visit(layer.inputs, 0)
    return found


def unconverted_merge(graph: Graph, layer: Layer) -> str | None:
    """The integer dtype of `layer`'s inputs when it is a merge of integer tensors (all of that
    dtype when TensorFlow runs it) that the TFLite converter cannot convert (UNCONVERTED_MERGES)."""
    if (layer.class_name not in UNCONVERTED_MERGES or len(layer.inputs) < 2 or len(layer.calls) != 1
            or layer.subgraph is not None):
        return None
    dtypes = {runtime_dtype(graph, r) for r in layer.inputs}
    if len(dtypes) == 1 and (d := dtypes.pop()) in UNCONVERTED_MERGES[layer.class_name]:
        return d
    return None


def integer_refs(graph: Graph, layer: Layer) -> list[tuple[TensorRef, str]]:
    """The tensors `layer` reads that are integers when TensorFlow runs it, with their dtypes."""
    out = []
    for r in layer.inputs:
        d = runtime_dtype(graph, r)
        if is_integer(d):
            out.append((r, d))
    return out


def needs_float(layer: Layer, dialect: str = "keras3") -> bool:
    """`layer`'s TensorFlow kernels take float only (see FLOAT_KERNELS), in `dialect`, or it
    takes a truncated integer mean TFLite cannot keep in the integer model (`truncating_mean`)."""
    if layer.class_name == "Activation":
        act = layer.config.get("activation")
        return isinstance(act, str) and act not in INTEGER_ACTIVATIONS | CASTING_ACTIVATIONS
    return (layer.class_name in FLOAT_KERNELS or (dialect == "keras3" and layer.class_name in FLOAT_KERNELS_KERAS3)
            or truncating_mean(layer, dialect))


def unconverted_integer_op(graph: Graph, layer: Layer) -> str | None:
    """The TensorFlow op (UNCONVERTED_INTEGER_OPS_KERAS3) that the TFLite converter cannot
    convert for the integer tensor `layer` reads, or None."""
    if graph.dialect != "keras3" or layer.class_name not in UNCONVERTED_INTEGER_OPS_KERAS3:
        return None
    op, dtypes = UNCONVERTED_INTEGER_OPS_KERAS3[layer.class_name]
    return op if any(d in dtypes for _, d in integer_refs(graph, layer)) else None


def takes_no_integers(graph: Graph, layer: Layer) -> bool:
    """QF106's layers: `needs_float`, or an integer op TFLite lacks (`unconverted_integer_op`)."""
    return needs_float(layer, graph.dialect) or unconverted_integer_op(graph, layer) is not None


def truncating_mean(layer: Layer, dialect: str) -> bool:
    """`layer` takes the mean of an integer input in the integer type (TRUNCATING_MEANS_TF_KERAS)."""
    return dialect == "tf_keras" and layer.class_name in TRUNCATING_MEANS_TF_KERAS


def float_kernel_cast(edit: ModelEdit, scope: tuple[str, ...], name: str) -> str:
    """`name` is a float-kernel layer that reads an integer tensor."""
    graph = graph_of(edit, scope)
    layer = graph.layers.get(name)
    if layer is None or not takes_no_integers(graph, layer):
        raise EditError(f"{name!r} is not a layer with float-only kernels, an integer mean or an integer op "
                        "TFLite lacks")
    return float_inputs(edit, scope, graph, layer)


def float_inputs(edit: ModelEdit, scope: tuple[str, ...], graph: Graph, layer: Layer) -> str:
    """Make the integer tensors `layer` reads float32: fold the cast into the model inputs they
    come from, else insert explicit casts before `layer` alone."""
    name = layer.name
    ints = [r for r, _ in integer_refs(graph, layer)]
    if not ints:
        raise EditError(f"{name!r} reads no integer tensor")
    sources = integer_sources(graph, layer, through=_computes_on_integers)
    if sources:
        # inputs' values, kept by every layer on the way: the inputs themselves become float32
        # (a max pooling or a padding computes the same values on them), as QF102's fold does;
        # through an integer Add (`wrapping_merges`) the float sums are the unwrapped ones
        try:
            return "; ".join(fold_input_cast(edit, scope, s.name) for s in sources)
        except EditError:
            pass  # needed as an integer elsewhere (an Embedding): cast here, for this layer alone
    casts = insert_casts(edit, scope, name, ints, "float32")
    return f"explicit cast(s) {', '.join(map(repr, casts))} to float32 before {name!r}"


def fold_terms(exact: bool, wraps: list[Layer], wrapped: str) -> tuple[str, bool]:
    """What folding integers into float32 costs, for a finding's fix text (QF106, QF107): the
    suffix after its first clause, and whether the fold is safe. `exact`: float32 holds the
    integer type's values; `wraps`: the merges that then compute in float32 instead of wrapping
    around in the integer type (`wrapped` names that type in the text)."""
    via = ", ".join(f"{m.class_name} {m.name!r}" for m in wraps)
    text = (("" if exact else "; float32 rounds integers above 2**24")
            + (f"; {via} then compute{'s' if len(wraps) == 1 else ''} in float32, without the {wrapped} "
               "wrap-around" if wraps else ""))
    return text, exact and not wraps

