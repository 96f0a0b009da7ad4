"""QF101 mixed-dtype-merge: a merge of an integer tensor with a float one (model and source).

## What it does
Model side: finds merge layers (Concatenate, Add, Multiply, ...) and keras.ops merges in a
`.keras` config whose inputs mix an integer tensor (a uint8 image, int32 ids) with a float one.

Source side: in model-building code, flags a merge (`Concatenate`, `Add`, `Multiply`, ...,
`layers.concatenate`, `tf.concat`, `keras.ops.concatenate`) of an integer tensor - a
`keras.Input(..., dtype="uint8")` or another integer dtype, possibly reshaped - with a float
one, and casts the integer operand explicitly.

## Why is this bad?
tf_keras (the Keras that tfmot needs) raises `TypeError: Tensors in list passed to 'values'
of 'ConcatV2' Op have types [uint8, float32] that don't all match.` Keras 3 promotes
silently, so the model trains, then fails when moved to tf_keras. After TFLite conversion the
hidden promotion is a CAST op with float DEQUANTIZE/QUANTIZE around it, which integer
accelerators cannot run (the Edge TPU cuts the graph there), and the integer values reach the
merge unscaled.

## Example
```python
image = keras.Input((32, 32, 3), dtype="uint8")
meta = keras.Input((4,))
x = keras.layers.Concatenate()([keras.layers.Flatten()(image), meta])
```
In a saved model: `Concatenate()([frame_uint8_flat, features_f32])`.

## Use instead
```python
x = keras.layers.Concatenate()([keras.ops.cast(keras.layers.Flatten()(image), "float32"), meta])
```
Better still: make the input float32, scale in the data pipeline (or `Rescaling(1/255)` at
the model boundary), and let the converter give the model uint8 I/O
(`converter.inference_input_type = tf.uint8`).

## Fix safety
Safe on both sides: the explicit cast is the one Keras 3 already did implicitly (same
float32 values), it has no weights, and in tf_keras the model did not build before.

## Targets
Every target: the rule reads no property of the target's profile.
"""

from __future__ import annotations

from typing import Any

import libcst as cst

from qfix.source.flavour import KERAS3
from qfix.source.names import last_name
from qfix.source.rule import Invalid, Replace, SourceRule, Valid
from qfix.source.util import arg, expr, string_value
from qfix.types import Applicability
from qfix.model import rewrites
from qfix.model.cases import functional_config
from qfix.model.rewrites import Rewrite
from qfix.model.rewrites.mixed_merge_cast import MERGES
from qfix.model.graph import is_float, is_integer, tensor_dtype
from qfix.rules.base import ModelCase, ModelRule

INT_DTYPES = {"int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"}
INPUTS = {"keras.Input", "keras.layers.Input"}
MERGE_LAYERS = {f"keras.layers.{n}" for n in ("Concatenate", "Add", "Multiply", "Subtract", "Average", "Maximum", "Minimum")}
MERGE_FUNCS = {f"keras.layers.{n}" for n in ("concatenate", "add", "multiply", "subtract", "average", "maximum", "minimum")} | {
    "tensorflow.concat", "keras.ops.concatenate", "keras.backend.concatenate", "tensorflow.math.add_n", "tensorflow.add_n",
}
MAYBE_INT = {f"keras.layers.{n}" for n in ("StringLookup", "IntegerLookup", "Hashing", "TextVectorization", "Discretization", "HashedCrossing")}
SHAPE_ONLY = {f"keras.layers.{n}" for n in ("Reshape", "Flatten", "Permute", "RepeatVector", "Cropping1D", "Cropping2D", "ZeroPadding1D", "ZeroPadding2D")}


class MixedDtypeMerge(SourceRule):
    """Source side of QF101 mixed-dtype-merge; documented once, in the module docstring
    (`qfix rule QF101`)."""

    code = "QF101"
    name = "mixed-dtype-merge"
    TRIGGERS = ("Input",)

    VALID = [
        Valid("import keras\na = keras.Input((4,), dtype='uint8')\nb = keras.Input((4,), dtype='uint8')\nx = keras.layers.Concatenate()([a, b])\n"),
        Valid("import keras\na = keras.Input((4,))\nb = keras.Input((4,))\nx = keras.layers.concatenate([a, b])\n"),
        Valid(
            "import keras\na = keras.Input((4,), dtype='uint8')\na = keras.layers.Rescaling(1 / 255)(a)\n"
            "b = keras.Input((4,))\nx = keras.layers.Concatenate()([a, b])\n"
        ),
        Valid("import keras\ntok = keras.Input((8,), dtype='int32')\ne = keras.layers.Embedding(100, 4)(tok)\nf = keras.Input((8, 4))\nx = keras.layers.Add()([e, f])\n"),
        Valid("import keras\na = keras.Input((1,), dtype='int64')\nb = keras.layers.IntegerLookup(vocabulary=[1, 2])(a)\nx = keras.layers.concatenate([a, b])\n"),
    ]
    INVALID = [
        Invalid(
            "import keras\na = keras.Input((4,), dtype='uint8')\nb = keras.Input((4,))\nx = keras.layers.Concatenate()([a, b])\n",
            expected="import keras\na = keras.Input((4,), dtype='uint8')\nb = keras.Input((4,))\nx = keras.layers.Concatenate()([keras.ops.cast(a, \"float32\"), b])\n",
            applicability=Applicability.SAFE,
        ),
        Invalid(
            "import tensorflow as tf\nfrom tensorflow.keras import layers\n"
            "img = tf.keras.Input((8, 8, 3), dtype=tf.uint8)\nflat = layers.Flatten()(img)\nmeta = layers.Input((4,))\n"
            "x = layers.concatenate([flat, meta])\n",
            # tensorflow.keras is Keras 3 here, which refuses tf.cast on its symbolic tensors
            expected="import tensorflow as tf\nfrom tensorflow.keras import layers\nimport keras\n\n"
            "img = tf.keras.Input((8, 8, 3), dtype=tf.uint8)\nflat = layers.Flatten()(img)\nmeta = layers.Input((4,))\n"
            "x = layers.concatenate([keras.ops.cast(flat, \"float32\"), meta])\n",
        ),
        Invalid(  # after the tfmot import tf.keras is tf_keras, where tf.cast is the spelling
            "import tensorflow as tf\nimport tensorflow_model_optimization as tfmot\n"
            "a = tf.keras.Input((4,), dtype='uint8')\nb = tf.keras.Input((4,))\nx = tf.keras.layers.Concatenate()([a, b])\n",
            expected="import tensorflow as tf\nimport tensorflow_model_optimization as tfmot\n"
            "a = tf.keras.Input((4,), dtype='uint8')\nb = tf.keras.Input((4,))\nx = tf.keras.layers.Concatenate()([tf.cast(a, tf.float32), b])\n",
        ),
        Invalid(
            "import tf_keras as keras\na = keras.Input((4,), dtype='int32')\nb = keras.layers.Dense(4)(keras.Input((3,)))\nx = keras.layers.Add()([b, a])\n",
            expected="import tf_keras as keras\nimport tensorflow as tf\n\na = keras.Input((4,), dtype='int32')\nb = keras.layers.Dense(4)(keras.Input((3,)))\nx = keras.layers.Add()([b, tf.cast(a, tf.float32)])\n",
        ),
    ]

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.kind: dict[tuple[Any, str], str] = {}  # (scope, name) -> "int" | "float"
        self.has_int = False

    def _scope(self) -> Any:
        return id(self.ctx.scope) if self.ctx.scope is not None else None

    def _value_kind(self, value: cst.BaseExpression) -> str | None:
        if isinstance(value, cst.Name):
            return self.kind.get((self._scope(), value.value)) or self.kind.get((None, value.value))
        if not isinstance(value, cst.Call):
            return None
        c = self.names.canon(value.func)
        if c in INPUTS:
            d = arg(value, None, "dtype")
            if d is None:
                return "float"
            s = string_value(d.value)
            if s is None:
                dc = self.names.canon(d.value) or ""
                s = dc.rsplit(".", 1)[-1] if dc.startswith(("tensorflow.", "numpy.")) else None
            if s is None:
                return None
            return "int" if s in INT_DTYPES else ("float" if "float" in s else None)
        if isinstance(value.func, cst.Call):  # a layer called on tensors
            lc = self.names.canon(value.func.func)
            if lc in SHAPE_ONLY and value.args:
                return self._value_kind(value.args[0].value)
            if lc in MAYBE_INT:
                return None  # integer or float depending on output_mode: do not guess
            if lc is not None and lc.startswith("keras.layers."):
                return "float"
        return None

    def leave_Assign(self, node: cst.Assign) -> None:
        if not self.kind and not (isinstance(node.value, cst.Call) and last_name(node.value.func) in ("Input", "InputLayer")):
            return  # nothing tracked yet and this is not an Input
        k = self._value_kind(node.value)
        for t in node.targets:
            if isinstance(t.target, cst.Name):
                key = (self._scope(), t.target.value)
                if k is None:
                    self.kind.pop(key, None)
                else:
                    self.kind[key] = k
                    self.has_int = self.has_int or k == "int"

    def visit_Call(self, node: cst.Call) -> None:
        if not self.has_int:
            return
        if isinstance(node.func, cst.Call):
            layer = self.names.canon(node.func.func)
            if layer not in MERGE_LAYERS:
                return
        else:
            c = self.names.canon(node.func)
            if c not in MERGE_FUNCS:
                return
        first = arg(node, 0, None) or arg(node, None, "inputs") or arg(node, None, "values")
        if first is None or not isinstance(first.value, (cst.List, cst.Tuple)):
            return
        elements = first.value.elements
        kinds = [self._value_kind(e.value) for e in elements]
        if "int" not in kinds or "float" not in kinds:
            return
        # tf.keras is Keras 3 unless tfmot or TF_USE_LEGACY_KERAS made it tf_keras, and Keras 3
        # refuses TensorFlow functions on its symbolic tensors (qfix.source.flavour)
        if self.ctx.flavours.of(node.func.func if isinstance(node.func, cst.Call) else node.func) == KERAS3:
            k, imports = self.spelling("keras", "keras")
            wrap = lambda code: f'{k}.ops.cast({code}, "float32")'  # noqa: E731
        else:
            tf, imports = self.spelling("tensorflow", "tf")
            wrap = lambda code: f"{tf}.cast({code}, {tf}.float32)"  # noqa: E731
        edits: list = [Replace(e.value, expr(wrap(self.code_for(e.value).strip()))) for e, k2 in zip(elements, kinds) if k2 == "int"]
        names = ", ".join(f"`{self.code_for(e.value).strip()}`" for e, k2 in zip(elements, kinds) if k2 == "int")
        self.report(
            node,
            f"Integer tensor {names} merged with float tensors: tf_keras raises TypeError and TFLite gets a float CAST island",
            fix="Cast the integer operand to float32 explicitly (better: float32 model input + inference_input_type=tf.uint8)",
            applicability=Applicability.SAFE,
            edits=[*edits, *imports],
        )


# --- model side ----------------------------------------------------------------------------



class MixedDtypeMergeModel(ModelRule):
    """Model side of QF101 mixed-dtype-merge; documented once, in the module docstring
    (`qfix rule QF101`)."""

    code = "QF101"
    name = "mixed-dtype-merge"
    fix_applicability = Applicability.SAFE

    def check(self, graph, ctx):
        for path, layer in graph.walk():
            if layer.class_name not in MERGES or layer.is_input:
                continue
            inner = graph
            for p in path:
                inner = inner.layers[p].subgraph
            dtypes = [(r.layer, tensor_dtype(inner, r)) for r in layer.inputs]
            ints = [(n, d) for n, d in dtypes if is_integer(d)]
            floats = [(n, d) for n, d in dtypes if is_float(d)]
            if ints and floats:
                parts = ", ".join(f"{d} {n!r}" for n, d in ints + floats)
                yield self.violation(
                    f"{layer.class_name} {layer.name!r} merges {parts}: the integer input is "
                    "promoted silently and becomes a CAST op (and unscaled values) on device",
                    layer.name,
                    fix="insert an explicit cast of the integer input before the merge",
                    pointer=layer.pointer,
                    rewrite=None if _cast_input_merged(inner, layer)
                    else Rewrite(rewrites.mixed_merge_cast, path, layer.name),
                )

    CASES = [
        ModelCase(
            "uint8-concat-float",
            functional_config(
                [("frame", (None, 4), "uint8"), ("feat", (None, 4), "float32")],
                [("cat", "Concatenate", {"axis": -1}, ["frame", "feat"], "float32", (None, 8))],
                ["cat"],
            ),
            fires=True,
            count=1,
            expected={"name": "frame", "config": {"dtype": "float32"}},  # folded into the input
        ),
        ModelCase(
            "int32-ids-also-embedded",
            functional_config(
                [("ids", (None, 4), "int32"), ("feat", (None, 4), "float32")],
                [("emb", "Embedding", {"input_dim": 10, "output_dim": 4}, ["ids"], "float32", (None, 4, 4)),
                 ("cat", "Concatenate", {"axis": -1}, ["ids", "feat"], "float32", (None, 8))],
                ["emb", "cat"],
            ),
            fires=True,
            count=1,
            # The Embedding needs the integers: an explicit cast for the merge alone.
            expected=[("ids", "InputLayer"), ("ids_to_float32", "Cast"), ("feat", "InputLayer"),
                      ("emb", "Embedding"), ("cat", "Concatenate")],  # in Keras's own layer order
        ),
        ModelCase(
            "uint8-cast-elsewhere",  # QF102's fold of the input covers this finding: no rewrite of its own
            functional_config(
                [("frame", (None, 4), "uint8"), ("feat", (None, 4), "float32")],
                [("c", "Cast", {"dtype": "float32"}, ["frame"]),
                 ("cat", "Concatenate", {"axis": -1}, ["frame", "feat"], "float32", (None, 8)),
                 ("add", "Add", {}, ["c", "feat"])],
                ["cat", "add"],
            ),
            fires=True,
            count=1,
        ),
        ModelCase(
            "float-concat-float",
            functional_config(
                [("a", (None, 4), "float32"), ("b", (None, 4), "float32")],
                [("cat", "Concatenate", {"axis": -1}, ["a", "b"], "float32", (None, 8))],
                ["cat"],
            ),
            fires=False,
        ),
        ModelCase(
            "cast-before-concat",
            functional_config(
                [("frame", (None, 4), "uint8"), ("feat", (None, 4), "float32")],
                [("c", "Cast", {"dtype": "float32"}, ["frame"]),
                 ("cat", "Concatenate", {"axis": -1}, ["c", "feat"], "float32", (None, 8))],
                ["cat"],
            ),
            fires=False,
        ),
    ]


def _cast_input_merged(graph, merge) -> bool:
    """An integer model input that a cast also reads is merged: QF102 fires for that cast, and
    its rewrite (fold the cast into the input) removes this finding too."""
    for ref in merge.inputs:
        source = graph.layers.get(ref.layer)
        if source is not None and source.is_input and is_integer(source.out_dtype) and any(
                user.is_cast for user in graph.consumers(source.name)):
            return True
    return False
