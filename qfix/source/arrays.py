"""What an expression in a script evaluates to, as far as the text says: an array (library,
dtype, shape), a sequence of them, a `tf.data.Dataset`, a builtin or an unbound name.

Used by QF406 to follow a representative-dataset generator. No TensorFlow or NumPy import:
the facts are their documented defaults (`np.random.rand` -> float64, `tf.random.normal` ->
float32, ...). Anything not written out literally is `UNKNOWN`, and rules stay silent on it.

Names resolve through `Bindings`: each function's (and the module's) assignments, `for`
targets and parameters, read once per file; a name bound more than once is UNKNOWN.
"""

from __future__ import annotations

import builtins
import math
from dataclasses import dataclass, replace
from typing import Any

import libcst as cst

from qfix.source import memo
from qfix.source.names import Names
from qfix.source.preorder import region, statement_preorder, subtree
from qfix.source.util import arg, iter_nodes, number, string_value

BUILTIN_NAMES = frozenset(dir(builtins))


@dataclass(frozen=True)
class Val:
    """kind: "array", "list", "tuple", "dict", "dataset", "scalar", "string", "builtin",
    "unbound", "unknown". For arrays: lib ("numpy" | "tensorflow" | None), dtype (NumPy name),
    shape (dims, None for an unknown dim; None for an unknown rank) and batch (the leading dim
    when known without the rest, e.g. from `.batch(n)`). Sequences keep their items (and the
    dict's keys, None where not a string literal); a dataset its element."""

    kind: str
    lib: str | None = None
    dtype: str | None = None
    shape: tuple[int | None, ...] | None = None
    batch: int | None = None
    items: tuple["Val", ...] = ()
    keys: tuple[str | None, ...] = ()
    elem: "Val | None" = None

    @property
    def lead(self) -> int | None:
        """The leading (batch) dimension if known."""
        if self.shape:
            return self.shape[0]
        return self.batch

    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)


UNKNOWN = Val("unknown")
_DTYPES = {
    "float16", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32", "int64", "bool",
    "half", "single", "double",
}
_ALIASES = {"half": "float16", "single": "float32", "double": "float64", "float": "float64", "int": "int64"}
_NP_RAND_DIMS = {"numpy.random.rand", "numpy.random.randn"}
_NP_RAND_SIZE = {  # name -> position of `size`
    "numpy.random.random_sample": 0, "numpy.random.random": 0, "numpy.random.ranf": 0, "numpy.random.sample": 0,
    "numpy.random.uniform": 2, "numpy.random.normal": 2, "numpy.random.standard_normal": 0,
}
_NP_FILLED = {"numpy.zeros", "numpy.ones", "numpy.empty"}
_TF_RANDOM = {"tensorflow.random.normal", "tensorflow.random.uniform", "tensorflow.random.truncated_normal", "tensorflow.zeros", "tensorflow.ones"}
_DATASET_SAME = {"take", "skip", "shuffle", "prefetch", "repeat", "cache", "as_numpy_iterator", "with_options"}


def dtype_name(node: cst.BaseExpression | None, names: Names) -> str | None:
    """`np.float32`, `tf.float32`, `"float32"`, `np.uint8` ... -> "float32" ...; None if unknown."""
    if node is None:
        return None
    s = string_value(node)
    if s is None:
        c = names.canon(node) or ""
        if c.startswith(("numpy.", "tensorflow.")) and c.count(".") == 1:
            s = c.split(".", 1)[1]
        elif c == "float":
            s = "float"
    if s is None:
        return None
    s = _ALIASES.get(s, s)
    return s if s in _DTYPES else None


def _int(v: float | None) -> int | None:
    """A dimension from a constant: whole, finite and not absurd (hostile input stays None)."""
    return int(v) if v is not None and math.isfinite(v) and v == int(v) and abs(v) < 2**31 else None


def literal_shape(node: cst.BaseExpression | None) -> tuple[int | None, ...] | None:
    """A literal shape: `(1, 4, 4, 3)`, `[1, 4]`, `4` -> (4,); None when not literal."""
    if node is None:
        return None
    if isinstance(node, (cst.Tuple, cst.List)):
        out: list[int | None] = []
        for e in node.elements:
            if isinstance(e, cst.StarredElement):
                return None
            out.append(_int(number(e.value)))
        return tuple(out)
    v = _int(number(node))
    return (v,) if v is not None else None


# --------------------------------------------------------------------------------------------
# Bindings: what a name refers to in a function or at module level
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Binding:
    """how: "expr" (node = the value), "iter" (node = the iterable, index = position in a
    tuple target, None for a plain name), "def" (node = the FunctionDef), "other" (a
    parameter, import, with-as, ...)."""

    how: str
    node: Any = None
    index: int | None = None


_SCOPES = (cst.FunctionDef, cst.ClassDef, cst.Lambda, cst.GeneratorExp, cst.ListComp, cst.SetComp, cst.DictComp)
_SCOPE_TYPES = frozenset(_SCOPES)


def _target_bindings(target: cst.BaseExpression, make) -> list[tuple[str, Binding]]:
    if isinstance(target, cst.Name):
        return [(target.value, make(None))]
    if isinstance(target, (cst.Tuple, cst.List)):
        out = []
        for i, e in enumerate(target.elements):
            inner = e.value
            if isinstance(inner, cst.Name):
                out.append((inner.value, make(i)))
            else:
                out.extend((n, Binding("other")) for n, _ in _target_bindings(inner, make))
        return out
    return []


def scope_bindings(body: cst.CSTNode, params: cst.Parameters | None = None) -> dict[str, list[Binding]]:
    """Every binding in `body`, not descending into nested functions, classes, lambdas and
    comprehensions (their names are their own)."""
    out: dict[str, list[Binding]] = {}

    def add(name: str, b: Binding) -> None:
        out.setdefault(name, []).append(b)

    if params is not None:
        for p in (*params.posonly_params, *params.params, *params.kwonly_params):
            add(p.name.value, Binding("other"))
        for p in (params.star_arg, params.star_kwarg):
            if isinstance(p, cst.Param):
                add(p.name.value, Binding("other"))
    # the nodes of `body` in pre-order (`qfix.source.preorder`): a nested scope is skipped by
    # jumping to the end of its subtree; a module's statements each have their own
    if type(body) is cst.Module:
        regions = [(p.nodes, p.end, 0, len(p.nodes)) for p in map(statement_preorder, body.body)]
    else:
        nodes, end, at = region(body)
        regions = [(nodes, end, at + 1, end[at])]
    for nodes, end, j, stop in regions:
        while j < stop:
            # `type(x) is` instead of isinstance: libcst's node classes are ABCs, whose failed
            # isinstance checks were most of this loop's time (concrete node classes have no subclasses)
            x = nodes[j]
            t = type(x)
            if t in _SCOPE_TYPES:
                if t is cst.FunctionDef:
                    add(x.name.value, Binding("def", x))
                elif t is cst.ClassDef:
                    add(x.name.value, Binding("other"))
                j = end[j]
                continue
            j += 1
            if t is cst.Assign:
                for a in x.targets:
                    tgt = a.target
                    if type(tgt) is cst.Name:
                        add(tgt.value, Binding("expr", x.value))
                    else:
                        for n, _ in _target_bindings(tgt, lambda i: Binding("other")):
                            add(n, Binding("other"))
            elif t is cst.AnnAssign and type(x.target) is cst.Name:
                add(x.target.value, Binding("expr", x.value) if x.value is not None else Binding("other"))
            elif t is cst.AugAssign and type(x.target) is cst.Name:
                add(x.target.value, Binding("other"))
            elif t is cst.For:
                it = x.iter
                for n, b in _target_bindings(x.target, lambda i, it=it: Binding("iter", it, i)):
                    add(n, b)
            elif t is cst.WithItem and x.asname is not None:
                for n, _ in _target_bindings(x.asname.name, lambda i: Binding("other")):  # type: ignore[arg-type]
                    add(n, Binding("other"))
            elif (t is cst.Import or t is cst.ImportFrom) and type(x.names) is not cst.ImportStar:
                for a in x.names:
                    local = a.asname.name if a.asname is not None else a.name
                    while type(local) is cst.Attribute:
                        local = local.value
                    if type(local) is cst.Name:
                        add(local.value, Binding("other"))
            elif t is cst.NamedExpr and type(x.target) is cst.Name:
                add(x.target.value, Binding("other"))
            elif t is cst.ExceptHandler and x.name is not None and type(x.name.name) is cst.Name:
                add(x.name.name.value, Binding("other"))
            elif t is cst.Global or t is cst.Nonlocal:
                for n in x.names:
                    add(n.name.value, Binding("other"))
    return out


class Scope:
    """A chain of binding tables, innermost first; `anywhere` = every name bound anywhere in
    the file (a name bound somewhere is never called unbound: scoping is not modelled)."""

    def __init__(self, tables: list[dict[str, list[Binding]]], anywhere: set[str], star_import: bool) -> None:
        self.tables = tables
        self.anywhere = anywhere
        self.star_import = star_import

    def inner(self, table: dict[str, list[Binding]]) -> "Scope":
        return Scope([table, *self.tables], self.anywhere, self.star_import)

    def lookup(self, name: str) -> Binding | None | str:
        """The single binding of `name`; "many" when bound more than once; "builtin" /
        "unbound" when bound nowhere in the file."""
        for t in self.tables:
            if name in t:
                bs = t[name]
                return bs[0] if len(bs) == 1 else "many"
        if name in self.anywhere or self.star_import:
            return None
        return "builtin" if name in BUILTIN_NAMES else "unbound"


def function_bindings(fn: cst.FunctionDef) -> dict[str, list[Binding]]:
    """`scope_bindings` of a function's body and parameters (kept per function by
    `qfix.source.memo` between an editor's checks; the table must not be changed)."""
    return memo.of("function_bindings", fn, lambda f: scope_bindings(f.body, f.params))


def names_bound_anywhere(module: cst.Module, names: Names) -> set[str]:
    out = set(names.aliases)
    for stmt in module.body:  # the header and footer are comment lines: no names
        out |= memo.of("bound_anywhere", stmt, _bound_in)
    return out


def _bound_in(node: cst.CSTNode) -> frozenset[str]:
    out: set[str] = set()
    for x in subtree(node):
        t = type(x)  # type identity, not isinstance: see scope_bindings
        if t is cst.Name:
            pass
        elif t is cst.FunctionDef or t is cst.ClassDef or t is cst.Param:
            out.add(x.name.value)
        elif t in _TARGET_HOLDERS:
            target = x.target
            if type(target) is cst.Name:
                out.add(target.value)
            else:
                out.update(n.value for n in iter_nodes(target) if type(n) is cst.Name)
        elif t is cst.AsName:
            out.update(n.value for n in iter_nodes(x.name) if type(n) is cst.Name)
        elif t is cst.Global or t is cst.Nonlocal:
            out.update(n.name.value for n in x.names)
    return frozenset(out)


_TARGET_HOLDERS = frozenset((cst.AssignTarget, cst.AnnAssign, cst.AugAssign, cst.For, cst.CompFor, cst.NamedExpr))


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------
class Evaluator:
    def __init__(self, names: Names) -> None:
        self.names = names

    def value(self, node: cst.BaseExpression, scope: Scope, depth: int = 0) -> Val:
        if depth > 12:
            return UNKNOWN
        d = depth + 1
        if isinstance(node, cst.Name):
            return self._name(node.value, scope, d)
        if isinstance(node, (cst.Integer, cst.Float)) or (isinstance(node, cst.UnaryOperation) and number(node) is not None):
            return Val("scalar")
        if isinstance(node, (cst.SimpleString, cst.ConcatenatedString, cst.FormattedString)):
            return Val("string")
        if isinstance(node, (cst.List, cst.Tuple)):
            if any(isinstance(e, cst.StarredElement) for e in node.elements):
                return UNKNOWN
            return Val("list" if isinstance(node, cst.List) else "tuple", items=tuple(self.value(e.value, scope, d) for e in node.elements))
        if isinstance(node, cst.Dict):
            if any(not isinstance(e, cst.DictElement) for e in node.elements):
                return UNKNOWN
            return Val(
                "dict",
                items=tuple(self.value(e.value, scope, d) for e in node.elements),  # type: ignore[union-attr]
                keys=tuple(string_value(e.key) for e in node.elements),  # type: ignore[union-attr]
            )
        if isinstance(node, cst.Call):
            return self._call(node, scope, d)
        if isinstance(node, cst.Subscript):
            return self._subscript(node, scope, d)
        if isinstance(node, cst.BinaryOperation):
            return self._binary(node, scope, d)
        return UNKNOWN

    def element(self, iterable: cst.BaseExpression, index: int | None, scope: Scope, depth: int = 0) -> Val:
        """What `for x in iterable` binds to x (`index`: position in a tuple target)."""
        v = self.value(iterable, scope, depth + 1)
        if v.kind == "dataset":
            e = v.elem or UNKNOWN
        elif v.kind == "array" and v.shape:
            e = replace(v, shape=v.shape[1:], batch=None)
        elif v.kind in ("list", "tuple") and v.items and len({x for x in v.items}) == 1:
            e = v.items[0]
        else:
            return UNKNOWN
        if index is None:
            return e
        if e.kind == "tuple" and index < len(e.items):
            return e.items[index]
        if e.batch is not None or e.lead is not None:  # (images, labels) of a batched dataset
            return Val("unknown", batch=e.lead)
        return UNKNOWN

    # -- helpers ---------------------------------------------------------------------------
    def _name(self, name: str, scope: Scope, d: int) -> Val:
        b = scope.lookup(name)
        if b in ("builtin", "unbound"):
            return Val(b)  # type: ignore[arg-type]
        if not isinstance(b, Binding):
            return UNKNOWN
        if b.how == "expr":
            return self.value(b.node, scope, d)
        if b.how == "iter":
            return self.element(b.node, b.index, scope, d)
        return UNKNOWN

    def _call(self, node: cst.Call, scope: Scope, d: int) -> Val:
        func = node.func
        c = self.names.canon(func)
        if c is not None:
            return self._library_call(c, node, scope, d)
        if isinstance(func, cst.Attribute):
            m = func.attr.value
            recv = self.value(func.value, scope, d)
            if recv.kind == "dataset" or (recv.kind == "unknown" and m == "batch"):
                return self._dataset_method(m, node, recv)
            if recv.kind == "array":
                if m == "astype":
                    a = arg(node, 0, "dtype")
                    return replace(recv, dtype=dtype_name(a.value if a else None, self.names))
                if m == "numpy":
                    return replace(recv, lib="numpy")
                if m == "reshape":
                    shape = literal_shape(node.args[0].value) if len(node.args) == 1 else literal_shape(cst.Tuple([cst.Element(a.value) for a in node.args]))
                    return replace(recv, shape=shape, batch=None)
                if m == "copy":
                    return recv
        return UNKNOWN

    def _library_call(self, c: str, node: cst.Call, scope: Scope, d: int) -> Val:
        kw_dtype = arg(node, None, "dtype")
        if c in _NP_RAND_DIMS:
            if any(a.keyword is not None or a.star for a in node.args):
                return Val("array", "numpy", "float64")
            return Val("array", "numpy", "float64", literal_shape(cst.Tuple([cst.Element(a.value) for a in node.args])) if node.args else ())
        if c in _NP_RAND_SIZE:
            s = arg(node, _NP_RAND_SIZE[c], "size")
            return Val("array", "numpy", "float64", literal_shape(s.value) if s else ())
        if c in _NP_FILLED:
            s, dt = arg(node, 0, "shape"), arg(node, 1, "dtype")
            return Val("array", "numpy", dtype_name(dt.value, self.names) if dt else "float64", literal_shape(s.value) if s else None)
        if c in _TF_RANDOM:
            s = arg(node, 0, "shape")
            return Val("array", "tensorflow", dtype_name(kw_dtype.value, self.names) if kw_dtype else "float32", literal_shape(s.value) if s else None)
        if c in ("numpy.array", "numpy.asarray", "tensorflow.constant", "tensorflow.convert_to_tensor"):
            x = arg(node, 0, None)
            inner = self.value(x.value, scope, d) if x else UNKNOWN
            lib = "numpy" if c.startswith("numpy") else "tensorflow"
            if inner.kind != "array" and kw_dtype is None:
                return Val("array", lib)
            dt = dtype_name(kw_dtype.value, self.names) if kw_dtype else inner.dtype
            return Val("array", lib, dt, inner.shape if inner.kind == "array" else None, inner.batch)
        if c.startswith(("numpy.", "tensorflow.")) and c.count(".") == 1 and dtype_name(node.func, self.names):
            x = arg(node, 0, None)  # np.float32(x)
            inner = self.value(x.value, scope, d) if x else UNKNOWN
            return Val("array", c.split(".")[0], dtype_name(node.func, self.names), inner.shape, inner.batch)
        if c == "tensorflow.cast":
            x, dt = arg(node, 0, "x"), arg(node, 1, "dtype")
            inner = self.value(x.value, scope, d) if x else UNKNOWN
            return Val("array", "tensorflow", dtype_name(dt.value, self.names) if dt else None, inner.shape, inner.batch)
        if c in ("numpy.expand_dims", "tensorflow.expand_dims"):
            x, ax = arg(node, 0, None), arg(node, 1, "axis")
            inner = self.value(x.value, scope, d) if x else UNKNOWN
            if inner.kind == "array" and ax is not None and number(ax.value) == 0:
                return replace(inner, shape=(1, *inner.shape) if inner.shape is not None else None, batch=1)
            return Val("array", inner.lib, inner.dtype) if inner.kind == "array" else UNKNOWN
        if c == "tensorflow.data.Dataset.from_tensor_slices":
            x = arg(node, 0, "tensors")
            inner = self.value(x.value, scope, d) if x else UNKNOWN
            if inner.kind == "array":
                return Val("dataset", elem=replace(inner, lib="tensorflow", shape=inner.shape[1:] if inner.shape else None, batch=None))
            if inner.kind == "tuple":
                rows = tuple(replace(i, lib="tensorflow", shape=i.shape[1:] if i.shape else None, batch=None) if i.kind == "array" else UNKNOWN for i in inner.items)
                return Val("dataset", elem=Val("tuple", items=rows))
            return Val("dataset", elem=UNKNOWN)
        return UNKNOWN

    def _dataset_method(self, m: str, node: cst.Call, recv: Val) -> Val:
        elem = recv.elem if recv.kind == "dataset" else UNKNOWN
        if m in _DATASET_SAME and recv.kind == "dataset":
            return recv
        if m == "batch":
            n = arg(node, 0, "batch_size")
            size = _int(number(n.value)) if n else None

            def batched(e: Val) -> Val:
                if e.kind == "array":
                    return replace(e, shape=(size, *e.shape) if e.shape is not None else None, batch=size)
                if e.kind == "tuple":
                    return replace(e, items=tuple(batched(i) for i in e.items), batch=size)
                return Val("unknown", batch=size)

            return Val("dataset", elem=batched(elem or UNKNOWN))
        if m == "unbatch" and elem is not None and elem.kind == "array" and elem.shape:
            return Val("dataset", elem=replace(elem, shape=elem.shape[1:], batch=None))
        return Val("dataset", elem=UNKNOWN)

    def _subscript(self, node: cst.Subscript, scope: Scope, d: int) -> Val:
        v = self.value(node.value, scope, d)
        if v.kind != "array":
            return UNKNOWN
        idx = [s.slice for s in node.slice]
        first = idx[0]
        if isinstance(first, cst.Index):
            iv = first.value
            if (isinstance(iv, cst.Name) and iv.value == "None") or (self.names.canon(iv) or "").endswith(".newaxis"):
                rest = v.shape if len(idx) == 1 or (len(idx) == 2 and isinstance(idx[1], cst.Index) and isinstance(idx[1].value, cst.Ellipsis)) else None
                return replace(v, shape=(1, *rest) if rest is not None else None, batch=1)
            if len(idx) == 1 and not isinstance(iv, cst.Ellipsis):
                return replace(v, shape=v.shape[1:] if v.shape else None, batch=None)
            return replace(v, shape=None, batch=None)
        if isinstance(first, cst.Slice) and len(idx) == 1:
            n = self._slice_len(first)
            rest = v.shape[1:] if v.shape else None
            return replace(v, shape=(n, *rest) if rest is not None else None, batch=n)
        return replace(v, shape=None, batch=None)

    @staticmethod
    def _slice_len(s: cst.Slice) -> int | None:
        """`i:i+1` -> 1, `2:5` -> 3, `:8` -> 8 (an upper bound for short arrays: stays None)."""
        if s.step is not None or s.upper is None:
            return None
        lo, up = s.lower, s.upper
        if isinstance(up, cst.BinaryOperation) and isinstance(up.operator, cst.Add) and lo is not None:
            if lo.deep_equals(up.left):
                return _int(number(up.right))
        a, b = (number(lo) if lo is not None else None), number(up)
        if a is not None and b is not None:
            return _int(b - a)
        return None

    def _binary(self, node: cst.BinaryOperation, scope: Scope, d: int) -> Val:
        left, right = self.value(node.left, scope, d), self.value(node.right, scope, d)
        arrays = [v for v in (left, right) if v.kind == "array"]
        if not arrays or any(v.kind not in ("array", "scalar") for v in (left, right)):
            return UNKNOWN
        if len(arrays) == 1:
            a = arrays[0]
            dt = a.dtype
            if dt is not None and not dt.startswith("float") and isinstance(node.operator, cst.Divide):
                dt = "float64" if a.lib == "numpy" else None
            elif dt is not None and not dt.startswith("float"):
                other = right if a is left else left
                dt = None if other.kind == "scalar" else dt  # int * 0.5 -> float64 in NumPy, an error in TF
            return replace(a, dtype=dt)
        a, b = arrays
        dt = a.dtype if a.dtype == b.dtype else ("float64" if "float64" in (a.dtype, b.dtype) and a.lib == b.lib == "numpy" else None)
        return Val("array", a.lib if a.lib == b.lib else None, dt, a.shape if a.shape is not None else b.shape)
