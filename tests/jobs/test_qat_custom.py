"""`qfix --mode qat --custom-objects MODULE` on models with the user's own layer classes (QF510).

tfmot refuses a custom class it has no QuantizeConfig for (errors.md B10: "Layer scaled_tanh:
<class ...> is not supported"); the models of tests/jobs/test_qat_job.py's REFUSED table
(`custom_fn`, `custom_seq`, and another class of the kind with a kernel, `custom_dense`) show
tfmot's own error without qfix (its REPRODUCE script), then qfix's annotation: the model trains,
converts to integer ops and keeps its float outputs, and the report says what stays float. The
QuantizeConfig template QF510 prints is run for real: quantize_apply, a training step and the
QAT conversion. Real tfmot, real conversions, no mocks."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import zipfile

import pytest

from qfix.model.graph import build_graph
from qfix.rules.base import Context
from qfix.rules.custom_layer_quantize_config import (TEMPLATE_HEADING, CustomLayerQuantizeConfig, attach_templates,
                                                     quantize_config_template)
from qfix.targets import load_profile
from tests.jobs.test_qat_job import CUSTOM, ROOT, digest, qat_json, qfix_run, reproduce, save_models

# name -> (the custom layer, its class, the attributes its weights are held in)
MODELS = {"custom_fn": ("scaled_tanh", "ScaledTanh", ["alpha"]),
          "custom_seq": ("act", "ScaledTanh", ["alpha"]),
          "custom_dense": ("my_dense", "SimpleDense", ["w", "b"])}


@pytest.fixture(scope="module")
def custom_models(tmp_path_factory):
    return save_models(MODELS, tmp_path_factory.mktemp("qat_custom"))


@pytest.fixture(scope="module")
def original_errors(custom_models):
    return reproduce(custom_models)


@pytest.fixture(scope="module")
def custom_runs(custom_models, tmp_path_factory):
    runs = {}
    for name, path in custom_models.items():
        out = tmp_path_factory.mktemp(f"out_{name}")
        before = digest(path)
        runs[name] = (*qat_json(path, "--out-dir", out, "--custom-objects", CUSTOM), out)
        assert digest(path) == before  # the input is never modified
    return runs


@pytest.mark.tf
@pytest.mark.parametrize("name", list(MODELS))
def test_tfmots_error_on_a_custom_layer_is_gone_and_the_model_trains(name, original_errors, custom_runs):
    layer, cls, attrs = MODELS[name]
    original = original_errors[name]
    assert original is not None and f"Layer {layer}:<class" in original and "is not supported" in original

    code, report, out = custom_runs[name]
    assert code == 0 and report["exit_code"] == 0, (report["findings"], report["qat"]["problems"])
    assert report["qat"]["tfmot_error"] is None and report["qat"]["trained"]
    assert [(f["code"], f["layer"], f["state"]) for f in report["fixes"]] == [("QF510", layer, "kept")]
    assert report["float_equivalence"]["max_abs_diff"] == 0.0  # an annotation changes no float value
    ver = report["verification"]
    assert ver["converted"] and ver["fully_on_target"] and ver["float_tensors"] == []

    # What stays float: the layer's weights during training (its output is quantized), said in
    # its row of the layer report; nothing is float in the QAT model, so no QF506.
    (row,) = [lq for lq in report["qat"]["layers"] if lq["name"] == layer]
    assert (row["class_name"], row["state"]) == (cls, "quantized")
    assert row["detail"].startswith("output; its weights (") and "stay float in training" in row["detail"]
    assert all(a in row["detail"] for a in attrs)
    assert not [f for f in report["findings"] if f["code"] in ("QF505", "QF506")]

    (qf510,) = [f for f in report["findings"] if f["code"] == "QF510"]
    assert qf510["applied"] and qf510["fix"]["applicability"] == "safe"
    assert "OutputQuantizeConfig" in qf510["fix"]["description"]
    template = report["qat"]["quantize_config_templates"][layer]
    assert qf510["fix"]["description"].endswith(f"{TEMPLATE_HEADING}\n{template}")
    quantized = [a for a in attrs if a != "b"]  # a bias stays float (tfmot never fake-quantizes one)
    assert f"({', '.join(f'layer.{a}' for a in quantized)},) = quantize_weights" in template

    written = out / f"{name}.qfix.qat.keras"
    assert report["outputs"] == {"model": str(written)}
    with zipfile.ZipFile(written) as z:
        graph = build_graph(json.loads(z.read("config.json")), "tf_keras")
    assert graph.layers[layer].quantize_config == "OutputQuantizeConfig"
    assert graph.layers[layer].class_name == cls


# The template, written to a module as printed (its `...` filled), run on the fixture model:
# the custom layer annotated with the template's config, the rest by quantize_annotate_model.
TEMPLATE_RUN = """
import importlib, json, os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import numpy as np, tensorflow as tf, tf_keras, tensorflow_model_optimization as tfmot
qk = tfmot.quantization.keras
cls_name, layer_name, model_path = sys.argv[1:4]
template = importlib.import_module("qf510_template")
config_cls = getattr(template, cls_name + "QuantizeConfig")
scope = {**template.custom_objects(), cls_name: getattr(template, cls_name), config_cls.__name__: config_cls}
with qk.quantize_scope(scope):
    model = tf_keras.models.load_model(model_path, compile=False)
    annotate = lambda l: qk.quantize_annotate_layer(l.__class__.from_config(l.get_config()), config_cls()) \\
        if l.name == layer_name else l.__class__.from_config(l.get_config())
    annotated = tf_keras.models.clone_model(model, clone_function=annotate)
    annotated.set_weights(model.get_weights())
    qat = qk.quantize_apply(qk.quantize_annotate_model(annotated))
wrapper = qat.get_layer("quant_" + layer_name)
x = np.random.default_rng(0).random((8, *model.input_shape[1:]), dtype=np.float32)
y = model(x).numpy()
qat.compile(optimizer=tf_keras.optimizers.Adam(1e-3), loss="mse")
before = qat.evaluate(x, y, verbose=0)
qat.train_on_batch(x, y)
converter = tf.lite.TFLiteConverter.from_keras_model(qat)
converter.optimizations = [tf.lite.Optimize.DEFAULT]
converter.inference_input_type = converter.inference_output_type = tf.uint8
interp = tf.lite.Interpreter(model_content=converter.convert())
ops = [op["op_name"] for op in interp._get_ops_details()]
floats = [t["name"] for t in interp.get_tensor_details() if t["dtype"] == np.float32]
print(json.dumps({"weight_quantizers": len(wrapper.quantize_config.get_weights_and_quantizers(wrapper.layer)),
                  "quantizer_vars": sorted(v.name.split("/")[-1] for v in wrapper.non_trainable_weights),
                  "loss": float(before), "ops": ops, "floats": floats}))
"""


@pytest.mark.tf
@pytest.mark.parametrize("name", ["custom_fn", "custom_dense"])
def test_the_quantize_config_template_works_with_tfmot_and_the_converter(name, custom_models, custom_runs,
                                                                         tmp_path):
    layer, cls, attrs = MODELS[name]
    template = custom_runs[name][1]["qat"]["quantize_config_templates"][layer]
    (tmp_path / "qf510_template.py").write_text(template.replace(f"{cls}(...)", f"{cls}()"))
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}", "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", TEMPLATE_RUN, cls, layer, str(custom_models[name])],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    quantized = [a for a in attrs if a != "b"]  # a bias stays float: TFLite keeps it int32
    assert got["weight_quantizers"] == len(quantized)  # every other weight fake-quantized, by its attribute
    assert all(any(v.startswith(f"{a}_") for v in got["quantizer_vars"]) for a in quantized), got["quantizer_vars"]
    assert not any(v.startswith("b_") for v in got["quantizer_vars"]), got["quantizer_vars"]
    assert math.isfinite(got["loss"])
    assert "DEQUANTIZE" not in got["ops"] and got["floats"] == [], got


@pytest.mark.tf
def test_the_snippet_loads_the_annotated_custom_layer_and_trains_it(custom_runs, tmp_path):
    _, report, _ = custom_runs["custom_fn"]
    snippet = report["qat"]["snippet"]
    assert f"quantize_scope(custom_objects({CUSTOM!r}))" in snippet  # the user's classes in the scope
    data = ("import numpy as np\nrng = np.random.default_rng(0)\n"
            "x_train = rng.random((8, 16, 16, 3), dtype=np.float32)\n"
            "y_train = rng.random((8, 14, 14, 4), dtype=np.float32)\n")
    (tmp_path / "train.py").write_text(data + snippet)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "train.py"], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from qfix.targets.tflite import read_tflite

    tfl = read_tflite((tmp_path / "custom_fn.qat.edgetpu.tflite").read_bytes())
    assert {op.name for op in tfl.ops} >= {"CONV_2D", "TANH", "MUL"}
    assert "DEQUANTIZE" not in {op.name for op in tfl.ops}


def test_without_custom_objects_the_run_is_a_clean_refusal(tmp_path):
    """No TensorFlow: the class is never imported, QF203 blocks loading; QF510 still says what
    --mode qat would do. One last line names the flag; nothing is written."""
    src = tmp_path / "custom.keras"
    src.write_bytes(_custom_archive())
    proc = qfix_run(src, "--mode", "qat", "--out-dir", tmp_path / "out")
    assert "Traceback" not in proc.stdout + proc.stderr and proc.stderr == ""
    assert proc.returncode == 1
    assert "QF510" in proc.stdout and "QF203" in proc.stdout
    assert proc.stdout.rstrip().splitlines()[-1] == "not trained: layer 'scaled_tanh' needs its class " \
                                                    "(--custom-objects MODULE)"
    assert not (tmp_path / "out").exists()


def test_a_custom_objects_module_that_does_not_import_is_one_error_line(tmp_path):
    src = tmp_path / "custom.keras"
    src.write_bytes(_custom_archive())
    proc = qfix_run(src, "--mode", "qat", "--custom-objects", "no_such_module_qf510")
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("QF911 ") and "no_such_module_qf510" in lines[0]


def _custom_archive() -> bytes:
    """A tf_keras Conv2D → ScaledTanh model, written without TensorFlow (its config and weights)."""
    import io

    import h5py
    import numpy as np

    from qfix.model.writer import archive_zip

    def entry(cls, module, name, cfg, inbound, registered=None):
        return {"module": module, "class_name": cls, "registered_name": registered, "name": name,
                "config": {"name": name, "trainable": True, "dtype": "float32", **cfg},
                "build_config": {"input_shape": [None, 8, 8, 3]}, "inbound_nodes": inbound}

    layers = [
        {"module": "keras.layers", "class_name": "InputLayer", "registered_name": None, "name": "x",
         "config": {"batch_input_shape": [None, 8, 8, 3], "dtype": "float32", "sparse": False, "ragged": False,
                    "name": "x"}, "inbound_nodes": []},
        entry("Conv2D", "keras.layers", "conv2d", {"filters": 4, "kernel_size": [1, 1], "strides": [1, 1],
                                                   "padding": "valid", "activation": "linear", "use_bias": True},
              [[["x", 0, 0, {}]]]),
        entry("ScaledTanh", "fixtures.custom_layers_tfk", "scaled_tanh", {"init_alpha": 1.0},
              [[["conv2d", 0, 0, {}]]], "qfix_fixtures>ScaledTanh"),
    ]
    config = {"module": "tf_keras.src.engine.functional", "class_name": "Functional", "registered_name": "Functional",
              "config": {"name": "m", "trainable": True, "layers": layers, "input_layers": [["x", 0, 0]],
                         "output_layers": [["scaled_tanh", 0, 0]]}}
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_group("layers/input_layer/vars")
        f["layers/conv2d/vars/0"] = np.ones((1, 1, 3, 4), np.float32)
        f["layers/conv2d/vars/1"] = np.zeros((4,), np.float32)
        f["layers/scaled_tanh/vars/0"] = np.ones((4,), np.float32)
        f.create_group("vars")
    return archive_zip(config, {"keras_version": "2.21.0", "date_saved": "2026-12-01@00:00:00"}, buf.getvalue())


# --- without TensorFlow: the rule and the template -------------------------------------------


def _graph():
    import io

    with zipfile.ZipFile(io.BytesIO(_custom_archive())) as z:
        return build_graph(json.loads(z.read("config.json")), "tf_keras")


def test_a_tf_keras_custom_layer_gets_the_safe_annotation_in_qat_mode_only():
    ctx = Context(load_profile("edgetpu"), mode="qat", custom_objects=CUSTOM)
    (v,) = CustomLayerQuantizeConfig().check(_graph(), ctx)
    assert (v.code, v.location.layer, v.fix.applicability.value) == ("QF510", "scaled_tanh", "safe")
    assert v.fix.edits and "Layer scaled_tanh:<class '…ScaledTanh'> is not supported" in v.message
    assert not list(CustomLayerQuantizeConfig().check(_graph(), Context(load_profile("edgetpu"))))  # ptq


def test_the_template_is_attached_to_qf510_findings_only():
    ctx = Context(load_profile("edgetpu"), mode="qat", custom_objects=CUSTOM)
    findings = list(CustomLayerQuantizeConfig().check(_graph(), ctx))
    weights = {"scaled_tanh": [("alpha", "alpha", [4])], "elsewhere": [("k", "k", [2])]}
    templates = attach_templates(findings, weights, _graph())
    assert list(templates) == ["scaled_tanh"]
    assert findings[0].fix.description.endswith(templates["scaled_tanh"])
    assert "from fixtures.custom_layers_tfk import ScaledTanh" in templates["scaled_tanh"]
    attach_templates(findings, weights, _graph())  # once only
    assert findings[0].fix.description.count(TEMPLATE_HEADING) == 1


def test_a_template_for_a_weightless_layer_and_for_a_weight_no_attribute_holds():
    none = quantize_config_template("Gate", "my_pkg.layers", [])
    assert "        return []\n" in none and "    def set_quantize_weights(self, layer, quantize_weights):\n        pass" in none
    compile(none, "none.py", "exec")
    lost = quantize_config_template("Mix", "my_pkg.layers", [("scale", "scale", [3]), (None, "table_0", [3, 3])])
    assert "(layer.scale,) = quantize_weights" in lost and "left unquantized: 'table_0'" in lost
    compile(lost, "lost.py", "exec")


def test_the_template_leaves_biases_float():
    """New-user review: the template fake-quantized a bias with LastValueQuantizer; tfmot's own
    configs never do and TFLite keeps biases int32."""
    t = quantize_config_template("MyDense", "my_pkg.layers", [("w", "w", [8, 4]), ("b", "b", [4]),
                                                               ("scale", "scale", [4]), ("bias2", "my_bias", [4])])
    assert "(layer.w, layer.scale,) = quantize_weights" in t
    assert "layer.b," not in t and "layer.bias2" not in t
    assert "biases stay float in training" in t and "'b', 'my_bias'" in t
    compile(t, "t.py", "exec")
