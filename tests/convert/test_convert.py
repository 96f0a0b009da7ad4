"""Conversion recipes, model loading, and the no-TF-at-import rule."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qfix.convert.calibration import Calibration, load_calibration
from qfix.convert.converter import recipe_for
from qfix.convert.keras import import_custom_objects, sniff_dialect
from qfix.targets import FLOAT32_BASELINE
from qfix.types import QfixError

REPO = Path(__file__).resolve().parents[2]
FIX = REPO / "fixtures"
DIALECT = {"k3": "keras3", "tfk": "tf_keras"}

# --- fast: no TensorFlow -----------------------------------------------------------------


def test_importing_conversion_modules_does_not_import_tensorflow():
    code = (
        "import sys, qfix.convert.converter, qfix.convert.fidelity, qfix.convert.keras, qfix.convert.calibration;"
        "bad = [m for m in ('tensorflow', 'keras', 'tf_keras', 'ai_edge_litert') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_recipes():
    assert recipe_for("edgetpu").io_dtype == "uint8" and recipe_for("edgetpu").batch == 1
    assert recipe_for("int8").io_dtype == "int8" and recipe_for("int8").full_integer
    assert recipe_for("coral") == recipe_for("edgetpu")  # aliases resolve to the same profile
    assert recipe_for("edgetpu").supported_ops == ("TFLITE_BUILTINS_INT8",)
    assert not FLOAT32_BASELINE.full_integer and FLOAT32_BASELINE.quantization == "none"
    with pytest.raises(QfixError) as e:
        recipe_for("tpu9000")
    assert e.value.code == "QF910"


def test_custom_objects_import_failure_is_qf911():
    with pytest.raises(QfixError) as e:
        import_custom_objects("qfix_no_such_module_here")
    assert e.value.code == "QF911"


def test_sniff_dialect_reads_metadata():
    assert sniff_dialect(FIX / "tiny_cnn_k3.keras") == "keras3"
    assert sniff_dialect(FIX / "tiny_cnn_tfk.keras") == "tf_keras"


# --- TensorFlow --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def models():
    """Loaded fixture models, shared by every test in the session: (name, dialect) -> model."""
    from qfix.convert.keras import load_model

    cache = {}

    def get(name: str, d: str):
        if (name, d) not in cache:
            cache[name, d] = load_model(FIX / f"{name}_{d}.keras", DIALECT[d])
        return cache[name, d]

    return get


@pytest.fixture(scope="session")
def converted(models):
    """(name, dialect, target) -> (ConvertResult, Calibration), each converted once."""
    from qfix.convert.converter import convert
    from qfix.convert.keras import input_specs

    cache = {}

    def get(name: str, d: str, target: str):
        if (name, d, target) not in cache:
            m = models(name, d)
            cal = load_calibration(None, input_specs(m), n=4)
            cache[name, d, target] = (convert(m, recipe_for(target), cal), cal)
        return cache[name, d, target]

    return get


def _io(tflite: bytes):
    from ai_edge_litert.interpreter import Interpreter

    from qfix.convert.keras import captured_output

    with captured_output():
        runner = Interpreter(model_content=tflite).get_signature_runner("serving_default")
    return runner.get_input_details(), runner.get_output_details()


@pytest.mark.tf
@pytest.mark.parametrize("d", ["k3", "tfk"])
@pytest.mark.parametrize("target, io", [("edgetpu", np.uint8), ("int8", np.int8)])
def test_tiny_cnn_full_integer_io_and_batch1(converted, d, target, io):
    result, _ = converted("tiny_cnn", d, target)
    ins, outs = _io(result.tflite)
    assert list(ins) == result.input_names == [("input_layer" if d == "k3" else "input_1")]
    for det in [*ins.values(), *outs.values()]:
        assert det["dtype"] == io
        assert det["shape_signature"][0] == 1  # batch fixed to 1
    assert result.seconds > 0


@pytest.mark.tf
@pytest.mark.parametrize("d", ["k3", "tfk"])
def test_two_input_keeps_names_and_integer_frame(tmp_path, models, d):
    from qfix.convert.converter import convert
    from qfix.convert.keras import input_specs

    m = models("two_input", d)
    rng = np.random.default_rng(0)
    p = tmp_path / "cal.npz"
    # keyed by name, written in the opposite order to the model's inputs on purpose
    np.savez(p, features=rng.random((4, 8)), frame=rng.integers(0, 256, (4, 32, 32, 3)))
    cal = load_calibration(p, input_specs(m), n=4)
    result = convert(m, recipe_for("edgetpu"), cal)
    ins, outs = _io(result.tflite)
    assert sorted(result.input_names) == ["features", "frame"]
    assert ins["frame"]["dtype"] == np.uint8 and ins["frame"]["quantization"][0] == 0.0
    assert ins["features"]["dtype"] == np.uint8 and ins["features"]["quantization"][0] > 0
    assert list(outs) == ["probs"]


@pytest.mark.tf
def test_int64_ids_stay_int64(converted):
    result, _ = converted("int64_ids", "k3", "int8")
    ins, _ = _io(result.tflite)
    assert ins["token_ids"]["dtype"] == np.int64


@pytest.mark.tf
def test_calibration_names_must_match(models):
    from qfix.convert.calibration import InputSpec
    from qfix.convert.converter import convert

    cal = load_calibration(None, [InputSpec("wrong", (None, 32, 32, 3), "float32")], n=1)
    with pytest.raises(QfixError) as e:
        convert(models("tiny_cnn", "k3"), recipe_for("edgetpu"), cal)
    assert e.value.code == "QF908"


@pytest.mark.tf
def test_converter_failure_is_one_line_qf909(models):
    from qfix.convert.converter import convert

    # float64 samples bypassing load_calibration's cast: the converter's own C3 error
    bad = Calibration([{"input_layer": np.zeros((1, 32, 32, 3), np.float64)}], False, "test")
    with pytest.raises(QfixError) as e:
        convert(models("tiny_cnn", "k3"), recipe_for("int8"), bad)
    assert e.value.code == "QF909"
    assert "\n" not in e.value.message and "FLOAT64" in e.value.message
    assert "FLOAT64" in e.value.log  # the whole converter story, for --verbose


@pytest.mark.tf
def test_bare_convert_baseline(converted):
    from qfix.convert.converter import bare_convert

    _, cal = converted("tiny_cnn", "k3", "edgetpu")
    result = bare_convert(FIX / "tiny_cnn_k3.keras", recipe_for("edgetpu"), cal)
    ins, _ = _io(result.tflite)
    (det,) = ins.values()
    assert det["dtype"] == np.uint8 and det["shape_signature"][0] == -1  # batch left dynamic


@pytest.mark.tf
@pytest.mark.parametrize("d", ["k3", "tfk"])
def test_lambda_refused_unless_trusted(d):
    from qfix.convert.keras import load_model

    path = FIX / f"lambda_cnn_{d}.keras"
    with pytest.raises(QfixError) as e:
        load_model(path, DIALECT[d])
    # tf_keras names the lambda's module (__main__): qfix's vetting refuses it first (QF917);
    # Keras 3 keeps the bytecode in a Keras object and its safe_mode refuses it (QF906)
    assert e.value.code in ("QF906", "QF917") and "--trust-lambdas" in e.value.message
    assert load_model(path, DIALECT[d], trust_lambdas=True) is not None


@pytest.mark.tf
def test_wrong_dialect_is_named():
    from qfix.convert.keras import load_model

    with pytest.raises(QfixError) as e:
        load_model(FIX / "tiny_cnn_tfk.keras", "keras3")
    assert e.value.code == "QF906" and "dialect" in e.value.message


@pytest.mark.tf
def test_custom_layer_needs_its_module(monkeypatch):
    from qfix.convert.keras import load_model

    path = FIX / "custom_layer_k3.keras"
    if "fixtures.custom_layers" not in sys.modules:  # registration is process-wide
        with pytest.raises(QfixError) as e:
            load_model(path, "keras3")
        # vetted before Keras sees the file: the class's module is not Keras and not registered
        assert e.value.code == "QF917" and "ScaledTanh" in e.value.message and "--custom-objects" in e.value.message
    monkeypatch.syspath_prepend(str(REPO))
    m = load_model(path, "keras3", custom_objects_module="fixtures.custom_layers")
    assert any(type(layer).__name__ == "ScaledTanh" for layer in m.layers)


@pytest.mark.tf
@pytest.mark.slow  # a real application network: tens of seconds on two shared cores
def test_application_with_builtin_preprocessing_converts(tmp_path, monkeypatch):
    """MobileNetV3Small carries its own Rescaling: calibrated 0..255, it converts and verifies."""
    from qfix.convert.converter import convert
    from qfix.convert.keras import input_specs, load_model
    from qfix.convert.fidelity import fidelity

    monkeypatch.syspath_prepend(str(REPO))
    from fixtures.applications import build_application

    path = build_application("MobileNetV3Small", "k3", tmp_path, size=32)
    m = load_model(path, "keras3")
    specs = input_specs(m)
    specs[0].value_range = (0.0, 255.0)
    cal = load_calibration(None, specs, n=4)
    result = convert(m, recipe_for("edgetpu"), cal)
    ins, _ = _io(result.tflite)
    assert next(iter(ins.values()))["dtype"] == np.uint8
    assert fidelity(m, result.tflite, cal).sqnr_db > 15


def test_an_mlir_error_line_puts_its_reason_first_and_its_op_path_last():
    """The converter's diagnostics start with a `loc(callsite(fused[...]))` of 200+ characters;
    cut at 300, the reason was lost (DenseNet121's QAT conversion showed "'tfl.average_pool_2")."""
    from qfix.convert.converter import _meaningful_line

    loc = ('loc(callsite(fused["AvgPool:", "densenet121/quant_pool2_pool/AvgPool@__inference_wrapper_1"] '
           'at fused["StatefulPartitionedCall:", "StatefulPartitionedCall"]))')
    e = RuntimeError(f"Traceback\nerror: {loc}: 'tfl.average_pool_2d' op quantization parameters violate "
                     "the same scale constraint: !quant.uniform<i8:f32, 0.1> vs. !quant.uniform<i8:f32, 0.2>")
    assert _meaningful_line(e) == (
        "error: 'tfl.average_pool_2d' op quantization parameters violate the same scale constraint: "
        "!quant.uniform<i8:f32, 0.1> vs. !quant.uniform<i8:f32, 0.2> "
        "(at densenet121/quant_pool2_pool/AvgPool@__inference_wrapper_1)")
    assert _meaningful_line(RuntimeError("x\nerror: plain")) == "error: plain"
