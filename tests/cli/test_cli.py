"""The first ten minutes, through the installed console script: usage errors, help, --version,
what a path is, rule selection, options that do not combine, which stream gets what.

Every run uses the `qfix` script installed next to this Python with PYTHONPATH at this
checkout, so the code under test is this tree's. Errors: exit 2, exactly one stderr line
`QF9xx ...`, nothing on stdout, no traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import qfix
from qfix.cli import app as cli  # the typer application (qfix.cli itself is the entry point)

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
TINY = FIXTURES / "tiny_cnn_k3.keras"
LAMBDA = FIXTURES / "lambda_cnn_k3.keras"
QFIX = shutil.which("qfix", path=str(Path(sys.executable).parent))


def qfix_run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    assert QFIX, f"no qfix console script next to {sys.executable}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("QFIX_DEBUG", None)
    return subprocess.run([QFIX, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def one_error(proc: subprocess.CompletedProcess, code: str = "QF914") -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(code + " "), proc.stderr
    assert proc.stdout == ""
    return lines[0]


@pytest.fixture
def src(tmp_path: Path) -> Path:
    (tmp_path / "train.py").write_text("import tensorflow as tf\nc.inference_input_type = tf.lite.constants.INT8\n")
    return tmp_path / "train.py"


# --- usage errors ----------------------------------------------------------------------------


@pytest.mark.parametrize("args, fragment", [
    ((), "nothing to check"),
    ((TINY, "--bogus"), "--bogus"),
    ((TINY, "--samples", "x"), "--samples"),
    ((TINY, "--samples", "0"), "--samples"),
    ((TINY, "--format", "xml"), "--format"),
    ((TINY, "--mode", "foo"), "--mode"),
    ((TINY, "--target"), "--target"),
    (("rule",), "CODE"),
    (("rules", "extra"), "extra"),
    (("targets", "--bogus"), "--bogus"),
    (("lsp", "--tcp"), "--tcp"),
    (("rulez",), "rulez"),
])
def test_usage_errors_are_one_line(args, fragment):
    assert fragment in one_error(qfix_run(*args))


@pytest.mark.parametrize("args", [("-h",), ("--help",), ("rules", "-h"), ("rule", "--help"), ("targets", "-h"),
                                  ("lsp", "--help")])
def test_help_exits_0_on_stdout(args):
    proc = qfix_run(*args)
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.startswith(f"Usage: qfix {args[0] if len(args) == 2 else '[OPTIONS]'}")


def test_main_help_explains_itself():
    out = qfix_run("--help").stdout
    assert out.splitlines()[0] == "Usage: qfix [OPTIONS] PATH..."
    for part in ("Four ways", "qfix MODEL.keras", "qfix rules|rule CODE|targets", "qfix lsp", "Examples:",
                 "Exit status:", "--version", "--calibration P"):
        assert part in out, part
    for odd in ("{", "<list", "<str>", "<path>", "<int", "MAIN_COMMAND", "main-command"):
        assert odd not in out, odd
    assert max(len(line) for line in out.splitlines()) <= 80


def test_version_names_every_library():
    proc = qfix_run("--version")
    assert proc.returncode == 0 and proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert lines[0] == f"qfix {qfix.__version__}"
    assert lines[1].startswith(f"Python {sys.version.split()[0]} ")
    for label, dist in cli.VERSIONED:
        assert f"{label} {metadata.version(dist)}" in lines
    assert qfix_run("-V").stdout == proc.stdout


def test_python_dash_m_qfix_is_the_same_cli():
    proc = subprocess.run([sys.executable, "-m", "qfix", "--version"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert proc.returncode == 0 and proc.stdout == qfix_run("--version").stdout


def test_version_imports_none_of_the_libraries():
    code = ("import sys\nfrom qfix.cli import main\ntry:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
            "print([m for m in ('tensorflow', 'keras', 'tf_keras', 'tensorflow_model_optimization', "
            "'ai_edge_litert', 'libcst') if m in sys.modules])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert proc.stdout.splitlines()[-1] == "[]", proc.stdout + proc.stderr


def test_version_of_a_missing_library(monkeypatch):
    monkeypatch.setattr(cli, "VERSIONED", (("nothing", "qfix-no-such-distribution"),))
    assert cli.versions().splitlines()[-1] == "nothing not installed"


# --- what a path is --------------------------------------------------------------------------


def test_paths_qfix_does_not_read(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "m.tflite").write_bytes(b"TFL3")
    (tmp_path / "m.h5").write_bytes(b"\x89HDF\r\n\x1a\n")
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "saved_model.pb").write_bytes(b"\0")
    (tmp_path / "empty").mkdir()
    assert "not a .keras model" in one_error(qfix_run(tmp_path / "notes.txt"))
    assert "converted from" in one_error(qfix_run(tmp_path / "m.tflite"), "QF906")
    assert "re-save it as .keras" in one_error(qfix_run(tmp_path / "m.h5"), "QF906")
    assert "SavedModel" in one_error(qfix_run(tmp_path / "export"), "QF906")
    assert "SavedModel" in one_error(qfix_run(tmp_path / "export" / "saved_model.pb"), "QF906")
    assert "no .keras models and no Python" in one_error(qfix_run(tmp_path / "empty"))
    assert "no such file" in one_error(qfix_run(tmp_path / "gone.keras"), "QF907")
    assert "no such file" in one_error(qfix_run(tmp_path / "gone" / "dir"), "QF907")


def test_keras_suffix_in_any_case_is_a_model(tmp_path):
    p = tmp_path / "MODEL.KERAS"
    shutil.copyfile(TINY, p)
    proc = qfix_run(p, "--static", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["findings"][0]["code"] == "QF301"


def test_folder_of_models_runs_each_model(tmp_path):
    (tmp_path / "sub").mkdir()
    shutil.copyfile(TINY, tmp_path / "a.keras")
    shutil.copyfile(LAMBDA, tmp_path / "sub" / "b.keras")
    shutil.copyfile(TINY, tmp_path / "a.qfix.keras")  # qfix's own outputs: not checked again
    shutil.copyfile(TINY, tmp_path / "a.qfix.qat.keras")
    (tmp_path / "notes.txt").write_text("not a model")
    proc = qfix_run(tmp_path, "--check", "--static", tmp_path / "a.keras")  # named twice: runs once
    headers = [line for line in proc.stdout.splitlines() if line.startswith("== ")]
    assert headers == [f"== {tmp_path / 'a.keras'} ==", f"== {tmp_path / 'sub' / 'b.keras'} =="]
    assert proc.returncode == 1 and proc.stderr == ""  # the worst: b has a Lambda blocker


def test_folder_of_models_goes_on_after_a_broken_one(tmp_path):
    (tmp_path / "a_broken.keras").write_bytes(b"not a zip")
    shutil.copyfile(TINY, tmp_path / "b.keras")
    proc = qfix_run(tmp_path, "--static")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"QF901 {tmp_path / 'a_broken.keras'} is not a .keras archive (not a zip file)"]
    assert f"== {tmp_path / 'b.keras'} ==" in proc.stdout and "QF301" in proc.stdout


def test_several_models_refuse_json_but_one_model_in_a_folder_is_one_document(tmp_path):
    shutil.copyfile(TINY, tmp_path / "a.keras")
    proc = qfix_run(tmp_path, "--static", "--format", "json")
    assert json.loads(proc.stdout)["findings"][0]["code"] == "QF301"
    shutil.copyfile(TINY, tmp_path / "b.keras")
    assert "run qfix once per model" in one_error(qfix_run(tmp_path, "--static", "--format", "json"))


def test_models_and_sources_do_not_mix(src):
    assert "separate runs" in one_error(qfix_run(TINY, src))


def test_a_folder_with_python_is_a_source_folder_and_says_which_models_it_skips(src):
    (src.parent / "models").mkdir()
    shutil.copyfile(TINY, src.parent / "models" / "m.keras")
    proc = qfix_run(src.parent)
    assert proc.returncode == 1 and "QF204" in proc.stdout, proc.stdout + proc.stderr
    note = f"1 .keras model in the Python folders is not checked in a source run; name it to check, e.g. " \
           f"qfix {src.parent / 'models' / 'm.keras'}"
    assert proc.stderr.splitlines() == [f"note: {note}"]
    assert one_error(qfix_run(src.parent, "--static")).endswith(note)  # a model option: where the models are
    assert qfix_run(src.parent / "models", "--static").returncode == 0  # named: checked as a model


# --- rule selection --------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--select", "--ignore"])
def test_unknown_selector_is_an_error_on_models_and_sources(flag, src):
    assert "QF777" in one_error(qfix_run(TINY, "--static", flag, "QF3,QF777"))
    assert "bogus" in one_error(qfix_run(src, flag, "bogus"))


def test_known_selectors_run(src):
    assert qfix_run(TINY, "--static", "--select", "qf3,ALL", "--ignore", "float-io,QF9").returncode == 0
    assert qfix_run(src, "--select", "QF2").returncode == 1


# --- options that do not combine -------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ("--check", "--in-place"), ("--check", "--out-dir", "out"), ("--check", "--diff"),
    ("--check", "--unsafe-fixes"), ("--diff", "--in-place"), ("--diff", "--out-dir", "out"),
    ("--static", "--diff"), ("--static", "--in-place"), ("--static", "--out-dir", "out"),
    ("--static", "--unsafe-fixes"), ("--static", "--calibration", "c.npz"), ("--static", "--samples", "4"),
    ("--write",),
])
def test_model_options_that_do_not_combine(args, tmp_path):
    line = one_error(qfix_run(TINY, *args, cwd=tmp_path))
    assert all(a in line for a in args if a.startswith("--")), line
    assert list(tmp_path.iterdir()) == []  # nothing written, no --out-dir folder made


@pytest.mark.parametrize("args", [
    ("--check", "--write"), ("--diff", "--write"), ("--in-place",), ("--out-dir", "out"),
    ("--calibration", "c.npz"), ("--samples", "4"), ("--trust-lambdas",), ("--custom-objects", "m"),
    ("--static",), ("--mode", "qat"),
])
def test_source_options_that_do_not_combine(args, src):
    line = one_error(qfix_run(src, *args))
    assert all(a in line for a in args if a.startswith("--")), line


def test_out_dir_is_not_made_when_nothing_is_written(tmp_path):
    out = tmp_path / "a" / "b"
    proc = qfix_run(LAMBDA, "--out-dir", out)  # a Lambda model is reported, never loaded
    assert proc.returncode == 1, proc.stderr
    assert not (tmp_path / "a").exists()


@pytest.mark.tf
def test_out_dir_is_created_with_parents(tmp_path):
    out = tmp_path / "a" / "b"
    proc = qfix_run(TINY, "--out-dir", out, "--samples", "4")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["tiny_cnn_k3.qfix.edgetpu.tflite", "tiny_cnn_k3.qfix.keras"]


# --- streams ---------------------------------------------------------------------------------


def test_source_errors_go_to_stderr(src, tmp_path):
    assert "nope" in one_error(qfix_run(src, "--target", "nope"), "QF910")
    (tmp_path / "pyproject.toml").write_text("[tool.qfix]\nselect = 3\n")
    one_error(qfix_run(src), "QF914")


def test_results_go_to_stdout(src):
    proc = qfix_run(src)
    assert proc.returncode == 1 and proc.stderr == "" and "QF204" in proc.stdout
    proc = qfix_run(TINY, "--check", "--static")
    assert proc.returncode == 0 and proc.stderr == "" and "QF301" in proc.stdout


# --- calibration: rejected before TensorFlow loads -------------------------------------------


def bad_calibrations(tmp_path: Path) -> dict[str, Path | str]:
    """Calibration inputs for TINY (one float32 input 'input_layer' (None, 32, 32, 3)) that are
    all QF908, each checked without TensorFlow."""
    import numpy as np

    (tmp_path / "empty").mkdir()
    (tmp_path / "pages").mkdir()
    (tmp_path / "pages" / "cat.jpg").write_text("<html>not a jpeg</html>")
    np.savez(tmp_path / "keys.npz", image=np.zeros((2, 32, 32, 3), np.float32))
    np.save(tmp_path / "shape.npy", np.zeros((2, 16, 16, 3), np.float32))
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04 truncated")
    (tmp_path / "data.csv").write_text("1,2,3\n")
    return {"missing path": tmp_path / "nope.npz", "not npz/npy/folder": tmp_path / "data.csv",
            "wrong keys": tmp_path / "keys.npz", "wrong shapes": tmp_path / "shape.npy",
            "corrupt npz": tmp_path / "corrupt.npz", "empty folder": tmp_path / "empty",
            "not an image": tmp_path / "pages", "module:function": "qfix_no_such_module:data"}


@pytest.mark.parametrize("mode", [["--check"], []], ids=["check", "fix"])
def test_bad_calibration_is_qf908_before_tensorflow_loads(tmp_path, mode):
    cases = bad_calibrations(tmp_path)
    # Every case in one fresh interpreter, to see sys.modules when each QF908 is printed.
    code = (
        "import contextlib, io, json, sys\nfrom qfix.cli import main\nout = []\n"
        "for cal in sys.argv[2:]:\n"
        "    err = io.StringIO()\n"
        "    with contextlib.redirect_stderr(err):\n"
        "        try:\n"
        f"            main([sys.argv[1], *{mode!r}, '--calibration', cal])\n"
        "        except SystemExit as e:\n"
        "            out.append([e.code, err.getvalue(), 'tensorflow' in sys.modules or 'keras' in sys.modules])\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(TINY), *map(str, cases.values())], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=tmp_path)
    results = json.loads(proc.stdout.splitlines()[-1])
    for name, (status, err, tf_loaded) in zip(cases, results, strict=True):
        assert status == 2 and err.startswith("QF908 ") and len(err.splitlines()) == 1, (name, err)
        assert not tf_loaded, name
    line = one_error(qfix_run(TINY, *mode, "--calibration", cases["not an image"]), "QF908")
    assert "cat.jpg" in line


# --- found by a new user's review ----------------------------------------------------------


@pytest.mark.parametrize("args, fragment", [
    ((TINY, "--static", "--select", "QF104"), "matches no model rule"),  # a source-only code
    ((TINY, "--static", "--select", ""), "needs at least one"),
])
def test_selection_that_keeps_no_model_rule_is_an_error(args, fragment):
    assert fragment in one_error(qfix_run(*args))


def test_mode_is_case_insensitive():
    proc = qfix_run(TINY, "--static", "--mode", "PTQ")
    assert proc.returncode == 0, proc.stderr
