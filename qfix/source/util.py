"""Small libcst helpers shared by the source rules."""

from __future__ import annotations

import ast
import dataclasses
import io
import math
import tokenize
from typing import Any

import libcst as cst


def arg(call: cst.Call, pos: int | None, kw: str | None) -> cst.Arg | None:
    """The argument given by position `pos` or keyword `kw` (None when absent)."""
    if kw is not None:
        for a in call.args:
            if a.keyword is not None and a.keyword.value == kw:
                return a
    if pos is not None:
        positional = [a for a in call.args if a.keyword is None and not a.star]
        if pos < len(positional):
            return positional[pos]
    return None


def has_star(call: cst.Call) -> bool:
    return any(a.star for a in call.args)


def string_value(node: cst.BaseExpression | None) -> str | None:
    if isinstance(node, cst.SimpleString):
        try:
            v = node.evaluated_value
        except Exception:  # noqa: BLE001
            return None
        return v if isinstance(v, str) else None
    return None


# named constants a bound may be written with (`np.random.uniform(0, 2 * np.pi)`)
CONSTANTS = {"numpy.pi": math.pi, "math.pi": math.pi, "numpy.e": math.e, "math.e": math.e, "math.tau": math.tau}


def number(node: cst.BaseExpression | None, names: Any = None) -> float | None:
    """Value of a numeric constant expression (literals, unary +/-, + - * / of constants);
    with `names` (a `qfix.source.names.Names`), also `np.pi`, `math.pi`, `math.e` ... (CONSTANTS)."""
    if node is None:
        return None
    if names is not None and isinstance(node, cst.Attribute):
        return CONSTANTS.get(names.canon(node) or "")
    if isinstance(node, (cst.Integer, cst.Float)):
        try:
            return float(ast.literal_eval(node.value))
        except (ValueError, SyntaxError):
            return None
    if isinstance(node, cst.UnaryOperation):
        v = number(node.expression, names)
        if v is None:
            return None
        if isinstance(node.operator, cst.Minus):
            return -v
        if isinstance(node.operator, cst.Plus):
            return v
        return None
    if isinstance(node, cst.BinaryOperation):
        a, b = number(node.left, names), number(node.right, names)
        if a is None or b is None:
            return None
        op = node.operator
        try:
            if isinstance(op, cst.Add):
                return a + b
            if isinstance(op, cst.Subtract):
                return a - b
            if isinstance(op, cst.Multiply):
                return a * b
            if isinstance(op, cst.Divide):
                return a / b
        except ZeroDivisionError:
            return None
    return None


def is_const(node: cst.BaseExpression) -> bool:
    return number(node) is not None


def uses_name(node: cst.CSTNode, name: str) -> bool:
    """Whether the Name `name` occurs anywhere inside `node`."""
    stack: list[Any] = [node]
    while stack:
        x = stack.pop()
        if isinstance(x, cst.Name) and x.value == name:
            return True
        stack.extend(x.children)
    return False


def expr(code: str) -> cst.BaseExpression:
    return cst.parse_expression(code)


def strip_parens(node: cst.BaseExpression) -> cst.BaseExpression:
    return node.with_changes(lpar=(), rpar=()) if getattr(node, "lpar", None) else node


def assign_target_names(node: cst.Assign | cst.AnnAssign) -> list[str]:
    targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
    return [t.value for t in targets if isinstance(t, cst.Name)]


def python_tokens(text: str) -> list[tokenize.TokenInfo] | None:
    """Python's tokens of `text` (lines split at \\r\\n, \\r, \\n only, as libcst's and LSP's),
    None if it does not tokenize."""
    try:
        return list(tokenize.generate_tokens(io.StringIO(text, newline="").readline))
    except (tokenize.TokenError, SyntaxError, ValueError):
        return None


# --------------------------------------------------------------------------------------------
# Walking the meaningful nodes (the engine's batched walk, iter_nodes, child_nodes)
# --------------------------------------------------------------------------------------------
_SKIP_FIELDS = frozenset(
    {
        "lpar", "rpar", "comma", "semicolon", "header", "footer", "leading_lines",
        "lines_after_decorators", "trailing_whitespace", "operator", "equal", "star",
        "colon", "dot", "whitespace", "newline", "indent",
    }
)
_FIELDS: dict[type, tuple[str, ...]] = {}
_REV: dict[type, tuple[str, ...]] = {}
_NOT_NODES = (str, int, bool, float)


def _fields(t: type) -> tuple[str, ...]:
    """Names of the fields of node type `t` that can hold meaningful child nodes."""
    f = _FIELDS.get(t)
    if f is None:
        f = tuple(
            x.name
            for x in dataclasses.fields(t)
            if x.name not in _SKIP_FIELDS
            and not x.name.startswith("whitespace")
            and x.type not in _NOT_NODES
            and not str(x.type).startswith("typing.Literal")
        )
        _FIELDS[t] = f
        _REV[t] = tuple(reversed(f))
    return f


# type -> is it a CSTNode: `isinstance(x, cst.CSTNode)` goes through ABCMeta's check, the
# walks' hottest line (every field of every node); this dict answers per type at dict speed
_NODE_TYPES: dict[type, bool] = {}


def is_node_type(t: type) -> bool:
    r = _NODE_TYPES.get(t)
    if r is None:
        r = _NODE_TYPES[t] = issubclass(t, cst.CSTNode)
    return r


def child_nodes(node: cst.CSTNode) -> list[cst.CSTNode]:
    """The meaningful children of `node` (no whitespace, punctuation or parentheses: nothing
    that binds or calls), read from its fields: `CSTNode.children` visits every child to list
    them, some 20 times slower. Field order, which is not always source order (a def's body
    comes before its decorators)."""
    kids: list[cst.CSTNode] = []
    node_get = _NODE_TYPES.get
    for name in _fields(type(node)):
        v = getattr(node, name)
        tv = type(v)
        if tv is tuple or tv is list:
            for c in v:
                tc = type(c)
                ok = node_get(tc)
                if ok or (ok is None and is_node_type(tc)):
                    kids.append(c)
        else:
            ok = node_get(tv)
            if ok or (ok is None and is_node_type(tv)):
                kids.append(v)
    return kids


def iter_nodes(node: cst.CSTNode):
    """Every meaningful node under `node` (pre-order), using the engine's fast field walk."""
    stack: list[Any] = [node]
    while stack:
        x = stack.pop()
        yield x
        kids = child_nodes(x)
        kids.reverse()
        stack.extend(kids)


def append_arg(call: cst.Call, new: cst.Arg) -> cst.Call:
    """`call` with `new` appended as its last argument, laid out as the call already is.

    A call whose closing parenthesis sits on its own line gets the argument on a new line,
    indented like the argument before it; a trailing comma, comments after the last argument
    and comment lines before `)` stay where they were. A call on one line gets `, new`.
    The whitespace a comma carries is moved, never duplicated: no line ends in a space.
    """
    args = list(call.args)
    new = new.with_changes(comma=cst.MaybeSentinel.DEFAULT, whitespace_after_arg=cst.SimpleWhitespace(""))
    if not args:
        return call.with_changes(args=[new])
    last = args[-1]
    trailing_comma = isinstance(last.comma, cst.Comma)
    # the whitespace between the last argument and `)` (after its comma when there is one)
    closing = last.comma.whitespace_after if trailing_comma else last.whitespace_after_arg  # type: ignore[union-attr]
    before_last = args[-2].comma.whitespace_after if len(args) > 1 and isinstance(args[-2].comma, cst.Comma) else call.whitespace_before_args
    if isinstance(closing, cst.ParenthesizedWhitespace):
        if isinstance(before_last, cst.ParenthesizedWhitespace):
            indent, last_line = before_last.indent, before_last.last_line
        else:  # `f(a  # note\n)`: one level deeper than the closing parenthesis
            indent, last_line = closing.indent, cst.SimpleWhitespace(closing.last_line.value + "    ")
        between = closing.with_changes(indent=indent, last_line=last_line)
        end = cst.ParenthesizedWhitespace(indent=closing.indent, last_line=closing.last_line)
    else:
        between, end = cst.SimpleWhitespace(" "), closing
    old_comma = last.comma if trailing_comma else cst.Comma()
    args[-1] = last.with_changes(
        comma=old_comma.with_changes(whitespace_after=between),  # type: ignore[union-attr]
        whitespace_after_arg=cst.SimpleWhitespace("") if not trailing_comma else last.whitespace_after_arg,
    )
    if trailing_comma:  # keep the style: the new last argument has the trailing comma
        new = new.with_changes(comma=cst.Comma(whitespace_after=end))
    else:
        new = new.with_changes(whitespace_after_arg=end)
    return call.with_changes(args=[*args, new])


_DTYPE_WORDS = {"float": "float64", "int": "int64", "bool": "bool", "complex": "complex128"}
DTYPES = frozenset(
    {"uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64",
     "float16", "bfloat16", "float32", "float64", "half", "float", "double", "bool"}
)


def dtype_name(node: cst.BaseExpression | None, names: Any) -> str | None:
    """The dtype a `dtype=` argument names: `tf.uint8`, `np.uint8`, `tf.dtypes.uint8`,
    `"uint8"`, `np.float32`, the builtins `float` / `int` (NumPy's float64 / int64). None when
    it is not a literal dtype (a variable, `x.dtype`)."""
    if node is None:
        return None
    s = string_value(node)
    if s is not None:
        return s if s in DTYPES else None
    if isinstance(node, cst.Name) and node.value in _DTYPE_WORDS and node.value not in names.aliases:
        return _DTYPE_WORDS[node.value]
    c = names.canon(node) or ""
    if c.startswith(("tensorflow.", "numpy.")):
        last = c.rsplit(".", 1)[-1]
        return {"half": "float16", "double": "float64", "single": "float32"}.get(last, last) if last in DTYPES | {"single"} else None
    return None
