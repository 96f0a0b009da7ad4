"""QF102 follows an integer input through layers that keep its values (Concatenate of two uint8
frames, ZeroPadding2D, Reshape, ...) to the cast after them, and its fold works there: same
float numbers, no CAST op, the raw uint8 inputs on device. Both dialects, on tiny models."""

from __future__ import annotations

import numpy as np
import pytest

from qfix.jobs.check import Options, context
from qfix.jobs.fix import apply_fixes
from qfix.model.archive import read_archive
from qfix.model.graph import build_graph
from qfix.model.writer import write_archive
from qfix.rules.base import Context
from qfix.rules.lint import lint
from qfix.targets import load_profile

BOTH = ["k3", "tfk"]


def _save(dialect, build, path):
    from fixtures.build import save_with

    return read_archive(save_with(dialect, build, path))


def _concat_first(K):
    """The reviewer's model: two uint8 frames concatenated, then one Rescaling."""
    L = K.layers
    a = K.Input((4, 4, 3), dtype="uint8", name="a")
    b = K.Input((4, 4, 3), dtype="uint8", name="b")
    x = L.Rescaling(1 / 255, name="rescaling")(L.Concatenate(name="cat")([a, b]))
    return K.Model([a, b], L.GlobalAveragePooling2D()(L.Conv2D(2, 1, name="conv")(x)))


def _padded_reshaped(K):
    """Another member: uint8 → ZeroPadding2D → Reshape → Rescaling."""
    L = K.layers
    a = K.Input((4, 4, 1), dtype="uint8", name="frame")
    x = L.Reshape((6, 6, 1), name="reshape")(L.ZeroPadding2D(1, name="pad")(a))
    return K.Model(a, L.Conv2D(2, 1, name="conv")(L.Rescaling(1 / 127.5, offset=-1, name="rescaling")(x)))


MODELS = {"concat_first": (_concat_first, ["a", "b"]), "padded_reshaped": (_padded_reshaped, ["frame"])}


def _fix(a):
    opts = Options(select=["QF102"])
    config, weights, applied, skipped = apply_fixes(a.config, a.weights_bytes, a.dialect,
                                                    context(load_profile("edgetpu"), opts), opts, unsafe=False)
    assert not skipped, skipped
    return config, weights, applied


def _qf102(config, dialect):
    ctx = Context(load_profile("edgetpu"), mode="ptq")
    return [v for v in lint(build_graph(config, dialect), ctx) if v.code == "QF102"]


@pytest.mark.tf
@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("dialect", BOTH)
def test_fold_through_value_preserving_layers(dialect, model, tmp_path):
    from qfix.convert.keras import load_model

    build, inputs = MODELS[model]
    a = _save(dialect, build, tmp_path / f"{model}.keras")
    found = _qf102(a.config, a.dialect)
    assert [v.location.layer for v in found] == ["rescaling"], found  # the Rescaling casts, not the Concatenate
    assert all(repr(n) in found[0].message for n in inputs)

    config, weights, applied = _fix(a)
    assert [f.code for f in applied] == ["QF102"]
    assert not _qf102(config, a.dialect)
    graph = build_graph(config, a.dialect)
    assert {n: graph.layers[n].out_dtype for n in inputs} == {n: "float32" for n in inputs}

    out = write_archive(tmp_path / f"{model}.qfix.keras", config, a.metadata, weights)
    original, fixed = load_model(a.path, a.dialect), load_model(out, a.dialect)
    rng = np.random.default_rng(0)
    xs = [rng.integers(0, 256, (1, *t.shape[1:])).astype("uint8") for t in original.inputs]
    want = np.asarray(original(xs if len(xs) > 1 else xs[0]))
    got = np.asarray(fixed([x.astype("float32") for x in xs] if len(xs) > 1 else xs[0].astype("float32")))
    assert np.max(np.abs(want - got)) <= 1e-6  # the fold is exact


@pytest.mark.tf
@pytest.mark.parametrize("dialect", BOTH)
def test_concatenated_uint8_inputs_convert_without_cast(dialect, tmp_path):
    from qfix.convert.calibration import synthetic_calibration
    from qfix.convert.converter import convert, recipe_for
    from qfix.convert.keras import load_model
    from qfix.model.inputs import input_specs
    from qfix.targets.tflite import read_tflite

    a = _save(dialect, _concat_first, tmp_path / "two.keras")
    config, weights, _ = _fix(a)
    out = write_archive(tmp_path / "two.qfix.keras", config, a.metadata, weights)
    calibration = synthetic_calibration(input_specs(build_graph(config, a.dialect)), 8)
    after = read_tflite(convert(load_model(out, a.dialect), recipe_for("edgetpu"), calibration).tflite)
    assert "CAST" not in {op.name for op in after.ops}
    for i in after.inputs:  # both frames stay raw uint8 bytes, unscaled
        t = after.tensors[i]
        assert t.dtype == "uint8" and t.scale == pytest.approx([1.0], rel=0.02) and t.zero_point == [0]
