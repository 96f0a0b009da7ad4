"""A run's outputs are one transaction, through the installed console script: a blocked output
path fails before the conversion with one QF913 line and nothing written; a full disk, a
read-only folder, SIGINT or SIGTERM leave no partial output and no temp file (in the output
folder or TMPDIR), the input unchanged; `--in-place` and source `--write` keep modes and write
through symlinks.

The fast cases put a poisoned `tensorflow` / `keras` / `tf_keras` first on PYTHONPATH: they
must fail on the output check, before anything imports TensorFlow.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
QFIX = shutil.which("qfix", path=str(Path(sys.executable).parent)) or "qfix"
TINY = REPO / "fixtures" / "tiny_cnn_k3.keras"  # 36 KB; fixed: ~36 KB .keras + ~4 KB .tflite
SCRIPT = "import tensorflow as tf\nc.inference_input_type = tf.lite.constants.INT8\n"  # --write: tf.int8


def _env(tmp_path: Path, *, poison: bool = False, **extra: str) -> dict[str, str]:
    paths = [str(REPO)]
    if poison:
        bad = tmp_path / "poison"
        for name in ("tensorflow", "keras", "tf_keras"):
            (bad / name).mkdir(parents=True, exist_ok=True)
            (bad / name / "__init__.py").write_text(f"raise ImportError('{name} imported before the output check')\n")
        paths.insert(0, str(bad))
    return dict(os.environ, PYTHONPATH=os.pathsep.join(paths), **extra)


def qfix(*args, tmp_path: Path, poison: bool = False, timeout: float = 300, **env) -> subprocess.CompletedProcess:
    return subprocess.run([QFIX, *map(str, args)], capture_output=True, text=True,
                          env=_env(tmp_path, poison=poison, **env), timeout=timeout)


def digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def one_error_line(proc: subprocess.CompletedProcess, code: str) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith(f"{code} "), proc.stderr
    return lines[0]


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def model(tmp_path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(TINY, work / "m.keras")
    return work / "m.keras"


def _mount(mnt: Path, options: str) -> Path:
    mnt.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    return mnt


@pytest.fixture
def mounts():
    made: list[Path] = []
    yield lambda mnt, options: made.append(_mount(mnt, options)) or mnt
    for mnt in reversed(made):
        subprocess.run(["umount", str(mnt)], check=True)


# --- the output check: before TensorFlow loads ------------------------------------------------


def test_folder_where_the_tflite_goes(model, tmp_path):
    (model.parent / "m.qfix.edgetpu.tflite").mkdir()
    before = digest(model)
    proc = qfix(model, tmp_path=tmp_path, poison=True, timeout=120)
    line = one_error_line(proc, "QF913")
    assert "m.qfix.edgetpu.tflite" in line and "folder" in line
    assert listing(model.parent) == ["m.keras", "m.qfix.edgetpu.tflite"]
    assert digest(model) == before


def test_output_linked_to_the_input_is_refused(model, tmp_path):
    (model.parent / "m.qfix.keras").symlink_to(model)
    proc = qfix(model, tmp_path=tmp_path, poison=True, timeout=120)
    assert "--in-place" in one_error_line(proc, "QF913")
    assert digest(model) == digest(TINY)
    assert listing(model.parent) == ["m.keras", "m.qfix.keras"]


def test_output_path_in_a_link_loop(model, tmp_path):
    (model.parent / "m.qfix.keras").symlink_to("m.qfix.keras")
    proc = qfix(model, tmp_path=tmp_path, poison=True, timeout=120)
    assert "symbolic links" in one_error_line(proc, "QF913")
    assert listing(model.parent) == ["m.keras", "m.qfix.keras"]


def test_read_only_output_folder(model, tmp_path, mounts):
    out = mounts(tmp_path / "ro", "ro,size=1m")
    proc = qfix(model, "--out-dir", out, tmp_path=tmp_path, poison=True, timeout=120)
    assert "not writable" in one_error_line(proc, "QF913")
    assert listing(out) == [] and listing(model.parent) == ["m.keras"]


def test_read_only_out_dir_parent(model, tmp_path, mounts):
    ro = mounts(tmp_path / "ro", "ro,size=1m")
    proc = qfix(model, "--out-dir", ro / "new" / "out", tmp_path=tmp_path, poison=True, timeout=120)
    one_error_line(proc, "QF913")
    assert listing(ro) == []


def test_too_little_free_space(model, tmp_path, mounts):
    out = mounts(tmp_path / "small", "size=16k")  # less than the 36 KB input
    proc = qfix(model, "--out-dir", out, tmp_path=tmp_path, poison=True, timeout=120)
    assert "free" in one_error_line(proc, "QF913")
    assert listing(out) == []


# --- through a conversion ---------------------------------------------------------------------


@pytest.mark.tf
def test_full_disk_while_writing_leaves_nothing(model, tmp_path, mounts):
    """40 KB free passes the check (the input is 36 KB) but cannot hold both outputs: the
    .tflite fails to stage, the staged .keras is removed, the made --out-dir folder too."""
    disk = mounts(tmp_path / "disk", "size=40k")
    proc = qfix(model, "--out-dir", disk / "out", tmp_path=tmp_path)
    assert "No space left" in one_error_line(proc, "QF913")
    assert listing(disk) == []
    assert digest(model) == digest(TINY) and listing(model.parent) == ["m.keras"]


@pytest.mark.tf
def test_in_place_through_a_symlink_keeps_the_link_and_the_mode(model, tmp_path):
    os.chmod(model, 0o600)
    link = tmp_path / "link.keras"
    link.symlink_to(model)
    proc = subprocess.run(["sh", "-c", 'umask 027 && exec "$0" "$@"', QFIX, str(link), "--in-place"],
                          capture_output=True, text=True, env=_env(tmp_path), timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert link.is_symlink() and os.readlink(link) == str(model)
    assert digest(model) != digest(TINY)  # the link's target was rewritten
    assert os.stat(model).st_mode & 0o7777 == 0o600
    tflite = tmp_path / "link.qfix.edgetpu.tflite"
    assert os.stat(tflite).st_mode & 0o7777 == 0o640  # a new file: the umask's mode
    assert listing(tmp_path / "work") == ["m.keras"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.tf
@pytest.mark.parametrize("signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_signal_mid_run_leaves_nothing(model, tmp_path, signum, status):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    err = tmp_path / "stderr"
    with open(err, "w") as stderr:
        # Default SIGINT in the child even when this test runs in the background (`cmd &`).
        proc = subprocess.Popen([QFIX, str(model)], stdout=subprocess.DEVNULL, stderr=stderr,
                                env=_env(tmp_path, TMPDIR=str(tmpdir)), start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            deadline = time.monotonic() + 300
            # The converter's SavedModel folder: conversion has started.
            while not any(tmpdir.rglob("qfix-sm-*")) and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            assert proc.poll() is None, "the run ended before the signal"
            proc.send_signal(signum)
            rc = proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    text = err.read_text()
    assert rc == status, text
    assert text.strip().splitlines()[-1] == "qfix: interrupted" and "Traceback" not in text, text
    assert listing(model.parent) == ["m.keras"] and digest(model) == digest(TINY)
    assert listing(tmpdir) == []


# --- source --write ----------------------------------------------------------------------------


def test_source_write_through_a_symlink_and_keeping_the_mode(tmp_path):
    real = tmp_path / "src" / "train.py"
    real.parent.mkdir()
    real.write_text(SCRIPT)
    os.chmod(real, 0o600)
    link = tmp_path / "train.py"
    link.symlink_to(real)
    proc = qfix(link, "--write", tmp_path=tmp_path, timeout=120)
    assert proc.returncode in (0, 1), proc.stderr
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_text() != SCRIPT
    assert os.stat(real).st_mode & 0o7777 == 0o600
    assert sorted(p.name for p in real.parent.iterdir()) == ["train.py"]


def test_source_write_fails_as_a_whole(tmp_path, mounts):
    """Two files to fix, one on a read-only filesystem: exit 2, one line, both unchanged."""
    ok = tmp_path / "a.py"
    ok.write_text(SCRIPT)
    ro = mounts(tmp_path / "ro", "size=1m")
    (ro / "b.py").write_text(SCRIPT)
    subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
    proc = qfix(ok, ro / "b.py", "--write", tmp_path=tmp_path, timeout=120)
    assert "b.py" in one_error_line(proc, "QF913")
    assert ok.read_text() == SCRIPT and (ro / "b.py").read_text() == SCRIPT
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.py", "ro"]
