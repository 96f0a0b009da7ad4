"""QF107 integer-merge: a merge of integer tensors that the TFLite converter cannot convert (model).

## What it does
Finds a merge of integer tensors (all of one type when TensorFlow runs the model: model inputs,
directly or through layers that keep integers: max pooling, padding, reshapes, merges of
integer tensors) that the TFLite converter cannot convert, by the type:

| merge | integer types that do not convert |
|---|---|
| `Add`, `Average` | every one measured: uint8, int8, uint16, int16, int32, uint32, int64, uint64 |
| `Subtract`, `Maximum`, `Minimum` | uint8, int8, uint16, int16, uint32, uint64 |
| `Multiply` | uint8, int8, uint16, uint64 |
| `Concatenate` | uint16, uint64 |

Keras 3 records the merge's output as float32; TensorFlow computes it in the integer type. A
merge whose result reaches a layer with float-only kernels is QF106's (its fix covers the
merge); this rule names the merge wherever else it is.

## Why is this bad?
The TFLite converter has no builtin for these integer ops: the conversion fails inside the
merge itself with `'tf.AddV2' op is neither a custom op nor a flex op` (or `tf.BiasAdd`,
`tf.Sub`, `tf.Mul`, `tf.Maximum`, `tf.Minimum`, `tf.ConcatV2`; uint64 at the merge's own
`tf.Cast`), which names no layer, whatever follows the merge (a `Dense` that casts to float
itself, or nothing). Measured with Keras 3.15 and TF 2.21 (Edge TPU and int8 recipes): the
other types convert (int32 and int64 `Subtract`, `Maximum` and `Minimum`; `Multiply` of int16,
int32, uint32 and int64; `Concatenate` of the other types), and so does `Dot`. tf_keras builds
the same models.

## Example
```python
a = keras.Input((4,), dtype="uint8")
b = keras.Input((4,), dtype="uint8")
x = keras.layers.Add()([a, b])
y = keras.layers.Dense(2)(x)
```

## Use instead
```python
a = keras.Input((4,))  # float inputs; converter.inference_input_type = tf.uint8
b = keras.Input((4,))
x = keras.layers.Add()([a, b])
y = keras.layers.Dense(2)(x)
```

## Fix safety
The fix makes the merge compute in float32: the cast folds into the model inputs it reads
(the TFLite inputs stay the raw integer frames), otherwise an explicit cast is inserted
before the merge. Safe for a `Maximum`, `Minimum` or `Concatenate` of 8- or 16-bit integers:
float32 holds them exactly and the merge picks (or joins) the same values. Unsafe for `Add`, `Subtract`, `Multiply` and
`Average`, and for any merge above which such an integer merge computes: TensorFlow computes
them in the integer type, which wraps (uint8: 200 + 100 = 44; an `Average` adds before it
divides, 200 and 100 average to 22.0), and in float32 they give the true result (300, 150.0),
the one the model most likely meant but not the one it computed; the same on inputs that do
not overflow. Unsafe for 32- and 64-bit integers too, which float32 rounds above 2**24. `--unsafe-fixes`
applies it.

## Targets
Every target: the rule reads no property of the target's profile.
"""

from __future__ import annotations

from qfix.model import rewrites
from qfix.model.cases import functional_config
from qfix.model.graph import EXACT_IN_FLOAT32
from qfix.model.rewrites import Rewrite
from qfix.model.rewrites.float_kernel_cast import (WRAPPING_MERGES, fold_terms, integer_refs, merges_above, needs_float,
                                                   unconverted_merge, wrapping_merges)
from qfix.rules.base import ModelCase, ModelRule
from qfix.types import Applicability


class IntegerMerge(ModelRule):
    """Model side of QF107 integer-merge; documented once, in the module docstring
    (`qfix rule QF107`)."""

    code = "QF107"
    name = "integer-merge"
    fix_applicability = Applicability.UNSAFE
    fails_conversion = True

    def check(self, graph, ctx):
        covered: dict[tuple[str, ...], set[str]] = {}  # per nested model: the merges QF106 folds
        for path, layer in graph.walk():
            if layer.is_input:
                continue
            inner = graph
            for p in path:
                inner = inner.layers[p].subgraph
            dtype = unconverted_merge(inner, layer)
            if dtype is None:
                continue
            if path not in covered:
                covered[path] = set().union(*(merges_above(inner, l) for l in inner
                                              if not l.is_input and needs_float(l, inner.dialect) and integer_refs(inner, l)))
            if layer.name in covered[path]:
                continue
            wraps = [m for m in wrapping_merges(inner, layer) if m.name != layer.name]
            if layer.class_name in WRAPPING_MERGES | {"Average"}:
                wraps = [layer, *wraps]
            exact = dtype in EXACT_IN_FLOAT32
            cost, safe = fold_terms(exact, wraps, dtype)
            yield self.violation(
                f"{layer.class_name} {layer.name!r} merges {dtype} tensors: TensorFlow computes it in {dtype}, "
                "but TFLite has no builtin for it, so the conversion fails "
                "('... op is neither a custom op nor a flex op')",
                layer.name,
                fix="make its inputs float32 (folded into the model inputs when it reads them)" + cost,
                applicability=Applicability.SAFE if safe else Applicability.UNSAFE,
                pointer=layer.pointer,
                rewrite=Rewrite(rewrites.float_merge_cast, path, layer.name),
            )

    CASES = [
        ModelCase(
            "two-uint8-added-into-dense",  # the Add itself does not convert; the fold is unsafe (wraps)
            functional_config(
                [("a", (None, 4), "uint8"), ("b", (None, 4), "uint8")],
                [("add", "Add", {}, ["a", "b"], "float32", (None, 4)),
                 ("head", "Dense", {"units": 2}, ["add"], "float32", (None, 2))],
                ["head"],
            ),
            fires=True,
            count=1,
            expected={"layers": [{"name": "a", "config": {"dtype": "float32"}},
                                 {"name": "b", "config": {"dtype": "float32"}}, {"name": "add"}, {"name": "head"}]},
        ),
        ModelCase(
            "two-uint8-averaged",  # Average adds in uint8 before it divides
            functional_config(
                [("a", (None, 4), "uint8"), ("b", (None, 4), "uint8")],
                [("avg", "Average", {}, ["a", "b"], "float32", (None, 4))],
                ["avg"],
            ),
            fires=True,
            count=1,
            expected={"layers": [{"name": "a", "config": {"dtype": "float32"}},
                                 {"name": "b", "config": {"dtype": "float32"}}, {"name": "avg"}]},
        ),
        ModelCase(
            "two-int8-pooled-maximum",  # a max pooling keeps int8: the Maximum reads int8
            functional_config(
                [("a", (None, 4, 2), "int8"), ("b", (None, 4, 2), "int8")],
                [("pool", "MaxPooling1D", {"pool_size": 2}, ["a"], "float32", (None, 2, 2)),
                 ("poolb", "MaxPooling1D", {"pool_size": 2}, ["b"], "float32", (None, 2, 2)),
                 ("max", "Maximum", {}, ["pool", "poolb"], "float32", (None, 2, 2))],
                ["max"],
            ),
            fires=True,
            count=1,
            expected={"name": "a", "config": {"dtype": "float32"}},
        ),
        ModelCase(
            "two-int32-added",  # float32 does not hold every int32: an explicit cast, unsafe
            functional_config(
                [("a", (None, 4), "int32"), ("b", (None, 4), "int32")],
                [("add", "Add", {}, ["a", "b"], "float32", (None, 4))],
                ["add"],
            ),
            fires=True,
            count=1,
            expected=[("a", "InputLayer"), ("b", "InputLayer"), ("a_to_float32", "Cast"), ("b_to_float32", "Cast"),
                      ("add", "Add")],
        ),
        ModelCase(
            "two-int32-subtracted",  # TFLite's SUB takes int32: it converts
            functional_config(
                [("a", (None, 4), "int32"), ("b", (None, 4), "int32")],
                [("sub", "Subtract", {}, ["a", "b"], "float32", (None, 4))],
                ["sub"],
            ),
            fires=False,
        ),
        ModelCase(
            "two-int16-added",  # 16-bit audio: ADD has no int16 builtin for it (tf.BiasAdd); wraps: unsafe
            functional_config(
                [("a", (None, 4), "int16"), ("b", (None, 4), "int16")],
                [("add", "Add", {}, ["a", "b"], "float32", (None, 4))],
                ["add"],
            ),
            fires=True,
            count=1,
            expected={"layers": [{"name": "a", "config": {"dtype": "float32"}},
                                 {"name": "b", "config": {"dtype": "float32"}}, {"name": "add"}]},
        ),
        ModelCase(
            "two-uint16-concatenated",  # 16-bit depth frames: no uint16 CONCATENATION (tf.ConcatV2); exact
            functional_config(
                [("a", (None, 4), "uint16"), ("b", (None, 4), "uint16")],
                [("cat", "Concatenate", {}, ["a", "b"], "float32", (None, 8))],
                ["cat"],
            ),
            fires=True,
            count=1,
            expected={"layers": [{"name": "a", "config": {"dtype": "float32"}},
                                 {"name": "b", "config": {"dtype": "float32"}}, {"name": "cat"}]},
        ),
        ModelCase(
            "two-int16-multiplied",  # MUL takes int16: it converts
            functional_config(
                [("a", (None, 4), "int16"), ("b", (None, 4), "int16")],
                [("mul", "Multiply", {}, ["a", "b"], "float32", (None, 4))],
                ["mul"],
            ),
            fires=False,
        ),
        ModelCase(
            "two-uint8-concatenated",  # CONCATENATION takes uint8: it converts
            functional_config(
                [("a", (None, 4), "uint8"), ("b", (None, 4), "uint8")],
                [("cat", "Concatenate", {}, ["a", "b"], "float32", (None, 8)),
                 ("head", "Dense", {"units": 2}, ["cat"], "float32", (None, 2))],
                ["head"],
            ),
            fires=False,
        ),
        ModelCase(
            "two-uint8-added-into-conv",  # QF106's finding on the conv folds the same inputs
            functional_config(
                [("a", (None, 8, 8, 3), "uint8"), ("b", (None, 8, 8, 3), "uint8")],
                [("add", "Add", {}, ["a", "b"], "float32", (None, 8, 8, 3)),
                 ("conv", "Conv2D", {"filters": 4, "kernel_size": 1}, ["add"], "float32", (None, 8, 8, 4))],
                ["conv"],
            ),
            fires=False,
        ),
        ModelCase(
            "uint8-added-to-float",  # a float sum: QF101's mixed merge
            functional_config(
                [("a", (None, 4), "uint8"), ("f", (None, 4), "float32")],
                [("add", "Add", {}, ["a", "f"], "float32", (None, 4))],
                ["add"],
            ),
            fires=False,
        ),
    ]
