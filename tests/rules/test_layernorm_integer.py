"""QF308 does not decompose a Keras 3 LayerNormalization of an integer input: Keras 3 takes the
mean and variance of a uint8 input in uint8, so the float decomposition would change its
outputs (it was offered as safe, then rolled back for a float delta of 382). QF102's fold of the
input (unsafe there) comes first; on the folded model the decomposition applies."""

from __future__ import annotations

from qfix.model.cases import functional_config
from qfix.model.graph import build_graph
from qfix.rules.base import Context
from qfix.rules.keras3_lowering import Keras3Lowering
from qfix.targets import load_profile


def _ln(dtype: str):
    return build_graph(functional_config([("x", (None, 8), dtype)],
                                         [("ln", "LayerNormalization", {"axis": -1}, ["x"], "float32", (None, 8))],
                                         ["ln"]), "keras3")


def test_an_integer_input_is_not_decomposed_and_says_why():
    ctx = Context(load_profile("edgetpu"))
    (v,) = Keras3Lowering().check(_ln("uint8"), ctx)
    assert v.location.layer == "ln" and not v.fix.edits
    assert "not applied here: its input is uint8" in v.fix.description and "QF102" in v.fix.description
    (v,) = Keras3Lowering().check(_ln("float32"), ctx)
    assert v.fix.edits and "not applied here" not in v.fix.description
