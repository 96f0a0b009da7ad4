"""The incremental re-parse (`qfix.source.incremental`) is the full parse, edit after edit.

Random edits (insert, delete, replace, indent lines; lines drawn from imports, aliases,
converter statements, strings, comments and broken syntax) over the repository's own sources
and the benchmark's generated script; after each edit the spliced module must be node for node
libcst's parse of the new text (or both fail), and `lint_source` on it must give what it gives
on the text alone: findings, ranges, fixes (the text each fix gives).
"""

from __future__ import annotations

import random
from pathlib import Path

import libcst as cst
import pytest

from qfix.rules import source_rules
from qfix.source.engine import apply_fix, lint_source
from qfix.source.incremental import Parsed

ROOT = Path(__file__).resolve().parents[2]
RULES = source_rules()

SEED = '''"""A converter script."""
import tensorflow as tf
from tensorflow import keras
import numpy as np

lite = tf.lite


def rep():
    for _ in range(10):
        yield [np.random.rand(1, 8).astype(np.float32)]


model = keras.Sequential([keras.layers.Dense(4), keras.layers.Lambda(lambda t: t * 2)])
converter = tf.lite.TFLiteConverter.from_keras_model(model)
converter.optimizations = [tf.lite.Optimize.DEFAULT]
converter.representative_dataset = rep
converter.inference_input_type = tf.lite.constants.INT8
open("model_int8.tflite", "wb").write(converter.convert())
'''

POOL = [
    "import tensorflow as tf",
    "import keras",
    "import tf_keras as keras",
    "from tensorflow import lite as lite",
    "import tensorflow_model_optimization as tfmot",
    "lite = tf.lite",
    "tf = None",
    "converter = tf.lite.TFLiteConverter.from_keras_model(model)",
    "converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]",
    "converter.inference_input_type = tf.uint8",
    "converter.inference_output_type = tf.lite.constants.INT8",
    "converter.optimizations.add(tf.lite.Optimize.DEFAULT)",
    "c = lite.TFLiteConverter.from_saved_model('m')",
    "x = keras.layers.Lambda(lambda t: t)(x)",
    "noise = np.random.rand(1, 8, dtype=np.float32)",
    "def f(model):",
    "    return tf.lite.TFLiteConverter.from_keras_model(model)",
    "class Block(keras.layers.Layer):",
    "  pass",
    "\tpass",
    "if __name__ == '__main__':",
    "else:",
    "s = '''",
    "'''",
    '"""',
    "x = (1,",
    ")",
    "def (",
    "    # an indented comment",
    "# qfix: ignore",
    "# a comment",
    "",
    "@decorator",
    "y = 1; z = 2",
    "x = \\",
    "print 'py2'",
    "match x:",
    "    case 'a': pass",
]


def _sources() -> list[tuple[str, str]]:
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    from bench_lsp import source  # the benchmark's 1,000-line script, cut shorter here

    files = [*sorted((ROOT / "fixtures").glob("*.py"))[:3], ROOT / "qfix" / "source" / "dispatch.py",
             ROOT / "tests" / "source" / "test_casts.py"]
    return [("seed", SEED), ("bench", source(160))] + [(f.name, _head(f.read_text(), 120)) for f in files]


def _head(text: str, lines: int) -> str:
    """The top-level statements of `text` that start in its first `lines` lines (a shorter file
    that still parses: the test compares a full parse after every edit)."""
    module = cst.parse_module(text)
    out = "".join(module.code_for_node(h) for h in module.header)
    for stmt in module.body:
        if out.count("\n") >= lines:
            break
        out += module.code_for_node(stmt)
    return out


def _edit(text: str, rng: random.Random) -> str:
    lines = text.split("\n")
    k = rng.randrange(len(lines) + 1)
    op = rng.random()
    if op < 0.3:
        lines.insert(k, rng.choice(POOL))
    elif op < 0.45 and lines:
        del lines[min(k, len(lines) - 1):min(k, len(lines) - 1) + rng.randint(1, 3)]
    elif op < 0.7 and lines:
        lines[min(k, len(lines) - 1)] = rng.choice(POOL)
    elif op < 0.8 and lines:
        j = min(k, len(lines) - 1)
        lines[j] = rng.choice(["    ", "  ", "\t", ""]) + lines[j].lstrip()
    elif lines:  # a character typed or removed inside a line (strings, names, brackets)
        j = min(k, len(lines) - 1)
        line = lines[j]
        at = rng.randrange(len(line) + 1)
        if rng.random() < 0.5 and line:
            line = line[:at] + line[at + 1:]
        else:
            line = line[:at] + rng.choice("()[]'\"#:,.x1 \\") + line[at:]
        lines[j] = line
    return "\n".join(lines)


def _findings(text: str, module: cst.Module | None) -> list[tuple]:
    try:
        lint = lint_source(text, rules=RULES, target="edgetpu", module=module)
    except RecursionError:
        return [("recursion",)]
    out = []
    for v in lint.violations:
        loc = v.location
        fix = v.fix
        out.append((v.code, v.message, loc.line, loc.col, loc.end_line, loc.end_col,
                    None if fix is None else (fix.applicability, fix.description)))
    for rep in lint.reports:
        if rep.violation.fix is not None and rep.violation.fix.edits and lint.module is not None:
            try:
                out.append(("fixed", apply_fix(lint.module, rep.violation.fix.edits).code))
            except Exception as exc:  # noqa: BLE001 - compared, not hidden
                out.append(("fix error", type(exc).__name__))
    return out


def _same_parse(text: str, got: Parsed) -> Parsed:
    full = Parsed.parse(text)
    assert (got.module is None) == (full.module is None), text
    if full.module is not None:
        assert got.module.deep_equals(full.module), text
        assert got.module.code == full.module.code
    return full


@pytest.mark.parametrize("name,text", _sources(), ids=lambda x: x if len(x) < 30 else "")
def test_random_edits_parse_as_whole(name: str, text: str) -> None:
    rng = random.Random(f"qfix-{name}")
    current = Parsed.parse(text)
    spliced = 0
    for _ in range(100):
        new = _edit(current.text, rng)
        got = current.update(new)
        _same_parse(new, got)
        spliced += got.spliced
        current = got
        if got.module is None and rng.random() < 0.85:
            current = got.base.update(got.base.text) if got.base is not None else Parsed.parse(text)
    assert spliced > 15  # the splice is taken, not always the fallback


@pytest.fixture
def memo_on():
    """Per-statement results kept between checks, as the language server keeps them."""
    from qfix.source import memo

    memo.enable()
    yield
    memo.enable(False)


@pytest.mark.parametrize("name,text", _sources()[:2])
def test_random_edits_lint_as_whole(name: str, text: str, memo_on) -> None:
    """The spliced module checked with the per-statement results of earlier checks kept
    (`qfix.source.memo`) gives what the text checked afresh gives."""
    rng = random.Random(f"lint-{name}")
    current = Parsed.parse(text)
    compared = 0
    for _ in range(60):
        new = _edit(current.text, rng)
        got = current.update(new)
        _same_parse(new, got)
        if got.spliced:
            assert _findings(new, got.module) == _findings(new, None), new
            compared += 1
        current = got
        if got.module is None and rng.random() < 0.85 and got.base is not None:
            current = got.base
    assert compared > 5


@pytest.mark.parametrize("old,new", [
    ("import a\n\ndef f():\n    x\n\ny = 1\n", "import a\n\ndef f():\n  x\n\ny = 1\n"),  # the default indent moves
    ("x = 1\ny = 2\nz = 3\nw = 4\n", "x = 1\ny = 2\nz = (3\nw = 4\n"),  # an open bracket eats the rest
    ("x = 1\ny = 2\nz = 3\nw = 4\n", "x = 1\ny = 2\nz = '''3\nw = 4\n"),  # an open string
    ("def f():\n    a\nb = 1\nc = 2\nd = 3\n", "def f():\n    a\n    # c\nb = 1\nc = 2\nd = 3\n"),
    ("a = 1\nb = 2\nc = 3\nd = 4\n", "a = 1\nb = 2\nc = 3\nd = 4"),  # no final newline
    ("a = 1\nb = 2\nc = 3\nd = 4\n", "a = 1\r\nb = 2\nc = 3\nd = 4\n"),
    ("# -*- coding: latin-1 -*-\na = 1\nb = 2\nc = 3\n", "# -*- coding: latin-1 -*-\na = 1\nb = 22\nc = 3\n"),
])
def test_edge_cases(old: str, new: str) -> None:
    _same_parse(new, Parsed.parse(old).update(new))


def test_an_edit_in_a_long_file_reparses_one_region() -> None:
    text = _sources()[1][1]
    parsed = Parsed.parse(text)
    new = text.replace("ReLU(6.0)", "ReLU(6.0, name='r')", 1)
    got = parsed.update(new)
    assert got.spliced
    kept = sum(a is b for a, b in zip(parsed.module.body, got.module.body))
    assert kept >= len(parsed.module.body) - 10
    _same_parse(new, got)


@pytest.mark.parametrize("name,text", _sources()[:2])
def test_fixes_from_spliced_text_are_the_whole_modules(name: str, text: str, memo_on) -> None:
    """`code_of` (unchanged statements sliced from the text) is `Module.code`, and `fix_source`
    re-parsing incrementally (`parsed=`, the editor's fix-all) gives what `qfix --write` gives."""
    from qfix.source.engine import fix_source, lint_parsed
    from qfix.source.incremental import code_of

    rng = random.Random(f"fix-{name}")
    current = Parsed.parse(text)
    compared = 0
    for _ in range(40):
        new = _edit(current.text, rng)
        got = current.update(new)
        current = got if got.module is not None else current
        if got.module is None:
            continue
        got.prepare()
        lint = lint_parsed(got, rules=RULES, target="edgetpu")
        for rep in lint.reports:
            if rep.violation.fix is not None and rep.violation.fix.edits:
                module = apply_fix(got.module, rep.violation.fix.edits)
                assert code_of(module, got) == module.code
                compared += 1
        fast = fix_source(new, rules=RULES, target="edgetpu", unsafe_fixes=True, first=lint, parsed=got)
        full = fix_source(new, rules=RULES, target="edgetpu", unsafe_fixes=True)
        assert fast.code == full.code
        assert [(v.code, v.location.line, v.location.col) for v in fast.remaining] == \
               [(v.code, v.location.line, v.location.col) for v in full.remaining]
    assert compared > 10
