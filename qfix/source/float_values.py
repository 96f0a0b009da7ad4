"""Which expressions hold float data, where it came from and the range it lies in, followed
through the names a function (or the module) binds: cheap, without libcst's scope analysis.

`x = tf.random.normal((1, 10))` makes `x` float data from `tf.random.normal(...)`, unbounded;
`y = np.random.rand(1, 8) * 255.0` makes `y` float data in [0, 255]. Float data comes from
random draws, float literals, `np.zeros` / `np.ones` / `np.full` (float or default dtype),
casts to a float dtype, a model's or a layer's output (`model(x)`, `model.predict(x)`,
`Dense(4)(x)`) and any true division; it flows through arithmetic, subscripts, reshapes and
the elementwise functions that keep the dtype (`clip`, `round`, `abs`, ...). Rebinding a name
to anything else forgets it; a function's parameters are unknown.

Mixed into a SourceRule like `ConverterAnalysis`: the hooks run in the batched walk (an
assignment is recorded when the walk leaves it, so `x = f(x)` sees the old `x`), and
`float_value(expr)` answers for the scope the walk is in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import libcst as cst

from qfix.source.names import dotted, last_name
from qfix.source.util import arg, dtype_name, number

FLOAT_DTYPES = frozenset({"float16", "bfloat16", "float32", "float64", "half", "float", "double"})

# random draws of floats: canonical name -> (low, high) of the default range (None: unbounded)
_UNIT = (0.0, 1.0)
RANDOM_FLOATS: dict[str, tuple[float | None, float | None]] = {
    "tensorflow.random.normal": (None, None),
    "tensorflow.random.truncated_normal": (-2.0, 2.0),
    "tensorflow.random.uniform": _UNIT,
    "tensorflow.random.stateless_normal": (None, None),
    "tensorflow.random.stateless_uniform": _UNIT,
    "keras.random.normal": (None, None),
    "keras.random.truncated_normal": (-2.0, 2.0),
    "keras.random.uniform": _UNIT,
    "numpy.random.rand": _UNIT,
    "numpy.random.random": _UNIT,
    "numpy.random.random_sample": _UNIT,
    "numpy.random.ranf": _UNIT,
    "numpy.random.sample": _UNIT,
    "numpy.random.randn": (None, None),
    "numpy.random.standard_normal": (None, None),
    "numpy.random.normal": (None, None),
    "numpy.random.uniform": _UNIT,
}
# numpy.random.Generator methods (rng = np.random.default_rng())
GENERATOR_FLOATS = {"random": _UNIT, "standard_normal": (None, None), "normal": (None, None), "uniform": _UNIT}
GENERATORS = {"numpy.random.default_rng", "numpy.random.RandomState", "numpy.random.Generator"}
FILLED = {"numpy.zeros": 0.0, "numpy.ones": 1.0, "tensorflow.zeros": 0.0, "tensorflow.ones": 1.0}
MODEL_MAKERS = {
    "keras.Model", "keras.models.Model", "keras.Sequential", "keras.models.Sequential",
    "keras.models.load_model", "keras.saving.load_model", "tfmot.quantization.keras.quantize_model",
}
CASTS = {"tensorflow.cast", "keras.ops.cast", "keras.backend.cast", "tensorflow.saturate_cast"}
# functions and methods whose result has the dtype (and, for the first group, the range) of
# their first argument
_SAME_RANGE = {"round", "rint", "floor", "ceil", "squeeze", "expand_dims", "reshape", "transpose",
               "flatten", "ravel", "numpy", "copy", "asarray", "array", "convert_to_tensor", "stack", "concat", "concatenate"}
_SAME_DTYPE = {"abs", "sqrt", "exp", "log", "tanh", "sigmoid", "softmax", "minimum", "maximum", "mean", "sum", "resize"}
_CLIPS = {"clip", "clip_by_value"}


DIVISION = "a division"


@dataclass(frozen=True)
class FloatValue:
    """Float data: `source` says where it came from (for messages); `low`/`high` bound its
    values (None: unbounded or unknown)."""

    source: str
    low: float | None = None
    high: float | None = None

    def bounded(self) -> bool:
        return self.low is not None and self.high is not None

    def span(self, low: float | None, high: float | None) -> "FloatValue":
        return FloatValue(self.source, low, high)


_MODEL = object()  # a binding to a Keras model
_RNG = object()  # a binding to a numpy random Generator
_UNKNOWN = object()  # a parameter, a loop variable: hides module-level bindings


class FloatValues:
    """Mixin for SourceRule subclasses."""

    def _fv_scopes(self) -> dict[Any, dict[str, Any]]:
        st = self.__dict__.get("_fv")
        if st is None:
            st = self.__dict__["_fv"] = {None: {}}
        return st

    def _fv_here(self) -> dict[str, Any]:
        scope = self.ctx.scope  # type: ignore[attr-defined]
        return self._fv_scopes().setdefault(id(scope) if scope is not None else None, {})

    def _fv_lookup(self, name: str) -> Any:
        here = self._fv_here()
        if name in here:
            return here[name]
        return self._fv_scopes()[None].get(name)

    def _fv_returns(self) -> dict[str, Any]:
        """Module-level function name -> what all its `return`s give (a FloatValue, or
        _UNKNOWN once one return is not float data or the name is defined twice)."""
        st = self.__dict__.get("_fv_ret")
        if st is None:
            st = self.__dict__["_fv_ret"] = {}
        return st

    # hooks --------------------------------------------------------------------------------
    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        if len(self.ctx.function_stack) == 1:  # type: ignore[attr-defined]
            rets = self._fv_returns()
            rets[node.name.value] = _UNKNOWN if node.name.value in rets else None  # None: no return seen yet
        # the engine pushes the scope before the rules' hooks: this is the function's own table
        here = self._fv_here()
        p = node.params
        for param in (*p.posonly_params, *p.params, *p.kwonly_params):
            here[param.name.value] = _UNKNOWN

    def leave_Return(self, node: cst.Return) -> None:
        """`def preprocess(img): return img / 255.0`: a call `preprocess(x)` later in the file
        gives what every return of it gives (judged with the function's own bindings)."""
        stack = self.ctx.function_stack  # type: ignore[attr-defined]
        if len(stack) != 1:
            return
        rets = self._fv_returns()
        name = stack[0].name.value
        if rets.get(name, _UNKNOWN) is _UNKNOWN:
            return
        v = self.float_value(node.value) if node.value is not None else None
        prev = rets[name]
        if v is None or (prev is not None and prev != v):
            rets[name] = _UNKNOWN if prev is None or v is None else FloatValue(prev.source)  # two float returns: unbounded
        else:
            rets[name] = v

    def leave_Assign(self, node: cst.Assign) -> None:
        value = self._fv_binding(node.value)
        for t in node.targets:
            self._fv_bind(t.target, value)

    def leave_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None:
            self._fv_bind(node.target, self._fv_binding(node.value))

    def leave_AugAssign(self, node: cst.AugAssign) -> None:
        if isinstance(node.target, cst.Name):  # `x *= 255.0` is `x = x * 255.0`
            op = _BINARY.get(type(node.operator), cst.BitOr)()
            self._fv_bind(node.target, self.float_value(cst.BinaryOperation(node.target, op, node.value)))

    def visit_For(self, node: cst.For) -> None:
        self._fv_bind(node.target, _UNKNOWN)

    def _fv_bind(self, target: cst.BaseExpression, value: Any) -> None:
        if isinstance(target, cst.Name):
            self._fv_here()[target.value] = value if value is not None else _UNKNOWN
        elif isinstance(target, (cst.Tuple, cst.List)):
            for e in target.elements:
                self._fv_bind(e.value, _UNKNOWN)

    def _fv_binding(self, value: cst.BaseExpression) -> Any:
        if isinstance(value, cst.Call) and (last_name(value.func) in _MAKER_NAMES or "applications" in (dotted(value.func) or "")):
            c = self.names.canon(value.func)  # type: ignore[attr-defined]
            if c in MODEL_MAKERS or (c or "").startswith("keras.applications."):
                return _MODEL
            if c in GENERATORS:
                return _RNG
        return self.float_value(value)

    # the questions --------------------------------------------------------------------------
    def is_generator(self, node: cst.BaseExpression) -> bool:
        """`node` is a NumPy random Generator: `np.random.default_rng(...)` or a name bound to one."""
        if isinstance(node, cst.Name):
            return self._fv_lookup(node.value) is _RNG
        return isinstance(node, cst.Call) and self.names.canon(node.func) in GENERATORS  # type: ignore[attr-defined]

    def float_value(self, node: cst.BaseExpression) -> FloatValue | None:
        """Float data `node` evaluates to in the current scope, or None when it is not known
        to be float (an integer, a parameter, anything not followed)."""
        if isinstance(node, cst.Float):
            v = number(node)
            return FloatValue("a float literal", v, v)
        if isinstance(node, cst.Name):
            v = self._fv_lookup(node.value)
            return v if isinstance(v, FloatValue) else None
        if isinstance(node, cst.UnaryOperation):
            v = self.float_value(node.expression)
            if v is not None and isinstance(node.operator, cst.Minus):
                return v.span(-v.high if v.high is not None else None, -v.low if v.low is not None else None)
            return v
        if isinstance(node, cst.BinaryOperation):
            return self._binary(node)
        if isinstance(node, cst.Subscript):
            return self.float_value(node.value)
        if isinstance(node, cst.Call):
            return self._call(node)
        return None

    def _binary(self, node: cst.BinaryOperation) -> FloatValue | None:
        op = node.operator
        left, right = self.float_value(node.left), self.float_value(node.right)
        data = left if left is not None and left.source != "a float literal" else right
        if isinstance(op, cst.Divide) and (data is None or data.source in ("a float literal", DIVISION)):
            return FloatValue(DIVISION)  # true division gives floats whatever the operands
        if data is None or data.source in ("a float literal", DIVISION):
            return None  # `x / x.max() * 255`: a rescale of unknown data is left alone
        lc, rc = number(node.left), number(node.right)
        const = rc if data is left else lc
        if isinstance(op, cst.Divide) and data is left and const is not None and data.source.startswith("a cast to"):
            return FloatValue(DIVISION)  # `img.astype(np.float32) / 255.0`: a normalisation to [0, 1]
        if const is None or not data.bounded():
            return data.span(None, None)
        lo, hi = data.low, data.high
        if isinstance(op, cst.Multiply):
            a, b = lo * const, hi * const  # type: ignore[operator]
        elif isinstance(op, cst.Divide) and data is left and const != 0:
            a, b = lo / const, hi / const  # type: ignore[operator]
        elif isinstance(op, cst.Add):
            a, b = lo + const, hi + const  # type: ignore[operator]
        elif isinstance(op, cst.Subtract):
            a, b = (lo - const, hi - const) if data is left else (const - hi, const - lo)  # type: ignore[operator]
        else:
            return data.span(None, None)
        return data.span(min(a, b), max(a, b))

    def _call(self, node: cst.Call) -> FloatValue | None:
        func = node.func
        name = last_name(func)
        if name not in _CALL_NAMES and not isinstance(func, (cst.Name, cst.Call)):
            return None  # cheap exit for the many calls that cannot give float data
        c = self.names.canon(func)  # type: ignore[attr-defined]
        d = arg(node, None, "dtype")
        dtype = dtype_name(d.value, self.names) if d is not None else None  # type: ignore[attr-defined]
        if d is not None and dtype not in FLOAT_DTYPES:
            return None  # an integer dtype, or one we cannot read
        if c in RANDOM_FLOATS:
            return FloatValue(self._described(func), *self._draw_range(node, c, RANDOM_FLOATS[c]))
        if isinstance(func, cst.Attribute) and name in GENERATOR_FLOATS:
            if self.is_generator(func.value):
                return FloatValue(self._described(func), *self._draw_range(node, "numpy.random." + name, GENERATOR_FLOATS[name]))
        if c in FILLED:
            return FloatValue(self._described(func), FILLED[c], FILLED[c])
        if c in ("numpy.full", "tensorflow.fill"):
            fill = arg(node, 1, "fill_value" if c == "numpy.full" else "value")
            v = number(fill.value) if fill is not None else None
            if fill is not None and (dtype is not None or isinstance(fill.value, cst.Float)):
                return FloatValue(self._described(func), v, v)
            return None
        if c in CASTS or name == "astype":
            target = arg(node, 1, "dtype") if c in CASTS else arg(node, 0, "dtype")
            if target is not None and dtype_name(target.value, self.names) in FLOAT_DTYPES:  # type: ignore[attr-defined]
                operand = func.value if name == "astype" else (arg(node, 0, "x") or target).value  # type: ignore[union-attr]
                inner = self.float_value(operand)
                return inner or FloatValue(f"a cast to {dtype_name(target.value, self.names)}")  # type: ignore[attr-defined]
            return None
        if c is not None and c.startswith("numpy.float") and node.args:
            return self.float_value(node.args[0].value) or FloatValue(self._described(func))
        # a model's or a layer's output
        if isinstance(func, cst.Name) and self._fv_lookup(func.value) is _MODEL:
            return FloatValue(f"the output of `{func.value}`")
        if isinstance(func, cst.Name) and func.value not in self._fv_scopes()[None] and func.value not in self._fv_here():
            ret = self._fv_returns().get(func.value)
            if isinstance(ret, FloatValue):  # the file's own function, defined above, not rebound
                return ret
        if isinstance(func, cst.Attribute) and name == "predict":
            owner = func.value
            if isinstance(owner, cst.Name) and self._fv_lookup(owner.value) is _MODEL:
                return FloatValue(f"`{owner.value}.predict(...)`")
        if isinstance(func, cst.Call) and (self.names.canon(func.func) or "").startswith("keras.layers."):  # type: ignore[attr-defined]
            return FloatValue(f"the output of `{dotted(func.func) or self.code_for(func.func)}`")  # type: ignore[attr-defined]
        # functions and methods that keep the dtype of their first argument (or the receiver)
        if name in _SAME_RANGE or name in _SAME_DTYPE or name in _CLIPS:
            first = arg(node, 0, None)
            data = None
            if first is not None and (c or "").startswith(("numpy.", "tensorflow.", "keras.ops.")):
                data = self.float_value(first.value)
            elif isinstance(func, cst.Attribute) and c is None:
                data = self.float_value(func.value)  # x.reshape(...), x.numpy(), x.clip(...)
                first = None
            if data is None:
                return None
            if name in _CLIPS:
                args = node.args[1:] if first is not None else node.args
                lo = number(args[0].value) if len(args) > 0 else None
                hi = number(args[1].value) if len(args) > 1 else None
                return data.span(lo, hi) if lo is not None and hi is not None else data
            return data if name in _SAME_RANGE else data.span(None, None)
        return None

    def _described(self, func: cst.BaseExpression) -> str:
        return f"`{dotted(func) or self.code_for(func)}(...)`"  # type: ignore[attr-defined]

    def _draw_range(self, node: cst.Call, canon: str, default: tuple[float | None, float | None]) -> tuple[float | None, float | None]:
        """The range of a random draw: its default, or the literal bounds it is given."""
        if default == (None, None):
            return default
        if canon.endswith("truncated_normal"):  # mean +- 2 stddev
            return default if len(node.args) == 1 else (None, None)
        if canon == "numpy.random.uniform":
            lo_arg, hi_arg = arg(node, 0, "low"), arg(node, 1, "high")
        elif canon.startswith("numpy."):
            return default
        else:  # tf/keras: (shape, minval, maxval) or stateless (shape, seed, minval, maxval)
            first = 2 if "stateless" in canon else 1
            lo_arg, hi_arg = arg(node, first, "minval"), arg(node, first + 1, "maxval")
        lo = number(lo_arg.value, self.names) if lo_arg is not None else default[0]  # type: ignore[attr-defined]
        hi = number(hi_arg.value, self.names) if hi_arg is not None else default[1]  # type: ignore[attr-defined]
        return lo, hi


_MAKER_NAMES = {m.rsplit(".", 1)[-1] for m in MODEL_MAKERS | GENERATORS}
_CALL_NAMES = (
    {k.rsplit(".", 1)[-1] for k in (*RANDOM_FLOATS, *FILLED, *CASTS)}
    | set(GENERATOR_FLOATS) | _SAME_RANGE | _SAME_DTYPE | _CLIPS
    | {"full", "fill", "astype", "predict", "float16", "float32", "float64"}
)
_BINARY = {
    cst.AddAssign: cst.Add, cst.SubtractAssign: cst.Subtract, cst.MultiplyAssign: cst.Multiply,
    cst.DivideAssign: cst.Divide, cst.FloorDivideAssign: cst.FloorDivide, cst.PowerAssign: cst.Power,
}
