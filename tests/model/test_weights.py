"""Weight keys in model.weights.h5 and their migration (h5py only, no TensorFlow)."""

from __future__ import annotations

import io
from pathlib import Path

import h5py
import numpy as np
import pytest

from qfix.model.archive import read_archive
from qfix.model.edit import ModelEdit
from qfix.model.weights import group_keys, migrate, read_vars, snake_case

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
ALL = sorted(p.name for p in FIXTURES.glob("*.keras"))


def _layer_groups(raw: bytes) -> set[str]:
    """Groups that hold a layer: children of a `layers` container of the model tree."""
    out: set[str] = set()
    with h5py.File(io.BytesIO(raw), "r") as f:
        def walk(group, prefix):
            if "layers" not in group:
                return
            for key in group["layers"]:
                path = f"{prefix}layers/{key}"
                out.add(path)
                walk(group["layers"][key], path + "/")
        walk(f, "")
    return out


def _datasets(raw: bytes) -> dict[str, np.ndarray]:
    out = {}
    with h5py.File(io.BytesIO(raw), "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, np.asarray(o)) if isinstance(o, h5py.Dataset) else None)
    return out


@pytest.mark.parametrize("class_name,key", [
    ("Conv2D", "conv2d"), ("DepthwiseConv2D", "depthwise_conv2d"), ("LeakyReLU", "leaky_re_lu"),
    ("PReLU", "p_re_lu"), ("ReLU", "re_lu"), ("InputLayer", "input_layer"), ("TFOpLambda", "tf_op_lambda"),
    ("GlobalAveragePooling2D", "global_average_pooling2d"), ("MultiHeadAttention", "multi_head_attention"),
    ("Functional", "functional"), ("BatchNormalization", "batch_normalization"),
])
def test_snake_case_both_dialects(class_name, key):
    assert snake_case(class_name, "keras3") == key
    assert snake_case(class_name, "tf_keras") == key


@pytest.mark.parametrize("fixture", ALL)
def test_group_keys_match_the_file(fixture):
    a = read_archive(FIXTURES / fixture)
    keys = group_keys(a.config, a.dialect)
    assert set(keys.values()) == _layer_groups(a.weights_bytes)
    if a.dialect == "keras3":  # Keras 3 records each layer's name beside its variables
        with h5py.File(io.BytesIO(a.weights_bytes), "r") as f:
            for path, group in keys.items():
                assert f[group + "/vars"].attrs["name"] == path[-1]


def test_ops_and_sequential_inputs_have_no_group():
    a = read_archive(FIXTURES / "two_input_k3.keras")
    keys = group_keys(a.config, a.dialect)
    assert ("cast",) not in keys  # a keras.ops node, not a layer
    assert keys[("frame",)] == "layers/input_layer" and keys[("features",)] == "layers/input_layer_1"
    seq = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "InputLayer", "config": {"name": "input_layer", "batch_shape": [None, 4]}},
        {"class_name": "Dense", "config": {"name": "d"}},
        {"class_name": "Dense", "config": {"name": "d2"}},
    ]}}
    assert group_keys(seq, "keras3") == {("d",): "layers/dense", ("d2",): "layers/dense_1"}


def test_nested_keys():
    a = read_archive(FIXTURES / "nested_tfk.keras")
    keys = group_keys(a.config, a.dialect)
    assert keys[("backbone",)] == "layers/functional"
    assert keys[("backbone", "conv2d_1")] == "layers/functional/layers/conv2d_1"
    assert keys[("head",)] == "layers/dense"


@pytest.mark.parametrize("fixture", ALL)
def test_identity_migration_keeps_every_dataset(fixture):
    a = read_archive(FIXTURES / fixture)
    origin = {p: p for p in group_keys(a.config, a.dialect)}
    out = migrate(a.weights_bytes, a.config, a.config, a.dialect, origin)
    before, after = _datasets(a.weights_bytes), _datasets(out)
    assert before.keys() == after.keys()
    for k in before:
        np.testing.assert_array_equal(before[k], after[k])


@pytest.mark.parametrize("dialect", ["k3", "tfk"])
def test_reclassing_rekeys_later_layers(dialect):
    """LeakyReLU → PReLU: the PReLU gets its alpha, same-class neighbours keep their weights."""
    a = read_archive(FIXTURES / f"leaky_relu_cnn_{dialect}.keras")
    edit = ModelEdit(a.config, a.dialect)
    edit.replace("leaky_re_lu", {"class_name": "PReLU", "config": {"name": "x", "shared_axes": [1, 2]}},
                 weights=[np.full((1, 1, 8), 0.25, np.float32)])
    out = edit.weights(a.weights_bytes)
    keys = group_keys(edit.config, a.dialect)
    assert keys[("leaky_re_lu",)] == "layers/p_re_lu"
    assert keys[("leaky_re_lu_1",)] == "layers/leaky_re_lu"  # was leaky_re_lu_1: re-keyed
    np.testing.assert_array_equal(read_vars(out, "layers/p_re_lu")[0], np.full((1, 1, 8), 0.25))
    for conv in ("conv2d", "conv2d_1", "dense"):
        for x, y in zip(read_vars(a.weights_bytes, f"layers/{conv}"), read_vars(out, f"layers/{conv}")):
            np.testing.assert_array_equal(x, y)
    assert _layer_groups(out) == set(keys.values())


@pytest.mark.parametrize("dialect", ["k3", "tfk"])
def test_unnesting_moves_inner_weights(dialect):
    a = read_archive(FIXTURES / f"nested_{dialect}.keras")
    edit = ModelEdit(a.config, a.dialect)
    edit.splice("backbone")
    out = edit.weights(a.weights_bytes)
    assert _layer_groups(out) == set(group_keys(edit.config, a.dialect).values())
    for name in ("conv2d", "conv2d_1"):
        old = read_vars(a.weights_bytes, f"layers/functional/layers/{name}")
        new = read_vars(out, f"layers/{name}")
        assert len(old) == len(new) == 2
        for x, y in zip(old, new):
            np.testing.assert_array_equal(x, y)


def test_migration_drops_stale_state_and_leaves_no_scaffolding():
    a = read_archive(FIXTURES / "leaky_relu_cnn_k3.keras")
    buf = io.BytesIO(a.weights_bytes)
    with h5py.File(buf, "a") as f:
        f.create_dataset("optimizer/vars/0", data=np.zeros(3))  # slots of the old variable order
    edit = ModelEdit(a.config, a.dialect)
    edit.replace("leaky_re_lu", {"class_name": "PReLU", "config": {"name": "x"}}, weights=[np.ones((1, 1, 8))])
    out = edit.weights(buf.getvalue())
    with h5py.File(io.BytesIO(out), "r") as f:
        assert sorted(f) == ["layers", "vars"]
        assert f["layers/p_re_lu/vars"].attrs["name"] == "leaky_re_lu"  # Keras 3's record follows
        assert f["layers/leaky_re_lu/vars"].attrs["name"] == "leaky_re_lu_1"
