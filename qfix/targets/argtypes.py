"""The types of profile rule arguments, as the predicates of qfix.targets.check declare them in
their signatures (the one place a predicate's arguments are written down), and the check of a
profile's value against such a type. Pure Python: no numpy, no TFLite reader at import.

Besides int, float, bool, str, list[X], dict[str, X], X | None and Any, a predicate parameter
may take one of the names below, which say what the string or integer means:

- TensorRef: `input<N>` or `output<N>`, an op's N-th input or output (N from 0).
- Index: an input position, an integer of 0 or more.
- Activation: a fused activation, by the name of TFLite's ActivationFunctionType
  (schema.fbs: NONE, RELU, RELU_N1_TO_1, RELU6, TANH, SIGN_BIT).
- DType: a TFLite tensor type as qfix.targets.tflite names them (`int8`, `float32`, ...).
"""

from __future__ import annotations

import re
import types
import typing
from typing import Any, NewType

TensorRef = NewType("TensorRef", str)
Index = NewType("Index", int)
Activation = NewType("Activation", str)
DType = NewType("DType", str)

TENSOR_REF = re.compile(r"(input|output)([0-9]{1,3})")
# TFLite schema.fbs ActivationFunctionType, in enum order (qfix.targets.tflite reads the same).
ACTIVATIONS = ("NONE", "RELU", "RELU_N1_TO_1", "RELU6", "TANH", "SIGN_BIT")
# TFLite tensor types as qfix.targets.tflite names them.
DTYPES = frozenset({"float32", "float16", "float64", "bfloat16", "int4", "int8", "uint8", "int16", "uint16",
                    "int32", "uint32", "int64", "uint64", "bool", "string", "complex64", "complex128",
                    "resource", "variant"})


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)  # TOML true is not 1


def problem(value: Any, annotation: Any) -> str | None:
    """None when `value` (parsed TOML) fits the parameter type `annotation`, else what is
    wrong, as a phrase ("must be an integer, got 'many'")."""
    if annotation is Any:
        return None
    if annotation is TensorRef:
        if isinstance(value, str) and TENSOR_REF.fullmatch(value):
            return None
        return f"must name an op tensor as input<N> or output<N> (e.g. input0), got {value!r:.30}"
    if annotation is Index:
        return None if _is_int(value) and value >= 0 else f"must be an input position (0 or more), got {value!r:.30}"
    if annotation is Activation:
        if value in ACTIVATIONS:
            return None
        return f"unknown fused activation {value!r:.30} (TFLite's ActivationFunctionType: {', '.join(ACTIVATIONS)})"
    if annotation is DType:
        return None if value in DTYPES else f"unknown tensor type {value!r:.30} (known: {', '.join(sorted(DTYPES))})"
    if annotation is int:
        return None if _is_int(value) else f"must be an integer, got {value!r:.30}"
    if annotation is float:
        return None if _is_int(value) or isinstance(value, float) else f"must be a number, got {value!r:.30}"
    if annotation is bool:
        return None if isinstance(value, bool) else f"must be true or false, got {value!r:.30}"
    if annotation is str:
        return None if isinstance(value, str) else f"must be a string, got {value!r:.30}"
    origin, params = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        found = [problem(value, p) for p in params if p is not type(None)]
        return None if value is None and type(None) in params or None in found else found[0]
    if origin is list:
        if not isinstance(value, list):
            return f"must be a list, got {value!r:.30}"
        for i, item in enumerate(value):
            if (bad := problem(item, params[0] if params else Any)) is not None:
                return f"item {i}: {bad}"
        return None
    if origin is dict:
        if not isinstance(value, dict):
            return f"must be a table, got {value!r:.30}"
        for key, item in value.items():
            if (bad := problem(item, params[1] if len(params) == 2 else Any)) is not None:
                return f"{key}: {bad}"
        return None
    raise TypeError(f"no profile argument type for {annotation!r}")  # a predicate qfix wrote wrong: a bug
