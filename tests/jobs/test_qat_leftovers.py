"""Loose ends of `--mode qat` (issue 10 review): the translation notes describe the model
written, and the PTQ job refuses the QAT mode it no longer runs. Pure Python (no TensorFlow):
the Keras 3 fixtures are translated and rewritten as run_qat does."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from qfix.jobs.check import Options, context, load
from qfix.jobs.fix import apply_fixes, run_fix
from qfix.model.cases import empty_weights, sequential_config
from qfix.model.to_tf_keras import translate, written_notes
from qfix.model.to_tf_keras.notes import LAMBDA_CARRIED, LAMBDA_REPLACED

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
QAT = Options(mode="qat")


def _qat_rewritten(config: dict, weights: bytes, profile, skip: set[str] = frozenset()):
    """The translated model's notes and its config after the qat-mode rewrites (as run_qat)."""
    t = translate(config, weights)
    fixed, _, fixes, _ = apply_fixes(copy.deepcopy(t.config), t.weights, "tf_keras", context(profile, QAT), QAT,
                                     False, skip_codes=set(skip))
    return t.notes, fixed, fixes


def _fixture():
    archive, _, profile, _ = load(FIXTURES / "lambda_cnn_k3.keras", QAT)
    return archive, profile


def test_a_lambda_replaced_by_qf202_is_not_noted_as_carried():
    """lambda_cnn_k3's `t * 0.5 + 0.25` becomes Rescaling (QF202): the note says so."""
    archive, profile = _fixture()
    notes, fixed, fixes = _qat_rewritten(archive.config, archive.weights_bytes, profile)
    assert ("QF202", "scale_shift") in {(f.code, f.layer) for f in fixes}
    assert notes == [f"scale_shift: {LAMBDA_CARRIED}"]  # what the translation alone wrote
    assert written_notes(notes, fixed) == [f"scale_shift: {LAMBDA_REPLACED}"]


def test_a_lambda_in_a_sequential_replaced_by_qf202_is_not_noted_as_carried():
    """Another member: the same Lambda in a Keras 3 Sequential."""
    archive, profile = _fixture()
    lam = next(l for l in archive.config["config"]["layers"] if l["class_name"] == "Lambda")
    conv = next(l for l in archive.config["config"]["layers"] if l["class_name"] == "Conv2D")
    shape = conv["build_config"]["input_shape"]
    seq = sequential_config(("x", shape, "float32"), [
        ("conv", "Conv2D", {k: v for k, v in conv["config"].items() if k not in ("name", "dtype")}, shape),
        ("scale_shift", "Lambda", {k: v for k, v in lam["config"].items() if k not in ("name", "dtype")},
         lam["build_config"]["input_shape"]),
    ])
    notes, fixed, fixes = _qat_rewritten(seq, empty_weights(seq), profile)
    assert ("QF202", "scale_shift") in {(f.code, f.layer) for f in fixes}
    assert written_notes(notes, fixed) == [f"scale_shift: {LAMBDA_REPLACED}"]


def test_a_lambda_left_in_place_is_still_noted_as_carried():
    """Without QF202 the Lambda is written with its bytecode, and the note keeps saying so."""
    archive, profile = _fixture()
    notes, fixed, fixes = _qat_rewritten(archive.config, archive.weights_bytes, profile, skip={"QF202"})
    assert "QF202" not in {f.code for f in fixes}
    assert written_notes(notes, fixed) == [f"scale_shift: {LAMBDA_CARRIED}"]


def test_run_fix_refuses_the_qat_mode():
    """--mode qat is run_qat; run_fix would judge QAT rewrites by a PTQ conversion."""
    with pytest.raises(ValueError, match="run_qat"):
        run_fix(FIXTURES / "tiny_cnn_tfk.keras", QAT)


# --- tf_keras's hard_sigmoid through --mode qat (TF) ------------------------------------------

HARD_SIGMOID_MODELS = '''
import sys
import tf_keras as K
L = K.layers
K.utils.set_random_seed(0)
out = sys.argv[1]
# The smallest: an Activation("hard_sigmoid") in a Sequential (it must become a Functional).
K.Sequential([K.Input((8, 8, 3)), L.Conv2D(4, 3), L.Activation("hard_sigmoid"), L.Flatten(), L.Dense(2)]
             ).save(f"{out}/hsig_activation_seq.keras")
# Another member: activation="hard_sigmoid" on a Conv2D, functional.
i = K.Input((8, 8, 3))
x = L.Conv2D(4, 3, activation="hard_sigmoid")(i)
K.Model(i, L.Dense(2)(L.GlobalAveragePooling2D()(x))).save(f"{out}/hsig_conv.keras")
'''


@pytest.fixture(scope="module")
def hard_sigmoid_models(tmp_path_factory):
    import os
    import subprocess
    import sys

    d = tmp_path_factory.mktemp("hsig")
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", HARD_SIGMOID_MODELS, str(d)], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return d


@pytest.mark.tf
@pytest.mark.parametrize("name", ["hsig_activation_seq", "hsig_conv"])
def test_tf_keras_hard_sigmoid_converts_fully_integer_after_qat(hard_sigmoid_models, name):
    """tf_keras's hard_sigmoid (clip(0.2x + 0.5, 0, 1)) was annotated output-only and stayed a
    float island; rebuilt as Rescaling → ReLU(6.0) → Rescaling the QAT model trains and converts with no float
    tensor, fully on the Edge TPU, and the rewritten float model computes the same outputs."""
    import json
    import os
    import subprocess
    import sys

    root = FIXTURES.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.run([sys.executable, "-m", "qfix", str(hard_sigmoid_models / f"{name}.keras"), "--mode", "qat",
                           "--check", "--format", "json", "--samples", "4"], capture_output=True, text=True,
                          env=env, cwd=root, timeout=900)
    assert "Traceback" not in proc.stderr, proc.stderr
    out = json.loads(proc.stdout)
    notes = [f["note"] for f in out["fixes"] if f["code"] == "QF504" and f["state"] == "kept"]
    assert len(notes) == 1 and "ReLU(6.0)" in notes[0], out["fixes"]
    assert out["qat"]["trained"], out["qat"]
    ver = out["verification"]
    assert ver["float_tensors"] == [] and ver["fully_on_target"], ver
    fe = out["float_equivalence"]
    assert fe is not None and fe["max_abs_diff"] <= 1e-6 and fe["max_abs_diff"] <= fe["tolerance"], fe
    assert proc.returncode == 0, out["findings"]


# --- a QAT model's ops are charged to their layers ------------------------------------------


@pytest.mark.parametrize("tensor,layer", [
    ("gelu_mlp/quant_dense/Gelu;gelu_mlp/quant_dense/MatMul", "dense"),  # a wrapped Dense, its fused GELU
    ("model/quant_conv2d_1/Conv2D;model/quant_conv2d_1/BiasAdd", "conv2d_1"),  # another: a conv, suffixed
])
def test_a_tfmot_wrapper_scope_names_the_layer_it_wraps(tensor, layer):
    from qfix.targets.tflite import layer_of

    assert layer_of(tensor, ["input_1", "conv2d", "conv2d_1", "dense", "dense_1"], keras3=False) == layer


def test_a_layer_named_like_a_wrapper_is_still_itself():
    from qfix.targets.tflite import layer_of

    assert layer_of("model/quant_conv/Conv2D", ["quant_conv", "conv"], keras3=False) == "quant_conv"


def test_an_op_without_a_layer_says_why():
    from qfix.targets.check import from_layer

    assert from_layer("dense") == "from layer 'dense'"
    assert "None" not in from_layer(None) and "no Keras layer" in from_layer(None)


@pytest.mark.tf
@pytest.mark.parametrize("fixture,layer", [("gelu_mlp_tfk", "dense"), ("dynamic_shape_cnn_tfk", "conv2d")])
def test_qf304_on_a_qat_model_names_its_layer(fixture, layer):
    """QF304 said "from layer None" on every QAT run: the QAT model's tensors are scoped by
    tfmot's `quant_<layer>` wrappers. The first op off the Edge TPU names its layer."""
    from qfix.jobs.qat import run_qat

    run = run_qat(FIXTURES / f"{fixture}.keras", Options(mode="qat", samples=4), check=True)
    (v,) = [v for v in run.result.findings if v.code == "QF304"]
    assert v.location.layer == layer and f"from layer {layer!r}" in v.message, v.message


# --- hard_silu in a Keras 3 Sequential ------------------------------------------------------


def _k3_weights(config: dict, variables: dict) -> bytes:
    """A Keras 3 model.weights.h5 with `variables` for the given layer paths."""
    import io

    import h5py

    from qfix.model.weights import group_keys

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_group("vars")
        for path, group in group_keys(config, "keras3").items():
            g = f.create_group(group + "/vars")
            for i, v in enumerate(variables.get(path, [])):
                g.create_dataset(str(i), data=v)
    return buf.getvalue()


def _tf_keras_vars(weights: bytes, config: dict, path: tuple) -> list:
    import io

    import h5py

    from qfix.model.weights import group_keys

    with h5py.File(io.BytesIO(weights), "r") as f:
        g = f[group_keys(config, "tf_keras")[path] + "/vars"]
        return [g[k][()] for k in sorted(g, key=int)]


@pytest.mark.parametrize("act", ["hard_silu", "hard_swish"])
def test_hard_silu_in_a_sequential_is_translated_as_the_functional_it_stands_for(act):
    """Was Untranslatable ("needs a two-input Multiply"): the Sequential becomes a Functional
    whose Multiply reads the layer's output and its gate, the kernel carried over."""
    import numpy as np

    seq = sequential_config(("x", (None, 8), "float32"), [("d", "Dense", {"units": 4, "activation": act}, (None, 8)),
                                                         ("o", "Dense", {"units": 2}, (None, 4))])
    kernel = np.arange(32, dtype="float32").reshape(8, 4)
    t = translate(seq, _k3_weights(seq, {("d",): [kernel, np.ones(4, "float32")]}))
    layers = {l["config"]["name"]: l for l in t.config["config"]["layers"]}
    assert t.config["class_name"] == "Functional"
    mul = layers[f"d_{act}"]
    assert mul["class_name"] == "Multiply"
    assert {ref[0] for ref in mul["inbound_nodes"][0]} == {"d", "d_hard_div6"}  # x and its gate
    assert layers["o"]["inbound_nodes"][0][0][0] == f"d_{act}"
    np.testing.assert_array_equal(_tf_keras_vars(t.weights, t.config, ("d",))[0], kernel)
    assert any("Sequential written as the Functional" in n for n in t.notes)


def test_hard_silu_in_a_nested_sequential_is_translated():
    """Another member: the Sequential is nested in a Functional (an Activation layer this time)."""
    from qfix.model.cases import functional_config

    inner = sequential_config(("i", (None, 8), "float32"), [("a", "Activation", {"activation": "hard_silu"})],
                              name="inner")
    outer = functional_config([("x", (None, 8), "float32")],
                              [("inner", "Sequential", {"__sub": inner, "__module": "keras"}, ["x"])], ["inner"])
    t = translate(outer, empty_weights(outer))
    (nested,) = [l for l in t.config["config"]["layers"] if l["config"]["name"] == "inner"]
    assert nested["class_name"] == "Functional"
    assert "Multiply" in {l["class_name"] for l in nested["config"]["layers"]}
