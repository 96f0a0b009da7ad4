"""What a one-line QF905/QF906 quotes of Keras's load errors (qfix.convert.keras): the reason,
not Keras 3's preamble (review of issue 9: the message ended at "Example error message for
object <GRUCell ...>:"). Messages as Keras 3.15 and tf_keras 2.21 word them."""

from __future__ import annotations

from qfix.convert.keras import _load_failure, _weights_mismatch

PREAMBLE = "A total of 1 objects could not be loaded. Example error message for object <Dense name=dense, built=True>:\n\n"


def test_keras3_preamble_gives_way_to_the_reason():
    e = ValueError(PREAMBLE + "Something specific\n\nList of objects that could not be loaded:\n[<Dense>]")
    assert _load_failure(e) == "A total of 1 objects could not be loaded; Something specific"


def test_other_errors_keep_their_first_line():
    assert _load_failure(TypeError("'str' object is not callable\nmore")) == "'str' object is not callable"


def test_weights_that_do_not_fit_the_config():
    assert _weights_mismatch(PREAMBLE + "Layer 'gru_cell' expected 3 variables, but received 0 variables during "
                             "loading. Expected: ['kernel', 'recurrent_kernel', 'bias']") == (
        "layer 'gru_cell' has 3 weight arrays, the file holds 0 for it")
    assert _weights_mismatch(PREAMBLE + "The shape of the target variable and the shape of the target value in "
                             "`variable.assign(value)` must match. variable.shape=(8, 4), Received: "
                             "value.shape=(9, 4). Target variable: <Variable path=dense/kernel, shape=(8, 4)>") == (
        "variable 'dense/kernel' has shape (8, 4), the file holds (9, 4)")
    assert _weights_mismatch("Cannot assign value to variable ' dense/kernel:0': Shape mismatch.The variable "
                             "shape (8, 4), and the assigned value shape (9, 4) are incompatible.") == (
        "variable 'dense/kernel' has shape (8, 4), the file holds (9, 4)")
    assert _weights_mismatch("Unknown layer: 'Foo'") is None
