"""A Keras 3 model and its tf_keras translation (qfix.model.to_tf_keras) compute the same float
outputs: built here in Keras 3 (tiny models of every construct the translation handles, and
keras.applications models with weights=None, logits out, batch-norm statistics randomised so
a variable landing in the wrong layer shows), translated, written with qfix's archive writer,
then loaded with Keras 3 and with tf_keras in the worker's child process and compared there;
also the repo's Keras 3 fixtures of kinds the applications lack.
tfmot's quantize_model accepts the translated MobileNetV2 (a child with TF_USE_LEGACY_KERAS=1).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from qfix.convert.calibration import synthetic_calibration
from qfix.convert.worker import session
from qfix.model.to_tf_keras import translate
from qfix.model.writer import write_archive

pytestmark = pytest.mark.tf

SAMPLES = 4
APPLICATIONS = ("MobileNetV2", "MobileNetV3Small", "EfficientNetB0", "DenseNet121", "ResNet50")
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
# Committed Keras 3 fixtures: a uint8 frame cast and concatenated with float features, int64
# token ids into an Embedding, a GRU, an attention block, hard_swish convolutions, a nested
# model, a dynamic spatial shape.
FIXTURE_MODELS = ("two_input", "int64_ids", "gru", "transformer_block", "hard_swish_cnn", "nested",
                  "dynamic_shape_cnn")


def _randomise_batch_norms(model, rng) -> None:
    for layer in model.layers:
        if hasattr(layer, "layers"):
            _randomise_batch_norms(layer, rng)
        if type(layer).__name__ == "BatchNormalization":
            n = layer.gamma.shape[0] if layer.gamma is not None else layer.moving_mean.shape[0]
            values = {"gamma": rng.uniform(0.5, 1.5, n), "beta": rng.normal(0, 0.2, n),
                      "moving_mean": rng.normal(0, 0.2, n), "moving_variance": rng.uniform(0.5, 1.5, n)}
            for v in layer.weights:
                v.assign(values[v.path.rsplit("/", 1)[-1]].astype("float32"))


def _tiny_models(K):
    L, ops = K.layers, K.ops
    x = K.Input((8, 8, 3), name="img")
    c = L.Conv2D(8, 3, padding="same", name="conv")(x)
    c = L.BatchNormalization(name="bn")(c)
    c = L.DepthwiseConv2D(3, padding="same", activation="hard_silu", name="dw")(c)
    s = c[..., 0:4]
    s = ops.cast(s, "float32") * 0.5 + 1.0
    t = L.Add(name="add_layer")([s, c[:, :, :, 4:8]])
    t = L.Activation("hard_swish", name="hswish")(t)
    t = L.Concatenate(name="cat")([t, ops.maximum(s, 0.0), ops.clip(s, -1.0, 1.0)])
    t = L.LeakyReLU(0.1, name="leaky")(t)
    t = L.Rescaling(1 / 4, offset=0.25, name="rescale")(t)
    r = L.Reshape((64, 12), name="tokens")(t)
    r = L.LayerNormalization(name="ln")(r)
    r = L.MultiHeadAttention(2, 4, name="mha")(r, r)
    r = ops.mean(ops.transpose(r, (0, 2, 1)), axis=-1)
    g = L.GlobalAveragePooling2D(name="gap")(t)
    shared = L.Dense(12, name="shared")
    g = shared(L.Dropout(0.3, name="drop")(g))
    g = shared(L.Activation("silu", name="silu")(g))
    # Same-class layers whose weights-file order differs between the versions: branch_b's
    # hard_silu becomes four layers, so tf_keras lists it before branch_a; c and d tie in depth.
    branches = [L.Dense(6, name="branch_a")(g), L.Dense(6, activation="hard_silu", name="branch_b")(g),
                L.Dense(6, name="branch_d")(g), L.Dense(6, name="branch_c")(g)]
    inner_in = K.Input((12,), name="inner_in")
    inner = K.Model(inner_in, L.Dense(6, activation="gelu", name="inner_dense")(inner_in), name="inner")
    out = L.Dense(3, name="head")(L.Concatenate(name="join")([inner(g), ops.sigmoid(r), *branches]))
    functional = K.Model(x, [out, ops.reshape(s, (-1, 256))], name="tiny_functional")

    sequential = K.Sequential([
        K.Input((6, 6, 2)),
        L.Conv2D(4, 3, name="s_conv"),
        L.BatchNormalization(name="s_bn"),
        L.Activation("hard_sigmoid", name="s_hsig"),
        L.Conv2D(4, 1, activation="hard_sigmoid", name="s_conv2"),
        L.Flatten(name="s_flat"),
        L.Dropout(0.5, name="s_drop"),
        L.Dense(5, activation="relu6", name="s_dense"),
        L.Reshape((5, 1), name="s_reshape"),
        L.Conv1D(3, 2, name="s_conv1d"),
        L.GlobalAveragePooling1D(name="s_gap"),
    ], name="tiny_sequential")
    # Layers with several variables, or sublayers, whose order or place in model.weights.h5
    # could differ between the versions.
    seq_in = K.Input((8, 3), name="seq_in")
    norm = L.Normalization(name="norm")
    norm.adapt(np.random.default_rng(2).normal(1.0, 2.0, (16, 8, 3)).astype("float32"))
    h = L.LSTM(4, return_sequences=True, name="lstm")(norm(seq_in))
    h = L.Bidirectional(L.GRU(3, return_sequences=True), name="bigru")(h)
    h = L.TimeDistributed(L.Dense(2), name="td")(h)
    h = L.SeparableConv1D(4, 3, name="sep1d")(L.Conv1D(4, 2, name="conv1d")(h))
    h = L.GlobalAveragePooling1D(name="gap1d")(L.SimpleRNN(4, return_sequences=True, name="rnn")(h))
    img = K.Input((8, 8, 3), name="img2")
    i = L.SeparableConv2D(4, 3, padding="same", name="sep2d")(img)
    i = L.PReLU(name="prelu")(L.Conv2DTranspose(4, 3, strides=2, name="deconv")(i))
    i = L.GroupNormalization(2, name="gn")(i)
    i = L.GlobalMaxPooling2D(name="gmp")(L.MaxPooling2D(name="mp")(L.UpSampling2D(name="up")(i)))
    ids = K.Input((5,), dtype="int32", name="ids")
    e = L.GlobalAveragePooling1D(name="gap_ids")(L.Embedding(10, 4, name="emb")(ids))
    layers_model = K.Model([seq_in, img, ids], L.Concatenate(name="all")([h, i, e]), name="tiny_layers")
    for layer in layers_model.layers:  # give every variable a distinct value (PReLU starts at 0)
        for v in layer.weights:
            if layer.name not in ("norm",) and "bn" not in v.path:
                v.assign(np.random.default_rng(zlib.crc32(v.path.encode())).normal(0, 0.5, v.shape).astype("float32"))
    # hard_silu/hard_swish in a Sequential: tf_keras's form branches (x · gate(x)), so the
    # Sequential is translated as the Functional it stands for; top level and nested.
    hard_seq = K.Sequential([K.Input((6, 6, 2)), L.Conv2D(4, 3, activation="hard_silu", name="h_conv"),
                             L.Activation("hard_swish", name="h_act"), L.Flatten(name="h_flat"),
                             L.Dense(3, name="h_dense")], name="tiny_sequential_hard_silu")
    inner_seq = K.Sequential([K.Input((5,)), L.Dense(4, activation="hard_swish", name="n_dense")], name="inner_seq")
    n_in = K.Input((5,), name="n_in")
    nested_hard = K.Model(n_in, L.Dense(2, name="n_head")(inner_seq(n_in)), name="tiny_nested_hard_silu")
    return {"tiny_functional": functional, "tiny_sequential": sequential, "tiny_layers": layers_model,
            "tiny_sequential_hard_silu": hard_seq, "tiny_nested_hard_silu": nested_hard}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """name -> (Keras 3 path, translated path, input specs, translation seconds), each model
    built, saved and translated on first use."""
    folder = tmp_path_factory.mktemp("to_tf_keras")
    cache: dict[str, tuple] = {}

    def get(name: str) -> tuple:
        if name not in cache:
            cache[name] = _from_fixture(name, folder) if name in FIXTURE_MODELS else _build(name, folder)
        return cache[name]

    return get


def _from_fixture(name: str, folder: Path) -> tuple:
    """A committed Keras 3 fixture, translated; input specs as the check job derives them."""
    from qfix.model.archive import read_archive
    from qfix.model.graph import build_graph
    from qfix.model.inputs import input_specs

    k3 = FIXTURES / f"{name}_k3.keras"
    archive = read_archive(k3)
    start = time.perf_counter()
    t = translate(archive.config, archive.weights_bytes)
    seconds = time.perf_counter() - start
    tfk = write_archive(folder / f"{name}.qfix.tfk.keras", t.config, t.metadata, t.weights, source=k3)
    return k3, tfk, input_specs(build_graph(archive.config, archive.dialect)), seconds


def _build(name: str, folder: Path) -> tuple:
    import keras as K

    from qfix.convert.keras import input_specs

    K.utils.set_random_seed(0)
    if name in APPLICATIONS:
        model = getattr(K.applications, name)(input_shape=(32, 32, 3), weights=None, classes=10,
                                              classifier_activation=None)
    else:
        model = _tiny_models(K)[name]
    _randomise_batch_norms(model, np.random.default_rng(0))
    k3 = folder / f"{name}_k3.keras"
    model.save(k3)
    specs = input_specs(model)
    K.backend.clear_session()
    with zipfile.ZipFile(k3) as z:
        config, weights = json.loads(z.read("config.json")), z.read("model.weights.h5")
    start = time.perf_counter()
    t = translate(config, weights)
    seconds = time.perf_counter() - start
    tfk = write_archive(folder / f"{name}.qfix.tfk.keras", t.config, t.metadata, t.weights, source=k3)
    return k3, tfk, specs, seconds


@pytest.fixture(scope="module")
def worker():
    with session() as w:
        yield w


@pytest.mark.parametrize("name", ["tiny_functional", "tiny_sequential", "tiny_layers", "tiny_sequential_hard_silu",
                                  "tiny_nested_hard_silu", *FIXTURE_MODELS,
                                  *APPLICATIONS])
def test_translation_computes_the_same_float_outputs(name, built, worker):
    k3, tfk, specs, _ = built(name)
    calib = synthetic_calibration(specs, SAMPLES, seed=1)
    a = worker.load(k3, "keras3", None, False)
    b = worker.load(tfk, "tf_keras", None, False)
    try:
        worst = worker.float_equivalence(a, b, calib, "comparing the translation")
        peak = max(s["peak"] for s in worker.output_stats(a, calib, "measuring the outputs"))
    finally:
        worker.drop(a)
        worker.drop(b)
    assert peak > 0.0  # the comparison saw real signal
    assert worst <= 1e-5 * max(1.0, peak), (name, worst, peak)


def test_translation_time_on_the_largest_application(built):
    name = "ResNet50"  # the largest of APPLICATIONS at 32x32 (~95 MiB of weights)
    k3, _, _, seconds = built(name)
    print(f"\nbench: translate() of {name} (32x32, {k3.stat().st_size / 2**20:.1f} MiB) "
          f"took {seconds * 1000:.0f} ms")
    assert seconds < 60


QUANTIZE = """
import os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import numpy as np, tf_keras, tensorflow_model_optimization as tfmot
model = tf_keras.models.load_model(sys.argv[1], compile=False)
q = tfmot.quantization.keras.quantize_model(model)
wrapped = sum(type(l).__name__ == "QuantizeWrapperV2" for l in q.layers)
y = q(np.zeros((1, 32, 32, 3), "float32"), training=False)
print("QUANTIZED", wrapped, tuple(y.shape))
"""


def test_tfmot_quantize_model_accepts_the_translated_mobilenetv2(built):
    _, tfk, _, _ = built("MobileNetV2")
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = subprocess.run([sys.executable, "-c", QUANTIZE, str(tfk)], capture_output=True, text=True,
                         env=env, timeout=900)
    lines = [l for l in run.stdout.splitlines() if l.startswith("QUANTIZED")]
    assert run.returncode == 0 and lines, run.stderr[-2000:]
    _, wrapped, shape = lines[0].split(" ", 2)
    assert int(wrapped) > 50 and shape == "(1, 10)"


def test_the_untouched_keras3_file_still_loads_as_keras3(built):
    from qfix.convert.keras import sniff_dialect

    k3, tfk, _, _ = built("tiny_functional")
    assert sniff_dialect(k3) == "keras3" and sniff_dialect(tfk) == "tf_keras"
