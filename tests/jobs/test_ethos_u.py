"""The Ethos-U targets end to end through the CLI, with the real Vela judging (issue 13).

- `--check` on a model with CPU ops: each op Vela leaves on the CPU, with Vela's reason and its
  Keras layer, in the JSON and the text report; Vela's estimates in both; `T:N` reaches Vela.
- The main job: the NPU op share of qfix's `.tflite` per Vela is at least that of the plain
  converter's output (load_model + TFLiteConverter with the same recipe and samples).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qfix.targets import load_profile
from qfix.targets.compilers import vela

pytest.importorskip("ethosu.vela", reason="ethos-u-vela is not installed (pip install '.[targets]')")
pytestmark = pytest.mark.tf

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
SAMPLES = "8"
# Vela's reasons for the three CPU layers of fixtures/ethos_cpu_ops_k3.keras on an Ethos-U55.
U55_CPU = {
    "conv_s4": ("CONV_2D", "Unsupported kernel stride: 4, 4"),
    "up3": ("RESIZE_BILINEAR", "Scaling matches and operation has unsupported scale-factor=3"),
    "log_probs": ("LOG_SOFTMAX", "Unsupported opType"),
}


def qfix(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "qfix", *args], capture_output=True, text=True, timeout=900,
                          cwd=ROOT, env=env)


def test_check_names_each_cpu_op_with_velas_reason_and_its_layer():
    r = qfix(str(FIXTURES / "ethos_cpu_ops_k3.keras"), "--target", "ethos-u55", "--check", "--format", "json",
             "--samples", SAMPLES)
    assert r.returncode == 1, r.stdout + r.stderr
    report = json.loads(r.stdout)
    ver = report["verification"]
    comp = ver["compiler"]
    assert comp["used"] == comp["verdict"] == "vela" and comp["disagreements"] == []
    assert comp["result"]["accelerator_config"] == "ethos-u55-256" and comp["result"]["version"] == "5.2.0"
    off = {o["layer"]: (o["op"], o["reason"]) for o in ver["ops"] if not o["on_target"]}
    assert {layer: (op, reason.split(" (")[0]) for layer, (op, reason) in off.items()} == U55_CPU
    assert all(o["status"] == load_profile("ethos-u55").status("cpu") for o in ver["ops"] if not o["on_target"])
    assert ver["ops_on_target"] == comp["result"]["ops_on_npu"] == ver["ops_total"] - 3
    assert ver["first_unsupported"]["layer"] == "conv_s4"
    qf304 = {f["layer"]: f["message"] for f in report["findings"] if f["code"] == "QF304"}
    assert set(qf304) == set(U55_CPU) and all(U55_CPU[layer][1] in msg for layer, msg in qf304.items())
    est = comp["result"]["estimates"]
    assert est["system_config"] == "Ethos_U55_High_End_Embedded" and est["clock_hz"] == 500e6
    assert est["cycles_total"] > 0 and est["inference_ms"] > 0 and est["sram_bytes"] > 0 and est["flash_bytes"] > 0


def test_mac_option_reaches_vela_and_the_text_report():
    r = qfix(str(FIXTURES / "ethos_cpu_ops_k3.keras"), "--target", "ethos-u85:512", "--check", "--samples", SAMPLES)
    assert r.returncode == 1, r.stdout + r.stderr
    out = " ".join(r.stdout.split())  # rich wraps long lines
    assert "target ethos-u85 (Arm Ethos-U85 NPU (512 MACs))" in out
    assert "vela 5.2.0 (ethos-u85-512): 4/6 TFLite ops on the NPU;" in out and "MHz (Ethos_U85_SYS_DRAM_Mid)" in out
    assert "vela ran: 0 disagreement(s) with the profile; the placement above is vela's" in out
    # The U85 maps the strided conv; the x3 resize and log_softmax stay on the CPU, each with Vela's words.
    assert "RESIZE_BILINEAR (op 1) from layer 'up3': width scale-factor must be an integer power of two" in out
    assert "LOG_SOFTMAX (op 5) from layer 'log_probs': Unsupported opType" in out
    # Islands: nothing is cut, so no "first unsupported"; each CPU op is listed (fallback).
    assert "Placed on the CPU by Vela: RESIZE_BILINEAR (op 1) from layer 'up3'" in out and "CONV_2D (op 0)" not in out
    assert "first unsupported" not in out


PLAIN = r"""
import sys
from qfix.convert.calibration import synthetic_calibration
from qfix.convert.converter import bare_convert
from qfix.model.archive import read_archive
from qfix.model.graph import build_graph
from qfix.model.inputs import input_specs
from qfix.targets import load_profile
path, target, samples, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
archive = read_archive(path)
calib = synthetic_calibration(input_specs(build_graph(archive.config, archive.dialect)), n=samples)
open(out, "wb").write(bare_convert(path, load_profile(target).recipe, calib, archive.dialect).tflite)
"""


def test_main_job_npu_share_is_at_least_the_plain_converters(tmp_path):
    """two_input: the plain converter keeps the uint8 frame's CAST (U55: not an NPU op) and its
    float neighbours; qfix folds the cast into the input quantization."""
    src = FIXTURES / "two_input_k3.keras"
    plain_path = tmp_path / "plain.tflite"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run([sys.executable, "-c", PLAIN, str(src), "ethos-u55", SAMPLES, str(plain_path)], check=True,
                   cwd=ROOT, env=env, capture_output=True, timeout=900)
    plain = vela.run(plain_path.read_bytes(), "ethos-u55-256")

    r = qfix(str(src), "--target", "ethos-u55", "--out-dir", str(tmp_path), "--format", "json", "--samples", SAMPLES)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    written = vela.run(Path(report["outputs"]["tflite"]).read_bytes(), "ethos-u55-256")
    after = report["verification"]
    assert plain.ok and written.ok
    assert written.npu_share >= plain.npu_share and plain.npu_share < 1.0 == written.npu_share
    assert "CAST" in {o.op for o in plain.ops if not o.on_npu}
    assert after["compiler"]["verdict"] == "vela" and after["fully_on_target"]
    assert after["ops_on_target"] == after["compiler"]["result"]["ops_on_npu"] == written.ops_on_npu
    assert report["before"]["compiler"]["verdict"] == "vela" and not report["before"]["fully_on_target"]
    assert Path(report["outputs"]["tflite"]).name == "two_input_k3.qfix.ethos-u55.tflite"
    # Vela's own output is written beside it (the file the device flashes, which --memory flash=
    # measures): an `ethos-u` custom op holds the NPU part, and its size is the reported flash.
    compiled = Path(report["outputs"]["compiled"])
    assert compiled.name == "two_input_k3.qfix.ethos-u55_vela.tflite" and compiled.parent == tmp_path
    assert compiled.stat().st_size == after["memory"]["flash"]["bytes"] == after["compiler"]["result"]["output_bytes"]
    from qfix.targets.tflite import read_tflite
    assert "ethos-u" in {op.custom_code for op in read_tflite(compiled.read_bytes()).ops}
