"""QF502-QF504 on tiny real models, each fault kind of issue 10 on its smallest input and another
member of its kind: tfmot's real `quantize_model` raises on the model as built; qfix's fix
(rewrite or annotation, applied by the fix job's loop) keeps the float outputs
(max |Δ| ≤ 1e-5 · max(1, |out|)); `quantize_model` then accepts the fixed model (inside the
quantize scope of qfix's QuantizeConfigs) and one `train_on_batch` step runs. The exact
rewrites also run on Keras 3 models (float outputs only: tfmot does not take Keras 3).

The TensorFlow half runs in a child process (this file, run as a script), which needs
`TF_USE_LEGACY_KERAS=1` before TensorFlow is imported; the test process must not get it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bn_stats(K, model):
    """Trained-looking statistics for every BatchNormalization (a fresh BN is nearly the
    identity, which would hide a wrong fold)."""
    import numpy as np

    rng = np.random.default_rng(1)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            c = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 2, c), rng.uniform(-1, 1, c), rng.uniform(-1, 1, c),
                               rng.uniform(0.2, 3, c)])
    return model


# name → (dialect, codes fixed, builder(K) → model, what tfmot's error says about the original)
def _rescaling_seq(K):  # fault: Rescaling(1/255) before a Conv2D in a Sequential (smallest)
    L = K.layers
    return K.Sequential([K.Input((8, 8, 3)), L.Rescaling(1 / 255.0), L.Conv2D(4, 3), L.Flatten(), L.Dense(2)])


def _subtract(K):  # another member: an elementwise merge the registry lacks
    L = K.layers
    i = K.Input((8,))
    return K.Model(i, L.Dense(2)(L.Subtract()([i, L.Dense(8)(i)])))


def _conv_relu_bn(K):  # fault: Conv2D(16, 3, activation="relu") → BatchNormalization (smallest)
    L = K.layers
    i = K.Input((8, 8, 3))
    x = L.BatchNormalization()(L.Conv2D(16, 3, activation="relu")(i))
    return _bn_stats(K, K.Model(i, L.Dense(2)(L.GlobalAveragePooling2D()(x))))


def _dense_relu_bn_seq(K):  # another member: Dense(relu) → BN in a Sequential (rank 2: reshaped around)
    L = K.layers
    return _bn_stats(K, K.Sequential([K.Input((8,)), L.Dense(8, activation="relu"), L.BatchNormalization(), L.Dense(2)]))


def _dense_relu6_bn(K):  # another member, functional: rank 3, relu6 fused before the BN
    L = K.layers
    i = K.Input((5, 8))
    x = L.BatchNormalization()(L.Dense(8, activation="relu6")(i))
    return _bn_stats(K, K.Model(i, L.Dense(2)(L.Flatten()(x))))


def _relu6(K):  # fault: activation="relu6" (smallest)
    L = K.layers
    i = K.Input((8, 8, 3))
    return K.Model(i, L.Dense(2)(L.GlobalAveragePooling2D()(L.Conv2D(4, 3, activation="relu6")(i))))


def _swish_seq(K):  # accepted by tfmot but converted to float: split off as an Activation (a warning)
    L = K.layers
    return K.Sequential([K.Input((8, 8, 3)), L.Conv2D(4, 3, activation="swish"), L.GlobalAveragePooling2D(), L.Dense(2)])


def _elu_seq(K):  # another member: an activation tfmot refuses in an Activation layer too (split + annotation)
    L = K.layers
    return K.Sequential([K.Input((8,)), L.Dense(8, activation="elu"), L.Dense(2)])


def _conv1d(K):  # fault: Conv1D (smallest), with the MaxPooling1D tfmot rejects as well
    L = K.layers
    i = K.Input((16, 4))
    x = L.MaxPooling1D(2)(L.Conv1D(8, 3, activation="relu")(i))
    return K.Model(i, L.Dense(2)(L.Flatten()(x)))


def _conv1d_seq(K):  # another member: Sequential, same padding, stride 2, dilation-free, a DepthwiseConv1D
    L = K.layers
    return K.Sequential([K.Input((16, 4)), L.Conv1D(8, 3, padding="same", strides=2), L.DepthwiseConv1D(3),
                         L.GlobalAveragePooling1D(), L.Dense(2)])


def _multiply(K):  # fault: Multiply (a squeeze-and-excitation block)
    L = K.layers
    i = K.Input((8, 8, 3))
    x = L.Conv2D(8, 1)(i)
    s = L.Reshape((1, 1, 8))(L.Dense(8, activation="sigmoid")(L.GlobalAveragePooling2D()(x)))
    return K.Model(i, L.Dense(2)(L.Flatten()(L.Multiply()([x, s]))))


def _layernorm(K):  # fault: LayerNormalization (annotated; its op stays float)
    L = K.layers
    i = K.Input((4, 8))
    return K.Model(i, L.Dense(2)(L.Flatten()(L.LayerNormalization()(L.Dense(8)(i)))))


def _prelu(K):  # fault: PReLU
    L = K.layers
    i = K.Input((8, 8, 3))
    return K.Model(i, L.Dense(2)(L.Flatten()(L.PReLU(shared_axes=[1, 2])(L.Conv2D(4, 3)(i)))))


def _standalone_bn(K):  # fault: a standalone BN (after an Add, as in DenseNet's pre-activation blocks)
    L = K.layers
    i = K.Input((8, 8, 3))
    a = L.Conv2D(4, 1)(i)
    x = L.BatchNormalization()(L.Add()([a, L.Conv2D(4, 3, padding="same")(i)]))
    return _bn_stats(K, K.Model(i, L.Dense(2)(L.GlobalAveragePooling2D()(L.ReLU()(x)))))


def _normalization(K):  # the input Normalization of EfficientNet, statistics given in the config
    L = K.layers
    i = K.Input((8, 8, 3))
    x = L.Normalization(mean=[0.2, 0.5, -0.1], variance=[0.3, 2.0, 0.7])(i)
    return K.Model(i, L.Dense(2)(L.Flatten()(L.Conv2D(4, 3)(x))))


def _normalization_adapted_seq(K):  # another member: adapted statistics (weights), rank 3, Sequential
    import numpy as np

    L = K.layers
    norm = L.Normalization()
    norm.adapt(np.random.default_rng(2).normal(0.5, 2.0, (16, 5, 4)).astype("float32"))
    return K.Sequential([K.Input((5, 4)), norm, L.Flatten(), L.Dense(2)])


def _bn_first_seq(K):  # another member: a BN on the input of a Sequential
    L = K.layers
    return _bn_stats(K, K.Sequential([K.Input((8, 8, 3)), L.BatchNormalization(), L.Conv2D(4, 3), L.Flatten(),
                                      L.Dense(2)]))


MODELS = {
    "rescaling_seq": ("tf_keras", ["QF502"], _rescaling_seq, "Rescaling'> is not supported"),
    "subtract": ("tf_keras", ["QF502"], _subtract, "Subtract'> is not supported"),
    "conv_relu_bn": ("tf_keras", ["QF503"], _conv_relu_bn, "BatchNormalization'> is not supported"),
    "dense_relu_bn_seq": ("tf_keras", ["QF503"], _dense_relu_bn_seq, "BatchNormalization'> is not supported"),
    "dense_relu6_bn": ("tf_keras", ["QF503", "QF504"], _dense_relu6_bn, "BatchNormalization'> is not supported"),
    "relu6": ("tf_keras", ["QF504"], _relu6, "Only some Keras activations"),
    "elu_seq": ("tf_keras", ["QF504"], _elu_seq, "Only some Keras activations"),
    "swish_seq": ("tf_keras", ["QF504"], _swish_seq, "accepted"),
    "conv1d": ("tf_keras", ["QF502"], _conv1d, "Conv1D'> is not supported"),
    "conv1d_seq": ("tf_keras", ["QF502"], _conv1d_seq, "Conv1D'> is not supported"),
    "multiply": ("tf_keras", ["QF502"], _multiply, "Multiply'> is not supported"),
    "layernorm": ("tf_keras", ["QF502"], _layernorm, "LayerNormalization'> is not supported"),
    "prelu": ("tf_keras", ["QF502"], _prelu, "PReLU'> is not supported"),
    "standalone_bn": ("tf_keras", ["QF502"], _standalone_bn, "BatchNormalization'> is not supported"),
    "bn_first_seq": ("tf_keras", ["QF502"], _bn_first_seq, "BatchNormalization'> is not supported"),
    "normalization": ("tf_keras", ["QF502"], _normalization, "Normalization'> is not supported"),
    "normalization_adapted_seq": ("tf_keras", ["QF502"], _normalization_adapted_seq, "Normalization'> is not supported"),
    "k3_normalization": ("keras3", ["QF502"], _normalization, None),
    "k3_normalization_adapted_seq": ("keras3", ["QF502"], _normalization_adapted_seq, None),
    # Keras 3: the exact rewrites, float outputs only.
    "k3_conv_relu_bn": ("keras3", ["QF503"], _conv_relu_bn, None),
    "k3_dense_relu_bn_seq": ("keras3", ["QF503"], _dense_relu_bn_seq, None),
    "k3_relu6": ("keras3", ["QF504"], _relu6, None),
    "k3_dense_relu6_bn": ("keras3", ["QF503", "QF504"], _dense_relu6_bn, None),
    "k3_conv1d": ("keras3", ["QF502"], _conv1d, None),
    "k3_conv1d_seq": ("keras3", ["QF502"], _conv1d_seq, None),
    "k3_standalone_bn": ("keras3", ["QF502"], _standalone_bn, None),
}
# What each fix must have done: (code, layer class in the fixed model that must be there).
FIXED_HAS = {
    "rescaling_seq": "QuantizeAnnotate", "subtract": "QuantizeAnnotate", "multiply": "QuantizeAnnotate",
    "layernorm": "QuantizeAnnotate", "prelu": "QuantizeAnnotate", "elu_seq": "QuantizeAnnotate",
    "conv_relu_bn": "DepthwiseConv2D", "dense_relu6_bn": "DepthwiseConv2D", "dense_relu_bn_seq": "DepthwiseConv2D", "standalone_bn": "DepthwiseConv2D",
    "bn_first_seq": "DepthwiseConv2D", "normalization": "DepthwiseConv2D", "normalization_adapted_seq": "DepthwiseConv2D",
    "relu6": "ReLU", "swish_seq": "Activation", "conv1d": "MaxPooling2D", "conv1d_seq": "DepthwiseConv2D",
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
            if dialect == "tf_keras":
                try:
                    Q.quantize_model(model)
                    r["original"] = "accepted"
                except Exception as exc:  # noqa: BLE001 - tfmot's error text is what we check
                    r["original"] = f"{type(exc).__name__}: {exc}"
            a = read_archive(src)
            opts = Options(target="edgetpu", mode="qat", select=codes)
            config, weights, applied, skipped = apply_fixes(a.config, a.weights_bytes, a.dialect,
                                                            context(load_profile("edgetpu"), opts), opts, unsafe=False)
            r["applied"] = [[f.code, f.layer, f.note] for f in applied]
            r["skipped"] = skipped
            fixed_path = write_archive(d / f"{name}.fixed.keras", config, a.metadata, weights)
            r["fixed_classes"] = sorted({l.get("class_name") for l in config["config"]["layers"]})
            with Q.quantize_scope(custom_objects()):
                fixed = K.models.load_model(fixed_path)
            x = np.random.default_rng(0).uniform(-1, 1, (4, *model.inputs[0].shape[1:])).astype("float32")
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
    out = tmp_path_factory.mktemp("qat_rewrites") / "results.json"
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, __file__, str(out)], env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.tf
@pytest.mark.parametrize("name", sorted(MODELS))
def test_fix_keeps_float_outputs_and_makes_tfmot_quantize_and_train(results, name):
    dialect, codes, _, error = MODELS[name]
    r = results[name]
    assert "error" not in r, r.get("error")
    assert r["applied"] and not r["skipped"], r
    assert {c for c, _, _ in r["applied"]} == set(codes), r["applied"]
    assert r["delta"] <= 1e-5 * r["scale"], r
    assert FIXED_HAS[name.removeprefix("k3_")] in r["fixed_classes"], r["fixed_classes"]
    if dialect == "tf_keras":
        assert error in r["original"], r["original"]  # tfmot's own error on the model as built
        assert r["loss"] == r["loss"], r  # quantize_model accepted the fixed model and a training step ran (not NaN)


FIXTURES = ROOT / "fixtures"


def _lint_qat(config, dialect, code):
    from qfix.model.graph import build_graph
    from qfix.rules.base import Context
    from qfix.rules.lint import lint
    from qfix.targets import load_profile

    return [v for v in lint(build_graph(config, dialect), Context(load_profile("edgetpu"), mode="qat")) if v.code == code]


def test_annotation_is_written_as_tf_keras_saves_it_and_its_weights_move_under_the_wrapper():
    """The fix job's loop on a tf_keras transformer block: both LayerNormalizations are annotated
    (the JSON form of `quantize_annotate_layer(..., OutputQuantizeConfig())` saved by tf_keras),
    their gamma/beta move to `layers/quantize_annotate*/layer/vars`, and the re-linted model
    reports only what has no route (MultiHeadAttention, display-only)."""
    import io

    import h5py
    import numpy as np

    from qfix.jobs.check import Options, context
    from qfix.jobs.fix import apply_fixes
    from qfix.model.archive import read_archive
    from qfix.model.graph import build_graph
    from qfix.model.weights import group_keys, read_vars
    from qfix.targets import load_profile
    from qfix.types import Applicability

    a = read_archive(FIXTURES / "transformer_block_tfk.keras")
    before = {p[-1]: read_vars(a.weights_bytes, g) for p, g in group_keys(a.config, "tf_keras").items()}
    opts = Options(target="edgetpu", mode="qat", select=["QF502"])
    config, weights, applied, skipped = apply_fixes(a.config, a.weights_bytes, "tf_keras",
                                                    context(load_profile("edgetpu"), opts), opts, unsafe=False)
    names = sorted(f.layer for f in applied)
    assert names == ["layer_normalization", "layer_normalization_1"] and not skipped
    raw = next(r for r in config["config"]["layers"] if r["config"]["name"] == "layer_normalization")
    assert raw["class_name"] == "QuantizeAnnotate" and raw["registered_name"] == "QuantizeAnnotate"
    assert raw["module"] == "tensorflow_model_optimization.python.core.quantization.keras.quantize_annotate"
    assert raw["config"]["quantize_config"] == {"class_name": "qfix>OutputQuantizeConfig", "config": {}}
    inner = raw["config"]["layer"]
    assert inner["class_name"] == "LayerNormalization" and "inbound_nodes" not in inner and raw["inbound_nodes"]
    keys = group_keys(config, "tf_keras")
    assert keys[("layer_normalization",)] == "layers/quantize_annotate/layer"
    with h5py.File(io.BytesIO(weights), "r") as f:
        assert "layers/quantize_annotate/layer/vars/0" in f
    for name in names:
        moved = read_vars(weights, keys[(name,)])
        assert len(moved) == 2 and all(np.array_equal(x, y) for x, y in zip(moved, before[name]))
    layer = build_graph(config, "tf_keras").layers["layer_normalization"]
    assert (layer.class_name, layer.quantize_config) == ("LayerNormalization", "OutputQuantizeConfig")
    left = _lint_qat(config, "tf_keras", "QF502")
    assert [(v.location.layer, v.fix.applicability) for v in left] == [("multi_head_attention", Applicability.DISPLAY_ONLY)]


def test_annotation_refuses_keras3_and_classes_without_a_config():
    from qfix.model import rewrites
    from qfix.model.archive import read_archive
    from qfix.model.edit import EditError, ModelEdit

    a = read_archive(FIXTURES / "transformer_block_k3.keras")
    with pytest.raises(EditError, match="tf_keras"):
        rewrites.annotate_quantize(ModelEdit(a.config, "keras3"), (), "layer_normalization")
    t = read_archive(FIXTURES / "transformer_block_tfk.keras")
    with pytest.raises(EditError, match="no QuantizeConfig"):
        rewrites.annotate_quantize(ModelEdit(t.config, "tf_keras"), (), "multi_head_attention")


def test_rewrites_refuse_what_they_cannot_write_exactly():
    from qfix.model import rewrites
    from qfix.model.cases import functional_config
    from qfix.model.edit import EditError, ModelEdit

    causal = functional_config([("x", (None, 16, 4), "float32")],
                               [("c", "Conv1D", {"filters": 8, "kernel_size": 3, "padding": "causal"}, ["x"])], ["c"])
    with pytest.raises(EditError, match="causal"):
        rewrites.conv1d_as_conv2d(ModelEdit(causal, "keras3"), (), "c")
    bn1 = functional_config([("x", (None, 8, 8, 3), "float32")], [("bn", "BatchNormalization", {"axis": 1}, ["x"])],
                            ["bn"])
    with pytest.raises(EditError, match="axis"):
        rewrites.batchnorm_as_depthwise(ModelEdit(bn1, "keras3"), (), "bn")
    relu = functional_config([("x", (None, 8), "float32")], [("d", "Dense", {"units": 4, "activation": "relu"}, ["x"])],
                             ["d"])
    with pytest.raises(EditError, match="accepts"):
        rewrites.split_activation(ModelEdit(relu, "keras3"), (), "d")


def test_qat_rules_stay_quiet_outside_qat_mode_on_the_fixtures():
    from qfix.model.archive import read_archive
    from qfix.model.graph import build_graph
    from qfix.rules.base import Context
    from qfix.rules.lint import lint
    from qfix.targets import load_profile

    a = read_archive(FIXTURES / "transformer_block_tfk.keras")
    found = lint(build_graph(a.config, a.dialect), Context(load_profile("edgetpu"), mode="ptq"))
    assert not [v for v in found if v.code in ("QF502", "QF503", "QF504")]


def test_keras3_multiply_annotation_waits_for_translation():
    """In a Keras 3 config the annotation is display-only: tfmot cannot load Keras 3 models."""
    from qfix.model.cases import functional_config
    from qfix.model.graph import build_graph
    from qfix.rules.base import Context
    from qfix.rules.tfmot_rejected_layer import TfmotRejectedLayer
    from qfix.targets import load_profile
    from qfix.types import Applicability

    cfg = functional_config([("x", (None, 8), "float32")],
                            [("d", "Dense", {"units": 8}, ["x"]), ("m", "Multiply", {"__module": "keras.layers"}, ["x", "d"])],
                            ["m"])
    (v,) = TfmotRejectedLayer().check(build_graph(cfg, "keras3"), Context(load_profile("edgetpu"), mode="qat"))
    assert v.location.layer == "m" and v.fix.applicability is Applicability.DISPLAY_ONLY and not v.fix.edits


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    child(sys.argv[1])


@pytest.mark.tf
def test_qfix_checks_its_own_annotated_model(tmp_path):
    """A model qfix annotated is one qfix loads again: the vet trusts tfmot's QuantizeAnnotate
    (and nothing else of tfmot), the loader opens it in the quantize scope of qfix's configs, and
    the annotated LayerNormalizations are no longer findings; tfmot's run gives the verdict."""
    from qfix.jobs.check import Options, context
    from qfix.jobs.fix import apply_fixes
    from qfix.model.archive import read_archive
    from qfix.model.writer import write_archive
    from qfix.targets import load_profile

    a = read_archive(FIXTURES / "transformer_block_tfk.keras")
    opts = Options(target="edgetpu", mode="qat", select=["QF502"])
    config, weights, applied, _ = apply_fixes(a.config, a.weights_bytes, "tf_keras",
                                              context(load_profile("edgetpu"), opts), opts, unsafe=False)
    assert len(applied) == 2
    path = write_archive(tmp_path / "annotated.keras", config, a.metadata, weights)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-m", "qfix", str(path), "--mode", "qat", "--check", "--format", "json",
                           "--samples", "4"], capture_output=True, text=True, env=env, timeout=900)
    assert "QF9" not in proc.stderr, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    qf502 = [f["layer"] for f in report["findings"] if f["code"] == "QF502"]
    assert qf502 == ["multi_head_attention"], report["findings"]
    # The verdict is tfmot's: MultiHeadAttention has no QuantizeConfig route, so qfix leaves it
    # float (QF502 display-only, a warning) and trains the rest with quantize_apply (issue 10);
    # the model converts, its attention ops float, and QF506 says so from tfmot's run.
    assert not [f for f in report["findings"] if f["code"] == "QF505"]
    assert report["qat"]["trained"] and report["qat"]["quantize_call"] == "quantize_apply"
    assert [f["layer"] for f in report["findings"] if f["code"] == "QF506"] == ["multi_head_attention"]
    assert report["verification"]["converted"] is True
    assert report["verification"]["first_unsupported"]["layer"] == "multi_head_attention"
