"""QF205 (source) asks the same tfmot table as the model rules QF502-QF504
(qfix/model/tfmot_registry.py): every layer class the table rejects is reported, with the
table's remedy text, in Sequential and functional spelling; a class it accepts is not."""

from __future__ import annotations

import pytest

from qfix.model import tfmot_registry as reg
from qfix.rules.tfmot_unsupported_layer import TfmotUnsupportedLayer
from qfix.source.engine import lint_source

HEAD = "import tensorflow as tf\nimport tensorflow_model_optimization as tfmot\n"
QUANTIZE = "q = tfmot.quantization.keras.quantize_model(m)\n"


def _sequential(layer: str) -> str:
    return HEAD + f"m = tf.keras.Sequential([tf.keras.Input((8, 8, 3)), tf.keras.layers.{layer}])\n" + QUANTIZE


def _functional(layer: str) -> str:
    return (HEAD + "i = tf.keras.Input((8, 8, 3))\n" + f"x = tf.keras.layers.{layer}(i)\n"
            + "m = tf.keras.Model(i, x)\n" + QUANTIZE)


def _findings(code: str):
    return [v for v in lint_source(code, rules=[TfmotUnsupportedLayer]).violations if v.code == "QF205"]


REJECTED = sorted(c for c, e in reg.LAYERS.items() if e.rejected and c != "BatchNormalization")
ACCEPTED = sorted(c for c, e in reg.LAYERS.items() if not e.rejected and c not in ("BatchNormalization", "Activation"))


@pytest.mark.parametrize("spell", [_sequential, _functional])
@pytest.mark.parametrize("cls", REJECTED)
def test_every_rejected_class_of_the_table_is_reported_with_its_remedy(cls, spell):
    (v,) = _findings(spell(f"{cls}()"))
    assert f"a {cls} layer" in v.message
    assert reg.entry(cls).advice in v.fix.description


@pytest.mark.parametrize("spell", [_sequential, _functional])
@pytest.mark.parametrize("cls", ACCEPTED)
def test_a_class_the_table_accepts_is_not_reported(cls, spell):
    assert _findings(spell(f"{cls}()")) == []


@pytest.mark.parametrize("spell", [_sequential, _functional])
def test_a_remedy_qfix_has_names_the_qat_mode_and_one_it_lacks_does_not(spell):
    (rewritten,) = _findings(spell("Conv1D(4, 3)"))
    (none,) = _findings(spell("GRU(4)"))
    assert "--mode qat" in rewritten.fix.description
    assert "no QAT route" in none.fix.description and "--mode qat" not in none.fix.description


@pytest.mark.parametrize("act,reported", [("relu6", True), ("hard_sigmoid", True), ("relu", False), ("swish", False)])
def test_a_string_activation_on_a_layer_is_checked_against_the_table(act, reported):
    for spell in (_sequential, _functional):
        found = _findings(spell(f"Dense(4, activation={act!r})"))
        assert bool(found) == reported == (not reg.layer_activation_ok(act))
        if reported:
            assert f"Dense(activation={act!r})" in found[0].message


@pytest.mark.parametrize("act", ["hard_sigmoid", "elu", "leaky_relu"])
def test_an_activation_layer_tfmot_refuses_is_reported(act):
    (v,) = _findings(_functional(f"Activation({act!r})"))
    assert f"Activation({act!r})" in v.message and reg.activation_qconfig(act) in v.fix.description


@pytest.mark.parametrize("before,folded", [("Conv2D(8, 3)", True), ("DepthwiseConv2D(3)", True),
                                           ("Conv2D(8, 3, activation='relu')", False),
                                           ("DepthwiseConv2D(3, activation='relu6')", False),
                                           ("MaxPooling2D()", False)])
def test_a_batchnorm_is_reported_where_tfmot_does_not_fold_it(before, folded):
    seq = HEAD + (f"m = tf.keras.Sequential([tf.keras.Input((8, 8, 3)), tf.keras.layers.{before}, "
                  "tf.keras.layers.BatchNormalization()])\n") + QUANTIZE
    fun = (HEAD + "i = tf.keras.Input((8, 8, 3))\n" + f"x = tf.keras.layers.{before}(i)\n"
           + "x = tf.keras.layers.BatchNormalization()(x)\nm = tf.keras.Model(i, x)\n" + QUANTIZE)
    for code in (seq, fun):
        found = [v for v in _findings(code) if "BatchNormalization" in v.message]
        assert bool(found) != folded, code
        if found:
            assert reg.entry("BatchNormalization").advice in found[0].fix.description
