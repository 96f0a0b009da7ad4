"""qfix.model.hub and the inline_hub rewrite on hand-written SavedModels (no TensorFlow).

The SavedModel files are encoded here field by field after the protos they stand for
(`saved_model.proto`, `saved_object_graph.proto`, tf_keras `saved_metadata.proto`), with the
layout tf_keras writes (checked against a real one in tests/jobs/test_hub.py): the root's
`variables` / `trainable_variables` lists and each layer's own `variables` list.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from qfix.model.edit import EditError, ModelEdit
from qfix.model.hub import HubError, fields, read_backbone, refusal, resolve_handle
from qfix.model.rewrites.inline_hub import inline_hub
from qfix.model.weights import group_keys, read_vars


# --- a tiny protobuf encoder --------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def field(number: int, value: int | bytes | str) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    data = value.encode() if isinstance(value, str) else value
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def node(children: dict[str, int] | None = None) -> bytes:
    """A SavedObject with its children (ObjectReference{node_id = 1, local_name = 2})."""
    return b"".join(field(1, field(1, i) + field(2, name)) for name, i in (children or {}).items())


def saved_model(nodes: list[bytes]) -> bytes:
    graph = b"".join(field(1, n) for n in nodes)
    return field(2, field(7, graph))  # SavedModel.meta_graphs → MetaGraphDef.object_graph_def


def metadata(entries: list[tuple[int, str, dict]]) -> bytes:
    return b"".join(field(1, field(2, i) + field(3, path) + field(4, "_tf_keras_layer") + field(5, json.dumps(meta)))
                    for i, path, meta in entries)


def _tuple(*items):
    return {"class_name": "__tuple__", "items": list(items)}


BACKBONE = {
    "class_name": "Functional",
    "config": {
        "name": "feat",
        "layers": [
            {"class_name": "InputLayer", "name": "input_1", "inbound_nodes": [],
             "config": {"batch_input_shape": _tuple(None, 4), "dtype": "float32", "name": "input_1"}},
            {"class_name": "Dense", "name": "dense", "inbound_nodes": [[["input_1", 0, 0, {}]]],
             "config": {"name": "dense", "trainable": False, "dtype": "float32", "units": 3}},
            {"class_name": "BatchNormalization", "name": "bn", "inbound_nodes": [[["dense", 0, 0, {}]]],
             "config": {"name": "bn", "trainable": True, "dtype": "float32", "axis": _tuple(1)}},
        ],
        "input_layers": [["input_1", 0, 0]],
        "output_layers": [["bn", 0, 0]],
    },
}
# Object ids: 0 root, 1 input, 2 dense, 3 bn, 4-5 root lists, 6-7 dense's list and vars, ...
# dense is frozen: the root's trainable list has only bn's gamma and beta, so hub's order
# (trainable first) is gamma, beta, kernel, bias, moving_mean, moving_variance.
KERNEL, BIAS, GAMMA, BETA, MEAN, VAR = 8, 9, 11, 12, 13, 14


def write_backbone(folder: Path, *, keras: bool = True, config: dict | None = None) -> Path:
    folder.mkdir(parents=True)
    nodes = [
        node({"layer-0": 1, "layer_with_weights-0": 2, "layer_with_weights-1": 3, "variables": 4,
              "trainable_variables": 5}),
        node(),
        node({"variables": 6, "kernel": KERNEL, "bias": BIAS}),
        node({"variables": 10, "gamma": GAMMA, "beta": BETA, "moving_mean": MEAN, "moving_variance": VAR}),
        node({str(i): v for i, v in enumerate([KERNEL, BIAS, GAMMA, BETA, MEAN, VAR])}),
        node({"0": GAMMA, "1": BETA}),
        node({"0": KERNEL, "1": BIAS}),
        node(), node(), node(),  # 7 unused, 8-9 dense's variables
        node({"0": GAMMA, "1": BETA, "2": MEAN, "3": VAR}),
        node(), node(), node(), node(),
    ]
    (folder / "saved_model.pb").write_bytes(saved_model(nodes))
    if keras:
        (folder / "keras_metadata.pb").write_bytes(metadata([
            (0, "root", {"name": "feat", **(config or BACKBONE)}),
            (1, "root.layer-0", {"name": "input_1"}),
            (2, "root.layer_with_weights-0", {"name": "dense", "build_input_shape": {"class_name": "TensorShape",
                                                                                     "items": [None, 4]}}),
            (3, "root.layer_with_weights-1", {"name": "bn", "build_input_shape": _tuple(None, 3)}),
        ]))
    return folder


HUB_VALUES = {  # hub order → a value each variable is recognised by
    "gamma": np.full(3, 1.0), "beta": np.full(3, 2.0), "kernel": np.full((4, 3), 3.0), "bias": np.full(3, 4.0),
    "moving_mean": np.full(3, 5.0), "moving_variance": np.full(3, 6.0),
}


def parent(handle: str, head: str = "dense", trainable: bool = False) -> tuple[dict, bytes]:
    """A tf_keras Sequential: Input(4) → hub.KerasLayer(handle) → Dense `head`, and its weights."""
    config = {"module": "keras", "class_name": "Sequential", "registered_name": None, "config": {
        "name": "sequential",
        "layers": [
            {"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
             "config": {"batch_input_shape": [None, 4], "dtype": "float32", "name": "input_2"}},
            {"module": "tensorflow_hub.keras_layer", "class_name": "KerasLayer", "registered_name": "KerasLayer",
             "config": {"name": "keras_layer", "trainable": trainable, "dtype": "float32", "handle": handle},
             "build_config": {"input_shape": [None, 4]}},
            {"module": "keras.layers", "class_name": "Dense", "registered_name": None,
             "config": {"name": head, "trainable": True, "dtype": "float32", "units": 2},
             "build_config": {"input_shape": [None, 3]}},
        ]}}
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_group("vars")
        for i, v in enumerate(HUB_VALUES.values()):
            f.create_dataset(f"layers/keras_layer/vars/{i}", data=v.astype("float32"))
        f.create_dataset("layers/dense/vars/0", data=np.full((3, 2), 7.0, "float32"))
        f.create_dataset("layers/dense/vars/1", data=np.full(2, 8.0, "float32"))
    return config, buf.getvalue()


# --- reading -------------------------------------------------------------------------------


def test_read_backbone_orders_variables_as_hub_and_keras_do(tmp_path):
    b = read_backbone(write_backbone(tmp_path / "feat_sm"))
    assert b.is_keras and b.config["class_name"] == "Functional"
    assert b.layer_vars == {"input_1": [], "dense": [KERNEL, BIAS], "bn": [GAMMA, BETA, MEAN, VAR]}
    assert b.hub_vars == [GAMMA, BETA, KERNEL, BIAS, MEAN, VAR]
    assert b.build_shapes == {"dense": [None, 4], "bn": [None, 3]}  # TensorShape and tuple forms
    assert refusal(b, trust_lambdas=False) is None


def test_plain_savedmodel_has_no_config(tmp_path):
    b = read_backbone(write_backbone(tmp_path / "plain_sm", keras=False))
    assert not b.is_keras and "not saved from Keras" in refusal(b, False)


@pytest.mark.parametrize("damage,expected", [
    (lambda p: (p / "saved_model.pb").write_bytes((p / "saved_model.pb").read_bytes()[:-3]), "truncated"),
    (lambda p: (p / "saved_model.pb").write_bytes(b"\x0b\x0c"), "wire type 3"),
    (lambda p: (p / "saved_model.pb").write_bytes(b""), "no object graph"),
    (lambda p: (p / "keras_metadata.pb").write_bytes(field(1, field(3, "root") + field(5, "{not json"))),
     "not JSON"),
])
def test_malformed_files_are_hub_errors(tmp_path, damage, expected):
    folder = write_backbone(tmp_path / "feat_sm")
    damage(folder)
    with pytest.raises(HubError, match=expected):
        read_backbone(folder)


def test_fields_reads_varints_and_lengths():
    data = field(1, 300) + field(2, b"abc") + field(3, 0)
    assert [(n, v if isinstance(v, int) else bytes(v)) for n, v in fields(data)] == [(1, 300), (2, b"abc"), (3, 0)]


@pytest.mark.parametrize("layer,why", [
    ({"class_name": "Lambda", "config": {"name": "lam", "function": ["ZZZ", None, None]}}, "--trust-lambdas"),
    ({"class_name": "MyBlock", "config": {"name": "blk"}}, "not a built-in Keras layer"),
    ({"class_name": "Functional", "config": {"name": "inner", "layers": []}}, "nested model"),
])
def test_refusals_name_the_layer(tmp_path, layer, why):
    config = json.loads(json.dumps(BACKBONE))
    config["config"]["layers"].append({**layer, "inbound_nodes": [[["bn", 0, 0, {}]]]})
    b = read_backbone(write_backbone(tmp_path / "sm", config=config))
    assert why in refusal(b, False) and layer["config"]["name"] in refusal(b, False)
    assert (refusal(b, True) is None) == (layer["class_name"] == "Lambda")


def test_refusals_of_the_hub_call(tmp_path):
    b = read_backbone(write_backbone(tmp_path / "sm"))
    assert "arguments" in refusal(b, False, {"arguments": {"batch_norm_momentum": 0.9}})
    assert "signature" in refusal(b, False, {"signature": "image_feature_vector"})


# --- handles -------------------------------------------------------------------------------


@pytest.mark.parametrize("handle", ["https://tfhub.dev/google/x/5", "http://example.com/m", "gs://bucket/m",
                                    "HTTPS://www.kaggle.com/models/x", "file:///tmp/sm"])
def test_remote_handles_are_refused(tmp_path, handle):
    with pytest.raises(HubError, match="remote; qfix downloads nothing"):
        resolve_handle(handle, tmp_path)


def test_handles_resolve_against_the_model_folder_then_the_cwd(tmp_path, monkeypatch):
    model_dir, cwd = tmp_path / "models", tmp_path / "cwd"
    write_backbone(model_dir / "sm")
    write_backbone(cwd / "sm")
    write_backbone(cwd / "only_here")
    monkeypatch.chdir(cwd)
    assert resolve_handle("sm", model_dir) == (model_dir / "sm").resolve()
    assert resolve_handle("only_here", model_dir) == (cwd / "only_here").resolve()
    assert resolve_handle(str(model_dir / "sm"), None) == (model_dir / "sm").resolve()


@pytest.mark.parametrize("handle,why", [
    ("missing", "no SavedModel folder"), ("sm/saved_model.pb", "is a file"), ("sm/..", "no saved_model.pb"),
    (None, "not a path"), ("", "not a path"),
])
def test_unusable_local_handles(tmp_path, handle, why):
    write_backbone(tmp_path / "sm")
    with pytest.raises(HubError, match=why):
        resolve_handle(handle, tmp_path)


# --- the rewrite ---------------------------------------------------------------------------


def test_inline_hub_splices_the_backbone_with_the_hub_layers_variables(tmp_path):
    write_backbone(tmp_path / "feat_sm")
    config, weights = parent("feat_sm")
    edit = ModelEdit(config, "tf_keras")
    note = inline_hub(edit, (), "keras_layer", model_dir=str(tmp_path))
    assert "inlined hub.KerasLayer 'keras_layer'" in note and "6 variables" in note
    new_weights = edit.weights(weights)
    layers = edit.config["config"]["layers"]
    # The inner "dense" clashes with the head: it takes the hub layer's name as prefix.
    assert [(l["class_name"], l["name"]) for l in layers] == [
        ("InputLayer", "input_2"), ("Dense", "keras_layer_dense"), ("BatchNormalization", "bn"), ("Dense", "dense")]
    assert all(l["config"]["trainable"] is False for l in layers[1:3])  # a frozen hub layer
    assert layers[2]["config"]["axis"] == [1] and layers[1]["build_config"] == {"input_shape": [None, 4]}
    assert layers[3]["inbound_nodes"] == [[["bn", 0, 0, {}]]]
    keys = group_keys(edit.config, "tf_keras")
    got = {name: [v.tolist() for v in read_vars(new_weights, keys[(name,)])]
           for name in ("keras_layer_dense", "bn", "dense")}
    hv = {k: v.tolist() for k, v in HUB_VALUES.items()}
    assert got["keras_layer_dense"] == [hv["kernel"], hv["bias"]]
    assert got["bn"] == [hv["gamma"], hv["beta"], hv["moving_mean"], hv["moving_variance"]]
    assert got["dense"] == [np.full((3, 2), 7.0).tolist(), np.full(2, 8.0).tolist()]
    assert config["config"]["layers"][1]["class_name"] == "KerasLayer"  # the input config is untouched


def test_inline_hub_keeps_a_trainable_hub_layer_trainable(tmp_path):
    write_backbone(tmp_path / "feat_sm")
    config, _ = parent("feat_sm", head="head", trainable=True)
    edit = ModelEdit(config, "tf_keras")
    inline_hub(edit, (), "keras_layer", model_dir=str(tmp_path))
    trainable = {l["name"]: l["config"]["trainable"] for l in edit.config["config"]["layers"][1:]}
    assert trainable == {"dense": False, "bn": True, "head": True}  # as each layer was saved


@pytest.mark.parametrize("setup,why", [
    (lambda p: write_backbone(p / "feat_sm", keras=False), "not saved from Keras"),
    (lambda p: None, "no SavedModel folder"),
])
def test_inline_hub_refuses_what_it_cannot_inline(tmp_path, setup, why):
    setup(tmp_path)
    config, _ = parent("feat_sm")
    with pytest.raises(EditError, match=why):
        inline_hub(ModelEdit(config, "tf_keras"), (), "keras_layer", model_dir=str(tmp_path))


def test_inline_hub_refuses_keras3_and_other_layers(tmp_path):
    write_backbone(tmp_path / "feat_sm")
    config, _ = parent("feat_sm")
    with pytest.raises(EditError, match="only in tf_keras"):
        inline_hub(ModelEdit(config, "keras3"), (), "keras_layer", model_dir=str(tmp_path))
    with pytest.raises(EditError, match="not a hub.KerasLayer"):
        inline_hub(ModelEdit(config, "tf_keras"), (), "dense", model_dir=str(tmp_path))


def test_weights_that_do_not_match_the_savedmodel_are_an_edit_error(tmp_path):
    write_backbone(tmp_path / "feat_sm")
    config, weights = parent("feat_sm")
    buf = io.BytesIO(weights)
    with h5py.File(buf, "r+") as f:
        del f["layers/keras_layer/vars/5"]
    edit = ModelEdit(config, "tf_keras")
    inline_hub(edit, (), "keras_layer", model_dir=str(tmp_path))
    with pytest.raises(EditError, match="5 variables"):
        edit.weights(buf.getvalue())


# --- the committed fixture (a real SavedModel written by tf_keras) ------------------------


def test_fixture_backbone_inlines_from_the_real_files(monkeypatch, tmp_path):
    from qfix.model.archive import read_archive

    fixtures = Path(__file__).resolve().parents[2] / "fixtures"
    monkeypatch.chdir(tmp_path)  # the handle resolves against the model's folder, not the cwd
    archive = read_archive(fixtures / "hub_seed_tfk.keras")
    b = read_backbone(resolve_handle("hub_seed_backbone", fixtures))
    assert [l["class_name"] for l in b.config["config"]["layers"]] == [
        "InputLayer", "Conv2D", "BatchNormalization", "ReLU", "GlobalAveragePooling2D"]
    assert len(b.hub_vars) == 5 and refusal(b, False) is None
    edit = ModelEdit(archive.config, archive.dialect)
    inline_hub(edit, (), "keras_layer", model_dir=str(fixtures))
    weights = edit.weights(archive.weights_bytes)
    keys = group_keys(edit.config, "tf_keras")
    hub = read_vars(archive.weights_bytes, "layers/keras_layer")
    # hub's order: the trainable kernel, gamma, beta, then the moving statistics.
    assert [v.shape for v in hub] == [(3, 3, 3, 8), (8,), (8,), (8,), (8,)]
    got = {name: read_vars(weights, keys[(name,)]) for name in ("conv2d", "batch_normalization", "head")}
    assert np.array_equal(got["conv2d"][0], hub[0])
    assert all(np.array_equal(a, b) for a, b in zip(got["batch_normalization"], hub[1:], strict=True))
    assert len(got["head"]) == 2
