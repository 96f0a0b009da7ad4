"""What a file does with `tf.lite.TFLiteConverter`: one `ConverterBlock` per converter
variable per scope, with the settings assigned to it and whether it converts a QAT model.

Shared by the converter-recipe rules (QF401-QF404, QF406, QF407). Mixed into a SourceRule: the
hooks below collect during the batched walk, `converter_blocks()` is valid in `finish()`.

`CONVERTER_TABLE` holds what the installed converter does with a combination of settings
(`ConverterSettings`): the rows it rejects, each with the error it raises, in the order
TF's `lite.py` checks them. `tests/source/test_converter_table.py` (`-m tf`) runs the real
converter on every row and on the combinations it accepts, so the table cannot drift.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import libcst as cst

from qfix.source.names import dotted
from qfix.source.preorder import subtree
from qfix.source.util import arg, iter_nodes

CREATORS = {
    "tensorflow.lite.TFLiteConverter.from_keras_model",
    "tensorflow.lite.TFLiteConverter.from_saved_model",
    "tensorflow.lite.TFLiteConverter.from_concrete_functions",
    "tensorflow.lite.TFLiteConverter",
    "tensorflow.lite.TFLiteConverterV2.from_keras_model",
    "tensorflow.lite.TFLiteConverterV2.from_saved_model",
    "tensorflow.lite.TFLiteConverterV2.from_concrete_functions",
    "tensorflow.lite.TFLiteConverterV2",
}
QAT_MAKERS = {"tfmot.quantization.keras.quantize_model", "tfmot.quantization.keras.quantize_apply"}
QUANTIZE_SCOPE = "tfmot.quantization.keras.quantize_scope"
DEFAULT_OPTS = {"tensorflow.lite.Optimize.DEFAULT", "tensorflow.lite.Optimize.OPTIMIZE_FOR_SIZE", "tensorflow.lite.Optimize.OPTIMIZE_FOR_LATENCY"}
INT8_OPS = "tensorflow.lite.OpsSet.TFLITE_BUILTINS_INT8"
SETTINGS = (
    "optimizations", "representative_dataset", "target_spec.supported_ops", "target_spec.supported_types",
    "inference_input_type", "inference_output_type", "inference_type", "quantized_input_stats",
)
# TF1's quantized inference (`inference_type = tf.uint8` / `tf.lite.constants.QUANTIZED_UINT8`
# with `quantized_input_stats`) reads the ranges of fake-quant nodes: the model is QAT-trained
_V1_INTEGER_TYPES = {
    "tensorflow.int8", "tensorflow.uint8", "tensorflow.lite.constants.INT8", "tensorflow.lite.constants.QUANTIZED_UINT8",
}


def _mutated_setting(call: cst.BaseExpression) -> str | None:
    """`c.optimizations.add(x)` / `.append(x)` / `.update(...)` -> "c.optimizations": the setting
    is then whatever the default (a set in TF 2.21: `.append` raises AttributeError) or the
    earlier value became; qfix reads it as unknown rather than as "not set"."""
    if isinstance(call, cst.Call) and isinstance(call.func, cst.Attribute) and call.func.attr.value in (
        "add", "append", "extend", "update", "insert", "remove", "discard", "clear", "pop",
    ):
        return dotted(call.func.value)
    return None


def _is_none(value: cst.BaseExpression) -> bool:
    return isinstance(value, cst.Name) and value.value == "None"


def _setattr(call: cst.BaseExpression) -> tuple[str, str, cst.BaseExpression] | None:
    """`setattr(c, "x", v)` / `setattr(c.target_spec, "supported_ops", v)` -> ("c" or
    "c.target_spec", "x", v); None for anything else (a computed attribute name)."""
    if not (isinstance(call, cst.Call) and isinstance(call.func, cst.Name) and call.func.value == "setattr"):
        return None
    if len(call.args) != 3 or any(a.keyword is not None or a.star for a in call.args):
        return None
    d = dotted(call.args[0].value)
    name = call.args[1].value
    if d is None or not isinstance(name, cst.SimpleString) or name.prefix.lower() not in ("", "u"):
        return None
    return d, name.evaluated_value, call.args[2].value  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# What the converter accepts
# --------------------------------------------------------------------------------------------
TABLE_VERSION = "tensorflow 2.21"  # the converter the rows below were established with


@dataclass(frozen=True)
class ConverterSettings:
    """The converter state the table reads. `ops` are OpsSet member names (`TFLITE_BUILTINS_INT8`),
    `types` dtype names (`float16`), the I/O types dtype names; `None` is "not set" (TF's defaults:
    builtin ops, no type restriction, float32 I/O). `integer_model` is a QAT model (it brings
    its own ranges, as a representative dataset does)."""

    optimized: bool = False
    dataset: bool = False
    ops: frozenset[str] | None = None
    types: frozenset[str] | None = None
    input_type: str | None = None
    output_type: str | None = None
    integer_model: bool = False
    optimizations_none: bool = False  # `optimizations = None` (not "not set": TF reads it as a collection)

    @property
    def io(self) -> set[str]:
        return {t for t in (self.input_type, self.output_type) if t not in (None, "float32")}

    @property
    def int8_required(self) -> bool:
        return "TFLITE_BUILTINS_INT8" in (self.ops or ()) or "int8" in (self.types or ())

    @property
    def int16x8(self) -> bool:
        return ACT16_OPS in (self.ops or ()) and "int8" not in (self.types or ())

    @property
    def integer_mode(self) -> bool:
        """The converter quantizes activations (post-training with a dataset, or a QAT model);
        a float16 type restriction turns that into float16 quantization, except with 16x8."""
        calibrated = self.dataset or self.integer_model
        return self.optimized and calibrated and ("float16" not in (self.types or ()) or self.int16x8)


ACT16_OPS = "EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8"


@dataclass(frozen=True)
class TableRow:
    """One combination the converter rejects (`error`: the start of its message), or accepts
    without doing what the settings ask (`error` None, `result` says what it makes instead)."""

    key: str
    applies: Any  # ConverterSettings -> bool
    error: str | None
    result: str = ""


CONVERTER_TABLE: tuple[TableRow, ...] = (
    TableRow(  # QuantizationMode.__init__ tests `deprecated in optimizations` whatever else is set
        "optimizations-none",
        lambda s: s.optimizations_none,
        "TypeError: argument of type 'NoneType' is not iterable",
    ),
    TableRow(
        "int8-ops-with-other-types",
        lambda s: "TFLITE_BUILTINS_INT8" in (s.ops or ()) and s.types is not None and not s.types <= {"int8"},
        "ValueError: As full integer quantization has been enabled by setting `target_spec.supported_ops`"
        "={tf.lite.OpsSet.TFLITE_BUILTINS_INT8}, thus `target_spec.supported_types` should be left uninitizalized or set to {tf.int8}.",
    ),
    TableRow(
        "int8-without-dataset",
        lambda s: s.int8_required and not s.dataset,
        "ValueError: For full integer quantization, a `representative_dataset` must be specified.",
    ),
    TableRow(
        "integer-io-without-integer-quantization",
        lambda s: bool(s.io) and not s.integer_mode,
        "ValueError: The inference_input_type and inference_output_type must be tf.float32.",
    ),
    TableRow(
        "16x8-with-8-bit-io",
        lambda s: s.int16x8 and bool(s.io - {"int16"}),
        "ValueError: The inference_input_type and inference_output_type must be in ['tf.float32', 'tf.int16'].",
    ),
    TableRow(
        "int16-io-without-16x8",
        lambda s: "int16" in s.io and not s.int16x8,
        "ValueError: Unsupported `inference_input_type` value. Expected to be in ('tf.uint8', 'tf.int8'), instead got tf.int16.",
    ),
    TableRow(
        "dataset-without-optimizations",
        lambda s: s.dataset and not s.optimized and not s.io and not s.integer_model,
        None,
        "a float model: without `optimizations` the converter ignores the dataset (and an INT8 op set)",
    ),
)


def table_verdict(s: ConverterSettings) -> TableRow | None:
    """The first row of CONVERTER_TABLE that applies (the error the converter raises first),
    None when the installed converter accepts `s` and does what it asks."""
    for row in CONVERTER_TABLE:
        if row.applies(s):
            return row
    return None


@dataclass
class Setting:
    stmt: cst.SimpleStatementLine
    node: cst.Assign | cst.Call  # `c.x = v`, or `setattr(c, "x", v)`
    value: cst.BaseExpression


@dataclass
class ConverterBlock:
    var: str
    scope: Any
    create_stmt: cst.SimpleStatementLine
    create_call: cst.Call
    model_arg: cst.BaseExpression | None
    qat: bool = False
    # handed to a call (`configure(converter)`, `converter = cfg.with_quantization(converter)`):
    # that code may set any setting, so the ones read here are not the whole recipe
    escaped: bool = False
    settings: dict[str, Setting] = field(default_factory=dict)
    last_stmt: cst.SimpleStatementLine | None = None  # last statement configuring it
    # `optimizations.append(...)` before any assignment: TF 2.21's default is a set
    list_calls: list[cst.Call] = field(default_factory=list)
    convert_stmt: cst.SimpleStatementLine | None = None

    @property
    def anchor(self) -> cst.SimpleStatementLine:
        return self.last_stmt or self.create_stmt


class ConverterAnalysis:
    """Mixin for SourceRule subclasses. The rules of one file share one analysis (the file
    context's `shared["converter"]`): the first of them to be called collects it, the others'
    hooks return at once (the analysis reads only the file, never the rule)."""

    TRIGGERS = ("TFLiteConverter",)

    def _conv_state(self) -> dict[str, Any]:
        shared = self.ctx.shared  # type: ignore[attr-defined]
        st = shared.get("converter")
        if st is None:
            st = {"blocks": {}, "order": [], "qat_names": set(), "scope_depth": 0, "owner": self}
            shared["converter"] = st
        return st

    def _collecting(self) -> dict[str, Any] | None:
        """The shared state when this rule is the one collecting it, else None."""
        st = self._conv_state()
        return st if st["owner"] is self else None

    def visit_With(self, node: cst.With) -> None:
        st = self._collecting()
        if st is None:
            return
        for item in node.items:
            call = item.item
            if isinstance(call, cst.Call) and self.names.canon(call.func) == QUANTIZE_SCOPE:  # type: ignore[attr-defined]
                st["scope_depth"] += 1
                st.setdefault("scoped", set()).add(id(node))

    def leave_With(self, node: cst.With) -> None:
        st = self._collecting()
        if st is not None and id(node) in st.get("scoped", set()):
            st["scope_depth"] -= 1

    def _is_qat_value(self, value: cst.BaseExpression) -> bool:
        st = self._conv_state()
        if isinstance(value, cst.Call):
            if self.names.canon(value.func) in QAT_MAKERS:  # type: ignore[attr-defined]
                return True
            if st["scope_depth"] > 0:
                return True  # loaded / built inside quantize_scope(): a QAT model
        if isinstance(value, cst.Name) and value.value in st["qat_names"]:
            return True
        return False

    def _escapes(self, stmt: cst.SimpleStatementLine, st: dict, scope: Any) -> None:
        """Mark the converters of this scope that `stmt` passes to a call as an argument (or
        returns: the caller may set any setting; `_returned` follows it there)."""
        for small in stmt.body:
            if isinstance(small, cst.Return) and isinstance(small.value, cst.Name):
                block = st["blocks"].get((scope, small.value.value))
                if block is not None:
                    block.escaped = True
                    fn = self.ctx.scope  # type: ignore[attr-defined]
                    if fn is not None and not self.ctx.function_stack[:-1]:  # type: ignore[attr-defined]
                        st.setdefault("returns", {}).setdefault(fn.name.value, []).append(block)
        for n in subtree(stmt):
            if type(n) is cst.Call and _setattr(n) is None:  # not isinstance: misses on libcst's ABCs are slow
                for a in n.args:
                    if type(a.value) is cst.Name:
                        block = st["blocks"].get((scope, a.value.value))
                        if block is not None:
                            block.escaped = True

    def visit_SimpleStatementLine(self, stmt: cst.SimpleStatementLine) -> None:
        st = self._collecting()
        if st is None:
            return
        scope = id(self.ctx.scope) if self.ctx.scope is not None else None  # type: ignore[attr-defined]
        if st["blocks"]:
            self._escapes(stmt, st, scope)
        for small in stmt.body:
            if isinstance(small, cst.Assign):
                value = small.value
                for t in small.targets:
                    tgt = t.target
                    if isinstance(tgt, cst.Name):
                        st.setdefault("assigned", set()).add(tgt.value)
                        # `io = tf.int8` bound once in this scope: a setting may read it
                        consts = st.setdefault("consts", {})
                        key = (scope, tgt.value)
                        consts[key] = value if key not in consts and isinstance(value, cst.Attribute) else None
                        # a name bound only to Keras / TensorFlow calls (a model built or loaded
                        # here); one bound to the file's own function may come from tfmot
                        plain = isinstance(value, cst.Call) and (self.names.canon(value.func) or "").startswith(  # type: ignore[attr-defined]
                            ("keras.", "tensorflow.")
                        )
                        st.setdefault("plain", {})[tgt.value] = st.get("plain", {}).get(tgt.value, True) and plain
                        if self._is_qat_value(value):
                            st["qat_names"].add(tgt.value)
                        returned = self._returned(value, st)
                        if returned is not None:  # `converter = make(model)`: the helper's converter
                            block = ConverterBlock(
                                tgt.value, scope, stmt, value, returned.model_arg, qat=returned.qat,
                                settings=dict(returned.settings),
                            )
                            st["blocks"][(scope, tgt.value)] = block
                            st["order"].append(block)
                        elif isinstance(value, cst.Call) and self.names.canon(value.func) in CREATORS:  # type: ignore[attr-defined]
                            model = arg(value, 0, "model") if self.names.canon(value.func).endswith("from_keras_model") else None  # type: ignore[attr-defined, union-attr]
                            block = ConverterBlock(
                                tgt.value, scope, stmt, value, model.value if model is not None else None,
                            )
                            if model is not None:
                                block.qat = self._is_qat_value(model.value)
                            st["blocks"][(scope, tgt.value)] = block
                            st["order"].append(block)
                    elif isinstance(tgt, cst.Attribute):
                        d = dotted(tgt)
                        if d is None or "." not in d:
                            continue
                        var, _, path = d.partition(".")
                        block = st["blocks"].get((scope, var))
                        if block is not None and path in SETTINGS:
                            block.settings[path] = Setting(stmt, small, value)
                            if block.convert_stmt is None:
                                block.last_stmt = stmt
                if self._is_convert(value, st, scope):
                    self._is_convert(value, st, scope, stmt)
            elif isinstance(small, cst.Expr):
                named = _setattr(small.value)
                if named is not None:  # `setattr(converter, "inference_input_type", tf.uint8)`
                    d, path, value = named
                    var, _, sub = d.partition(".")
                    block = st["blocks"].get((scope, var))
                    key = f"{sub}.{path}" if sub else path
                    if block is not None and key in SETTINGS:
                        block.settings[key] = Setting(stmt, small.value, value)  # type: ignore[arg-type]
                        if block.convert_stmt is None:
                            block.last_stmt = stmt
                mutated = _mutated_setting(small.value)
                if mutated is not None:  # `converter.optimizations.add(...)`: not a literal any more
                    var, _, key = mutated.partition(".")
                    block = st["blocks"].get((scope, var))
                    if block is not None and key in SETTINGS:
                        if key == "optimizations" and key not in block.settings:
                            block.list_calls.append(small.value)  # type: ignore[arg-type]
                        block.settings[key] = Setting(stmt, small.value, small.value)  # type: ignore[arg-type]
                self._is_convert(small.value, st, scope, stmt)

    def _returned(self, value: cst.BaseExpression, st: dict) -> ConverterBlock | None:
        """The converter a module-level function of this file returns, for `make(...)` called
        after its definition; None when it returns none or several (`return a` and `return b`)."""
        if not isinstance(value, cst.Call) or not isinstance(value.func, cst.Name):
            return None
        blocks = st.get("returns", {}).get(value.func.value, [])
        return blocks[0] if len(blocks) == 1 else None

    def _is_convert(self, value: Any, st: dict, scope: Any, stmt: Any = None) -> bool:
        if (
            isinstance(value, cst.Call)
            and isinstance(value.func, cst.Attribute)
            and value.func.attr.value == "convert"
            and isinstance(value.func.value, cst.Name)
        ):
            block = st["blocks"].get((scope, value.func.value.value))
            if block is not None:
                if stmt is not None and block.convert_stmt is None:
                    block.convert_stmt = stmt
                return True
        return False

    def converter_blocks(self) -> list[ConverterBlock]:
        return list(self._conv_state()["order"])

    def maybe_qat(self, b: ConverterBlock) -> bool:
        """QAT for sure, or a file that builds QAT models and converts something we cannot
        follow (a function parameter, an attribute, the result of the file's own function):
        rules that would be wrong for QAT skip. TF1's quantized inference (an integer
        `inference_type`, `quantized_input_stats`) converts a model with fake-quant nodes."""
        if b.qat:
            return True
        if "quantized_input_stats" in b.settings:
            return True
        t = b.settings.get("inference_type")
        if t is not None and self.names.canon(t.value) in _V1_INTEGER_TYPES:  # type: ignore[attr-defined]
            return True
        st = self._conv_state()
        code = self.ctx.code  # type: ignore[attr-defined]
        qat_file = st.get("qat_file")
        if qat_file is None:  # once per file: every block asked it, each scan of the whole text
            qat_file = st["qat_file"] = any(k in code for k in ("quantize_model", "quantize_apply", "quantize_scope"))
        if isinstance(b.model_arg, cst.Name):
            if b.model_arg.value in st["qat_names"]:
                return True
            if b.model_arg.value in st.get("assigned", ()):
                # built or loaded here by Keras, not by tfmot; the file's own function may be
                return qat_file and not st.get("plain", {}).get(b.model_arg.value, False)
        return qat_file

    # value helpers ------------------------------------------------------------------------
    def elements(self, value: cst.BaseExpression) -> list[str] | None:
        """Canonical names of a list/set/tuple of attributes; None if not a literal."""
        if isinstance(value, (cst.List, cst.Set, cst.Tuple)):
            out = []
            for e in value.elements:
                out.append(self.names.canon(e.value) or "?")  # type: ignore[attr-defined]
            return out
        return None

    def optimized(self, b: ConverterBlock) -> bool:
        s = b.settings.get("optimizations")
        if s is None or _is_none(s.value):
            return False
        els = self.elements(s.value)
        return els is None or any(e in DEFAULT_OPTS for e in els)

    def int8_ops(self, b: ConverterBlock) -> bool | None:
        """True/False if supported_ops is a literal with/without INT8; None if unset; 'unknown' -> None."""
        s = b.settings.get("target_spec.supported_ops")
        if s is None:
            return None
        els = self.elements(s.value)
        if els is None:
            return None
        return INT8_OPS in els

    def int_types(self, b: ConverterBlock) -> bool:
        for key in ("inference_input_type", "inference_output_type", "inference_type"):
            s = b.settings.get(key)
            if s is not None and self.names.canon(s.value) in ("tensorflow.int8", "tensorflow.uint8"):  # type: ignore[attr-defined]
                return True
        s = b.settings.get("target_spec.supported_types")
        if s is not None:
            els = self.elements(s.value) or []
            if "tensorflow.int8" in els:
                return True
        return False

    def full_int_requested(self, b: ConverterBlock) -> bool:
        return bool(self.int8_ops(b)) or self.int_types(b)

    def settings_of(self, b: ConverterBlock) -> ConverterSettings | None:
        """The block's settings as the table reads them; None when one of them is not a
        literal qfix can read (a variable, a call), or the block's model may be QAT without
        qfix knowing (then the dataset rows cannot be judged)."""
        def members(key: str, prefix: str) -> frozenset[str] | None | bool:
            s = b.settings.get(key)
            if s is None:
                return None
            els = self.elements(s.value)
            if els is None or not all(e.startswith(prefix) for e in els):
                return False
            return frozenset(e[len(prefix):] for e in els)

        def dtype(key: str) -> str | None | bool:
            s = b.settings.get(key)
            if s is None:
                return None
            value = s.value
            if isinstance(value, cst.Name):  # a name bound once, in the converter's own scope
                value = self._conv_state().get("consts", {}).get((b.scope, value.value)) or value
            c = self.names.canon(value) or ""  # type: ignore[attr-defined]
            return c[len("tensorflow."):] if c.startswith("tensorflow.") and c.count(".") == 1 else False

        if b.escaped:
            return None
        ops = members("target_spec.supported_ops", "tensorflow.lite.OpsSet.")
        types = members("target_spec.supported_types", "tensorflow.")
        i, o = dtype("inference_input_type"), dtype("inference_output_type")
        if False in (ops, types, i, o) or "inference_type" in b.settings:
            return None
        opt = b.settings.get("optimizations")
        none = opt is not None and _is_none(opt.value)
        if opt is not None and self.elements(opt.value) is None and not none:
            return None
        qat = self.maybe_qat(b)
        if qat and not b.qat:
            return None
        return ConverterSettings(
            optimized=self.optimized(b), dataset="representative_dataset" in b.settings,
            ops=ops, types=types, input_type=i, output_type=o, integer_model=b.qat,  # type: ignore[arg-type]
            optimizations_none=none,
        )

    def float16_recipe(self, b: ConverterBlock) -> bool:
        """`supported_types = [tf.float16]`: the float16 recipe, where integer I/O or the INT8
        op set make the converter raise (CONVERTER_TABLE)."""
        s = b.settings.get("target_spec.supported_types")
        return s is not None and "tensorflow.float16" in (self.elements(s.value) or ())
