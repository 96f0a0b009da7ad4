"""The .keras config readers, on the spellings each dialect writes (no TensorFlow)."""

from __future__ import annotations

import pytest

from qfix.model.config import (MalformedConfig, activation_name, cast_dtypes, input_shape, io_refs, is_cast,
                               is_model, layer_name, node_kwargs, node_refs, policy_name)


def _k3(name, shape=(None, 4), dtype="float32"):
    return {"class_name": "__keras_tensor__", "config": {"shape": list(shape), "dtype": dtype, "keras_history": [name, 0, 0]}}


def test_keras3_node_refs_in_file_order_and_in_keras_order():
    node = {"args": [_k3("q")], "kwargs": {"value": _k3("v"), "key": _k3("k", dtype="int32")}}
    assert [r.tensor for r in node_refs(node, keras_order=False)] == [("q", 0, 0), ("v", 0, 0), ("k", 0, 0)]
    assert [r.tensor for r in node_refs(node)] == [("q", 0, 0), ("k", 0, 0), ("v", 0, 0)]  # tree.flatten sorts keys
    k = next(r for r in node_refs(node) if r.tensor[0] == "k")
    assert k.shape == (None, 4) and k.dtype == "int32"


def test_tf_keras_kwarg_tensors_are_references_only_in_keras_order():
    node = [["x", 0, 0, {"y": ["y", 0, 0], "name": None}]]
    assert [r.tensor for r in node_refs(node, keras_order=False)] == [("x", 0, 0)]
    assert [r.tensor for r in node_refs(node)] == [("x", 0, 0), ("y", 0, 0)]
    assert node_kwargs(node) == {"y": ["y", 0, 0], "name": None}
    assert [r.tensor for r in node_refs(["x", 1, 0, {}])] == [("x", 1, 0)]  # one bare entry


def test_a_ref_rewires_in_place():
    node = {"args": [_k3("a")], "kwargs": {}}
    (ref,) = node_refs(node)
    ref.point_to(("b", 0, 0), shape=[1, 4], dtype="int8")
    assert node["args"][0]["config"] == {"shape": [1, 4], "dtype": "int8", "keras_history": ["b", 0, 0]}


@pytest.mark.parametrize("node", [{"args": [{"class_name": "__keras_tensor__", "config": {}}]}, [[3, 0, 0]], "x"])
def test_malformed_references_are_refused(node):
    with pytest.raises(MalformedConfig):
        list(node_refs(node))


def test_io_refs_of_lists_and_dicts():
    assert [r.tensor for r in io_refs([["a", 0, 0], ["b", 0, 1]])] == [("a", 0, 0), ("b", 0, 1)]
    assert [r.tensor for r in io_refs({"out": ["c", 0, 0]})] == [("c", 0, 0)]


def test_one_layer_entry_in_both_dialects():
    k3_cast = {"module": "keras.src.ops.core", "class_name": "Cast", "name": "c", "config": {"dtype": "int64"}}
    tfk_cast = {"class_name": "TFOpLambda", "config": {"name": "tf.cast", "function": "cast", "dtype": "float32"},
                "inbound_nodes": [[["x", 0, 0, {"dtype": "int64"}]]]}
    assert is_cast(k3_cast) and is_cast(tfk_cast)
    assert cast_dtypes(k3_cast) == ["int64"] and cast_dtypes(tfk_cast) == ["int64"]
    assert not is_cast({"module": "keras.layers", "class_name": "Dense", "config": {}})
    assert layer_name(k3_cast) == "c" and layer_name(tfk_cast) == "tf.cast"
    assert policy_name({"class_name": "DTypePolicy", "config": {"name": "mixed_float16"}}) == "mixed_float16"
    assert policy_name("float64") == "float64" and policy_name(None) is None
    assert activation_name({"config": {"activation": "gelu"}}) == "gelu"
    assert activation_name({"config": {"activation": {"class_name": "function", "config": "hard_silu"}}}) == "hard_silu"
    assert input_shape({"batch_shape": [None, 8, 3]}) == (None, 8, 3)
    assert input_shape({"batch_input_shape": [1, 8]}) == (1, 8) and input_shape({}) is None
    assert is_model({"class_name": "Sequential", "config": {"layers": []}})
    assert not is_model({"class_name": "Functional", "config": "not a dict"})
