"""drop_noop_cast: a cast to the dtype its input already has is removed (issue 10's review,
k3_ops: `ops.cast(x, "float32")` on a float tensor made tfmot fail); a real cast stays; and
tfmot's error on the layer after such a cast names that layer (QF505 blames the cast)."""

from __future__ import annotations

import pytest

from qfix.convert.qat import named_layer
from qfix.model.cases import functional_config
from qfix.model.graph import build_graph
from qfix.model.edit import EditError, ModelEdit
from qfix.model.rewrites.drop_noop_cast import drop_noop_cast, drop_noop_casts, noop_casts
from qfix.rules.tfmot_refused import blamed_layer


def _cast_chain(first: str, second: str):
    """x (float32) → Cast(first) "c1" → Cast(second) "c2" → Dense "d"."""
    return functional_config([("x", (None, 8), "float32")],
                             [("c1", "Cast", {"dtype": first}, ["x"], first),
                              ("c2", "Cast", {"dtype": second}, ["c1"], second),
                              ("d", "Dense", {"units": 2}, ["c2"])], ["d"])


def test_a_cast_to_its_inputs_dtype_is_removed_and_a_real_cast_stays():
    cfg = _cast_chain("float16", "float16")  # c1 changes the dtype; c2 casts float16 to float16
    before = build_graph(cfg, "keras3")
    assert noop_casts(cfg, "keras3") == ["c2"]
    edit = ModelEdit(cfg, "keras3")
    drop_noop_cast(edit, (), "c2")
    with pytest.raises(EditError, match="already has"):
        drop_noop_cast(edit, (), "c1")
    g = build_graph(edit.config, "keras3")
    assert [l.name for l in g] == ["x", "c1", "d"]
    assert [t.layer for t in g.layers["d"].inputs] == ["c1"]
    assert [l.name for l in before] == ["x", "c1", "c2", "d"]  # the input config is not touched


def test_nothing_to_drop_returns_the_same_config():
    cfg = _cast_chain("float16", "float32")
    out, _, dropped = drop_noop_casts(cfg, b"", "keras3")
    assert dropped == [] and out is cfg


def test_a_float32_cast_on_float32_is_dropped():
    cfg = _cast_chain("float32", "float16")
    assert noop_casts(cfg, "keras3") == ["c1"]


def test_tfmots_incompatible_input_error_names_the_layer_and_blames_the_cast_before_it():
    msg = ('Input 0 of layer "d" is incompatible with the layer: expected ndim=4, found ndim=5. '
           "Full shape received: (1, None, 14, 14, 2)")
    assert named_layer(msg) == ("d", None)
    tfk = {"class_name": "Functional", "config": {"name": "m", "layers": [
        {"class_name": "InputLayer", "name": "x", "config": {"name": "x", "batch_input_shape": [None, 8],
                                                             "dtype": "float32"}, "inbound_nodes": []},
        {"class_name": "TFOpLambda", "name": "cast", "config": {"name": "cast", "function": "cast", "dtype": "float32"},
         "inbound_nodes": [["x", 0, 0, {"dtype": "float32"}]]},
        {"class_name": "Dense", "name": "d", "config": {"name": "d", "units": 2}, "inbound_nodes": [[["cast", 0, 0, {}]]]}],
        "input_layers": [["x", 0, 0]], "output_layers": [["d", 0, 0]]}}
    assert blamed_layer(build_graph(tfk, "tf_keras"), *named_layer(msg)) == "cast"
    assert noop_casts(tfk, "tf_keras") == ["cast"]
