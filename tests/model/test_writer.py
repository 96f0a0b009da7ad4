"""The atomic .keras writer and the output transaction under it: all or nothing, never over the
input unless asked, modes kept, written through symlinks (no TensorFlow)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from qfix.atomic import Transaction, write_bytes
from qfix.model.archive import read_archive
from qfix.model.writer import write_archive
from qfix.types import QfixError

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


class Exploding(bytes):
    """A weights payload that fails while the zip is being written (after the JSON members)."""

    def __len__(self):
        raise OSError(28, "No space left on device")


def _digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture
def model(tmp_path):
    src = tmp_path / "in" / "tiny.keras"
    src.parent.mkdir()
    shutil.copy(FIXTURES / "tiny_cnn_k3.keras", src)
    return read_archive(src)


def test_round_trip(model, tmp_path):
    out = write_archive(tmp_path / "tiny.qfix.keras", model.config, model.metadata, model.weights_bytes)
    again = read_archive(out)
    assert again.config == model.config and again.metadata == model.metadata
    assert again.weights_bytes == model.weights_bytes
    with zipfile.ZipFile(out) as zf:
        assert zf.namelist() == ["metadata.json", "config.json", "model.weights.h5"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_failure_mid_write_leaves_nothing(model, tmp_path):
    target = tmp_path / "out.keras"
    with pytest.raises(QfixError) as exc:
        write_archive(target, model.config, model.metadata, Exploding(b"x"))
    assert exc.value.code == "QF913"
    assert list(tmp_path.iterdir()) == [model.path.parent]  # no target, no temp file


def test_failure_keeps_existing_target(model, tmp_path):
    target = tmp_path / "out.keras"
    write_archive(target, model.config, model.metadata, model.weights_bytes)
    before = _digest(target)
    with pytest.raises(QfixError):
        write_archive(target, {"changed": True}, model.metadata, Exploding(b"x"))
    assert _digest(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out.keras"]


def test_never_overwrites_the_input(model):
    before = _digest(model.path)
    with pytest.raises(QfixError) as exc:
        write_archive(model.path, {"x": 1}, model.metadata, model.weights_bytes, source=model.path)
    assert exc.value.code == "QF913" and "in-place" in exc.value.message
    assert _digest(model.path) == before
    assert list(model.path.parent.iterdir()) == [model.path]


def test_in_place_when_asked(model):
    cfg = dict(model.config, note="rewritten")
    write_archive(model.path, cfg, model.metadata, model.weights_bytes, source=model.path, in_place=True)
    assert read_archive(model.path).config["note"] == "rewritten"


def test_missing_folder_is_a_clean_error(model, tmp_path):
    with pytest.raises(QfixError) as exc:
        write_archive(tmp_path / "nope" / "out.keras", model.config, model.metadata, model.weights_bytes)
    assert exc.value.code == "QF913"
    assert not (tmp_path / "nope").exists()


# --- the transaction (qfix.atomic): all outputs of a run or none ------------------------------


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_transaction_commits_every_file_together(tmp_path):
    a, b = tmp_path / "a.keras", tmp_path / "b.tflite"
    with Transaction() as tx:
        tx.stage(a, b"AAA")
        tx.stage(b, b"BBB")
        assert not a.exists() and not b.exists()  # staged only: nothing visible yet
        assert len(_hidden(tmp_path)) == 2
        tx.commit()
    assert a.read_bytes() == b"AAA" and b.read_bytes() == b"BBB"
    assert _hidden(tmp_path) == []


def test_leaving_without_commit_removes_what_was_staged(tmp_path):
    (tmp_path / "a.keras").write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):  # what a SIGINT/SIGTERM raises (qfix.cli.Interrupted)
        with Transaction() as tx:
            tx.stage(tmp_path / "a.keras", b"new")
            tx.stage(tmp_path / "b.tflite", b"new")
            raise KeyboardInterrupt
    assert (tmp_path / "a.keras").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.keras"]


def test_failed_rename_restores_what_was_already_replaced(tmp_path):
    """The input (in place) is renamed first, then the second rename fails: the input comes
    back from its hard-link backup, the new file is removed, no temp file is left."""
    model, blocked = tmp_path / "m.keras", tmp_path / "m.tflite"
    model.write_bytes(b"original")
    os.chmod(model, 0o600)
    inode = os.stat(model).st_ino
    with Transaction() as tx:
        tx.stage(model, b"fixed")
        tx.stage(blocked, b"tflite")
        blocked.mkdir()  # appears between the check and the commit
        (blocked / "keep").write_bytes(b"someone's file")
        with pytest.raises(QfixError) as exc:
            tx.commit()
    assert exc.value.code == "QF913" and "m.tflite" in exc.value.message
    assert model.read_bytes() == b"original" and os.stat(model).st_ino == inode
    assert os.stat(model).st_mode & 0o777 == 0o600
    assert (blocked / "keep").read_bytes() == b"someone's file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras", "m.tflite"]


def test_failed_rename_removes_new_files(tmp_path):
    with Transaction() as tx:
        tx.stage(tmp_path / "new.keras", b"x")
        tx.stage(tmp_path / "m.tflite", b"y")
        (tmp_path / "m.tflite").mkdir()
        with pytest.raises(QfixError):
            tx.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tflite"]


def test_modes_existing_kept_new_from_umask(tmp_path):
    old = tmp_path / "old.keras"
    old.write_bytes(b"x")
    os.chmod(old, 0o600)
    mask = os.umask(0o027)
    try:
        write_bytes(old, b"y")
        write_bytes(tmp_path / "new.tflite", b"z")
    finally:
        os.umask(mask)
    assert os.stat(old).st_mode & 0o7777 == 0o600
    assert os.stat(tmp_path / "new.tflite").st_mode & 0o7777 == 0o640


def test_writes_through_a_symlink(tmp_path):
    real = tmp_path / "real" / "m.keras"
    real.parent.mkdir()
    real.write_bytes(b"old")
    os.chmod(real, 0o600)
    link = tmp_path / "m.keras"
    link.symlink_to(real)
    write_bytes(link, b"new")
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_bytes() == b"new" and os.stat(real).st_mode & 0o777 == 0o600
    assert _hidden(tmp_path) == [] and _hidden(real.parent) == []


def test_same_destination_twice_is_refused(tmp_path):
    (tmp_path / "real").write_bytes(b"x")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with Transaction() as tx:
        tx.stage(tmp_path / "real", b"1")
        with pytest.raises(QfixError):
            tx.stage(tmp_path / "link", b"2")
    assert (tmp_path / "real").read_bytes() == b"x" and _hidden(tmp_path) == []


@pytest.fixture
def tiny_disk(tmp_path):
    """A 64 KB tmpfs (root only; skipped where mounting is not permitted)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def test_full_disk_leaves_nothing(tiny_disk):
    (tiny_disk / "m.keras").write_bytes(b"original")
    with Transaction() as tx:
        tx.stage(tiny_disk / "m.keras", b"fixed")
        with pytest.raises(QfixError) as exc:
            tx.stage(tiny_disk / "m.tflite", b"\0" * 200_000)
    assert exc.value.code == "QF913" and "No space left" in exc.value.message
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["m.keras"]
    assert (tiny_disk / "m.keras").read_bytes() == b"original"
