"""The atomic .keras writer: all or nothing, never over the input unless asked (no TensorFlow)."""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path

import pytest

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
