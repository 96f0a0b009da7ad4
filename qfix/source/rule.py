"""The shape of a source rule, its embedded cases and the libcst edits its fixes carry.

A source rule is a class with `SIDE = "source"`, `code`, `name` and embedded `VALID` /
`INVALID` cases (Fixit style) that the test suite runs automatically. It lives in its code's
module under `qfix/rules/`, whose docstring documents the code (both sides; see
`qfix.rules.docs`).

Rules implement `visit_<Node>(node)` / `leave_<Node>(node)` hooks (read-only; the engine calls
every rule's hooks in one batched walk of the tree) and an optional `finish()` called after
the walk. They report with `self.report(node, message, fix=...)`. A fix is a
`qfix.types.Fix` whose `edits` are the objects below; the engine applies them.
"""

from __future__ import annotations

import functools
import os
import re
import textwrap
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Sequence

import libcst as cst

from qfix.source import memo
from qfix.source.dispatch import dispatched
from qfix.source.flavour import FileFlavours
from qfix.source.names import Names
from qfix.source.preorder import child_subtree, region
from qfix.source.util import iter_nodes
from qfix.types import Applicability, Fix, Location, Severity, Violation

if TYPE_CHECKING:  # pragma: no cover
    from qfix.targets import Profile


# --------------------------------------------------------------------------------------------
# Edits carried in Fix.edits
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Replace:
    """Replace `node` (by identity) with `new`."""

    node: cst.CSTNode
    new: cst.CSTNode


@dataclass(frozen=True, eq=False)
class RemoveStatement:
    """Remove a whole statement (a SimpleStatementLine or compound statement)."""

    node: cst.CSTNode


@dataclass(frozen=True, eq=False)
class InsertStatements:
    """Insert statements after (or before) statement `anchor`; `anchor=None` inserts at the
    top of the module, after the docstring and `from __future__` imports."""

    anchor: cst.CSTNode | None
    statements: tuple[cst.BaseStatement, ...]
    before: bool = False


@dataclass(frozen=True)
class AddImport:
    """`import module [as asname]` or `from module import obj [as asname]`."""

    module: str
    obj: str | None = None
    asname: str | None = None


@dataclass(frozen=True)
class RemoveUnusedImport:
    """Remove `import module` / `from module import obj` if nothing uses it any more."""

    module: str
    obj: str | None = None
    asname: str | None = None


def statements(code: str) -> tuple[cst.BaseStatement, ...]:
    return tuple(cst.parse_module(textwrap.dedent(code)).body)


# --------------------------------------------------------------------------------------------
# Embedded cases
# --------------------------------------------------------------------------------------------
@dataclass
class Valid:
    code: str
    target: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def source(self) -> str:
        return textwrap.dedent(self.code).lstrip("\n")


@dataclass
class Invalid:
    """`expected` is the source after applying this rule's fixes (safe and unsafe); None when
    the rule offers no applicable fix here. `count` = exact number of findings if given."""

    code: str
    expected: str | None = None
    applicability: Applicability | None = None
    target: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    count: int | None = None
    message: str | None = None  # substring the first message must contain

    def source(self) -> str:
        return textwrap.dedent(self.code).lstrip("\n")

    def fixed(self) -> str | None:
        return None if self.expected is None else textwrap.dedent(self.expected).lstrip("\n")


# --------------------------------------------------------------------------------------------
# What a file does with its model
# --------------------------------------------------------------------------------------------
_TRAIN_METHODS = frozenset({"fit", "fit_generator", "train_on_batch", "apply_gradients"})
_TEST_MODULES = ("unittest", "pytest", "absl.testing")
_TEST_BASES = ("tensorflow.test.TestCase", "keras.testing.TestCase", "keras.src.testing.TestCase")
# cheap text pre-filters: a file without any of these does none of the things below
# converter settings that ask for an integer model (a float or float16 conversion is not for
# an integer accelerator); a literal `supported_types = [tf.float16]` overrides `optimizations`
_INT_SETTINGS = ("representative_dataset", "inference_input_type", "inference_output_type", "inference_type", "post_training_quantize")
_INT_TYPES = ("tensorflow.int8", "tensorflow.uint8", "tensorflow.lite.constants.INT8", "tensorflow.lite.constants.QUANTIZED_UINT8")
_ACTIVITY_WORDS = ("TFLiteConverter", "export", "saved_model", "fit", "train_on_batch", "GradientTape", "apply_gradients", "quantize_")
_IO_SETTINGS = ("inference_input_type", "inference_output_type", "inference_type")
# an artifact named after a non-integer recipe (`..._weight_quant.tflite`, `model_fp16.tflite`):
# the file says which variant it writes
_FLOAT_ARTIFACT = ("weight_quant", "dynamic_range", "float16", "fp16", "float32", "fp32", "_float")
# what says a file expects an integer model: an artifact named so (`model_int8.tflite`,
# `..._full_integer_quant.tflite`, `..._edgetpu.tflite`), or a read of the converted model's
# quantization parameters (`details['quantization']`, `['quantization_parameters']`)
_INTEGER_ARTIFACT = ("int8", "integer", "full_int", "fullint", "edgetpu")
_QUANT_PARAMS = re.compile(r"""\[\s*['"]quantization(_parameters)?['"]\s*\]|\.quantization_parameters\b""")
# a full-integer setting the author wrote and commented out: float I/O or float fallback chosen
_COMMENTED_INTEGER = re.compile(
    r"^\s*#[^\n]*\.(inference_(input|output)_type\s*=\s*[\w.]*\b(u?int8|INT8|QUANTIZED_UINT8)\b"
    r"|target_spec\.supported_ops\s*=[^\n]*TFLITE_BUILTINS_INT8)",
    re.MULTILINE,
)


def _tflite_names(code: str) -> str:
    """The `.tflite` file names in `code`, lower-cased, one per line: for each `.tflite`, the
    text before it back to a quote, a slash or a line break (what names the artifact in
    `"out/model_int8.tflite"`). str.find over the text, where a case-insensitive regular
    expression tried every position (~1.5 ms for 1,000 lines)."""
    low = code.lower()  # `MODEL.TFLITE` too
    names = []
    at = low.find(".tflite")
    while at != -1:
        line = low.rfind("\n", 0, at) + 1
        start = max(low.rfind(c, line, at) for c in "'\"/") + 1
        names.append(low[max(line, start):at])
        at = low.find(".tflite", at + 1)
    return "\n".join(names)


# an uncommented `inference_input_type = tf.uint8` (or int8, or the v1 constants)
_INTEGER_IO_LINE = re.compile(
    r"^[^#\n]*\.inference_input_type\s*=\s*[\w.]*\b(u?int8|INT8|QUANTIZED_UINT8)\b", re.MULTILINE,
)


@functools.lru_cache(maxsize=256)
def integer_io_scripts(directory: str) -> frozenset[str]:
    """Names of the `.py` files in `directory` that set an integer `inference_input_type`:
    a folder of variant scripts (`03_integer_quantization.py` with float I/O beside
    `05_full_integer_quantization.py` with uint8 I/O) writes its integer-I/O model there.
    Read only for a converter that would get a finding; unreadable files count as none."""
    out = set()
    try:
        names = [n for n in os.listdir(directory) if n.endswith(".py")]
    except OSError:
        return frozenset()
    for n in names:
        try:
            with open(os.path.join(directory, n), encoding="utf-8", errors="replace") as f:
                text = f.read(200_000)
        except OSError:
            continue
        if "inference_input_type" in text and _INTEGER_IO_LINE.search(text):
            out.add(n)
    return frozenset(out)


@dataclass(frozen=True)
class Recipe:
    """What one converter's literal settings ask for (`Recipe.of(settings, names)`).

    `integer`: a representative dataset, integer I/O types or the INT8 op set - a full integer
    model; `integer_io`: `inference_input_type` / `inference_output_type` an integer dtype (a
    variable counts: the type is chosen at run time, and float32 is the default anyway);
    `float16`: `target_spec.supported_types` holds `tf.float16` (float16 weights, float
    activations); `tf_ops`: `target_spec.supported_ops` holds `SELECT_TF_OPS` (TensorFlow ops
    kept in the model, run by the CPU's Flex delegate); `optimized`: `optimizations` is set;
    `sparse`: it holds `Optimize.EXPERIMENTAL_SPARSITY` (sparse weights for the CPU's sparse
    kernels; without `Optimize.DEFAULT` the model stays float)."""

    integer: bool = False
    integer_io: bool = False
    float16: bool = False
    tf_ops: bool = False
    optimized: bool = False
    sparse: bool = False

    @classmethod
    def of(cls, settings: Mapping[str, cst.BaseExpression], names: Names) -> "Recipe":
        """`settings`: setting path (`optimizations`, `target_spec.supported_ops`, ...) -> value."""
        def members(key: str) -> set[str]:
            v = settings.get(key)
            return set() if v is None else {names.canon(e) or "" for e in iter_nodes(v) if type(e) is cst.Attribute}

        io = any(names.canon(settings[k]) in _INT_TYPES or isinstance(settings[k], cst.Name) for k in _IO_SETTINGS if k in settings)
        ops, types = members("target_spec.supported_ops"), members("target_spec.supported_types")
        integer = io or "representative_dataset" in settings or "tensorflow.lite.OpsSet.TFLITE_BUILTINS_INT8" in ops or "tensorflow.int8" in types
        sparse = "tensorflow.lite.Optimize.EXPERIMENTAL_SPARSITY" in members("optimizations")
        return cls(integer, io, "tensorflow.float16" in types, "tensorflow.lite.OpsSet.SELECT_TF_OPS" in ops, "optimizations" in settings, sparse)


@dataclass(frozen=True)
class Activity:
    """What one file does with the models it builds, read from its calls.

    `converts`: creates a TFLite converter (`tf.lite.TFLiteConverter.from_*`, v1 included);
    `quantizes`: a converter setting asks for an integer model (a representative dataset,
    integer I/O types, the INT8 op set, or `optimizations` without a float16 type);
    `exports`: writes a SavedModel / serving artifact for a converter (`model.export(path)`,
    `tf.saved_model.save`, Keras' `ExportArchive`); `trains`: `fit`, `fit_generator`,
    `train_on_batch`, a `GradientTape` loop or `apply_gradients`; `qat`: tfmot's
    `quantize_model` / `quantize_apply` / `quantize_annotate_*`; `test`: a unit test (a
    `test_*.py` / `*_test.py` / `conftest.py` file, or one importing unittest / pytest /
    absl.testing or subclassing a TestCase). Rules about the deployed model (a static batch for
    the target, ...) fire only where the file `deploys` - converts to an integer model, or
    exports without converting - and is not a test: a training or QAT script rightly keeps a
    dynamic batch, library code never reaches the target itself, and a float conversion (a
    CPU post-processing model, SELECT_TF_OPS) is not for an integer accelerator.

    Converter rules ask `not_for_integer(recipe)` per converter; it reads `converters` (how
    many converters the file creates), `integer_variant` / `integer_io_variant` (one of them
    asks for an integer model / integer I/O), `float_artifact` (a `.tflite` path literal
    named after a float recipe), `integer_intent` (something in the file expects an integer
    model: a `.tflite` name that says int8 / integer / edgetpu, a read of the converted
    model's quantization parameters, or quantization-aware training), `commented_integer` (a
    full-integer setting - integer I/O types or the INT8 op set - written and commented out)
    and, for an integer recipe's details, the scripts beside the file (`integer_io_scripts`).
    """

    converts: bool = False
    quantizes: bool = False
    exports: bool = False
    trains: bool = False
    qat: bool = False
    test: bool = False
    converters: int = 0
    path: str | None = None
    integer_variant: bool = False
    integer_io_variant: bool = False
    float_artifact: bool = False
    integer_intent: bool = False
    commented_integer: bool = False

    @property
    def deploys(self) -> bool:
        return not self.test and (self.quantizes if self.converts else self.exports)

    @property
    def for_target(self) -> bool:
        """Takes its model towards a target: deploys it, or trains it quantization-aware."""
        return self.deploys or (self.qat and not self.test)

    def not_for_integer(self, recipe: Recipe, *, details: bool = False, expected: bool = False) -> str | None:
        """Why a converter with `recipe` is not meant to make the integer model a target needs
        (rules about a full integer conversion then stay quiet), or None. `details`: asked about
        an integer recipe's op set and I/O types: an integer variant with float I/O is the CPU
        variant when the file, or a script beside it, also writes one with integer I/O, when the
        file comments out its full-integer settings, or when the model keeps TensorFlow ops
        (SELECT_TF_OPS: the CPU's Flex delegate runs them, no integer accelerator can).

        A bare converter (no `optimizations`, nothing else set) makes a float model, a complete
        deliverable for a CPU, a GPU or TFLite Micro's float kernels: it is reported only where
        something says an integer model is expected (`integer_intent`, or `expected`: the rule
        knows more, such as the target's compiler named in the file or a representative dataset
        configured for the project). Without that, a float conversion is a choice qfix cannot
        tell from a forgotten recipe, and the target's compiler rejects a float model loudly
        (edgetpu_compiler: "Model not quantized")."""
        if self.test:
            return "a unit test"
        if recipe.float16 and self.float_artifact:
            return "the float16 recipe, in a file that names its artifact float16"
        if not recipe.integer:
            if recipe.float16:
                return "the float16 recipe (`supported_types = [tf.float16]`)"
            if recipe.tf_ops:
                return "a float model with TensorFlow ops (SELECT_TF_OPS)"
            if recipe.sparse:
                return "a sparse model for the CPU's sparse kernels (Optimize.EXPERIMENTAL_SPARSITY)"
            if self.converters > 1 and self.integer_variant:
                return "one of several variants the file writes, another of them integer"
            if recipe.optimized and self.float_artifact:
                return "a variant the file names as float / dynamic-range"
            if not recipe.optimized and not (self.integer_intent or expected):
                return "a float conversion, and nothing in the file expects an integer model"
        elif details:
            if recipe.tf_ops:
                return "a model with TensorFlow ops (SELECT_TF_OPS), for the CPU's Flex delegate"
            if self.commented_integer:
                return "a variant whose full-integer settings the file comments out"
            if recipe.integer_io:
                return None
            if self.converters > 1 and self.integer_io_variant:
                return "a float-I/O variant beside an integer-I/O one"
            if self.path and integer_io_scripts(os.path.dirname(os.path.abspath(self.path))) - {os.path.basename(self.path)}:
                return "a float-I/O variant; a script beside it writes the integer-I/O one"
        return None

    @classmethod
    def of(cls, path: str | None, code: str, module: cst.Module, names: Names) -> "Activity":
        base = (path or "").replace("\\", "/").rsplit("/", 1)[-1]
        test = base.startswith("test_") or base.endswith("_test.py") or base == "conftest.py"
        test = test or any(names.imports_module(m) for m in _TEST_MODULES)
        if not any(w in code for w in _ACTIVITY_WORDS) and not ("TestCase" in code):
            return cls(test=test)
        # a fold (or / sum) of each top-level statement's part: kept per statement between an
        # editor's checks (qfix.source.memo) while the import aliases stay the same
        kind = ("activity", frozenset(names.aliases.items()))
        parts = [memo.of(kind, stmt, lambda x: _activity_part(x, names)) for stmt in module.body]
        test = test or any(p[0] for p in parts)
        converts, exports, trains, qat, int_setting, int_io, optimizations, float16 = (
            any(p[k] for p in parts) for k in range(1, 9))
        converters = sum(p[9] for p in parts)
        quantizes = int_setting or (optimizations and not float16)
        artifacts = _tflite_names(code) if converts else ""
        float_artifact = any(w in artifacts for w in _FLOAT_ARTIFACT)
        intent = converts and (qat or any(w in artifacts for w in _INTEGER_ARTIFACT) or _QUANT_PARAMS.search(code) is not None)
        commented = converts and _COMMENTED_INTEGER.search(code) is not None
        return cls(converts, quantizes, exports, trains, qat, test, converters, path, int_setting, int_io, float_artifact,
                   intent, commented)


def _activity_part(stmt: cst.CSTNode, names: Names) -> tuple:
    """What one top-level statement says of the file's activity (`Activity.of` folds the parts:
    any of each flag, the sum of the converters): test class, converts, exports, trains, QAT,
    integer setting, integer I/O, optimizations, float16, converters."""
    test = converts = exports = trains = qat = int_setting = int_io = optimizations = float16 = False
    converters = 0
    nodes, end, at = region(stmt)
    for i in range(at, end[at]):
        n = nodes[i]
        t = type(n)  # type identity, not isinstance (libcst's ABCs make misses slow)
        if t is cst.ClassDef and not test:
            test = any(names.canon(b.value) in _TEST_BASES for b in n.bases)
            continue
        if t is cst.Assign:
            for a in n.targets:
                if type(a.target) is not cst.Attribute:
                    continue
                setting = a.target.attr.value
                values = [names.canon(e) for e in child_subtree(nodes, end, i, n.value) if type(e) is cst.Attribute]
                if setting in _IO_SETTINGS:
                    # a variable (`inf_type` from the command line) chooses integer I/O at run time
                    int_io = int_io or any(v in _INT_TYPES for v in values) or type(n.value) is cst.Name
                    int_setting = int_setting or int_io
                elif setting in _INT_SETTINGS:
                    int_setting = True
                elif setting == "supported_ops":
                    int_setting = int_setting or "tensorflow.lite.OpsSet.TFLITE_BUILTINS_INT8" in values
                elif setting == "optimizations":
                    # EXPERIMENTAL_SPARSITY alone keeps the model float (sparse weights)
                    opts = [v for v in values if v and v.startswith("tensorflow.lite.Optimize.")]
                    optimizations = optimizations or not opts or any(not v.endswith(".EXPERIMENTAL_SPARSITY") for v in opts)
                elif setting == "supported_types":
                    float16 = float16 or "tensorflow.float16" in values
            continue
        if t is not cst.Call:
            continue
        func = n.func
        ft = type(func)
        attr = func.attr.value if ft is cst.Attribute else func.value if ft is cst.Name else None
        if attr is None:
            continue
        if attr in _TRAIN_METHODS and isinstance(func, cst.Attribute):
            trains = True
            continue
        c = names.canon(func) or ""
        if "TFLiteConverter" in c and c.startswith("tensorflow."):
            converts = True
            converters += 1
        elif c == "tensorflow.GradientTape":
            trains = True
        elif c.startswith("tfmot.quantization.keras.quantize_"):
            qat = True
        elif c in ("tensorflow.saved_model.save", "keras.export.ExportArchive") or (
            attr == "export" and isinstance(func, cst.Attribute) and n.args and not c.startswith(("tensorflow.", "tfmot."))
        ):
            exports = True
    return (test, converts, exports, trains, qat, int_setting, int_io, optimizations, float16, converters)


# --------------------------------------------------------------------------------------------
# The rule base class
# --------------------------------------------------------------------------------------------
@dataclass
class FileContext:
    """What a rule sees of the file being linted (built once per file by the engine)."""

    path: str | None
    code: str
    module: cst.Module
    names: Names
    target: "Profile | None"
    options: dict[str, Any] = field(default_factory=dict)
    function_stack: list[cst.FunctionDef] = field(default_factory=list)
    _flavours: FileFlavours | None = None
    _activity: Activity | None = None
    _dispatched: frozenset[int] | None = None
    # analyses several rules of one file share, by name (qfix.source.converter's: "converter")
    shared: dict[str, Any] = field(default_factory=dict)

    @property
    def scope(self) -> cst.FunctionDef | None:
        return self.function_stack[-1] if self.function_stack else None

    @property
    def flavours(self) -> FileFlavours:
        """Which Keras each spelling of this file is (`qfix.source.flavour`), read on first use."""
        if self._flavours is None:
            self._flavours = FileFlavours(self.module)
        return self._flavours

    @property
    def activity(self) -> Activity:
        """What this file does with its models (`Activity`), read on first use."""
        if self._activity is None:
            self._activity = Activity.of(self.path, self.code, self.module, self.names)
        return self._activity

    def dispatched(self, node: cst.CSTNode) -> bool:
        """`node` runs only when the input names it: it sits in an arm of a dispatch over names
        (a translator's `elif op_type == 'Elu':`, `qfix.source.dispatch`), read on first use."""
        if self._dispatched is None:
            self._dispatched = dispatched(self.module)
        return id(node) in self._dispatched


@dataclass
class Report:
    """A finding before positions are known (the engine adds them)."""

    node: cst.CSTNode
    violation: Violation


class SourceRule:
    SIDE: ClassVar[str] = "source"
    code: ClassVar[str]
    name: ClassVar[str]
    severity: ClassVar[Severity] = Severity.BLOCKER
    # A Profile property that must be truthy for the rule to run (e.g. "static_shapes"), so
    # any profile with that fact gets the rule; None: runs whatever the target.
    TARGET_NEEDS: ClassVar[str | None] = None
    # The rule only runs on files whose text contains one of these strings (cheap pre-filter).
    TRIGGERS: ClassVar[tuple[str, ...]] = ()
    VALID: ClassVar[Sequence[Valid]] = ()
    INVALID: ClassVar[Sequence[Invalid]] = ()

    def __init__(self, ctx: FileContext) -> None:
        self.ctx = ctx
        self.names = ctx.names
        self.reports: list[Report] = []

    @classmethod
    def applies_to(cls, target: "Profile | None") -> bool:
        if cls.TARGET_NEEDS is None:
            return True
        return target is not None and bool(getattr(target, cls.TARGET_NEEDS))

    def report(
        self,
        node: cst.CSTNode,
        message: str,
        *,
        fix: str | None = None,
        applicability: Applicability | None = None,
        edits: Sequence[Any] = (),
        severity: Severity | None = None,
    ) -> None:
        f = None
        if fix is not None and applicability is not None:
            if applicability is not Applicability.DISPLAY_ONLY and not edits:
                applicability = Applicability.DISPLAY_ONLY
            f = Fix(applicability, fix, list(edits))
        v = Violation(
            code=self.code,
            name=self.name,
            message=message,
            location=Location(path=self.ctx.path),
            severity=severity or self.severity,
            fix=f,
        )
        self.reports.append(Report(node, v))

    def finish(self) -> None:  # pragma: no cover - optional hook
        pass

    # helpers ---------------------------------------------------------------------------
    def not_for_integer(self, block: Any, *, details: bool = False) -> str | None:
        """`Activity.not_for_integer` for a `qfix.source.converter.ConverterBlock`; also quiet for
        a converter handed to a function that may set its recipe (`block.escaped`). An integer
        model is expected where the file names the target's compiler (`edgetpu_compiler`,
        `vela`) or the project configures a representative dataset."""
        if getattr(block, "escaped", False):
            return "the converter is handed to code that may set its recipe"
        recipe = Recipe.of({k: s.value for k, s in block.settings.items()}, self.names)
        tool = (self.ctx.target.toolchain.get("name") or "") if self.ctx.target is not None else ""
        expected = bool(self.ctx.options.get("representative_dataset")) or (len(tool) > 3 and tool in self.ctx.code)
        return self.ctx.activity.not_for_integer(recipe, details=details, expected=expected)

    def code_for(self, node: cst.CSTNode) -> str:
        return self.ctx.module.code_for_node(node)

    def spelling(self, qualified_module: str, default_local: str) -> tuple[str, list[AddImport]]:
        """How to write `qualified_module` here; imports it as `default_local` if needed."""
        local = self.names.local_for(qualified_module)
        if local is not None:
            return local, []
        taken = self.names.aliases.get(default_local)
        head = qualified_module.split(".")[0]
        if taken is not None and taken != qualified_module and head not in self.names.aliases:
            # `import tensorflow.compat.v1 as tf`: a second `import tensorflow as tf` would
            # rebind `tf` for the whole file; import the module under its own name instead
            return qualified_module, [AddImport(qualified_module)]
        from qfix.source.importable import bound_names, free_name

        if default_local.split(".")[0] in bound_names(self.ctx.module):
            # `np = ...` / a parameter `tf` somewhere: that scope would hide the import
            local = free_name(qualified_module.replace(".", "_") + "_module", self.ctx.module)
            return local, [AddImport(qualified_module, asname=local)]
        if default_local == qualified_module:
            return default_local, [AddImport(qualified_module)]
        return default_local, [AddImport(qualified_module, asname=default_local)]
