"""Lambda layers (QF202) and tf_keras op layers (QF508) rewritten into built-in layers, on tiny
real models of both dialects: one per table row. Each rewrite is checked three ways:

* its finding is on the right layer and carries a safe rewrite, which leaves no Lambda / op layer;
* float outputs equal the original's (max |Δ| ≤ 1e-5 × max(1, |out|)), both models loaded in
  qfix's worker child (the original with --trust-lambdas);
* for tf_keras, tfmot's real `quantize_model` (in a child with TF_USE_LEGACY_KERAS=1) raises on
  the original (a Sequential's Lambda: skipped with a warning, left float) and accepts the
  rewrite, with no Lambda / op layer left; where the built-in layer is one tfmot's registry does not
  know either (Rescaling, Resizing: QF502-QF504's part), the op layer's error is gone and the
  remaining error names that layer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from qfix.convert.calibration import synthetic_calibration
from qfix.convert.worker import session
from qfix.jobs.check import Options, context
from qfix.jobs.fix import apply_fixes
from qfix.model.archive import read_archive
from qfix.model.graph import build_graph
from qfix.model.inputs import input_specs
from qfix.model.writer import write_archive
from qfix.rules.lint import lint
from qfix.targets import load_profile
from qfix.types import Applicability

pytestmark = pytest.mark.tf
tf = None  # tensorflow, once the `models` fixture runs


def _tfk_op(op, shape=(8, 8, 4)):
    """A tf_keras functional model: a conv (or dense), the op on a Keras tensor, a head."""
    def build(K):
        import tensorflow as tf  # noqa: F401  (the ops below are tf's)

        L = K.layers
        x = K.Input(shape)
        y = (L.Conv2D(4, 1, name="stem") if len(shape) == 3 else L.Dense(8, name="stem"))(x)
        y = op(y, tf)
        head = L.Conv2D(2, 1, name="head") if len(y.shape) == 4 else L.Dense(2, name="head")
        return K.Model(x, head(y))
    return build


def _lambda(fn, dialect, shape=(8, 8, 4), sequential=False):
    def build(K):
        L = K.layers
        if sequential:
            return K.Sequential([K.Input(shape), L.Conv2D(4, 1, name="stem"), L.Lambda(fn, name="lam"),
                                 L.Conv2D(2, 1, name="head")])
        x = K.Input(shape)
        y = L.Lambda(fn, name="lam")(L.Conv2D(4, 1, name="stem")(x))
        head = L.Conv2D(2, 1, name="head") if len(y.shape) == 4 else L.Dense(2, name="head")
        return K.Model(x, head(y))
    return build


# name → (dialect, builder, rule, the built-in layer it becomes, does tfmot's registry take it)
MODELS = {
    # tf_keras op layers (QF508, --mode qat); the issue's named false verdict first
    "op_channel_slice": ("tfk", _tfk_op(lambda y, tf: y[:, :, :, 0:2]), "QF508", "Conv2D", True),
    "op_spatial_slice": ("tfk", _tfk_op(lambda y, tf: y[:, 1:7, 2:6, :]), "QF508", "Cropping2D", True),
    "op_dense_slice": ("tfk", _tfk_op(lambda y, tf: y[:, 0:4], shape=(6,)), "QF508", "Dense", True),  # errors.md B7
    "op_relu6": ("tfk", _tfk_op(lambda y, tf: tf.nn.relu6(y)), "QF508", "ReLU", True),
    "op_clip": ("tfk", _tfk_op(lambda y, tf: tf.clip_by_value(y, 0.0, 6.0)), "QF508", "ReLU", True),
    "op_sigmoid": ("tfk", _tfk_op(lambda y, tf: tf.nn.sigmoid(y)), "QF508", "Activation", True),
    "op_upsample": ("tfk", _tfk_op(lambda y, tf: tf.image.resize(y, (16, 16), method="nearest")), "QF508",
                    "UpSampling2D", True),
    "op_mean": ("tfk", _tfk_op(lambda y, tf: tf.reduce_mean(y, axis=[1, 2])), "QF508", "GlobalAveragePooling2D", True),
    "op_reshape": ("tfk", _tfk_op(lambda y, tf: tf.reshape(y, (-1, 4, 64))), "QF508", "Reshape", True),
    "op_scale": ("tfk", _tfk_op(lambda y, tf: y * 2.0), "QF508", "Rescaling", False),
    "op_normalize": ("tfk", _tfk_op(lambda y, tf: y / 255.0), "QF508", "Rescaling", False),
    "op_offset": ("tfk", _tfk_op(lambda y, tf: y + 3.0), "QF508", "Rescaling", False),
    "op_resize": ("tfk", _tfk_op(lambda y, tf: tf.image.resize(y, (12, 12))), "QF508", "Resizing", False),
    # Lambda layers (QF202, every mode), both dialects, functional and Sequential
    "lam_scale_tfk": ("tfk", _lambda(lambda t: t / 127.5 - 1.0, "tfk"), "QF202", "Rescaling", False),
    "lam_relu6_tfk": ("tfk", _lambda(lambda t: tf.nn.relu6(t), "tfk", sequential=True), "QF202", "ReLU", True),  # noqa: F821
    "lam_relu6_fn_tfk": ("tfk", _lambda(lambda t: tf.nn.relu6(t), "tfk"), "QF202", "ReLU", True),  # noqa: F821
    "lam_channels_tfk": ("tfk", _lambda(lambda t: t[:, :, :, 1:3], "tfk"), "QF202", "Conv2D", True),
    "lam_scale_k3": ("k3", _lambda(lambda t: (t - 127.5) / 127.5, "k3"), "QF202", "Rescaling", None),
    "lam_crop_k3": ("k3", _lambda(lambda t: t[:, 1:7, 2:6, :], "k3", sequential=True), "QF202", "Cropping2D", None),
    "lam_channels_k3": ("k3", _lambda(lambda t: t[..., ::2], "k3"), "QF202", "Conv2D", None),
}

# What the original's tfmot error says (errors.md B5-B7), by rule.
ORIGINAL_ERROR = {"QF508": ("TFOpLambda", "SlicingOpLambda", "getitem", "Shape mismatch", "dtype"),
                  "QF202": ("Lambda",)}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Every model saved, then its fixed twin written by the fix job's own loop."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow

    globals()["tf"] = tensorflow  # what the lambdas above call, bound only when TF may be imported
    folder = tmp_path_factory.mktemp("lambda_rewrites")
    out = {}
    for name, (dialect, build, code, _, _) in MODELS.items():
        if dialect == "k3":
            import keras as K
        else:
            import tf_keras as K
        K.backend.clear_session()
        K.utils.set_random_seed(0)
        path = folder / f"{name}.keras"
        build(K).save(path)
        a = read_archive(path)
        opts = Options(target="edgetpu", mode="qat" if code == "QF508" else "ptq", select=[code])
        ctx = context(load_profile("edgetpu"), opts)
        found = [v for v in lint(build_graph(a.config, a.dialect), ctx) if v.code == code]
        config, weights, applied, skipped = apply_fixes(a.config, a.weights_bytes, a.dialect, ctx, opts, unsafe=False)
        fixed = write_archive(folder / f"{name}.fixed.keras", config, a.metadata, weights)
        out[name] = (path, fixed, found, applied, skipped, ctx, a.dialect)
    return out


@pytest.mark.parametrize("name", list(MODELS))
def test_the_finding_carries_a_rewrite_to_the_builtin_layer(models, name):
    _, _, code, cls, _ = MODELS[name]
    path, fixed, found, applied, skipped, ctx, dialect = models[name]
    assert len(found) == 1, [v.message for v in found]
    (v,) = found
    assert v.fix.applicability is Applicability.SAFE and v.fix.edits, v.message
    assert cls in v.fix.description
    assert len(applied) == 1 and not skipped, skipped
    graph = build_graph(read_archive(fixed).config, dialect)
    classes = [l.class_name for _, l in graph.walk()]
    assert cls in classes
    assert not {"Lambda", "TFOpLambda", "SlicingOpLambda"} & set(classes)
    assert not [f for f in lint(graph, ctx) if f.code == code]


def test_rewritten_models_compute_the_same_float_outputs(models):
    """All models in one worker: the original loaded with --trust-lambdas, the rewrite without."""
    with session() as worker:
        for name, (path, fixed, _, _, _, _, dialect) in models.items():
            a = worker.load(path, dialect, None, True)
            b = worker.load(fixed, dialect, None, False)
            calib = synthetic_calibration(input_specs(build_graph(read_archive(path).config, dialect)), 4)
            delta = worker.float_equivalence(a, b, calib, f"comparing {name}")
            peak = max(s["peak"] for s in worker.output_stats(a, calib, f"measuring {name}"))
            assert delta <= 1e-5 * max(1.0, peak), (name, delta, peak)
            worker.drop(a)
            worker.drop(b)


_TFMOT = r"""
import json, os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import tf_keras
import tensorflow_model_optimization as tfmot
out = {}
for path in sys.argv[1:]:
    try:
        model = tf_keras.models.load_model(path, compile=False, safe_mode=False)
        q = tfmot.quantization.keras.quantize_model(model)
        out[path] = [type(l).__name__ for l in q.layers]
    except Exception as exc:
        out[path] = f"{type(exc).__name__}: {exc}"[:600]
print("RESULT " + json.dumps(out))
"""


def test_tfmot_refuses_the_original_and_takes_the_rewrite(models):
    """The real `quantize_model`, in one child for every tf_keras model and its rewrite."""
    names = [n for n, m in MODELS.items() if m[0] == "tfk"]
    paths = [str(p) for n in names for p in models[n][:2]]
    proc = subprocess.run([sys.executable, "-c", _TFMOT, *paths], capture_output=True, text=True, timeout=1200)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert line, proc.stderr[-2000:]
    result = json.loads(line[0][len("RESULT "):])
    for name in names:
        _, _, code, cls, registry_takes_it = MODELS[name]
        before, after = result[str(models[name][0])], result[str(models[name][1])]
        if isinstance(before, list):  # a Sequential: tfmot skips the Lambda (a warning) and leaves it float
            assert name == "lam_relu6_tfk" and "Lambda" in before, (name, before)
        else:
            assert isinstance(before, str) and any(w in before for w in ORIGINAL_ERROR[code]), (name, before)
        if registry_takes_it:
            assert isinstance(after, list) and "QuantizeWrapperV2" in after, (name, after)
            assert not {"Lambda", "TFOpLambda", "SlicingOpLambda"} & set(after), (name, after)
        else:  # the op / Lambda error is gone; tfmot's registry does not know the built-in either
            assert isinstance(after, str) and cls in after and "not supported" in after, (name, after)
            assert not any(w in after for w in ("TFOpLambda", "SlicingOpLambda", "Lambda")), (name, after)


def test_the_issue_slice_verdict_is_a_finding_only_in_qat(models):
    """`x[:, :, :, 0:2]` in a tf_keras model: QF508 with --mode qat, nothing for PTQ (the
    converter sees the same STRIDED_SLICE either way)."""
    path = models["op_channel_slice"][0]
    a = read_archive(path)
    graph = build_graph(a.config, a.dialect)
    ptq = lint(graph, context(load_profile("edgetpu"), Options(target="edgetpu")))
    qat = lint(graph, context(load_profile("edgetpu"), Options(target="edgetpu", mode="qat")))
    assert not [v for v in ptq if v.code == "QF508"]
    (v,) = [v for v in qat if v.code == "QF508"]
    assert v.location.layer == "tf.__operators__.getitem" and "x[:, :, :, 0:2]" in v.message
