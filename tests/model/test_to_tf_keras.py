"""Keras 3 → tf_keras translation of `.keras` configs and weights (pure Python, no TensorFlow).

The configs here are written by the test suite itself (qfix.model.cases, in Keras 3's own
spelling, checked against files saved by Keras 3 and tf_keras 2.21); the fleet test reads the
Keras 3 keras.applications models in /work/fleet/cache when that folder exists (not in CI).
That tf_keras loads each translation and computes the same outputs is
tests/jobs/test_to_tf_keras_equivalence.py (TF).
"""

from __future__ import annotations

import copy
import io
import json
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from qfix.convert.keras import sniff_dialect
from qfix.model.cases import functional_config, sequential_config
from qfix.model.to_tf_keras import Untranslatable, translate
from qfix.model.to_tf_keras.graph import translate_model, tf_keras_order
from qfix.model.to_tf_keras.layers import translate_entry
from qfix.model.weights import group_keys
from qfix.model.writer import write_archive

FLEET = Path("/work/fleet/cache")
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
POLICY = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"},
          "registered_name": None, "shared_object_id": 1}
GLOROT = {"module": "keras.initializers", "class_name": "GlorotUniform",
          "config": {"seed": None, "input_axes": None, "output_axes": None}, "registered_name": None}


def _weights(config: dict, variables: dict[tuple[str, ...], list[np.ndarray]]) -> bytes:
    """A Keras 3 model.weights.h5: a group per layer, `variables` for the given layer paths."""
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_group("vars")
        for path, group in group_keys(config, "keras3").items():
            g = f.create_group(group + "/vars")
            for i, v in enumerate(variables.get(path, [])):
                g.create_dataset(str(i), data=v)
    return buf.getvalue()


def _datasets(weights: bytes) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with h5py.File(io.BytesIO(weights), "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, np.asarray(o)) if isinstance(o, h5py.Dataset) else None)
    return out


def _layers(t_config: dict) -> dict[str, dict]:
    return {(l.get("name") or l["config"]["name"]): l for l in t_config["config"]["layers"]}


def _cnn() -> dict:
    """Input → Conv2D → BN → slice + cast + scalar multiply → Concatenate, Keras 3 style."""
    cfg = functional_config(
        inputs=[("img", (None, 8, 8, 3), "float32")],
        layers=[
            ("conv", "Conv2D", {"filters": 4, "kernel_size": [3, 3], "padding": "same", "activation": "relu",
                                "kernel_initializer": GLOROT, "dtype": POLICY}, ["img"], "float32", [None, 8, 8, 4]),
            ("bn", "BatchNormalization", {"axis": -1, "synchronized": False, "dtype": POLICY}, ["conv"]),
            ("get_item", "GetItem", {"__module": "keras.src.ops.numpy"}, ["bn"], "float32", [None, 8, 8, 2]),
            ("cast", "Cast", {"dtype": "float32"}, ["get_item"]),
            ("cat", "Concatenate", {"axis": -1, "__module": "keras.layers"}, ["bn", "cast"], "float32", [None, 8, 8, 6]),
        ],
        outputs=["cat"],
    )
    layers = {l["name"]: l for l in cfg["config"]["layers"]}
    tensor = layers["get_item"]["inbound_nodes"][0]["args"][0]
    layers["get_item"]["inbound_nodes"][0]["args"] = [tensor, [
        {"class_name": "__ellipsis__", "config": {}},
        {"class_name": "__slice__", "config": {"start": 0, "stop": 2, "step": None}}]]
    return cfg


CNN_VARS = {("conv",): [np.full((3, 3, 3, 4), 0.5, "float32"), np.arange(4, dtype="float32")],
            ("bn",): [np.full(4, 2.0, "float32"), np.full(4, 3.0, "float32"),
                      np.full(4, 4.0, "float32"), np.full(4, 5.0, "float32")]}


# --- layer configs ---------------------------------------------------------------------------


def test_layer_config_spelling_is_tf_keras():
    t = translate(_cnn(), _weights(_cnn(), CNN_VARS))
    layers = _layers(t.config)
    assert layers["img"]["config"]["batch_input_shape"] == [None, 8, 8, 3]
    assert "batch_shape" not in layers["img"]["config"]
    conv = layers["conv"]["config"]
    assert conv["dtype"] == "float32"  # the DTypePolicy object, as a string
    assert conv["kernel_initializer"]["config"] == {"seed": None}  # input_axes/output_axes gone
    assert "shared_object_id" not in json.dumps(t.config)
    assert layers["bn"]["config"]["synchronized"] is False  # tf_keras's BN takes it


def test_keras3_only_keys_at_default_are_dropped_and_renamed():
    leaky = translate_entry({"module": "keras.layers", "class_name": "LeakyReLU",
                             "config": {"name": "lr", "dtype": POLICY, "negative_slope": 0.1}})
    assert leaky["config"] == {"name": "lr", "dtype": "float32", "alpha": 0.1}
    dense = translate_entry({"module": "keras.layers", "class_name": "Dense",
                             "config": {"name": "d", "units": 2, "quantization_config": None, "lora_rank": None}})
    assert dense["config"] == {"name": "d", "units": 2}
    ln = translate_entry({"module": "keras.layers", "class_name": "LayerNormalization",
                          "config": {"name": "ln", "axis": [-1], "rms_scaling": False}})
    assert ln["config"] == {"name": "ln", "axis": [-1]}
    assert translate_entry({"module": "keras.layers", "class_name": "Activation",
                            "config": {"name": "a", "activation": "silu"}})["config"]["activation"] == "swish"


@pytest.mark.parametrize("cls, config, what", [
    ("LayerNormalization", {"rms_scaling": True}, "rms_scaling=True"),
    ("Resizing", {"height": 4, "width": 4, "antialias": True}, "antialias=True"),
    ("Activation", {"activation": "celu"}, "activation 'celu'"),
    ("Dense", {"units": 2, "dtype": {"module": "keras", "class_name": "QuantizedDTypePolicy",
                                     "config": {"name": "int8_from_float32"}}}, "QuantizedDTypePolicy"),
])
def test_no_tf_keras_equivalent_is_untranslatable(cls, config, what):
    with pytest.raises(Untranslatable) as e:
        translate_entry({"module": "keras.layers", "class_name": cls, "config": {"name": "odd", **config}})
    assert e.value.layer == "odd" and what in e.value.reason


def test_lambda_bytecode_is_carried_in_tf_keras_form_and_stays_flagged():
    from qfix.model.vet import foreign_references

    z = zipfile.ZipFile(FIXTURES / "lambda_cnn_k3.keras")
    t = translate(json.loads(z.read("config.json")), z.read("model.weights.h5"))
    lam = _layers(t.config)["scale_shift"]["config"]
    tfk = json.loads(zipfile.ZipFile(FIXTURES / "lambda_cnn_tfk.keras").read("config.json"))
    want = next(l for l in tfk["config"]["layers"] if l["class_name"] == "Lambda")["config"]
    assert lam["function"] == want["function"] and lam["function_type"] == "lambda"  # same bytecode as tf_keras saved
    assert [r.is_function for r in foreign_references(t.config)] == [True]  # still needs --trust-lambdas
    assert any("scale_shift" in n for n in t.notes)


# --- the graph -------------------------------------------------------------------------------


def test_nodes_ops_and_io_in_tf_keras_form():
    layers = _layers(translate(_cnn(), _weights(_cnn(), CNN_VARS)).config)
    assert layers["conv"]["inbound_nodes"] == [[["img", 0, 0, {}]]]
    assert layers["cat"]["inbound_nodes"] == [[["bn", 0, 0, {}], ["cast", 0, 0, {}]]]
    sl = layers["get_item"]
    assert (sl["class_name"], sl["config"]["function"]) == ("SlicingOpLambda", "__operators__.getitem")
    full = {"start": None, "stop": None, "step": None}
    # The Ellipsis (which tf_keras cannot save) spelled out for the rank-4 input.
    assert sl["inbound_nodes"] == [["bn", 0, 0, {"slice_spec": [full, full, full, {"start": 0, "stop": 2, "step": None}]}]]
    cast = layers["cast"]
    assert (cast["class_name"], cast["config"]["function"]) == ("TFOpLambda", "cast")
    assert cast["inbound_nodes"] == [["get_item", 0, 0, {"dtype": "float32"}]]
    t = translate(_cnn(), _weights(_cnn(), CNN_VARS)).config["config"]
    assert t["input_layers"] == [["img", 0, 0]] and t["output_layers"] == [["cat", 0, 0]]


def test_single_reference_io_is_wrapped_in_a_list():
    cfg = _cnn()
    cfg["config"]["input_layers"], cfg["config"]["output_layers"] = ["img", 0, 0], ["cat", 0, 0]  # as Keras 3 saves one
    t = translate(cfg, _weights(cfg, CNN_VARS)).config["config"]
    assert t["input_layers"] == [["img", 0, 0]] and t["output_layers"] == [["cat", 0, 0]]


@pytest.mark.parametrize("first, second, expected", [
    ("x", 2.0, ["x", 0, 0, {"y": 2.0}]),
    (2.0, "x", ["x", 0, 0, {"y": 2.0}]),  # commutes: the tensor goes first
])
def test_binary_op_with_a_constant(first, second, expected):
    cfg = functional_config(inputs=[("x", (None, 4), "float32")], layers=[("mul", "Multiply", {}, ["x"])], outputs=["mul"])
    node = cfg["config"]["layers"][1]["inbound_nodes"][0]
    tensor = node["args"][0]
    node["args"] = [tensor if a == "x" else a for a in (first, second)]
    mul = _layers(translate(cfg, _weights(cfg, {})).config)["mul"]
    assert mul["config"]["function"] == "math.multiply" and mul["inbound_nodes"] == [expected]


def test_constant_first_of_a_non_commuting_op_is_untranslatable():
    cfg = functional_config(inputs=[("x", (None, 4), "float32")], layers=[("sub", "Subtract", {}, ["x"])], outputs=["sub"])
    node = cfg["config"]["layers"][1]["inbound_nodes"][0]
    node["args"] = [1.0, node["args"][0]]
    with pytest.raises(Untranslatable) as e:
        translate(cfg, _weights(cfg, {}))
    assert e.value.layer == "sub"


def test_unknown_op_is_untranslatable():
    cfg = functional_config(inputs=[("x", (None, 4), "float32")], layers=[("c", "Cumsum", {}, ["x"])], outputs=["c"])
    with pytest.raises(Untranslatable) as e:
        translate(cfg, _weights(cfg, {}))
    assert e.value.layer == "c" and "Cumsum" in e.value.reason


def test_training_and_mask_call_arguments_are_dropped():
    cfg = functional_config(inputs=[("x", (None, 4), "float32")],
                            layers=[("drop", "Dropout", {"rate": 0.5}, ["x"]), ("bn", "BatchNormalization", {}, ["drop"])],
                            outputs=["bn"])
    ls = {l["name"]: l for l in cfg["config"]["layers"]}
    ls["drop"]["inbound_nodes"][0]["kwargs"] = {"training": True}
    ls["bn"]["inbound_nodes"][0]["kwargs"] = {"mask": None}
    t = translate(cfg, _weights(cfg, {}))
    layers = _layers(t.config)
    assert layers["drop"]["inbound_nodes"] == [[["x", 0, 0, {}]]]
    assert layers["bn"]["inbound_nodes"] == [[["drop", 0, 0, {}]]]
    assert any("training=True" in n for n in t.notes)


def test_integer_input_into_a_float_layer_is_cast_first():
    """Keras 3 promotes a uint8 tensor concatenated with float32 ones; tf_keras refuses the mix."""
    cfg = functional_config(
        inputs=[("frame", (None, 4, 4, 3), "uint8"), ("f", (None, 4, 4, 2), "float32")],
        layers=[("cat", "Concatenate", {"axis": -1, "__module": "keras.layers"}, ["frame", "f"], "float32", [None, 4, 4, 5]),
                ("flat", "Flatten", {}, ["frame"], "uint8", [None, 48])],
        outputs=["cat", "flat"])
    layers = _layers(translate(cfg, _weights(cfg, {})).config)
    cast = layers["cat_cast_input_0_0"]
    assert (cast["config"]["function"], cast["inbound_nodes"]) == ("cast", [["frame", 0, 0, {"dtype": "float32"}]])
    assert layers["cat"]["inbound_nodes"] == [[["cat_cast_input_0_0", 0, 0, {}], ["f", 0, 0, {}]]]
    assert layers["flat"]["inbound_nodes"] == [[["frame", 0, 0, {}]]]  # reshaping keeps the integers


def _nested() -> tuple[dict, dict]:
    inner = functional_config(inputs=[("inner_in", (None, 4), "float32")],
                              layers=[("inner_dense", "Dense", {"units": 3}, ["inner_in"], "float32", [None, 3])],
                              outputs=["inner_dense"], name="inner")
    seq = sequential_config(("seq_in", (None, 3), "float32"), [("seq_dense", "Dense", {"units": 2})], name="seq")
    outer = functional_config(
        inputs=[("x", (None, 4), "float32")],
        layers=[("inner", "Functional", {"__sub": inner, "__module": "keras.src.models.functional"}, ["x"], "float32", [None, 3]),
                ("seq", "Sequential", {"__sub": seq, "__module": "keras"}, ["inner"], "float32", [None, 2]),
                ("head", "Dense", {"units": 2}, ["seq"])],
        outputs=["head"], name="outer")
    variables = {("inner", "inner_dense"): [np.ones((4, 3), "float32"), np.zeros(3, "float32")],
                 ("seq", "seq_dense"): [np.full((3, 2), 2.0, "float32"), np.ones(2, "float32")],
                 ("head",): [np.full((2, 2), 3.0, "float32"), np.full(2, 4.0, "float32")]}
    return outer, variables


def test_nested_models_are_referenced_one_node_up_and_keep_their_weights():
    outer, variables = _nested()
    t = translate(outer, _weights(outer, variables))
    layers = _layers(t.config)
    assert layers["seq"]["inbound_nodes"] == [[["inner", 1, 0, {}]]]  # tf_keras's node 0 is the model's own
    assert layers["head"]["inbound_nodes"] == [[["seq", 1, 0, {}]]]
    assert layers["inner"]["module"] == "tf_keras.src.engine.functional"
    seq = layers["seq"]["config"]["layers"]
    assert seq[0]["config"]["batch_input_shape"] == [None, 3]
    data = _datasets(t.weights)
    assert np.all(data["layers/functional/layers/dense/vars/0"] == 1.0)
    assert np.all(data["layers/sequential/layers/dense/vars/0"] == 2.0)
    assert np.all(data["layers/dense/vars/0"] == 3.0) and np.all(data["layers/dense/vars/1"] == 4.0)


def test_shared_layer_keeps_its_nodes():
    cfg = functional_config(inputs=[("x", (None, 4), "float32")],
                            layers=[("d", "Dense", {"units": 4}, ["x"])], outputs=["d"])
    d = cfg["config"]["layers"][1]
    second = copy.deepcopy(d["inbound_nodes"][0])
    second["args"][0]["config"]["keras_history"] = ["d", 0, 0]
    d["inbound_nodes"].append(second)
    cfg["config"]["output_layers"] = [["d", 1, 0]]
    t = translate(cfg, _weights(cfg, {("d",): [np.ones((4, 4), "float32"), np.zeros(4, "float32")]}))
    assert _layers(t.config)["d"]["inbound_nodes"] == [[["x", 0, 0, {}]], [["d", 0, 0, {}]]]
    assert t.config["config"]["output_layers"] == [["d", 1, 0]]


def test_sequential_model():
    seq = sequential_config(("x", (None, 4), "float32"),
                            [("d1", "Dense", {"units": 3, "dtype": POLICY}), ("a", "Activation", {"activation": "hard_sigmoid"}),
                             ("d2", "Dense", {"units": 2})])
    t = translate(seq, _weights(seq, {("d1",): [np.ones((4, 3), "float32"), np.zeros(3, "float32")],
                                      ("d2",): [np.full((3, 2), 2.0, "float32"), np.zeros(2, "float32")]}))
    assert t.config["class_name"] == "Sequential"
    classes = [l["class_name"] for l in t.config["config"]["layers"]]
    assert classes == ["InputLayer", "Dense", "Rescaling", "ReLU", "Rescaling", "Dense"]
    assert t.config["config"]["layers"][4]["config"]["name"] == "a"  # consumers' name kept
    data = _datasets(t.weights)
    assert np.all(data["layers/dense/vars/0"] == 1.0) and np.all(data["layers/dense_1/vars/0"] == 2.0)


def test_hard_silu_in_a_sequential_never_built_is_untranslatable():
    """hard_silu in a Sequential is translated as the Functional it stands for (tests/jobs/
    test_qat_leftovers.py); one that records no input shape cannot be made Functional."""
    seq = sequential_config(("x", (None, 4), "float32"), [("a", "Activation", {"activation": "hard_silu"})])
    seq["config"]["layers"] = seq["config"]["layers"][1:]  # no InputLayer
    del seq["config"]["build_input_shape"]
    with pytest.raises(Untranslatable) as e:
        translate(seq, _weights(seq, {}))
    assert e.value.layer == "sequential" and "hard_silu" in e.value.reason


@pytest.mark.parametrize("where", ["Activation", "Conv2D"])
def test_hard_silu_becomes_built_in_layers(where):
    """Keras 3's hard_silu is x * relu6(x + 3) / 6; tf_keras has no such activation."""
    conv_act = "hard_silu" if where == "Conv2D" else "linear"
    layers = [("conv", "Conv2D", {"filters": 2, "kernel_size": [1, 1], "activation": conv_act}, ["x"], "float32", [None, 4, 4, 2])]
    if where == "Activation":
        layers.append(("act", "Activation", {"activation": "hard_silu"}, ["conv"]))
    layers.append(("gap", "GlobalAveragePooling2D", {}, [layers[-1][0]], "float32", [None, 2]))
    cfg = functional_config(inputs=[("x", (None, 4, 4, 3), "float32")], layers=layers, outputs=["gap"])
    t = translate(cfg, _weights(cfg, {("conv",): [np.ones((1, 1, 3, 2), "float32"), np.zeros(2, "float32")]}))
    out = _layers(t.config)
    end = "act" if where == "Activation" else "conv_hard_silu"
    assert out[end]["class_name"] == "Multiply"
    assert out["gap"]["inbound_nodes"] == [[[end, 0, 0, {}]]]
    assert out["conv"]["config"]["activation"] == "linear"
    chain = [(l["class_name"], l["config"].get("scale"), l["config"].get("offset"), l["config"].get("max_value"))
             for l in t.config["config"]["layers"] if l["class_name"] in ("Rescaling", "ReLU")]
    assert chain == [("Rescaling", 1.0, 3.0, None), ("ReLU", None, None, 6.0), ("Rescaling", 1 / 6, 0.0, None)]
    assert _datasets(t.weights)["layers/conv2d/vars/0"].shape == (1, 1, 3, 2)


def test_layer_order_is_tf_keras_order():
    """tf_keras lists layers by depth from the outputs, ties in depth-first discovery order
    (from the outputs, first input first): the second branch's Dense is discovered first."""
    cfg = functional_config(
        inputs=[("x", (None, 4), "float32")],
        layers=[("a", "Dense", {"units": 4}, ["x"]), ("b", "Dense", {"units": 4}, ["x"]),
                ("b2", "Dense", {"units": 4}, ["b"]), ("add", "Add", {"__module": "keras.layers"}, ["a", "b2"])],
        outputs=["add"])
    t = translate(cfg, _weights(cfg, {("a",): [np.full((4, 4), 1.0, "float32"), np.zeros(4, "float32")],
                                      ("b",): [np.full((4, 4), 2.0, "float32"), np.zeros(4, "float32")],
                                      ("b2",): [np.full((4, 4), 3.0, "float32"), np.zeros(4, "float32")]}))
    assert [l["name"] for l in t.config["config"]["layers"]] == ["x", "b", "a", "b2", "add"]
    data = _datasets(t.weights)  # keyed by that order: dense = b, dense_1 = a, dense_2 = b2
    assert [float(data[f"layers/{k}/vars/0"][0, 0]) for k in ("dense", "dense_1", "dense_2")] == [2.0, 1.0, 3.0]


def test_convnext_layers_become_built_in_layers():
    """tf_keras cannot load its own LayerScale; gamma (C,) becomes a 1x1 depthwise kernel."""
    cfg = functional_config(
        inputs=[("x", (None, 4, 4, 3), "float32")],
        layers=[("ls", "LayerScale", {"init_values": 1e-6, "projection_dim": 3, "__module": "keras.src.applications.convnext",
                                      "__registered_name": "LayerScale"}, ["x"]),
                ("sd", "StochasticDepth", {"drop_path_rate": 0.25, "__module": "keras.src.applications.convnext"}, ["ls"])],
        outputs=["sd"])
    for l in cfg["config"]["layers"][1:]:
        l["build_config"] = {"input_shape": [None, 4, 4, 3]}
    t = translate(cfg, _weights(cfg, {("ls",): [np.array([1.0, 2.0, 3.0], "float32")]}))
    layers = _layers(t.config)
    assert (layers["ls"]["class_name"], layers["ls"]["config"]["kernel_size"], layers["ls"]["config"]["use_bias"]) == \
        ("DepthwiseConv2D", [1, 1], False)
    assert (layers["sd"]["class_name"], layers["sd"]["config"]["rate"], layers["sd"]["config"]["noise_shape"]) == \
        ("Dropout", 0.25, [None, 1, 1, 1])
    data = _datasets(t.weights)
    assert data["layers/depthwise_conv2d/vars/0"].tolist() == [[[[1.0], [2.0], [3.0]]]]
    assert not any("layer_scale" in k for k in data)


def test_multi_head_attention_sublayers_are_private_in_tf_keras():
    cfg = functional_config(inputs=[("q", (None, 5, 4), "float32")],
                            layers=[("mha", "MultiHeadAttention", {"num_heads": 2, "key_dim": 3, "use_gate": False}, ["q"])],
                            outputs=["mha"])
    node = cfg["config"]["layers"][1]["inbound_nodes"][0]
    node["args"] = [node["args"][0], node["args"][0]]  # mha(q, q)
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_group("vars")
        f.create_group("layers/input_layer/vars")
        for sub in ("query_dense", "key_dense", "value_dense", "output_dense"):
            f.create_dataset(f"layers/multi_head_attention/{sub}/vars/0", data=np.ones((4, 2, 3), "float32"))
    t = translate(cfg, buf.getvalue())
    mha = _layers(t.config)["mha"]
    assert mha["inbound_nodes"] == [[["q", 0, 0, {"value": ["q", 0, 0]}]]]
    assert "use_gate" not in mha["config"]
    assert sorted(k for k in _datasets(t.weights)) == [
        f"layers/multi_head_attention/_{s}/vars/0" for s in ("key_dense", "output_dense", "query_dense", "value_dense")]


def test_order_of_a_deep_chain_needs_no_recursion():
    n = 3000  # deeper than Python's recursion limit
    entries = [{"class_name": "InputLayer", "name": "x", "inbound_nodes": []}]
    entries += [{"class_name": "ReLU", "name": f"r{i}", "inbound_nodes": [[[entries[-1]["name"] if i == 0 else f"r{i - 1}", 0, 0, {}]]]}
                for i in range(n)]
    order = tf_keras_order(list(reversed(entries)), [[f"r{n - 1}", 0, 0]], [["x", 0, 0]])
    assert [e["name"] for e in order] == ["x"] + [f"r{i}" for i in range(n)]


# --- the archive -------------------------------------------------------------------------------


def test_written_archive_is_tf_keras_and_input_untouched(tmp_path):
    cfg = _cnn()
    before = json.dumps(cfg, sort_keys=True)
    t = translate(cfg, _weights(cfg, CNN_VARS))
    assert json.dumps(cfg, sort_keys=True) == before
    path = write_archive(tmp_path / "m.qfix.tfk.keras", t.config, t.metadata, t.weights)
    assert sniff_dialect(path) == "tf_keras"
    assert t.metadata["keras_version"].startswith("2.")
    data = _datasets(t.weights)
    assert np.all(data["layers/batch_normalization/vars/3"] == 5.0)
    assert set(zipfile.ZipFile(path).namelist()) == {"metadata.json", "config.json", "model.weights.h5"}


@pytest.mark.parametrize("fixture", ["tiny_cnn_tfk.keras", "nested_tfk.keras"])
def test_a_tf_keras_config_is_refused(fixture):
    z = zipfile.ZipFile(FIXTURES / fixture)
    with pytest.raises(Untranslatable) as e:
        translate(json.loads(z.read("config.json")), z.read("model.weights.h5"))
    assert "not a Keras 3 model" in e.value.reason
    seq = sequential_config(("x", (None, 4), "float32"), [("d", "Dense", {"units": 2})])
    seq["config"]["layers"][0]["config"]["batch_input_shape"] = seq["config"]["layers"][0]["config"].pop("batch_shape")
    with pytest.raises(Untranslatable):  # a tf_keras Sequential: same module and class as Keras 3's
        translate(seq, _weights(seq, {}))


# --- every Keras 3 model in the fleet and the fixtures ----------------------------------------------


def _k3_files() -> list[Path]:
    return sorted(FLEET.glob("*_k3.keras")) if FLEET.is_dir() else []


def _classes(config: dict, out: dict) -> dict:
    for l in (config.get("config") or {}).get("layers") or []:
        out.setdefault((l.get("module"), l["class_name"]), l)
        if l["class_name"] in ("Functional", "Sequential"):
            _classes(l, out)
    return out


@pytest.mark.skipif(not _k3_files(), reason="no /work/fleet/cache (the Keras 3 keras.applications models)")
def test_every_layer_class_of_the_keras_applications_translates():
    configs = {p.name: json.loads(zipfile.ZipFile(p).read("config.json")) for p in _k3_files()}
    classes: dict = {}
    for cfg in configs.values():
        _classes(cfg, classes)
    assert len(classes) >= 20  # Conv2D, BN, ..., LayerScale, CustomScaleLayer, ops Add/Multiply
    for name, cfg in configs.items():
        out = translate_model(copy.deepcopy(cfg), [])
        got = {c for _, c in _classes(out, {})}
        assert "Functional" == out["class_name"], name
        assert not any(str(m).startswith("keras.src.ops") for m, _ in _classes(out, {})), name
        assert {c for (m, c) in _classes(cfg, {}) if m == "keras.layers"} - {"Activation"} <= got, name


def test_fixture_models_translate_or_say_why():
    """The repo's Keras 3 fixtures: each translates, or names the layer tf_keras cannot have."""
    results = {}
    for p in sorted(FIXTURES.glob("*_k3.keras")):
        z = zipfile.ZipFile(p)
        try:
            t = translate(json.loads(z.read("config.json")), z.read("model.weights.h5"))
            results[p.name] = t.config["class_name"]
        except Untranslatable as e:
            results[p.name] = f"untranslatable: {e.layer}"
    assert results["tiny_cnn_k3.keras"] == "Functional"
    assert results["nested_k3.keras"] == "Functional"
    assert results["hard_swish_cnn_k3.keras"] == "Functional"
    assert results["custom_layer_k3.keras"] == "Functional"  # kept, with a note
