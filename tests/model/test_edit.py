"""Graph edits on real fixture configs of both dialects.

The fast tests check the edited config (order, wiring, names, the graph and the rules);
the `tf` tests load the written file with the real Keras and compare float outputs.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from qfix.model.archive import read_archive
from qfix.model.edit import EditError, ModelEdit, keras_order, make_layer
from qfix.model.graph import build_graph
from qfix.rules.lint import lint
from qfix.model.config import layer_name
from qfix.rules.base import Context
from qfix.targets import load_profile

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
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


def test_edits_inside_a_nested_model():
    a = fixture("nested", "k3")
    edit = ModelEdit(a.config, a.dialect)
    new = edit.insert_after(("conv2d", 0, 0), make_layer("ReLU", {}, a.dialect, "extra"), scope=("backbone",))
    inner = build_graph(edit.config, a.dialect).layers["backbone"].subgraph
    assert [t.layer for t in inner.layers["conv2d_1"].inputs] == [new]
    assert edit.origin[("backbone", new)] is None


# --- with the real Keras --------------------------------------------------------------------


def _load_and_compare(a, config, weights, tmp_path):
    from qfix.convert.calibration import synthetic_calibration
    from qfix.convert.keras import load_model
    from qfix.model.inputs import input_specs
    from qfix.model.writer import write_archive
    from qfix.convert.fidelity import float_equivalence

    out = write_archive(tmp_path / "edited.keras", config, a.metadata, weights, source=a.path)
    original, edited = load_model(a.path, a.dialect), load_model(out, a.dialect)
    calibration = synthetic_calibration(input_specs(build_graph(a.config, a.dialect)), 4)
    return edited, float_equivalence(original, edited, calibration)


@pytest.mark.tf
@pytest.mark.parametrize("dialect", BOTH)
def test_insert_replace_remove_load_in_keras(dialect, tmp_path):
    """Identity-preserving edits on every kind of slot: weights still land where they belong."""
    a = fixture("tiny_cnn", dialect)
    edit = ModelEdit(a.config, a.dialect)
    # A weighted layer inserted early re-keys every later conv2d / depthwise group.
    conv = make_layer("DepthwiseConv2D", {"kernel_size": [1, 1], "padding": "valid", "use_bias": False,
                                          "depth_multiplier": 1}, a.dialect, "identity_dw")
    name = edit.insert_after((names(a.config)[0], 0, 0), conv, weights=[np.ones((1, 1, 3, 1), np.float32)])
    edit.insert_after(("dense", 0, 0), make_layer("Activation", {"activation": "linear"}, a.dialect, "post"))
    edit.replace("re_lu", make_layer("Activation", {"activation": "relu6"}, a.dialect, "x"))
    edit.remove("re_lu_1")  # ReLU(6) after a depthwise conv: the outputs change, on purpose below
    edit.insert_after(("depthwise_conv2d", 0, 0), make_layer("ReLU", {"max_value": 6.0}, a.dialect, "re_lu_1"))
    edited, diff = _load_and_compare(a, edit.config, edit.weights(a.weights_bytes), tmp_path)
    assert diff <= 1e-5
    assert [l.name for l in edited.layers][:2] == [names(a.config)[0], name]


@pytest.mark.tf
@pytest.mark.parametrize("dialect", BOTH)
def test_splice_nested_sequential_loads_in_keras(dialect, tmp_path):
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if dialect == "k3":
        import keras as K
    else:
        import tf_keras as K
    K.utils.set_random_seed(0)
    L = K.layers
    inner = K.Sequential([K.Input((6,)), L.Dense(4, name="dense"), L.PReLU(name="act"), L.Dense(3, name="last")], name="inner")
    x = K.Input((6,), name="x")
    y = L.Dense(5, name="dense_pre")(x)
    y = L.Dense(6, name="dense")(y)  # clashes with the Sequential's "dense"
    y = inner(y)
    model = K.Model(x, L.Dense(2, name="out")(y))
    path = tmp_path / f"seq_{dialect}.keras"
    model.save(path)
    a = read_archive(path)
    edit = ModelEdit(a.config, a.dialect)
    renames = edit.splice("inner")
    assert renames["dense"] == "inner_dense"
    assert "QF201" not in codes(edit.config, a.dialect)
    edited, diff = _load_and_compare(a, edit.config, edit.weights(a.weights_bytes), tmp_path)
    assert diff <= 1e-5
    assert len(edited.layers) == 7  # x, dense_pre, dense, inner_dense, act, inner's last Dense, out


@pytest.mark.parametrize("dialect", BOTH)
def test_tensors_passed_as_keyword_arguments_are_rewired(dialect):
    """MultiHeadAttention(query, value): tf_keras writes `value` inside the entry's kwargs."""
    a = fixture("transformer_block", dialect)
    edit = ModelEdit(a.config, a.dialect)
    new = edit.insert_after(("tokens", 0, 0), make_layer("Activation", {"activation": "linear"}, a.dialect, "pre"))
    text = json.dumps(edit.layer("multi_head_attention")["inbound_nodes"])
    assert '"tokens"' not in text and text.count(f'"{new}"') == 2  # query and value


@pytest.mark.tf
@pytest.mark.parametrize("dialect", BOTH)
def test_transformer_block_edit_loads_in_keras(dialect, tmp_path):
    a = fixture("transformer_block", dialect)
    edit = ModelEdit(a.config, a.dialect)
    edit.insert_after(("tokens", 0, 0), make_layer("Activation", {"activation": "linear"}, a.dialect, "pre"))
    _, diff = _load_and_compare(a, edit.config, edit.weights(a.weights_bytes), tmp_path)
    assert diff <= 1e-5


@pytest.mark.parametrize("dialect", ["keras3", "tf_keras"])
def test_sequential_without_layers_has_no_inputs_or_outputs(dialect):
    """A config whose Sequential lost its layers (a fuzzed hub_seed mutant did) is an empty
    graph, not an IndexError."""
    graph = build_graph({"class_name": "Sequential", "config": {"name": "s", "layers": []}}, dialect)
    assert (graph.inputs, graph.outputs, list(graph.walk())) == ([], [], [])


def _shared_upsampling(second_shape):
    """x (8×8×4) and y (`second_shape`) both go through one UpSampling2D "up", then Add/Concat."""
    from qfix.model.cases import functional_config

    cfg = functional_config([("x", (None, 8, 8, 4), "float32"), ("y", (None, *second_shape), "float32")],
                            [("up", "UpSampling2D", {"size": [2, 2], "interpolation": "nearest"}, ["x"])], ["up"])
    up = next(r for r in cfg["config"]["layers"] if r["name"] == "up")
    second = copy.deepcopy(up["inbound_nodes"][0])
    second["args"][0]["config"]["keras_history"] = ["y", 0, 0]
    second["args"][0]["config"]["shape"] = [None, *second_shape]
    up["inbound_nodes"].append(second)
    cfg["config"]["output_layers"] = [["up", 0, 0], ["up", 1, 0]]
    return cfg


def test_shape_baking_rewrites_refuse_a_shared_layer_called_on_different_shapes():
    """UpSampling2D → Resizing writes the first call's output size into the layer: on a layer
    shared by an 8×8 and a 4×4 input that is wrong for the second call, so it is refused; on two
    8×8 inputs the one Resizing is right for both."""
    from qfix.model import rewrites

    with pytest.raises(EditError, match="called 2 times"):
        rewrites.upsampling_to_resizing(ModelEdit(_shared_upsampling((4, 4, 4)), "keras3"), (), "up")
    edit = ModelEdit(_shared_upsampling((8, 8, 4)), "keras3")
    rewrites.upsampling_to_resizing(edit, (), "up")
    raw = edit.layer("up")
    assert raw["class_name"] == "Resizing" and len(raw["inbound_nodes"]) == 2


def test_insert_after_a_shared_layer_follows_every_call():
    """One layer inserted after a layer called twice: the new layer is called twice too, each
    call on the matching call of the shared layer, and both outputs read it."""
    edit = ModelEdit(_shared_upsampling((8, 8, 4)), "keras3")
    assert edit.calls(("up", 0, 0)) == [("up", 0, 0), ("up", 1, 0)]
    new = edit.insert_after(("up", 0, 0), make_layer("ReLU", {}, "keras3", "after"))
    raw = edit.layer(new)
    assert [n["args"][0]["config"]["keras_history"] for n in raw["inbound_nodes"]] == [["up", 0, 0], ["up", 1, 0]]
    assert edit.config["config"]["output_layers"] == [[new, 0, 0], [new, 1, 0]]
    graph = build_graph(edit.config, "keras3")
    assert [(t.layer, t.node) for t in graph.outputs] == [(new, 0), (new, 1)]
