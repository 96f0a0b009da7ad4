"""`--mode qat --custom-objects MODULE` in both Keras dialects (issue 10, gap 1).

The QAT worker runs with TF_USE_LEGACY_KERAS=1 (tfmot trains tf_keras models): a Keras 3 model is
translated and its custom layer loaded as tf_keras, while its float outputs are compared with the
Keras 3 original. A module that picks its Keras by that variable (fixtures/custom_layers_dual.py,
the pattern of a review's `mylayers.py`) registers its class with tf_keras there, and the Keras 3
original found no class: QF917 asked for the option the user had passed. Now the original's
outputs come from a Keras 3 worker, the model trains, and a module that registers the class in
one Keras only gets a message saying what it must register, and where. Real tfmot, real files."""

from __future__ import annotations

import pytest

from qfix.convert.keras import vet_before_load
from qfix.model.archive import read_archive
from qfix.types import QfixError
from tests.jobs.test_qat_job import FIXTURES, digest, qat_json, qfix_run, save_models

DUAL = "fixtures.custom_layers_dual"
K3_MODEL = FIXTURES / "custom_layer_k3.keras"  # Input(8) → Dense → ScaledTanh → Dense, Keras 3


def _assert_trained_with_the_custom_layer_annotated(code: int, report: dict, translated: bool) -> None:
    assert code == 0 and report["exit_code"] == 0, (report["findings"], report["qat"]["problems"])
    qat = report["qat"]
    assert qat["trained"] and qat["tfmot_error"] is None and qat["conversion_error"] is None
    assert qat["translated_from_keras3"] is translated
    (row,) = [r for r in qat["layers"] if r["name"] == "scaled_tanh"]
    assert (row["class_name"], row["state"]) == ("ScaledTanh", "quantized")  # output annotated (QF510)
    assert [(f["code"], f["layer"], f["state"]) for f in report["fixes"]] == [("QF510", "scaled_tanh", "kept")]
    assert report["float_equivalence"]["max_abs_diff"] == 0.0  # translation + annotation: the same floats
    ver = report["verification"]
    assert ver["converted"] and ver["fully_on_target"] and ver["float_tensors"] == []


@pytest.mark.tf
def test_a_keras3_custom_layer_from_a_module_for_both_dialects_trains(tmp_path):
    before = digest(K3_MODEL)
    code, report = qat_json(K3_MODEL, "--custom-objects", DUAL, "--out-dir", tmp_path)
    _assert_trained_with_the_custom_layer_annotated(code, report, translated=True)
    assert digest(K3_MODEL) == before
    assert [p.name for p in tmp_path.iterdir()] == ["custom_layer_k3.qfix.qat.keras"]


@pytest.mark.tf
def test_a_tf_keras_custom_layer_from_the_same_module_trains(tmp_path):
    path = save_models(["custom_fn"], tmp_path)["custom_fn"]  # tf_keras, "qfix_fixtures>ScaledTanh"
    code, report = qat_json(path, "--custom-objects", DUAL, "--check")
    _assert_trained_with_the_custom_layer_annotated(code, report, translated=False)


@pytest.mark.tf
def test_a_module_without_a_keras3_class_is_told_to_register_one(tmp_path):
    """fixtures.custom_layers_tfk registers ScaledTanh with tf_keras only: tfmot could train the
    translated model, but the Keras 3 original it is compared with cannot be loaded."""
    proc = qfix_run(K3_MODEL, "--mode", "qat", "--custom-objects", "fixtures.custom_layers_tfk",
                    "--samples", "4", "--out-dir", tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("QF917 custom_layer_k3.keras: ")
    assert "'qfix_fixtures>ScaledTanh'" in line and "--custom-objects fixtures.custom_layers_tfk" in line
    assert "does not register with Keras 3" in line and "keras.saving.register_keras_serializable" in line
    assert "must register both" in line and "pass --custom-objects MODULE" not in line
    assert list(tmp_path.iterdir()) == []


def test_the_load_refusal_names_the_module_passed_and_the_keras_that_lacks_the_class():
    archive = read_archive(K3_MODEL)
    with pytest.raises(QfixError) as exc:
        vet_before_load(archive, False, lambda name: None, "mylayers", "tf_keras")
    assert exc.value.code == "QF917"
    assert "--custom-objects mylayers does not register with tf_keras" in exc.value.message
    assert "tf_keras.saving.register_keras_serializable" in exc.value.message
    with pytest.raises(QfixError) as exc:  # no module given: the option is what to pass
        vet_before_load(archive, False, lambda name: None)
    assert "pass --custom-objects MODULE" in exc.value.message
