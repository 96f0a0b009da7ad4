"""Hostile and broken inputs: one-line QF9xx error, exit 2, no traceback, nothing executed,
input byte-identical afterwards. Runs the real CLI in a subprocess (no TensorFlow needed:
every case fails before conversion or uses --static)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hostile"))
from corpus import members, write_keras  # noqa: E402  (the hostile corpus' archive helpers)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
TINY = FIXTURES / "tiny_cnn_k3.keras"


ROOT = Path(__file__).resolve().parents[2]
QFIX = shutil.which("qfix", path=str(Path(sys.executable).parent))


def qfix(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The installed console script, running this checkout's code."""
    assert QFIX, f"no qfix console script next to {sys.executable}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([QFIX, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


def digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def write_zip(path: Path, files: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    """The hostile corpus' archive writer, deflating by default (these cases size zip bombs)."""
    return write_keras(path, files, compression)


def expect_error(path: Path, code: str, *extra: str) -> str:
    before = digest(path) if path.is_file() else None
    proc = qfix(str(path), "--check", *extra)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith(code), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    if before is not None:
        assert digest(path) == before
    return lines[0]


def test_not_a_zip(tmp_path):
    p = tmp_path / "model.keras"
    p.write_bytes(b"this is not a zip at all" * 10)
    expect_error(p, "QF901")


def test_truncated_zip(tmp_path):
    p = tmp_path / "model.keras"
    p.write_bytes(TINY.read_bytes()[: TINY.stat().st_size // 2])
    expect_error(p, "QF90")


def test_traversal_member(tmp_path):
    files = members(TINY)
    files["../../evil.txt"] = b"pwned"
    p = write_zip(tmp_path / "model.keras", files)
    expect_error(p, "QF902")
    assert not (tmp_path.parent / "evil.txt").exists()


def test_absolute_member(tmp_path):
    files = members(TINY)
    files["/etc/evil"] = b"x"
    expect_error(write_zip(tmp_path / "model.keras", files), "QF902")


def test_zip_bomb(tmp_path):
    files = members(TINY)
    files["assets/bomb.bin"] = b"\0" * (64 * 1024 * 1024)  # 64 MiB of zeros deflates ~1000:1
    p = write_zip(tmp_path / "model.keras", files)
    assert p.stat().st_size < 1024 * 1024
    expect_error(p, "QF903")


def test_missing_weights(tmp_path):
    files = members(TINY)
    del files["model.weights.h5"]
    expect_error(write_zip(tmp_path / "model.keras", files), "QF905")


@pytest.mark.parametrize("compression", [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED])  # stored: as Keras writes
def test_truncated_weights(tmp_path, compression):
    files = members(TINY)
    files["model.weights.h5"] = files["model.weights.h5"][: len(files["model.weights.h5"]) // 2]
    line = expect_error(write_zip(tmp_path / "truncw.keras", files, compression), "QF905")
    assert "truncw.keras: model.weights.h5 cannot be read" in line  # which model, in a folder run


def test_malformed_config_json(tmp_path):
    files = members(TINY)
    files["config.json"] = b'{"class_name": "Functional", "config": {"layers": [ '
    expect_error(write_zip(tmp_path / "model.keras", files), "QF904")


def test_config_wrong_structure(tmp_path):
    files = members(TINY)
    files["config.json"] = json.dumps({"class_name": "Functional", "config": {"layers": [{"class_name": 3}]}}).encode()
    expect_error(write_zip(tmp_path / "model.keras", files), "QF904")


def test_deeply_nested_json(tmp_path):
    files = members(TINY)
    files["config.json"] = b"[" * 100000 + b"]" * 100000
    expect_error(write_zip(tmp_path / "model.keras", files), "QF904")


def test_dangling_layer_reference(tmp_path):
    files = members(TINY)
    cfg = json.loads(files["config.json"])
    cfg["config"]["output_layers"] = [["no_such_layer", 0, 0]]
    files["config.json"] = json.dumps(cfg).encode()
    expect_error(write_zip(tmp_path / "model.keras", files), "QF904")


def test_legacy_h5(tmp_path):
    p = tmp_path / "model.h5"
    p.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    assert "legacy HDF5" in expect_error(p, "QF906")


@pytest.mark.parametrize("name, resave", [("fake.keras.h5", "'fake.keras'"), ("net.h5", "'net.keras'"),
                                          ("Net.KERAS.hdf5", "'Net.KERAS'")])
def test_legacy_h5_resave_name_has_one_keras_extension(tmp_path, name, resave):
    p = tmp_path / name
    p.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    line = expect_error(p, "QF906")
    assert f".save({resave})" in line and ".keras.keras" not in line


def test_saved_model_folder(tmp_path):
    d = tmp_path / "exported"
    d.mkdir()
    (d / "saved_model.pb").write_bytes(b"\0")
    assert "SavedModel" in expect_error(d, "QF906")


def test_missing_file(tmp_path):
    expect_error(tmp_path / "nope.keras", "QF907")


def test_subclassed_model(tmp_path):
    files = members(TINY)
    files["config.json"] = json.dumps({"class_name": "MyModel", "module": "evil", "config": {}}).encode()
    expect_error(write_zip(tmp_path / "model.keras", files), "QF906")


def test_unknown_target(tmp_path):
    expect_error(TINY, "QF910", "--target", "tpu9000")


def test_bad_format_option():
    expect_error(TINY, "QF914", "--format", "xml")


def test_bad_target_profile(tmp_path):
    prof = tmp_path / "mine.toml"
    prof.write_text("schema = [")
    expect_error(TINY, "QF912", "--target", str(prof))


def test_lambda_fixture_is_reported_not_loaded(tmp_path):
    p = tmp_path / "lambda.keras"
    p.write_bytes((FIXTURES / "lambda_cnn_k3.keras").read_bytes())
    before = digest(p)
    proc = qfix(str(p), "--check", "--format", "json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert any(f["code"] == "QF202" for f in report["findings"])
    assert report["verification"]["converted"] is False
    assert "--trust-lambdas" in report["verification"]["reason"]
    assert digest(p) == before


@pytest.mark.tf
def test_lambda_bytecode_is_never_run(tmp_path):
    """A Lambda whose body writes a file when it runs: neither the check nor the main job
    runs it (the file, removed after saving, never comes back)."""
    import keras

    marker = tmp_path / "ran.txt"
    code = f"lambda t: (open({str(marker)!r}, 'w').close(), t)[1]"
    inp = keras.Input((4,))
    out = keras.layers.Lambda(eval(code))(keras.layers.Dense(2)(inp))
    model_path = tmp_path / "evil.keras"
    keras.Model(inp, out).save(model_path)
    marker.unlink()  # building the model ran the body once, here, in the test
    before = digest(model_path)
    for args in (["--check"], [], ["--diff"]):
        proc = qfix(str(model_path), *args, cwd=tmp_path)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stdout + proc.stderr
    assert not marker.exists()
    assert digest(model_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.keras"]


def test_unknown_layer_class_is_a_finding(tmp_path):
    src = FIXTURES / "custom_layer_k3.keras"
    proc = qfix(str(src), "--check", "--format", "json")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    codes = [f["code"] for f in report["findings"]]
    assert "QF203" in codes and report["verification"]["converted"] is False
    assert "--custom-objects" in report["verification"]["reason"]


@pytest.mark.parametrize("module", ["", "  "])
def test_an_empty_custom_objects_module_is_a_usage_error(module):
    """New-user review: `--custom-objects ""` was accepted silently, as if no flag were given."""
    line = expect_error(FIXTURES / "custom_layer_k3.keras", "QF914", "--custom-objects", module, "--mode", "qat")
    assert "--custom-objects needs a module name" in line


def test_bad_custom_objects_module():
    src = FIXTURES / "custom_layer_k3.keras"
    expect_error(src, "QF911", "--custom-objects", "no_such_module_qfix")
