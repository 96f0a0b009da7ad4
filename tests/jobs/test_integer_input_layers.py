"""An integer model input (uint8 images, int8, int16 audio) read by a float layer, the whole kind
(user review: only convolutions, a few activations, Dense, Rescaling and the normalizations
were known). Measured with Keras 3.15 / TF 2.21, each layer alone on a uint8, int8, int16 and
int32 input, qfix's Edge TPU recipe:

- the conversion fails, the model does not run ('DataType uint8 not in list of allowed values'):
  AveragePooling1D/2D/3D, ELU, Keras 3's UnitNormalization → QF106 (were a bare QF909, exit 2);
- the layer casts the integers itself and the converted model begins with a CAST the Edge TPU
  does not run: GlobalAveragePooling1D/2D/3D, Normalization, LeakyReLU, CenterCrop,
  Activation tanh / leaky_relu; tf_keras's UnitNormalization → QF102 (were exit 1 with only
  QF304/QF405, Normalization's CAST charged to no layer). (GroupNormalization casts too, but
  back to uint8 at its end: not a cast the fold keeps, left out.)

Each member on its smallest model: the finding names the layer with the safe fold, the main job
ends fully on the Edge TPU, and the fixed model computes what the original computes on the same
integer values (fed as float32)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from fixtures.build import save_with

pytestmark = pytest.mark.tf

RANGES = {"uint8": (0, 256), "int8": (-128, 128), "int16": (-2**15, 2**15)}

# name: (dialect, code, input shape, dtype, the layer under test, flatten before the head). The
# main job's end state is fully on the Edge TPU (exit 0) but for the members in BLOCKED, whose
# fixed model converts with blockers of its own left (the layer's op has no Edge TPU or int8
# kernel), and AveragePooling3D, which TFLite has no builtin for even in float.
MEMBERS = {
    # the first model: uint8 → AveragePooling2D → Flatten → Dense
    "average_pooling2d": ("k3", "QF106", (16, 16, 3), "uint8", lambda L: L.AveragePooling2D(2, name="layer"), True),
    "average_pooling1d": ("k3", "QF106", (8, 3), "int16", lambda L: L.AveragePooling1D(2, name="layer"), True),
    "average_pooling3d": ("k3", "QF106", (4, 4, 4, 3), "int8",
                          lambda L: L.AveragePooling3D(2, name="layer"), True),
    "elu": ("k3", "QF106", (8,), "int8", lambda L: L.ELU(name="layer"), False),
    "unit_normalization": ("k3", "QF106", (8,), "int16", lambda L: L.UnitNormalization(name="layer"), False),
    # the second and third models
    "global_average_pooling2d": ("k3", "QF102", (8, 8, 3), "uint8",
                                 lambda L: L.GlobalAveragePooling2D(name="layer"), False),
    "normalization": ("k3", "QF102", (8,), "uint8",
                      lambda L: L.Normalization(mean=100.0, variance=400.0, name="layer"), False),
    "global_average_pooling1d": ("k3", "QF102", (8, 3), "int16",
                                 lambda L: L.GlobalAveragePooling1D(name="layer"), False),
    "global_average_pooling3d": ("k3", "QF102", (4, 4, 4, 3), "int8",
                                 lambda L: L.GlobalAveragePooling3D(name="layer"), False),
    "leaky_relu": ("k3", "QF102", (8,), "int8", lambda L: L.LeakyReLU(name="layer"), False),
    "activation_leaky_relu": ("k3", "QF102", (8,), "int16", lambda L: L.Activation("leaky_relu", name="layer"),
                              False),
    "activation_tanh": ("k3", "QF102", (8,), "int8", lambda L: L.Activation("tanh", name="layer"), False),
    "center_crop": ("k3", "QF102", (8, 8, 3), "uint8", lambda L: L.CenterCrop(4, 4, name="layer"), True),
    "normalization_tfk": ("tfk", "QF102", (8,), "int16",
                          lambda L: L.Normalization(mean=100.0, variance=400.0, name="layer"), False),
    "unit_normalization_tfk": ("tfk", "QF102", (8,), "uint8", lambda L: L.UnitNormalization(name="layer"), False),
}


# after the fold: (exit code, what remains). ELU: QF302; UnitNormalization: a float SQUARE;
# GlobalAveragePooling3D: a 5-D MEAN the Edge TPU does not run
BLOCKED = {"elu", "unit_normalization", "global_average_pooling3d"}
# LeakyReLU's LEAKY_RELU is not an Edge TPU op either: QF302's rewrite to a PReLU joins in, and the
# verification may judge QF102's fold of no effect next to it (the model ends fully on target)
SHARED = {"leaky_relu", "activation_leaky_relu"}


def builder(name):
    _, _, shape, dtype, make, flatten = MEMBERS[name]

    def build(K):
        i = K.Input(shape, dtype=dtype, name="frame")
        x = make(K.layers)(i)
        if flatten:
            x = K.layers.Flatten(name="flat")(x)
        return K.Model(i, K.layers.Dense(2, name="head")(x))

    build.__name__ = name
    return build


def qfix(*args: str) -> tuple[int, dict]:
    proc = subprocess.run([sys.executable, "-m", "qfix", *args, "--format", "json"],
                          capture_output=True, text=True, timeout=600)
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def load(path, dialect):
    if dialect == "k3":
        import keras

        return keras.saving.load_model(path)
    import tf_keras

    return tf_keras.models.load_model(path)


def reference(original, x):
    """What the original computes on the integer values: the model itself where it runs (the
    layer casts), else (QF106: it does not run in TensorFlow) its layers, in order, on a float32
    copy of the same values."""
    try:
        return np.asarray(original(x), dtype="float64")
    except Exception:
        y = x.astype("float32")
        for layer in original.layers[1:]:
            y = layer(y)
        return np.asarray(y, dtype="float64")


@pytest.mark.parametrize("name", [n for n in MEMBERS if n != "average_pooling3d"])
def test_the_layer_is_named_folded_and_the_fixed_model_computes_the_same(tmp_path, name):
    dialect, code_, shape, dtype, _, _ = MEMBERS[name]
    path = save_with(dialect, builder(name), tmp_path / f"{name}.keras")
    code, report = qfix(str(path), "--target", "edgetpu", "--samples", "4", "--out-dir", str(tmp_path / "out"))
    found = [f for f in report["findings"] if f["code"] == code_]
    assert [(f["location"]["layer"], f["fix"]["applicability"], bool(f.get("applied"))) for f in found] == [
        ("layer", "safe", True)], report["findings"]
    assert not [f for f in report["findings"] if f["code"] in ("QF102", "QF106") and not f.get("applied")]
    states = [s["state"] for s in report["fixes"] if s["code"] == code_]
    assert states == (["no effect"] if name in SHARED and states == ["no effect"] else ["kept"])
    if code_ == "QF106":  # before: the converter refused the model (a bare QF909, exit 2)
        assert "not in list of allowed values" in report["before_failure"]  # DataType {dtype} (int32 once squared)
    else:  # before: a CAST first, charged to the layer that casts (Normalization's too)
        assert report["before"]["first_unsupported"]["op"] == "CAST"
        assert report["before"]["first_unsupported"]["layer"] == "layer"
    ver = report["verification"]
    assert ver["converted"] and "CAST" not in [o["op"] for o in ver["ops"]]
    if name in BLOCKED:
        assert code == 1 and not ver["fully_on_target"], ver
    else:
        assert code == 0 and ver["fully_on_target"], ver

    original, fixed = load(path, dialect), load(report["outputs"]["model"], dialect)
    with zipfile.ZipFile(report["outputs"]["model"]) as z:
        layers = json.loads(z.read("config.json"))["config"]["layers"]
    assert [l["config"]["dtype"] for l in layers if l["class_name"] == "InputLayer"] == ["float32"]
    lo, hi = RANGES[dtype]
    x = np.random.default_rng(0).integers(lo, hi, (4, *shape)).astype(dtype)
    x[0] = lo  # the ends of the integer range
    x[1] = hi - 1
    got = np.asarray(fixed(x.astype("float32")), dtype="float64")
    assert np.max(np.abs(got - reference(original, x))) <= 1e-5


def test_average_pooling3d_is_named_and_the_fold_leaves_tflite_without_avgpool3d(tmp_path):
    """AveragePooling3D on int8 is QF106's like the 1-D and 2-D poolings, and the fold is the same;
    but TFLite has no builtin for AvgPool3D even in float: after the fold the conversion fails on
    that op (exit 2), no longer on the integer DataType."""
    path = save_with("k3", builder("average_pooling3d"), tmp_path / "pool3d.keras")
    code, report = qfix(str(path), "--static", "--target", "edgetpu")
    assert [(f["location"]["layer"], f["fix"]["applicability"]) for f in report["findings"]
            if f["code"] == "QF106"] == [("layer", "safe")]
    proc = subprocess.run([sys.executable, "-m", "qfix", str(path), "--target", "edgetpu", "--samples", "4",
                           "--out-dir", str(tmp_path / "out")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2 and "'tf.AvgPool3D' op is neither a custom op nor a flex op" in proc.stderr + proc.stdout
    assert "DataType" not in proc.stderr + proc.stdout


def _max_pooled_into_dense(K):
    i = K.Input((8, 8, 3), dtype="uint8", name="frame")
    return K.Model(i, K.layers.Dense(2, name="head")(K.layers.Flatten()(K.layers.MaxPooling2D(2)(i))))


def _sequential_max_pooled_into_gap(K):
    return K.Sequential([K.Input((8, 8, 3), dtype="uint8"), K.layers.MaxPooling2D(2),
                         K.layers.GlobalAveragePooling2D(name="head"), K.layers.Dense(2)])


@pytest.mark.parametrize("build", [_max_pooled_into_dense, _sequential_max_pooled_into_gap])
def test_an_integer_input_max_pooled_before_its_cast_is_folded(tmp_path, build):
    """Second review of issue 9: Keras 3 keeps a max-pooled uint8 input as uint8, and TFLite has
    no integer MaxPool: `uint8 → MaxPooling2D → Flatten → Dense` (and a Sequential into
    GlobalAveragePooling2D) were a bare QF909, exit 2. QF102 now follows the input through the
    max pooling (it picks among the values: the float32 copies give the same) to the layer that
    casts, and the fold runs fully on the Edge TPU with the same float outputs."""
    path = save_with("k3", build, tmp_path / f"{build.__name__}.keras")
    code, report = qfix(str(path), "--target", "edgetpu", "--samples", "4", "--out-dir", str(tmp_path / "out"))
    assert [(f["location"]["layer"], f["fix"]["applicability"]) for f in report["findings"]
            if f["code"] == "QF102"] == [("head", "safe")]
    assert "'tf.MaxPool' op is neither a custom op nor a flex op" in report["before_failure"]
    assert code == 0 and report["verification"]["fully_on_target"]
    assert [s["state"] for s in report["fixes"] if s["code"] == "QF102"] == ["kept"]
    original, fixed = load(path, "k3"), load(report["outputs"]["model"], "k3")
    x = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3)).astype("uint8")
    got = np.asarray(fixed(x.astype("float32")), dtype="float64")
    assert np.max(np.abs(got - np.asarray(original(x), dtype="float64"))) <= 1e-5


def _masking_uint8(K):
    i = K.Input((6, 4), dtype="uint8", name="frame")
    return K.Model(i, K.layers.Dense(2, name="head")(K.layers.Flatten()(K.layers.Masking(0.0, name="layer")(i))))


def _gru_int16(K):
    i = K.Input((6, 4), dtype="int16", name="frame")
    return K.Model(i, K.layers.Dense(2, name="head")(K.layers.GRU(3, unroll=True, name="layer")(i)))


def _bidirectional_int16(K):
    i = K.Input((6, 4), dtype="int16", name="frame")
    return K.Model(i, K.layers.Dense(2, name="head")(K.layers.Bidirectional(K.layers.GRU(3, unroll=True),
                                                                              name="layer")(i)))


def _masked_gru_int16(K):  # the int16 Masking converts; it hands int16 on to the GRU
    i = K.Input((6, 4), dtype="int16", name="frame")
    h = K.layers.GRU(3, unroll=True, name="layer")(K.layers.Masking(0.0, name="mask")(i))
    return K.Model(i, K.layers.Dense(2, name="head")(h))


@pytest.mark.parametrize("build, tf_op, fully", [(_masking_uint8, "SelectV2", False), (_gru_int16, "Transpose", True),
                                                 (_bidirectional_int16, "Transpose", True),
                                                 (_masked_gru_int16, "Transpose", False)])
def test_a_keras3_integer_op_tflite_lacks_is_named_and_folded(tmp_path, build, tf_op, fully):
    """Reviews of issue 9: Keras 3 runs a Masking on uint8/uint16 and an RNN on int16/uint16
    (Bidirectional too, and behind a Masking, which hands the integers on)
    in the integer type, and the converter has no builtin for that SelectV2 / Transpose: a bare
    QF909, exit 2. QF106 now names the layer with the safe input fold; the model converts (the
    GRU fully on int8; the Masking keeps its known float NOT_EQUAL, QF304) with the same outputs."""
    path = save_with("k3", build, tmp_path / f"{build.__name__}.keras")
    code, report = qfix(str(path), "--target", "int8", "--samples", "4", "--out-dir", str(tmp_path / "out"))
    assert [(f["location"]["layer"], f["fix"]["applicability"]) for f in report["findings"]
            if f["code"] == "QF106"] == [("layer", "safe")]
    assert f"'tf.{tf_op}' op is neither a custom op nor a flex op" in report["before_failure"]
    # the fold is QF106's, or QF102's on the layer that casts after a Masking that hands integers on
    assert "kept" in [s["state"] for s in report["fixes"] if s["code"] in ("QF106", "QF102")]
    assert report["verification"]["converted"] and report["verification"]["fully_on_target"] is fully
    blockers = {f["code"] for f in report["findings"] if f["severity"] == "blocker" and not f.get("applied")}
    # an untrained RNN on full-range int16 saturates: QF408 may say its int8 outputs are weak
    assert code == 0 or (blockers == {"QF408"} if fully else code == 1)
    assert report["float_equivalence"]["max_abs_diff"] <= 1e-5
    original, fixed = load(path, "k3"), load(report["outputs"]["model"], "k3")
    lo, hi = RANGES[build.__name__.rsplit("_", 1)[1]]
    x = np.random.default_rng(0).integers(lo, hi, (4, 6, 4)).astype(build.__name__.rsplit("_", 1)[1])
    x[1, 3:] = 0  # padded steps for the Masking
    assert np.max(np.abs(np.asarray(fixed(x.astype("float32")), "float64")
                         - np.asarray(original(x), "float64"))) <= 1e-5
