"""Match an expression of one tensor (a Lambda body read by `qfix.model.bytecode`, or a tf_keras
TFOpLambda / SlicingOpLambda call) against `qfix.model.lambda_table`: the built-in layers that
compute the same thing, or why there are none. Pure Python; nothing is executed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

# numpy is imported where used: source-side start-up (the LSP, `qfix script.py`) never needs it.
if TYPE_CHECKING:
    import numpy as np

from qfix.model import lambda_table as T
from qfix.model.config import MalformedConfig, node_kwargs, node_refs
from qfix.model.bytecode import (NONE, BinOp, Call, Const, Expr, Input, Name, Neg, Seq, Slice, Subscript,
                                 Unreadable, render)


@dataclass(frozen=True)
class Step:
    """One built-in layer: its class, config (without name/dtype), and its variables."""

    class_name: str
    config: dict[str, Any]
    weights: tuple[np.ndarray, ...] = field(default=(), compare=False)
    note: str = ""  # what the config does not say (a selection kernel's channels)

    def spelled(self) -> str:
        """`ReLU(max_value=6.0)`: the config without its defaults."""
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items()
                         if k not in _QUIET and not (k in _QUIET_IF and v == _QUIET_IF[k])
                         and not (k == "activation" and v == "linear" and self.class_name != "Activation"))
        return f"{self.class_name}({args}){self.note}"


_QUIET = {"trainable", "strides", "padding", "data_format", "dilation_rate", "groups", "crop_to_aspect_ratio",
          "pad_to_aspect_ratio", "fill_mode", "fill_value", "antialias"}
_QUIET_IF = {"negative_slope": 0.0, "threshold": 0.0, "offset": 0.0}


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]

    def spelled(self) -> str:
        return " → ".join(s.spelled() for s in self.steps)


def canonical(dotted: str) -> str:
    """`tf.nn.relu6` → `tensorflow.nn.relu6`, `tf.keras.activations.relu` → `keras.activations.relu`."""
    for alias in sorted(T.ALIASES, key=len, reverse=True):
        if dotted == alias or dotted.startswith(alias + "."):
            return T.ALIASES[alias] + dotted[len(alias):]
    return dotted


def recorded_input_shape(layer: Any) -> list | None:
    """The input shape recorded for a `qfix.model.graph.Layer` (its build_config, else the
    tensor reference it reads), batch axis included; None when neither is known."""
    shape = (layer.raw.get("build_config") or {}).get("input_shape")
    if isinstance(shape, list) and all(d is None or isinstance(d, int) for d in shape):
        return shape
    return list(layer.inputs[0].shape) if len(layer.inputs) == 1 and layer.inputs[0].shape is not None else None


# --- the tf_keras op layers as expressions -------------------------------------------------


def _literal(v: Any) -> Expr | None:
    """A JSON value of a TFOpLambda call as an expression; None for a tensor reference."""
    if isinstance(v, list) and len(v) == 3 and isinstance(v[0], str) and isinstance(v[1], int) \
            and isinstance(v[2], int):
        return None  # [layer, node, index]: a second tensor
    if isinstance(v, list):
        items = [_literal(e) for e in v]
        return None if any(i is None for i in items) else Seq(tuple(items), "list")
    if isinstance(v, dict):
        return None
    return Const(v)


def _slice_spec(spec: Any) -> Expr | None:
    """SlicingOpLambda's `slice_spec` (a dict per slice, an int per index, None for newaxis)."""
    def one(s: Any) -> Expr | None:
        if isinstance(s, dict) and set(s) <= {"start", "stop", "step"}:
            parts = [s.get(k) for k in ("start", "stop", "step")]
            if not all(p is None or isinstance(p, int) for p in parts):
                return None
            return Slice(*(Const(p) if p is not None else NONE for p in parts))
        if s is None or isinstance(s, int):
            return Const(s)
        return None
    if isinstance(spec, list):
        items = [one(s) for s in spec]
        return None if any(i is None for i in items) else Seq(tuple(items), "tuple")
    return one(spec)


def op_expr(raw: dict[str, Any]) -> Expr | Unreadable:
    """The call a tf_keras TFOpLambda / SlicingOpLambda layer entry records, as an expression
    of its one tensor input (`tf.math.multiply(x, y=2.0)`). Reads the call node in either
    dialect's format (only tf_keras writes these layers; embedded cases use Keras 3's)."""
    fn = (raw.get("config") or {}).get("function")
    nodes = raw.get("inbound_nodes") or []
    if not isinstance(fn, str) or len(nodes) != 1:
        return Unreadable("the op layer is not called exactly once")
    try:
        tensors = list(node_refs(nodes[0], keras_order=False))
    except MalformedConfig:
        return Unreadable("the op's call node is malformed")
    if len(tensors) != 1:
        return Unreadable("the op reads more than one tensor")
    kwargs = node_kwargs(nodes[0])
    func = Name("tf." + fn)
    if raw.get("class_name") == "SlicingOpLambda" or canonical(func.dotted) in T.GETITEM:
        index = _slice_spec(kwargs.get("slice_spec"))
        if index is None or set(kwargs) - {"slice_spec"}:
            return Unreadable("the slice is not a constant slice")
        return Subscript(Input("x"), index)
    kws = []
    for k, v in kwargs.items():
        if k == "name" and v is None:  # tf_keras records the op's default name argument
            continue
        e = _literal(v)
        if e is None:
            return Unreadable(f"the op's argument {k!r} is another tensor (a two-input op)")
        kws.append((k, e))
    return Call(func, (Input("x"),), tuple(kws))


# --- normalisation -------------------------------------------------------------------------


def _normal(e: Expr) -> Expr:
    """Canonical names; arithmetic calls as operators; getitem calls as subscripts."""
    if isinstance(e, Name):
        return Name(canonical(e.dotted))
    if isinstance(e, BinOp):
        return BinOp(e.op, _normal(e.left), _normal(e.right))
    if isinstance(e, Neg):
        return Neg(_normal(e.operand))
    if isinstance(e, Subscript):
        return Subscript(_normal(e.value), e.index)
    if isinstance(e, Call):
        func = _normal(e.func)
        args = tuple(_normal(a) for a in e.args)
        kwargs = tuple((k, _normal(v)) for k, v in e.kwargs if not (k == "name" and v == NONE))
        name = func.dotted if isinstance(func, Name) else None
        if name in T.ARITHMETIC:
            ops = list(args) + [v for _, v in kwargs]
            if len(ops) == 2 and all(k in ("x", "y") for k, _ in kwargs):
                return BinOp(T.ARITHMETIC[name], ops[0], ops[1])
        if name in T.NEGATE and len(args) == 1 and not kwargs:
            return Neg(args[0])
        if name in T.GETITEM and len(args) == 2 and not kwargs:
            return Subscript(args[0], args[1])
        return Call(func, args, kwargs)
    if isinstance(e, Seq):
        return Seq(tuple(_normal(i) for i in e.items), e.kind)
    return e


def _number(e: Expr) -> float | None:
    if isinstance(e, Const) and isinstance(e.value, (int, float)) and not isinstance(e.value, bool):
        return float(e.value)
    if isinstance(e, Neg):
        v = _number(e.operand)
        return -v if v is not None else None
    return None


def _affine(e: Expr) -> tuple[float, float] | None:
    """(scale, offset) when `e` is scale·x + offset with constants."""
    if isinstance(e, Input):
        return 1.0, 0.0
    if isinstance(e, Neg):
        inner = _affine(e.operand)
        return (-inner[0], -inner[1]) if inner else None
    if not isinstance(e, BinOp):
        return None
    lc, rc = _number(e.left), _number(e.right)
    la = _affine(e.left) if lc is None else None
    ra = _affine(e.right) if rc is None else None
    if e.op == "*":
        if la and rc is not None:
            return la[0] * rc, la[1] * rc
        if ra and lc is not None:
            return ra[0] * lc, ra[1] * lc
    elif e.op == "/" and la and rc not in (None, 0.0):
        return la[0] / rc, la[1] / rc
    elif e.op == "+":
        if la and rc is not None:
            return la[0], la[1] + rc
        if ra and lc is not None:
            return ra[0], ra[1] + lc
    elif e.op == "-":
        if la and rc is not None:
            return la[0], la[1] - rc
        if ra and lc is not None:
            return -ra[0], lc - ra[1]
    return None


def _args(call: Call, names: tuple[str, ...]) -> dict[str, Expr] | None:
    """Positional and keyword arguments by parameter name; None when they do not fit."""
    if len(call.args) > len(names):
        return None
    out = dict(zip(names, call.args))
    for k, v in call.kwargs:
        if k in out:
            return None
        out[k] = v
    return out


def _neutral(extra: dict[str, Expr], neutral: dict[str, Any]) -> bool:
    return all(k in neutral and isinstance(v, Const) and v.value == neutral[k] for k, v in extra.items())


# --- the match -----------------------------------------------------------------------------


def plan(expr: Expr, in_shape: Any, dialect: str) -> Plan | str:
    """The built-in layers computing `expr` on an input of `in_shape` (with the batch axis;
    None when unknown), or a sentence saying why there are none."""
    e = _normal(expr)
    aff = _affine(e)
    if aff is not None:
        scale, offset = aff
        if (scale, offset) == (1.0, 0.0):
            return Plan((Step("Activation", {"activation": "linear"}),))
        return Plan((Step("Rescaling", {"scale": scale, "offset": offset}),))
    if isinstance(e, Call) and isinstance(e.func, Name):
        return _call(e, e.func.dotted, in_shape, dialect)
    if isinstance(e, Subscript) and isinstance(e.value, Input):
        return _slice(e.index, in_shape)
    return "it is not one of the expressions qfix maps to a built-in layer"


def _call(e: Call, name: str, in_shape: Any, dialect: str) -> Plan | str:
    if name in T.RELU:
        a = _args(e, ("x",))
        if a is None or not isinstance(a.pop("x", None), Input):
            return f"{name} is not called on the input alone"
        max_value = T.RELU[name]
        mv = a.pop("max_value", None)
        if mv is not None:
            v = _number(mv)
            if v is None or v <= 0 or (max_value is not None and v != max_value):
                return f"{name} has a max_value qfix does not read"
            max_value = v
        if not _neutral(a, T.RELU_NEUTRAL_KW):
            return f"{name} has arguments ({', '.join(a)}) a plain ReLU does not"
        return Plan((Step("ReLU", {"max_value": max_value, "negative_slope": 0.0, "threshold": 0.0}),))
    if name in T.CLIP:
        a = _args(e, T.CLIP[name])
        x, lo, hi = T.CLIP[name]
        if a is None or set(a) - {x, lo, hi, "name"} or not isinstance(a.get(x), Input):
            return f"{name} is not a clip of the input between constants"
        low, high = _number(a.get(lo, NONE)), _number(a.get(hi, NONE))
        if low != 0.0 or high is None or high <= 0:
            return f"{name} clips to [{low}, {high}]; only a clip from 0 is a ReLU"
        return Plan((Step("ReLU", {"max_value": high, "negative_slope": 0.0, "threshold": 0.0}),))
    if name in T.MAXIMUM:
        a = _args(e, T.MAXIMUM[name])
        if a is None or set(a) - set(T.MAXIMUM[name]) - {"name"}:
            return f"{name} is not a maximum of the input and 0"
        x, y = (a.get(k, NONE) for k in T.MAXIMUM[name])
        if isinstance(y, Input):
            x, y = y, x
        if not isinstance(x, Input) or _number(y) != 0.0:
            return f"{name} is not a maximum of the input and 0"
        return Plan((Step("ReLU", {"max_value": None, "negative_slope": 0.0, "threshold": 0.0}),))
    if name in T.ACTIVATION:
        a = _args(e, ("x",))
        if a is None or not isinstance(a.pop("x", None), Input) or not _neutral(a, T.ACTIVATION_NEUTRAL_KW):
            return f"{name} has arguments its Activation layer does not"
        return Plan((Step("Activation", {"activation": T.ACTIVATION[name]}),))
    if name in T.RESIZE:
        return _resize(e, name, in_shape, dialect)
    if name in T.MEAN:
        return _mean(e, name, in_shape)
    if name in T.RESHAPE:
        a = _args(e, ("tensor", "shape"))
        shape = a.get("shape") if a else None
        dims = _ints(shape)
        if a is None or not isinstance(a.get("tensor"), Input) or set(a) - {"tensor", "shape", "name"} \
                or dims is None or not dims or dims[0] != -1 or any(d == 0 or d < -1 for d in dims[1:]) \
                or dims[1:].count(-1) > 1:
            return f"{name} is not a reshape that keeps the batch axis (-1 first)"
        return Plan((Step("Reshape", {"target_shape": list(dims[1:])}),))
    return f"{name} has no built-in layer in qfix's table"


def _ints(e: Expr | None) -> list[int] | None:
    if isinstance(e, Seq):
        vals = [i.value if isinstance(i, Const) else None for i in e.items]
    elif isinstance(e, Const) and isinstance(e.value, tuple):
        vals = list(e.value)
    elif isinstance(e, Const) and isinstance(e.value, int):
        vals = [e.value]
    else:
        return None
    return vals if all(isinstance(v, int) and not isinstance(v, bool) for v in vals) else None


def _resize(e: Call, name: str, in_shape: Any, dialect: str) -> Plan | str:
    method_kw = T.RESIZE[name]
    a = _args(e, ("images", "size", method_kw))
    if a is None or not isinstance(a.pop("images", None), Input):
        return f"{name} is not a resize of the input"
    size = _ints(a.pop("size", None))
    if size is None or len(size) != 2 or min(size) <= 0:
        return f"{name} has no constant (height, width)"
    m = a.pop(method_kw, Const("bilinear"))
    method = T.METHODS.get(m.value) if isinstance(m, Const) and isinstance(m.value, str) else \
        T.METHODS.get(m.dotted) if isinstance(m, Name) else None
    if method is None:
        return f"{name} uses a method qfix does not know ({render(m)})"
    if not _neutral(a, T.RESIZE_NEUTRAL_KW):
        return f"{name} has arguments ({', '.join(a)}) Resizing does not"
    h, w = size
    hw_in = tuple(in_shape[1:3]) if isinstance(in_shape, (list, tuple)) and len(in_shape) == 4 else (None, None)
    if (dialect == "tf_keras" and method in T.UPSAMPLING_METHODS and all(isinstance(d, int) and d > 0 for d in hw_in)
            and h % hw_in[0] == 0 and w % hw_in[1] == 0):
        return Plan((Step("UpSampling2D", {"size": [h // hw_in[0], w // hw_in[1]], "data_format": "channels_last",
                                           "interpolation": method}),))
    cfg: dict[str, Any] = {"height": h, "width": w, "interpolation": method, "crop_to_aspect_ratio": False}
    if dialect == "keras3":
        cfg.update(pad_to_aspect_ratio=False, fill_mode="constant", fill_value=0.0, antialias=False,
                   data_format="channels_last")
    return Plan((Step("Resizing", cfg),))


def _mean(e: Call, name: str, in_shape: Any) -> Plan | str:
    a = _args(e, ("input_tensor", "axis", "keepdims"))
    rank = len(in_shape) if isinstance(in_shape, (list, tuple)) else None
    if a is None or not isinstance(a.pop("input_tensor", None), Input) or rank not in T.MEAN_AXES:
        return f"{name} is not a mean over the spatial axes of a 3-D or 4-D input"
    axes = _ints(a.pop("axis", NONE))
    keep = a.pop("keepdims", Const(False))
    if axes is None or sorted(d % rank for d in axes) != list(T.MEAN_AXES[rank]) or not isinstance(keep, Const) \
            or not isinstance(keep.value, bool) or not _neutral(a, {"name": None}):
        return f"{name} is not a mean over the spatial axes {list(T.MEAN_AXES[rank])}"
    return Plan((Step(T.MEAN_POOL[rank], {"data_format": "channels_last", "keepdims": keep.value}),))


def _slice(index: Expr, in_shape: Any) -> Plan | str:
    """`x[index]` → a cropping of the inner axes and/or a selection of the last axis."""
    if not isinstance(in_shape, (list, tuple)) or len(in_shape) < 2:
        return "the input's shape is not known, so the slice cannot be resolved"
    rank = len(in_shape)
    items = list(index.items) if isinstance(index, Seq) and index.kind == "tuple" else [index]
    if sum(1 for i in items if i == Const(Ellipsis)) > 1:
        return "the slice has more than one `...`"
    if Const(Ellipsis) in items:
        at = items.index(Const(Ellipsis))
        fill = rank - (len(items) - 1)
        items = items[:at] + [Slice(NONE, NONE, NONE)] * max(fill, 0) + items[at + 1:]
    items += [Slice(NONE, NONE, NONE)] * (rank - len(items))
    if len(items) != rank or not all(isinstance(i, Slice) for i in items):
        return "the slice indexes an axis with an integer or adds one (None): the rank changes, no cropping does that"
    ranges = []
    for axis, (s, dim) in enumerate(zip(items, in_shape)):
        parts = [None if p == NONE else p.value if isinstance(p, Const) and isinstance(p.value, int) else "?"
                 for p in (s.start, s.stop, s.step)]
        if "?" in parts:
            return "the slice bounds are not constant integers"
        if parts == [None, None, None]:
            ranges.append(None)
            continue
        if axis == 0:
            return "the slice cuts the batch axis"
        if not isinstance(dim, int):
            return f"axis {axis} has no static size, so the slice cannot be resolved"
        ranges.append(range(dim)[slice(*parts)])
    steps: list[Step] = []
    inner = ranges[1:-1] if rank > 2 else []
    if any(r is not None for r in inner):
        if rank not in T.CROPPING:
            return f"no cropping layer for a {rank}-D tensor"
        crops = []
        for r, dim in zip(inner, in_shape[1:-1]):
            if r is None:
                crops.append((0, 0))
            elif r.step != 1 or len(r) == 0:
                return "a spatial slice with a step (or an empty one) is not a cropping"
            else:
                crops.append((r.start, dim - r.stop))
        cropping = list(crops[0]) if rank == 3 else [list(c) for c in crops]
        steps.append(Step(T.CROPPING[rank], {"cropping": cropping, **({"data_format": "channels_last"}
                                                                        if rank > 3 else {})}))
    sel = ranges[-1]
    if sel is not None and list(sel) != list(range(in_shape[-1])):
        if len(sel) == 0:
            return "the channel slice is empty"
        import numpy as np

        kernel = np.zeros((in_shape[-1], len(sel)), np.float32)
        kernel[list(sel), np.arange(len(sel))] = 1.0
        cls = T.SELECTION.get(rank, T.SELECTION_DEFAULT)
        if cls == "Conv2D":
            cfg = {"filters": len(sel), "kernel_size": [1, 1], "strides": [1, 1], "padding": "valid",
                   "data_format": "channels_last", "dilation_rate": [1, 1], "groups": 1, "activation": "linear",
                   "use_bias": False, "trainable": False}
            kernel = kernel.reshape(1, 1, *kernel.shape)
        else:
            cfg = {"units": len(sel), "activation": "linear", "use_bias": False, "trainable": False}
        chosen = list(sel)
        shown = f"{chosen[:8]}"[:-1] + (", …]" if len(chosen) > 8 else "]")
        steps.append(Step(cls, cfg, (kernel,), f" with a fixed 0/1 kernel selecting channels {shown}"))
    if not steps:
        return Plan((Step("Activation", {"activation": "linear"}),))  # x[:, :] is x
    return Plan(tuple(steps))
