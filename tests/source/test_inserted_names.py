"""Every name a fix inserts resolves when the fixed script runs (issue 11, kind 5): QF401's
`converter.representative_dataset = <[tool.qfix] representative-dataset>` comes with the
import it needs, or stays display-only and says why. The script is run in
`tests/source/test_fixed_scripts.py` (TensorFlow)."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from qfix.cli.source import run
from qfix.rules import source_rules
from qfix.source.engine import fix_source, lint_source

EXPORT = (
    "import tensorflow as tf\n"
    "converter = tf.lite.TFLiteConverter.from_keras_model(model)\n"
    "converter.optimizations = [tf.lite.Optimize.DEFAULT]\n"
    "converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]\n"
    "tflite = converter.convert()\n"
)
GEN = "def representative_dataset():\n    yield [x]\n"


def _qf401(path: Path, setting: str):
    code = path.read_text()
    res = lint_source(code, rules=source_rules(), path=str(path), options={"representative_dataset": setting})
    (v,) = [v for v in res.violations if v.code == "QF401"]
    fixed = fix_source(code, rules=source_rules(), path=str(path), options={"representative_dataset": setting}, unsafe_fixes=True)
    return v, fixed.code


def test_module_beside_the_script_is_imported(tmp_path: Path):
    (tmp_path / "calib.py").write_text(GEN)
    (tmp_path / "export.py").write_text(EXPORT)
    v, fixed = _qf401(tmp_path / "export.py", "calib.representative_dataset")
    assert v.fix.applicability.value == "unsafe" and "import calib" in v.fix.description
    assert "import calib\n" in fixed
    assert "converter.representative_dataset = calib.representative_dataset\n" in fixed


def test_package_module_and_colon_spelling(tmp_path: Path):
    (tmp_path / "tools" / "data").mkdir(parents=True)
    (tmp_path / "tools" / "__init__.py").write_text("")
    (tmp_path / "tools" / "data" / "__init__.py").write_text("from .gen import representative_dataset\n")
    (tmp_path / "export.py").write_text(EXPORT)
    _, fixed = _qf401(tmp_path / "export.py", "tools.data:representative_dataset")
    assert "import tools.data\n" in fixed
    assert "converter.representative_dataset = tools.data.representative_dataset\n" in fixed


def test_installed_module_is_imported(tmp_path: Path):
    (tmp_path / "export.py").write_text(EXPORT)
    _, fixed = _qf401(tmp_path / "export.py", "json.dumps")  # any installed module defining the name
    assert "import json\n" in fixed and "converter.representative_dataset = json.dumps\n" in fixed


def test_missing_module_is_display_only_with_the_reason(tmp_path: Path):
    (tmp_path / "export.py").write_text(EXPORT)
    v, fixed = _qf401(tmp_path / "export.py", "calib.representative_dataset")
    assert v.fix.applicability.value == "display-only"
    assert "module `calib` is neither beside export.py nor installed" in v.fix.description
    assert fixed == EXPORT


def test_module_without_the_generator_is_display_only(tmp_path: Path):
    (tmp_path / "calib.py").write_text("def other():\n    pass\n")
    (tmp_path / "export.py").write_text(EXPORT)
    v, fixed = _qf401(tmp_path / "export.py", "calib.representative_dataset")
    assert v.fix.applicability.value == "display-only" and "calib.py defines no `representative_dataset`" in v.fix.description
    assert fixed == EXPORT


def test_bare_name_defined_after_the_converter_is_display_only(tmp_path: Path):
    (tmp_path / "export.py").write_text(EXPORT + GEN)
    v, _ = _qf401(tmp_path / "export.py", "representative_dataset")
    assert v.fix.applicability.value == "display-only" and "not defined in this file before" in v.fix.description
    (tmp_path / "export.py").write_text(GEN + EXPORT)
    v, fixed = _qf401(tmp_path / "export.py", "representative_dataset")
    assert v.fix.applicability.value == "unsafe"
    assert "converter.representative_dataset = representative_dataset\n" in fixed


def test_bare_name_in_the_converter_function(tmp_path: Path):
    body = "".join("    " + line + "\n" for line in (GEN + EXPORT).splitlines())
    (tmp_path / "export.py").write_text("def export(model):\n" + body)
    v, fixed = _qf401(tmp_path / "export.py", "representative_dataset")
    assert v.fix.applicability.value == "unsafe"
    assert "    converter.representative_dataset = representative_dataset\n" in fixed


def test_builtin_name_is_never_the_generator(tmp_path: Path):
    (tmp_path / "export.py").write_text(EXPORT)
    v, _ = _qf401(tmp_path / "export.py", "input")
    assert v.fix.applicability.value == "display-only"


def test_cli_write_with_pyproject(tmp_path: Path):
    (tmp_path / "pyproject.toml").write_text('[tool.qfix]\ntarget = "int8"\nrepresentative-dataset = "calib.representative_dataset"\n')
    (tmp_path / "calib.py").write_text(GEN)
    script = tmp_path / "export.py"
    script.write_text(EXPORT)
    buf = io.StringIO()
    console = Console(file=buf, width=400, color_system=None)
    run([script], write=True, unsafe_fixes=True, diff=False, select=["QF401"], ignore=None, target=None,
        output_format="text", console=console, jobs=1)
    text = script.read_text()
    assert text.startswith("import tensorflow as tf\nimport calib\n")
    assert "\nconverter.representative_dataset = calib.representative_dataset\n" in text


def test_a_taken_alias_is_not_rebound():
    """`import tensorflow.compat.v1 as tf`: the fixes that need `tensorflow` import it under its
    own name; a second `import tensorflow as tf` would change what every `tf.` in the file is."""
    code = (
        "import tensorflow.compat.v1 as tf\n"
        "converter = tf.lite.TFLiteConverter.from_keras_model(model)\n"
        "converter.optimizations = [tf.lite.Optimize.DEFAULT]\n"
        "converter.representative_dataset = rep\n"
        "m = converter.convert()\n"
    )
    fixed = fix_source(code, rules=source_rules(), target="edgetpu", unsafe_fixes=True).code
    assert "import tensorflow as tf" not in fixed
    assert fixed.startswith("import tensorflow.compat.v1 as tf\nimport tensorflow\n")
    assert "converter.inference_input_type = tensorflow.uint8\n" in fixed
    assert "converter.target_spec.supported_ops = [tensorflow.lite.OpsSet.TFLITE_BUILTINS_INT8]\n" in fixed


# issue 11 (f): the inserted name must not be one a scope of the file binds
SHADOWED = {
    "local": "def export(model):\n    calib = None\n{body}",
    "parameter": "def export(model, calib=None):\n{body}",
    "loop elsewhere": "def other():\n    for calib in range(3):\n        pass\n\n\ndef export(model):\n{body}",
    "module global": "calib = {{}}\n\n\ndef export(model):\n{body}",
}


def _in_function(kind: str) -> str:
    body = "".join("    " + line + "\n" for line in EXPORT.splitlines()[1:])
    return "import tensorflow as tf\n\n\n" + SHADOWED[kind].format(body=body)


def test_an_inserted_module_name_never_shadowed(tmp_path: Path):
    import ast

    (tmp_path / "calib.py").write_text(GEN)
    for kind in SHADOWED:
        script = tmp_path / "export.py"
        script.write_text(_in_function(kind))
        v, fixed = _qf401(script, "calib.representative_dataset")
        assert "import calib as calib_module" in v.fix.description, (kind, v.fix.description)
        assert "\nimport calib as calib_module\n" in fixed, (kind, fixed)
        assert "    converter.representative_dataset = calib_module.representative_dataset\n" in fixed, (kind, fixed)
        assert "import calib\n" not in fixed
        ast.parse(fixed)
    # the alias itself taken too: the next free one
    script.write_text(_in_function("local").replace("calib = None", "calib = calib_module = None"))
    _, fixed = _qf401(script, "calib.representative_dataset")
    assert "import calib as calib_module_2\n" in fixed and "= calib_module_2.representative_dataset\n" in fixed


def test_an_existing_import_hidden_by_a_local_is_not_reused(tmp_path: Path):
    (tmp_path / "calib.py").write_text(GEN)
    script = tmp_path / "export.py"
    script.write_text(_in_function("local").replace("import tensorflow as tf\n", "import tensorflow as tf\nimport calib\n"))
    _, fixed = _qf401(script, "calib.representative_dataset")
    assert "converter.representative_dataset = calib_module.representative_dataset\n" in fixed


def test_an_unshadowed_module_keeps_its_name(tmp_path: Path):
    (tmp_path / "calib.py").write_text(GEN)
    script = tmp_path / "export.py"
    script.write_text(_in_function("local").replace("calib = None", "calibration = None"))
    _, fixed = _qf401(script, "calib.representative_dataset")
    assert "\nimport calib\n" in fixed and "= calib.representative_dataset\n" in fixed


def test_a_spelled_module_is_not_imported_under_a_taken_name():
    """QF407's `optimizations` line needs `tensorflow`, which the file reaches only as `lite`;
    `tf` is a parameter elsewhere in the file, so `import tensorflow as tf` would be hidden there."""
    code = (
        "from tensorflow import lite\n"
        "def scale(tf):\n    return tf\n"
        "conv = lite.TFLiteConverter.from_keras_model(model)\n"
        "conv.target_spec.supported_ops = [lite.OpsSet.TFLITE_BUILTINS_INT8]\n"
        "conv.representative_dataset = rep\n"
    )
    fixed = fix_source(code, rules=source_rules(), target="int8", unsafe_fixes=True).code
    assert "import tensorflow as tf\n" not in fixed
    assert "import tensorflow as tensorflow_module\n" in fixed
    assert "conv.optimizations = [tensorflow_module.lite.Optimize.DEFAULT]\n" in fixed
