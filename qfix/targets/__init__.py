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

import os
import re
import stat
import tomllib
from dataclasses import dataclass, field, replace
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
    "one_input_covers_other", "scale_gt", "weight_sum_le",
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
    # Not a TOML key: set from the profile's op table (qfix.model.opmap.steps_sliced): read an
    # unrolled RNN's time steps with STRIDED_SLICE instead of UNPACK (qfix.convert.unstack).
    slice_time_steps: bool = False
    # Not a TOML key either (qfix.model.opmap.packs_off_batch): stack an unrolled RNN's outputs
    # with a PACK on axis 1 and a RESHAPE instead of a PACK on the batch axis (qfix.convert.unbatched_pack).
    pack_off_batch: bool = False
    # Not a TOML key (qfix.model.opmap.splits_equal): a SPLIT_V of equal sizes becomes a SPLIT
    # (qfix.convert.equal_split).
    split_equal: bool = False

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
    # The toolchain rejects the whole file when an op breaks TFLite's semantics in its stored
    # shapes (Vela: "Does not have valid TFLite Semantics", a RESHAPE whose element counts differ).
    checks_semantics: bool = False
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
        """The words for status `key`: the profile's own, else qfix's (schema.DEFAULT_STATUSES)."""
        return self.statuses.get(key) or schema.DEFAULT_STATUSES.get(key, key)

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

    def output_rank_limit(self, op: str) -> int | None:
        """The largest effective rank (dimensions other than 1) the output of `op` may have on
        this target, from its `effective_rank_le` blocker rule on output0; None when unlimited
        (the Edge TPU's FULLY_CONNECTED: 1, "Output tensor is one-dimensional")."""
        spec = self.ops.get(op)
        limits = [int(r.args["n"]) for r in (spec.constraints if spec else ())
                  if r.predicate == "effective_rank_le" and r.args.get("tensor") == "output0" and r.severity == "blocker"]
        return min(limits) if limits else None

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
    or a user profile by path (a name ending in `.toml` in any case, holding a `/`, or naming an
    existing file that is not a built-in's id or alias: `edgetpu` is the built-in even beside an
    `edgetpu/` folder): a regular file of at most 1 MiB (MAX_PROFILE_BYTES). Built-ins are parsed once per process; a user profile is checked strictly
    (qfix.targets.schema: every key, op name and rule argument).

    Raises QfixError QF910 (empty or unknown name, listing the known ones; a bad `:N`) or QF912 (unreadable or
    invalid profile, naming the key)."""
    if not name_or_path.strip():
        raise QfixError("QF910", "empty target: pass a target id (see `qfix targets`) or a profile .toml file")
    path = Path(name_or_path)
    name, colon, macs = name_or_path.partition(":")  # `ethos-u55:128`: a MAC configuration
    key = name.lower()
    key = _aliases().get(key, key)
    # A built-in's id or alias means the built-in even when a file or folder of that name is in
    # the working directory (an `edgetpu/` output folder is common); a path says it is one.
    spelled_as_path = name_or_path.lower().endswith(".toml") or "/" in name_or_path or os.sep in name_or_path
    if spelled_as_path or (key not in available_targets() and path.exists()):
        text = _read_profile(name_or_path)
        profile = _parse(text, str(path), strict=True)
        _not_a_builtin_name(profile, path)
        return profile
    if key not in available_targets():
        known = ", ".join(available_targets())
        raise QfixError("QF910", f"unknown target '{name_or_path}' (known: {known}; or pass a .toml profile)")
    return variants.with_macs(_builtin(key), macs, name_or_path) if colon else _builtin(key)


# A real profile is a few KiB (the largest built-in, gpu.toml, is under 64 KiB): the cap keeps
# /dev/zero or a huge file from being read into memory.
MAX_PROFILE_BYTES = 1 << 20


def _read_profile(name: str) -> str:
    """The text of the profile file `name`: a regular file (after symlinks) of at most
    MAX_PROFILE_BYTES, UTF-8. A FIFO, device or folder is refused by `stat` before it is
    opened (opening a FIFO blocks). Raises QfixError QF912 with one line."""
    if name.endswith(("/", os.sep)):
        raise QfixError("QF912", f"target profile {name} ends in '/', so it names a folder; pass the profile's "
                                 ".toml file")
    try:
        st = os.stat(name)
    except OSError as exc:
        raise QfixError("QF912", f"cannot read target profile {name}: {exc.strerror}") from None
    except ValueError:  # a NUL byte (from a config file's string): no file has that name
        raise QfixError("QF912", f"cannot read target profile {name!r:.80}: a path cannot hold a NUL byte") from None
    if stat.S_ISDIR(st.st_mode):
        raise QfixError("QF912", f"target profile {name} is a folder; pass the profile's .toml file")
    if not stat.S_ISREG(st.st_mode):
        raise QfixError("QF912", f"target profile {name} is not a regular file (a device, FIFO or socket); "
                                 "pass the profile's .toml file")
    cap = f"{MAX_PROFILE_BYTES // (1 << 20)} MiB"
    if st.st_size > MAX_PROFILE_BYTES:
        raise QfixError("QF912", f"target profile {name} is larger than {cap} (a profile is a few KiB)")
    try:
        with open(name, "rb") as f:
            data = f.read(MAX_PROFILE_BYTES + 1)  # the file may have grown since stat
    except OSError as exc:
        raise QfixError("QF912", f"cannot read target profile {name}: {exc.strerror}") from None
    if len(data) > MAX_PROFILE_BYTES:
        raise QfixError("QF912", f"target profile {name} is larger than {cap} (a profile is a few KiB)")
    try:
        return data.decode("utf-8").removeprefix("\ufeff")  # a BOM (Windows editors) is not TOML's
    except UnicodeDecodeError:
        raise QfixError("QF912", f"target profile {name} is not UTF-8 text (TOML is)") from None


def _not_a_builtin_name(profile: Profile, path: Path) -> None:
    """A user profile may not take a built-in's id or alias: output files, reports and JSON
    name the target by id, and `edgetpu` must mean the shipped Edge TPU. The built-in files
    themselves (loaded by path in the test suite) are theirs."""
    own_file = resources.files(__package__).joinpath(profile.id.lower() + ".toml")
    if isinstance(own_file, Path) and own_file.exists() and path.resolve() == own_file.resolve():
        return
    # Aliases are not checked: a copy of a built-in file keeps its aliases (the README's way to
    # add a target), and a user profile's aliases never name a target for --target.
    key = profile.id.lower()
    owner = key if key in available_targets() else _aliases().get(key)
    if owner is None:
        return
    what = "the id of a built-in target" if owner == key else f"an alias of the built-in target {owner}"
    raise _bad(str(path), f"target.id: {profile.id!r} is {what}; give your profile its own id")


def _bad(where: str, msg: str) -> QfixError:
    return QfixError("QF912", f"bad target profile {where}: {msg}")


def _parse(text: str, where: str, strict: bool = False) -> Profile:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _bad(where, f"invalid TOML ({exc})") from None
    # Every file says its own schema: a child's `extends` does not supply it.
    if doc.get("schema") != 1 or isinstance(doc.get("schema"), bool):  # `true == 1` in Python
        raise _bad(where, f"expected `schema = 1` at the top of the file, got "
                          f"{'no schema key' if 'schema' not in doc else repr(doc['schema'])[:40]}")
    try:
        own_recipe = doc.get("recipe") if isinstance(doc.get("recipe"), dict) else {}
        parent = doc.get("extends")
        doc = variants.resolve(doc, where, _builtin_doc)  # `extends = "<id>"`
        if parent is not None:
            doc = _own_description(doc, own_recipe)
        schema.validate(doc, where, strict)
        inherited = {} if parent is None else {k: str(parent) for k in doc.get("recipe", {}) if k not in own_recipe}
        return _build(doc, where, PREDICATE_NAMES, inherited)
    except QfixError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _bad(where, f"{type(exc).__name__}: {exc}") from None


def _own_description(doc: dict[str, Any], own_recipe: dict[str, Any]) -> dict[str, Any]:
    """A child that changes its parent's recipe but not its description gets a description made
    from its own recipe: the parent's text would describe another conversion."""
    recipe = doc.get("recipe")
    if not isinstance(recipe, dict) or "description" in own_recipe or not set(own_recipe) - {"description"}:
        return doc
    return {**doc, "recipe": {k: v for k, v in recipe.items() if k != "description"}}


def _build(doc: dict[str, Any], where: str, predicates: frozenset[str],
           inherited: dict[str, str] | None = None) -> Profile:
    """The Profile of a resolved, validated document. `inherited`: recipe key -> the built-in
    it came from through `extends` (named in a recipe conflict)."""
    target = doc.get("target")
    if not isinstance(target, dict) or "id" not in target:
        raise _bad(where, "missing [target] table with an `id`")
    # The id names output files (`<stem>.qfix.<id>.tflite`) and is printed: a plain word only.
    if not isinstance(target["id"], str) or not _ID.fullmatch(target["id"]):
        raise _bad(where, f"target.id must be 1 to 64 letters, digits, '.', '_' or '-' (it names output files), "
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
    profile = Profile(
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
        recipe=_recipe(doc.get("recipe", {}), str(target["id"]), where, inherited or {}),
        aliases=tuple(aliases),
        integer_io=bool(rules.get("integer_io", False)),
        version_failure=version_failure,
        state_dtypes=tuple(rules.get("state_dtypes", ())),
        dynamic_batch=bool(rules.get("dynamic_batch", False)),
        checks_semantics=bool(rules.get("checks_semantics", False)),
        sources=tuple(target.get("sources", ())),
        max_rank=rules.get("max_rank"),
        max_delegated_partitions=rules.get("max_delegated_partitions"),
    )
    from qfix.model.opmap import packs_off_batch, splits_equal, steps_sliced

    return replace(profile, recipe=replace(profile.recipe, slice_time_steps=steps_sliced(profile),
                                           pack_off_batch=packs_off_batch(profile),
                                           split_equal=splits_equal(profile)))


# Op sets TF's converter accepts only with full-integer quantization: with float16 it raises
# "As full integer quantization has been enabled by setting `target_spec.supported_ops`=
# {TFLITE_BUILTINS_INT8}, thus `target_spec.supported_types` should be left uninitizalized or set
# to {tf.int8}", without optimizations "For full integer quantization, a `representative_dataset`
# must be specified" (TF 2.21, run here, V).
FULL_INTEGER_OPS_SETS = ("TFLITE_BUILTINS_INT8", "EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8")


def _recipe(raw: Any, target_id: str, where: str, inherited: dict[str, str] | None = None) -> Recipe:
    """The `[recipe]` table. Every key is optional; the defaults (README, "Your own target"):
    quantization full_integer; io_dtype int8 for full_integer, else float32; batch 1;
    supported_ops TFLITE_BUILTINS_INT8 for full_integer, else TFLITE_BUILTINS; description made
    from the other four. Keys that contradict each other are a QF912 naming both (and the
    built-in an inherited one came from)."""
    if not isinstance(raw, dict):
        raise _bad(where, "recipe must be a table")
    unknown = sorted(set(raw) - {"quantization", "io_dtype", "batch", "supported_ops", "description"})
    if unknown:
        raise _bad(where, f"recipe.{unknown[0]}: unknown key")
    base = Recipe(target_id)
    quantization = raw.get("quantization", base.quantization)
    if quantization not in QUANTIZATIONS:
        raise _bad(where, f"recipe.quantization must be one of {', '.join(QUANTIZATIONS)}, got {quantization!r}")
    integer = quantization == "full_integer"
    io_dtype = raw.get("io_dtype", base.io_dtype if integer else "float32")
    if io_dtype not in IO_DTYPES:
        raise _bad(where, f"recipe.io_dtype must be one of {', '.join(IO_DTYPES)}, got {io_dtype!r}")
    batch = raw.get("batch", base.batch)
    if batch is not None and (not isinstance(batch, int) or isinstance(batch, bool) or batch < 1):
        raise _bad(where, f"recipe.batch must be a positive integer, got {batch!r:.40}")
    if batch is not None and batch != 1:
        # The verification feeds one sample per inference (calibration, fidelity, TFLM, Vela's
        # batch-1 rules): a batch-N file would fail there, after minutes of TensorFlow.
        raise _bad(where, f"recipe.batch: qfix converts and verifies at batch 1 only, got {batch!r:.40}")
    ops = raw.get("supported_ops", list(base.supported_ops) if integer else ["TFLITE_BUILTINS"])
    if not isinstance(ops, list) or not ops or any(o not in OPS_SETS for o in ops):
        raise _bad(where, f"recipe.supported_ops must be a non-empty list of {', '.join(OPS_SETS)}, got {ops!r}")
    if not integer:
        _conflict(where, quantization, inherited or {},
                  ("supported_ops", next((o for o in ops if o in FULL_INTEGER_OPS_SETS), None),
                   "TF's converter takes it only with full-integer quantization; use TFLITE_BUILTINS"),
                  ("io_dtype", io_dtype if io_dtype != "float32" else None,
                   "integer model I/O needs full-integer quantization; use float32"))
    description = raw.get("description", f"{quantization} quantization, {', '.join(ops)}, {io_dtype} I/O, "
                                         f"batch {batch}")
    if not isinstance(description, str):
        raise _bad(where, "recipe.description must be a string")
    return Recipe(target_id, quantization, io_dtype, batch, tuple(ops), description)


def _conflict(where: str, quantization: str, inherited: dict[str, str], *checks: tuple[str, Any, str]) -> None:
    """QF912 for the first (key, offending value or None, why) that clashes with a
    quantization other than full_integer."""
    def origin(key: str) -> str:
        return f" (from extends = {inherited[key]!r})" if key in inherited else ""

    for key, value, why in checks:
        if value is not None:
            raise _bad(where, f"recipe.quantization = {quantization!r}{origin('quantization')} conflicts with "
                              f"recipe.{key} {value!r}{origin(key)}: {why}")
