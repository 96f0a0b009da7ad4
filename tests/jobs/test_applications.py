"""Real architectures (keras.applications, weights=None, 32x32) and the two-input fixture get a
correct verdict and explanation for edgetpu and int8. Real conversions, no mocks."""

from __future__ import annotations

from pathlib import Path

import pytest

from fixtures.applications import build_application
from qfix.jobs.check import Options, run_check
from qfix.jobs.qat import run_qat

pytestmark = pytest.mark.tf

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
SIZE = 32
SAMPLES = 4

# (architecture, dialect) -> whether it runs fully on the Edge TPU profile.
FULLY_ON_EDGETPU = {
    ("MobileNetV2", "k3"): True,
    ("MobileNetV2", "tfk"): True,
    ("MobileNetV3Small", "k3"): False,  # hard_swish from the stem on
    ("EfficientNetB0", "k3"): True,
    ("ResNet50", "k3"): True,
    ("DenseNet121", "k3"): True,
}


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("apps")


def check(path: Path, target: str):
    return run_check(path, Options(target=target, samples=SAMPLES))


@pytest.mark.parametrize("arch,dialect", list(FULLY_ON_EDGETPU), ids=lambda v: str(v))
def test_application_verdicts(arch, dialect, app_dir):
    path = build_application(arch, dialect, app_dir, size=SIZE)
    before = path.read_bytes()

    edgetpu = check(path, "edgetpu")
    pl = edgetpu.verification.placement
    assert pl.fully_on_target is FULLY_ON_EDGETPU[(arch, dialect)], pl.first_unsupported
    assert edgetpu.exit_code() == (0 if pl.fully_on_target else 1)
    assert pl.ops_total > 20 and not pl.float_tensors
    if not pl.fully_on_target:
        # Explained in Keras terms: the cut op comes from a layer the static rule named.
        cut = pl.first_unsupported
        assert cut["op"] == "HARD_SWISH" and cut["status"] == "Operation not supported"
        flagged = {v.location.layer for v in edgetpu.findings if v.code == "QF302"}
        assert cut["layer"] in flagged
        assert any(v.code == "QF304" and v.location.layer == cut["layer"] for v in edgetpu.findings)
        assert pl.ops_on_target < pl.ops_total / 4  # the single cut leaves most ops on the CPU

    int8 = check(path, "int8")
    assert int8.verification.placement.fully_on_target, int8.verification.placement.first_unsupported
    assert int8.exit_code() == 0
    fid = int8.verification.fidelity
    assert fid.samples == SAMPLES and fid.synthetic and fid.sqnr_db > 10
    assert path.read_bytes() == before


@pytest.mark.parametrize("dialect", ["k3", "tfk"])
def test_two_input_uint8_frame_and_float_features(dialect):
    path = FIXTURES / f"two_input_{dialect}.keras"
    res = check(path, "edgetpu")
    pl = res.verification.placement
    assert not pl.fully_on_target and res.exit_code() == 1
    assert pl.first_unsupported["op"] == "CAST"
    assert pl.first_unsupported["layer"] == ("cast" if dialect == "k3" else "tf.cast")
    codes = {v.code for v in res.findings}
    assert "QF102" in codes  # the uint8 frame cast inside the graph
    if dialect == "k3":
        assert "QF101" in codes  # uint8 ⊕ float32 merge, promoted silently by Keras 3
    # fed by signature input name: both inputs reach the model, numbers are close
    assert res.verification.fidelity.samples == SAMPLES and res.verification.fidelity.sqnr_db > 10

    int8 = check(path, "int8")
    assert not int8.verification.placement.fully_on_target
    assert int8.verification.placement.float_tensors or int8.verification.placement.first_unsupported


MAIN_JOB = [("MobileNetV3Small", "k3"), ("MobileNetV3Small", "tfk"), ("MobileNetV2", "k3"),
            ("EfficientNetB0", "k3"), ("ResNet50", "k3"), ("DenseNet121", "k3")]


@pytest.mark.parametrize("arch,dialect", MAIN_JOB, ids=lambda v: str(v))
def test_application_main_job_ends_fully_on_edgetpu(arch, dialect, app_dir, tmp_path):
    """`qfix X.keras --target edgetpu`: the fixed model runs fully on the Edge TPU profile, its
    float outputs match the original, and its int8 fidelity is no worse than before."""
    from qfix.jobs.fix import run_fix

    path = build_application(arch, dialect, app_dir, size=SIZE)
    before_bytes = path.read_bytes()
    run = run_fix(path, Options(target="edgetpu", samples=SAMPLES), out_dir=tmp_path)
    after = run.result.verification
    assert after.placement.fully_on_target, after.placement.first_unsupported
    assert run.result.exit_code() == 0
    assert run.float_equivalence is not None and run.float_equivalence <= 1e-5
    assert not any(f.rolled_back for f in run.fixes)
    assert after.fidelity.sqnr_db >= run.before.fidelity.sqnr_db - 1.0
    if arch == "MobileNetV3Small":  # hard_swish everywhere: the original was cut in the stem
        assert not run.before.placement.fully_on_target
        assert sum(f.code == "QF302" for f in run.active) >= 10
    assert Path(run.outputs["model"]).exists() and Path(run.outputs["tflite"]).exists()
    assert path.read_bytes() == before_bytes


# Issue 10: the Keras 3 applications go through --mode qat: translated to tf_keras (same float
# outputs), made acceptable to tfmot, quantized, trained one step, converted and checked.
QAT_ARCHS = ("MobileNetV2", "MobileNetV3Small", "EfficientNetB0", "DenseNet121", "ResNet50")


@pytest.mark.parametrize("arch", QAT_ARCHS)
def test_application_trains_with_qat(arch, app_dir):
    path = build_application(arch, "k3", app_dir, size=SIZE)
    run = run_qat(path, Options(target="edgetpu", samples=2, mode="qat"), check=True)
    assert not [v.message for v in run.result.findings if v.code == "QF505"]
    assert run.translated and run.trained
    if arch == "DenseNet121":  # QF509: tfmot's own AveragePooling2D output quantizer broke the conversion
        assert {f.code for f in run.active} >= {"QF509"}
    assert not run.problems(), run.problems()
    assert run.float_equivalence is not None and run.float_equivalence <= run.tolerance
    ver = run.result.verification
    assert ver is not None and ver.tflite and not ver.placement.float_tensors
    assert ver.placement.fully_on_target, ver.placement.first_unsupported
    assert run.exit_code() == 0
