"""CONVERTER_TABLE (what QF407 reads) against the installed converter: every row, and
combinations next to them that it accepts, converted for real. A row the converter no longer
rejects (or rejects with another message) fails here, not silently in a user's script."""

from __future__ import annotations

import pytest

from qfix.source.converter import ACT16_OPS, CONVERTER_TABLE, TABLE_VERSION, ConverterSettings, table_verdict

pytestmark = pytest.mark.tf

INT8 = frozenset({"TFLITE_BUILTINS_INT8"})
BUILTINS = frozenset({"TFLITE_BUILTINS"})
I16 = frozenset({ACT16_OPS})
F16 = frozenset({"float16"})
T8 = frozenset({"int8"})


def S(opt=False, ds=False, ops=None, types=None, io=None, out="same"):
    return ConverterSettings(opt, ds, ops, types, io, io if out == "same" else out)


COMBOS = [
    # the smallest input, and the fix
    S(ds=True, ops=INT8, io="int8"), S(opt=True, ds=True, ops=INT8, io="int8"),
    S(ds=True, io="uint8"), S(opt=True, ds=True, io="uint8"),
    S(ds=True, ops=INT8, io="int8", out=None), S(opt=True, ds=True, ops=INT8, io="uint8", out="int8"),
    S(io="uint8"), S(opt=True, io="uint8"), S(opt=True, io="float32"),
    S(ops=INT8), S(types=T8), S(opt=True, ops=INT8), S(ops=BUILTINS),
    S(opt=True, ds=True, ops=INT8, types=F16), S(ops=INT8, types=F16),
    S(opt=True, ds=True, types=F16, io="int8"), S(opt=True, ds=True, types=F16), S(opt=True, types=F16),
    S(opt=True, ds=True, ops=I16, io="int8"), S(opt=True, ds=True, ops=I16, io="int16"),
    S(opt=True, ds=True, ops=I16, types=T8, io="int8"), S(opt=True, ds=True, ops=I16, types=F16, io="int16"),
    S(opt=True, ds=True, ops=INT8, io="int16"), S(opt=True, ds=True, io="int16"),
    S(ds=True, ops=INT8), S(ds=True, types=T8), S(ds=True, ops=INT8, types=T8), S(ds=True), S(ds=True, types=F16),
    # `optimizations = None` (issue 11 (d)): a TypeError whatever else is set
    ConverterSettings(optimizations_none=True),
    ConverterSettings(dataset=True, ops=INT8, input_type="int8", output_type="int8", optimizations_none=True),
]


def test_every_row_is_exercised():
    hit = {row.key for row in (table_verdict(s) for s in COMBOS) if row is not None}
    assert hit == {row.key for row in CONVERTER_TABLE}
    assert sum(table_verdict(s) is None for s in COMBOS) >= 8


def test_table_matches_the_installed_converter():
    tf = pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    import numpy as np

    from qfix.targets.tflite import read_tflite

    assert TABLE_VERSION == "tensorflow " + ".".join(tf.__version__.split(".")[:2]), "re-establish the table"
    inp = keras.Input((4,), batch_size=1)
    model = keras.Model(inp, keras.layers.Dense(2)(inp))
    rng = np.random.default_rng(0)

    def rep():
        for _ in range(2):
            yield [rng.uniform(-1, 1, (1, 4)).astype(np.float32)]

    dtypes = {"float32": tf.float32, "int8": tf.int8, "uint8": tf.uint8, "int16": tf.int16, "float16": tf.float16}
    wrong = []
    for s in COMBOS:
        c = tf.lite.TFLiteConverter.from_keras_model(model)
        if s.optimized:
            c.optimizations = [tf.lite.Optimize.DEFAULT]
        if s.optimizations_none:
            c.optimizations = None
        if s.dataset:
            c.representative_dataset = rep
        if s.ops is not None:
            c.target_spec.supported_ops = [getattr(tf.lite.OpsSet, o) for o in s.ops]
        if s.types is not None:
            c.target_spec.supported_types = [dtypes[t] for t in s.types]
        if s.input_type is not None:
            c.inference_input_type = dtypes[s.input_type]
        if s.output_type is not None:
            c.inference_output_type = dtypes[s.output_type]
        row = table_verdict(s)
        try:
            flat = c.convert()
        except Exception as exc:  # noqa: BLE001 - the converter's own error is the fact under test
            got = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"
            if row is None or row.error is None or not got.startswith(row.error):
                wrong.append((s, got, row and row.key))
            continue
        if row is not None and row.error is not None:
            wrong.append((s, "converted", row.key))
            continue
        m = read_tflite(flat)
        io = (m.tensors[m.inputs[0]].dtype, m.tensors[m.outputs[0]].dtype)
        floats = any(t.dtype == "float32" for t in m.tensors)
        if row is not None:  # accepted but not what was asked: a float model
            if not (floats and io == ("float32", "float32")):
                wrong.append((s, f"not float: {io}", row.key))
        elif io != (s.input_type or "float32", s.output_type or "float32"):
            wrong.append((s, f"I/O {io}", None))
    assert wrong == []
