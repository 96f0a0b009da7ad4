"""QF106 integer-into-float-kernel: an integer tensor reaches a layer whose kernels take float only (model).

## What it does
Finds a layer whose TensorFlow kernels take float only (`Conv1D/2D/3D`, depthwise, separable
and transposed convolutions, `AveragePooling1D/2D/3D`, `PReLU`, `ELU`, `Softmax`, Keras 3's
`UnitNormalization`, an `Activation` other than relu, relu6, linear, and tanh, leaky_relu and
exponential, which cast to float themselves: QF102's) that reads an integer tensor: a `uint8`,
`int8`, `int16` or `uint16` model input, directly or through layers that keep integers in
TensorFlow (max pooling, padding, reshapes, and merges of integer tensors only: Concatenate,
Maximum, Minimum, Add, Subtract, Multiply), which Keras 3 records as float32. (An Average of
integers computes floats: nothing for this rule to report; such a merge that TFLite cannot
convert on its own is QF107's.) The layers were measured with Keras 3.15 and TF 2.21, each
alone on a uint8, int8, int16 and int32 input: the model does not run and qfix's Edge TPU
conversion fails; the table is `FLOAT_KERNELS` in `qfix/model/rewrites/float_kernel_cast.py`.
Also tf_keras's GlobalAveragePooling1D/2D/3D on an integer tensor, which TensorFlow runs but as
an integer mean (`TRUNCATING_MEANS_TF_KERAS` there; Keras 3's cast first: QF102's), and Keras 3
layers that TensorFlow runs on integers but whose integer op TFLite has no builtin for, by dtype
(`UNCONVERTED_INTEGER_OPS_KERAS3`): Masking on uint8 and uint16 (SelectV2), GRU, LSTM,
SimpleRNN and Bidirectional on int16 and uint16 (the Transpose to time-major), measured each
alone on a uint8, int8, int16, uint16 and int32 input; also behind a Masking, which hands the
integers on.

## Why is this bad?
Keras 3 builds and saves such a model (its symbolic shapes do not run the kernels), but
TensorFlow cannot trace it: the conversion fails with `Value passed to parameter 'input' has
DataType uint8 not in list of allowed values: float16, bfloat16, float32, float64`, which
names no layer. tf_keras refuses the same model when it is built.

tf_keras's GlobalAveragePooling takes the mean in the integer type, truncated (uint8 values
55.33 on average give 55). The TFLite converter has no integer builtin for that MEAN: for int8
and int16 the conversion fails with `'tf.Mean' op is neither a custom op nor a flex op`; for
uint8 it converts to a uint8 MEAN that outputs zeros whatever the input (measured with tf_keras
2.21 and LiteRT; the int8 model's outputs carried no signal, SQNR 0.0 dB), and a Dense after it
becomes a float CAST the integer targets do not run. The placement cannot show this: the finding
stays a blocker when every op runs on the target.

## Example
```python
frame = keras.Input((224, 224, 3), dtype="uint8")
x = keras.layers.Conv2D(16, 3)(frame)
# also: keras.layers.AveragePooling2D(2)(frame)  ('value' of AvgPool has DataType uint8 ...)
```

## Use instead
```python
frame = keras.Input((224, 224, 3))  # float input; converter.inference_input_type = tf.uint8
x = keras.layers.Conv2D(16, 3)(frame)
```

## Fix safety
Safe for 8- and 16-bit integers: float32 holds them exactly, so the layer reads the values it
was given (an average pooling of the float32 copies is the mean the model asked for). When the layer reads a model input's values unchanged the cast folds into the input
(the TFLite input stays the raw integer frame); otherwise an explicit cast is inserted before
the layer. Unsafe for 32- and 64-bit integers, which float32 rounds above 2**24. Unsafe through
an integer `Add`, `Subtract` or `Multiply` of the inputs: TensorFlow computes it in the integer
type, which wraps (uint8: 200 + 100 = 44), and the fold makes it compute in float32 (300), the
sum the model most likely meant but not the one it computed (`--unsafe-fixes` applies it).
Unsafe before tf_keras's GlobalAveragePooling for the same reason: the float mean it then takes
is less than 1 from the truncated one it took.

## Targets
Every target: the rule reads no property of the target's profile.
"""

from __future__ import annotations

from qfix.model import rewrites
from qfix.model.cases import functional_config, sequential_config
from qfix.model.graph import EXACT_IN_FLOAT32
from qfix.model.rewrites import Rewrite
from qfix.model.rewrites.float_kernel_cast import (fold_terms, integer_refs, takes_no_integers, truncating_mean,
                                                   unconverted_integer_op, wrapping_merges)
from qfix.rules.base import ModelCase, ModelRule
from qfix.types import Applicability


class IntegerIntoFloatKernel(ModelRule):
    """Model side of QF106 integer-into-float-kernel; documented once, in the module docstring
    (`qfix rule QF106`)."""

    code = "QF106"
    name = "integer-into-float-kernel"
    fix_applicability = Applicability.SAFE
    fails_conversion = True

    def check(self, graph, ctx):
        for path, layer in graph.walk():
            if layer.is_input:
                continue
            inner = graph
            for p in path:
                inner = inner.layers[p].subgraph
            if not takes_no_integers(inner, layer):
                continue
            tf_op = unconverted_integer_op(inner, layer)
            ints = [(r.layer, d) for r, d in integer_refs(inner, layer)]
            if not ints:
                continue
            read = ", ".join(f"{d} {n!r}" for n, d in ints)
            exact = all(d in EXACT_IN_FLOAT32 for _, d in ints)
            wraps = wrapping_merges(inner, layer)
            cost, safe = fold_terms(exact, wraps, "integer type's")
            what = ("TensorFlow's kernels for it take float only, so the conversion fails ('DataType ... not in "
                    "list of allowed values')")
            numeric = truncating_mean(layer, graph.dialect)  # a uint8 MEAN converts, and gives zeros
            if tf_op:
                what = (f"TensorFlow runs it on the integers, but TFLite has no builtin for its integer {tf_op}, so the "
                        f"conversion fails ('tf.{tf_op}' op is neither a custom op nor a flex op)")
            if numeric:
                what = ("tf_keras takes its mean in the integer type, truncated (1 and 2 give 1), which TFLite does "
                        "not keep in the integer model: the conversion fails for int8 and int16 ('tf.Mean' op is "
                        "neither a custom op nor a flex op); for uint8 it converts to a MEAN that outputs zeros, "
                        "and a float CAST before a Dense after it")
                cost, safe = cost + "; the mean is then the float mean, less than 1 from the truncated one", False
            yield self.violation(
                f"{layer.class_name} {layer.name!r} reads {read}: {what}",
                layer.name,
                fix="cast the integer tensor to float32 before it (folded into the input when it is one)" + cost,
                applicability=Applicability.SAFE if safe else Applicability.UNSAFE,
                pointer=layer.pointer,
                rewrite=Rewrite(rewrites.float_kernel_cast, path, layer.name),
                numeric=numeric,
            )

    CASES = [
        ModelCase(
            "uint8-input-into-conv",  # folded into the input: it becomes float32
            functional_config(
                [("frame", (None, 8, 8, 3), "uint8")],
                [("conv", "Conv2D", {"filters": 4, "kernel_size": 3}, ["frame"], "float32", (None, 6, 6, 4))],
                ["conv"],
            ),
            fires=True,
            count=1,
            expected={"name": "frame", "config": {"dtype": "float32"}},
        ),
        ModelCase(
            "sequential-uint8-into-depthwise",
            sequential_config(("frame", (1, 8, 8, 3), "uint8"),
                              [("dw", "DepthwiseConv2D", {"kernel_size": 3}, (1, 6, 6, 3))]),
            fires=True,
            count=1,
            expected={"class_name": "InputLayer", "config": {"name": "frame", "dtype": "float32"}},
        ),
        ModelCase(
            "uint8-ids-also-embedded",  # the Embedding needs the integers: an explicit cast for the conv
            functional_config(
                [("ids", (None, 8), "uint8")],
                [("emb", "Embedding", {"input_dim": 256, "output_dim": 4}, ["ids"], "float32", (None, 8, 4)),
                 ("col", "Reshape", {"target_shape": [8, 1]}, ["ids"], "uint8", (None, 8, 1)),
                 ("conv", "Conv1D", {"filters": 4, "kernel_size": 1}, ["col"], "float32", (None, 8, 4))],
                ["emb", "conv"],
            ),
            fires=True,
            count=1,
            expected=[("ids", "InputLayer"), ("col", "Reshape"), ("col_to_float32", "Cast"), ("emb", "Embedding"),
                      ("conv", "Conv1D")],  # in Keras's own layer order
        ),
        ModelCase(
            "tf-keras-uint8-global-average-pooled",  # a truncated uint8 mean: unsafe, folded into the input
            functional_config(
                [("frame", (None, 8, 8, 3), "uint8")],
                [("gap", "GlobalAveragePooling2D", {}, ["frame"], "uint8", (None, 3)),
                 ("head", "Dense", {"units": 2}, ["gap"], "float32", (None, 2))],
                ["head"],
            ),
            fires=True,
            count=1,
            dialect="tf_keras",
            expected={"name": "frame", "config": {"dtype": "float32"}},
        ),
        ModelCase(
            "keras3-uint8-masked",  # TFLite has no uint8 SelectV2: folded into the input
            functional_config(
                [("frame", (None, 6, 4), "uint8")],
                [("mask", "Masking", {"mask_value": 0.0}, ["frame"], "float32", (None, 6, 4)),
                 ("flat", "Flatten", {}, ["mask"], "float32", (None, 24))],
                ["flat"],
            ),
            fires=True,
            count=1,
            expected={"name": "frame", "config": {"dtype": "float32"}},
        ),
        ModelCase(
            "keras3-int8-masked",  # an int8 SelectV2 converts
            functional_config(
                [("frame", (None, 6, 4), "int8")],
                [("mask", "Masking", {"mask_value": 0.0}, ["frame"], "float32", (None, 6, 4)),
                 ("flat", "Flatten", {}, ["mask"], "float32", (None, 24))],
                ["flat"],
            ),
            fires=False,
        ),
        ModelCase(
            "keras3-uint8-global-average-pooled",  # Keras 3 casts first: QF102's implicit cast, not this rule's
            functional_config(
                [("frame", (None, 8, 8, 3), "uint8")],
                [("gap", "GlobalAveragePooling2D", {}, ["frame"], "float32", (None, 3)),
                 ("head", "Dense", {"units": 2}, ["gap"], "float32", (None, 2))],
                ["head"],
            ),
            fires=False,
        ),
        ModelCase(
            "uint8-pooled-recorded-float",  # Keras 3 records the pool's output as float32: it is uint8
            functional_config(
                [("frame", (None, 8, 8, 3), "uint8")],
                [("pool", "MaxPooling2D", {"pool_size": [2, 2]}, ["frame"], "float32", (None, 4, 4, 3)),
                 ("pad", "ZeroPadding2D", {"padding": [[1, 1], [1, 1]]}, ["pool"], "float32", (None, 6, 6, 3)),
                 ("conv", "Conv2D", {"filters": 4, "kernel_size": 1}, ["pad"], "float32", (None, 6, 6, 4))],
                ["conv"],
            ),
            fires=True,
            count=1,
            expected={"name": "frame", "config": {"dtype": "float32"}},  # max pooling and padding: same values
        ),
        ModelCase(
            "two-uint8-maximum-into-conv",  # Keras 3 records float32; TensorFlow's maximum keeps uint8
            functional_config(
                [("a", (None, 8, 8, 3), "uint8"), ("b", (None, 8, 8, 3), "uint8")],
                [("max", "Maximum", {}, ["a", "b"], "float32", (None, 8, 8, 3)),
                 ("conv", "Conv2D", {"filters": 4, "kernel_size": 1}, ["max"], "float32", (None, 8, 8, 4))],
                ["conv"],
            ),
            fires=True,
            count=1,
            expected={"layers": [{"name": "a", "config": {"dtype": "float32"}},
                                 {"name": "b", "config": {"dtype": "float32"}}, {"name": "max"}, {"name": "conv"}]},
        ),
        ModelCase(
            "two-uint8-added-pooled-into-conv",  # uint8 addition wraps: the fold is unsafe
            functional_config(
                [("a", (None, 8, 8, 3), "uint8"), ("b", (None, 8, 8, 3), "uint8")],
                [("add", "Add", {}, ["a", "b"], "float32", (None, 8, 8, 3)),
                 ("pool", "MaxPooling2D", {"pool_size": [2, 2]}, ["add"], "float32", (None, 4, 4, 3)),
                 ("conv", "Conv2D", {"filters": 4, "kernel_size": 1}, ["pool"], "float32", (None, 4, 4, 4))],
                ["conv"],
            ),
            fires=True,
            count=1,
            expected={"layers": [{"name": "a", "config": {"dtype": "float32"}},
                                 {"name": "b", "config": {"dtype": "float32"}}, {"name": "add"}, {"name": "pool"},
                                 {"name": "conv"}]},
        ),
        ModelCase(
            "two-uint8-averaged-into-conv",  # Average divides: a float into the conv (the Average is QF107's)
            functional_config(
                [("a", (None, 8, 8, 3), "uint8"), ("b", (None, 8, 8, 3), "uint8")],
                [("avg", "Average", {}, ["a", "b"], "float32", (None, 8, 8, 3)),
                 ("conv", "Conv2D", {"filters": 4, "kernel_size": 1}, ["avg"], "float32", (None, 8, 8, 4))],
                ["conv"],
            ),
            fires=False,
        ),
        ModelCase(
            "uint8-added-to-float-into-conv",  # a float sum: QF101's mixed merge, not this rule's
            functional_config(
                [("a", (None, 8, 8, 3), "uint8"), ("f", (None, 8, 8, 3), "float32")],
                [("add", "Add", {}, ["a", "f"], "float32", (None, 8, 8, 3)),
                 ("conv", "Conv2D", {"filters": 4, "kernel_size": 1}, ["add"], "float32", (None, 8, 8, 4))],
                ["conv"],
            ),
            fires=False,
        ),
        ModelCase(
            "uint8-averaged-into-conv",  # the average pooling fails first (AvgPool takes float only); the
            functional_config(                 # conv then reads its float output: one finding, the pool's
                [("frame", (None, 8, 8, 3), "uint8")],
                [("pool", "AveragePooling2D", {"pool_size": [2, 2]}, ["frame"], "float32", (None, 4, 4, 3)),
                 ("conv", "Conv2D", {"filters": 4, "kernel_size": 1}, ["pool"], "float32", (None, 4, 4, 4))],
                ["conv"],
            ),
            fires=True,
            count=1,
            expected={"name": "frame", "config": {"dtype": "float32"}},
        ),
        ModelCase(
            "uint8-into-sigmoid",
            functional_config(
                [("x", (None, 8), "uint8")],
                [("act", "Activation", {"activation": "sigmoid"}, ["x"], "float32", (None, 8))],
                ["act"],
            ),
            fires=True,
            count=1,
        ),
        ModelCase(
            "uint8-into-average-pooling",  # AvgPool takes float only (Keras 3.15 / TF 2.21: QF909 before)
            functional_config(
                [("frame", (None, 16, 16, 3), "uint8")],
                [("pool", "AveragePooling2D", {"pool_size": [2, 2]}, ["frame"], "float32", (None, 8, 8, 3)),
                 ("flat", "Flatten", {}, ["pool"], "float32", (None, 192)),
                 ("dense", "Dense", {"units": 2}, ["flat"], "float32", (None, 2))],
                ["dense"],
            ),
            fires=True,
            count=1,
            expected={"name": "frame", "config": {"dtype": "float32"}},
        ),
        ModelCase(
            "int16-into-unit-normalization",  # Keras 3's UnitNormalization takes float only
            functional_config(
                [("audio", (None, 8), "int16")],
                [("unit", "UnitNormalization", {"axis": [-1]}, ["audio"], "float32", (None, 8))],
                ["unit"],
            ),
            fires=True,
            count=1,
            expected={"name": "audio", "config": {"dtype": "float32"}},
        ),
        ModelCase(
            "int8-into-elu",
            functional_config(
                [("x", (None, 8), "int8")],
                [("elu", "ELU", {"alpha": 1.0}, ["x"], "float32", (None, 8))],
                ["elu"],
            ),
            fires=True,
            count=1,
        ),
        ModelCase(
            "uint8-tanh-into-conv",  # Keras 3's tanh casts to float itself (QF102's): the conv reads float
            functional_config(
                [("x", (None, 8, 8, 3), "uint8")],
                [("act", "Activation", {"activation": "tanh"}, ["x"], "float32", (None, 8, 8, 3)),
                 ("conv", "Conv2D", {"filters": 4, "kernel_size": 1}, ["act"], "float32", (None, 8, 8, 4))],
                ["conv"],
            ),
            fires=False,
        ),
        ModelCase(
            "uint8-into-relu",  # integer kernels exist: nothing to report
            functional_config(
                [("x", (None, 8), "uint8")],
                [("act", "Activation", {"activation": "relu"}, ["x"], "uint8", (None, 8))],
                ["act"],
            ),
            fires=False,
        ),
        ModelCase(
            "int32-into-dense",  # Dense promotes its input to float itself
            functional_config(
                [("x", (None, 8), "int32")],
                [("dense", "Dense", {"units": 2}, ["x"], "float32", (None, 2))],
                ["dense"],
            ),
            fires=False,
        ),
        ModelCase(
            "float-input-into-conv",
            functional_config(
                [("x", (None, 8, 8, 3), "float32")],
                [("conv", "Conv2D", {"filters": 4, "kernel_size": 3}, ["x"], "float32", (None, 6, 6, 4))],
                ["conv"],
            ),
            fires=False,
        ),
    ]
