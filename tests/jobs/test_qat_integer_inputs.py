"""`qfix --mode qat` on models with integer inputs (token ids into an Embedding): tfmot's
`quantize_model` puts a FakeQuantWithMinMaxVars on every input and raises on the integer one;
qfix annotates only the float part (qfix.model.rewrites.annotate_float_part) and calls
`quantize_apply`. Each model reproduces tfmot's error without qfix (a fresh process, as a
user's script meets it), then trains and converts with qfix, float outputs unchanged, the
integer input int32 in the `.tflite` and the float ones the target's uint8. Both dialects
(a Keras 3 model through qfix's translation). Real tfmot, real conversions, no mocks."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import pytest

from qfix.model.archive import read_archive
from qfix.model.cases import functional_config
from qfix.model.graph import build_graph
from qfix.model.rewrites.annotate_float_part import INTEGER_IN, INTEGER_OUT, annotate_float_part, plan
from qfix.model.to_tf_keras import translate
from qfix.model.writer import write_archive

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
QFIX = Path(sys.executable).parent / "qfix"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
FAKE_QUANT_ON_INT = "Input 'inputs' of 'FakeQuantWithMinMaxVars' Op has type int"


def digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


# --- the plan, without TensorFlow -----------------------------------------------------------


def test_the_plan_of_the_smallest_model_leaves_the_embedding_out():
    a = read_archive(FIXTURES / "int64_ids_tfk.keras")
    p = plan(build_graph(a.config, a.dialect))
    assert p.applies and p.integer_inputs == ["token_ids"]
    assert p.integer == {"embedding": INTEGER_IN}
    assert p.annotate == ["global_average_pooling1d", "dense"] and p.annotated == []
    assert p.boundaries == ["embedding"]  # its float vectors get qfix's quantizing identity after it


def test_a_float_model_gets_no_plan():
    a = read_archive(FIXTURES / "tiny_cnn_tfk.keras")
    config, weights, p = annotate_float_part(a.config, a.weights_bytes)
    assert not p.applies and p.annotate == [] and config is a.config and weights is a.weights_bytes


def _two_inputs_config(ids_dtype: str = "int32") -> dict:
    return functional_config(
        [("ids", (None, 16), ids_dtype), ("feat", (None, 4), "float32")],
        [("emb", "Embedding", {"input_dim": 50, "output_dim": 8}, ["ids"], "float32", (None, 16, 8)),
         ("pool", "GlobalAveragePooling1D", {}, ["emb"], "float32", (None, 8)),
         ("count", "Cast", {"dtype": "float32"}, ["ids"], "float32", (None, 16)),
         ("hidden", "Dense", {"units": 8}, ["feat"], "float32", (None, 8)),
         ("cat", "Concatenate", {}, ["pool", "hidden", "count"], "float32", (None, 32)),
         ("out", "Dense", {"units": 3}, ["cat"], "float32", (None, 3))], ["out"])


def test_the_plan_of_a_two_input_model_annotates_the_float_branch_and_the_merge():
    """Another member: ids into an Embedding and a Cast, float features into a Dense, merged."""
    g = build_graph(_two_inputs_config(), "keras3")
    p = plan(g)
    assert p.integer_inputs == ["ids"]
    assert set(p.integer) == {"emb", "count"} and set(p.integer.values()) == {INTEGER_IN}
    assert p.annotate == ["pool", "hidden", "cat", "out"]
    assert p.boundaries == ["emb", "count"]


def test_a_layer_making_an_integer_tensor_stays_out():
    config = functional_config(
        [("ids", (None, 4), "int32"), ("x", (None, 4), "float32")],
        [("d", "Dense", {"units": 4}, ["x"]), ("to_int", "Cast", {"dtype": "int32"}, ["d"], "int32")],
        ["to_int", "ids"])
    p = plan(build_graph(config, "keras3"))
    assert p.integer == {"to_int": INTEGER_OUT} and p.annotate == ["d"] and p.boundaries == []


def test_the_annotations_are_tfmots_own_and_the_weights_follow():
    a = read_archive(FIXTURES / "int64_ids_tfk.keras")
    config, weights, p = annotate_float_part(a.config, a.weights_bytes)
    layers = {l["config"]["name"]: l for l in config["config"]["layers"]}
    for name in p.annotate:
        assert layers[name]["class_name"] == "QuantizeAnnotate"
        assert layers[name]["config"]["quantize_config"] is None  # the default registry's config
    assert layers["embedding"]["class_name"] == "Embedding"
    assert a.config["config"]["layers"][2]["class_name"] != "QuantizeAnnotate"  # input not modified
    boundary = layers["embedding_quantize"]  # an identity qfix's OutputQuantizeConfig quantizes
    assert boundary["config"]["layer"]["class_name"] == "Activation"
    assert boundary["config"]["layer"]["config"]["activation"] == "linear"
    assert boundary["config"]["quantize_config"]["class_name"] == "qfix>OutputQuantizeConfig"
    assert boundary["inbound_nodes"][0][0][0] == "embedding"  # tf_keras: [[[layer, node, index, kwargs]]]
    again = plan(build_graph(config, "tf_keras"))  # idempotent: annotated layers stay as they are
    assert again.annotate == [] and again.boundaries == []
    assert set(again.annotated) == set(p.annotate) | {"embedding_quantize"}
    with h5py.File(io.BytesIO(weights), "r") as f:
        keys = []
        f.visit(keys.append)
    assert any(k.endswith("layer/vars/0") for k in keys) and any(k.startswith("layers/embedding/vars") for k in keys)


# --- with tfmot -----------------------------------------------------------------------------

TWO_INPUTS = """
import os, sys
dialect, path = sys.argv[1], sys.argv[2]
if dialect == "tf_keras":
    import tf_keras as K
else:
    import keras as K
K.utils.set_random_seed(0)
L = K.layers
ids = K.Input((16,), dtype="int32", name="token_ids")
feat = K.Input((4,), name="features")
x = L.GlobalAveragePooling1D()(L.Embedding(50, 8)(ids))
f = L.Dense(8, activation="relu")(feat)
out = L.Dense(3)(L.Concatenate()([x, f]))
K.Model([ids, feat], out, name="ids_and_features").save(path)
"""

# Another member: the ids also cast to float (counts) and read by a Dense. QF102 does not fold
# the Cast into the input (the Embedding reads the ids too), so the Cast is in the integer part.
IDS_CAST = """
import os, sys
dialect, path = sys.argv[1], sys.argv[2]
if dialect == "tf_keras":
    import tensorflow as tf, tf_keras as K
    cast = lambda t: tf.cast(t, tf.float32)
else:
    import keras as K
    cast = lambda t: K.ops.cast(t, "float32")
K.utils.set_random_seed(0)
L = K.layers
ids = K.Input((16,), dtype="int32", name="token_ids")
e = L.GlobalAveragePooling1D()(L.Embedding(50, 4)(ids))
x = L.Concatenate()([L.Dense(8)(cast(ids)), e])
K.Model(ids, L.Dense(2)(x), name="ids_cast").save(path)
"""

REPRODUCE = """
import json, os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import tf_keras, tensorflow_model_optimization as tfmot
out = {}
for path in sys.argv[1:]:
    try:
        tfmot.quantization.keras.quantize_model(tf_keras.models.load_model(path, compile=False))
        out[path] = None
    except Exception as e:
        out[path] = f"{type(e).__name__}: {e}"
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """name -> (the model qfix gets, the tf_keras file tfmot is given without qfix)."""
    folder = tmp_path_factory.mktemp("qat_int_inputs")
    out = {"int64_ids_tfk": (FIXTURES / "int64_ids_tfk.keras",) * 2}
    k3 = read_archive(FIXTURES / "int64_ids_k3.keras")
    t = translate(k3.config, k3.weights_bytes)  # the Keras 3 twin as tf_keras, as a user would port it
    out["int64_ids_k3"] = (FIXTURES / "int64_ids_k3.keras",
                           write_archive(folder / "int64_ids_k3_as_tfk.keras", t.config, t.metadata, t.weights))
    for stem, script in (("ids_and_features", TWO_INPUTS), ("ids_cast", IDS_CAST)):
        for dialect, suffix in (("tf_keras", "tfk"), ("keras3", "k3")):
            path = folder / f"{stem}_{suffix}.keras"
            subprocess.run([sys.executable, "-c", script, dialect, str(path)], check=True, env=ENV, timeout=300)
            out[f"{stem}_{suffix}"] = (path, path)
        k3 = read_archive(out[f"{stem}_k3"][0])
        t = translate(k3.config, k3.weights_bytes)
        out[f"{stem}_k3"] = (out[f"{stem}_k3"][0],
                             write_archive(folder / f"{stem}_k3_as_tfk.keras", t.config, t.metadata, t.weights))
    return out


@pytest.fixture(scope="module")
def tfmot_errors(models):
    paths = [str(tfk) for _, tfk in models.values()]
    proc = subprocess.run([sys.executable, "-c", REPRODUCE, *paths], capture_output=True, text=True, cwd=ROOT,
                          env=ENV, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    by_path = json.loads(proc.stdout.strip().splitlines()[-1])
    return {name: by_path[str(tfk)] for name, (_, tfk) in models.items()}


def qat_json(*args) -> tuple[int, dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("QFIX_DEBUG", None)
    proc = subprocess.run([str(QFIX), *map(str, args), "--mode", "qat", "--format", "json", "--samples", "4"],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert proc.returncode in (0, 1), (proc.returncode, proc.stderr)
    return proc.returncode, json.loads(proc.stdout)


FLOAT_LAYERS = {  # the float part qfix annotates
    "int64_ids_tfk": {"global_average_pooling1d", "dense"},
    "int64_ids_k3": {"global_average_pooling1d", "dense"},
    "ids_and_features_tfk": {"global_average_pooling1d", "dense", "concatenate", "dense_1"},
    "ids_and_features_k3": {"global_average_pooling1d", "dense", "concatenate", "dense_1"},
    "ids_cast_tfk": {"global_average_pooling1d", "dense", "concatenate", "dense_1"},
    "ids_cast_k3": {"global_average_pooling1d", "dense", "concatenate", "dense_1"},
}


# What tfmot quantizes of it: before a Concatenate tfmot's concat transform leaves the pooling
# without a quantizer of its own (the Concatenate's output quantizer covers it).
QUANTIZED = {**FLOAT_LAYERS, "ids_and_features_tfk": {"dense", "concatenate", "dense_1"},
             "ids_and_features_k3": {"dense", "concatenate", "dense_1"},
             "ids_cast_tfk": {"dense", "concatenate", "dense_1"}, "ids_cast_k3": {"dense", "concatenate", "dense_1"}}


@pytest.mark.tf
@pytest.mark.parametrize("name", list(FLOAT_LAYERS))
def test_an_integer_input_model_tfmot_refuses_trains_and_converts_with_qfix(name, models, tfmot_errors, tmp_path):
    src, _ = models[name]
    # tfmot's own error, no qfix: the fake-quant on the ids; with the ids' tf.cast, the annotated
    # TFOpLambda's clone (errors.md B6) fails first.
    says = "Exception encountered when calling layer" if "cast" in name else FAKE_QUANT_ON_INT
    assert says in (tfmot_errors[name] or ""), tfmot_errors[name]
    before = digest(src)
    code, report = qat_json(src, "--out-dir", tmp_path)
    assert digest(src) == before

    qat = report["qat"]
    assert qat["tfmot_error"] is None and qat["quantize_call"] == "quantize_apply"
    assert not [f for f in report["findings"] if f["code"] in ("QF505", "QF502")]
    assert qat["trained"] and qat["problems"] == [], qat["problems"]
    fe = report["float_equivalence"]
    assert fe is not None and fe["max_abs_diff"] <= fe["tolerance"]  # float outputs unchanged
    states = {lq["name"]: (lq["state"], lq["detail"]) for lq in qat["layers"]}
    # The Embedding's float vectors are quantized by qfix's boundary identity: GATHER is int8.
    assert states["embedding"][0] == "quantized" and "boundary layer 'embedding_quantize'" in states["embedding"][1]
    assert {n for n, (s, _) in states.items() if s == "quantized"} >= QUANTIZED[name] | {"embedding", "embedding_quantize"}
    qf506 = {f["layer"]: f["message"] for f in report["findings"] if f["code"] == "QF506"}
    assert "embedding" not in qf506

    ver = report["verification"]
    assert ver["converted"] and qat["conversion_error"] is None
    io = {i["name"]: i["tflite_dtype"] for i in report["input_quantization"]}
    assert io["token_ids"] == "int32"  # the ids stay integer under inference_input_type=uint8
    if "features" in io:
        assert io["features"] == "uint8"  # the float input takes the target's integer I/O
    # The verdict is the Edge TPU's op table on the converted model: the integer part's GATHER
    # (and CAST) run on the CPU.
    assert ver["first_unsupported"]["op"] in ({"GATHER", "CAST"} if "cast" in name else {"GATHER"}) and code == 1

    written = tmp_path / f"{src.stem}.qfix.qat.keras"
    assert report["outputs"] == {"model": str(written)}
    with zipfile.ZipFile(written) as z:
        config = json.loads(z.read("config.json"))
    wrapped = {l["config"]["name"] for l in config["config"]["layers"] if l["class_name"] == "QuantizeAnnotate"}
    # The plan is in the file (the user's code needs quantize_apply only): the float part, and a
    # boundary identity after each integer-in layer with a float output.
    assert "embedding_quantize" in wrapped and FLOAT_LAYERS[name] <= wrapped
    assert all(n.endswith("_quantize") for n in wrapped - FLOAT_LAYERS[name])


@pytest.mark.tf
def test_the_smallest_integer_input_model_runs_fully_integer_on_the_int8_cpu(tmp_path):
    """Without the boundary identity, GATHER and the MEAN after it converted to float (tfmot
    gives the Embedding no quantizer); with it, every op of the QAT model is int8."""
    code, report = qat_json(FIXTURES / "int64_ids_tfk.keras", "--target", "int8", "--check")
    ver = report["verification"]
    assert code == 0 and ver["fully_on_target"] and ver["float_tensors"] == [], ver
    assert not [f for f in report["findings"] if f["code"] in ("QF506", "QF405")]


@pytest.mark.tf
def test_the_snippet_of_an_integer_input_model_uses_quantize_apply_and_keeps_the_ids_int32(tmp_path):
    """The report shows the snippet only on exit 0 (the GATHER keeps this model off every integer
    target), so the run's snippet is taken from the job itself."""
    from qfix.jobs.check import Options
    from qfix.jobs.qat import run_qat
    from qfix.report.qat import training_snippet

    run = run_qat(FIXTURES / "int64_ids_tfk.keras", Options(target="int8", samples=4, mode="qat"),
                  out_dir=tmp_path / "out")
    assert run.trained and run.annotated and run.outputs["model"]
    snippet = training_snippet(run)
    assert "quantize_apply(model)" in snippet and "quantize_model(" not in snippet
    data = ("import numpy as np\nrng = np.random.default_rng(0)\n"
            "x_train = rng.integers(0, 50, (8, 16)).astype(np.int32)\n"
            "y_train = rng.random((8, 3), dtype=np.float32)\n")
    script = tmp_path / "train.py"
    script.write_text(data + snippet)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, env=ENV,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from qfix.targets.tflite import read_tflite

    tfl = read_tflite((tmp_path / "int64_ids_tfk.qat.int8.tflite").read_bytes())
    assert [tfl.tensors[i].dtype.lower() for i in tfl.inputs] == ["int32"]
    assert [tfl.tensors[i].dtype.lower() for i in tfl.outputs] == ["int8"]
    assert {op.name for op in tfl.ops} >= {"GATHER", "FULLY_CONNECTED"}
