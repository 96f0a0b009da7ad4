"""Keras 3 op nodes (`keras.src.ops.*`, what `x + y`, `x[:, 0:2]`, `ops.cast` leave in a
functional config) → the `TFOpLambda` / `SlicingOpLambda` layer tf_keras writes for the same
code. Each entry of OPS gives the tf function (by its `tf.` API name, as TFOpLambda stores it)
and how the op's constructor arguments and call arguments become that function's arguments:
the first call argument stays positional (tf_keras serialises it as the node's input), every
other one becomes a keyword.

An op whose first argument is a constant (`1.0 - x`, `2.0 / x`) can only be written that way
when the op commutes (`2.0 * x` is `x * 2.0`); otherwise Untranslatable.
"""

from __future__ import annotations

from typing import Any, Callable

from qfix.model.to_tf_keras.errors import Untranslatable

Translated = tuple[str, Any, dict[str, Any]]  # (tf function, first argument, keyword arguments)
Rule = Callable[[dict[str, Any], list[Any], dict[str, Any], str], Translated]

TF_OP_MODULE = "tf_keras.src.layers.core.tf_op_layer"


def is_tensor(v: Any) -> bool:
    return isinstance(v, dict) and v.get("class_name") == "__keras_tensor__"


def _binary(fn: str, other: str = "y", commutes: bool = False) -> Rule:
    def rule(cfg: dict[str, Any], args: list[Any], kwargs: dict[str, Any], name: str) -> Translated:
        x, y = (list(args) + [kwargs.get("x2")])[:2]
        if not is_tensor(x):
            if not commutes:
                raise Untranslatable(name, f"{fn}(constant, tensor): tf_keras can only record a tensor as the first argument")
            x, y = y, x
        return fn, x, {other: y}
    return rule


def _unary(fn: str, **from_config: str) -> Rule:
    """`from_config`: tf keyword ← the op's constructor key."""
    def rule(cfg: dict[str, Any], args: list[Any], kwargs: dict[str, Any], name: str) -> Translated:
        if len(args) != 1:
            raise Untranslatable(name, f"{fn} called with {len(args)} positional arguments")
        return fn, args[0], {tf_key: cfg.get(key) for tf_key, key in from_config.items()}
    return rule


def _reduce(fn: str) -> Rule:
    def rule(cfg: dict[str, Any], args: list[Any], kwargs: dict[str, Any], name: str) -> Translated:
        if cfg.get("initial") is not None:
            raise Untranslatable(name, f"{fn}(initial={cfg['initial']!r}) has no tf equivalent")
        return fn, args[0], {"axis": cfg.get("axis"), "keepdims": bool(cfg.get("keepdims", False))}
    return rule


def _getitem(cfg: dict[str, Any], args: list[Any], kwargs: dict[str, Any], name: str) -> Translated:
    x, key = args
    key = key if isinstance(key, list) else [key]
    rank = len((x.get("config") or {}).get("shape") or [])
    spec: list[Any] = []
    for i, k in enumerate(key):
        cls = k.get("class_name") if isinstance(k, dict) else None
        if cls == "__slice__":
            c = k.get("config") or {}
            spec.append({"start": c.get("start"), "stop": c.get("stop"), "step": c.get("step")})
        elif cls == "__ellipsis__":  # tf_keras cannot save an Ellipsis: spell out its full slices
            named = sum(1 for j in key if j is not None and not (isinstance(j, dict) and j.get("class_name") == "__ellipsis__"))
            spec.extend({"start": None, "stop": None, "step": None} for _ in range(rank - named))
        elif k is None or isinstance(k, int):
            spec.append(k)
        else:
            raise Untranslatable(name, f"slicing with {k!r} (a tensor or array index) has no tf_keras equivalent")
    return "__operators__.getitem", x, {"slice_spec": spec}


def _list_op(fn: str) -> Rule:
    def rule(cfg: dict[str, Any], args: list[Any], kwargs: dict[str, Any], name: str) -> Translated:
        return fn, args[0], {"axis": cfg.get("axis", 0)}
    return rule


def _clip(cfg: dict[str, Any], args: list[Any], kwargs: dict[str, Any], name: str) -> Translated:
    return "clip_by_value", args[0], {"clip_value_min": cfg.get("x_min"), "clip_value_max": cfg.get("x_max")}


OPS: dict[str, Rule] = {
    "Add": _binary("__operators__.add", commutes=True),
    "Subtract": _binary("math.subtract"),
    "Multiply": _binary("math.multiply", commutes=True),
    "Divide": _binary("math.truediv"),
    "TrueDivide": _binary("math.truediv"),
    "Maximum": _binary("math.maximum", commutes=True),
    "Minimum": _binary("math.minimum", commutes=True),
    "Power": _binary("math.pow"),
    "Matmul": _binary("linalg.matmul", other="b"),
    "Cast": _unary("cast", dtype="dtype"),
    "Reshape": _unary("reshape", shape="newshape"),
    "Transpose": _unary("transpose", perm="axes"),
    "ExpandDims": _unary("expand_dims", axis="axis"),
    "Squeeze": _unary("squeeze", axis="axis"),
    "Softmax": _unary("nn.softmax", axis="axis"),
    "Relu": _unary("nn.relu"),
    "Relu6": _unary("nn.relu6"),
    "Sigmoid": _unary("math.sigmoid"),
    "Silu": _unary("nn.silu"),
    "Tanh": _unary("math.tanh"),
    "Sqrt": _unary("math.sqrt"),
    "Rsqrt": _unary("math.rsqrt"),
    "Square": _unary("math.square"),
    "Exp": _unary("math.exp"),
    "Log": _unary("math.log"),
    "Negative": _unary("math.negative"),
    "Absolute": _unary("math.abs"),
    "Abs": _unary("math.abs"),
    "Reciprocal": _unary("math.reciprocal"),
    "Erf": _unary("math.erf"),
    "Floor": _unary("math.floor"),
    "Ceil": _unary("math.ceil"),
    "Mean": _reduce("math.reduce_mean"),
    "Sum": _reduce("math.reduce_sum"),
    "Max": _reduce("math.reduce_max"),
    "Min": _reduce("math.reduce_min"),
    "Concatenate": _list_op("concat"),
    "Stack": _list_op("stack"),
    "Clip": _clip,
    "GetItem": _getitem,
}


def translate_op(raw: dict[str, Any], name: str, args: list[Any], kwargs: dict[str, Any]) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    """The TFOpLambda entry (without graph keys) for one call of a Keras 3 op node, the call's
    first argument (a tensor or a list of them) and its keyword arguments (tensors still in
    Keras 3's form: graph.py turns them into references)."""
    cls = str(raw.get("class_name"))
    rule = OPS.get(cls)
    if rule is None:
        raise Untranslatable(name, f"keras.ops {cls} has no tf_keras TFOpLambda equivalent in qfix's table")
    fn, first, kw = rule(raw.get("config") or {}, list(args), dict(kwargs), name)
    slicing = fn == "__operators__.getitem"
    cfg = raw.get("config") or {}
    layer_cls = "SlicingOpLambda" if slicing else "TFOpLambda"
    entry = {
        "module": TF_OP_MODULE,
        "class_name": layer_cls,
        "config": {"name": name, "trainable": True, "dtype": _dtype(first), "function": fn},
        "registered_name": layer_cls,
    }
    shape = (first.get("config") or {}).get("shape") if isinstance(first, dict) else None
    if isinstance(shape, list):  # as tf_keras records it; QF508's plans read the input shape there
        entry["build_config"] = {"input_shape": shape}
    return entry, first, kw


def _dtype(first: Any) -> str:
    """A TFOpLambda's dtype is its first input's (autocast off): what tf_keras records."""
    t = first[0] if isinstance(first, list) and first else first
    return str((t.get("config") or {}).get("dtype") or "float32") if isinstance(t, dict) else "float32"
