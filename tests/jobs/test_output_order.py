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


def _nested_dict(K):
    """A nested model with dict outputs, its heads read by index (sorted key: alpha 0, zeta 1)."""
    L = K.layers
    i = K.Input((4,), name="xi")
    inner = K.Model(i, {"zeta": L.Dense(3, name="aa")(i), "alpha": L.Dense(2, name="zz")(i)}, name="inner")
    x = K.Input((4,), name="x")
    o = inner(x)
    return K.Model(x, [L.Dense(1, name="from_zeta")(o["zeta"]), L.Dense(1, name="from_alpha")(o["alpha"])])


@pytest.mark.parametrize("dialect", ["k3", "tfk"])
def test_flattening_a_nested_dict_output_model_keeps_each_head_wired(dialect, tmp_path):
    """Inlining a nested model maps the outer (model, node, index) refs to its outputs in Keras's
    order; in config insertion order each head would read the other's tensor."""
    import numpy as np

    from qfix.convert.keras import load_model
    from qfix.jobs.check import Options, context
    from qfix.jobs.fix import apply_fixes
    from qfix.model.writer import write_archive
    from qfix.targets import load_profile

    K = _keras(dialect)
    K.utils.set_random_seed(0)
    path = tmp_path / "nested.keras"
    _nested_dict(K).save(path)
    a = read_archive(path)
    opts = Options(select=["QF201"])
    config, weights, applied, skipped = apply_fixes(a.config, a.weights_bytes, a.dialect,
                                                    context(load_profile("edgetpu"), opts), opts, unsafe=False)
    assert not skipped and [f.code for f in applied] == ["QF201"]
    out = write_archive(tmp_path / "nested.qfix.keras", config, a.metadata, weights)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 4)).astype("float32")
    want = [np.asarray(t) for t in load_model(path, a.dialect)(x)]
    got = [np.asarray(t) for t in load_model(out, a.dialect)(x)]
    assert all(np.allclose(w, g, atol=1e-6) for w, g in zip(want, got))
