"""The model rewrites on real fixtures of both dialects: each finding carries the right rewrite,
the fix loop converges (no TensorFlow), and the written file loads with the real Keras and
computes what the original did (`tf`). What each rewrite makes of a config is stated by the
rules' embedded cases (tests/rules/test_model_rules.py)."""

from __future__ import annotations

import shutil

from pathlib import Path

import numpy as np
import pytest

from qfix.jobs.check import Options, context
from qfix.jobs.fix import apply_fixes, apply_rewrites
from qfix.model import rewrites
from qfix.model.archive import read_archive
from qfix.model.cases import empty_weights, functional_config
from qfix.model.edit import EditError, ModelEdit
from qfix.model.graph import build_graph
from qfix.model.patterns import spelled_hard_swish
from qfix.model.rewrites import Rewrite
from qfix.model.writer import write_archive
from qfix.rules.base import Context
from qfix.rules.lint import lint
from qfix.targets import load_profile

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
BOTH = ["k3", "tfk"]

# (fixture, rule code): the rewrites of that code's findings, in every dialect the fixture is saved in.
FIXES = [
    ("nested", "QF201"),
    ("leaky_relu_cnn", "QF302"),
    ("int64_ids", "QF103"),
    ("tiny_cnn", "QF301"),
    ("hard_swish_cnn", "QF302"),
    ("two_input", "QF102"),
]
PTQ_ONLY = {"QF301"}  # --mode qat keeps the dynamic batch of a model meant for training
CASES = [(n, c, d) for n, c in FIXES for d in BOTH if (FIXTURES / f"{n}_{d}.keras").exists()]
IDS = [f"{c}-{n}-{d}" for n, c, d in CASES]


def findings(config, dialect, code, mode="qat"):
    ctx = Context(load_profile("edgetpu"), mode=mode)
    return [v for v in lint(build_graph(config, dialect), ctx) if v.code == code]


def fix(config, weights, dialect, select=None):
    """The fix job's loop (safe fixes) over the findings of `select` (default: all) on edgetpu."""
    opts = Options(select=select)
    config, weights, applied, skipped = apply_fixes(config, weights, dialect, context(load_profile("edgetpu"), opts),
                                                    opts, unsafe=False)
    assert not skipped, skipped
    return config, weights, [f"{f.code}: {f.note}" for f in applied]


def rewrite(archive_or_config, run, name, dialect="keras3", weights=None, scope=()):
    """Apply one rewrite directly, as a pass that holds no finding would."""
    if isinstance(archive_or_config, dict):
        config = archive_or_config
        weights = weights if weights is not None else empty_weights(config)
    else:
        config, weights, dialect = archive_or_config.config, archive_or_config.weights_bytes, archive_or_config.dialect
    return apply_rewrites(config, weights, dialect, [Rewrite(run, scope, name)])


def test_prelu_alpha_is_shared_over_space():
    a = read_archive(FIXTURES / "leaky_relu_cnn_k3.keras")
    config, weights, note = rewrite(a, rewrites.leaky_relu_to_prelu, "leaky_re_lu")
    layer = build_graph(config, "keras3").layers["leaky_re_lu"]
    assert layer.class_name == "PReLU" and layer.config["shared_axes"] == [1, 2]
    assert layer.config["alpha_initializer"]["config"]["value"] == pytest.approx(0.1)
    assert "PReLU" in note


def test_prelu_fix_refuses_other_layers():
    a = read_archive(FIXTURES / "leaky_relu_cnn_k3.keras")
    with pytest.raises(EditError):
        rewrite(a, rewrites.leaky_relu_to_prelu, "conv2d")


def test_a_rewrite_is_called_without_a_finding_and_leaves_its_input_alone():
    a = read_archive(FIXTURES / "nested_k3.keras")
    before = repr(a.config)
    edit = ModelEdit(a.config, a.dialect)
    note = rewrites.flatten_nested(edit, (), "backbone")
    assert "flattened nested model 'backbone'" in note
    assert not any(l.is_model for l in build_graph(edit.config, a.dialect))
    assert repr(a.config) == before


@pytest.mark.parametrize("name,code,dialect", CASES, ids=IDS)
def test_finding_disappears(name, code, dialect):
    a = read_archive(FIXTURES / f"{name}_{dialect}.keras")
    mode = "ptq" if code in PTQ_ONLY else "qat"
    assert findings(a.config, a.dialect, code, mode), "the fixture must exhibit the finding"
    config, _, notes = fix(a.config, a.weights_bytes, a.dialect, [code])
    assert notes and all(notes)
    assert not findings(config, a.dialect, code, mode)


@pytest.mark.tf
@pytest.mark.parametrize("name,code,dialect", CASES, ids=IDS)
def test_fixed_model_loads_and_matches(name, code, dialect, tmp_path):
    from qfix.convert.calibration import Calibration, synthetic_calibration
    from qfix.convert.keras import load_model
    from qfix.model.inputs import input_specs
    from qfix.convert.fidelity import float_equivalence

    a = read_archive(FIXTURES / f"{name}_{dialect}.keras")
    config, weights, _ = fix(a.config, a.weights_bytes, a.dialect, [code])
    out = write_archive(tmp_path / f"{name}.qfix.keras", config, a.metadata, weights, source=a.path)
    original = load_model(a.path, a.dialect)
    fixed = load_model(out, a.dialect)
    if code == "QF301":
        assert all(t.shape[0] == 1 for t in fixed.inputs)
    calibration = synthetic_calibration(input_specs(build_graph(a.config, a.dialect)), 4)
    # One sample per call: a batch-1 model takes batch 1.
    worst = max(float_equivalence(original, fixed, Calibration([s], True, "synthetic"))
                for s in calibration.samples)
    assert worst <= 1e-5


@pytest.mark.tf
def test_hard_swish_fix_leaves_no_hard_swish_op_after_conversion(tmp_path):
    from qfix.convert.calibration import synthetic_calibration
    from qfix.convert.converter import convert, recipe_for
    from qfix.convert.keras import load_model
    from qfix.model.inputs import input_specs
    from qfix.targets.tflite import read_tflite

    a = read_archive(FIXTURES / "hard_swish_cnn_k3.keras")
    config, weights, _ = fix(a.config, a.weights_bytes, a.dialect, ["QF302"])
    specs = input_specs(build_graph(a.config, a.dialect))
    calibration = synthetic_calibration(specs, 4)

    def ops(path):
        return {op.name for op in read_tflite(convert(load_model(path, a.dialect), recipe_for("edgetpu"),
                                                        calibration).tflite).ops}

    assert "HARD_SWISH" in ops(a.path)
    after = ops(write_archive(tmp_path / "hs.qfix.keras", config, a.metadata, weights))
    assert "HARD_SWISH" not in after
    # x·clip(x/6 + 1/2, 0, 1): MUL, ADD, MINIMUM, RELU, MUL (qfix/model/rewrites/hard_swish.py)
    assert after <= {"QUANTIZE", "CONV_2D", "ADD", "MUL", "MINIMUM", "RELU", "MEAN", "FULLY_CONNECTED", "SOFTMAX",
                     "RESHAPE"}, after
    assert {"MINIMUM", "RELU"} <= after


@pytest.mark.tf
@pytest.mark.parametrize("dialect", BOTH)
def test_folded_input_cast_leaves_no_cast_op_and_a_raw_uint8_input(dialect, tmp_path):
    from qfix.convert.calibration import synthetic_calibration
    from qfix.convert.converter import convert, recipe_for
    from qfix.convert.keras import load_model
    from qfix.model.inputs import input_specs
    from qfix.targets.tflite import read_tflite

    a = read_archive(FIXTURES / f"two_input_{dialect}.keras")
    config, weights, _ = fix(a.config, a.weights_bytes, a.dialect, ["QF102"])

    def converted(path, config):
        calibration = synthetic_calibration(input_specs(build_graph(config, a.dialect)), 8)
        return read_tflite(convert(load_model(path, a.dialect), recipe_for("edgetpu"), calibration).tflite)

    before = converted(a.path, a.config)
    after = converted(write_archive(tmp_path / "two.qfix.keras", config, a.metadata, weights), config)
    assert "CAST" in {op.name for op in before.ops}
    assert "CAST" not in {op.name for op in after.ops}
    frame = next(after.tensors[i] for i in after.inputs if "frame" in after.tensors[i].name)
    assert frame.dtype == "uint8"  # the device still takes the raw frame…
    assert frame.scale == pytest.approx([1.0], rel=0.02) and frame.zero_point == [0]  # …unscaled


def _save_tiny(dialect, build, path):
    """Build a tiny model with the dialect's Keras (seeded) and save it."""
    from fixtures.build import save_with

    return read_archive(save_with(dialect, build, path))


@pytest.mark.tf
@pytest.mark.parametrize("dialect", BOTH)
def test_every_leaky_relu_spelling_becomes_prelu(dialect, tmp_path):
    def build(K):
        L = K.layers
        x = K.Input((8, 8, 3), name="x")
        y = L.Conv2D(4, 3, padding="same", activation="leaky_relu", name="conv")(x)
        y = L.ReLU(negative_slope=0.05, name="relu_slope")(y)
        y = L.GlobalAveragePooling2D()(y)
        y = L.Dense(5, name="fc")(y)
        y = L.LeakyReLU(0.3, name="leaky_fc")(y)  # rank 2: nothing to share
        return K.Model(x, L.Dense(2, name="out")(y))

    a = _save_tiny(dialect, build, tmp_path / "leaky.keras")
    config, weights, notes = fix(a.config, a.weights_bytes, a.dialect, ["QF302"])
    assert len(notes) == 3
    graph = build_graph(config, a.dialect)
    assert graph.layers["conv"].config["activation"] == "linear"
    assert graph.layers["conv_prelu"].class_name == "PReLU"
    assert graph.layers["leaky_fc"].config["shared_axes"] is None
    from test_edit import _load_and_compare  # same helper: write, load both, compare

    edited, diff = _load_and_compare(a, config, weights, tmp_path)
    assert diff <= 1e-5
    alphas = {l.name: l.get_weights()[0] for l in edited.layers if type(l).__name__ == "PReLU"}
    assert alphas["conv_prelu"].shape == (1, 1, 4) and np.allclose(alphas["conv_prelu"], 0.2)
    assert np.allclose(alphas["relu_slope"], 0.05) and alphas["leaky_fc"].shape == (5,)


@pytest.mark.tf
@pytest.mark.parametrize("dialect", BOTH)
def test_flatten_nested_twice(dialect, tmp_path):
    """A model nested in a nested model: each QF201 finding flattens one level."""
    def build(K):
        L = K.layers
        i = K.Input((6,))
        core = K.Model(i, L.Dense(4, name="dense")(i), name="core")
        j = K.Input((6,))
        block = K.Model(j, L.Dense(3, name="dense")(core(j)), name="block")
        x = K.Input((6,), name="x")
        return K.Model(x, L.Dense(2, name="dense")(block(x)), name="outer")

    a = _save_tiny(dialect, build, tmp_path / "twice.keras")
    config, weights, notes = fix(a.config, a.weights_bytes, a.dialect, ["QF201"])
    assert len(notes) == 2
    graph = build_graph(config, a.dialect)
    assert not any(l.is_model for l in graph)
    assert list(graph.layers) == ["x", "core_dense", "block_dense", "dense"]  # clashes prefixed
    from test_edit import _load_and_compare

    _, diff = _load_and_compare(a, config, weights, tmp_path)
    assert diff <= 1e-5


def test_each_finding_carries_its_rewrite():
    def carried(fixture, code):
        a = read_archive(FIXTURES / fixture)
        return {tuple(r.run for r in v.fix.edits) if v.fix else None
                for v in findings(a.config, a.dialect, code, mode="ptq")}

    assert carried("nested_tfk.keras", "QF201") == {(rewrites.flatten_nested,)}
    assert carried("leaky_relu_cnn_k3.keras", "QF302") == {(rewrites.leaky_relu_to_prelu,)}
    assert carried("hard_swish_cnn_k3.keras", "QF302") == {(rewrites.hard_swish,)}
    assert carried("int64_ids_tfk.keras", "QF103") == {(rewrites.narrow_64bit,)}
    assert carried("two_input_tfk.keras", "QF102") == {(rewrites.fold_input_cast,)}
    assert carried("two_input_k3.keras", "QF101") == {()}  # QF102's fold of the same input fixes it
    assert carried("tiny_cnn_k3.keras", "QF301") == {(rewrites.static_batch,)}
    assert carried("dynamic_shape_cnn_k3.keras", "QF301") == {()}  # spatial: display-only
    assert carried("gelu_mlp_k3.keras", "QF302") == {(rewrites.gelu_tanh,)}  # unsafe: applied on request
    (v,) = findings(read_archive(FIXTURES / "tiny_cnn_k3.keras").config, "keras3", "QF301", mode="ptq")
    assert v.fix.edits[0].recipe_neutral  # the recipe converts with batch 1 already
    (v,) = findings(read_archive(FIXTURES / "nested_k3.keras").config, "keras3", "QF201")
    assert not v.fix.edits[0].recipe_neutral


LOADABLE = [p.name for p in sorted(FIXTURES.glob("*.keras")) if not p.name.startswith(("lambda", "custom"))]


@pytest.mark.parametrize("fixture", LOADABLE)
def test_fix_everything_converges(fixture):
    a = read_archive(FIXTURES / fixture)
    config, _, notes = fix(a.config, a.weights_bytes, a.dialect)
    left = {v.code for v in lint(build_graph(config, a.dialect), Context(load_profile("edgetpu")))}
    assert not left & {"QF102", "QF103", "QF201"}


@pytest.mark.tf
@pytest.mark.parametrize("fixture", LOADABLE)
def test_fix_everything_keeps_the_numbers(fixture, tmp_path):
    from qfix.convert.calibration import Calibration, synthetic_calibration
    from qfix.convert.keras import load_model
    from qfix.model.inputs import input_specs
    from qfix.convert.fidelity import float_equivalence

    a = read_archive(FIXTURES / fixture)
    config, weights, notes = fix(a.config, a.weights_bytes, a.dialect)
    for side in FIXTURES.glob(f"{fixture.split('_tfk')[0].split('_k3')[0]}_*/"):  # hub_seed's SavedModel
        shutil.copytree(side, tmp_path / side.name)
    out = write_archive(tmp_path / "fixed.keras", config, a.metadata, weights)
    original, fixed = load_model(a.path, a.dialect), load_model(out, a.dialect)
    calibration = synthetic_calibration(input_specs(build_graph(a.config, a.dialect)), 2)
    worst = max(float_equivalence(original, fixed, Calibration([s], True, "synthetic"))
                for s in calibration.samples)
    assert worst <= 1e-5, notes


def _spelled_config():
    """Keras 3 config of conv → x · (relu6(x + 3) / 6), written with layers."""
    x4 = (1, 8, 8, 4)
    return functional_config(
        [("x", (1, 8, 8, 3), "float32")],
        [("c", "Conv2D", {"filters": 4, "kernel_size": 1}, ["x"], "float32", x4),
         ("plus3", "Rescaling", {"scale": 1.0, "offset": 3.0}, ["c"], "float32", x4),
         ("relu6", "ReLU", {"max_value": 6.0}, ["plus3"], "float32", x4),
         ("div6", "Rescaling", {"scale": 1 / 6, "offset": 0.0}, ["relu6"], "float32", x4),
         ("hs", "Multiply", {}, ["c", "div6"], "float32", x4)],
        ["hs"],
    )


def test_spelled_out_hard_swish_is_rewired_not_rebuilt():
    cfg = _spelled_config()
    assert spelled_hard_swish(build_graph(cfg, "keras3")) == [("hs", "div6")]
    new, weights, note = rewrite(cfg, rewrites.hard_swish_spelled, "hs", weights=b"unchanged")
    graph = build_graph(new, "keras3")
    assert [t.layer for t in graph.layers["hs"].inputs] == ["relu6", "div6"]
    assert [t.layer for t in graph.layers["div6"].inputs] == ["c"]
    assert weights == b"unchanged"  # same layers, same classes: nothing to re-key
    assert spelled_hard_swish(graph) == []
    with pytest.raises(EditError):
        rewrite(new, rewrites.hard_swish_spelled, "hs", weights=weights)


@pytest.mark.tf
def test_spelled_out_hard_swish_of_tf_keras_mobilenet_v3_converts_without_hard_swish(tmp_path):
    """tf_keras's MobileNetV3 writes Multiply([x, ReLU(6)(x + 3.) * (1/6)]): no activation to
    lint, yet the converter emits HARD_SWISH. After the rewiring it does not."""
    from qfix.convert.calibration import synthetic_calibration
    from qfix.convert.converter import convert, recipe_for
    from qfix.convert.keras import load_model
    from qfix.model.inputs import input_specs
    from qfix.targets.tflite import read_tflite

    def build(K):
        L = K.layers
        x = K.Input((16, 16, 3), name="x")
        y = L.Conv2D(8, 3, padding="same")(x)
        y = L.Multiply()([y, L.ReLU(6.0)(y + 3.0) * (1.0 / 6.0)])
        return K.Model(x, L.Conv2D(4, 1)(y))

    a = _save_tiny("tfk", build, tmp_path / "spelled.keras")
    (mul, _), = spelled_hard_swish(build_graph(a.config, a.dialect))
    config, weights, _ = rewrite(a, rewrites.hard_swish_spelled, mul)
    from test_edit import _load_and_compare

    edited, diff = _load_and_compare(a, config, weights, tmp_path)
    assert diff <= 1e-5
    calibration = synthetic_calibration(input_specs(build_graph(a.config, a.dialect)), 4)

    def ops(model):
        return {op.name for op in read_tflite(convert(model, recipe_for("edgetpu"), calibration).tflite).ops}

    assert "HARD_SWISH" in ops(load_model(a.path, a.dialect))
    assert "HARD_SWISH" not in ops(edited)


@pytest.mark.tf
@pytest.mark.parametrize("dialect", BOTH)
def test_fixes_in_a_sequential_model(dialect, tmp_path):
    def build(K):
        L = K.layers
        return K.Sequential([K.Input((8, 8, 3)), L.Conv2D(4, 3, name="conv"), L.LeakyReLU(0.1, name="leaky"),
                             L.Flatten(), L.Dense(3, name="fc")], name="seq")

    a = _save_tiny(dialect, build, tmp_path / "seq.keras")
    config, weights, notes = fix(a.config, a.weights_bytes, a.dialect)
    assert any(n.startswith("QF302") for n in notes) and any(n.startswith("QF301") for n in notes)
    from qfix.convert.keras import load_model

    # Compared by hand: verify.float_equivalence needs `output_names`, which a tf_keras
    # Sequential lacks.
    out = write_archive(tmp_path / "seq.qfix.keras", config, a.metadata, weights)
    original, edited = load_model(a.path, a.dialect), load_model(out, a.dialect)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 8, 8, 3)).astype("float32")
    assert np.max(np.abs(np.asarray(original(x)) - np.asarray(edited(x)))) <= 1e-5
    assert type(edited.get_layer("leaky")).__name__ == "PReLU"
    assert tuple(edited.inputs[0].shape) == (1, 8, 8, 3)


def test_mixed_merge_moves_the_cast_to_the_input_when_it_can():
    a = read_archive(FIXTURES / "two_input_k3.keras")
    (v,) = findings(a.config, a.dialect, "QF101")
    assert not v.fix.edits  # QF102's rewrite covers it; called directly, the rewrite folds the input too
    config, _, note = rewrite(a, rewrites.mixed_merge_cast, v.location.layer)
    graph = build_graph(config, a.dialect)
    assert graph.layers["frame"].out_dtype == "float32" and "cast" not in graph.layers
    assert not findings(config, a.dialect, "QF101") and not findings(config, a.dialect, "QF102")


def _ids_and_features(K):
    """int32 ids feed an Embedding and, raw, a Concatenate with float features (promoted)."""
    L = K.layers
    ids = K.Input((4,), dtype="int32", name="ids")
    feats = K.Input((4,), name="feats")
    emb = L.Flatten()(L.Embedding(256, 3)(ids))  # synthetic int32 samples span 0..255
    cat = L.Concatenate(name="cat")([ids, feats])
    return K.Model([ids, feats], L.Dense(2)(L.Concatenate()([emb, cat])))


@pytest.mark.tf
def test_mixed_merge_gets_an_explicit_cast_when_the_input_must_stay_integer(tmp_path):
    a = _save_tiny("k3", _ids_and_features, tmp_path / "ids.keras")
    (v,) = findings(a.config, a.dialect, "QF101")
    assert [r.run for r in v.fix.edits] == [rewrites.mixed_merge_cast]
    config, weights, note = apply_rewrites(a.config, a.weights_bytes, a.dialect, v.fix.edits)
    graph = build_graph(config, a.dialect)
    cast = graph.layers["ids_to_float32"]
    assert cast.op_function == "Cast" and [t.layer for t in graph.layers["cat"].inputs] == ["ids_to_float32", "feats"]
    assert graph.layers["ids"].out_dtype == "int32"  # the Embedding still gets integers
    assert not findings(config, a.dialect, "QF101")
    from test_edit import _load_and_compare

    _, diff = _load_and_compare(a, config, weights, tmp_path)
    assert diff <= 1e-5


def test_unexpected_structure_is_an_edit_error_not_a_traceback():
    import copy
    import io

    import h5py

    a = read_archive(FIXTURES / "nested_k3.keras")
    buf = io.BytesIO(a.weights_bytes)
    with h5py.File(buf, "a") as f:
        del f["layers/functional/layers/conv2d"]  # weights that do not match the config
    with pytest.raises(EditError, match="re-key"):
        rewrite(a.config, rewrites.flatten_nested, "backbone", a.dialect, buf.getvalue())

    b = read_archive(FIXTURES / "leaky_relu_cnn_tfk.keras")
    broken = copy.deepcopy(b.config)
    broken["config"]["layers"][2]["inbound_nodes"] = [[["conv2d", "zero", 0, {}]]]
    broken["config"]["layers"][2].pop("build_config")
    with pytest.raises(EditError):
        rewrite(broken, rewrites.leaky_relu_to_prelu, "leaky_re_lu", b.dialect, b.weights_bytes)


def test_qfix_own_hard_swish_is_not_mistaken_for_the_fused_pattern():
    a = read_archive(FIXTURES / "hard_swish_cnn_k3.keras")
    config, _, _ = fix(a.config, a.weights_bytes, a.dialect, ["QF302"])
    assert spelled_hard_swish(build_graph(config, a.dialect)) == []


@pytest.mark.tf
@pytest.mark.parametrize("dialect", BOTH)
def test_casts_to_64_bits_become_32_bit_casts(dialect, tmp_path):
    def build(K):
        import tensorflow as tf

        cast = K.ops.cast if dialect == "k3" else tf.cast  # a Cast node / a tf.cast TFOpLambda
        ids = K.Input((4,), dtype="int32", name="ids")
        wide = cast(ids, "int64")
        return K.Model(ids, K.layers.Dense(2)(K.layers.Flatten()(K.layers.Embedding(256, 3)(wide))))

    a = _save_tiny(dialect, build, tmp_path / "wide.keras")
    config, weights, notes = fix(a.config, a.weights_bytes, a.dialect, ["QF103"])
    assert notes and all("int32 instead of int64" in n for n in notes)
    from test_edit import _load_and_compare

    _, diff = _load_and_compare(a, config, weights, tmp_path)
    assert diff <= 1e-5


def _with_vars(config, values: dict[str, list[np.ndarray]]) -> bytes:
    """A weights file for `config` with the given variables for the named layers (others empty)."""
    import io

    import h5py

    from qfix.model.weights import group_keys

    buf = io.BytesIO(empty_weights(config))
    with h5py.File(buf, "r+") as f:
        for path, group in group_keys(config, "keras3").items():
            for i, v in enumerate(values.get(path[-1], [])):
                f[f"{group}/vars"].create_dataset(str(i), data=v)
    return buf.getvalue()


def test_grouped_conv_split_gives_each_group_its_kernel_and_bias_slice():
    from qfix.model.weights import group_keys, read_vars

    config = functional_config(
        [("x", (None, 8, 8, 6), "float32")],
        [("g", "Conv2D", {"filters": 4, "kernel_size": [3, 3], "groups": 2, "activation": "relu"}, ["x"],
          "float32", (None, 6, 6, 4))], ["g"])
    kernel = np.arange(3 * 3 * 3 * 4, dtype=np.float32).reshape(3, 3, 3, 4)
    bias = np.array([1, 2, 3, 4], np.float32)
    new, weights, note = rewrite(config, rewrites.split_grouped_conv, "g", weights=_with_vars(config, {"g": [kernel, bias]}))
    keys = group_keys(new, "keras3")
    for i in range(2):
        k, b = read_vars(weights, keys[(f"g_g{i}",)])
        assert np.array_equal(k, kernel[..., 2 * i:2 * i + 2]) and np.array_equal(b, bias[2 * i:2 * i + 2])
    layers = build_graph(new, "keras3").layers
    assert layers["g"].class_name == "Concatenate" and layers["g_g1"].config["activation"] == "relu"
    assert layers["g_split"].config["indices_or_sections"] == 2 and "groups=2" in note


def test_transposed_conv_keeps_its_weights_and_gets_an_identity_after_it():
    from qfix.model.weights import group_keys, read_vars

    config = functional_config(
        [("x", (None, 4, 4, 3), "float32")],
        [("t", "Conv2DTranspose", {"filters": 5, "kernel_size": [2, 2], "strides": [2, 2], "activation": "relu"},
          ["x"], "float32", (None, 8, 8, 5)),
         ("head", "Conv2D", {"filters": 2, "kernel_size": [1, 1]}, ["t"], "float32", (None, 8, 8, 2))], ["head"])
    kernel, bias = np.ones((2, 2, 5, 3), np.float32) * 0.5, np.arange(5, dtype=np.float32)
    new, weights, _ = rewrite(config, rewrites.unfuse_transpose_conv, "t", weights=_with_vars(config, {"t": [kernel, bias]}))
    keys = group_keys(new, "keras3")
    k, b = read_vars(weights, keys[("t",)])
    assert np.array_equal(k, kernel) and np.array_equal(b, bias)
    (ones,) = read_vars(weights, keys[("t_act",)])
    assert ones.shape == (1, 1, 5, 1) and np.all(ones == 1)
    layers = build_graph(new, "keras3").layers
    assert layers["t"].config["activation"] == "linear" and layers["t_act"].config["activation"] == "relu"
    assert [r.layer for r in layers["head"].inputs] == ["t_act"]


def test_new_rewrites_refuse_what_they_do_not_handle():
    config = functional_config(
        [("x", (None, 8, 8, 4), "float32")],
        [("c", "Conv2D", {"filters": 4, "kernel_size": [3, 3], "groups": 1}, ["x"]),
         ("up", "UpSampling2D", {"size": [2, 2], "interpolation": "bilinear"}, ["c"])], ["up"])
    for run, layer in [(rewrites.split_grouped_conv, "c"), (rewrites.unfuse_transpose_conv, "c"),
                       (rewrites.upsampling_to_resizing, "up"), (rewrites.unroll_rnn, "c")]:
        with pytest.raises(EditError):
            rewrite(config, run, layer)


def test_grouped_conv_densified_keeps_each_group_in_its_block_and_zeros_elsewhere():
    from qfix.model.weights import group_keys, read_vars

    config = functional_config(
        [("x", (None, 8, 8, 6), "float32")],
        [("g", "Conv2D", {"filters": 4, "kernel_size": [3, 3], "groups": 2, "activation": "softmax"}, ["x"],
          "float32", (None, 6, 6, 4))], ["g"])
    kernel = np.arange(1, 3 * 3 * 3 * 4 + 1, dtype=np.float32).reshape(3, 3, 3, 4)  # (k, k, C/g, F)
    bias = np.array([1, 2, 3, 4], np.float32)
    new, weights, note = rewrite(config, rewrites.densify_grouped_conv, "g",
                                 weights=_with_vars(config, {"g": [kernel, bias]}))
    k, b = read_vars(weights, group_keys(new, "keras3")[("g",)])
    assert k.shape == (3, 3, 6, 4) and np.array_equal(b, bias)
    assert np.array_equal(k[..., 0:3, 0:2], kernel[..., 0:2]) and np.array_equal(k[..., 3:6, 2:4], kernel[..., 2:4])
    assert not k[..., 0:3, 2:4].any() and not k[..., 3:6, 0:2].any()
    layer = build_graph(new, "keras3").layers["g"]
    assert layer.config["groups"] == 1 and layer.config["activation"] == "softmax"
    assert "2× the layer's multiply-adds" in note


def test_conv1d_transpose_gets_a_1d_identity():
    from qfix.model.weights import group_keys, read_vars

    config = functional_config(
        [("x", (None, 8, 3), "float32")],
        [("t", "Conv1DTranspose", {"filters": 5, "kernel_size": [3], "strides": [2], "activation": "relu"},
          ["x"], "float32", (None, 17, 5))], ["t"])
    kernel, bias = np.ones((3, 5, 3), np.float32) * 0.5, np.arange(5, dtype=np.float32)
    new, weights, _ = rewrite(config, rewrites.unfuse_transpose_conv, "t", weights=_with_vars(config, {"t": [kernel, bias]}))
    layers = build_graph(new, "keras3").layers
    (ident,) = [l for l in layers.values() if l.class_name == "DepthwiseConv1D"]
    assert ident.config["kernel_size"] == [1] and ident.config["activation"] == "relu"
    (ones,) = read_vars(weights, group_keys(new, "keras3")[(ident.name,)])
    assert ones.shape == (1, 5, 1) and np.all(ones == 1)


def test_densify_refuses_a_plain_conv():
    config = functional_config([("x", (None, 8, 8, 4), "float32")],
                               [("c", "Conv2D", {"filters": 4, "kernel_size": [3, 3], "groups": 1}, ["x"])], ["c"])
    with pytest.raises(EditError):
        rewrite(config, rewrites.densify_grouped_conv, "c")
