"""Calibration loading: name-keyed .npz, .npy, image folders, synthetic data, hostile files."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from qfix.convert.calibration import (
    SYNTHETIC_DYNAMIC_DIM,
    Calibration,
    InputSpec,
    load_calibration,
)
from qfix.types import QfixError

IMG = InputSpec("frame", (None, 8, 8, 3), "uint8")
FEAT = InputSpec("features", (None, 4), "float32")
FLOAT_IMG = InputSpec("image", (1, 8, 8, 3), "float32")


def _code(excinfo) -> str:
    return excinfo.value.code


def test_npz_keyed_by_name_gives_batch1_samples_in_input_dtype(tmp_path):
    p = tmp_path / "cal.npz"
    frames = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 3)).astype(np.uint8)
    feats = np.random.default_rng(1).random((5, 4))  # float64, as `x / 255.0` produces (C3)
    np.savez(p, frame=frames, features=feats)
    cal = load_calibration(p, [IMG, FEAT], n=3)
    assert isinstance(cal, Calibration) and not cal.synthetic
    assert len(cal) == 3
    s = cal.samples[1]
    assert set(s) == {"frame", "features"}
    assert s["frame"].shape == (1, 8, 8, 3) and s["frame"].dtype == np.uint8
    assert s["features"].shape == (1, 4) and s["features"].dtype == np.float32
    np.testing.assert_array_equal(s["frame"][0], frames[1])


def test_npz_wrong_keys_names_missing_and_extra(tmp_path):
    p = tmp_path / "cal.npz"
    np.savez(p, frame=np.zeros((2, 8, 8, 3), np.uint8), feats=np.zeros((2, 4), np.float32))
    with pytest.raises(QfixError) as e:
        load_calibration(p, [IMG, FEAT])
    assert _code(e) == "QF908"
    assert "'features'" in e.value.message and "'feats'" in e.value.message


def test_npy_single_input_and_single_sample_without_batch_axis(tmp_path):
    p = tmp_path / "one.npy"
    np.save(p, np.ones((4,), np.float32))
    cal = load_calibration(p, [FEAT])
    assert len(cal) == 1 and cal.samples[0]["features"].shape == (1, 4)


def test_npy_for_multi_input_model_is_refused(tmp_path):
    p = tmp_path / "x.npy"
    np.save(p, np.zeros((2, 4), np.float32))
    with pytest.raises(QfixError) as e:
        load_calibration(p, [IMG, FEAT])
    assert _code(e) == "QF908" and ".npz" in e.value.message


@pytest.mark.parametrize(
    "array, fragment",
    [
        (np.zeros((2, 8, 8, 4), np.uint8), "expects"),  # wrong channel count
        (np.zeros((2, 64), np.uint8), "rank"),  # wrong rank
        (np.full((2, 8, 8, 3), 0.5, np.float32), "fractional"),  # normalised floats into uint8
        (np.full((2, 8, 8, 3), 300.0, np.float32), "do not fit"),
        (np.full((2, 8, 8, 3), "a"), "dtype"),  # strings
    ],
)
def test_bad_arrays_are_qf908(tmp_path, array, fragment):
    p = tmp_path / "bad.npy"
    np.save(p, array)
    with pytest.raises(QfixError) as e:
        load_calibration(p, [IMG])
    assert _code(e) == "QF908" and fragment in e.value.message


def test_nan_is_refused(tmp_path):
    p = tmp_path / "nan.npy"
    np.save(p, np.full((1, 4), np.nan, np.float32))
    with pytest.raises(QfixError, match="NaN"):
        load_calibration(p, [FEAT])


def test_integral_floats_into_uint8_are_accepted(tmp_path):
    p = tmp_path / "px.npy"
    np.save(p, np.full((2, 8, 8, 3), 200.0))
    cal = load_calibration(p, [IMG])
    assert cal.samples[0]["frame"].dtype == np.uint8 and cal.samples[0]["frame"].max() == 200


def test_missing_path_and_unknown_suffix(tmp_path):
    with pytest.raises(QfixError) as e:
        load_calibration(tmp_path / "nope.npz", [FEAT])
    assert _code(e) == "QF908"
    (tmp_path / "data.csv").write_text("1,2,3,4\n")
    with pytest.raises(QfixError) as e:
        load_calibration(tmp_path / "data.csv", [FEAT])
    assert _code(e) == "QF908"


class _Boom:
    """Unpickling this creates a directory: proof that a loader ran pickle."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_pickle_in_npy_is_refused_without_unpickling(tmp_path):
    marker = tmp_path / "unpickled"
    p = tmp_path / "hostile.npy"
    np.save(p, np.array([_Boom(str(marker))], dtype=object), allow_pickle=True)
    with pytest.raises(QfixError) as e:
        load_calibration(p, [FEAT])
    assert _code(e) == "QF908"
    assert not marker.exists()


def test_pickle_in_npz_is_refused_without_unpickling(tmp_path):
    marker = tmp_path / "unpickled"
    p = tmp_path / "hostile.npz"
    np.savez(p, features=np.array([_Boom(str(marker))], dtype=object))
    with pytest.raises(QfixError) as e:
        load_calibration(p, [FEAT])
    assert _code(e) == "QF908"
    assert not marker.exists()


def test_not_a_zip_npz_is_qf908(tmp_path):
    p = tmp_path / "broken.npz"
    p.write_bytes(b"not a zip at all")
    with pytest.raises(QfixError) as e:
        load_calibration(p, [FEAT])
    assert _code(e) == "QF908"


def test_synthetic_ranges_dtypes_and_determinism():
    ids = InputSpec("ids", (None, 16), "int64")
    ranged = InputSpec("x", (None, 2), "float32", value_range=(10.0, 12.0))
    specs = [IMG, FEAT, ids, ranged]
    cal = load_calibration(None, specs, n=6, seed=3)
    assert cal.synthetic and len(cal) == 6 and "synthetic" in cal.source
    frames = np.concatenate([s["frame"] for s in cal])
    assert frames.dtype == np.uint8 and frames.shape == (6, 8, 8, 3) and frames.max() > 128
    feats = np.concatenate([s["features"] for s in cal])
    assert feats.dtype == np.float32 and -1 <= feats.min() and feats.max() <= 1
    tok = np.concatenate([s["ids"] for s in cal])
    assert tok.dtype == np.int64 and set(np.unique(tok)) <= {0, 1}  # always valid embedding ids
    x = np.concatenate([s["x"] for s in cal])
    assert 10 <= x.min() and x.max() <= 12
    again = load_calibration(None, specs, n=6, seed=3)
    np.testing.assert_array_equal(again.samples[5]["frame"], cal.samples[5]["frame"])


def test_synthetic_16_bit_inputs_span_their_whole_range():
    """int16 audio and uint16 depth frames: 0..255 (the 8-bit image default) calibrated a .tflite
    input that clipped real values (review of issue 9: max abs error 438.9 of 586 on int16
    values in -3000..3000)."""
    specs = [InputSpec("audio", (None, 64), "int16"), InputSpec("depth", (None, 8, 8, 1), "uint16")]
    cal = load_calibration(None, specs, n=8, seed=0)
    audio = np.concatenate([s["audio"] for s in cal])
    depth = np.concatenate([s["depth"] for s in cal])
    assert audio.dtype == np.int16 and audio.min() < -16000 and audio.max() > 16000
    assert depth.dtype == np.uint16 and depth.max() > 32768


def test_synthetic_dynamic_dims_use_224():
    spec = InputSpec("img", (None, None, None, 3), "float32")
    cal = load_calibration(None, [spec], n=1)
    assert cal.samples[0]["img"].shape == (1, SYNTHETIC_DYNAMIC_DIM, SYNTHETIC_DYNAMIC_DIM, 3)


def test_synthetic_samples_of_a_masked_input_end_in_padding():
    """Review of issue 9: synthetic samples never held a Masking's mask_value, so the verification
    never compared what the model does with padded steps. Every second sample now ends in 1 to
    T-1 whole time steps of it; the others, and inputs no Masking reads, hold none."""
    seq = InputSpec("seq", (None, 5, 3), "float32", mask_value=-1.0)
    cal = load_calibration(None, [seq, FEAT], n=10)
    padded = []
    for i, s in enumerate(cal.samples):
        steps = (s["seq"][0] == -1.0).all(axis=-1)
        if i % 2 == 0:
            assert not steps.any() and not (s["seq"] == -1.0).any()
        else:
            first = int(np.argmax(steps))
            assert steps[first:].all() and not steps[:first].any() and 1 <= first <= 4
            padded.append(5 - first)
        assert not (s["features"] == -1.0).any()
    assert padded == [1, 2, 3, 4, 1]
    assert "every 2nd sample padded with -1 at its end" in cal.source
    one_step = load_calibration(None, [InputSpec("seq", (None, 1, 3), "float32", mask_value=0.0)], n=4)
    assert not any((s["seq"] == 0.0).all() for s in one_step.samples)  # a lone step stays data
    assert "padded" not in one_step.source
    assert "padded" not in load_calibration(None, [seq], n=1).source  # one sample: not padded, not said


def _png(path, rgb: np.ndarray) -> None:
    """A minimal RGB PNG writer (numpy + zlib), so the test needs no imaging library."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


@pytest.mark.tf
def test_image_folder_is_decoded_resized_and_cast(tmp_path):
    for i, value in enumerate((0, 128, 255)):
        sub = tmp_path / f"class{i}"
        sub.mkdir()
        _png(sub / f"img{i}.png", np.full((12, 10, 3), value, np.uint8))
    cal = load_calibration(tmp_path, [IMG], n=8)
    assert len(cal) == 3 and not cal.synthetic
    arr = np.concatenate([s["frame"] for s in cal])
    assert arr.dtype == np.uint8 and arr.shape == (3, 8, 8, 3)
    assert sorted(int(a.mean()) for a in arr) == [0, 128, 255]
    # a float input with a declared range gets pixels mapped onto it
    ranged = InputSpec("frame", (1, 8, 8, 3), "float32", value_range=(-1.0, 1.0))
    f = np.concatenate([s["frame"] for s in load_calibration(tmp_path, [ranged])])
    assert f.dtype == np.float32 and f.min() == pytest.approx(-1) and f.max() == pytest.approx(1)


def test_empty_image_folder_is_qf908(tmp_path):
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(QfixError) as e:
        load_calibration(tmp_path, [IMG])
    assert _code(e) == "QF908" and "no jpg/png/bmp/gif images" in e.value.message


def test_a_file_that_is_not_an_image_is_named_before_tensorflow_loads(tmp_path):
    """In a fresh interpreter: the QF908 names the file and TensorFlow was never imported."""
    _png(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "b.jpg").write_text("<html>a saved web page, not a jpeg</html>")
    code = (
        "import sys\n"
        "from qfix.convert.calibration import InputSpec, load_calibration\n"
        "from qfix.types import QfixError\n"
        "try:\n"
        f"    load_calibration({str(tmp_path)!r}, [InputSpec('frame', (None, 8, 8, 3), 'uint8')])\n"
        "except QfixError as e:\n"
        "    print(e.code, e.message)\n"
        "print('tensorflow' in sys.modules)\n"
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert proc.stdout.splitlines() == [f"QF908 {tmp_path / 'b.jpg'}: not a JPEG, PNG, GIF or BMP image", "False"], \
        proc.stdout + proc.stderr


@pytest.mark.tf
def test_a_truncated_image_is_named(tmp_path):
    _png(tmp_path / "a.png", np.zeros((12, 10, 3), np.uint8))
    _png(tmp_path / "b.png", np.full((12, 10, 3), 9, np.uint8))
    (tmp_path / "b.png").write_bytes((tmp_path / "b.png").read_bytes()[:40])
    with pytest.raises(QfixError) as e:
        load_calibration(tmp_path, [IMG])
    assert _code(e) == "QF908"
    assert e.value.message.startswith(f"{tmp_path / 'b.png'}: cannot decode image, truncated or corrupt (")
    assert "{{" not in e.value.message and "[Op:" not in e.value.message


def test_image_folder_needs_single_image_input(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(QfixError) as e:
        load_calibration(tmp_path, [IMG, FEAT])
    assert _code(e) == "QF908"


def test_module_function_source(tmp_path, monkeypatch):
    (tmp_path / "qfix_caldata.py").write_text(
        "import numpy as np\n"
        "def arrays():\n"
        "    return {'features': np.ones((3, 4)), 'frame': np.zeros((3, 8, 8, 3), np.uint8)}\n"
        "def samples():\n"
        "    for i in range(100):\n"
        "        yield {'features': np.full((4,), i), 'frame': np.zeros((1, 8, 8, 3), np.uint8)}\n"
        "def positional():\n"
        "    yield [np.ones((4,)), np.zeros((8, 8, 3))]\n"
        "def broken():\n"
        "    raise RuntimeError('no data today')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert len(load_calibration("qfix_caldata:arrays", [IMG, FEAT])) == 3
    cal = load_calibration("qfix_caldata:samples", [IMG, FEAT], n=5)  # draws only 5 of 100
    assert len(cal) == 5 and cal.samples[4]["features"].tolist() == [[4.0] * 4]
    for bad in ("qfix_caldata:positional", "qfix_caldata:broken", "qfix_nomodule:f"):
        with pytest.raises(QfixError) as e:
            load_calibration(bad, [IMG, FEAT])
        assert e.value.code == "QF908"
