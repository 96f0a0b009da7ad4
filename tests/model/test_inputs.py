"""Input specs from the graph: the value range each input implies for synthetic calibration."""

from qfix.model.cases import functional_config
from qfix.model.graph import build_graph
from qfix.model.inputs import input_specs


def spec(inputs, layers, outputs):
    return {s.name: s for s in input_specs(build_graph(functional_config(inputs, layers, outputs), "keras3"))}


def test_uint8_frame_is_0_255():
    s = spec([("frame", (None, 8, 8, 3), "uint8")], [("c", "Cast", {"dtype": "float32"}, ["frame"])], ["c"])
    assert s["frame"].value_range == (0.0, 255.0) and s["frame"].dtype == "uint8"


def test_float_rescaled_inside_is_0_255():
    s = spec([("x", (None, 8, 8, 3), "float32")],
             [("r", "Rescaling", {"scale": 1 / 127.5, "offset": -1.0}, ["x"])], ["r"])
    assert s["x"].value_range == (0.0, 255.0)


def test_plain_float_has_no_implied_range():
    s = spec([("x", (None, 4), "float32")], [("d", "Dense", {"units": 2}, ["x"])], ["d"])
    assert s["x"].value_range is None


def test_token_ids_stay_inside_the_vocabulary():
    s = spec([("ids", (None, 8), "int32")],
             [("emb", "Embedding", {"input_dim": 50, "output_dim": 4}, ["ids"], "float32", (None, 8, 4))], ["emb"])
    assert s["ids"].value_range == (0.0, 49.0)


def test_a_masked_input_carries_its_mask_value():
    s = spec([("seq", (None, 5, 3), "float32"), ("x", (None, 4), "float32")],
             [("m", "Masking", {"mask_value": -1.0}, ["seq"], "float32", (None, 5, 3)),
              ("d", "Dense", {"units": 2}, ["x"])], ["m", "d"])
    assert s["seq"].mask_value == -1.0 and s["x"].mask_value is None
    s = spec([("seq", (None, 5, 3), "float32")], [("m", "Masking", {}, ["seq"], "float32", (None, 5, 3))], ["m"])
    assert s["seq"].mask_value == 0.0  # Keras's default


def test_integer_inputs_span_their_type():
    """Second review of issue 9: int16 audio was still calibrated on 0..255 (the implied range
    won over the 16-bit default), so the `.tflite` input clipped real values (SQNR 0.2 dB on
    -1000..1000) while the verdict said "runs fully"."""
    layers = [("d", "Dense", {"units": 2}, ["x"])]
    assert spec([("x", (None, 16), "int16")], layers, ["d"])["x"].value_range == (-32768.0, 32767.0)
    assert spec([("x", (None, 16), "uint16")], layers, ["d"])["x"].value_range == (0.0, 65535.0)
    assert spec([("x", (None, 16), "int8")], layers, ["d"])["x"].value_range == (-128.0, 127.0)
    assert spec([("x", (None, 16), "uint8")], layers, ["d"])["x"].value_range == (0.0, 255.0)


def test_the_mask_value_is_read_through_a_nested_model_and_a_rescaling():
    """Second review of issue 9: a Masking inside a nested Sequential, or after a Rescaling, got no
    padded samples (and so no QF411)."""
    from qfix.model.cases import sequential_config

    inner = sequential_config(("sin", (None, 6, 4), "float32"),
                              [("m", "Masking", {"mask_value": -1.0}, (None, 6, 4))], "inner")
    s = spec([("seq", (None, 6, 4), "float32")],
             [("inner", "Sequential", {"__sub": inner}, ["seq"], "float32", (None, 6, 4))], ["inner"])
    assert s["seq"].mask_value == -1.0
    s = spec([("seq", (None, 6, 4), "float32")],
             [("r", "Rescaling", {"scale": 0.5, "offset": 0.0}, ["seq"], "float32", (None, 6, 4)),
              ("m", "Masking", {"mask_value": 0.25}, ["r"], "float32", (None, 6, 4))], ["m"])
    assert s["seq"].mask_value == 0.5  # the input value the Rescaling maps onto 0.25
