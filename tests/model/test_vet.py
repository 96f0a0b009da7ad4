"""`qfix.model.vet.foreign_references`: what a `.keras` config may name outside Keras. TensorFlow's
own initializers, which tf_keras writes with their TensorFlow module (`tf.constant_initializer(0)`
in its EfficientNetV2 head), are allowed by exact class; anything near them is still foreign."""

from __future__ import annotations

import pytest

from qfix.model.vet import foreign_references

INIT_OPS_V2 = "tensorflow.python.ops.init_ops_v2"


def dense(bias: dict) -> dict:
    return {"module": "tf_keras.layers", "class_name": "Dense", "config": {"units": 2, "bias_initializer": bias}}


@pytest.mark.parametrize("cls", ["Constant", "Zeros", "Ones", "GlorotUniform", "VarianceScaling", "Orthogonal"])
def test_tensorflow_initializers_are_not_foreign(cls: str):
    ref = {"module": INIT_OPS_V2, "class_name": cls, "config": {}, "registered_name": cls}
    assert foreign_references(dense(ref)) == []


@pytest.mark.parametrize(("module", "cls"), [
    (INIT_OPS_V2, "Initializer"),  # the base class: not one TensorFlow writes
    (INIT_OPS_V2, "_RandomGenerator"),
    (INIT_OPS_V2 + "x", "Constant"),  # a look-alike module
    ("tensorflow.python.ops", "Constant"),
    ("tensorflow", "Constant"),
    ("os", "system"),
    (INIT_OPS_V2, None),
])
def test_other_tensorflow_references_stay_foreign(module: str, cls: str | None):
    ref = {"module": module, "config": {}}
    if cls is not None:
        ref["class_name"] = cls
    found = foreign_references(dense(ref))
    assert [(r.module, r.class_name, r.pointer) for r in found] == [(module, cls, "/config/bias_initializer")]
