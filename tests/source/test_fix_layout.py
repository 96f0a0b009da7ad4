"""Fixed code looks as if a careful person wrote it: no fix of any rule leaves a line ending
in whitespace, and an argument appended to a call follows the call's layout (issue 11, kind 7).

The property runs over every rule's embedded invalid cases, as written and with every call
spread over lines (one argument a line, with and without a trailing comma, with a comment
after the last argument); the corpus test (`test_source_corpus.py`) checks real code."""

from __future__ import annotations

import textwrap

import libcst as cst
import pytest

from qfix.rules import source_rules
from qfix.source.engine import fix_source
from qfix.source.util import append_arg

RULES = source_rules()


def trailing_whitespace_lines(code: str) -> list[str]:
    return [line for line in code.splitlines() if line != line.rstrip()]


class _Spread(cst.CSTTransformer):
    """Every call with arguments written one argument a line (black's exploded style)."""

    def __init__(self, trailing_comma: bool, comment: bool) -> None:
        super().__init__()
        self.trailing_comma, self.comment = trailing_comma, comment

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.Call:
        if not updated.args:
            return updated
        nl = cst.ParenthesizedWhitespace(indent=True, last_line=cst.SimpleWhitespace("    "))
        first = cst.TrailingWhitespace(whitespace=cst.SimpleWhitespace("  "), comment=cst.Comment("# note")) if self.comment else cst.TrailingWhitespace()
        closing = cst.ParenthesizedWhitespace(first_line=first, indent=True, last_line=cst.SimpleWhitespace(""))
        args = [a.with_changes(comma=cst.Comma(whitespace_after=nl), whitespace_after_arg=cst.SimpleWhitespace("")) for a in updated.args]
        last = args[-1]
        if self.trailing_comma:
            args[-1] = last.with_changes(comma=cst.Comma(whitespace_after=closing))
        else:
            args[-1] = last.with_changes(comma=cst.MaybeSentinel.DEFAULT, whitespace_after_arg=closing)
        return updated.with_changes(whitespace_before_args=nl, args=args)


def spread(code: str, trailing_comma: bool, comment: bool) -> str:
    return cst.parse_module(code).visit(_Spread(trailing_comma, comment)).code


def _cases():
    for rule in RULES:
        for i, case in enumerate(rule.INVALID):
            yield pytest.param(rule, case, id=f"{rule.code}-{i}")


@pytest.mark.parametrize("layout", ["as-written", "spread", "spread-trailing-comma", "spread-comment"])
@pytest.mark.parametrize("rule,case", list(_cases()))
def test_no_fix_leaves_trailing_whitespace(rule, case, layout):
    code = case.source()
    if layout != "as-written":
        code = spread(code, trailing_comma=layout == "spread-trailing-comma", comment=layout == "spread-comment")
    assert trailing_whitespace_lines(code) == []
    fr = fix_source(code, rules=RULES, target=case.target, options=case.options, unsafe_fixes=True)
    cst.parse_module(fr.code)
    assert trailing_whitespace_lines(fr.code) == [], fr.code


def _append(code: str) -> str:
    module = cst.parse_module(code)
    call = module.body[0].body[0].value  # type: ignore[attr-defined]
    new = cst.Arg(keyword=cst.Name("batch_size"), value=cst.Integer("1"),
                  equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""), whitespace_after=cst.SimpleWhitespace("")))
    return module.with_changes(body=[module.body[0].with_changes(body=[module.body[0].body[0].with_changes(value=append_arg(call, new))])]).code  # type: ignore[attr-defined]


APPEND = {
    "one-line": ("f(a, b)\n", "f(a, b, batch_size=1)\n"),
    "no-args": ("f()\n", "f(batch_size=1)\n"),
    "trailing-comma": (
        "f(\n    a,\n    name='x',\n)\n",
        "f(\n    a,\n    name='x',\n    batch_size=1,\n)\n",
    ),
    "no-trailing-comma": (
        "f(\n    a,\n    name='x'\n)\n",
        "f(\n    a,\n    name='x',\n    batch_size=1\n)\n",
    ),
    "comment-after-last": (
        "f(\n    a,\n    name='x'  # why\n)\n",
        "f(\n    a,\n    name='x',  # why\n    batch_size=1\n)\n",
    ),
    "comment-after-trailing-comma": (
        "f(\n    a,  # why\n)\n",
        "f(\n    a,  # why\n    batch_size=1,\n)\n",
    ),
    "comment-line-before-paren": (
        "f(\n    a,\n    # more later\n)\n",
        "f(\n    a,\n    # more later\n    batch_size=1,\n)\n",
    ),
    "hanging-indent": ("f(a,\n  b)\n", "f(a,\n  b, batch_size=1)\n"),
    "first-arg-on-paren-line": ("f(a  # why\n)\n", "f(a,  # why\n    batch_size=1\n)\n"),
    "several-on-a-line": ("f(\n    a, b\n)\n", "f(\n    a, b,\n    batch_size=1\n)\n"),
}


@pytest.mark.parametrize("name", list(APPEND))
def test_append_arg_follows_the_layout(name):
    code, expected = APPEND[name]
    assert _append(code) == expected


def test_qf301_multiline_input_in_a_nested_block():
    code = textwrap.dedent(
        """\
        import keras
        import tensorflow as tf

        if True:
            inputs = keras.Input(
                shape=(8, 8, 3),
                name="img",  # the camera frame
            )
        model = keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs))
        converter = tf.lite.TFLiteConverter.from_keras_model(model)  # an integer model: QF301 applies
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        tflite = converter.convert()
        """
    )
    fr = fix_source(code, rules=RULES, target="edgetpu", unsafe_fixes=True)
    assert 'name="img",  # the camera frame\n        batch_size=1,\n    )\n' in fr.code, fr.code
    assert trailing_whitespace_lines(fr.code) == []
