"""Each safe fix on real fixtures of both dialects: the finding disappears (no TensorFlow), and
the written file loads with the real Keras and computes what the original did (`tf`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qfix.model.archive import read_archive
from qfix.model.edit import EditError
from qfix.model.fixes import flatten_nested, leaky_relu_to_prelu, narrow_64bit, static_batch
from qfix.model.graph import build_graph
from qfix.model.lint import lint
from qfix.model.writer import write_archive
from qfix.rules.base import Context
from qfix.targets import load_profile

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
BOTH = ["k3", "tfk"]

# (fixture, fix module, rule code) — the fix is applied to every finding of that code.
CASES = [
    ("nested", flatten_nested, "QF201"),
    ("leaky_relu_cnn", leaky_relu_to_prelu, "QF302"),
    ("int64_ids", narrow_64bit, "QF103"),
    ("tiny_cnn", static_batch, "QF301"),
]
IDS = [f"{c[2]}-{c[0]}" for c in CASES]


def findings(config, dialect, code, mode="qat"):
    ctx = Context(load_profile("edgetpu"), mode=mode)
    return [v for v in lint(build_graph(config, dialect), ctx) if v.code == code]


def fix_all(archive, module, code):
    """Apply the fix to each finding, re-linting in between (an edit moves pointers)."""
    config, weights, notes = archive.config, archive.weights_bytes, []
    for _ in range(10):
        found = findings(config, archive.dialect, code)
        if not found:
            return config, weights, notes
        config, weights, note = module.apply(config, weights, found[0], archive.dialect)
        notes.append(note)
    raise AssertionError(f"{code} still fires after 10 fixes: {notes}")


@pytest.mark.parametrize("dialect", BOTH)
@pytest.mark.parametrize("name,module,code", CASES, ids=IDS)
def test_finding_disappears(name, module, code, dialect):
    a = read_archive(FIXTURES / f"{name}_{dialect}.keras")
    assert findings(a.config, a.dialect, code), "the fixture must exhibit the finding"
    config, _, notes = fix_all(a, module, code)
    assert notes and all(notes)
    assert not findings(config, a.dialect, code)


def test_prelu_alpha_is_shared_over_space():
    a = read_archive(FIXTURES / "leaky_relu_cnn_k3.keras")
    config, weights, note = leaky_relu_to_prelu.apply(a.config, a.weights_bytes, "leaky_re_lu")
    layer = build_graph(config, "keras3").layers["leaky_re_lu"]
    assert layer.class_name == "PReLU" and layer.config["shared_axes"] == [1, 2]
    assert layer.config["alpha_initializer"]["config"]["value"] == pytest.approx(0.1)
    assert "PReLU" in note


def test_prelu_fix_refuses_other_layers():
    a = read_archive(FIXTURES / "leaky_relu_cnn_k3.keras")
    with pytest.raises(EditError):
        leaky_relu_to_prelu.apply(a.config, a.weights_bytes, "conv2d")


def test_fixes_leave_their_input_alone():
    a = read_archive(FIXTURES / "nested_k3.keras")
    before = repr(a.config)
    flatten_nested.apply(a.config, a.weights_bytes, "backbone")
    assert repr(a.config) == before


@pytest.mark.tf
@pytest.mark.parametrize("dialect", BOTH)
@pytest.mark.parametrize("name,module,code", CASES, ids=IDS)
def test_fixed_model_loads_and_matches(name, module, code, dialect, tmp_path):
    from qfix.calibration import Calibration, synthetic_calibration
    from qfix.keras_load import load_model
    from qfix.model.specs import input_specs
    from qfix.verify import float_equivalence

    a = read_archive(FIXTURES / f"{name}_{dialect}.keras")
    config, weights, _ = fix_all(a, module, code)
    out = write_archive(tmp_path / f"{name}.qfix.keras", config, a.metadata, weights, source=a.path)
    original = load_model(a.path, a.dialect)
    fixed = load_model(out, a.dialect)
    if module is static_batch:
        assert all(t.shape[0] == 1 for t in fixed.inputs)
    calibration = synthetic_calibration(input_specs(build_graph(a.config, a.dialect)), 4)
    # One sample per call: a batch-1 model takes batch 1.
    worst = max(float_equivalence(original, fixed, Calibration([s], True, "synthetic"))
                for s in calibration.samples)
    assert worst <= 1e-5
