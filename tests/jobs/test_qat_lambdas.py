"""`qfix --mode qat` on Lambdas qfix's table replaces (QF202), through the console script: the
replacement leaves no bytecode in the model tfmot loads, so no --trust-lambdas is needed, and
the rewritten model is compared with the input with only its Lambdas replaced (issue 10's
review, tk_lambda_known). A Lambda the table does not know still needs --trust-lambdas."""

from __future__ import annotations

import os
import zipfile

import pytest

from tests.jobs.test_qat_job import qat_json

tf = None  # TensorFlow, imported by `_save`: a module global, as the Lambda bodies name it in a user's script




def _save(tmp_path, known: bool):
    global tf
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    import tf_keras as K

    K.backend.clear_session()
    K.utils.set_random_seed(0)
    L = K.layers
    i = K.Input((16, 16, 3))
    x = L.Lambda(lambda t: t / 255.0, name="scale")(i)
    x = L.Conv2D(8, 3)(x)
    body = (lambda t: tf.nn.relu6(t)) if known else (lambda t: tf.math.sin(t) * t)
    x = L.Lambda(body, name="act")(x)
    path = tmp_path / ("lambda_known.keras" if known else "lambda_unknown.keras")
    K.Model(i, L.Dense(2)(L.GlobalAveragePooling2D()(x))).save(path)
    return path


@pytest.mark.tf
def test_recognised_lambdas_train_without_trust_lambdas(tmp_path):
    src = _save(tmp_path, known=True)
    out = tmp_path / "out"
    out.mkdir()
    code, report = qat_json(src, "--out-dir", out)
    qat = report["qat"]
    assert qat["not_trained"] is None and qat["trained"], qat["problems"]
    assert qat["problems"] == [], qat["problems"]
    kept = {(f["code"], f["layer"]) for f in report["fixes"] if f["state"] == "kept"}
    assert {("QF202", "scale"), ("QF202", "act")} <= kept, report["fixes"]
    # Compared with the input with its Lambdas replaced: the other rewrites are checked.
    assert report["float_equivalence"]["max_abs_diff"] <= report["float_equivalence"]["tolerance"]
    written = out / "lambda_known.qfix.qat.keras"
    assert code == 0 and written.exists(), report["model_not_written"]
    assert b'"Lambda"' not in zipfile.ZipFile(written).read("config.json")


@pytest.mark.tf
def test_an_unrecognised_lambda_still_needs_trust_lambdas(tmp_path):
    code, report = qat_json(_save(tmp_path, known=False), "--check")
    assert code == 1 and "--trust-lambdas" in report["qat"]["not_trained"], report["qat"]
