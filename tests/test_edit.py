"""Graph edits on real fixture configs of both dialects.

The fast tests check the edited config (order, wiring, names, the graph and the rules);
the `tf` tests load the written file with the real Keras and compare float outputs.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from qfix.model.archive import read_archive
from qfix.model.edit import EditError, ModelEdit, keras_order, make_layer, scope_of
from qfix.model.graph import build_graph
from qfix.model.lint import lint
from qfix.model.weights import layer_name
from qfix.rules.base import Context
from qfix.targets import load_profile

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ALL = sorted(p.name for p in FIXTURES.glob("*.keras"))
BOTH = ["k3", "tfk"]


def fixture(name: str, dialect: str):
    return read_archive(FIXTURES / f"{name}_{dialect}.keras")


def names(model: dict) -> list[str]:
    return [layer_name(r) for r in model["config"]["layers"]]


def codes(config: dict, dialect: str, target: str = "edgetpu") -> set[str]:
    return {v.code for v in lint(build_graph(config, dialect), Context(load_profile(target)))}


@pytest.mark.parametrize("name", ALL)
def test_keras_order_reproduces_every_saved_config(name):
    """Keras saves layers in the order it derives from the graph; ours must agree."""
    a = read_archive(FIXTURES / name)

    def check(model):
        assert keras_order(model, a.dialect) == names(model)
        for raw in model["config"]["layers"]:
            if raw.get("class_name") in ("Functional", "Sequential"):
                check(raw)

    check(a.config)


@pytest.mark.parametrize("dialect", BOTH)
def test_insert_then_remove_round_trips(dialect):
    a = fixture("tiny_cnn", dialect)
    original = copy.deepcopy(a.config)
    edit = ModelEdit(a.config, a.dialect)
    relu = make_layer("ReLU", {"max_value": None, "negative_slope": 0.0, "threshold": 0.0}, a.dialect, "conv2d")
    new = edit.insert_after(("conv2d", 0, 0), relu)
    assert new != "conv2d" and new.startswith("conv2d")  # unique name
    order = names(edit.config)
    assert order.index("conv2d") < order.index(new) < order.index("re_lu")
    graph = build_graph(edit.config, a.dialect)
    assert [t.layer for t in graph.layers["re_lu"].inputs] == [new]
    assert [t.layer for t in graph.layers[new].inputs] == ["conv2d"]
    assert edit.origin[(new,)] is None
    edit.remove(new)
    assert edit.config == original and a.config == original  # the input config is never touched


@pytest.mark.parametrize("dialect", BOTH)
def test_insert_on_a_model_output_rewires_the_output(dialect):
    a = fixture("tiny_cnn", dialect)
    edit = ModelEdit(a.config, a.dialect)
    out = names(a.config)[-1]
    new = edit.insert_after((out, 0, 0), make_layer("Activation", {"activation": "linear"}, a.dialect, "post"))
    graph = build_graph(edit.config, a.dialect)
    assert [t.layer for t in graph.outputs] == [new]
    assert names(edit.config)[-1] == new


@pytest.mark.parametrize("dialect", BOTH)
def test_remove_rejects_what_does_not_pass_through(dialect):
    a = fixture("two_input", dialect)
    edit = ModelEdit(a.config, a.dialect)
    with pytest.raises(EditError):
        edit.remove("merge")  # reads two tensors
    with pytest.raises(EditError):
        edit.remove("frame")


@pytest.mark.parametrize("dialect", BOTH)
def test_splice_flattens_and_keeps_names(dialect):
    a = fixture("nested", dialect)
    assert "QF201" in codes(a.config, a.dialect)
    edit = ModelEdit(a.config, a.dialect)
    renames = edit.splice("backbone")
    assert renames == {"conv2d": "conv2d", "conv2d_1": "conv2d_1"}
    assert names(edit.config) == ["image", "conv2d", "conv2d_1", "global_average_pooling2d", "head"]
    graph = build_graph(edit.config, a.dialect)
    assert not any(l.is_model for l in graph)
    assert [t.layer for t in graph.inputs] == ["image"] and [t.layer for t in graph.outputs] == ["head"]
    assert [t.layer for t in graph.layers["conv2d"].inputs] == ["image"]
    assert "QF201" not in codes(edit.config, a.dialect)
    assert (("conv2d",), ("backbone", "conv2d")) in edit.origin.items()


@pytest.mark.parametrize("dialect", BOTH)
def test_splice_renames_clashes_and_keeps_output_names(dialect):
    """Outputs: the backbone itself, and an outer layer named like a backbone layer."""
    a = fixture("nested", dialect)
    cfg = copy.deepcopy(a.config)
    image, backbone, gap = cfg["config"]["layers"][:3]
    gap["name"] = gap["config"]["name"] = "conv2d"  # clashes with the backbone's conv2d
    gap["inbound_nodes"] = copy.deepcopy(backbone["inbound_nodes"])  # reads the image
    gap.pop("build_config", None)
    if dialect == "tfk":
        gap["inbound_nodes"][0][0][3] = {}
    cfg["config"]["layers"] = [image, backbone, gap]
    first = 1 if dialect == "tfk" else 0  # tf_keras counts a nested model's calls from 1
    cfg["config"]["output_layers"] = [["backbone", first, 0], ["conv2d", 0, 0]]
    assert build_graph(cfg, a.dialect)

    edit = ModelEdit(cfg, a.dialect)
    renames = edit.splice("backbone")
    assert renames == {"conv2d": "backbone_conv2d", "conv2d_1": "backbone"}
    graph = build_graph(edit.config, a.dialect)
    assert [t.layer for t in graph.outputs] == ["backbone", "conv2d"]
    assert graph.layers["backbone"].class_name == "Conv2D"
    assert [t.layer for t in graph.layers["backbone"].inputs] == ["backbone_conv2d"]
    assert edit.origin[("backbone_conv2d",)] == ("backbone", "conv2d")
    assert edit.origin[("backbone",)] == ("backbone", "conv2d_1")


@pytest.mark.parametrize("dialect", BOTH)
def test_set_input_dtype_and_shape(dialect):
    a = fixture("int64_ids", dialect)
    edit = ModelEdit(a.config, a.dialect)
    edit.set_input("token_ids", dtype="int32", shape=(1, 16))
    graph = build_graph(edit.config, a.dialect)
    inp = graph.layers["token_ids"]
    assert inp.out_dtype == "int32" and inp.out_shape == (1, 16)
    ref = graph.layers["embedding"].inputs[0]
    assert ref.dtype in (None, "int32")  # Keras 3 records it on the reference, tf_keras does not
    assert "QF103" in codes(a.config, a.dialect) and "QF103" not in codes(edit.config, a.dialect)


@pytest.mark.parametrize("dialect", BOTH)
def test_set_batch_makes_every_recorded_shape_static(dialect):
    a = fixture("tiny_cnn", dialect)
    assert "QF301" in codes(a.config, a.dialect)
    edit = ModelEdit(a.config, a.dialect)
    edit.set_batch(1)
    graph = build_graph(edit.config, a.dialect)
    assert graph.input_layers()[0].out_shape[0] == 1
    for layer in graph:
        for ref in layer.inputs:
            assert ref.shape is None or ref.shape[0] == 1
    assert "QF301" not in codes(edit.config, a.dialect)


def test_scope_of_pointer():
    a = fixture("nested", "k3")
    graph = build_graph(a.config, a.dialect)
    inner = graph.layers["backbone"].subgraph.layers["conv2d_1"]
    assert scope_of(a.config, inner.pointer) == (("backbone",), "conv2d_1")
    assert scope_of(a.config, graph.layers["head"].pointer) == ((), "head")
    with pytest.raises(EditError):
        scope_of(a.config, "/config/name")


def test_edits_inside_a_nested_model():
    a = fixture("nested", "k3")
    edit = ModelEdit(a.config, a.dialect)
    new = edit.insert_after(("conv2d", 0, 0), make_layer("ReLU", {}, a.dialect, "extra"), scope=("backbone",))
    inner = build_graph(edit.config, a.dialect).layers["backbone"].subgraph
    assert [t.layer for t in inner.layers["conv2d_1"].inputs] == [new]
    assert edit.origin[("backbone", new)] is None
