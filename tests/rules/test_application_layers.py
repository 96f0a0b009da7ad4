"""Layers Keras defines inside its own keras.applications modules (ConvNeXt's LayerScale,
InceptionResNetV2's CustomScaleLayer) are Keras's, not a user's custom class: no QF203, so
qfix converts the model as the plain converter does (fleet, issue 9: ConvNeXt was refused)."""

from __future__ import annotations

import pytest

from qfix.jobs.check import Options, context
from qfix.model.cases import functional_config
from qfix.model.graph import build_graph
from qfix.rules.lint import lint
from qfix.targets import load_profile


def _with_layer(module: str, class_name: str) -> dict:
    cfg = functional_config([("x", (None, 4, 4, 8), "float32")],
                            [("s", "Identity", {}, ["x"], "float32", (None, 4, 4, 8))], ["s"])
    raw = next(l for l in cfg["config"]["layers"] if l["name"] == "s")
    raw.update(module=module, class_name=class_name, registered_name=class_name)
    return cfg


@pytest.mark.parametrize("module,cls", [
    ("keras.src.applications.convnext", "LayerScale"),
    ("keras.src.applications.convnext", "StochasticDepth"),
    ("keras.src.applications.inception_resnet_v2", "CustomScaleLayer"),
])
def test_keras_application_layers_are_builtin(module, cls):
    graph = build_graph(_with_layer(module, cls), "keras3")
    codes = {v.code for v in lint(graph, context(load_profile("int8"), Options(target="int8")))}
    assert "QF203" not in codes


@pytest.mark.parametrize("module,cls", [
    ("keras.src.applications.convnext", "NotAKerasLayer"),  # a Keras module, an unknown class
    ("my_app.layers", "LayerScale"),  # a user's class of the same name
])
def test_other_classes_stay_unknown(module, cls):
    graph = build_graph(_with_layer(module, cls), "keras3")
    codes = {v.code for v in lint(graph, context(load_profile("int8"), Options(target="int8")))}
    assert "QF203" in codes
