"""`qfix --mode qat` through the installed console script: the verdict comes from a real tfmot
run. The four models of issue 10 (and another member of each kind), on which `quantize_model`
raises, get tfmot's own error as QF505 at the right layer and exit 1; a plain tf_keras CNN is
quantized, trained one step, converted and checked on the Edge TPU, and the report's training
snippet runs. Real tfmot, real conversions, no mocks."""

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

from qfix.convert.qat import named_layer
from qfix.model.graph import build_graph
from qfix.model.writer import write_archive
from qfix.rules.tfmot_refused import blamed_layer

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
QFIX = Path(sys.executable).parent / "qfix"
SAMPLES = "4"
CUSTOM = "fixtures.custom_layers_tfk"
QAT_REWRITES = "QF502,QF503,QF504,QF508,QF510"  # the rules whose rewrites make a model acceptable to tfmot


def qfix_run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("QFIX_DEBUG", None)
    return subprocess.run([str(QFIX), *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=900)


def qat_json(*args: str) -> tuple[int, dict]:
    proc = qfix_run(*args, "--mode", "qat", "--format", "json", "--samples", SAMPLES)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert proc.returncode in (0, 1), (proc.returncode, proc.stderr)
    return proc.returncode, json.loads(proc.stdout)


def digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


# --- the models tfmot refuses ---------------------------------------------------------------
# name -> (builder, the layer QF505 must name, what tfmot's message says). Each kind: the issue's
# model (smallest) and another member, Sequential and functional.


def _rescaling_seq(K, L):  # issue 10: a Sequential with Rescaling(1/255) before a Conv2D
    return K.Sequential([K.Input((16, 16, 3)), L.Rescaling(1 / 255, name="rescaling"), L.Conv2D(4, 3),
                         L.GlobalAveragePooling2D(), L.Dense(2)])


def _rescaling_fn(K, L):  # another member: [-1, 1] scaling in a functional model
    i = K.Input((16, 16, 3))
    x = L.Rescaling(1 / 127.5, offset=-1.0, name="prep")(i)
    return K.Model(i, L.Dense(2)(L.Flatten()(L.Conv2D(4, 3)(x))))


def _conv_relu_bn(K, L):  # issue 10: Conv2D(16, 3, activation="relu") then BatchNormalization()
    i = K.Input((16, 16, 3))
    x = L.Conv2D(16, 3, activation="relu")(i)
    return K.Model(i, L.BatchNormalization(name="bn")(x))


def _conv_relu6_bn_seq(K, L):  # another member: Sequential, relu6, a head after the BN
    return K.Sequential([K.Input((12, 12, 3)), L.Conv2D(8, 3, activation="relu6"),
                         L.BatchNormalization(name="bn2"), L.Flatten(), L.Dense(2)])


def _slice_channels(K, L):  # issue 10: a Keras tensor sliced x[:, :, :, 0:2]
    i = K.Input((16, 16, 3))
    x = L.Conv2D(4, 3)(i)
    return K.Model(i, L.Conv2D(2, 1)(x[:, :, :, 0:2]))


def _slice_features(K, L):  # another member (errors.md B7): Dense features sliced x[:, 0:4]
    i = K.Input((8,))
    x = L.Dense(8)(i)
    return K.Model(i, L.Dense(2)(x[:, 0:4]))


def _custom_fn(K, L):  # issue 10: a custom Layer subclass, quantized without a QuantizeConfig
    from fixtures.custom_layers_tfk import ScaledTanh

    i = K.Input((16, 16, 3))
    return K.Model(i, ScaledTanh(name="scaled_tanh")(L.Conv2D(4, 3)(i)))


def _custom_seq(K, L):  # another member: Sequential, the custom layer between two Dense
    from fixtures.custom_layers_tfk import ScaledTanh

    return K.Sequential([K.Input((8,)), L.Dense(8), ScaledTanh(0.5, name="act"), L.Dense(2)])


def _custom_dense(K, L):  # another custom class of the kind: a hand-written dense, with a kernel
    from fixtures.custom_layers_tfk import SimpleDense

    i = K.Input((8,))
    return K.Model(i, L.Dense(2)(SimpleDense(6, name="my_dense")(L.Dense(8)(i))))


REFUSED = {
    "rescaling_seq": (_rescaling_seq, "rescaling", "Layer rescaling:<class"),
    "rescaling_fn": (_rescaling_fn, "prep", "Layer prep:<class"),
    "conv_relu_bn": (_conv_relu_bn, "bn", "Layer bn:<class"),
    "conv_relu6_bn_seq": (_conv_relu6_bn_seq, "bn2", "Layer bn2:<class"),
    "slice_channels": (_slice_channels, "tf.__operators__.getitem", "Shape mismatch"),
    "slice_features": (_slice_features, "tf.__operators__.getitem", "Shape mismatch"),
    "custom_fn": (_custom_fn, "scaled_tanh", "Layer scaled_tanh:<class"),
    "custom_seq": (_custom_seq, "act", "Layer act:<class"),
    "custom_dense": (_custom_dense, "my_dense", "Layer my_dense:<class"),
}

# tfmot's own error on each saved model, in a fresh process (tfmot switches the process to
# tf_keras: never in pytest's), as a user's script would meet it: no qfix involved.
REPRODUCE = """
import json, os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import tf_keras, tensorflow_model_optimization as tfmot
import fixtures.custom_layers_tfk
out = {}
for path in sys.argv[1:]:
    try:
        tfmot.quantization.keras.quantize_model(tf_keras.models.load_model(path, compile=False))
        out[path] = None
    except Exception as e:
        out[path] = f"{type(e).__name__}: {str(e).strip().splitlines()[0]}"
print(json.dumps(out))
"""


def save_models(names, folder: Path) -> dict[str, Path]:
    """The REFUSED models `names`, built with tf_keras and saved in `folder`, by name."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tf_keras as K

    paths = {}
    for name in names:
        K.backend.clear_session()  # layer names restart (the slice is 'tf.__operators__.getitem')
        K.utils.set_random_seed(0)
        paths[name] = folder / f"{name}.keras"
        REFUSED[name][0](K, K.layers).save(paths[name])
    return paths


def reproduce(paths: dict[str, Path]) -> dict[str, str | None]:
    """tfmot's own error on each saved model (REPRODUCE, no qfix), by name; None: accepted."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", REPRODUCE, *map(str, paths.values())],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    by_path = json.loads(proc.stdout.strip().splitlines()[-1])
    return {name: by_path[str(p)] for name, p in paths.items()}


@pytest.fixture(scope="module")
def refused_models(tmp_path_factory):
    return save_models(REFUSED, tmp_path_factory.mktemp("qat_refused"))


@pytest.fixture(scope="module")
def tfmot_errors(refused_models):
    return reproduce(refused_models)


@pytest.mark.tf
@pytest.mark.parametrize("name", list(REFUSED))
def test_a_model_tfmot_refuses_gets_tfmots_error_as_qf505(name, refused_models, tfmot_errors, tmp_path):
    _, layer, says = REFUSED[name]
    path = refused_models[name]
    before = digest(path)
    original = tfmot_errors[name]
    assert original is not None and says in original  # tfmot really raises on this model

    # With qfix's QAT rewrites switched off, the verdict is tfmot's own refusal.
    extra = ("--custom-objects", CUSTOM) if name.startswith("custom") else ()
    code, report = qat_json(path, "--out-dir", tmp_path, "--ignore", QAT_REWRITES, *extra)

    assert code == 1 and report["exit_code"] == 1
    refused = [f for f in report["findings"] if f["code"] == "QF505"]
    assert len(refused) == 1, report["findings"]
    assert refused[0]["severity"] == "blocker"
    assert original in refused[0]["message"]  # tfmot's own words, not a guess
    assert report["qat"]["tfmot_error"] == original[:500]
    if layer is not None:
        assert refused[0]["layer"] == layer
    assert report["qat"]["trained"] is False and "refused" in report["qat"]["not_trained"]
    assert report["verification"]["converted"] is False
    assert report["qat"]["snippet"] is None
    assert list(tmp_path.iterdir()) == [] and digest(path) == before  # nothing written, input untouched


# The rule whose rewrite makes each model acceptable to tfmot.
FIXED_BY = {"rescaling_seq": "QF502", "rescaling_fn": "QF502", "conv_relu_bn": "QF503",
            "conv_relu6_bn_seq": "QF503", "slice_channels": "QF508", "slice_features": "QF508",
            "custom_fn": "QF510", "custom_seq": "QF510", "custom_dense": "QF510"}


@pytest.mark.tf
@pytest.mark.parametrize("name", list(FIXED_BY))
def test_qfix_rewrites_the_refused_layer_and_the_model_trains(name, refused_models, tfmot_errors, tmp_path):
    """The same models with the rewrites on: tfmot's error (reproduced above, without qfix) is
    gone, the float outputs are unchanged, the model trains and its QAT model converts."""
    path = refused_models[name]
    assert tfmot_errors[name] is not None
    extra = ("--custom-objects", CUSTOM) if name.startswith("custom") else ()
    code, report = qat_json(path, "--out-dir", tmp_path, *extra)
    assert not [f for f in report["findings"] if f["code"] == "QF505"], report["qat"]["tfmot_error"]
    assert report["qat"]["tfmot_error"] is None and report["qat"]["trained"], report["qat"]["problems"]
    assert FIXED_BY[name] in {f["code"] for f in report["fixes"] if f["state"] == "kept"}, report["fixes"]
    fe = report["float_equivalence"]
    assert fe["max_abs_diff"] <= fe["tolerance"]
    assert report["verification"]["converted"] and report["qat"]["conversion_error"] is None
    assert report["verification"]["float_tensors"] == []  # all integer (a Rescaling's offset too)
    assert (tmp_path / f"{name}.qfix.qat.keras").is_file()


@pytest.mark.tf
def test_the_text_verdict_of_a_refused_model_is_not_runs_fully(refused_models):
    proc = qfix_run(refused_models["rescaling_seq"], "--mode", "qat", "--check", "--samples", SAMPLES,
                    "--ignore", QAT_REWRITES)
    assert proc.returncode == 1, proc.stderr
    assert "runs fully" not in proc.stdout
    assert "QF505" in proc.stdout and "rescaling" in proc.stdout
    assert proc.stdout.rstrip().splitlines()[-1].startswith("not trained: tfmot's quantize_model refused")


# --- models tfmot accepts -------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("qat_tiny")
    src = FIXTURES / "tiny_cnn_tfk.keras"
    before = digest(src)
    code, report = qat_json(src, "--out-dir", out)
    assert digest(src) == before
    return code, report, out


@pytest.mark.tf
def test_a_plain_tf_keras_cnn_trains_converts_and_runs_fully_on_the_edge_tpu(tiny_run):
    code, report, out = tiny_run
    assert code == 0 and report["exit_code"] == 0, report["findings"]
    qat = report["qat"]
    assert qat["trained"] and qat["tfmot_error"] is None and qat["conversion_error"] is None
    step = qat["training_step"]
    assert isinstance(step["loss_before"], float) and isinstance(step["loss_after"], float)  # finite
    assert step["weights_changed"] and step["samples"] == int(SAMPLES) and step["synthetic"]
    states = {lq["name"]: lq["state"] for lq in qat["layers"]}
    assert states["dense"] == "quantized" and states["conv2d"] == "quantized"
    assert "float" not in states.values()
    assert not [f for f in report["findings"] if f["code"] in ("QF505", "QF506")]
    ver = report["verification"]
    assert ver["converted"] and ver["fully_on_target"] and ver["float_tensors"] == []
    assert "no representative dataset" in ver["recipe"]
    # Nothing rewritten: the input is what tfmot accepts, so nothing is written (no .tflite either).
    assert report["outputs"] == {"model": None} and list(out.iterdir()) == []
    assert report["model_not_written"] and "nothing rewritten" in report["model_not_written"]


@pytest.mark.tf
def test_the_training_snippet_runs_and_makes_a_uint8_edge_tpu_model(tiny_run, tmp_path):
    _, report, _ = tiny_run
    snippet = report["qat"]["snippet"]
    assert "TFLITE_BUILTINS_INT8]" not in snippet.replace("# no target_spec.supported_ops = [TFLITE_BUILTINS_INT8]", "")
    data = ("import numpy as np\nrng = np.random.default_rng(0)\n"
            "x_train = rng.random((8, 32, 32, 3), dtype=np.float32)\ny_train = rng.random((8, 4), dtype=np.float32)\n")
    script = tmp_path / "train.py"
    script.write_text(data + snippet)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from qfix.targets.tflite import read_tflite

    tfl = read_tflite((tmp_path / "tiny_cnn_tfk.qat.edgetpu.tflite").read_bytes())
    io = [tfl.tensors[i] for i in (*tfl.inputs, *tfl.outputs)]
    assert [t.dtype.lower() for t in io] == ["uint8", "uint8"]
    assert io[0].shape[0] == 1  # batch fixed at conversion
    assert {op.name for op in tfl.ops} >= {"CONV_2D", "FULLY_CONNECTED"}
    assert "DEQUANTIZE" not in {op.name for op in tfl.ops}


@pytest.mark.tf
def test_a_rewritten_model_is_written_as_qfix_qat_keras_with_its_dynamic_batch(tmp_path):
    """Another member: a nested tf_keras backbone, which tfmot refuses until QF201 flattens it."""
    src = FIXTURES / "nested_tfk.keras"
    before = digest(src)
    code, report = qat_json(src, "--out-dir", tmp_path)
    assert code == 0, report["findings"]
    assert [f["code"] for f in report["fixes"]] == ["QF201"]
    assert report["float_equivalence"]["max_abs_diff"] <= report["float_equivalence"]["tolerance"]
    written = tmp_path / "nested_tfk.qfix.qat.keras"
    assert report["outputs"] == {"model": str(written)}
    assert sorted(p.name for p in tmp_path.iterdir()) == [written.name]  # no .tflite
    with zipfile.ZipFile(written) as z:
        config = json.loads(z.read("config.json"))
        assert json.loads(z.read("metadata.json"))["keras_version"].startswith("2.")  # tf_keras
    graph = build_graph(config, "tf_keras")
    assert not any(l.subgraph for _, l in graph.walk())
    assert all(l.out_shape[0] is None for l in graph.input_layers())  # not pinned to batch 1
    assert digest(src) == before
    assert str(written) in report["qat"]["snippet"]


@pytest.mark.tf
def test_the_check_run_writes_nothing(tmp_path):
    src = tmp_path / "nested.keras"
    src.write_bytes((FIXTURES / "nested_tfk.keras").read_bytes())
    code, report = qat_json(src, "--check")
    assert code == 0 and report["outputs"] == {"model": None}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nested.keras"]
    # the snippet loads the rewritten model: it says --check did not write it (new-user review)
    assert report["qat"]["snippet"].startswith(
        "# nested.qfix.qat.keras is not written by --check: run the same qfix command without --check first\n")


@pytest.mark.tf
def test_a_rewrite_tfmot_refuses_is_rolled_back_and_the_model_trains(tmp_path):
    """QF302 replaces LeakyReLU by PReLU for the Edge TPU; tfmot's registry has LeakyReLU but not
    PReLU. Without QF502's annotation of the PReLU (ignored here) the rewrite is rolled back,
    naming tfmot's error, and the model trains; the verdict is the QAT model's check: LEAKY_RELU
    stays off the Edge TPU, exit 1."""
    code, report = qat_json(FIXTURES / "leaky_relu_cnn_tfk.keras", "--out-dir", tmp_path, "--ignore", "QF502")
    assert {(f["code"], f["state"]) for f in report["fixes"]} == {("QF302", "rolled back")}
    assert all("PReLU" in f["reason"] and "is not supported" in f["reason"] for f in report["fixes"])
    assert report["qat"]["trained"] and report["qat"]["problems"] == []
    assert {lq["class_name"] for lq in report["qat"]["layers"] if lq["name"].startswith("leaky")} == {"LeakyReLU"}
    ver = report["verification"]
    assert ver["converted"] and not ver["fully_on_target"]
    assert (ver["first_unsupported"]["op"], ver["first_unsupported"]["layer"]) == ("LEAKY_RELU", "leaky_re_lu")
    assert code == 1 and not [f for f in report["findings"] if f["code"] == "QF505"]
    assert list(tmp_path.iterdir()) == []  # no rewrite kept: nothing written


@pytest.mark.tf
def test_the_prelu_of_qf302_annotated_by_qf502_runs_fully_on_the_edge_tpu(tmp_path):
    code, report = qat_json(FIXTURES / "leaky_relu_cnn_tfk.keras", "--check")
    assert {(f["code"], f["state"]) for f in report["fixes"]} == {("QF302", "kept"), ("QF502", "kept")}
    assert report["qat"]["trained"] and report["verification"]["fully_on_target"]
    assert code == 0


@pytest.mark.tf
def test_an_integer_input_is_left_out_of_what_tfmot_quantizes(tmp_path):
    """tfmot's quantize_model fake-quantized the int ids (FakeQuantWithMinMaxVars on int32, QF505
    at 'token_ids'); qfix annotates the float part and tfmot's quantize_apply trains it
    (tests/jobs/test_qat_integer_inputs.py has the kind)."""
    code, report = qat_json(FIXTURES / "int64_ids_tfk.keras", "--check")
    assert not [f for f in report["findings"] if f["code"] == "QF505"], report["qat"]["tfmot_error"]
    assert report["qat"]["quantize_call"] == "quantize_apply" and report["qat"]["trained"]
    assert [(f["code"], f["state"]) for f in report["fixes"]] == [("QF103", "kept")]
    assert report["verification"]["converted"] and report["qat"]["problems"] == []
    assert code == 1 and report["verification"]["first_unsupported"]["op"] == "GATHER"  # the Edge TPU's op table


@pytest.mark.tf
def test_a_keras3_model_is_translated_trained_and_written_as_tf_keras(tmp_path):
    """QF501's fix: the Keras 3 CNN is translated to tf_keras, with the same float outputs,
    and trains; the written file is tf_keras with its dynamic batch."""
    src = FIXTURES / "tiny_cnn_k3.keras"
    before = digest(src)
    code, report = qat_json(src, "--out-dir", tmp_path)
    assert code == 0, (report["findings"], report["qat"]["problems"])
    (qf501,) = [f for f in report["findings"] if f["code"] == "QF501"]
    assert qf501["applied"] and "(translated to tf_keras)" in qf501["message"]
    assert report["qat"]["translated_from_keras3"] and report["qat"]["trained"]
    assert report["float_equivalence"]["max_abs_diff"] <= report["float_equivalence"]["tolerance"]
    assert report["verification"]["fully_on_target"]
    written = tmp_path / "tiny_cnn_k3.qfix.qat.keras"
    assert report["outputs"] == {"model": str(written)}
    with zipfile.ZipFile(written) as z:
        config = json.loads(z.read("config.json"))
        assert json.loads(z.read("metadata.json"))["keras_version"].startswith("2.")
    assert all(l.out_shape[0] is None for l in build_graph(config, "tf_keras").input_layers())
    assert digest(src) == before


# --- without TensorFlow ---------------------------------------------------------------------


def _celu_sequential_k3(path: Path) -> Path:
    """A Keras 3 Sequential whose Activation("celu") has no tf_keras form (tf_keras has no celu;
    hard_silu, the case here before, is now translated as a Functional)."""
    layer = {"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
             "config": {"batch_shape": [None, 4], "dtype": "float32", "sparse": False, "name": "x"}}
    act = {"module": "keras.layers", "class_name": "Activation", "registered_name": None,
           "config": {"name": "act", "trainable": True, "dtype": "float32", "activation": "celu"}}
    config = {"class_name": "Sequential", "module": "keras", "registered_name": None,
              "config": {"name": "s", "trainable": True, "dtype": "float32", "layers": [layer, act]},
              "build_config": {"input_shape": [None, 4]}}
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_group("layers/activation/vars")
        f.create_group("vars")
    metadata = {"keras_version": "3.15.1", "date_saved": "2026-11-30@00:00:00"}
    return write_archive(path, config, metadata, buf.getvalue())


def test_a_keras3_model_without_a_tf_keras_form_is_not_trained_and_says_which_layer(tmp_path):
    src = _celu_sequential_k3(tmp_path / "celu.keras")
    out = tmp_path / "out"
    code, report = qat_json(src, "--out-dir", out)
    assert code == 1
    (qf501,) = [f for f in report["findings"] if f["code"] == "QF501"]
    assert qf501["severity"] == "blocker" and not qf501["applied"]
    assert qf501["message"].endswith("qfix cannot translate it: layer 'act': activation 'celu' has no tf_keras "
                                     "equivalent")
    assert report["qat"]["not_trained"].startswith("not trained: the Keras 3 model has no tf_keras equivalent")
    assert report["qat"]["trained"] is False and not out.exists()


@pytest.mark.parametrize("flags", [("--static",), ("--diff",), ("--in-place",), ("--write",)])
def test_flags_that_make_no_sense_with_qat_are_one_usage_error(flags):
    proc = qfix_run(FIXTURES / "tiny_cnn_tfk.keras", "--mode", "qat", *flags)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("QF914 ") and flags[0] in lines[0], proc.stderr


@pytest.mark.parametrize("content", [b"not a zip at all", b"PK\x03\x04broken"])
def test_a_broken_file_in_qat_mode_is_one_error_line(content, tmp_path):
    bad = tmp_path / "broken.keras"
    bad.write_bytes(content)
    proc = qfix_run(bad, "--mode", "qat", "--check")
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0][:2] == "QF" and lines[0][2] == "9", proc.stderr
    assert "Traceback" not in proc.stderr


def test_tfmots_messages_name_their_layer():
    """The messages of errors.md B4, B7, B8, B10 as tfmot 0.8 prints them on TF 2.21."""
    assert named_layer("Layer batch_normalization:<class 'tf_keras.src.layers.normalization."
                       "batch_normalization.BatchNormalization'> is not supported.") == ("batch_normalization", None)
    assert named_layer("Cannot assign value to variable ' conv2d_3/kernel:0': Shape mismatch.") == ("conv2d_3", None)
    assert named_layer("Unable to clone model. [Cannot deserialize object of type `MyLayer`. If") == (None, "MyLayer")
    assert named_layer("Only some Keras activations under `keras.activations` are supported.") == (None, None)


def test_a_keras_wrapped_error_keeps_its_inner_cause():
    from qfix.convert.qat import tfmot_message

    inner = ("Exception encountered when calling layer \"quantize_layer\" (type QuantizeLayer).\n\nin user code:\n\n"
             "    File \"quant_ops.py\", line 341, in _FakeQuantWithMinMaxVars  *\n\n"
             "    TypeError: Input 'inputs' of 'FakeQuantWithMinMaxVars' Op has type int64 that does not match\n\n"
             "Call arguments received by layer \"quantize_layer\" (type QuantizeLayer):\n  • training=None")
    assert tfmot_message(TypeError(inner)) == (
        'TypeError: Exception encountered when calling layer "quantize_layer" (type QuantizeLayer). '
        "TypeError: Input 'inputs' of 'FakeQuantWithMinMaxVars' Op has type int64 that does not match")
    assert tfmot_message(ValueError("`to_quantize` can only either be a keras Sequential or Functional model.")) == (
        "ValueError: `to_quantize` can only either be a keras Sequential or Functional model.")


def test_a_shape_mismatch_is_blamed_on_the_slice_that_feeds_the_named_layer():
    from qfix.model.archive import read_archive

    a = read_archive(FIXTURES / "tiny_cnn_tfk.keras")
    graph = build_graph(a.config, a.dialect)
    assert blamed_layer(graph, "dense", None) == "dense"  # no slice before it: the layer itself
    assert blamed_layer(graph, None, "DepthwiseConv2D") == "depthwise_conv2d"
    assert blamed_layer(graph, "nowhere", None) == "nowhere"


def test_only_layers_tfmot_left_float_become_qf506_warnings():
    from qfix.convert.qat import LayerQuant, QatTrial
    from qfix.rules.qat_float_layer import QatFloatLayer

    trial = QatTrial(layers=[
        LayerQuant("conv", "Conv2D", "quantized", "weights, activation"),
        LayerQuant("flat", "Flatten", "pass-through", "no arithmetic: carries the int8 tensor it receives"),
        LayerQuant("gate", "Multiply", "float", "its QuantizeConfig (NoOpQuantizeConfig) quantizes nothing"),
        LayerQuant("fold", "BatchNormalization", "transformed", "tfmot's graph transforms replaced it"),
    ])
    (v,) = QatFloatLayer().from_trial(trial)
    assert (v.code, v.severity.value, v.location.layer) == ("QF506", "warning", "gate")
    assert "NoOpQuantizeConfig" in v.message


def test_zero_signal_on_a_qat_model_trained_one_step_is_a_warning():
    """New-user review: a QAT model trained one step keeps tfmot's ±6 output ranges; one
    rounding flip between the .tflite and the QAT model (12/255) read as 13 dB, a QF408 blocker."""
    from qfix.jobs.qat import one_step_ranges
    from qfix.rules.zero_signal import ZeroSignal
    from qfix.types import Severity

    v = ZeroSignal().violation("int8 outputs carry no usable signal: SQNR 13.0 dB", None)
    assert v.severity == Severity.BLOCKER
    one_step_ranges([v])
    assert v.severity == Severity.WARNING and "trained one step" in v.message


K3_SLICE = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import keras
i = keras.Input((8, 8, 4))
keras.Model(i, keras.layers.Conv2D(3, 1)(i[:, :, :, 0:2])).save(sys.argv[1])
"""


@pytest.mark.tf
def test_a_keras3_slice_is_translated_with_its_input_shape_and_rewritten(tmp_path):
    """New-user review: the Keras 3 form of `x[:, :, :, 0:2]` stayed a SlicingOpLambda (its
    translation recorded no input shape, which QF508's selection conv needs) and tfmot refused."""
    src = tmp_path / "k3_slice.keras"
    subprocess.run([sys.executable, "-c", K3_SLICE, str(src)], check=True, timeout=300)
    code, report = qat_json(src, "--check")
    assert [(f["code"], f["state"]) for f in report["fixes"]] == [("QF508", "kept")]
    assert report["qat"]["trained"] and report["verification"]["fully_on_target"]
    assert report["float_equivalence"]["max_abs_diff"] <= report["float_equivalence"]["tolerance"]
    assert code == 0


@pytest.mark.tf
def test_a_keras3_custom_class_without_a_tf_keras_twin_is_not_trained_and_says_so(tmp_path):
    """New-user review: a Keras 3 custom layer loaded with --custom-objects ended in QF917 on a
    temporary file, asking for the flag that was given."""
    code, report = qat_json(FIXTURES / "custom_layer_k3.keras", "--custom-objects", "fixtures.custom_layers",
                            "--out-dir", tmp_path)
    assert code == 1
    why = report["qat"]["not_trained"]
    assert "'qfix_fixtures>ScaledTanh' is registered with Keras 3 only" in why and "candidate" not in why
    (qf510,) = [f for f in report["findings"] if f["code"] == "QF510"]  # its annotation waits for the translation
    assert qf510["fix"]["applicability"] == "display-only" and "once the model is translated" in qf510["fix"]["description"]
    assert list(tmp_path.iterdir()) == []


SMALL_OUTPUTS = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tf_keras as K
i = K.Input((8,), name="x")
# outputs within ±0.008, under half a step (0.0235) of tfmot's initial ±6 output range
y = K.layers.Dense(2, kernel_initializer=K.initializers.Constant(0.001), name="dense")(i)
K.Model(i, y).save(sys.argv[1])
"""


@pytest.mark.tf
def test_constant_qat_outputs_of_a_varying_float_model_are_a_qf408_warning(tmp_path):
    """Review of issue 10 (tk_hub, tk_lambda_known): the QAT model trained one step answered 0
    for every sample, its SQNR read "inf" (a string in the JSON), top-1 100 %, and nothing said
    so. Small float outputs that vary round to one value under tfmot's initial ±6 ranges."""
    src = tmp_path / "small.keras"
    subprocess.run([sys.executable, "-c", SMALL_OUTPUTS, str(src)], check=True, timeout=300)
    code, report = qat_json(src, "--check")
    (v,) = [f for f in report["findings"] if f["code"] == "QF408"]
    assert v["severity"] == "warning" and "same output for every sample" in v["message"]
    assert "initial quantizer ranges" in v["message"] and "train on representative data" in v["message"]
    sqnr = report["verification"]["fidelity"]["sqnr_db"]
    assert sqnr is None or isinstance(sqnr, float)  # a number or null, never "inf"
    assert code == 0  # a warning: training sets the ranges
