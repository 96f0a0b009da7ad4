"""Source engine: name resolution, the batched walk, suppression, fix loop, toy rules."""

from __future__ import annotations

import textwrap

import libcst as cst
import pytest

from qfix.rules import source_rules
from qfix.source.engine import fix_source, lint_source, walk
from qfix.source.names import Names, canonical
from qfix.source.rule import InsertStatements, Invalid, Replace, SourceRule, Valid, statements
from qfix.types import Applicability


def names_of(code: str) -> tuple[Names, cst.Module]:
    m = cst.parse_module(textwrap.dedent(code))
    return Names.from_module(m), m


def resolve(code: str, expression: str) -> str | None:
    n, _ = names_of(code)
    return n.canon(cst.parse_expression(expression))


@pytest.mark.parametrize(
    "imports,expression,expected",
    [
        ("import tensorflow as tf", "tf.keras.layers.Lambda", "keras.layers.Lambda"),
        ("import keras", "keras.layers.Lambda", "keras.layers.Lambda"),
        ("import tf_keras", "tf_keras.layers.Lambda", "keras.layers.Lambda"),
        ("import tf_keras as keras", "keras.layers.Lambda", "keras.layers.Lambda"),
        ("from tensorflow import keras", "keras.layers.Lambda", "keras.layers.Lambda"),
        ("from tensorflow.keras import layers as L", "L.Lambda", "keras.layers.Lambda"),
        ("from tensorflow.keras.layers import Lambda", "Lambda", "keras.layers.Lambda"),
        ("from keras.layers import Lambda as Lam", "Lam", "keras.layers.Lambda"),
        ("import tensorflow_model_optimization as tfmot", "tfmot.quantization.keras.quantize_model", "tfmot.quantization.keras.quantize_model"),
        ("from tensorflow_model_optimization.quantization.keras import quantize_model", "quantize_model", "tfmot.quantization.keras.quantize_model"),
        ("import tensorflow.compat.v1 as tf", "tf.lite.TFLiteConverter", "tensorflow.lite.TFLiteConverter"),
        ("import tensorflow as tf", "tf.dtypes.cast", "tensorflow.cast"),
        ("from tensorflow.keras.layers.experimental import preprocessing", "preprocessing.Rescaling", "keras.layers.Rescaling"),
        ("import tensorflow.keras.layers", "tensorflow.keras.layers.Dense", "keras.layers.Dense"),
        ("import numpy as np", "tf.keras.layers.Dense", None),
        ("try:\n    import tensorflow as tf\nexcept ImportError:\n    tf = None", "tf.keras.Input", "keras.Input"),
        ("def f():\n    import keras as K", "K.Input", "keras.Input"),
        ("if True:\n    pass\nelse:\n    import tf_keras as k2", "k2.Input", "keras.Input"),
    ],
)
def test_qualified_names(imports, expression, expected):
    assert resolve(imports + "\n", expression) == expected


def test_canonical_and_local_for():
    assert canonical("tensorflow_model_optimization") == "tfmot"
    assert canonical("tensorflow.python.keras.layers.Dense") == "keras.layers.Dense"
    n, _ = names_of("import tensorflow as tf\nfrom tensorflow import lite\n")
    assert n.local_for("tensorflow") == "tf"
    assert n.local_for("tensorflow.lite") in ("lite", "tf.lite")
    assert n.local_for("numpy") is None


def test_walk_visits_in_source_order_with_leave():
    m = cst.parse_module("a = f(b)\nc = g(d)\n")
    seen: list[str] = []
    walk(
        m,
        {cst.Name: [lambda n: seen.append(n.value)]},
        {cst.Assign: [lambda n: seen.append("/" + n.targets[0].target.value)]},
    )
    assert seen == ["a", "f", "b", "/a", "c", "g", "d", "/c"]


# --- a toy rule, to test the engine without the real rules ------------------------------
class ToyPrint(SourceRule):
    """Toy: replaces `print(x)` with `log(x)` (safe) and flags `eval` (unsafe: adds a line)."""

    code = "QF990"
    name = "toy-print"
    VALID = [Valid("log(1)\n")]
    INVALID = [Invalid("print(1)\n", expected="log(1)\n")]

    def visit_Call(self, node: cst.Call) -> None:
        if isinstance(node.func, cst.Name) and node.func.value == "print":
            self.report(node, "print", fix="use log", applicability=Applicability.SAFE, edits=[Replace(node.func, cst.Name("log"))])

    def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> None:
        s = node.body[0]
        if isinstance(s, cst.Expr) and isinstance(s.value, cst.Call) and getattr(s.value.func, "value", None) == "eval":
            if "guard()" in self.ctx.code:
                return
            self.report(node, "eval", fix="guard", applicability=Applicability.UNSAFE, edits=[InsertStatements(node, statements("guard()\n"), before=True)])


class ToyTop(SourceRule):
    """Toy: inserts a marker at the top of any file calling `top()`."""

    code = "QF991"
    name = "toy-top"

    def visit_Call(self, node: cst.Call) -> None:
        if isinstance(node.func, cst.Name) and node.func.value == "top":
            self.report(node, "top", fix="marker", applicability=Applicability.SAFE, edits=[InsertStatements(None, statements("MARKER = 1\n"))])


TOYS = [ToyPrint, ToyTop]


def test_toy_lint_positions_and_byte_identity():
    code = "x = 1\nprint(x)  # keep me\n"
    res = lint_source(code, rules=TOYS)
    assert [(v.code, v.location.line, v.location.col) for v in res.violations] == [("QF990", 2, 1)]
    fr = fix_source(code, rules=TOYS)
    assert fr.code == "x = 1\nlog(x)  # keep me\n"
    clean = "x = 1\n\n\n# comment\ny = (  2 )\n"
    assert fix_source(clean, rules=TOYS).code == clean


def test_unsafe_only_with_flag_and_insert_before():
    code = "eval(s)\n"
    assert fix_source(code, rules=TOYS).code == code
    assert fix_source(code, rules=TOYS, unsafe_fixes=True).code.startswith("guard()\neval(s)\n")


def test_top_insert_after_docstring_and_future_once():
    code = '"""Doc."""\nfrom __future__ import annotations\n# lead comment\ntop()\ntop()\n'
    fr = fix_source(code, rules=TOYS)
    assert fr.code == '"""Doc."""\nfrom __future__ import annotations\nMARKER = 1\n# lead comment\ntop()\ntop()\n'


def test_overlapping_fixes_converge():
    code = "print(print(1))\n"
    fr = fix_source(code, rules=TOYS)
    assert fr.code == "log(log(1))\n"
    assert fr.iterations <= 3


def test_suppression_comments():
    code = "print(1)  # qfix: ignore[QF990]\nprint(2)  # qfix: ignore\nprint(3)  # qfix: ignore[QF123]\nprint(4)\n"
    lines = [v.location.line for v in lint_source(code, rules=TOYS).violations]
    assert lines == [3, 4]
    assert lint_source("# qfix: ignore-file[QF990]\nprint(1)\n", rules=TOYS).violations == []
    assert lint_source("# qfix: ignore-file\nprint(1)\n", rules=TOYS).violations == []
    # suppression by rule name too
    assert lint_source("print(1)  # qfix: ignore[toy-print]\n", rules=TOYS).violations == []


def test_suppression_comments_count_lines_as_python_does():
    # a form feed, \x1c or U+2028 is no line break for Python (nor for libcst's positions)
    for odd in ("\x0c", "\x1c", "\u2028", "\x85"):
        code = f"x = '{odd}'\nprint(1)  # qfix: ignore[QF990]\nprint(2)\n"
        assert [v.location.line for v in lint_source(code, rules=TOYS).violations] == [3], repr(odd)
    code = "x = 1\r\nprint(1)  # qfix: ignore[QF990]\rprint(2)\n"
    assert [v.location.line for v in lint_source(code, rules=TOYS).violations] == [3]


def test_only_a_comment_suppresses():
    # the review's case: the directive's text inside a string is no directive
    code = ('u = "# qfix: ignore[QF990]"; print(1)\n'
            "s = '# qfix: ignore'; print(2)\n"
            'd = """\n# qfix: ignore-file\n"""; print(3)\n'
            "print(4)  # qfix: ignore[QF990] after code\n")
    assert [v.location.line for v in lint_source(code, rules=TOYS).violations] == [1, 2, 5]
    # a text the tokenizer cannot read: whole lines are searched, as before
    from qfix.source.engine import _comments, _suppressions

    assert _comments("print(2\n") is None
    assert _suppressions("x = 1  # qfix: ignore\nprint(2\n")[0] == {1: None}


def test_parse_error_is_a_finding():
    res = lint_source("def f(:\n    pass\n", path="bad.py", rules=TOYS)
    assert [v.code for v in res.violations] == ["QF915"]
    assert res.violations[0].location.path == "bad.py"
    assert res.module is None
    # worded by Python's own parser: a Python 2 file says so, at the line Python names
    res = lint_source("import os\n\nprint os.sep\n", path="py2.py", rules=TOYS)
    v = res.violations[0]
    assert v.code == "QF915" and "Missing parentheses in call to 'print'" in v.message and v.location.line == 3


class BrokenFix(SourceRule):
    """Toy whose fix produces invalid code."""

    code = "QF992"
    name = "broken-fix"

    def visit_Call(self, node: cst.Call) -> None:
        self.report(node, "x", fix="break", applicability=Applicability.SAFE, edits=[Replace(node, cst.Name("if"))])


def test_fix_that_breaks_syntax_is_dropped():
    code = "f(1)\n"
    fr = fix_source(code, rules=[BrokenFix])
    assert fr.code == code
    assert [e.code for e in fr.errors] == ["QF916"]


class NeverConverges(SourceRule):
    """Toy whose fix keeps adding a line."""

    code = "QF993"
    name = "never-converges"

    def visit_Module(self, node: cst.Module) -> None:
        self.report(node.body[0], "x", fix="more", applicability=Applicability.SAFE, edits=[InsertStatements(node.body[0], statements("y = 1\n"))])


def test_non_convergence_is_reported():
    fr = fix_source("x = 1\n", rules=[NeverConverges])
    assert fr.iterations == 10
    assert [e.code for e in fr.errors] == ["QF916"]
    cst.parse_module(fr.code)


def test_engine_never_imports_tensorflow():
    import subprocess
    import sys

    code = (
        "import sys\nfrom qfix.rules import source_rules\nfrom qfix.source.engine import fix_source\n"
        "fix_source('import tensorflow as tf\\nx = tf.keras.layers.Lambda(lambda t: t * 2)(y)\\n', rules=source_rules(), target='edgetpu')\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras', 'tensorflow_model_optimization')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_all_rules_together_converge_on_a_realistic_script():
    code = textwrap.dedent(
        '''\
        """Train and export."""
        import keras
        import tensorflow as tf
        import tensorflow_model_optimization as tfmot

        img = keras.Input((96, 96, 3), dtype="uint8")
        meta = keras.Input((4,))
        x = keras.layers.Lambda(lambda t: t / 127.5 - 1.0)(img)
        x = keras.layers.Conv2D(8, 3, activation="gelu")(x)
        x = keras.layers.Flatten()(x)
        x = keras.layers.Concatenate()([x, meta])
        model = keras.Model([img, meta], keras.layers.Dense(2)(x))
        q = tfmot.quantization.quantize_model(model)

        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = rep
        open("m.tflite", "wb").write(converter.convert())
        '''
    )
    first = lint_source(code, rules=source_rules(), target="edgetpu")
    codes = {v.code for v in first.violations}
    assert {"QF202", "QF204", "QF301", "QF302", "QF402", "QF403", "QF501"} <= codes, codes
    fr = fix_source(code, rules=source_rules(), target="edgetpu", unsafe_fixes=True)
    cst.parse_module(fr.code)
    assert fix_source(fr.code, rules=source_rules(), target="edgetpu", unsafe_fixes=True).code == fr.code
    assert "Rescaling(1.0 / 127.5, offset=-1.0)" in fr.code
    assert "tfmot.quantization.keras.quantize_model" in fr.code
    assert "TFLITE_BUILTINS_INT8" in fr.code and "inference_input_type = tf.uint8" in fr.code
    assert "batch_size=1" in fr.code
    assert fr.code.index('os.environ["TF_USE_LEGACY_KERAS"]') < fr.code.index("import tensorflow as tf")
    left = {v.code for v in fr.remaining if v.fix is not None and v.fix.edits}
    assert not left, left


def test_libcst_codemod_wrapper():
    from libcst.codemod import CodemodContext, TransformSkip, TransformSuccess, transform_module

    from qfix.cli.codemod import ApplyQfixFixes

    src = "import tensorflow as tf\nx = tf.keras.layers.Lambda(lambda t: t * 2.0)(i)\n"
    res = transform_module(ApplyQfixFixes(CodemodContext()), src)
    assert isinstance(res, TransformSuccess)
    assert res.code == "import tensorflow as tf\nx = tf.keras.layers.Rescaling(2.0)(i)\n"
    assert isinstance(transform_module(ApplyQfixFixes(CodemodContext()), "x = 1\n"), TransformSkip)
