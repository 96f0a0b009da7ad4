"""QF106 end to end (issue 9, kind 1: a failure inside TensorFlow that named no layer). Keras 3
saves `Input(dtype="uint8") → Conv2D`, but TensorFlow's conv kernels take float only: the check
and the main job ended with a bare QF909 "DataType uint8 not in list of allowed values". Now
the check names the layer and says the model does not convert; the main job makes the input
float32 (the TFLite input stays uint8) and the fixed model converts, fully on the Edge TPU. Other
members: through a max pooling (which Keras 3 records as float32 but TensorFlow keeps uint8),
and into a sigmoid; and (further down) through merges of integer tensors only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from fixtures.build import save_with

pytestmark = pytest.mark.tf


def conv(K):
    i = K.Input((8, 8, 3), dtype="uint8", name="frame")
    return K.Model(i, K.layers.Conv2D(4, 3, name="conv")(i))


def pooled(K):
    i = K.Input((8, 8, 3), dtype="uint8", name="frame")
    x = K.layers.MaxPooling2D(name="pool")(i)
    return K.Model(i, K.layers.Conv2D(4, 1, name="conv")(x))


def sigmoid(K):
    i = K.Input((8,), dtype="uint8", name="frame")
    x = K.layers.Activation("sigmoid", name="act")(i)
    return K.Model(i, K.layers.Dense(2, name="head")(x))


def qfix(*args: str) -> tuple[int, dict]:
    proc = subprocess.run([sys.executable, "-m", "qfix", *args, "--samples", "4", "--format", "json"],
                          capture_output=True, text=True, timeout=600)
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


@pytest.mark.parametrize(("build", "layer"), [(conv, "conv"), (pooled, "conv"), (sigmoid, "act")])
def test_check_names_the_layer_and_the_main_job_makes_it_convert(tmp_path, build, layer):
    path = save_with("k3", build, tmp_path / f"{build.__name__}.keras")
    code, report = qfix(str(path), "--check", "--target", "edgetpu")
    assert code == 1
    found = [f for f in report["findings"] if f["code"] == "QF106"]
    assert [f["location"]["layer"] for f in found] == [layer] and found[0]["severity"] == "blocker"
    assert report["verification"] is None or not report["verification"]["converted"]

    code, report = qfix(str(path), "--target", "edgetpu")
    assert code == 0
    assert [(f["code"], f["state"]) for f in report["fixes"] if f["code"] == "QF106"] == [("QF106", "kept")]
    assert "DataType uint8" in report["before_failure"]
    assert report["float_reference_failure"]  # the original does not run in TensorFlow at all
    ver = report["verification"]
    assert ver["fully_on_target"] and ver["fidelity"]["sqnr_db"] > 10
    assert not any(f["code"] == "QF106" and not f.get("applied") for f in report["findings"])
    with zipfile.ZipFile(report["outputs"]["model"]) as z:
        frame = next(l for l in json.loads(z.read("config.json"))["config"]["layers"] if l["name"] == "frame")
    assert frame["config"]["dtype"] == "float32"
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=report["outputs"]["tflite"])
    assert interp.get_input_details()[0]["dtype"] == np.uint8  # the device still takes the raw frame


def test_fixed_model_computes_the_original_layer_on_the_same_values(tmp_path):
    """The original cannot run in TensorFlow; its Conv2D called on a float32 copy of the uint8
    frame is what it means, and the fixed model gives exactly that."""
    import keras

    path = save_with("k3", conv, tmp_path / "conv.keras")
    code, report = qfix(str(path), "--target", "int8")
    assert code == 0
    original, fixed = keras.saving.load_model(path), keras.saving.load_model(report["outputs"]["model"])
    x = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3)).astype("uint8")
    want = np.asarray(original.get_layer("conv")(x.astype("float32")))
    np.testing.assert_array_equal(np.asarray(fixed(x.astype("float32"))), want)


# --- merges of integer tensors (issue: QF106 did not follow them) ----------------------------
# Keras 3 records every merge's output as float32, but TensorFlow's Concatenate, Maximum,
# Minimum, Add, Subtract and Multiply of two uint8 tensors give uint8: the Conv2D after them
# failed in the converter with a bare QF909 (exit 2) and no finding. Concatenate, Maximum and
# Minimum hand on their inputs' values (the fold is safe); Add wraps modulo 256 in uint8, so
# its fold is unsafe (applied with --unsafe-fixes only; without it the finding is the verdict).


def _pair(K):
    return (K.Input((8, 8, 3), dtype="uint8", name="a"), K.Input((8, 8, 3), dtype="uint8", name="b"))


def concatenated(K):
    a, b = _pair(K)
    return K.Model([a, b], K.layers.Conv2D(2, 1, name="conv")(K.layers.Concatenate(name="merge")([a, b])))


def maximum_pooled(K):
    a, b = _pair(K)
    x = K.layers.MaxPooling2D(name="pool")(K.layers.Maximum(name="merge")([a, b]))
    return K.Model([a, b], K.layers.Conv2D(2, 1, name="conv")(x))


def concatenated_sigmoid(K):
    a, b = K.Input((8,), dtype="uint8", name="a"), K.Input((8,), dtype="uint8", name="b")
    x = K.layers.Activation("sigmoid", name="act")(K.layers.Concatenate(name="merge")([a, b]))
    return K.Model([a, b], K.layers.Dense(2, name="head")(x))


def added(K):
    a, b = _pair(K)
    return K.Model([a, b], K.layers.Conv2D(2, 1, name="conv")(K.layers.Add(name="merge")([a, b])))


def conv1d(K):
    i = K.Input((8, 3), dtype="uint8", name="frame")
    return K.Model(i, K.layers.Conv1D(2, 1, name="conv")(i))


@pytest.fixture(scope="module")
def merged(tmp_path_factory):
    """name -> (path, exit code, report) of the main job on each model, run once per module."""
    folder = tmp_path_factory.mktemp("merged")
    runs: dict[str, tuple] = {}

    def get(build, *extra: str):
        key = build.__name__ + "".join(extra)
        if key not in runs:
            path = folder / f"{build.__name__}.keras"
            if not path.exists():
                save_with("k3", build, path)
            out = folder / key
            runs[key] = (path, *qfix(str(path), "--target", "edgetpu", "--out-dir", str(out), *extra))
        return runs[key]

    return get


def static_findings(path) -> list[tuple[str, str]]:
    proc = subprocess.run([sys.executable, "-m", "qfix", str(path), "--static", "--target", "edgetpu",
                           "--format", "json"], capture_output=True, text=True, timeout=300)
    return [(f["code"], f["location"]["layer"]) for f in json.loads(proc.stdout)["findings"]]


def inputs_of(saved) -> dict[str, str]:
    with zipfile.ZipFile(saved) as z:
        layers = json.loads(z.read("config.json"))["config"]["layers"]
    return {l["name"]: l["config"]["dtype"] for l in layers if l["class_name"] == "InputLayer"}


@pytest.mark.parametrize(("build", "layer"), [(concatenated, "conv"), (maximum_pooled, "conv"),
                                               (concatenated_sigmoid, "act"), (conv1d, "conv")])
def test_integer_merges_are_followed_and_the_fold_makes_the_model_convert(merged, build, layer):
    path, code, report = merged(build)
    assert ("QF106", layer) in static_findings(path)  # --static names the layer now
    # before: the converter refused the model (QF909, exit 2); after: fully on the Edge TPU
    assert code == 0
    assert "DataType uint8" in report["before_failure"]
    found = [f for f in report["findings"] if f["code"] == "QF106"]
    assert [(f["location"]["layer"], f["applied"]) for f in found] == [(layer, True)]
    assert [(f["code"], f["state"]) for f in report["fixes"] if f["code"] == "QF106"] == [("QF106", "kept")]
    ver = report["verification"]
    assert ver["fully_on_target"] and ver["ops_on_target"] >= ver["ops_total"] - 1
    assert set(inputs_of(report["outputs"]["model"]).values()) == {"float32"}
    assert not any(c == "QF106" for c, _ in static_findings(report["outputs"]["model"]))
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=report["outputs"]["tflite"])
    assert {d["dtype"] for d in interp.get_input_details()} == {np.uint8}  # the raw frames still


def _reference(original, build, a, b):
    """What the original means: its layers after the merge called on the merge of float32 copies
    of the uint8 inputs (the original itself does not run in TensorFlow)."""
    import keras

    merge = {"concatenated": keras.layers.Concatenate(), "maximum_pooled": keras.layers.Maximum(),
             "added": keras.layers.Add()}[build.__name__]
    x = merge([a.astype("float32"), b.astype("float32")])
    if build.__name__ == "maximum_pooled":
        x = original.get_layer("pool")(x)
    return np.asarray(original.get_layer("conv")(x))


@pytest.mark.parametrize("build", [concatenated, maximum_pooled])
def test_the_fixed_merge_computes_the_original_on_the_same_values(merged, build):
    import keras

    path, code, report = merged(build)
    original, fixed = keras.saving.load_model(path), keras.saving.load_model(report["outputs"]["model"])
    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 256, (4, 8, 8, 3)).astype("uint8") for _ in range(2))
    got = np.asarray(fixed([a.astype("float32"), b.astype("float32")]))
    assert np.max(np.abs(got - _reference(original, build, a, b))) == 0


def test_an_integer_add_is_unsafe_to_fold_the_verdict_names_it_and_unsafe_fixes_convert(merged):
    import keras

    path, code, report = merged(added)
    assert ("QF106", "conv") in static_findings(path)
    # without --unsafe-fixes: the finding (unsafe fix, not applied) is the verdict, exit 1, not QF909
    assert code == 1
    found = [f for f in report["findings"] if f["code"] == "QF106"]
    assert [(f["location"]["layer"], f["applied"]) for f in found] == [("conv", False)]
    assert "'merge'" in found[0]["fix"]["description"] and found[0]["fix"]["applicability"] == "unsafe"
    assert not report["verification"]["converted"] and report["outputs"]["model"] is None

    _, code, report = merged(added, "--unsafe-fixes")
    assert code == 0 and report["verification"]["fully_on_target"]
    assert [(f["code"], f["state"]) for f in report["fixes"] if f["code"] == "QF106"] == [("QF106", "kept")]
    assert set(inputs_of(report["outputs"]["model"]).values()) == {"float32"}
    original, fixed = keras.saving.load_model(path), keras.saving.load_model(report["outputs"]["model"])
    rng = np.random.default_rng(0)
    small = [rng.integers(0, 128, (4, 8, 8, 3)).astype("uint8") for _ in range(2)]  # no uint8 overflow
    got = np.asarray(fixed([x.astype("float32") for x in small]))
    assert np.max(np.abs(got - _reference(original, added, *small))) == 0
    # where the uint8 sum overflows, TensorFlow's uint8 Add wraps (200 + 100 = 44): why it is unsafe
    big = [np.full((1, 8, 8, 3), 200, "uint8"), np.full((1, 8, 8, 3), 100, "uint8")]
    wrapped = np.asarray(original.get_layer("conv")((big[0] + big[1]).astype("float32")))
    assert np.max(np.abs(np.asarray(fixed([x.astype("float32") for x in big])) - wrapped)) > 0


# --- merges of integer tensors that do not convert on their own (QF107) ----------------------
# Keras 3 saves two uint8 inputs → Add → Dense (which casts to float itself), but the TFLite
# converter has no builtin for a uint8 Add ("'tf.BiasAdd' op is neither a custom op nor a flex
# op"): the check and the main job ended in a bare QF909 (exit 2) naming no layer. Measured with
# Keras 3 and TF 2.x: Add, Subtract, Multiply, Average, Maximum, Minimum of uint8 or int8
# tensors fail, and Add and Average of int32; Concatenate and Dot convert in every integer dtype,
# int32 Subtract/Multiply/Maximum/Minimum too. Unlike a Conv2D on uint8, these models run in
# TensorFlow: the original itself is the reference the fixed model is compared with.


def _vectors(K, dtype="uint8"):
    return K.Input((4,), dtype=dtype, name="a"), K.Input((4,), dtype=dtype, name="b")


def added_dense(K):
    a, b = _vectors(K)
    return K.Model([a, b], K.layers.Dense(2, name="head")(K.layers.Add(name="merge")([a, b])))


def averaged(K):
    a, b = _vectors(K)
    return K.Model([a, b], K.layers.Average(name="merge")([a, b]))


def maximum_dense(K):
    a, b = _vectors(K, "int8")
    return K.Model([a, b], K.layers.Dense(2, name="head")(K.layers.Maximum(name="merge")([a, b])))


def added_int32(K):
    a, b = _vectors(K, "int32")
    return K.Model([a, b], K.layers.Dense(2, name="head")(K.layers.Add(name="merge")([a, b])))


def subtracted_int32(K):
    a, b = _vectors(K, "int32")
    return K.Model([a, b], K.layers.Dense(2, name="head")(K.layers.Subtract(name="merge")([a, b])))


def check_json(path, *mode: str) -> tuple[int, dict]:
    proc = subprocess.run([sys.executable, "-m", "qfix", str(path), *mode, "--target", "edgetpu", "--format", "json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def qf107(report) -> list[tuple[str, str, bool]]:
    return [(f["location"]["layer"], f["fix"]["applicability"], bool(f.get("applied")))
            for f in report["findings"] if f["code"] == "QF107"]


def _same_on(original, fixed, a, b) -> float:
    want = np.asarray(original([a, b]), dtype="float64")
    got = np.asarray(fixed([a.astype("float32"), b.astype("float32")]), dtype="float64")
    return float(np.max(np.abs(got - want)))


@pytest.mark.parametrize(("build", "dtype"), [(added_dense, "uint8"), (averaged, "uint8")])
def test_a_wrapping_integer_merge_is_named_the_verdict_without_unsafe_fixes_converts_with(merged, build, dtype):
    import keras

    path, code, report = merged(build)
    # --static, --check and the main job agree: QF107 on the merge, unsafe, the model does not convert
    _, static = check_json(path, "--static")
    assert qf107(static) == [("merge", "unsafe", False)]
    code_check, check = check_json(path, "--check")
    assert code_check == 1 and qf107(check) == [("merge", "unsafe", False)]
    assert check["verification"] is None or not check["verification"]["converted"]
    # before: QF909 (exit 2); now: the finding is the verdict, exit 1, nothing written
    assert code == 1 and qf107(report) == [("merge", "unsafe", False)]
    assert "'merge'" in next(f for f in report["findings"] if f["code"] == "QF107")["fix"]["description"]
    assert not report["verification"]["converted"] and report["outputs"]["model"] is None

    _, code, report = merged(build, "--unsafe-fixes")
    assert code == 0 and report["verification"]["fully_on_target"]
    assert "neither a custom op nor a flex op" in report["before_failure"]
    assert [(f["code"], f["state"]) for f in report["fixes"] if f["code"] == "QF107"] == [("QF107", "kept")]
    assert set(inputs_of(report["outputs"]["model"]).values()) == {"float32"}
    assert not any(c == "QF107" for c, _ in static_findings(report["outputs"]["model"]))
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=report["outputs"]["tflite"])
    assert {d["dtype"] for d in interp.get_input_details()} == {np.uint8}
    # the original runs in TensorFlow: where the uint8 sum does not overflow, exactly the same
    original, fixed = keras.saving.load_model(path), keras.saving.load_model(report["outputs"]["model"])
    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 128, (4, 4)).astype(dtype) for _ in range(2))
    assert _same_on(original, fixed, a, b) == 0
    # where it overflows, TensorFlow's uint8 addition wraps (an Average too, before it divides)
    big = np.full((1, 4), 200, dtype), np.full((1, 4), 100, dtype)
    assert _same_on(original, fixed, *big) > 0
    if build is averaged:
        assert np.asarray(original(list(big))).ravel()[0] == 22.0  # (200 + 100) mod 256 / 2
        assert np.asarray(fixed([x.astype("float32") for x in big])).ravel()[0] == 150.0


def test_an_int8_maximum_converts_with_the_safe_fold_and_computes_the_same(merged):
    import keras

    path, code, report = merged(maximum_dense)
    assert qf107(check_json(path, "--static")[1]) == [("merge", "safe", False)]
    # before: QF909 'tf.Maximum' (exit 2); after: the safe fold, fully on the Edge TPU
    assert code == 0 and "'tf.Maximum'" in report["before_failure"]
    assert qf107(report) == [("merge", "safe", True)]
    ver = report["verification"]
    assert ver["fully_on_target"] and ver["ops_on_target"] >= ver["ops_total"] - 1
    original, fixed = keras.saving.load_model(path), keras.saving.load_model(report["outputs"]["model"])
    rng = np.random.default_rng(0)
    a, b = (rng.integers(-128, 128, (4, 4)).astype("int8") for _ in range(2))
    assert _same_on(original, fixed, a, b) == 0  # every int8 value: Maximum picks, it does not wrap


def test_int32_add_is_named_and_converts_with_casts_int32_subtract_is_not_named(merged):
    path, code, report = merged(added_int32, "--unsafe-fixes")
    assert [(l, a) for l, a, _ in qf107(report)] == [("merge", "unsafe")]
    # before: QF909 'tf.BiasAdd'; after: converted (int32 inputs keep it off the Edge TPU: other findings)
    assert "neither a custom op nor a flex op" in report["before_failure"]
    assert report["verification"]["converted"] and code == 1
    assert [(f["code"], f["state"]) for f in report["fixes"] if f["code"] == "QF107"] == [("QF107", "kept")]

    path, code, report = merged(subtracted_int32)
    assert qf107(report) == [] and report["verification"]["converted"]  # int32 SUB is a TFLite builtin


# 16-bit members of the kind (int16 audio, uint16 depth frames): Add, Subtract, Maximum and
# Minimum of int16 and every merge of uint16 but Dot fail in the converter as the 8-bit ones do
# (measured, TF 2.21); were a bare QF909, exit 2.


def added_int16(K):
    a, b = _vectors(K, "int16")
    return K.Model([a, b], K.layers.Dense(2, name="head")(K.layers.Add(name="merge")([a, b])))


def maximum_int16(K):
    a, b = _vectors(K, "int16")
    return K.Model([a, b], K.layers.Dense(2, name="head")(K.layers.Maximum(name="merge")([a, b])))


def concatenated_uint16(K):
    a, b = _vectors(K, "uint16")
    return K.Model([a, b], K.layers.Dense(2, name="head")(K.layers.Concatenate(name="merge")([a, b])))


@pytest.mark.parametrize(("build", "dtype", "applicability", "failure"), [
    (added_int16, "int16", "unsafe", "'tf.BiasAdd'"),
    (maximum_int16, "int16", "safe", "'tf.Maximum'"),
    (concatenated_uint16, "uint16", "safe", "'tf.ConcatV2'"),
])
def test_16_bit_merges_are_named_and_convert_once_folded(merged, build, dtype, applicability, failure):
    import keras

    path, _, _ = merged(build)
    code, check = check_json(path, "--check")
    assert code == 1 and qf107(check) == [("merge", applicability, False)], check["findings"]
    path, code, report = merged(build, "--unsafe-fixes")
    assert failure in report["before_failure"]
    assert qf107(report) == [("merge", applicability, True)]
    assert report["verification"]["converted"] and report["verification"]["fully_on_target"], report["verification"]
    assert code == 0
    original, fixed = keras.saving.load_model(path), keras.saving.load_model(report["outputs"]["model"])
    rng = np.random.default_rng(0)
    low = 0 if dtype == "uint16" else -2**14  # no int16 sum overflows
    a, b = (rng.integers(low, 2**14, (4, 4)).astype(dtype) for _ in range(2))
    assert _same_on(original, fixed, a, b) == 0


@pytest.mark.parametrize("check", [False, True])
def test_a_model_that_converts_only_with_an_unsafe_fix_ends_with_the_hint(merged, tmp_path, check):
    """The text report of a run that did not convert ended at the "not converted" line, without
    the hint the README promises for findings whose only fix is unsafe (the JSON listed QF107 in
    unsafe_fixes_available)."""
    path, _, _ = merged(added_dense)
    mode = ["--check"] if check else ["--out-dir", str(tmp_path)]
    proc = subprocess.run([sys.executable, "-m", "qfix", str(path), *mode, "--target", "edgetpu"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "400"})
    assert proc.returncode == 1, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert "not converted" in lines[-2] and lines[-1].startswith("hint: QF107"), lines[-3:]
    assert "--unsafe-fixes" in lines[-1]
