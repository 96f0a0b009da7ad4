"""Read a Lambda layer's body from its serialized bytecode, without running it.

Keras (3 and tf_keras) stores a Python lambda as base64 of `marshal.dumps(fn.__code__)`
(`keras.src.utils.python_utils.func_dump`): Keras 3 under `function.config.code`, tf_keras as
`function[0]` with `function_type: "lambda"`. The bytes carry no Python version, and
`marshal.loads` on untrusted bytes can crash or exhaust the interpreter, so the bytes are
unmarshalled and disassembled (`dis` never executes code) in a short-lived plain-Python child
(`python -I -S`, no TensorFlow, CPU and memory limits, a timeout) that prints the instructions
as JSON. Nested code objects (an inner lambda, a comprehension) are refused there.

`evaluate` then runs a symbolic stack machine over the instructions of Python 3.11 (and the
3.12 spellings that differ: RETURN_CONST, BINARY_SLICE, LOAD_ATTR's method bit) and builds an
expression tree of the lambda's single parameter; `render` writes it back as Python
(`x / 127.5 - 1.0`). Anything else (control flow, closures, imports, stores, several
parameters) is an `Unreadable` with the reason, never an exception.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import subprocess
import sys
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any, Iterator

MAX_BYTES = 64 * 1024  # a lambda's code object is a few hundred bytes
MAX_INSTRUCTIONS = 400
TIMEOUT_S = 10.0

# The first two bytes of a .pyc header (`importlib.util.MAGIC_NUMBER`, little-endian) by
# Python version, to name the version when someone stores a .pyc instead of marshal data.
_MAGIC = [(3360, 3379, "3.6"), (3390, 3399, "3.7"), (3400, 3419, "3.8"), (3420, 3429, "3.9"),
          (3430, 3449, "3.10"), (3450, 3499, "3.11"), (3500, 3549, "3.12"), (3550, 3599, "3.13"),
          (3600, 3649, "3.14")]

# Runs in the child: stdlib only, limits first, then marshal + dis. Prints one JSON object.
_CHILD = r"""
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (512 << 20, 512 << 20))
resource.setrlimit(resource.RLIMIT_CPU, (5, 5))
import dis, json, marshal, math, types
budget = [2000]  # constant nodes: marshal refs can make a small blob a huge tree
def lit(v):
    budget[0] -= 1
    if budget[0] < 0: raise ValueError("constants larger than a lambda's")
    if v is None or isinstance(v, bool): return v
    if isinstance(v, int): return v if abs(v) < 10 ** 18 else {"big": len(str(v)) if v.bit_length() < 100000 else -1}
    if isinstance(v, float): return v if math.isfinite(v) else {"float": repr(v)}
    if isinstance(v, str): return v if len(v) <= 200 else {"long": len(v)}
    if v is Ellipsis: return {"ellipsis": True}
    if isinstance(v, tuple): return {"tuple": [lit(e) for e in v]}
    if isinstance(v, types.CodeType): raise ValueError("a nested function or comprehension")
    return {"object": type(v).__name__}
try:
    code = marshal.loads(sys.stdin.buffer.read())
except Exception as exc:
    print(json.dumps({"error": "not marshal data of this Python (%d.%d, %s): another Python version wrote it, "
                               "or it is not a function's code" % (sys.version_info[0], sys.version_info[1],
                                                                    type(exc).__name__)})); sys.exit(0)
if not isinstance(code, types.CodeType):
    print(json.dumps({"error": "a marshalled %s, not a code object" % type(code).__name__})); sys.exit(0)
try:
    if any(isinstance(c, types.CodeType) for c in code.co_consts):
        raise ValueError("a nested function or comprehension")
    out = []
    for i in dis.get_instructions(code):
        if i.opname in ("LOAD_CONST", "RETURN_CONST", "KW_NAMES"):  # dis leaves KW_NAMES' argval unknown
            val = lit(code.co_consts[i.arg])
        else:
            val = i.argval if isinstance(i.argval, (str, int)) else None
        out.append({"op": i.opname, "arg": i.arg, "repr": i.argrepr[:80], "val": val})
        if len(out) > __MAX__: raise ValueError("more than __MAX__ instructions")
    print(json.dumps({"params": list(code.co_varnames[:code.co_argcount]), "argcount": code.co_argcount,
                      "kwonly": code.co_kwonlyargcount, "flags": code.co_flags, "freevars": list(code.co_freevars),
                      "instructions": out}))
except Exception as exc:
    print(json.dumps({"error": "%s: %s" % (type(exc).__name__, str(exc)[:200])}))
""".replace("__MAX__", str(MAX_INSTRUCTIONS))


@dataclass(frozen=True)
class Unreadable:
    """The body could not be read; `reason` says why (one line)."""

    reason: str


@dataclass(frozen=True)
class Disassembly:
    params: tuple[str, ...]
    kwonly: int
    flags: int
    freevars: tuple[str, ...]
    instructions: tuple[dict, ...]


# --- the expression tree ------------------------------------------------------------------


@dataclass(frozen=True)
class Expr:
    pass


@dataclass(frozen=True)
class Input(Expr):
    """The Lambda's (or op's) one tensor input."""

    name: str = "x"


@dataclass(frozen=True)
class Const(Expr):
    value: Any  # None, bool, int, float, str, Ellipsis or a tuple of them


@dataclass(frozen=True)
class Name(Expr):
    """A global name and its attributes, as written: `tf.nn.relu6`."""

    dotted: str


@dataclass(frozen=True)
class Attribute(Expr):
    value: Expr
    attr: str


@dataclass(frozen=True)
class BinOp(Expr):
    op: str  # "+", "-", "*", "/", ... as Python spells it
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Neg(Expr):
    operand: Expr


@dataclass(frozen=True)
class Call(Expr):
    func: Expr
    args: tuple[Expr, ...] = ()
    kwargs: tuple[tuple[str, Expr], ...] = ()


@dataclass(frozen=True)
class Subscript(Expr):
    value: Expr
    index: Expr


@dataclass(frozen=True)
class Slice(Expr):
    start: Expr
    stop: Expr
    step: Expr


@dataclass(frozen=True)
class Seq(Expr):
    items: tuple[Expr, ...]
    kind: str = "tuple"  # or "list"


NONE = Const(None)


def walk(e: Expr) -> Iterator[Expr]:
    """`e` and every expression inside it."""
    yield e
    for f in fields(e):
        v = getattr(e, f.name)
        for item in v if isinstance(v, tuple) else (v,):
            if isinstance(item, tuple) and len(item) == 2:  # a (keyword, value) pair
                item = item[1]
            if isinstance(item, Expr):
                yield from walk(item)


# --- reading -------------------------------------------------------------------------------


def decode(code_b64: Any) -> bytes | Unreadable:
    """The marshal bytes of a stored lambda, or why there are none."""
    if not isinstance(code_b64, str):
        return Unreadable(f"the stored code is a {type(code_b64).__name__}, not base64 text")
    if len(code_b64) > MAX_BYTES * 4 // 3 + 4096:
        return Unreadable(f"the stored code is {len(code_b64)} characters, more than a lambda's")
    try:
        raw = base64.b64decode("".join(code_b64.split()).encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return Unreadable("the stored code is not base64")
    if not raw:
        return Unreadable("the stored code is empty")
    if len(raw) >= 4 and raw[2:4] == b"\r\n":
        magic = int.from_bytes(raw[:2], "little")
        version = next((v for lo, hi, v in _MAGIC if lo <= magic <= hi), None)
        if version:
            return Unreadable(f"the stored code starts with a .pyc header of Python {version} (magic {magic}), "
                              "not marshal data")
    return raw


@lru_cache(maxsize=256)
def _disassemble(raw: bytes) -> Disassembly | Unreadable:
    return run_reader(raw, _CHILD)


def run_reader(raw: bytes, script: str) -> Disassembly | Unreadable:
    """Run the reader `script` on `raw` in a plain-Python child (isolated: no site, no
    PYTHONPATH, no current directory on the path); its crash or timeout is an Unreadable."""
    try:
        proc = subprocess.run([sys.executable, "-I", "-S", "-c", script], input=raw, capture_output=True,
                              timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        return Unreadable(f"the body could not be read: the reader timed out after {TIMEOUT_S:.0f} s")
    except OSError as exc:
        return Unreadable(f"the body could not be read: the reader did not start ({exc.strerror})")
    if proc.returncode != 0:
        how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit status {proc.returncode}"
        return Unreadable(f"the body could not be read: the reader crashed ({how})")
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        return Unreadable("the body could not be read: the reader printed no result")
    if not isinstance(data, dict):
        return Unreadable("the body could not be read: the reader printed no result")
    if "error" in data:
        return Unreadable(f"the body could not be read: {data['error']}")
    try:
        return Disassembly(tuple(data["params"]), int(data["kwonly"]), int(data["flags"]),
                           tuple(data["freevars"]), tuple(i for i in data["instructions"] if isinstance(i, dict)))
    except (KeyError, TypeError, ValueError):
        return Unreadable("the body could not be read: the reader printed an incomplete result")


def disassemble(code_b64: Any) -> Disassembly | Unreadable:
    """The instructions of a stored lambda (read in a child process), or why not."""
    raw = decode(code_b64)
    return raw if isinstance(raw, Unreadable) else _disassemble(raw)


def lambda_code(config: dict) -> Any:
    """The base64 code of a Lambda layer config (either dialect), or None for a function
    stored by reference (a named function: no bytecode to read)."""
    fn = config.get("function")
    if isinstance(fn, dict) and fn.get("class_name") == "__lambda__":
        return (fn.get("config") or {}).get("code")
    if isinstance(fn, list) and fn and config.get("function_type", "lambda") == "lambda":
        return fn[0]
    return None


# --- the symbolic stack machine ------------------------------------------------------------

_NULL = object()
_SKIP = {"RESUME", "NOP", "CACHE", "PRECALL", "EXTENDED_ARG", "COPY_FREE_VARS", "MAKE_CELL"}
_FLOW = ("JUMP", "FOR_ITER", "POP_JUMP", "SEND", "YIELD", "GET_ITER", "SETUP", "RAISE", "RERAISE")
_CO_VARARGS, _CO_VARKEYWORDS = 0x04, 0x08


def _const(v: Any) -> Any:
    if isinstance(v, dict):
        if "tuple" in v:
            return tuple(_const(e) for e in v["tuple"])
        if v.get("ellipsis"):
            return Ellipsis
        if "float" in v:
            return float(v["float"])
        raise _Stop("a constant qfix does not read ({})".format(", ".join(f"{k}={w}" for k, w in v.items())))
    return v


class _Stop(Exception):
    pass


def evaluate(dis_: Disassembly, bindings: dict[str, Any] | None = None) -> Expr | Unreadable:
    """The expression the lambda returns, over `Input(<its first parameter>)`. `bindings` give
    constant values to further parameters (the Lambda's `arguments`, the function's defaults)
    and to the variables it reads from its enclosing function (the stored closure)."""
    bindings = bindings or {}
    if not dis_.params or dis_.flags & (_CO_VARARGS | _CO_VARKEYWORDS) or dis_.kwonly:
        return Unreadable("the lambda does not take exactly one tensor (it has *args, **kwargs or keyword-only "
                          "parameters)")
    extra = [p for p in dis_.params[1:] if p not in bindings]
    if extra:
        return Unreadable(f"the lambda takes parameters qfix has no value for ({', '.join(extra)})")
    unbound = [v for v in dis_.freevars if v not in bindings]
    if unbound:
        return Unreadable(f"the lambda reads variables of its enclosing function ({', '.join(unbound)}), "
                          "whose values the file does not hold as constants")
    try:
        return _run(dis_, bindings)
    except _Stop as exc:
        return Unreadable(str(exc))


def _run(dis_: Disassembly, bindings: dict[str, Any]) -> Expr:
    param = dis_.params[0]
    stack: list[Any] = []
    kw_names: tuple[str, ...] = ()

    def pop() -> Any:
        if not stack:
            raise _Stop("the bytecode is not well formed for this Python (another version wrote it?)")
        return stack.pop()

    def pop_expr() -> Expr:
        v = pop()
        if v is _NULL:
            raise _Stop("the bytecode is not well formed for this Python (another version wrote it?)")
        return v

    insts = dis_.instructions
    for n, ins in enumerate(insts):
        op, arg, val = ins.get("op"), ins.get("arg"), ins.get("val")
        if not isinstance(op, str):
            raise _Stop("the bytecode is not well formed")
        if op in _SKIP:
            continue
        if op.startswith("<"):
            raise _Stop(f"the bytecode holds opcode {op} unknown to Python {sys.version_info.major}."
                        f"{sys.version_info.minor}: it was written by another Python version")
        if op == "LOAD_FAST" or op == "LOAD_FAST_CHECK":
            if val == param:
                stack.append(Input(param))
            elif val in bindings:
                stack.append(Const(bindings[val]))
            else:
                raise _Stop(f"the lambda reads a local variable {val!r}")
        elif op == "LOAD_CONST":
            stack.append(Const(_const(val)))
        elif op == "LOAD_GLOBAL":
            if isinstance(arg, int) and arg & 1:
                stack.append(_NULL)
            stack.append(Name(str(val)))
        elif op in ("LOAD_ATTR", "LOAD_METHOD"):
            obj = pop_expr()
            attr = Name(f"{obj.dotted}.{val}") if isinstance(obj, Name) else Attribute(obj, str(val))
            # LOAD_METHOD (3.11) and LOAD_ATTR with the low bit (3.12) push a NULL slot, too
            if op == "LOAD_METHOD" or (sys.version_info >= (3, 12) and isinstance(arg, int) and arg & 1):
                stack.append(_NULL)
            stack.append(attr)
        elif op == "PUSH_NULL":
            stack.append(_NULL)
        elif op == "KW_NAMES":
            kw_names = tuple(_const(val))
        elif op == "CALL":
            args = [pop_expr() for _ in range(arg or 0)][::-1]
            func = pop()
            if func is _NULL:  # 3.11 LOAD_METHOD order: NULL below the callable
                func = pop_expr()
            elif stack and stack[-1] is _NULL:
                stack.pop()
            names = kw_names
            kw_names = ()
            pos = args[: len(args) - len(names)]
            kws = tuple(zip(names, args[len(args) - len(names):]))
            stack.append(Call(func, tuple(pos), kws))
        elif op == "BINARY_OP":
            right, left = pop_expr(), pop_expr()
            sym = str(ins.get("repr") or "")
            if sym.endswith("=") or not sym:  # `+=`: an in-place operator (an assignment)
                raise _Stop("the lambda assigns in place")
            stack.append(BinOp(sym, left, right))
        elif op == "UNARY_NEGATIVE":
            stack.append(Neg(pop_expr()))
        elif op == "BINARY_SUBSCR":
            index, value = pop_expr(), pop_expr()
            stack.append(Subscript(value, index))
        elif op == "BINARY_SLICE":  # 3.12: container[start:stop]
            stop, start, value = pop_expr(), pop_expr(), pop_expr()
            stack.append(Subscript(value, Slice(start, stop, NONE)))
        elif op == "BUILD_SLICE":
            step = pop_expr() if arg == 3 else NONE
            stop, start = pop_expr(), pop_expr()
            stack.append(Slice(start, stop, step))
        elif op in ("BUILD_TUPLE", "BUILD_LIST"):
            items = [pop_expr() for _ in range(arg or 0)][::-1]
            stack.append(Seq(tuple(items), "tuple" if op == "BUILD_TUPLE" else "list"))
        elif op == "LIST_EXTEND" and arg == 1 and len(stack) >= 2:  # [1, 2, 3] is BUILD_LIST + a tuple const
            value = pop_expr()
            lst = pop_expr()
            if not (isinstance(lst, Seq) and isinstance(value, Const) and isinstance(value.value, tuple)):
                raise _Stop("the lambda builds a list qfix does not read")
            stack.append(Seq(lst.items + tuple(Const(v) for v in value.value), "list"))
        elif op == "RETURN_VALUE":
            result = pop_expr()
            if n != len(insts) - 1 or stack:
                raise _Stop("the lambda has more than one expression")
            return result
        elif op == "RETURN_CONST":
            return Const(_const(val))
        elif op == "LOAD_DEREF" and val in dis_.freevars and val in bindings:
            stack.append(Const(bindings[val]))
        elif op in ("LOAD_DEREF", "LOAD_CLOSURE", "LOAD_CLASSDEREF"):
            raise _Stop(f"the lambda reads a closure variable {val!r}")
        elif op.startswith("IMPORT"):
            raise _Stop(f"the lambda imports {val!r}")
        elif op.startswith(("STORE", "DELETE")):
            raise _Stop(f"the lambda assigns {val!r}")
        elif op.startswith(_FLOW) or op in ("COMPARE_OP", "IS_OP", "CONTAINS_OP"):
            raise _Stop("the lambda has control flow or a comparison (a loop, a condition, `and`/`or`)")
        elif op in ("MAKE_FUNCTION", "LOAD_BUILD_CLASS"):
            raise _Stop("the lambda defines a function or class")
        else:
            raise _Stop(f"the lambda uses {op}, which qfix does not read")
    raise _Stop("the bytecode ends without returning (another Python version wrote it?)")


def read_lambda(config: dict) -> Expr | Unreadable:
    """The body of a Lambda layer config as an expression tree, or why it cannot be read.
    Never runs the code."""
    code = lambda_code(config)
    if code is None:
        fn = config.get("function")
        where = fn.get("config") if isinstance(fn, dict) else fn
        return Unreadable(f"the Lambda calls a function stored by reference ({where!r}), not a lambda body")
    dis_ = disassemble(code)
    if isinstance(dis_, Unreadable):
        return dis_
    fn = config.get("function")
    stored = (fn.get("config") or {}) if isinstance(fn, dict) else dict(zip(("code", "defaults", "closure"), fn))
    defaults, closure = stored.get("defaults") or [], stored.get("closure") or []
    arguments = config.get("arguments") or {}
    if not (isinstance(arguments, dict) and isinstance(defaults, list) and isinstance(closure, list)):
        return Unreadable("the Lambda's `arguments`, defaults or closure are not plain constants")
    bindings: dict[str, Any] = dict(zip(dis_.params[len(dis_.params) - len(defaults):], defaults))
    bindings.update(zip(dis_.freevars, closure))
    bindings.update(arguments)
    if not all(isinstance(v, (int, float, bool, str)) or v is None for v in bindings.values()):
        return Unreadable("the Lambda's `arguments`, defaults or closure are not plain constants")
    return evaluate(dis_, bindings)


# --- rendering ----------------------------------------------------------------------------

_PREC = {"+": 11, "-": 11, "*": 12, "/": 12, "//": 12, "%": 12, "@": 12, "**": 14,
         "<<": 10, ">>": 10, "&": 9, "^": 8, "|": 7}


def _lit(v: Any) -> str:
    if v is Ellipsis:
        return "..."
    if isinstance(v, float) and not math.isfinite(v):
        return f"float({str(v)!r})"
    if isinstance(v, tuple):
        inner = ", ".join(_lit(e) for e in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    return repr(v)


def render(e: Expr) -> str:
    """Python source for an expression tree (`x / 127.5 - 1.0`)."""
    return _render(e)[0]


def _render(e: Expr) -> tuple[str, int]:
    """(code, precedence) of `e`; atoms bind tightest (16)."""
    if isinstance(e, Input):
        return e.name, 16
    if isinstance(e, Const):
        text = _lit(e.value)
        return text, 16 if not (isinstance(e.value, (int, float)) and e.value < 0) else 13
    if isinstance(e, Name):
        return e.dotted, 16
    if isinstance(e, Attribute):
        return f"{_wrap(e.value, 16)}.{e.attr}", 16
    if isinstance(e, Neg):
        return f"-{_wrap(e.operand, 13)}", 13
    if isinstance(e, BinOp):
        p = _PREC.get(e.op, 6)
        right_min = p + 1 if e.op != "**" else p  # left-associative, ** right-associative
        left_min = p if e.op != "**" else p + 1
        return f"{_wrap(e.left, left_min)} {e.op} {_wrap(e.right, right_min)}", p
    if isinstance(e, Call):
        parts = [render(a) for a in e.args] + [f"{k}={render(v)}" for k, v in e.kwargs]
        return f"{_wrap(e.func, 16)}({', '.join(parts)})", 16
    if isinstance(e, Subscript):
        idx = e.index
        inner = ", ".join(_index(i) for i in idx.items) if isinstance(idx, Seq) and idx.kind == "tuple" \
            and idx.items else _index(idx)
        return f"{_wrap(e.value, 16)}[{inner}]", 16
    if isinstance(e, Slice):
        return _index(e), 16
    if isinstance(e, Seq):
        inner = ", ".join(render(i) for i in e.items)
        if e.kind == "list":
            return f"[{inner}]", 16
        return (f"({inner},)" if len(e.items) == 1 else f"({inner})"), 16
    return "?", 16


def _index(e: Expr) -> str:
    if isinstance(e, Slice):
        parts = ["" if s == NONE else render(s) for s in (e.start, e.stop)]
        text = ":".join(parts)
        return text + (f":{render(e.step)}" if e.step != NONE else "")
    return render(e)


def _wrap(e: Expr, min_prec: int) -> str:
    code, p = _render(e)
    return code if p >= min_prec else f"({code})"
