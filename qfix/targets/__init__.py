"""Target profiles: one data-only TOML file per target (ops, per-op rules, dtype/shape/rank
rules, how a failure spreads, and the source and confidence of each fact).

Rules name predicates implemented in `qfix.targets.check`; nothing in a profile is evaluated.
Users can pass their own profile file with the same schema.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from qfix.types import QfixError

PLACEMENTS = ("prefix", "islands", "all_or_nothing")
CONFIDENCES = ("V", "M", "R")
SEVERITIES = ("blocker", "warn", "reference")


@dataclass(frozen=True)
class Rule:
    """One static constraint of an op: `predicate(args)` must hold."""

    predicate: str
    args: dict[str, Any]
    text: str
    status: str = "hidden_limit"  # key into Profile.statuses
    severity: str = "blocker"  # blocker: off target; warn: advisory; reference: slow kernel, on target
    source: str = ""
    confidence: str = "R"
    fix_hint: str | None = None
    id: str | None = None


@dataclass(frozen=True)
class OpSpec:
    name: str
    code: int | None
    supported: bool
    constraints: tuple[Rule, ...] = ()
    source: str = ""
    confidence: str = "R"
    fix_hint: str | None = None
    min_runtime: int | None = None
    max_version: int | None = None
    version_source: str | None = None
    version_confidence: str | None = None
    kernel: str = "native"  # "reference": supported, but on a slow fallback kernel


@dataclass(frozen=True)
class Profile:
    id: str
    name: str
    placement: str
    activation_dtypes: tuple[str, ...]
    aux_dtypes: tuple[str, ...]  # non-float dtypes allowed for activations (shapes, indices)
    static_shapes: bool
    max_innermost_dims: int | None
    max_subgraphs: int | None
    batch: int | None
    io_dtype: str
    unlisted_ops: str  # "unsupported" or "reference"
    statuses: dict[str, str]
    ops: dict[str, OpSpec]
    max_tflite_runtime: str | None = None
    toolchain: dict[str, Any] = field(default_factory=dict)
    facts: dict[str, dict[str, str]] = field(default_factory=dict)  # model rule -> source/confidence
    path: str = ""

    def op(self, name: str) -> OpSpec | None:
        return self.ops.get(name)

    def supports(self, name: str) -> bool:
        spec = self.ops.get(name)
        if spec is not None:
            return spec.supported
        return self.unlisted_ops == "reference"

    def status(self, key: str) -> str:
        return self.statuses.get(key, key)


def available_targets() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files(__package__).iterdir() if p.name.endswith(".toml"))


def load_profile(name_or_path: str) -> Profile:
    """A built-in target by name (`edgetpu`, `int8`) or a user profile by path."""
    path = Path(name_or_path)
    if name_or_path.endswith(".toml") or path.is_file():
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise QfixError("QF912", f"cannot read target profile {name_or_path}: {exc.strerror}") from None
        return _parse(text, str(path))
    if name_or_path not in available_targets():
        known = ", ".join(available_targets())
        raise QfixError("QF910", f"unknown target '{name_or_path}' (known: {known}; or pass a .toml profile)")
    text = resources.files(__package__).joinpath(f"{name_or_path}.toml").read_text(encoding="utf-8")
    return _parse(text, name_or_path)


def _bad(where: str, msg: str) -> QfixError:
    return QfixError("QF912", f"bad target profile {where}: {msg}")


def _parse(text: str, where: str) -> Profile:
    from qfix.targets.check import PREDICATES  # the names a rule may use

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _bad(where, f"invalid TOML ({exc})") from None
    try:
        return _build(doc, where, PREDICATES)
    except QfixError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _bad(where, f"{type(exc).__name__}: {exc}") from None


def _build(doc: dict[str, Any], where: str, predicates: dict[str, Any]) -> Profile:
    if doc.get("schema") != 1:
        raise _bad(where, "expected `schema = 1`")
    target = doc.get("target")
    if not isinstance(target, dict) or "id" not in target:
        raise _bad(where, "missing [target] table with an `id`")
    placement = target.get("placement")
    if placement not in PLACEMENTS:
        raise _bad(where, f"target.placement must be one of {', '.join(PLACEMENTS)}, got {placement!r}")
    rules = target.get("model_rules", {})
    statuses = {str(k): str(v) for k, v in doc.get("statuses", {}).items()}

    ops: dict[str, OpSpec] = {}
    for op_name, spec in doc.get("op", {}).items():
        if not isinstance(spec, dict):
            raise _bad(where, f"op.{op_name} must be a table")
        constraints = []
        for raw in spec.get("rule", []):
            pred = raw.get("predicate")
            if pred not in predicates:
                raise _bad(where, f"op.{op_name}: unknown predicate {pred!r}")
            if raw.get("severity", "blocker") not in SEVERITIES:
                raise _bad(where, f"op.{op_name}: severity must be one of {', '.join(SEVERITIES)}")
            constraints.append(
                Rule(pred, dict(raw.get("args", {})), str(raw.get("text", pred)),
                     str(raw.get("status", "hidden_limit")), str(raw.get("severity", "blocker")),
                     str(raw.get("source", spec.get("source", ""))), str(raw.get("confidence", "R")),
                     raw.get("fix_hint"), raw.get("id"))
            )
        ops[op_name] = OpSpec(
            name=op_name,
            code=spec.get("code"),
            supported=bool(spec.get("supported", True)),
            constraints=tuple(constraints),
            source=str(spec.get("source", "")),
            confidence=str(spec.get("confidence", "R")),
            fix_hint=spec.get("fix_hint"),
            min_runtime=spec.get("min_runtime"),
            max_version=spec.get("max_version"),
            version_source=spec.get("version_source"),
            version_confidence=spec.get("version_confidence"),
            kernel=str(spec.get("kernel", "native")),
        )
        for c in (ops[op_name].confidence, *(r.confidence for r in constraints)):
            if c not in CONFIDENCES:
                raise _bad(where, f"op.{op_name}: confidence must be one of V/M/R, got {c!r}")

    facts = {
        key[: -len("_source")]: {"source": str(value), "confidence": str(rules.get(key[: -len("_source")] + "_confidence", "R"))}
        for key, value in rules.items()
        if key.endswith("_source")
    }
    facts["placement"] = {"source": str(target.get("placement_source", "")),
                          "confidence": str(target.get("placement_confidence", "R"))}
    return Profile(
        id=str(target["id"]),
        name=str(target.get("name", target["id"])),
        placement=placement,
        activation_dtypes=tuple(rules.get("activation_dtypes", ("int8", "uint8"))),
        aux_dtypes=tuple(rules.get("aux_dtypes", ())),
        static_shapes=bool(rules.get("static_shapes", False)),
        max_innermost_dims=rules.get("max_innermost_dims"),
        max_subgraphs=rules.get("max_subgraphs"),
        batch=target.get("batch"),
        io_dtype=str(target.get("io_dtype", "int8")),
        unlisted_ops=str(target.get("unlisted_ops", "unsupported")),
        statuses=statuses,
        ops=ops,
        max_tflite_runtime=rules.get("max_tflite_runtime"),
        toolchain=dict(target.get("toolchain", {})),
        facts=facts,
        path=where,
    )
