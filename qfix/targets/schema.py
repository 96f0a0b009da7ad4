"""The profile schema, checked key by key before a profile is built: a user's `--target
my_npu.toml` with a misspelt key, a wrong type, an unknown predicate, op or argument fails
with one QF912 line naming the key and the problem, instead of being silently ignored (a
misspelt `static_shape = true` would otherwise check nothing) or failing in the middle of a
check.

Pure Python and no numpy for what every profile gets; `strict` (user profiles, and the
built-ins in the test suite) also checks op names against TFLite's BuiltinOperator enum and
rule arguments against the predicates' signatures, which needs the `tflite` package and
qfix.targets.check.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import typing
from functools import cache
from typing import Any, Callable

from qfix.targets import argtypes
from qfix.targets.argtypes import DTYPES, TENSOR_REF
from qfix.types import QfixError

CONFIDENCES = ("V", "M", "R")
TOP_KEYS = frozenset({"schema", "target", "recipe", "statuses", "op"})
TARGET_KEYS = frozenset({"id", "name", "aliases", "toolchain", "placement", "placement_source",
                         "placement_confidence", "unlisted_ops", "sources", "model_rules", "custom_op_name"})
# name: the module in qfix/targets/compilers/ that runs the real tool; note: why there is none
# here; accelerator_config(s): the Ethos-U profiles' Vela configurations.
TOOLCHAIN_KEYS = frozenset({"name", "version", "runtime", "note", "accelerator_config", "accelerator_configs"})
# Status keys the check uses (what each op's status says, in the target's own words: a
# profile's [statuses]); the words when a profile gives none, so a report never prints a raw
# key. `cpu`: Vela's word for an op it leaves to the CPU (the Ethos-U profiles).
DEFAULT_STATUSES = {
    "mapped": "runs on the target",
    "unsupported_op": "op not supported by the target",
    "bad_dtype": "tensor type not supported",
    "bad_int_dtype": "integer tensor type not supported",
    "hidden_limit": "op limits of the target exceeded",
    "dynamic": "dynamic shape",
    "bad_rank": "tensor rank not supported",
    "bad_version": "op version too new for the target's toolchain",
    "unparsable": "the toolchain cannot parse the model",
    "after_cut": "after the first unsupported op",
    "boundary_cpu": "I/O type conversion at the model boundary",
    "reference": "runs on a slow reference kernel",
    "fallback": "falls back to the CPU",
    "cpu": "placed on the CPU",
    "rejected": "the compiler rejects the file",
}
STATUS_KEYS = frozenset(DEFAULT_STATUSES)
RULE_KEYS = frozenset({"predicate", "args", "text", "status", "severity", "source", "confidence", "fix_hint", "id"})
# Ops whose TFLite kernels write exactly one output (each kernel's Prepare checks
# NumOutputs(node) == 1; recalled from tensorflow/lite/kernels, R): `output1` and above names
# nothing on them. Other ops' output counts vary or are not recorded here, so only the form of
# a tensor reference is checked for them.
SINGLE_OUTPUT_OPS = frozenset({
    "ADD", "SUB", "MUL", "DIV", "CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "AVERAGE_POOL_2D",
    "MAX_POOL_2D", "SOFTMAX", "LOGISTIC", "TANH", "RELU", "RELU6", "LEAKY_RELU", "HARD_SWISH", "PRELU",
    "RESHAPE", "CONCATENATION", "MEAN", "PAD", "QUANTIZE", "DEQUANTIZE", "RESIZE_BILINEAR",
    "RESIZE_NEAREST_NEIGHBOR", "TRANSPOSE", "STRIDED_SLICE", "SLICE",
})

def _str(v: Any) -> str | None:
    return None if isinstance(v, str) else "must be a string"


def _bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "must be true or false"


# A count in a profile (a rank, dimensions, subgraphs) far above any model's: a typo, not a limit.
MAX_COUNT = 1 << 31


def _positive(v: Any) -> str | None:
    if not (isinstance(v, int) and not isinstance(v, bool) and v > 0):
        return "must be a positive integer"
    return None if v < MAX_COUNT else f"must be below {MAX_COUNT}, got {v}"


def _strings(v: Any) -> str | None:
    return None if isinstance(v, list) and all(isinstance(x, str) for x in v) else "must be a list of strings"


def _dtypes(v: Any) -> str | None:
    if _strings(v):
        return "must be a list of tensor types (e.g. [\"int8\", \"uint8\"])"
    bad = [x for x in v if x not in DTYPES]
    return f"unknown tensor type {bad[0]!r:.30} (known: {', '.join(sorted(DTYPES))})" if bad else None


def _confidence(v: Any) -> str | None:
    return None if v in CONFIDENCES else f"must be one of V/M/R, got {v!r:.30}"


# [target.model_rules] key -> its check; every key may also have `<key>_source` (a string) and
# `<key>_confidence` (V/M/R).
MODEL_RULES: dict[str, Callable[[Any], str | None]] = {
    "activation_dtypes": _dtypes, "aux_dtypes": _dtypes, "state_dtypes": _dtypes,
    "static_shapes": _bool, "integer_io": _bool, "dynamic_batch": _bool, "checks_semantics": _bool,
    "max_innermost_dims": _positive, "max_subgraphs": _positive, "max_rank": _positive,
    "max_delegated_partitions": _positive, "sram_bytes_approx": _positive,
    "max_tflite_runtime": _str, "version_failure": _str,
}


def _bad(where: str, key: str, problem: str) -> QfixError:
    return QfixError("QF912", f"bad target profile {where}: {key}: {problem}")


def _unknown(where: str, prefix: str, keys: Any, known: frozenset[str]) -> None:
    extra = sorted(str(k) for k in keys if k not in known)
    if extra:
        raise _bad(where, f"{prefix}{extra[0]}", f"unknown key (known: {', '.join(sorted(known))})")


def _table(where: str, key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(where, key, f"must be a table ([{key}]), got {type(value).__name__}")
    return value


def validate(doc: dict[str, Any], where: str, strict: bool = False) -> None:
    """Raise QF912 naming the first key of `doc` (a parsed profile) that is unknown or of the
    wrong type. `strict`: also op names and rule arguments (see the module docstring)."""
    _unknown(where, "", doc, TOP_KEYS)
    target = _table(where, "target", doc.get("target", {}))
    _unknown(where, "target.", target, TARGET_KEYS)
    for key, check in (("name", _str), ("placement_source", _str), ("placement_confidence", _confidence),
                       ("sources", _strings), ("custom_op_name", _str)):
        if key in target and (problem := check(target[key])):
            raise _bad(where, f"target.{key}", problem)
    if "unlisted_ops" in target and target["unlisted_ops"] not in ("unsupported", "reference"):
        raise _bad(where, "target.unlisted_ops", f"must be \"unsupported\" or \"reference\", got "
                                                 f"{target['unlisted_ops']!r:.30}")
    if "toolchain" in target:
        toolchain = _table(where, "target.toolchain", target["toolchain"])
        _unknown(where, "target.toolchain.", toolchain, TOOLCHAIN_KEYS)
        for key in ("name", "version", "note", "accelerator_config"):
            if key in toolchain and (problem := _str(toolchain[key])):
                raise _bad(where, f"target.toolchain.{key}", problem)
        config = toolchain.get("accelerator_config")
        if config is not None and not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*-\d+", config):
            raise _bad(where, "target.toolchain.accelerator_config",
                       f"must name a Vela accelerator configuration ending in -<MACs> (e.g. 'ethos-u55-128'), "
                       f"got {config!r:.40}")
    _model_rules(where, _table(where, "target.model_rules", target.get("model_rules", {})))
    statuses = _table(where, "statuses", doc.get("statuses", {}))
    _unknown(where, "statuses.", statuses, STATUS_KEYS)
    for key, value in statuses.items():
        if problem := _str(value):
            raise _bad(where, f"statuses.{key}", problem)
    ops = _table(where, "op", doc.get("op", {}))
    for name, spec in ops.items():
        _op(where, name, _table(where, f"op.{name}", spec), strict)


def _model_rules(where: str, rules: dict[str, Any]) -> None:
    for key, value in rules.items():
        base, _, kind = key.rpartition("_")
        if kind in ("source", "confidence") and base in MODEL_RULES:
            problem = _str(value) if kind == "source" else _confidence(value)
        elif key in MODEL_RULES:
            problem = MODEL_RULES[key](value)
        else:
            raise _bad(where, f"target.model_rules.{key}", f"unknown key (known: {', '.join(sorted(MODEL_RULES))}, "
                                                           "each with _source and _confidence)")
        if problem:
            raise _bad(where, f"target.model_rules.{key}", problem)


def _op(where: str, name: str, spec: dict[str, Any], strict: bool) -> None:
    if strict:
        codes = builtin_codes()
        if codes and name not in codes:
            raise _bad(where, f"op.{name}", "not a TFLite builtin operator name (BuiltinOperator in TFLite's "
                                            "schema: CONV_2D, FULLY_CONNECTED, ...)")
        if codes and isinstance(spec.get("code"), int) and spec["code"] != codes[name]:
            raise _bad(where, f"op.{name}.code", f"is {spec['code']}, but {name} is {codes[name]} in TFLite's schema")
    for key, check in (("source", _str), ("confidence", _confidence), ("fix_hint", _str), ("supported", _bool),
                       ("version_source", _str), ("version_confidence", _confidence), ("kernel", _str)):
        if key in spec and (bad := check(spec[key])):
            raise _bad(where, f"op.{name}.{key}", bad)
    if "kernel" in spec and spec["kernel"] not in ("native", "reference"):
        raise _bad(where, f"op.{name}.kernel", f"must be \"native\" or \"reference\", got {spec['kernel']!r:.30}")
    rules = spec.get("rule", [])
    if not isinstance(rules, list):
        return  # the builder names it ([[op.NAME.rule]])
    for i, rule in enumerate(rules):
        where_rule = f"op.{name}.rule[{i}]"
        rule = _table(where, where_rule, rule)
        _unknown(where, f"{where_rule}.", rule, RULE_KEYS)
        for key, check in (("text", _str), ("status", _str), ("source", _str), ("confidence", _confidence),
                           ("fix_hint", _str), ("id", _str)):
            if key in rule and (bad := check(rule[key])):
                raise _bad(where, f"{where_rule}.{key}", bad)
        if "status" in rule and rule["status"] not in STATUS_KEYS:  # the report would print the raw word
            raise _bad(where, f"{where_rule}.status", f"{rule['status']!r:.30} is not a status key (known: "
                                                      f"{', '.join(sorted(STATUS_KEYS))})")
        args = _table(where, f"{where_rule}.args", rule.get("args", {}))
        if strict and isinstance(rule.get("predicate"), str):
            _args(where, where_rule, rule["predicate"], args)
        _arity(where, name, where_rule, args)


def _args(where: str, key: str, predicate: str, args: dict[str, Any]) -> None:
    """The rule's arguments against its predicate's signature (qfix.targets.check)."""
    from qfix.targets.check import PREDICATES

    fn = PREDICATES.get(predicate)
    if fn is None:
        return  # the builder names an unknown predicate
    params = list(inspect.signature(fn).parameters.values())[2:]  # after (model, op)
    names = {p.name for p in params}
    required = {p.name for p in params if p.default is inspect.Parameter.empty}
    extra = sorted(set(args) - names)
    if extra:
        raise _bad(where, f"{key}.args.{extra[0]}", f"{predicate} takes no argument {extra[0]!r} "
                                                     f"(it takes: {', '.join(sorted(names)) or 'none'})")
    missing = sorted(required - set(args))
    if missing:
        raise _bad(where, f"{key}.args", f"{predicate} needs {', '.join(missing)}")
    hints = typing.get_type_hints(fn)  # the predicate's signature: the one declaration of its types
    for name, value in args.items():
        if (bad := argtypes.problem(value, hints.get(name, Any))) is not None:
            raise _bad(where, f"{key}.args.{name}", f"{predicate}: {bad}")


def _arity(where: str, op: str, key: str, args: dict[str, Any]) -> None:
    """`tensor = "output1"` on an op with one output names nothing (SINGLE_OUTPUT_OPS)."""
    ref = args.get("tensor")
    m = TENSOR_REF.fullmatch(ref) if isinstance(ref, str) else None
    if m and m.group(1) == "output" and int(m.group(2)) > 0 and op in SINGLE_OUTPUT_OPS:
        raise _bad(where, f"{key}.args.tensor", f"{ref!r} names no tensor: {op} has one output (output0)")


@cache
def builtin_codes() -> dict[str, int]:
    """TFLite's BuiltinOperator names -> codes, from the `tflite` package's generated enum
    (loaded on its own: the package's __init__ imports every schema table), plus the codes
    qfix.targets.tflite knows beyond it. Empty when the package is missing."""
    spec = importlib.util.find_spec("tflite")
    if spec is None or not spec.submodule_search_locations:
        return {}
    from pathlib import Path

    path = Path(next(iter(spec.submodule_search_locations))) / "BuiltinOperator.py"
    loader = importlib.util.spec_from_file_location("_qfix_tflite_builtin_operator", path)
    if loader is None or loader.loader is None:
        return {}
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    from qfix.targets.tflite import _NEWER_OPS  # codes newer than the package's enum

    codes = {k: v for k, v in vars(module.BuiltinOperator).items() if not k.startswith("_")}
    codes.update({name: code for code, name in _NEWER_OPS.items()})
    return codes
