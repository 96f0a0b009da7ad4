"""hub.KerasLayer in `--mode qat` (issue 10, QF507): the seed model and its kind, end to end.

A child process builds real SavedModels and tf_keras `.keras` models around them in a tmp folder
(nothing is downloaded). For each Keras-saved backbone the test (a) reproduces tfmot's own
refusal with the real `quantize_model`, (b) inlines the backbone through qfix's fix pipeline
(lint → QF507's rewrite), then proves in a child that the inlined model loads with plain
tf_keras (tensorflow_hub not imported), computes the same outputs, is accepted by
`quantize_model`, and trains one step. A plain TF SavedModel, a Lambda inside, and hostile
handles are findings (or one QF917 line), never a traceback, never a download.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qfix.jobs.check import Options, context
from qfix.jobs.fix import apply_fixes
from qfix.model.archive import read_archive
from qfix.model.graph import build_graph
from qfix.model.writer import write_archive
from qfix.rules.lint import lint
from qfix.targets import load_profile
from qfix.types import Applicability, Severity

pytestmark = pytest.mark.tf

REPO = Path(__file__).resolve().parents[2]

BUILD = r"""
import os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import numpy as np, tensorflow as tf, tf_keras as k, tensorflow_hub as hub

rng = np.random.RandomState(0)
L = k.layers


def randomize(model):
    # Distinct, positive values for every variable (BN statistics included): a variable put in
    # the wrong place changes the outputs.
    for v in model.weights:
        v.assign(rng.uniform(0.2, 1.0, v.shape).astype("float32"))


def save_backbone(model, folder):
    randomize(model)
    model.save(folder, save_format="tf")


def in_dir(name):
    os.makedirs(name, exist_ok=True)
    os.chdir(os.path.join(root, name))


root = os.getcwd()

# The seed: a Conv/BN/ReLU/GAP feature extractor, frozen, in a Sequential with a Dense head.
in_dir("seed")
inp = k.Input((8, 8, 3))
x = L.Conv2D(4, 3, padding="same", use_bias=False)(inp)
x = L.BatchNormalization()(x)
x = L.ReLU()(x)
save_backbone(k.Model(inp, L.GlobalAveragePooling2D()(x), name="feat"), "feat_sm")
m = k.Sequential([k.Input((8, 8, 3)), hub.KerasLayer("feat_sm", trainable=False), L.Dense(3)])
m.save("seed.keras")
os.chdir(root)

# Another member: a residual backbone (Add), trainable, fine-tuned after wrapping (the .keras
# weights differ from the SavedModel's checkpoint), in a functional model.
in_dir("residual")
inp = k.Input((8, 8, 3))
a = L.ReLU()(L.BatchNormalization()(L.Conv2D(4, 3, padding="same")(inp)))
b = L.Conv2D(4, 3, padding="same")(a)
x = L.Add()([a, b])
save_backbone(k.Model(inp, L.GlobalAveragePooling2D()(x), name="resnetish"), "res_sm")
inp = k.Input((8, 8, 3), name="image")
hub_layer = hub.KerasLayer("res_sm", trainable=True, name="backbone")
m = k.Model(inp, L.Dense(2, name="head")(hub_layer(inp)))
for v in hub_layer.weights:
    v.assign(v + rng.uniform(0.1, 0.3, v.shape).astype("float32"))
m.save("residual.keras")
os.chdir(root)

# A Sequential backbone (its own InputLayer), the hub layer being the model's output.
in_dir("seqbb")
save_backbone(k.Sequential([k.Input((6, 6, 2)), L.DepthwiseConv2D(3, padding="same"), L.BatchNormalization(),
                            L.ReLU(6.0), L.Flatten(), L.Dense(5)], name="seqfeat"), "seq_sm")
inp = k.Input((6, 6, 2))
m = k.Model(inp, hub.KerasLayer("seq_sm", trainable=False, name="features")(inp))
m.save("seqbb.keras")
os.chdir(root)

# A keras.applications backbone (MobileNetV2, 154 layers: ZeroPadding2D, DepthwiseConv2D, ReLU(6)).
in_dir("mobilenet")
save_backbone(k.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, include_top=False, weights=None,
                                         pooling="avg"), "mnv2_sm")
m = k.Sequential([k.Input((32, 32, 3)), hub.KerasLayer("mnv2_sm", trainable=False), L.Dense(3)])
m.save("mobilenet.keras")
os.chdir(root)

# A plain TF SavedModel (no Keras metadata).
in_dir("plain")


class Feat(tf.Module):
    def __init__(self):
        self.w = tf.Variable(rng.uniform(0.2, 1.0, (3, 3, 3, 4)).astype("float32"))

    @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 3], tf.float32)])
    def __call__(self, x):
        return tf.reduce_mean(tf.nn.relu(tf.nn.conv2d(x, self.w, 1, "SAME")), axis=[1, 2])


tf.saved_model.save(Feat(), "plain_sm")
m = k.Sequential([k.Input((8, 8, 3)), hub.KerasLayer("plain_sm", output_shape=[4]), L.Dense(2)])
m.save("plain.keras")
os.chdir(root)

# A Keras backbone with a Lambda inside.
in_dir("lambda")
inp = k.Input((8, 8, 3))
x = L.Lambda(lambda t: t * 2.0)(L.Conv2D(4, 3)(inp))
save_backbone(k.Model(inp, L.GlobalAveragePooling2D()(x)), "lam_sm")
m = k.Sequential([k.Input((8, 8, 3)), hub.KerasLayer("lam_sm"), L.Dense(2)])
m.save("lambda.keras")
print("built")
"""

PROBE = r"""
import json, os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import numpy as np, tensorflow as tf, tf_keras as k, tensorflow_model_optimization as tfmot

original, inlined = sys.argv[1], sys.argv[2]
out = {}
q = k.models.load_model(inlined, compile=False)  # plain tf_keras: no hub, no custom objects
out["hub_imported"] = "tensorflow_hub" in sys.modules
out["layers"] = [[l.name, type(l).__name__, l.trainable] for l in q.layers]
import tensorflow_hub as hub

os.chdir(os.path.dirname(original))  # hub resolves the saved relative handle against the cwd
with tfmot.quantization.keras.quantize_scope({"KerasLayer": hub.KerasLayer}):
    m = k.models.load_model(original, compile=False)
    try:
        tfmot.quantization.keras.quantize_model(m)
        out["original_error"] = None
    except Exception as e:
        out["original_error"] = f"{type(e).__name__}: {e}"
x = np.random.RandomState(1).uniform(-1, 2, (4, *m.input_shape[1:])).astype("float32")
a, b = m(x, training=False).numpy(), q(x, training=False).numpy()
out["delta"], out["scale"] = float(np.abs(a - b).max()), float(np.abs(a).max())
qat = tfmot.quantization.keras.quantize_model(q)
out["wrapped"] = [l.layer.name for l in qat.layers if hasattr(l, "quantize_config")]
qat.compile(optimizer="adam", loss="mse")
out["loss"] = float(qat.train_on_batch(x, np.zeros_like(b)))
print("PROBE " + json.dumps(out))
"""

LOAD = r"""
import json, sys
from qfix.convert.keras import load_model
from qfix.types import QfixError
try:
    m = load_model(sys.argv[1], "tf_keras")
    print("LOAD " + json.dumps({"layers": [type(l).__name__ for l in m.layers]}))
except QfixError as e:
    print("LOAD " + json.dumps({"code": e.code, "message": e.message}))
"""


def child(script: str, *args: str, cwd: Path, **env: str) -> str:
    environ = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3", **env}
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, cwd=cwd,
                          env=environ, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def result(stdout: str, tag: str) -> dict:
    return json.loads(next(l for l in stdout.splitlines() if l.startswith(tag + " "))[len(tag) + 1:])


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hub")
    assert "built" in child(BUILD, cwd=root)
    return root


def findings(path: Path, mode: str = "qat", trust_lambdas: bool = False):
    archive = read_archive(path)
    opts = Options(mode=mode, trust_lambdas=trust_lambdas)
    ctx = context(load_profile("edgetpu"), opts, path)
    return archive, ctx, list(lint(build_graph(archive.config, archive.dialect), ctx))


def inline(path: Path, out: Path) -> list[str]:
    """The fix pipeline with QF507 only, as `qfix --mode qat` applies it; writes `out`."""
    archive, ctx, found = findings(path)
    hub = [v for v in found if v.code == "QF507"]
    assert hub and all(v.severity == Severity.BLOCKER and v.fix.applicability == Applicability.SAFE for v in hub)
    config, weights, applied, skipped = apply_fixes(
        copy.deepcopy(archive.config), archive.weights_bytes, archive.dialect, ctx,
        Options(mode="qat", select=["QF507"]), unsafe=False)
    assert applied and not skipped, skipped
    write_archive(out, config, archive.metadata, weights)
    graph = build_graph(config, archive.dialect)
    assert not any(l.class_name == "KerasLayer" for _, l in graph.walk())
    return [l.name for l in graph]


def prove(built: Path, original: Path, inlined: Path) -> dict:
    probe = result(child(PROBE, str(original), str(inlined), cwd=built), "PROBE")
    assert not probe["hub_imported"]
    assert probe["delta"] <= 1e-5 * max(1.0, probe["scale"]), probe
    assert probe["loss"] == probe["loss"] and probe["loss"] < float("inf")  # a finite loss
    return probe


def test_seed_hub_model_is_inlined_and_trains(built, tmp_path):
    src = built / "seed" / "seed.keras"
    before = src.read_bytes()
    names = inline(src, tmp_path / "seed.qat.keras")
    assert names == ["input_1", "conv2d", "batch_normalization", "re_lu", "global_average_pooling2d", "dense"] \
        or names[1:] == ["conv2d", "batch_normalization", "re_lu", "global_average_pooling2d", "dense"]
    probe = prove(built, src, tmp_path / "seed.qat.keras")
    assert probe["original_error"] == (
        "RuntimeError: Layer keras_layer:<class 'tensorflow_hub.keras_layer.KerasLayer'> is not supported. "
        "You can quantize this layer by passing a `tfmot.quantization.keras.QuantizeConfig` instance to the "
        "`quantize_annotate_layer` API.")
    # The hub layer was frozen: so are its layers; the head still trains.
    trainable = {name: t for name, _, t in probe["layers"]}
    assert not any(trainable[n] for n in ("conv2d", "batch_normalization", "re_lu", "global_average_pooling2d"))
    assert trainable["dense"]
    assert {"conv2d", "re_lu", "dense"} <= set(probe["wrapped"])
    assert src.read_bytes() == before  # the input model is never modified


def test_residual_trainable_backbone_keeps_its_fine_tuned_weights(built, tmp_path):
    src = built / "residual" / "residual.keras"
    names = inline(src, tmp_path / "residual.qat.keras")  # its weights differ from res_sm's checkpoint
    assert "add" in names and "backbone" not in names and names[-1] == "head"
    probe = prove(built, src, tmp_path / "residual.qat.keras")
    assert "Layer backbone:<class 'tensorflow_hub.keras_layer.KerasLayer'> is not supported" in probe["original_error"]
    assert all(t for _, _, t in probe["layers"])  # trainable=True: every inlined layer trains
    assert {"conv2d_1", "add", "head"} <= set(probe["wrapped"])  # conv2d is folded into its BN


def test_sequential_backbone_as_the_model_output(built, tmp_path):
    src = built / "seqbb" / "seqbb.keras"
    names = inline(src, tmp_path / "seqbb.qat.keras")
    assert names[-1] == "features"  # the output keeps the name readers use
    probe = prove(built, src, tmp_path / "seqbb.qat.keras")
    assert "Layer features:" in probe["original_error"]
    assert [c for _, c, _ in probe["layers"]] == ["InputLayer", "DepthwiseConv2D", "BatchNormalization", "ReLU",
                                                   "Flatten", "Dense"]


def test_keras_applications_backbone(built, tmp_path):
    src = built / "mobilenet" / "mobilenet.keras"
    names = inline(src, tmp_path / "mobilenet.qat.keras")
    assert len(names) == 1 + 154 + 1 and "block_16_project_BN" in names
    probe = prove(built, src, tmp_path / "mobilenet.qat.keras")
    assert "is not supported" in probe["original_error"]
    assert {"block_16_depthwise_relu", "out_relu", names[-1]} <= set(probe["wrapped"])  # names[-1]: the head


def test_plain_tf_savedmodel_stays_float_and_says_so(built):
    src = built / "plain" / "plain.keras"
    _, _, found = findings(src)
    (v,) = [v for v in found if v.code == "QF507"]
    assert v.severity == Severity.WARNING and not v.fix.edits
    assert "stays float" in v.message and "not saved from Keras" in v.message
    # qfix loads it (hub layer from a local SavedModel), from another cwd than the model's.
    assert result(child(LOAD, str(src), cwd=built), "LOAD") == {"layers": ["KerasLayer", "Dense"]}
    # In PTQ mode nothing blocks it any more (QF203 used to refuse every hub layer).
    assert not [v for v in findings(src, mode="ptq")[2] if v.code in ("QF203", "QF507")]


def test_lambda_inside_the_backbone_is_refused_unless_trusted(built):
    src = built / "lambda" / "lambda.keras"
    (v,) = [v for v in findings(src)[2] if v.code == "QF507"]
    assert v.severity == Severity.WARNING and not v.fix.edits
    assert "Lambda" in v.message and "--trust-lambdas" in v.message
    (v,) = [v for v in findings(src, trust_lambdas=True)[2] if v.code == "QF507"]
    assert v.severity == Severity.BLOCKER and v.fix.edits


HOSTILE = {
    "url": ("https://tfhub.dev/google/imagenet/mobilenet_v2_100_96/feature_vector/5", "remote"),
    "missing": ("no_such_backbone", "no SavedModel folder"),
    "file": ("feat_sm/saved_model.pb", "is a file"),
    "not-a-savedmodel": ("feat_sm/variables", "no saved_model.pb"),
}


def hostile_model(built: Path, kind: str) -> Path:
    """The seed model with the handle of `kind`, beside the seed's backbone."""
    handle = HOSTILE[kind][0]
    archive = read_archive(built / "seed" / "seed.keras")
    config = copy.deepcopy(archive.config)
    (hub,) = [r for r in config["config"]["layers"] if r["class_name"] == "KerasLayer"]
    hub["config"]["handle"] = handle
    return write_archive(built / "seed" / f"hostile-{kind}.keras", config, archive.metadata,
                         archive.weights_bytes)


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_handles_are_findings_never_fetched(built, kind):
    reason = HOSTILE[kind][1]
    src = hostile_model(built, kind)
    (v,) = [v for v in findings(src)[2] if v.code == "QF507"]
    assert v.severity == Severity.BLOCKER and not v.fix.edits and reason in v.message
    (v,) = [v for v in findings(src, mode="ptq")[2] if v.code == "QF203"]
    assert reason in v.message


def test_hostile_handle_loads_to_one_line_and_downloads_nothing(built, tmp_path):
    cache = tmp_path / "hub-cache"
    src = hostile_model(built, "url")
    got = result(child(LOAD, str(src), cwd=tmp_path, TFHUB_CACHE_DIR=str(cache)), "LOAD")
    assert got["code"] == "QF917" and "remote" in got["message"] and "\n" not in got["message"]
    proc = subprocess.run([sys.executable, "-m", "qfix", str(src), "--mode", "qat", "--check"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONPATH": str(REPO), "TFHUB_CACHE_DIR": str(cache)})
    assert proc.returncode in (1, 2) and "Traceback" not in proc.stderr + proc.stdout
    assert "QF507" in proc.stdout and "remote" in proc.stdout
    assert not cache.exists() or not any(cache.iterdir())


@pytest.mark.tf
def test_the_seed_fixture_trains_through_the_cli_from_another_folder(tmp_path):
    """The seed scenario as a user runs it: the console script, the fixture's relative hub
    handle (`hub_seed_backbone`, beside the model), the cwd elsewhere. The QAT job resolved
    handles against the cwd only and ended in QF917 on its temporary candidate (new-user review)."""
    root = Path(__file__).resolve().parents[2]
    src = root / "fixtures" / "hub_seed_tfk.keras"
    before = src.read_bytes()
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(root), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([str(Path(sys.executable).parent / "qfix"), str(src), "--mode", "qat", "--samples", "4",
                           "--format", "json", "--out-dir", str(out)], capture_output=True, text=True, cwd=tmp_path,
                          env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["qat"]["trained"] and report["verification"]["fully_on_target"]
    assert ("QF507", "kept") in {(f["code"], f["state"]) for f in report["fixes"]}
    written = read_archive(out / "hub_seed_tfk.qfix.qat.keras")
    assert not any(l.class_name == "KerasLayer" for _, l in build_graph(written.config, written.dialect).walk())
    assert src.read_bytes() == before


def test_a_plain_savedmodel_hub_layer_stays_float_and_the_rest_trains(built, tmp_path):
    """Review of issue 10: a hub layer of a SavedModel not saved from Keras. With a relative
    handle, run from another folder, the QAT job searched its temporary candidate's folder and
    the cwd (QF917 naming qat-candidate-0.keras); with the handle found, quantize_model wrapped
    the hub layer and tfmot refused the model (QF505 "Unable to clone model"). The hub layer
    stays float, the rest is annotated and quantize_apply'd: it trains."""
    src = built / "plain" / "plain.keras"
    before = src.read_bytes()
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([str(Path(sys.executable).parent / "qfix"), str(src), "--mode", "qat", "--check",
                           "--samples", "4", "--format", "json"], capture_output=True, text=True, cwd=tmp_path,
                          env=env, timeout=900)
    assert "QF917" not in proc.stderr and "candidate" not in proc.stdout + proc.stderr, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    codes = {f["code"]: f for f in report["findings"]}
    assert "QF505" not in codes and codes["QF507"]["severity"] == "warning"
    assert report["qat"]["trained"] and report["qat"]["quantize_call"] == "quantize_apply"
    states = {l["name"]: (l["class_name"], l["state"]) for l in report["qat"]["layers"]}
    assert [s for c, s in states.values() if c == "KerasLayer"] == ["float"]
    assert [s for c, s in states.values() if c == "Dense"] == ["quantized"]
    assert src.read_bytes() == before


@pytest.mark.tf
def test_the_seed_fixture_converts_through_the_main_job_from_another_folder(tmp_path):
    """bench/targets.py found it: the main job (a rewrite: the static batch for the Edge TPU)
    wrote its candidate `fixed.keras` to the run folder and loaded it there, where the relative
    handle `hub_seed_backbone` is not: QF917 on edgetpu, tflm and gpu (int8, with no rewrite,
    loaded the input itself and passed)."""
    root = Path(__file__).resolve().parents[2]
    src = root / "fixtures" / "hub_seed_tfk.keras"
    env = {**os.environ, "PYTHONPATH": str(root), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([str(Path(sys.executable).parent / "qfix"), str(src), "--target", "edgetpu", "--samples",
                           "4", "--format", "json", "--out-dir", str(tmp_path / "out")], capture_output=True,
                          text=True, cwd=tmp_path, env=env, timeout=900)
    assert proc.returncode in (0, 1) and "QF917" not in proc.stdout + proc.stderr, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["verification"]["converted"] and report["fixes"]
