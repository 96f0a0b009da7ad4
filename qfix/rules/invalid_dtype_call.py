"""QF105 invalid-dtype-call: a random draw asked for a dtype it cannot produce (source).

## What it does
Flags calls that raise before they return, because of their `dtype`: a normal draw of
integers (`tf.random.normal(shape, dtype=tf.uint8)`, `keras.random.normal`,
`truncated_normal`, the stateless forms), a uniform draw of int8/uint8
(`tf.random.uniform(shape, maxval=255, dtype=tf.uint8)`) or of int32/int64 without `maxval`,
`keras.random.uniform` of any integer type, a NumPy Generator's `random` /
`standard_normal` of anything but float32/float64, and NumPy's legacy draws
(`np.random.rand`, `randn`, `normal`, `uniform`, ...), which take no `dtype` at all. What each call accepts is a table in this
module, checked against the installed TensorFlow, Keras and NumPy by a test.

## Why is this bad?
The script stops there: `TypeError: Cannot convert 0.0 to EagerTensor of dtype uint8`,
`ValueError: Argument dtype got invalid value <dtype: 'uint8'>`, `ValueError: Must specify
maxval for integer dtype tf.int32`. It is usually an attempt to make "quantized" sample data
(a representative dataset, a test input for an integer model) by asking the random draw for
the integer type; calibration data must be float, and integer test data comes from an integer
draw (`tf.random.uniform(shape, maxval=256, dtype=tf.int32)`, `rng.integers`).

## Example
```python
def representative_dataset():
    for _ in range(100):
        yield [tf.random.normal((1, 224, 224, 3), dtype=tf.uint8)]
```

## Use instead
```python
def representative_dataset():
    for _ in range(100):
        yield [tf.random.normal((1, 224, 224, 3))]  # float32: the converter quantizes
```
For integer data: `tf.cast(tf.random.uniform(shape, maxval=256, dtype=tf.int32), tf.uint8)`.

## Fix safety
Unsafe in a representative-dataset generator: the `dtype` argument is removed, so the
generator yields float32 as calibration needs (a NumPy legacy draw gets `.astype(np.float32)`:
it returns float64). Unsafe for a NumPy legacy draw of a float dtype: the dtype moves into
`.astype(...)`, as meant. Display-only elsewhere: whether floats or integers were meant is the
author's choice.

## Targets
Every target: the rule reads no property of the target's profile (the call fails whatever
the model runs on).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import libcst as cst

from qfix.source.float_values import GENERATORS
from qfix.source.names import last_name
from qfix.source.rule import Invalid, Replace, SourceRule, Valid
from qfix.source.util import arg, dtype_name
from qfix.types import Applicability

FLOATS = frozenset({"float16", "bfloat16", "float32", "float64"})
_TF_INTS = frozenset({"int32", "int64"})


@dataclass(frozen=True)
class Accepts:
    """The dtypes a call draws; `needs_maxval`: those it draws only when `maxval` is given;
    `error`: the first line of what it raises otherwise (`{dtype}` is filled in)."""

    dtypes: frozenset[str]
    error: str
    needs_maxval: frozenset[str] = frozenset()
    maxval_error: str = ""
    instead: str = "draw floats (leave `dtype` out) or integers with an integer draw"
    unjudged: frozenset[str] = frozenset()  # accepted under conditions the rule does not read
    takes_dtype: bool = True  # False: NumPy's legacy draws have no `dtype` (the cast goes in `.astype`)


# TensorFlow 2.21, Keras 3.15 (TensorFlow backend), NumPy 2.4: each entry is run with every
# dtype of tests/source/test_casts.py::PROBE_DTYPES by `test_dtype_table_matches_the_libraries`.
_NORMAL = Accepts(
    FLOATS, "TypeError: Cannot convert 0.0 to EagerTensor of dtype {dtype}",
    instead="draw floats (leave `dtype` out), or integers with `tf.random.uniform(shape, maxval=N, dtype=tf.int32)`",
)
TABLE: dict[str, Accepts] = {
    "tensorflow.random.normal": _NORMAL,
    "tensorflow.random.truncated_normal": _NORMAL,
    "tensorflow.random.stateless_normal": _NORMAL,
    "tensorflow.random.stateless_truncated_normal": _NORMAL,
    "keras.random.normal": _NORMAL,
    "keras.random.truncated_normal": _NORMAL,
    "tensorflow.random.uniform": Accepts(
        FLOATS | _TF_INTS,
        "ValueError: Argument `dtype` got invalid value <dtype: '{dtype}'>. Accepted dtypes are (tf.float16, tf.bfloat16, tf.float32, tf.float64, tf.int32, tf.int64).",
        needs_maxval=_TF_INTS, maxval_error="ValueError: Must specify maxval for integer dtype tf.{dtype}",
        instead="draw int32 and cast: `tf.cast(tf.random.uniform(shape, maxval=256, dtype=tf.int32), tf.uint8)`",
    ),
    "tensorflow.random.stateless_uniform": Accepts(
        FLOATS | _TF_INTS,
        "ValueError: Argument `dtype` got invalid value <dtype: '{dtype}'>. Accepted dtypes are (tf.float16, tf.bfloat16, tf.float32, tf.float64, tf.int32, tf.int64, tf.uint32, tf.uint64).",
        needs_maxval=_TF_INTS,
        maxval_error="ValueError: For integer `dtype` argument <dtype: '{dtype}'>, argument `minval` and `maxval` must be both None or not None.",
        instead="draw int32 with `maxval` and cast",
        # full-range draws only: minval=None and maxval=None
        unjudged=frozenset({"uint32", "uint64"}),
    ),
    "keras.random.uniform": Accepts(
        FLOATS, "ValueError: `keras.random.uniform` requires a floating point `dtype`. Received: dtype={dtype}",
        instead="use `keras.random.randint(shape, minval, maxval, dtype=...)` for integers",
    ),
    # NumPy's legacy draws take no dtype at all (they return float64)
    **{
        f"numpy.random.{fn}": Accepts(
            frozenset(), f"TypeError: {fn}() got an unexpected keyword argument 'dtype'", takes_dtype=False,
            instead="cast the draw: `.astype(...)` (integers: `np.random.randint(low, high, size, dtype=...)`)",
        )
        for fn in ("rand", "randn", "random", "random_sample", "normal", "uniform", "standard_normal")
    },
    # numpy.random.Generator methods (rng = np.random.default_rng())
    "numpy.random.Generator.random": Accepts(
        frozenset({"float32", "float64"}), "TypeError: Unsupported dtype dtype('{dtype}') for random",
        instead="use `rng.integers(low, high, size, dtype=...)` for integers",
    ),
    "numpy.random.Generator.standard_normal": Accepts(
        frozenset({"float32", "float64"}), "TypeError: Unsupported dtype dtype('{dtype}') for standard_normal",
        instead="draw float32/float64, or integers with `rng.integers`",
    ),
}
_LAST = {k.rsplit(".", 1)[-1] for k in TABLE}
_GENERATOR_LAST = {g.rsplit(".", 1)[-1] for g in GENERATORS}
# (position of `dtype`, of `maxval`) when they are given without their keyword
POSITIONS = {
    "tensorflow.random.uniform": (3, 2), "tensorflow.random.normal": (3, None), "tensorflow.random.truncated_normal": (3, None),
    "keras.random.uniform": (3, 2), "keras.random.normal": (3, None), "keras.random.truncated_normal": (3, None),
}


class InvalidDtypeCall(SourceRule):
    """Source side of QF105 invalid-dtype-call; documented once, in the module docstring
    (`qfix rule QF105`)."""

    code = "QF105"
    name = "invalid-dtype-call"
    TRIGGERS = ("random",)

    VALID = [
        Valid("import tensorflow as tf\nx = tf.random.normal((1, 10))\n"),
        Valid("import tensorflow as tf\nx = tf.random.uniform((1, 4), maxval=256, dtype=tf.int32)\n"),
        Valid("import tensorflow as tf\nx = tf.random.normal((1, 4), dtype=tf.float16)\n"),
        Valid("import numpy as np\nrng = np.random.default_rng(0)\nx = rng.integers(0, 256, (1, 4), dtype=np.uint8)\n"),
        Valid("import tensorflow as tf\nx = tf.random.normal((1, 4), dtype=dt)\n"),  # a dtype not written here
        Valid("import numpy as np\nx = random.normal((1, 4), dtype=np.uint8)\n"),  # not a library's draw
    ]
    INVALID = [
        Invalid(
            "import tensorflow as tf\nx = tf.random.normal((1, 10), dtype=tf.uint8)\n",
            applicability=Applicability.DISPLAY_ONLY, message="Cannot convert 0.0 to EagerTensor of dtype uint8",
        ),
        Invalid(
            "import tensorflow as tf\nx = tf.random.uniform((1, 10), dtype=tf.int32)\n",
            message="Must specify maxval",
        ),
        Invalid(
            "import tensorflow as tf\nx = tf.random.uniform([1, 4], 0, 255, tf.uint8)\n", message="Accepted dtypes",
        ),
        Invalid("import keras\nx = keras.random.uniform((1, 4), dtype='int8')\n", message="floating point"),
        Invalid("import numpy as np\nrng = np.random.default_rng(0)\nx = rng.random((1, 4), dtype=np.uint8)\n", message="Unsupported dtype"),
        Invalid(
            "import tensorflow as tf\n\n\ndef representative_dataset():\n    for _ in range(8):\n"
            "        yield [tf.random.normal((1, 4, 4, 1), dtype=tf.uint8)]\n",
            expected="import tensorflow as tf\n\n\ndef representative_dataset():\n    for _ in range(8):\n"
            "        yield [tf.random.normal((1, 4, 4, 1))]\n",
            applicability=Applicability.UNSAFE,
        ),
        Invalid(  # NumPy's legacy draws take no dtype: it goes into a cast
            "import numpy as np\nx = np.random.rand(1, 8, dtype=np.float32)\n",
            expected="import numpy as np\nx = np.random.rand(1, 8).astype(np.float32)\n",
            message="unexpected keyword argument 'dtype'", applicability=Applicability.UNSAFE,
        ),
        Invalid(
            "import numpy as np\ndef representative_dataset():\n    yield [np.random.normal(size=(1, 8), dtype='uint8')]\n",
            expected="import numpy as np\ndef representative_dataset():\n    yield [np.random.normal(size=(1, 8)).astype(np.float32)]\n",
        ),
        Invalid("import numpy as np\nx = np.random.randn(1, 8, dtype=np.int8)\n", applicability=Applicability.DISPLAY_ONLY),
        Invalid(  # a generator assigned to the converter, however it is named
            "import tensorflow as tf\ndef gen():\n    yield [tf.random.truncated_normal(shape=(1, 8), stddev=0.5, dtype=tf.int8)]\n"
            "converter.representative_dataset = gen\n",
            expected="import tensorflow as tf\ndef gen():\n    yield [tf.random.truncated_normal(shape=(1, 8), stddev=0.5)]\n"
            "converter.representative_dataset = gen\n",
        ),
    ]

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.bad: list[tuple[str | None, cst.Call, cst.Arg, str, str]] = []  # (function, call, dtype arg, error, instead)
        self.rep_functions: set[str] = set()
        self.generators: set[tuple[Any, str]] = set()  # (scope, name) bound to np.random.default_rng(...)

    def _scope(self) -> Any:
        return id(self.ctx.scope) if self.ctx.scope is not None else None

    def is_generator(self, node: cst.BaseExpression) -> bool:
        if isinstance(node, cst.Name):
            return (self._scope(), node.value) in self.generators or (None, node.value) in self.generators
        return isinstance(node, cst.Call) and self.names.canon(node.func) in GENERATORS

    def _which(self, node: cst.Call) -> str | None:
        c = self.names.canon(node.func)
        if c in TABLE:
            return c
        func = node.func
        if isinstance(func, cst.Attribute) and f"numpy.random.Generator.{func.attr.value}" in TABLE and self.is_generator(func.value):
            return f"numpy.random.Generator.{func.attr.value}"
        return None

    def visit_Call(self, node: cst.Call) -> None:
        if last_name(node.func) not in _LAST:
            return
        which = self._which(node)
        if which is None:
            return
        dtype_pos, maxval_pos = POSITIONS.get(which, (None, None))
        d = arg(node, dtype_pos, "dtype")
        dtype = dtype_name(d.value, self.names) if d is not None else None
        if dtype is None:
            return
        rule = TABLE[which]
        if dtype in rule.unjudged:
            return
        if dtype not in rule.dtypes:
            error = rule.error
        elif dtype in rule.needs_maxval and arg(node, maxval_pos, "maxval") is None:
            error = rule.maxval_error
        else:
            return
        fn = self.ctx.scope.name.value if self.ctx.scope is not None else None
        self.bad.append((fn, node, d, error.format(dtype=dtype), rule.instead))  # type: ignore[arg-type]

    def visit_Assign(self, node: cst.Assign) -> None:
        rng = isinstance(node.value, cst.Call) and last_name(node.value.func) in _GENERATOR_LAST and self.is_generator(node.value)
        for t in node.targets:
            if isinstance(t.target, cst.Name):
                (self.generators.add if rng else self.generators.discard)((self._scope(), t.target.value))
            elif isinstance(t.target, cst.Attribute) and t.target.attr.value == "representative_dataset" and isinstance(node.value, cst.Name):
                self.rep_functions.add(node.value.value)

    def finish(self) -> None:
        for fn, call, d, error, instead in self.bad:
            msg = f"`{self.code_for(call.func)}(..., dtype={self.code_for(d.value)})` raises {error}"
            calibration = fn is not None and (fn in self.rep_functions or "representative" in fn.lower())
            which = self._which(call)
            float_dtype = dtype_name(d.value, self.names) in FLOATS
            if which is not None and not TABLE[which].takes_dtype and d.keyword is not None and (calibration or float_dtype):
                # the dtype moves into a cast of the draw (calibration data: float32)
                if calibration and dtype_name(d.value, self.names) != "float32":
                    np_, imports = self.spelling("numpy", "np")
                    dtype, note = cst.parse_expression(f"{np_}.float32"), "float32: calibration data is float32"
                else:
                    dtype, imports, note = d.value, [], "the draw is float64"
                new = cst.Call(func=cst.Attribute(value=_without(call, d), attr=cst.Name("astype")), args=[cst.Arg(dtype)])
                self.report(
                    call, msg, fix=f"Cast the draw: `.astype({self.code_for(dtype)})` ({note})",
                    applicability=Applicability.UNSAFE, edits=[Replace(call, new), *imports],
                )
            elif calibration and d.keyword is not None:
                self.report(
                    call, msg, fix="Remove `dtype`: calibration data is float32 (the converter quantizes it)",
                    applicability=Applicability.UNSAFE, edits=[Replace(call, _without(call, d))],
                )
            else:
                self.report(call, msg, fix=instead[0].upper() + instead[1:], applicability=Applicability.DISPLAY_ONLY)


def _without(call: cst.Call, drop: cst.Arg) -> cst.Call:
    """`call` without argument `drop`; the argument before it takes over its closing layout."""
    args = list(call.args)
    i = next(k for k, a in enumerate(args) if a is drop)
    del args[i]
    if i == len(args) and args:  # dropped the last: the new last one ends as it did
        args[-1] = args[-1].with_changes(comma=drop.comma, whitespace_after_arg=drop.whitespace_after_arg)
    return call.with_changes(args=args)
