"""QF406 representative-dataset: a representative dataset that does not yield what the converter reads (source).

## What it does
Follows the function (or lambda, or generator expression) assigned to
`converter.representative_dataset` and checks what each `yield` gives: a list (or a dict
keyed by input name) of float32 arrays with a batch of 1, one per model input. It flags
yields of names that are unbound or Python builtins (`yield [input]`, the docs'
placeholder), a bare array or a tuple instead of a list, float64 data (`np.random.rand`,
`np.zeros` without a dtype, ...), data without the batch axis, batches larger than one for a
model whose batch is fixed, and, for a model with two or more inputs, positional lists. It
also flags a generator object (`= gen()`, a generator expression) where the converter wants
a function it can call. Shapes and dtypes come from what the text says: `np.random.rand`,
`np.random.random_sample`, `tf.random.normal`, `np.zeros(..., dtype=...)`, `.astype(...)`,
`tf.cast`, `np.expand_dims`, `x[None]`, `x[i:i+1]`, a dataset's `.batch(n)`, `.take(n)` ...
and the model's `Input(shape, batch_size=..., name=..., dtype=...)` when the converter's
model is built in the file.

## Why is this bad?
The converter runs the model on each sample to calibrate; what it cannot feed fails at
`convert()`: `AttributeError: 'builtin_function_or_method' object has no attribute
'shape'`, `Cannot set tensor: Got value of type FLOAT64 but expected type FLOAT32`,
`conv.cc: input->dims->size != 4 (3 != 4) ... failed to prepare`, `You need to provide either
a dictionary with input names and values ...`, `TypeError: 'generator' object is not
callable`. A multi-input model is worse: the converted model need not keep the Keras
`inputs=[...]` order (TF 2.21: `feat` before `img`, and `b` before `a` with a dynamic batch,
though not with `batch_size=1`), so a positional
list feeds the wrong tensors — `RuntimeError: Attempting to resize dimension 1 of tensor 0
with value 3 to 4` or an error in a conv's prepare, or, for inputs of one shape, a model
calibrated on swapped data that converts without a word.

## Example
```python
img = keras.Input((32, 32, 3), name="img")
feat = keras.Input((8,), name="feat")
...
def representative_dataset():
    for _ in range(100):
        yield [np.random.rand(1, 32, 32, 3), np.random.rand(1, 8)]
```

## Use instead
```python
def representative_dataset():
    for _ in range(100):
        yield {"img": np.random.rand(1, 32, 32, 3).astype(np.float32), "feat": np.random.rand(1, 8).astype(np.float32)}
```

## Fix safety
Safe: a float32 cast of float64 data, the batch axis (`x[None]`), a list for a bare array or
a tuple, the dict keyed by the `Input` names (in the order the Keras model lists them), and a
`lambda:` around a generator object. Each turns a conversion that fails (or calibrates on
the wrong inputs) into the one the code describes. Unbound names, builtins, integer data,
batches larger than one and unnamed inputs are display-only: the data itself must change.

## Targets
Every target. A batch larger than one is flagged when the model's batch is fixed in the
file or the target needs static shapes (QF301 fixes the batch to 1). Not in unit tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import libcst as cst

from qfix.source.arrays import (Binding, Evaluator, Scope, Val, dtype_name, function_bindings, literal_shape,
                                names_bound_anywhere, scope_bindings)
from qfix.source.converter import ConverterAnalysis, ConverterBlock
from qfix.source.rule import Invalid, Replace, SourceRule, Valid
from qfix.source.preorder import statement_preorder
from qfix.source.util import arg, string_value
from qfix.types import Applicability

MODELS = {"keras.Model", "keras.models.Model"}
SEQUENTIAL = {"keras.Sequential", "keras.models.Sequential"}
INPUTS = {"keras.Input", "keras.layers.Input", "keras.layers.InputLayer"}
INT_CASTS = {"int8", "uint8"}
WRAPPERS = {"tensorflow.lite.RepresentativeDataset", "functools.partial"}  # the generator is their first argument  # a cast to these is QF104's finding


@dataclass(frozen=True)
class InputSpec:
    """A model input as its `Input(...)` call says: name, shape without the batch, the fixed
    batch (None: dynamic), dtype."""

    name: str | None
    shape: tuple[int | None, ...] | None
    batch: int | None
    dtype: str


def _shape(dims: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"


class RepresentativeDataset(ConverterAnalysis, SourceRule):
    """Source side of QF406 representative-dataset; documented once, in the module docstring
    (`qfix rule QF406`)."""

    code = "QF406"
    name = "representative-dataset"
    TRIGGERS = ("representative_dataset",)

    _CONV = (
        "converter = tf.lite.TFLiteConverter.from_keras_model(model)\n"
        "converter.optimizations = [tf.lite.Optimize.DEFAULT]\n"
        "converter.representative_dataset = representative_dataset\n"
    )
    _ONE = "import numpy as np\nimport tensorflow as tf\nimport keras\ninp = keras.Input((4, 4, 3), batch_size=1)\nmodel = keras.Model(inp, keras.layers.Dense(2)(inp))\n"
    _TWO = (
        "import numpy as np\nimport tensorflow as tf\nimport keras\n"
        "img = keras.Input((4, 4, 3), name=\"img\")\nfeat = keras.Input((2,), name=\"feat\")\n"
        "model = keras.Model([img, feat], keras.layers.Dense(2)(feat))\n"
    )
    VALID = [
        Valid(_ONE + "def representative_dataset():\n    for _ in range(8):\n        yield [np.random.rand(1, 4, 4, 3).astype(np.float32)]\n" + _CONV),
        Valid(_ONE + "def representative_dataset():\n    for x in data.batch(1).take(8):\n        yield [x]\n" + _CONV),
        Valid(_ONE + "def representative_dataset():\n    for _ in range(8):\n        yield [tf.random.normal((1, 4, 4, 3))]\n" + _CONV, target="edgetpu"),
        Valid(_TWO + "def representative_dataset():\n    for _ in range(8):\n        yield {\"img\": tf.random.normal((1, 4, 4, 3)), \"feat\": tf.random.normal((1, 2))}\n" + _CONV),
        Valid(  # a module-level name, data of unknown type
            "import tensorflow as tf\ninput = load()\ndef representative_dataset():\n    yield [input]\n" + _CONV
        ),
        Valid(  # dynamic batch, no static-shape target: a batch of 8 calibrates fine
            "import numpy as np\nimport tensorflow as tf\nimport keras\ninp = keras.Input((4, 4, 3))\nmodel = keras.Model(inp, inp)\n"
            "def representative_dataset():\n    for x in ds.batch(8).take(4):\n        yield [x]\n" + _CONV
        ),
        Valid(_ONE + "def representative_dataset():\n    for x in data:\n        yield [x.astype(np.uint8)]\n" + _CONV),  # QF104's
        Valid(  # a unit test
            "import unittest\nimport tensorflow as tf\ndef representative_dataset():\n    for _ in range(10):\n        yield [sample_input]\n" + _CONV,
        ),
    ]
    INVALID = [
        # the issue's smallest input: the docs' placeholder `input` is Python's builtin
        Invalid(
            "import tensorflow as tf\n\ndef representative_dataset():\n    for _ in range(100):\n        yield [input]\n\n" + _CONV
            + "converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]\n"
            "converter.inference_input_type = tf.uint8\nconverter.inference_output_type = tf.uint8\n",
            applicability=Applicability.DISPLAY_ONLY,
            message="builtin `input`",
        ),
        Invalid(  # an unbound name
            "import tensorflow as tf\ndef representative_dataset():\n    for _ in range(10):\n        yield [sample_input]\n" + _CONV,
            message="not defined",
        ),
        Invalid(  # float64 from np.random.rand, no list
            _ONE + "def representative_dataset():\n    for _ in range(8):\n        yield np.random.rand(1, 4, 4, 3)\n" + _CONV,
            expected=_ONE + "def representative_dataset():\n    for _ in range(8):\n        yield [np.random.rand(1, 4, 4, 3).astype(np.float32)]\n" + _CONV,
            applicability=Applicability.SAFE,
            message="float64",
        ),
        Invalid(  # no batch axis, through a name, float64 from random_sample
            _ONE + "def representative_dataset():\n    for _ in range(8):\n        x = np.random.random_sample((4, 4, 3)) * 2.0\n        yield [x]\n" + _CONV,
            expected=_ONE + "def representative_dataset():\n    for _ in range(8):\n        x = np.random.random_sample((4, 4, 3)) * 2.0\n        yield [x[None].astype(np.float32)]\n" + _CONV,
            message="batch axis",
        ),
        Invalid(  # a tuple, from a lambda over a generator expression
            _ONE + "data = np.zeros((8, 1, 4, 4, 3), dtype=np.float32)\n" + _CONV.replace("= representative_dataset", "= lambda: ((x,) for x in data)"),
            expected=_ONE + "data = np.zeros((8, 1, 4, 4, 3), dtype=np.float32)\n" + _CONV.replace("= representative_dataset", "= lambda: ([x] for x in data)"),
            message="tuple",
        ),
        Invalid(  # through functools.partial and a name
            _ONE + "import functools\ndef gen(n):\n    for _ in range(n):\n        yield [np.zeros((1, 4, 4, 3))]\n"
            "rep = functools.partial(gen, 8)\n" + _CONV.replace("= representative_dataset", "= rep"),
            expected=_ONE + "import functools\ndef gen(n):\n    for _ in range(n):\n        yield [np.zeros((1, 4, 4, 3)).astype(np.float32)]\n"
            "rep = functools.partial(gen, 8)\n" + _CONV.replace("= representative_dataset", "= rep"),
            message="float64",
        ),
        Invalid(  # a generator object, not a function
            _ONE + "def gen():\n    for _ in range(8):\n        yield [tf.random.normal((1, 4, 4, 3))]\n" + _CONV.replace("= representative_dataset", "= gen()"),
            expected=_ONE + "def gen():\n    for _ in range(8):\n        yield [tf.random.normal((1, 4, 4, 3))]\n" + _CONV.replace("= representative_dataset", "= gen"),
            message="not callable",
        ),
        Invalid(  # a batch of 32 for a model whose batch is 1
            _ONE + "def representative_dataset():\n    for x in tf.data.Dataset.from_tensor_slices(images).batch(32).take(10):\n        yield [x]\n" + _CONV,
            applicability=Applicability.DISPLAY_ONLY,
            message="batch of 32",
        ),
        Invalid(  # two inputs fed positionally in the Keras order
            _TWO + "def representative_dataset():\n    for _ in range(8):\n        yield [tf.random.normal((1, 4, 4, 3)), tf.random.normal((1, 2))]\n" + _CONV,
            expected=_TWO + "def representative_dataset():\n    for _ in range(8):\n        yield {\"img\": tf.random.normal((1, 4, 4, 3)), \"feat\": tf.random.normal((1, 2))}\n" + _CONV,
            applicability=Applicability.SAFE,
            message="keyed by input name",
        ),
        Invalid(  # unnamed inputs: the names are Keras' counters
            _TWO.replace(', name="img"', "").replace(', name="feat"', "")
            + "def representative_dataset():\n    yield [tf.random.normal((1, 4, 4, 3)), tf.random.normal((1, 2))]\n" + _CONV,
            applicability=Applicability.DISPLAY_ONLY,
        ),
        Invalid(  # names in sorted order do not help: TF 2.21 put `b` first (issue 11 (a))
            "import numpy as np\nimport tensorflow as tf\n"
            "a = tf.keras.Input((4,), name=\"a\")\nb = tf.keras.Input((3,), name=\"b\")\n"
            "model = tf.keras.Model([a, b], tf.keras.layers.Concatenate()([a, b]))\n"
            "def rep():\n    for _ in range(10):\n        yield [np.random.rand(1, 4).astype(np.float32), np.random.rand(1, 3).astype(np.float32)]\n"
            + _CONV.replace("= representative_dataset", "= rep"),
            expected="import numpy as np\nimport tensorflow as tf\n"
            "a = tf.keras.Input((4,), name=\"a\")\nb = tf.keras.Input((3,), name=\"b\")\n"
            "model = tf.keras.Model([a, b], tf.keras.layers.Concatenate()([a, b]))\n"
            "def rep():\n    for _ in range(10):\n        yield {\"a\": np.random.rand(1, 4).astype(np.float32), \"b\": np.random.rand(1, 3).astype(np.float32)}\n"
            + _CONV.replace("= representative_dataset", "= rep"),
            applicability=Applicability.SAFE,
            message="need not be the Keras order",
        ),
        Invalid(  # unnamed inputs in a list bound to a name, a lambda over a list of tuples
            "import numpy as np\nimport tensorflow as tf\n"
            "inp = [tf.keras.Input((4,)), tf.keras.Input((3,))]\nmodel = tf.keras.Model(inp, tf.keras.layers.Concatenate()(inp))\n"
            "def rep():\n    for _ in range(10):\n        yield [np.random.rand(1, 4).astype(np.float32), np.random.rand(1, 3).astype(np.float32)]\n"
            + _CONV.replace("= representative_dataset", "= rep"),
            applicability=Applicability.DISPLAY_ONLY,
            message="positional list for a model with 2 inputs",
        ),
        Invalid(  # two inputs of one shape: the list converts, calibrated on swapped inputs
            "import tensorflow as tf\nfrom tf_keras import Input, Model, layers\n"
            "zeta = Input((4,), name=\"zeta\")\nalpha = Input((4,), name=\"alpha\")\n"
            "model = Model(inputs=[zeta, alpha], outputs=layers.Dense(2)(layers.Concatenate()([zeta, alpha])))\n"
            "def representative_dataset():\n    for z, a in pairs:\n        yield [z, a]\n" + _CONV,
            expected="import tensorflow as tf\nfrom tf_keras import Input, Model, layers\n"
            "zeta = Input((4,), name=\"zeta\")\nalpha = Input((4,), name=\"alpha\")\n"
            "model = Model(inputs=[zeta, alpha], outputs=layers.Dense(2)(layers.Concatenate()([zeta, alpha])))\n"
            "def representative_dataset():\n    for z, a in pairs:\n        yield {\"zeta\": z, \"alpha\": a}\n" + _CONV,
            message="calibration on swapped data",
        ),
        Invalid(  # a list built beforehand, a Sequential model whose InputLayer fixes the batch
            "import numpy as np\nimport tensorflow as tf\nfrom keras import Sequential, layers\n"
            "model = Sequential([layers.InputLayer(shape=(4,), batch_size=1), layers.Dense(2)])\n"
            "def representative_dataset():\n    for _ in range(8):\n        sample = [np.zeros((4,))]\n        yield sample\n" + _CONV,
            applicability=Applicability.DISPLAY_ONLY,
            message="where the input is (1, 4)); float64",
        ),
        Invalid(  # one array for a model with two inputs
            _TWO + "def representative_dataset():\n    yield [tf.random.normal((1, 4, 4, 3))]\n" + _CONV,
            applicability=Applicability.DISPLAY_ONLY,
            message="1 array(s) for a model with 2 input(s)",
        ),
        Invalid(  # a dict keyed by something else than the input names
            _TWO + "def representative_dataset():\n    yield {\"image\": tf.random.normal((1, 4, 4, 3)), \"features\": tf.random.normal((1, 2))}\n" + _CONV,
            applicability=Applicability.DISPLAY_ONLY,
            message="not the model's input names",
        ),
        Invalid(  # float64 through tf.data, tf.lite.RepresentativeDataset, tf_keras
            "import numpy as np\nimport tensorflow as tf\nimport tf_keras as keras\ninp = keras.Input((4,))\nmodel = keras.Model(inp, inp)\n"
            "def gen():\n    for x in tf.data.Dataset.from_tensor_slices(np.random.rand(8, 1, 4)).take(8):\n        yield [x]\n"
            + _CONV.replace("= representative_dataset", "= tf.lite.RepresentativeDataset(gen)"),
            expected="import numpy as np\nimport tensorflow as tf\nimport tf_keras as keras\ninp = keras.Input((4,))\nmodel = keras.Model(inp, inp)\n"
            "def gen():\n    for x in tf.data.Dataset.from_tensor_slices(np.random.rand(8, 1, 4)).take(8):\n        yield [tf.cast(x, tf.float32)]\n"
            + _CONV.replace("= representative_dataset", "= tf.lite.RepresentativeDataset(gen)"),
            message="float64",
        ),
    ]

    def finish(self) -> None:
        blocks = [b for b in self.converter_blocks() if "representative_dataset" in b.settings]
        if not blocks or self.ctx.activity.test:
            return
        module = self.ctx.module
        self._eval = Evaluator(self.names)
        self._defs: dict[int, tuple[cst.FunctionDef, list[cst.FunctionDef]]] = {}
        for p in map(statement_preorder, module.body):  # every def with the defs around it
            nodes, end = p.nodes, p.end
            around: list[tuple[int, cst.FunctionDef]] = []  # (end of its subtree, def), outermost first
            for i in p.statements.values():  # in pre-order; a def is a statement
                node = nodes[i]
                if type(node) is not cst.FunctionDef:  # type identity: isinstance misses on libcst's ABCs are slow
                    continue
                while around and around[-1][0] <= i:
                    around.pop()
                self._defs[id(node)] = (node, [f for _, f in reversed(around)])
                around.append((end[i], node))
        self._tables: dict[int, dict[str, list[Binding]]] = {}
        self._module_table = scope_bindings(module)
        self._anywhere = names_bound_anywhere(module, self.names)
        self._star = any(isinstance(i, cst.ImportFrom) and isinstance(i.names, cst.ImportStar) for i in self.names.imports)
        for b in blocks:
            self._check_block(b)

    # -- scopes ----------------------------------------------------------------------------
    def _table(self, fn: cst.FunctionDef) -> dict[str, list[Binding]]:
        t = self._tables.get(id(fn))
        if t is None:
            t = self._tables[id(fn)] = function_bindings(fn)
        return t

    def _scope_of(self, fn: cst.FunctionDef | None, inner: bool = True) -> Scope:
        """Names as seen inside `fn` (inner) or in the scope that defines it."""
        tables = [self._module_table]
        if fn is not None:
            _, chain = self._defs.get(id(fn), (fn, []))
            tables = [self._table(f) for f in chain] + tables
            if inner:
                tables.insert(0, self._table(fn))
        return Scope(tables, self._anywhere, self._star)

    def _block_scope(self, b: ConverterBlock) -> Scope:
        fn = self._defs.get(b.scope, (None,))[0] if b.scope is not None else None
        return self._scope_of(fn)

    # -- the generator ---------------------------------------------------------------------
    def _check_block(self, b: ConverterBlock) -> None:
        scope = self._block_scope(b)
        inputs = self._model_inputs(b, scope)
        value = b.settings["representative_dataset"].value
        for _ in range(4):  # through wrappers and names bound to them
            if isinstance(value, cst.Call) and self.names.canon(value.func) in WRAPPERS and value.args:
                value = value.args[0].value
                continue
            bnd = scope.lookup(value.value) if isinstance(value, cst.Name) else None
            if isinstance(bnd, Binding) and bnd.how == "expr" and (
                isinstance(bnd.node, cst.Lambda) or (isinstance(bnd.node, cst.Call) and self.names.canon(bnd.node.func) in WRAPPERS)
            ):
                value = bnd.node
                continue
            break
        if isinstance(value, cst.Name):
            bnd = scope.lookup(value.value)
            if isinstance(bnd, Binding) and bnd.how == "def":
                self._check_def(bnd.node, inputs)
        elif isinstance(value, cst.Lambda):
            self._check_lambda(value, scope, inputs)
        elif isinstance(value, cst.GeneratorExp):
            self.report(
                value, "`representative_dataset` is a generator object: the converter calls it (`TypeError: 'generator' object is not callable`)",
                fix="Make it a function: `lambda: (...)`", applicability=Applicability.SAFE,
                edits=[Replace(value, cst.Lambda(cst.Parameters(), value.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])))],
            )
            self._check_comprehension(value, scope, inputs)
        elif isinstance(value, cst.Call) and isinstance(value.func, cst.Name) and not value.args:
            bnd = scope.lookup(value.func.value)
            if isinstance(bnd, Binding) and bnd.how == "def" and self._yields(bnd.node):
                self.report(
                    value, f"`representative_dataset` is the generator object `{value.func.value}()`: the converter calls it (`TypeError: 'generator' object is not callable`)",
                    fix=f"Pass the function: `{value.func.value}`", applicability=Applicability.SAFE,
                    edits=[Replace(value, value.func)],
                )
                self._check_def(bnd.node, inputs)

    @staticmethod
    def _yields(fn: cst.FunctionDef) -> list[cst.Yield]:
        out: list[cst.Yield] = []
        stack: list[Any] = [fn.body]
        while stack:
            x = stack.pop()
            if isinstance(x, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
                continue
            if isinstance(x, cst.Yield) and isinstance(x.value, cst.BaseExpression):
                out.append(x)
            stack.extend(c for c in x.children if isinstance(c, cst.CSTNode))
        return out

    def _check_def(self, fn: cst.FunctionDef, inputs: list[InputSpec] | None) -> None:
        scope = self._scope_of(fn)
        for y in self._yields(fn):
            self._check_sample(y, y.value, scope, inputs, fn.name.value)  # type: ignore[arg-type]

    def _check_lambda(self, lam: cst.Lambda, scope: Scope, inputs: list[InputSpec] | None) -> None:
        body = lam.body
        if isinstance(body, (cst.GeneratorExp, cst.ListComp)):
            self._check_comprehension(body, scope, inputs)
        elif isinstance(body, cst.Call) and isinstance(body.func, cst.Name):
            bnd = scope.lookup(body.func.value)
            if isinstance(bnd, Binding) and bnd.how == "def":
                self._check_def(bnd.node, inputs)

    def _check_comprehension(self, comp: cst.GeneratorExp | cst.ListComp, scope: Scope, inputs: list[InputSpec] | None) -> None:
        table: dict[str, list[Binding]] = {}
        f: Any = comp.for_in
        while f is not None:
            it = f.iter
            tgt = f.target
            if isinstance(tgt, cst.Name):
                table.setdefault(tgt.value, []).append(Binding("iter", it))
            elif isinstance(tgt, (cst.Tuple, cst.List)):
                for i, e in enumerate(tgt.elements):
                    if isinstance(e.value, cst.Name):
                        table.setdefault(e.value.value, []).append(Binding("iter", it, i))
            f = f.inner_for_in
        self._check_sample(comp, comp.elt, scope.inner(table), inputs, "lambda")

    # -- the model's inputs ----------------------------------------------------------------
    def _model_inputs(self, b: ConverterBlock, scope: Scope) -> list[InputSpec] | None:
        m = b.model_arg
        if isinstance(m, cst.Name):
            bnd = scope.lookup(m.value)
            m = bnd.node if isinstance(bnd, Binding) and bnd.how == "expr" else None
        if not isinstance(m, cst.Call):
            return None
        c = self.names.canon(m.func)
        if c in MODELS:
            a = arg(m, 0, "inputs")
            if a is None:
                return None
            given = a.value
            if isinstance(given, cst.Name):  # `inputs = [Input(...), Input(...)]; Model(inputs, ...)`
                bnd = scope.lookup(given.value)
                if isinstance(bnd, Binding) and bnd.how == "expr" and isinstance(bnd.node, (cst.List, cst.Tuple)):
                    given = bnd.node
            items = [e.value for e in given.elements] if isinstance(given, (cst.List, cst.Tuple)) else [given]
            specs = [self._input(i, scope) for i in items]
            return None if any(s is None for s in specs) else specs  # type: ignore[return-value]
        if c in SEQUENTIAL:
            layers = arg(m, 0, "layers")
            first = layers.value.elements[0].value if layers is not None and isinstance(layers.value, cst.List) and layers.value.elements else None
            spec = self._input(first, scope) if first is not None else None
            if spec is None and isinstance(first, cst.Call):
                shape = arg(first, None, "input_shape")
                spec = InputSpec(None, literal_shape(shape.value) if shape else None, None, "float32")
            return [spec] if spec is not None else None
        return None

    def _input(self, node: cst.BaseExpression, scope: Scope) -> InputSpec | None:
        if isinstance(node, cst.Name):
            bnd = scope.lookup(node.value)
            node = bnd.node if isinstance(bnd, Binding) and bnd.how == "expr" else None  # type: ignore[assignment]
        if not isinstance(node, cst.Call) or self.names.canon(node.func) not in INPUTS:
            return None
        shape, batch = arg(node, 0, "shape") or arg(node, None, "input_shape"), arg(node, None, "batch_size")
        full = arg(node, None, "batch_shape") or arg(node, None, "batch_input_shape")
        dims = literal_shape(shape.value) if shape is not None else None
        fixed = None
        if batch is not None:
            fixed = (literal_shape(batch.value) or (None,))[0]
        if full is not None and (fd := literal_shape(full.value)):
            dims, fixed = fd[1:], fd[0]
        name = arg(node, None, "name")
        dt = arg(node, None, "dtype")
        return InputSpec(
            string_value(name.value) if name is not None else None, dims, fixed,
            (dtype_name(dt.value, self.names) if dt is not None else "float32") or "?",
        )

    # -- one sample ------------------------------------------------------------------------
    def _check_sample(self, at: cst.CSTNode, node: cst.BaseExpression, scope: Scope, inputs: list[InputSpec] | None, fname: str) -> None:
        v = self._eval.value(node, scope)
        self._imports: list[Any] = []
        where = f"`{fname}` yields" if fname != "lambda" else "The representative dataset yields"
        if v.kind in ("builtin", "unbound"):
            self._bad_name(at, node, where, v.kind)
            return
        if v.kind in ("string", "scalar"):
            self.report(at, f"{where} a {'string' if v.kind == 'string' else 'number'}, not a list of float32 arrays", fix="Yield `[x]` with `x` a float32 array of the model's input shape, batch 1", applicability=Applicability.DISPLAY_ONLY)
            return
        if v.kind == "tuple" and len(v.items) == 2 and v.items[1].kind == "dict":
            return  # (signature key, {name: array})
        problems: list[str] = []
        hints: list[str] = []
        rewritable = True
        if v.kind == "array":
            items, nodes, keys = [v], [node], None
            problems.append("a bare array (the converter wants a list, or a dict keyed by input name)")
        elif v.kind in ("list", "tuple"):
            items, keys = list(v.items), None
            if isinstance(node, (cst.List, cst.Tuple)):
                nodes = [e.value for e in node.elements]
            else:  # a name bound to a list: checked, but the fix is said, not made
                nodes = [node] * len(items)
                rewritable = False
            if v.kind == "tuple":
                problems.append("a tuple (the converter reads a tuple as (signature key, inputs dict))")
        elif v.kind == "dict" and isinstance(node, cst.Dict):
            items, nodes, keys = list(v.items), [e.value for e in node.elements], list(v.keys)  # type: ignore[union-attr]
        else:
            return
        for item, n in zip(items, nodes):
            if item.kind in ("builtin", "unbound"):
                self._bad_name(at, n, where, item.kind)
                return
        specs: list[InputSpec | None] = [None] * len(items)
        if inputs is not None:
            if keys is not None:
                by_name = {s.name: s for s in inputs}
                specs = [by_name.get(k) for k in keys]
                names = {s.name for s in inputs}
                if None not in names and None not in keys and set(keys) != names:
                    hints.append(f"Key the dict by the input names {sorted(names)} (the converter raises KeyError)")
                    problems.append(f"dict keys {sorted(keys)} that are not the model's input names")  # type: ignore[type-var]
            elif len(inputs) == len(items):
                specs = list(inputs)
            elif all(i.kind != "unknown" for i in items):
                problems.append(f"{len(items)} array(s) for a model with {len(inputs)} input(s)")
                hints.append("Yield one array per model input")
        new_nodes = []
        for item, n, spec in zip(items, nodes, specs):
            code = self.code_for(n)
            if item.kind != "array":
                if item.batch is not None and item.batch != 1 and self._fixed_batch(spec):
                    problems.append(f"a batch of {item.batch} (the model's batch is 1)")
                    hints.append("Yield one sample at a time (`.batch(1)`, `x[i:i + 1]`)")
                new_nodes.append(code)
                continue
            if spec is not None and spec.shape is not None and item.shape is not None and len(item.shape) == len(spec.shape):
                problems.append(f"a sample without the batch axis ({_shape(item.shape)} where the input is {_shape((spec.batch, *spec.shape))})")
                code = f"{self._paren(code, n)}[None]"
                item = Val("array", item.lib, item.dtype, (1, *item.shape))
                n = cst.parse_expression(code)
            want = spec.dtype if spec is not None else "float32"
            if item.dtype is not None and item.dtype != want:
                if self._int_cast(n):
                    return  # QF104 owns a cast to int8/uint8
                if item.dtype.startswith("float") and want == "float32":
                    problems.append(f"{item.dtype} data (the converter raises `Cannot set tensor: Got value of type {item.dtype.upper()} but expected type FLOAT32`)")
                    code = self._to_float32(code, n, item)
                elif spec is not None:
                    problems.append(f"{item.dtype} data for a {want} input")
                    hints.append(f"Yield {want} data in the range the model was trained on")
            lead = item.batch if spec is None or spec.shape is None or item.shape is None else (item.shape[0] if len(item.shape) == len(spec.shape) + 1 else None)
            if lead is not None and lead != 1 and self._fixed_batch(spec):
                problems.append(f"a batch of {lead} (the model's batch is 1)")
                hints.append("Yield one sample at a time (`.batch(1)`, `x[i:i + 1]`)")
            new_nodes.append(code)
        positional = inputs is not None and len(inputs) >= 2 and keys is None and v.kind in ("list", "tuple", "array")
        if positional:
            # whatever the names: inputs `a`, `b` came out as (b, a) in TF 2.21, `img`, `feat`
            # as (feat, img); a list goes by the converted graph's order, which says neither
            names = [s.name for s in inputs]  # type: ignore[union-attr]
            problems.append(
                f"a positional list for a model with {len(inputs)} inputs: the converted model's input order need not "  # type: ignore[arg-type]
                "be the Keras order (TF 2.21 put `b` before `a`), so a list can feed the wrong tensors (`RuntimeError: "
                "Attempting to resize dimension ...` where the shapes differ, calibration on swapped data where they "
                "match); yield a dict keyed by input name"
            )
            if None in names or len(names) != len(new_nodes):
                hints.append("Name each `Input(..., name=...)` and yield a dict keyed by those names")
        if not problems:
            return
        msg = f"{where} " + "; ".join(dict.fromkeys(problems))
        if hints or not rewritable:
            hint = "; ".join(dict.fromkeys(hints)) or "Yield a list (a dict keyed by input name for several inputs) of float32 arrays with a batch of 1"
            self.report(at, msg, fix=hint, applicability=Applicability.DISPLAY_ONLY)
            return
        if positional:
            new = "{" + ", ".join(f'"{s.name}": {c}' for s, c in zip(inputs, new_nodes)) + "}"  # type: ignore[union-attr, arg-type]
        elif keys is not None:
            new = "{" + ", ".join(f"{self.code_for(e.key)}: {c}" for e, c in zip(node.elements, new_nodes)) + "}"  # type: ignore[union-attr]
        else:
            new = "[" + ", ".join(new_nodes) + "]"
        try:
            edits = [Replace(node, cst.parse_expression(new)), *self._imports]
        except cst.ParserSyntaxError:  # an element qfix cannot re-print on its own: say it instead
            self.report(at, msg, fix=f"Yield `{new}`", applicability=Applicability.DISPLAY_ONLY)
            return
        self.report(at, msg, fix=f"Yield `{new}`", applicability=Applicability.SAFE, edits=edits)

    def _bad_name(self, at: cst.CSTNode, node: cst.BaseExpression, where: str, kind: str) -> None:
        name = self.code_for(node)
        what = (
            f"Python's builtin `{name}`, not data (the converter raises `AttributeError: 'builtin_function_or_method' object has no attribute 'shape'`)"
            if kind == "builtin" else f"`{name}`, which is not defined (NameError)"
        )
        self.report(
            at, f"{where} {what}",
            fix="Yield real, preprocessed samples: `for x in calibration_images[:200]: yield [x[None].astype(np.float32)]`",
            applicability=Applicability.DISPLAY_ONLY,
        )

    def _fixed_batch(self, spec: InputSpec | None) -> bool:
        """The model's batch is fixed in the file, or will be (a static-shape target: QF301)."""
        return (spec is not None and spec.batch is not None) or bool(self.ctx.target is not None and self.ctx.target.static_shapes)

    def _int_cast(self, node: cst.BaseExpression) -> bool:
        if not isinstance(node, cst.Call):
            return False
        if isinstance(node.func, cst.Attribute) and node.func.attr.value == "astype":
            a = arg(node, 0, "dtype")
            return a is not None and dtype_name(a.value, self.names) in INT_CASTS
        if self.names.canon(node.func) in ("tensorflow.cast", "tensorflow.saturate_cast"):
            a = arg(node, 1, "dtype")
            return a is not None and dtype_name(a.value, self.names) in INT_CASTS
        return False

    @staticmethod
    def _paren(code: str, node: cst.BaseExpression) -> str:
        simple = (cst.Name, cst.Attribute, cst.Call, cst.Subscript, cst.List, cst.Tuple, cst.Dict)
        return code if isinstance(node, simple) else f"({code})"

    def _to_float32(self, code: str, node: cst.BaseExpression, item: Val) -> str:
        if item.lib == "numpy":
            np_, imports = self.spelling("numpy", "np")
            self._imports.extend(imports)
            return f"{self._paren(code, node)}.astype({np_}.float32)"
        tf, imports = self.spelling("tensorflow", "tf")
        self._imports.extend(imports)
        return f"{tf}.cast({code}, {tf}.float32)"
