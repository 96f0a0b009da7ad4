"""Target profiles: one data-only TOML file per target, the only target registry.

A profile holds the op table, per-op rules, dtype/shape/rank rules, how a failure spreads,
the conversion recipe (`[recipe]`), the toolchain that judges it for real, and the source and
confidence of each fact. Everything else is derived from it: the converter's `Recipe`, the
facts the source rules need (`Profile.integer`, `missing_activations`, ...), the compiler
wrapper (`qfix.targets.compilers.find`). Adding a target is adding one TOML file.

Rules name predicates implemented in `qfix.targets.check`; nothing in a profile is evaluated.
Users can pass their own profile file with the same schema. A profile may extend a built-in one
(`extends = "ethos-u55"`), and `--target id:N` picks the accelerator configuration with N MACs
of a profile that lists them (qfix.targets.variants).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import cache, cached_property
from importlib import resources
from pathlib import Path
from typing import Any

from qfix.model.opmap import ACTIVATION_OPS, FUSABLE_ACTIVATION_OPS, FUSING_LAYER_OPS
from qfix.targets import variants
from qfix.targets import schema
from qfix.types import QfixError

PLACEMENTS = ("prefix", "islands", "all_or_nothing")
# What an op version newer than the toolchain knows does: "op" = that op is off target (the
# op's own status); "model" = the toolchain cannot parse the file, so nothing maps.
VERSION_FAILURES = ("op", "model")
CONFIDENCES = ("V", "M", "R")
SEVERITIES = ("blocker", "warn", "reference")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# The keys an [op.NAME] table may have (a misspelt key would otherwise be ignored silently).
OP_KEYS = frozenset({"code", "supported", "rule", "source", "confidence", "fix_hint", "min_runtime", "max_version",
                     "version_source", "version_confidence", "kernel"})
# The predicates of qfix.targets.check a rule may name (kept here so loading a profile, as
# every source run with --target does, does not import check.py and numpy; a test keeps the
# two in step). Their arguments are checked for user profiles (qfix.targets.schema).
PREDICATE_NAMES = frozenset({
    "attr_eq", "attr_in", "attr_not_in", "fused_activation_in", "effective_rank_le", "num_elements_le",
    "size_warn", "spatial_size_le", "axes_exclude", "dim_multiple_of_if_reduced", "const_input_all_eq",
    "const_inputs_zero_pad", "pad_excludes_dims", "const_innermost_only", "dtype_in",
    "attrs_le", "batch_one", "depth_reduction_needs_unit", "resize_scale_in", "resize_scale_le",
    "stride_le_unless_unpadded", "no_scalar_activations",
    "runtime_inputs_le", "const_inputs_le", "inputs_count_in", "input_is_const", "input_not_const", "dtype_not_in",
    "rank_in", "dim_in", "dtype_pair_in", "custom_code_in", "attrs_not_all", "depth_multiplier_single_channel",
    "one_input_covers_other", "scale_gt",
})
QUANTIZATIONS = ("full_integer", "float16", "none")
IO_DTYPES = ("int8", "uint8", "int16", "float32")
# tf.lite.OpsSet members a recipe may name.
OPS_SETS = ("TFLITE_BUILTINS", "TFLITE_BUILTINS_INT8", "SELECT_TF_OPS",
            "EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8")


@dataclass(frozen=True)
class Recipe:
    """How qfix converts a Keras model for a target (the profile's `[recipe]` table).

    quantization: "full_integer" (post-training, with calibration data), "float16" (weights
    stored as float16) or "none". io_dtype: inference_input/output_type for float model I/O
    (full_integer only). batch: the fixed batch of the exported signature (None keeps the
    model's). supported_ops: tf.lite.OpsSet member names.
    """

    target: str
    quantization: str = "full_integer"
    io_dtype: str = "int8"
    batch: int | None = 1
    supported_ops: tuple[str, ...] = ("TFLITE_BUILTINS_INT8",)
    description: str = ""

    @property
    def full_integer(self) -> bool:
        return self.quantization == "full_integer"


# The float baseline the benchmarks and fidelity tests compare against: no target behind it.
FLOAT32_BASELINE = Recipe("float32", "none", "float32", 1, ("TFLITE_BUILTINS",), "no quantization (float baseline)")


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

    def too_new(self, version: int) -> bool:
        """Whether op `version` is newer than the target's toolchain knows (`max_version`)."""
        return self.max_version is not None and version > self.max_version


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
    unlisted_ops: str  # "unsupported" or "reference"
    statuses: dict[str, str]
    ops: dict[str, OpSpec]
    max_tflite_runtime: str | None = None
    toolchain: dict[str, Any] = field(default_factory=dict)
    facts: dict[str, dict[str, str]] = field(default_factory=dict)  # model rule -> source/confidence
    path: str = ""
    recipe: Recipe = field(default_factory=lambda: Recipe("?"))
    aliases: tuple[str, ...] = ()
    integer_io: bool = False  # float model I/O is off target (the boundary op runs in float)
    version_failure: str = "op"  # VERSION_FAILURES
    state_dtypes: tuple[str, ...] = ()  # integer dtypes allowed for variable (state) tensors
    dynamic_batch: bool = False  # with static_shapes: a dynamic first dimension is fine (Vela sets it to 1)
    sources: tuple[str, ...] = ()  # where the profile's facts come from (`target.sources`)
    max_rank: int | None = None  # tensors of a higher rank are off target (the GPU delegate: 4)
    # A delegate that takes only its N largest partitions by default (GPU delegate: 1).
    max_delegated_partitions: int | None = None

    def op(self, name: str) -> OpSpec | None:
        return self.ops.get(name)

    def supports(self, name: str) -> bool:
        spec = self.ops.get(name)
        if spec is not None:
            return spec.supported
        return self.unlisted_ops == "reference"

    def status(self, key: str) -> str:
        return self.statuses.get(key, key)

    def fuses(self, host_op: str, activation_op: str) -> bool:
        """Whether `activation_op` (RELU, RELU6, ...) runs fused into `host_op` (CONV_2D, ...) on
        this target: the host op is supported and each of its `fused_activation_in` rules, the
        ones the op-by-op check (qfix.targets.check) applies, admits the activation. Fused, the
        activation is no op of its own, so whether the target lists it does not matter."""
        spec = self.ops.get(host_op)
        if spec is None:
            if self.unlisted_ops != "reference":
                return False
        elif not spec.supported:
            return False
        rules = [] if spec is None else [r for r in spec.constraints if r.predicate == "fused_activation_in"]
        return all(activation_op in r.args.get("values", ()) for r in rules if r.severity == "blocker")

    # ---- the source rules' view, derived from the facts above -------------------------------
    @property
    def batch(self) -> int | None:
        return self.recipe.batch

    @property
    def integer(self) -> bool:
        """The target needs a fully integer model."""
        return self.recipe.full_integer

    @property
    def io_dtype(self) -> str | None:
        """The integer I/O type the target expects (the recipe's), None when float I/O is fine."""
        return self.recipe.io_dtype if self.integer_io and self.integer else None

    @property
    def int8_ops_only(self) -> bool:
        """A float fallback op is off target (no kernel for unlisted ops), so the converter
        should be held to TFLITE_BUILTINS_INT8."""
        return self.integer and self.unlisted_ops == "unsupported"

    def runs_activation(self, activation: str, host_layer: str | None = None) -> bool:
        """Whether the Keras activation `activation` (opmap.ACTIVATION_OPS) runs on this target
        when applied by a layer of class `host_layer` (its `activation=`): each of its TFLite ops
        is either supported or fused into the host's op (`fuses`, opmap.FUSING_LAYER_OPS)."""
        host = FUSING_LAYER_OPS.get(host_layer or "")
        ops = ACTIVATION_OPS.get(activation, ())
        fused = host is not None and len(ops) == 1 and ops[0] in FUSABLE_ACTIVATION_OPS
        return all(self.supports(o) or (fused and self.fuses(host, o)) for o in ops)

    @cached_property
    def missing_activations(self) -> frozenset[str]:
        """Keras activation names whose TFLite ops (`opmap.ACTIVATION_OPS`) the op table
        does not run: the same question the model side of QF302 asks op by op."""
        return frozenset(a for a, ops in ACTIVATION_OPS.items() if not all(self.supports(o) for o in ops))


def available_targets() -> list[str]:
    """Built-in target ids: the TOML files shipped in this package (file stem = `[target] id`)."""
    return sorted(p.name[:-5] for p in resources.files(__package__).iterdir() if p.name.endswith(".toml"))


@cache
def _builtin(target_id: str) -> Profile:
    text = resources.files(__package__).joinpath(f"{target_id}.toml").read_text(encoding="utf-8")
    return _parse(text, target_id)


def _builtin_doc(name: str) -> dict[str, Any] | None:
    """The parsed TOML of a built-in profile by id or alias (what `extends` names), None when
    there is no such built-in."""
    key = _aliases().get(name.lower(), name.lower())
    if key not in available_targets():
        return None
    text = resources.files(__package__).joinpath(f"{key}.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


@cache
def _aliases() -> dict[str, str]:
    """alias (lower case) -> built-in id, from each profile's `aliases = [...]`."""
    return {a.lower(): t for t in available_targets() for a in _own_aliases(t)}


def _own_aliases(target_id: str) -> list[str]:
    """A built-in's aliases as its file writes them (read without `extends`: never inherited)."""
    text = resources.files(__package__).joinpath(f"{target_id}.toml").read_text(encoding="utf-8")
    target = tomllib.loads(text).get("target", {})
    return list(target.get("aliases", [])) if isinstance(target, dict) else []


def load_profile(name_or_path: str) -> Profile:
    """A built-in target by id or alias, any case (`edgetpu`, `Coral`, `ethos-u55`), with
    `:N` for its accelerator configuration with N MACs (`ethos-u55:128`, qfix.targets.variants),
    or a user profile by path (a name ending in `.toml`, holding a `/`, or naming an existing
    file). Built-ins are parsed once per process; a user profile is checked strictly
    (qfix.targets.schema: every key, op name and rule argument).

    Raises QfixError QF910 (unknown name, listing the known ones) or QF912 (unreadable or
    invalid profile, naming the key)."""
    path = Path(name_or_path)
    if name_or_path.endswith(".toml") or "/" in name_or_path or path.exists():
        if path.is_dir():
            raise QfixError("QF912", f"target profile {name_or_path} is a folder; pass the profile's .toml file")
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise QfixError("QF912", f"cannot read target profile {name_or_path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise QfixError("QF912", f"target profile {name_or_path} is not UTF-8 text (TOML is)") from None
        return _parse(text, str(path), strict=True)
    name, colon, macs = name_or_path.partition(":")  # `ethos-u55:128`: a MAC configuration
    key = name.lower()
    key = _aliases().get(key, key)
    if key not in available_targets():
        known = ", ".join(available_targets())
        raise QfixError("QF910", f"unknown target '{name_or_path}' (known: {known}; or pass a .toml profile)")
    return variants.with_macs(_builtin(key), macs, name_or_path) if colon else _builtin(key)


def _bad(where: str, msg: str) -> QfixError:
    return QfixError("QF912", f"bad target profile {where}: {msg}")


def _parse(text: str, where: str, strict: bool = False) -> Profile:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _bad(where, f"invalid TOML ({exc})") from None
    try:
        doc = variants.resolve(doc, where, _builtin_doc)  # `extends = "<id>"`
        schema.validate(doc, where, strict)
        return _build(doc, where, PREDICATE_NAMES)
    except QfixError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _bad(where, f"{type(exc).__name__}: {exc}") from None


def _build(doc: dict[str, Any], where: str, predicates: frozenset[str]) -> Profile:
    if doc.get("schema") != 1:
        raise _bad(where, "expected `schema = 1`")
    target = doc.get("target")
    if not isinstance(target, dict) or "id" not in target:
        raise _bad(where, "missing [target] table with an `id`")
    # The id names output files (`<stem>.qfix.<id>.tflite`) and is printed: a plain word only.
    if not isinstance(target["id"], str) or not _ID.fullmatch(target["id"]):
        raise _bad(where, f"target.id must be letters, digits, '.', '_' or '-' (it names output files), "
                          f"got {target['id']!r:.60}")
    placement = target.get("placement")
    if placement not in PLACEMENTS:
        raise _bad(where, f"target.placement must be one of {', '.join(PLACEMENTS)}, got {placement!r}")
    rules = target.get("model_rules", {})
    statuses = {str(k): str(v) for k, v in doc.get("statuses", {}).items()}

    ops: dict[str, OpSpec] = {}
    for op_name, spec in doc.get("op", {}).items():
        if not isinstance(spec, dict):
            raise _bad(where, f"op.{op_name} must be a table")
        unknown = sorted(set(spec) - OP_KEYS)
        if unknown:
            raise _bad(where, f"op.{op_name}: unknown key {unknown[0]!r} (known: {', '.join(sorted(OP_KEYS))})")
        for key in ("code", "min_runtime", "max_version"):
            if spec.get(key) is not None and (isinstance(spec[key], bool) or not isinstance(spec[key], int)):
                raise _bad(where, f"op.{op_name}.{key} must be an integer, got {spec[key]!r:.40}")
        if not isinstance(spec.get("rule", []), list):
            raise _bad(where, f"op.{op_name}.rule must be an array of tables ([[op.{op_name}.rule]])")
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
    version_failure = rules.get("version_failure", "op")
    if version_failure not in VERSION_FAILURES:
        raise _bad(where, f"target.model_rules.version_failure must be one of {', '.join(VERSION_FAILURES)}, "
                          f"got {version_failure!r:.40}")
    toolchain = target.get("toolchain", {})
    if not isinstance(toolchain, dict):
        raise _bad(where, "target.toolchain must be a table")
    variants.accelerator_configs(toolchain, where)
    aliases = target.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise _bad(where, "target.aliases must be a list of strings")
    return Profile(
        id=str(target["id"]),
        name=str(target.get("name", target["id"])),
        placement=placement,
        activation_dtypes=tuple(rules.get("activation_dtypes", ("int8", "uint8"))),
        aux_dtypes=tuple(rules.get("aux_dtypes", ())),
        static_shapes=bool(rules.get("static_shapes", False)),
        max_innermost_dims=rules.get("max_innermost_dims"),
        max_subgraphs=rules.get("max_subgraphs"),
        unlisted_ops=str(target.get("unlisted_ops", "unsupported")),
        statuses=statuses,
        ops=ops,
        max_tflite_runtime=rules.get("max_tflite_runtime"),
        toolchain=dict(toolchain),
        facts=facts,
        path=where,
        recipe=_recipe(doc.get("recipe", {}), str(target["id"]), where),
        aliases=tuple(aliases),
        integer_io=bool(rules.get("integer_io", False)),
        version_failure=version_failure,
        state_dtypes=tuple(rules.get("state_dtypes", ())),
        dynamic_batch=bool(rules.get("dynamic_batch", False)),
        sources=tuple(target.get("sources", ())),
        max_rank=rules.get("max_rank"),
        max_delegated_partitions=rules.get("max_delegated_partitions"),
    )


def _recipe(raw: Any, target_id: str, where: str) -> Recipe:
    """The `[recipe]` table; a missing table or key takes the Recipe default (full-integer
    PTQ, int8 I/O, batch 1, TFLITE_BUILTINS_INT8)."""
    if not isinstance(raw, dict):
        raise _bad(where, "recipe must be a table")
    unknown = sorted(set(raw) - {"quantization", "io_dtype", "batch", "supported_ops", "description"})
    if unknown:
        raise _bad(where, f"recipe.{unknown[0]}: unknown key")
    base = Recipe(target_id)
    quantization = raw.get("quantization", base.quantization)
    if quantization not in QUANTIZATIONS:
        raise _bad(where, f"recipe.quantization must be one of {', '.join(QUANTIZATIONS)}, got {quantization!r}")
    io_dtype = raw.get("io_dtype", base.io_dtype if quantization == "full_integer" else "float32")
    if io_dtype not in IO_DTYPES:
        raise _bad(where, f"recipe.io_dtype must be one of {', '.join(IO_DTYPES)}, got {io_dtype!r}")
    batch = raw.get("batch", base.batch)
    if batch is not None and (not isinstance(batch, int) or isinstance(batch, bool) or batch < 1):
        raise _bad(where, f"recipe.batch must be a positive integer, got {batch!r}")
    ops = raw.get("supported_ops", list(base.supported_ops))
    if not isinstance(ops, list) or not ops or any(o not in OPS_SETS for o in ops):
        raise _bad(where, f"recipe.supported_ops must be a non-empty list of {', '.join(OPS_SETS)}, got {ops!r}")
    description = raw.get("description", f"{quantization} quantization, {io_dtype} I/O, batch {batch}")
    if not isinstance(description, str):
        raise _bad(where, "recipe.description must be a string")
    return Recipe(target_id, quantization, io_dtype, batch, tuple(ops), description)
