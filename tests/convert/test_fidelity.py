"""Numerical verification: float Keras model vs quantized .tflite, and float equivalence."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from qfix.convert.calibration import load_calibration
from qfix.convert.fidelity import Fidelity, OutputFidelity

FIX = Path(__file__).resolve().parents[2] / "fixtures"


def test_fidelity_json_is_json_safe():
    f = Fidelity(4, True, math.inf, 0.0, None, [OutputFidelity("y", math.inf, 0.0, None)])
    j = f.to_json()
    assert j["sqnr_db"] is None and j["per_output"][0]["sqnr_db"] is None  # JSON has no infinity
    assert set(j) >= {"samples", "synthetic", "sqnr_db", "max_abs_error", "top1_agreement"}


@pytest.fixture(scope="session")
def tiny_k3():
    from qfix.convert.converter import convert, recipe_for
    from qfix.convert.keras import input_specs, load_model

    m = load_model(FIX / "tiny_cnn_k3.keras", "keras3")
    cal = load_calibration(None, input_specs(m), n=8)
    return m, cal, convert(m, recipe_for("edgetpu"), cal)


@pytest.mark.tf
def test_tiny_cnn_fidelity(tiny_k3):
    from qfix.convert.fidelity import fidelity

    m, cal, result = tiny_k3
    f = fidelity(m, result.tflite, cal)
    assert f.samples == 8 and f.synthetic
    assert f.sqnr_db > 15
    assert f.top1_agreement is not None and 0 <= f.top1_agreement <= 1
    assert 0 < f.max_abs_error < 0.1
    assert [o.name for o in f.per_output] == ["dense"]


@pytest.mark.tf
def test_float32_recipe_matches_keras(tiny_k3):
    from qfix.convert.converter import convert
    from qfix.convert.fidelity import fidelity
    from qfix.targets import FLOAT32_BASELINE

    m, cal, _ = tiny_k3
    f = fidelity(m, convert(m, FLOAT32_BASELINE, cal).tflite, cal)
    assert f.max_abs_error < 1e-5 and f.sqnr_db > 80


@pytest.mark.tf
def test_fidelity_of_bare_converted_model_matches_outputs_by_order(tiny_k3):
    from qfix.convert.converter import bare_convert, recipe_for
    from qfix.convert.fidelity import fidelity

    m, cal, _ = tiny_k3
    bare = bare_convert(FIX / "tiny_cnn_k3.keras", recipe_for("int8"), cal)
    assert fidelity(m, bare.tflite, cal).sqnr_db > 15


@pytest.mark.tf
@pytest.mark.parametrize("d, dialect", [("k3", "keras3"), ("tfk", "tf_keras")])
def test_two_input_fidelity_by_name(tmp_path, d, dialect):
    from qfix.convert.converter import convert, recipe_for
    from qfix.convert.keras import input_specs, load_model
    from qfix.convert.fidelity import fidelity

    m = load_model(FIX / f"two_input_{d}.keras", dialect)
    rng = np.random.default_rng(1)
    p = tmp_path / "cal.npz"
    np.savez(p, frame=rng.integers(0, 256, (4, 32, 32, 3)), features=rng.random((4, 8)))
    cal = load_calibration(p, input_specs(m))
    f = fidelity(m, convert(m, recipe_for("int8"), cal).tflite, cal)
    assert f.samples == 4 and not f.synthetic
    assert f.sqnr_db > 15  # a positional mix-up (uint8 frame fed as features) would wreck this


@pytest.mark.tf
def test_float_equivalence(tiny_k3):
    from qfix.convert.keras import load_model
    from qfix.convert.fidelity import float_equivalence

    m, cal, _ = tiny_k3
    assert float_equivalence(m, m, cal) == 0.0
    # the same architecture and seed saved by tf_keras computes the same function
    tfk = load_model(FIX / "tiny_cnn_tfk.keras", "tf_keras")
    assert float_equivalence(m, tfk, cal) < 1e-5
    other = load_model(FIX / "leaky_relu_cnn_k3.keras", "keras3")
    assert float_equivalence(m, other, cal) > 1e-3


@pytest.mark.tf
def test_float_equivalence_with_a_batch1_model(tiny_k3):
    """A model fixed to batch 1 (the Edge TPU fix) is compared sample by sample."""
    import keras

    from qfix.convert.fidelity import float_equivalence

    m, cal, _ = tiny_k3
    inp = keras.Input((32, 32, 3), batch_size=1)
    batch1 = keras.Model(inp, m(inp))
    assert batch1.inputs[0].shape[0] == 1
    assert float_equivalence(m, batch1, cal) < 1e-6


def test_fidelity_refuses_inputs_it_cannot_match_by_name():
    """Two inputs whose .tflite names match nothing must not be fed by position."""
    from qfix.types import QfixError
    from qfix.convert.fidelity import _match_inputs

    assert _match_inputs(["frame", "features"], ["serving_default_features:0", "frame"]) == {
        "serving_default_features:0": "features",
        "frame": "frame",
    }
    with pytest.raises(QfixError) as e:
        _match_inputs(["frame", "features"], ["args_0", "args_1"])
    assert e.value.code == "QF909"


@pytest.mark.tf
def test_float_equivalence_on_a_tf_keras_sequential(tmp_path):
    """A tf_keras Sequential has no `output_names`; outputs are named after their layers."""
    import tf_keras

    from qfix.convert.calibration import synthetic_calibration
    from qfix.model.inputs import InputSpec
    from qfix.convert.keras import load_model, output_names
    from qfix.convert.fidelity import float_equivalence

    seq = tf_keras.Sequential([tf_keras.Input((4,)), tf_keras.layers.Dense(2, name="head")])
    seq.save(tmp_path / "seq.keras")
    model = load_model(tmp_path / "seq.keras", "tf_keras")
    assert output_names(model) == ["head"]
    calib = synthetic_calibration([InputSpec(model.layers[0].input.name.split(":")[0], (None, 4), "float32")], n=2)
    assert float_equivalence(model, model, calib) == 0.0


@pytest.mark.tf
def test_outputs_are_paired_by_name_not_position():
    """Issue 9, fault 4: a model whose outputs come in another order is compared head by head
    (by name), both float-to-float and float-to-.tflite."""
    import keras

    from qfix.convert.converter import convert, recipe_for
    from qfix.convert.fidelity import fidelity, float_equivalence
    from qfix.convert.keras import input_specs

    i = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", name="trunk")(i)
    a = keras.layers.Conv2D(2, 1, name="z_map")(x)
    b = keras.layers.GlobalAveragePooling2D(name="a_vec")(x)
    m = keras.Model(i, [a, b])
    swapped = keras.Model(i, [m.get_layer("a_vec").output, m.get_layer("z_map").output])
    cal = load_calibration(None, input_specs(m), n=4)
    assert float_equivalence(m, swapped, cal) == 0.0
    f = fidelity(m, convert(m, recipe_for("int8"), cal).tflite, cal)
    assert [o.name for o in f.per_output] == ["z_map", "a_vec"]
    assert all(o.sqnr_db > 15 for o in f.per_output)


@pytest.mark.tf
def test_float_equivalence_runs_both_models_at_the_fixed_batch():
    """A rewrite that fixes the batch to 1 is compared with the original fed one sample per call:
    here an op that reads across the batch (x minus the batch mean) makes any difference in
    batching visible; the two models compute the same thing sample by sample."""
    import keras

    from qfix.convert.calibration import Calibration
    from qfix.convert.fidelity import float_equivalence

    def build(batch_size):
        x = keras.Input((4,), batch_size=batch_size, name="x")
        y = keras.layers.Lambda(lambda t: t - keras.ops.mean(t, axis=0, keepdims=True) + t)(x)
        return keras.Model(x, y)

    rng = np.random.default_rng(0)
    cal = Calibration([{"x": rng.normal(size=(1, 4)).astype("float32")} for _ in range(6)], True, "synthetic")
    original, fixed = build(None), build(1)
    assert float_equivalence(original, fixed, cal) == 0.0
    assert float_equivalence(fixed, original, cal) == 0.0
    # without a fixed batch each runs all six samples at once, alike
    assert float_equivalence(original, build(None), cal) == 0.0
