"""What a file does with `tf.lite.TFLiteConverter`: one `ConverterBlock` per converter
variable per scope, with the settings assigned to it and whether it converts a QAT model.

Shared by the converter-recipe rules (QF401-QF404). Mixed into a SourceRule: the hooks below
collect during the batched walk, `converter_blocks()` is valid in `finish()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import libcst as cst

from qfix.source.names import dotted
from qfix.source.util import arg

CREATORS = {
    "tensorflow.lite.TFLiteConverter.from_keras_model",
    "tensorflow.lite.TFLiteConverter.from_saved_model",
    "tensorflow.lite.TFLiteConverter.from_concrete_functions",
    "tensorflow.lite.TFLiteConverter",
    "tensorflow.lite.TFLiteConverterV2.from_keras_model",
}
QAT_MAKERS = {"tfmot.quantization.keras.quantize_model", "tfmot.quantization.keras.quantize_apply"}
QUANTIZE_SCOPE = "tfmot.quantization.keras.quantize_scope"
DEFAULT_OPTS = {"tensorflow.lite.Optimize.DEFAULT", "tensorflow.lite.Optimize.OPTIMIZE_FOR_SIZE", "tensorflow.lite.Optimize.OPTIMIZE_FOR_LATENCY"}
INT8_OPS = "tensorflow.lite.OpsSet.TFLITE_BUILTINS_INT8"
SETTINGS = (
    "optimizations", "representative_dataset", "target_spec.supported_ops", "target_spec.supported_types",
    "inference_input_type", "inference_output_type", "inference_type",
)


@dataclass
class Setting:
    stmt: cst.SimpleStatementLine
    node: cst.Assign
    value: cst.BaseExpression


@dataclass
class ConverterBlock:
    var: str
    scope: Any
    create_stmt: cst.SimpleStatementLine
    create_call: cst.Call
    model_arg: cst.BaseExpression | None
    qat: bool = False
    settings: dict[str, Setting] = field(default_factory=dict)
    last_stmt: cst.SimpleStatementLine | None = None  # last statement configuring it
    convert_stmt: cst.SimpleStatementLine | None = None

    @property
    def anchor(self) -> cst.SimpleStatementLine:
        return self.last_stmt or self.create_stmt


class ConverterAnalysis:
    """Mixin for SourceRule subclasses."""

    TRIGGERS = ("TFLiteConverter",)

    def _conv_state(self) -> dict[str, Any]:
        st = self.__dict__.get("_conv")
        if st is None:
            st = {"blocks": {}, "order": [], "qat_names": set(), "scope_depth": 0}
            self.__dict__["_conv"] = st
        return st

    def visit_With(self, node: cst.With) -> None:
        st = self._conv_state()
        for item in node.items:
            call = item.item
            if isinstance(call, cst.Call) and self.names.canon(call.func) == QUANTIZE_SCOPE:  # type: ignore[attr-defined]
                st["scope_depth"] += 1
                st.setdefault("scoped", set()).add(id(node))

    def leave_With(self, node: cst.With) -> None:
        st = self._conv_state()
        if id(node) in st.get("scoped", set()):
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

    def visit_SimpleStatementLine(self, stmt: cst.SimpleStatementLine) -> None:
        st = self._conv_state()
        scope = id(self.ctx.scope) if self.ctx.scope is not None else None  # type: ignore[attr-defined]
        for small in stmt.body:
            if isinstance(small, cst.Assign):
                value = small.value
                for t in small.targets:
                    tgt = t.target
                    if isinstance(tgt, cst.Name):
                        st.setdefault("assigned", set()).add(tgt.value)
                        if self._is_qat_value(value):
                            st["qat_names"].add(tgt.value)
                        if isinstance(value, cst.Call) and self.names.canon(value.func) in CREATORS:  # type: ignore[attr-defined]
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
                self._is_convert(small.value, st, scope, stmt)

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
        follow (a function parameter, an attribute): rules that would be wrong for QAT skip."""
        if b.qat:
            return True
        st = self._conv_state()
        if isinstance(b.model_arg, cst.Name):
            if b.model_arg.value in st["qat_names"]:
                return True
            if b.model_arg.value in st.get("assigned", ()):
                return False  # built or loaded here, not by tfmot
        code = self.ctx.code  # type: ignore[attr-defined]
        return any(k in code for k in ("quantize_model", "quantize_apply", "quantize_scope"))

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
        if s is None:
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
