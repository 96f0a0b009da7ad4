"""Layers Keras defines inside its own keras.applications modules (ConvNeXt's LayerScale,
InceptionResNetV2's CustomScaleLayer) are Keras's, not a user's custom class: no QF203, so
qfix converts the model as the plain converter does (fleet, issue 9: ConvNeXt was refused)."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

from qfix.jobs.check import Options, context
from qfix.model.builtin_layers import APPLICATION_LAYERS
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


def _installed_application_layers() -> list[tuple[str, str]]:
    """(module, class) of every Layer subclass in the installed keras and tf_keras applications
    sources, read with ast (nothing imported): tf_keras's InceptionResNetV2 was missed once."""
    found = []
    for package in ("keras", "tf_keras"):
        spec = importlib.util.find_spec(package)
        for path in sorted((Path(spec.origin).parent / "src" / "applications").glob("*.py")):
            for node in ast.parse(path.read_text()).body:
                if isinstance(node, ast.ClassDef) and any(ast.unparse(b).endswith("Layer") for b in node.bases):
                    found.append((f"{package}.src.applications.{path.stem}", node.name))
    return found


def test_every_installed_application_layer_is_listed():
    found = _installed_application_layers()
    assert len(found) >= 6  # ConvNeXt's two and InceptionResNetV2's one, in each library
    assert [f for f in found if f[1] not in APPLICATION_LAYERS.get(f[0], ())] == []


@pytest.mark.parametrize("module,cls", _installed_application_layers())
def test_keras_application_layers_are_builtin(module, cls):
    graph = build_graph(_with_layer(module, cls), "tf_keras" if module.startswith("tf_keras") else "keras3")
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
