"""Rewrites of a layer called more than once (a shared layer), issue 10's review: the layer
inserted after a shared layer (QF504's relu6 split, QF502's Rescaling offset split) follows
every call, so the float outputs stay the same (max |Δ| ≤ 1e-5 · max(1, |out|)), and tfmot's
real `quantize_model` takes the fixed tf_keras model and trains one step.

The TensorFlow half runs in a child process (this file, run as a script) with
`TF_USE_LEGACY_KERAS=1`, as in test_qat_rewrites.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _shared_relu6(K):  # one Conv2D(relu6) applied to two inputs, then Add (the reviewer's tk_shared_relu6)
    L = K.layers
    a, b = K.Input((8, 8, 3), name="a"), K.Input((8, 8, 3), name="b")
    conv = L.Conv2D(4, 3, activation="relu6", name="shared")
    return K.Model([a, b], L.Dense(2)(L.GlobalAveragePooling2D()(L.Add()([conv(a), conv(b)]))))


def _shared_rescaling(K):  # one Rescaling(scale, offset) applied to two inputs (tk_shared_rescaling)
    L = K.layers
    a, b = K.Input((8, 8, 3), name="a"), K.Input((8, 8, 3), name="b")
    r = L.Rescaling(1 / 127.5, offset=-1, name="shared")
    x = L.Add()([L.Conv2D(4, 3)(r(a)), L.Conv2D(4, 3)(r(b))])
    return K.Model([a, b], L.Dense(2)(L.GlobalAveragePooling2D()(x)))


# name → (dialect, codes fixed, builder, class of the layer inserted after the shared one)
MODELS = {
    "shared_relu6": ("tf_keras", ["QF504"], _shared_relu6, "ReLU"),
    "shared_rescaling": ("tf_keras", ["QF502"], _shared_rescaling, "QuantizeAnnotate"),
    "k3_shared_relu6": ("keras3", ["QF504"], _shared_relu6, "ReLU"),
}


def child(out: str) -> None:
    import numpy as np
    import keras
    import tf_keras
    import tensorflow_model_optimization as tfmot

    from qfix.convert.qat_configs import custom_objects
    from qfix.jobs.check import Options, context
    from qfix.jobs.fix import apply_fixes
    from qfix.model.archive import read_archive
    from qfix.model.writer import write_archive
    from qfix.targets import load_profile

    Q = tfmot.quantization.keras
    d = Path(out).parent
    res = {}
    for name, (dialect, codes, build, _) in MODELS.items():
        K = tf_keras if dialect == "tf_keras" else keras
        K.backend.clear_session()
        K.utils.set_random_seed(0)
        r = res[name] = {}
        try:
            model = build(K)
            src = d / f"{name}.keras"
            model.save(src)
            a = read_archive(src)
            opts = Options(target="edgetpu", mode="qat", select=codes)
            config, weights, applied, skipped = apply_fixes(a.config, a.weights_bytes, a.dialect,
                                                            context(load_profile("edgetpu"), opts), opts, unsafe=False)
            r["applied"] = [[f.code, f.layer, f.note] for f in applied]
            r["skipped"] = skipped
            r["calls"] = {l["config"]["name"]: [l["class_name"], len(l.get("inbound_nodes") or [])]
                          for l in config["config"]["layers"]}
            fixed_path = write_archive(d / f"{name}.fixed.keras", config, a.metadata, weights)
            with Q.quantize_scope(custom_objects()):
                fixed = K.models.load_model(fixed_path)
            rng = np.random.default_rng(0)
            x = [rng.uniform(-1, 1, (4, 8, 8, 3)).astype("float32") for _ in range(2)]
            y0, y1 = np.asarray(model(x)), np.asarray(fixed(x))
            r["delta"], r["scale"] = float(np.max(np.abs(y0 - y1))), float(max(1.0, np.max(np.abs(y0))))
            if dialect == "tf_keras":
                with Q.quantize_scope(custom_objects()):
                    q = Q.quantize_model(fixed)
                q.compile("adam", "mse")
                r["loss"] = float(q.train_on_batch(x, np.zeros((4, 2), "float32")))
        except Exception as exc:  # noqa: BLE001
            import traceback

            r["error"] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-1500:]}"
    Path(out).write_text(json.dumps(res))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("qat_shared") / "results.json"
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, __file__, str(out)], env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.tf
@pytest.mark.parametrize("name", sorted(MODELS))
def test_layer_inserted_after_a_shared_layer_follows_every_call(results, name):
    dialect, codes, _, inserted = MODELS[name]
    r = results[name]
    assert "error" not in r, r.get("error")
    assert [c for c, _, _ in r["applied"]] == codes and not r["skipped"], r
    # The shared layer is still called twice, and so is the one layer inserted after it.
    assert r["calls"]["shared"][1] == 2, r["calls"]
    after = [n for n, (cls, calls) in r["calls"].items() if n.startswith("shared_") and cls == inserted]
    assert len(after) == 1 and r["calls"][after[0]][1] == 2, r["calls"]
    assert r["delta"] <= 1e-5 * r["scale"], r  # was 0.43 with the layer after the first call only
    if dialect == "tf_keras":
        assert r["loss"] == r["loss"], r  # quantize_model took the fixed model and a step ran (not NaN)


@pytest.mark.tf
def test_the_rewrite_that_changes_the_float_outputs_is_named(tmp_path):
    """When the float outputs change anyway, the QAT job names the rewrite: the model is rebuilt
    without each kept code and compared with the input in the real worker. Here "QF504" inserts a
    Rescaling(2) after the first conv (a wrong rewrite), "QF502" an identity Rescaling(1): only
    QF504 is named, with the diff left without it (0)."""
    from qfix.convert.calibration import synthetic_calibration
    from qfix.convert.worker import session
    from qfix.jobs.fix import AppliedFix
    from qfix.jobs.qat import QatRun, _float_culprits
    from qfix.model.archive import read_archive
    from qfix.model.edit import ModelEdit, make_layer
    from qfix.model.graph import build_graph
    from qfix.model.inputs import input_specs

    path = ROOT / "fixtures" / "tiny_cnn_tfk.keras"
    a = read_archive(path)

    def refix(skip):
        edit = ModelEdit(a.config, "tf_keras")
        for code, scale in (("QF504", 2.0), ("QF502", 1.0)):
            if code not in skip:
                edit.insert_after(("conv2d", 0, 0), make_layer("Rescaling", {"scale": scale, "offset": 0.0},
                                                               "tf_keras", f"times_{code}"))
        return edit.config, edit.weights(a.weights_bytes), [], []

    run = QatRun(None, fixes=[AppliedFix("QF504", "split", "conv2d", "safe", ""),
                              AppliedFix("QF502", "annotate", "re_lu", "safe", "")])
    calib = synthetic_calibration(input_specs(build_graph(a.config, "tf_keras")), 4)
    with session(legacy_keras=True) as worker:
        original = worker.load(path, "tf_keras", None, False)
        found = _float_culprits(worker, original, run, calib, refix, a.metadata)
    assert found == {"QF504 ('conv2d')": 0.0}
    run.float_equivalence, run.float_culprits = 1.0, found
    assert "QF504 ('conv2d') changes them (max abs diff without it: 0)" in run.problems()[0]


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    child(sys.argv[1])
