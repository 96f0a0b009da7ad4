"""The converter rules together (QF401-QF407 read one converter state): one finding per cause,
whatever the target. Each case lists every QF4xx code the whole rule set reports."""

from __future__ import annotations

import pytest

from qfix.rules import select, source_rules
from qfix.source.engine import fix_source, lint_source

RULES = select(source_rules(), ["QF4"], None)
HEAD = "import tensorflow as tf\nconverter = tf.lite.TFLiteConverter.from_keras_model(model)\n"
OPT = "converter.optimizations = [tf.lite.Optimize.DEFAULT]\n"
DS = "converter.representative_dataset = rep\n"
INT8 = "converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]\n"
F16 = "converter.target_spec.supported_types = [tf.float16]\n"
QAT = (
    "import tensorflow as tf\nimport tensorflow_model_optimization as tfmot\n"
    "q = tfmot.quantization.keras.quantize_model(model)\nconverter = tf.lite.TFLiteConverter.from_keras_model(q)\n"
)


def io(t: str) -> str:
    return f"converter.inference_input_type = tf.{t}\nconverter.inference_output_type = tf.{t}\n"


CASES = [
    # the smallest input: only the missing optimizations, for every target
    (HEAD + DS + INT8 + io("int8"), None, {"QF407"}),
    (HEAD + DS + INT8 + io("int8"), "int8", {"QF407"}),
    (HEAD + DS + INT8 + io("int8"), "tflm", {"QF407"}),
    (HEAD + DS + INT8 + io("uint8"), "edgetpu", {"QF407"}),
    # a missing dataset with optimizations is QF401's, not also QF407's
    (HEAD + OPT + INT8 + io("int8"), None, {"QF401"}),
    (HEAD + OPT + io("uint8"), "edgetpu", {"QF401"}),
    # a QAT model with the INT8 op set and no dataset is QF404's
    (QAT + OPT + INT8 + io("uint8"), None, {"QF404"}),
    # the float16 recipe: QF402/QF403's fixes would make it raise; QF407 says what is wrong
    (HEAD + OPT + DS + F16, "edgetpu", {"QF407"}),
    (HEAD + OPT + DS + F16 + io("uint8"), "edgetpu", {"QF407"}),
    (HEAD + OPT + DS + F16, None, set()),
    # a valid full integer recipe
    (HEAD + OPT + DS + INT8 + io("uint8"), "edgetpu", set()),
]


@pytest.mark.parametrize("code,target,codes", CASES)
def test_one_finding_per_cause(code, target, codes):
    found = [v.code for v in lint_source(code, rules=RULES, target=target).violations]
    assert sorted(found) == sorted(codes), found


def test_fixes_together_reach_a_valid_recipe():
    """The smallest input for the Edge TPU: every fix applied, nothing left to report."""
    code = HEAD + DS + io("uint8")
    fixed = fix_source(code, rules=RULES, target="edgetpu", unsafe_fixes=True).code
    assert OPT in fixed and INT8 in fixed, fixed
    assert lint_source(fixed, rules=RULES, target="edgetpu").violations == []
