"""A nested model called more than once, flattened for tfmot (issue 10, gap 2).

tfmot's quantize_model refuses a model nested in another (errors.md B2), and qfix's flattening
(QF201) used to refuse a nested model called twice, a Siamese network's branch: "only a single
call can be flattened". `ModelEdit.splice` now gives each inner layer one call per call of the
model, so both calls share the same layer objects and weights. The fixtures (fixtures/build.py):
`siamese` (one `tower` Model on two inputs) and `nested_twice` (an `encoder` Model holding the
`tower` Model, the encoder called on two inputs), each saved by Keras 3 and by tf_keras.

Fast tests read the configs (no TensorFlow); the `tf` tests load the flattened models (float
outputs identical: max abs diff 0), and run `qfix --mode qat` (tfmot accepts the model, one
training step, the QAT conversion)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from qfix.model.archive import read_archive
from qfix.model.config import is_model, layer_name, node_refs
from qfix.model.edit import ModelEdit
from qfix.model.weights import layer_paths
from qfix.model.writer import write_archive
from tests.jobs.test_qat_job import FIXTURES, ROOT, digest, qat_json

MODELS = [f"{name}_{d}.keras" for name in ("siamese", "nested_twice") for d in ("k3", "tfk")]
DIALECT = {"k3": "keras3", "tfk": "tf_keras"}
SHARED = {"siamese": ["tower_conv", "tower_gap"], "nested_twice": ["tower_conv", "tower_gap", "embed"]}


def _flatten(fixture: str) -> tuple[dict, bytes, str, list[str]]:
    """The fixture with every nested model spliced (outermost first, as QF201's fixes go):
    (config, weights, dialect, names of the models spliced)."""
    archive = read_archive(FIXTURES / fixture)
    dialect = DIALECT[fixture.removesuffix(".keras").rsplit("_", 1)[1]]
    config, weights, spliced = archive.config, archive.weights_bytes, []
    while nested := [layer_name(r) for r in config["config"]["layers"] if is_model(r)]:
        edit = ModelEdit(config, dialect)
        edit.splice(nested[0])
        config, weights = edit.config, edit.weights(weights)
        spliced.append(nested[0])
    return config, weights, dialect, spliced


@pytest.mark.parametrize("fixture", MODELS)
def test_each_inner_layer_is_called_once_per_call_of_the_model(fixture):
    config, _, _, spliced = _flatten(fixture)
    name = fixture.split("_k3")[0].split("_tfk")[0]
    assert spliced == (["tower"] if name == "siamese" else ["encoder", "tower"])
    layers = {layer_name(r): r for r in config["config"]["layers"]}
    assert not any(is_model(r) for r in layers.values())
    for shared in SHARED[name]:  # one layer object, two calls: node 0 reads `left`'s branch, node 1 `right`'s
        assert len(layers[shared]["inbound_nodes"]) == 2
    conv = layers["tower_conv"]["inbound_nodes"]
    assert [[s.tensor for s in node_refs(n)] for n in conv] == [[("left", 0, 0)], [("right", 0, 0)]]
    merge = layers["pair" if name == "siamese" else "sum"]["inbound_nodes"]
    last = "tower_gap" if name == "siamese" else "embed"
    assert [s.tensor for s in node_refs(merge[0])] == [(last, 0, 0), (last, 1, 0)]


@pytest.mark.parametrize("fixture", MODELS)
def test_the_shared_weights_are_kept_once(fixture):
    config, _, dialect, _ = _flatten(fixture)
    paths = {p[-1] for p in layer_paths(config)}
    assert {"tower_conv", "head"} <= paths and not {"tower", "encoder"} & paths


FLOAT_CHECK = """
import os, sys
import numpy as np
dialect, original, flat = sys.argv[1:4]
if dialect == "tf_keras":
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tf_keras as K
else:
    import keras as K
a, b = K.models.load_model(original, compile=False), K.models.load_model(flat, compile=False)
rng = np.random.default_rng(7)
xs = [rng.normal(size=(6, 8, 8, 3)).astype("float32") for _ in a.inputs]
assert len(b.weights) == len(a.weights), (len(a.weights), len(b.weights))  # no weight duplicated
print(float(np.max(np.abs(a.predict(xs, verbose=0) - b.predict(xs, verbose=0)))))
"""


@pytest.mark.tf
@pytest.mark.parametrize("fixture", MODELS)
def test_the_flattened_model_computes_the_same_floats(fixture, tmp_path):
    config, weights, dialect, _ = _flatten(fixture)
    flat = write_archive(tmp_path / "flat.keras", config, read_archive(FIXTURES / fixture).metadata, weights)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", FLOAT_CHECK, dialect, str(FIXTURES / fixture), str(flat)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert float(proc.stdout.strip().splitlines()[-1]) == 0.0


@pytest.mark.tf
@pytest.mark.parametrize("fixture", ["siamese_tfk.keras", "nested_twice_k3.keras"])
def test_a_nested_model_called_twice_trains_with_qat_and_converts(fixture, tmp_path):
    src = FIXTURES / fixture
    before = digest(src)
    code, report = qat_json(src, "--out-dir", tmp_path)
    assert code == 0 and report["exit_code"] == 0, (report["findings"], report["qat"]["problems"])
    qat = report["qat"]
    assert qat["trained"] and qat["tfmot_error"] is None and qat["conversion_error"] is None
    expected = ["tower"] if fixture.startswith("siamese") else ["encoder", "tower"]
    assert [(f["code"], f["layer"], f["state"]) for f in report["fixes"]] == [("QF201", m, "kept") for m in expected]
    assert not report["not_applied"]
    states = {r["name"]: r["state"] for r in qat["layers"]}
    assert states["tower_conv"] == "quantized" and "tower" not in states and "encoder" not in states
    assert report["float_equivalence"]["max_abs_diff"] == 0.0
    ver = report["verification"]
    assert ver["converted"] and ver["fully_on_target"] and ver["float_tensors"] == []
    assert digest(src) == before
    assert [p.name for p in tmp_path.iterdir()] == [fixture.replace(".keras", ".qfix.qat.keras")]
