"""The model's output order, as Keras computes it: a list of outputs in list order, a dict of
outputs by sorted key (Keras 3 and tf_keras alike list `model.outputs` / `output_names` so),
not the dict's insertion order in config.json. The check compares the .tflite's outputs with
that order; a dict-output model whose .tflite follows Keras's order is in order (review F12: the
JSON said `outputs_in_model_order: false` for one)."""

from __future__ import annotations

import os

import pytest

from qfix.model.archive import read_archive
from qfix.model.graph import build_graph

pytestmark = pytest.mark.tf


def _keras(dialect):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if dialect == "k3":
        import keras as K
    else:
        import tf_keras as K
    K.backend.clear_session()
    return K


def _dict_heads(K):
    """Keys in neither insertion nor layer-name order: zeta/'aa', alpha/'zz', mid/'mm'."""
    L = K.layers
    i = K.Input((4, 4, 3), name="x")
    x = L.Conv2D(4, 1, name="trunk")(i)
    return K.Model(i, {"zeta": L.Dense(3, name="aa")(L.GlobalAveragePooling2D(name="gap")(x)),
                       "alpha": L.Conv2D(2, 1, name="zz")(x),
                       "mid": L.Dense(5, name="mm")(L.Flatten(name="flat")(x))})


def _list_heads(K):
    L = K.layers
    i = K.Input((4, 4, 3), name="x")
    x = L.Conv2D(4, 1, name="trunk")(i)
    return K.Model(i, [L.Conv2D(2, 1, name="z_conv")(x), L.Dense(3, name="a_fc")(L.GlobalAveragePooling2D()(x)),
                       L.Dense(5, name="m_fc")(L.Flatten()(x))])


MODELS = {"dict": _dict_heads, "list": _list_heads}


@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize("dialect", ["k3", "tfk"])
def test_graph_output_order_is_keras_order_and_the_tflite_follows_it(dialect, kind, tmp_path):
    from qfix.convert.keras import load_model, output_names
    from qfix.jobs.check import Options, run_check

    K = _keras(dialect)
    path = tmp_path / f"{kind}_{dialect}.keras"
    MODELS[kind](K).save(path)
    a = read_archive(path)
    order = [t.layer for t in build_graph(a.config, a.dialect).outputs]
    assert order == output_names(load_model(path, a.dialect))  # what the real Keras says
    assert order == (["zz", "mm", "aa"] if kind == "dict" else ["z_conv", "a_fc", "m_fc"])

    ver = run_check(path, Options(target="edgetpu", samples=2)).verification
    assert [o["layer"] for o in ver.outputs] == order
    assert [o["position"] for o in ver.outputs] == [0, 1, 2]
    assert ver.outputs_in_model_order and ver.to_json()["outputs_in_model_order"] is True
