"""The real TFLite Micro interpreter behind the tflm target (qfix.targets.compilers.tflm).

Fast: hand-built flatbuffers (tflite_models.conv_chain), LiteRT for the reference outputs and
the TFLM interpreter in its child process; no TensorFlow. The converted-model runs through
the console script are in tests/jobs/test_tflm_target.py (-m tf).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from qfix.rules.runtime_output_mismatch import RuntimeOutputMismatch
from qfix.rules.target_runtime_error import TargetRuntimeError
from qfix.targets import load_profile
from qfix.targets.check import check
from qfix.targets.compilers import find, tflm
from qfix.targets.tflite import read_tflite

from tflite_models import build_tflite, conv_chain

REPO = Path(__file__).resolve().parents[2]


def litert_samples(model: bytes, n: int = 4) -> dict:
    """What qfix's fidelity check hands the runtime (`Fidelity.raw`): LiteRT's integer inputs
    and outputs, per sample, by tensor index."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model)
    interp.allocate_tensors()
    rng = np.random.default_rng(0)
    raw = {"inputs": [], "outputs": []}
    for _ in range(n):
        feed = {}
        for d in interp.get_input_details():
            info = np.iinfo(d["dtype"])
            feed[d["index"]] = rng.integers(info.min, info.max + 1, size=d["shape"]).astype(d["dtype"])
            interp.set_tensor(d["index"], feed[d["index"]])
        interp.invoke()
        raw["inputs"].append(feed)
        raw["outputs"].append({d["index"]: interp.get_tensor(d["index"]).copy() for d in interp.get_output_details()})
    return raw


@pytest.fixture(scope="module")
def chain():
    model = conv_chain()
    samples = litert_samples(model)
    return model, samples, tflm.run(model, samples)


def test_the_tflm_profile_names_this_runtime():
    assert find(load_profile("tflm")) is tflm and tflm.available()
    # A compiler's step (`run(tflite)`, before the numbers) runs nothing: it needs the samples.
    assert tflm.run(conv_chain()) is None


def test_tflm_runs_the_model_and_matches_litert(chain, record_property):
    model, samples, r = chain
    assert r.ok and r.error is None and r.stage is None, r
    assert r.version and r.samples == 4 and r.model_bytes == len(model)
    assert r.values == 4 * 4 * 4 * 4  # 4 samples x (1, 4, 4, 4) uint8 outputs
    record_property("tflm_vs_litert", f"{r.differing} of {r.values} values differ, max {r.max_diff_steps} steps")
    assert r.beyond_one_step == 0 and r.max_diff_steps <= 1 and r.matches


def test_the_arena_is_the_least_that_runs_and_no_less_than_tflm_records(chain):
    model, samples, r = chain
    assert 0 < r.arena_recorded <= r.arena_bytes < 1 << 20
    # One byte less does not run: the figure is the least, measured, not TFLM's record.
    work_ok = tflm.run(model, samples)
    assert work_ok.arena_bytes == r.arena_bytes  # deterministic
    probe = _probe(model, samples, r.arena_bytes - 1)
    assert not probe.ok and "failed to allocate" in (probe.error or "").lower()
    assert _probe(model, samples, r.arena_bytes).ok


def _probe(model: bytes, samples: dict, arena: int) -> tflm.RuntimeResult:
    """The child at one fixed arena size (what run() does with its first size)."""
    import tempfile

    tfl = read_tflite(model)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "model.tflite").write_bytes(model)
        np.savez(work / "inputs.npz", **{f"s{s}_i{i}": row[t] for s, row in enumerate(samples["inputs"][:1])
                                          for i, t in enumerate(tfl.inputs)})
        result, *_ = tflm._child(work, 1, list(tfl.inputs), list(tfl.outputs), arena, 60, None)
    return result


def test_a_native_crash_is_a_result_not_a_crash_of_qfix(chain):
    model, samples, _ = chain
    r = _probe(model, samples, 100)  # far too small: the interpreter dies of SIGSEGV
    assert not r.ok and "crashed (SIGSEGV) while loading" in r.error, r.error


def test_a_hang_is_cut_at_the_timeout(chain):
    model, samples, _ = chain
    r = tflm.run(model, samples, timeout=0.01)
    assert not r.ok and "timed out after 0.01 s" in r.error


def test_a_missing_kernel_fails_in_tflms_own_words():
    model = conv_chain("TOPK_V2")
    r = tflm.run(model, litert_samples(conv_chain()))  # the inputs are the same tensor
    assert not r.ok and r.stage == "loading"
    assert "Didn't find op for builtin opcode 'TOPK_V2'" in r.error, r.error
    # The profile predicted it: no disagreement, and QF309 carries the runtime's words.
    profile = load_profile("tflm")
    placement = check(read_tflite(model), profile)
    assert placement.first_unsupported["op"] == "TOPK_V2" and tflm.compare(placement, r) == []
    compiler = {"used": tflm.NAME, "kind": tflm.KIND, "result": r.to_json()}
    (v,) = TargetRuntimeError().judge(compiler, profile.name)
    assert v.severity.value == "blocker" and "TOPK_V2" in v.message


def test_a_runtime_and_profile_disagreement_is_reported(chain):
    model, _, r = chain
    placement = check(read_tflite(conv_chain("TOPK_V2")), load_profile("tflm"))
    assert "yet the TFLM interpreter ran the model" in tflm.compare(placement, r)[0]


@pytest.mark.parametrize("shift,differing,beyond", [(0, 0, 0), (1, 10, 0), (2, 10, 10), (-3, 10, 10)])
def test_outputs_are_compared_in_quantization_steps(chain, shift, differing, beyond):
    model, samples, _ = chain
    ref = {"inputs": samples["inputs"], "outputs": [dict(o) for o in samples["outputs"]]}
    (t, arr), = ref["outputs"][0].items()
    moved = arr.astype(np.int32).ravel()
    moved[:10] = np.clip(moved[:10] + shift, 0, 255)
    changed = int(np.count_nonzero(moved != arr.ravel()))
    ref["outputs"][0] = {t: moved.reshape(arr.shape).astype(arr.dtype)}
    r = tflm.run(model, ref)
    assert r.ok and r.differing == min(differing, changed)
    assert r.beyond_one_step == min(beyond, changed)
    # the same counts per output (the bench and the JSON report list them output by output)
    (out,) = r.to_json()["outputs"]
    assert (out["values"], out["differing"], out["beyond_one_step"]) == (r.values, r.differing, r.beyond_one_step)
    assert out["max_diff_steps"] == r.max_diff_steps == int(np.abs(moved - arr.ravel().astype(np.int32)).max())
    findings = list(RuntimeOutputMismatch().judge({"used": tflm.NAME, "kind": tflm.KIND, "result": r.to_json()}))
    assert len(findings) == (1 if r.beyond_one_step else 0)
    if findings:  # LiteRT's outputs were moved, not TFLM's: TFLM still matches the reference kernels
        assert f"{r.beyond_one_step} of {r.values}" in findings[0].message
        assert findings[0].severity.value == "info" and "matches LiteRT's reference kernels" in findings[0].message
        assert r.matches
        # Had the reference kernels disagreed too, the device's numbers are in doubt: a warning.
        result = {**r.to_json(), "reference_kernels": {**r.to_json()["reference_kernels"], "beyond_one_step": 3}}
        (warning,) = RuntimeOutputMismatch().judge({"used": tflm.NAME, "kind": tflm.KIND, "result": result})
        assert warning.severity.value == "warning" and "not the device's" in warning.message


def test_without_tflite_micro_the_profile_stands_alone():
    code = ("import sys; sys.modules['tflite_micro'] = None\n"
            "from qfix.targets.compilers import tflm\n"
            "assert tflm.available() is None and tflm.run(b'', None) is None\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_a_child_that_cannot_start_is_a_result(chain):
    """Under a memory limit too small for Python and numpy (QFIX_MEMORY_LIMIT), the child dies
    before TFLM is loaded: one error line, no exception."""
    model, samples, _ = chain
    r = tflm.run(model, samples, memory_limit=20 << 20)
    assert not r.ok and r.error.startswith("the TFLM interpreter ") and "while starting" in r.error, r.error


def softmax(input_scale: float) -> bytes:
    """int8 (1, 10) -> SOFTMAX -> int8, the input quantized with `input_scale`."""
    tensors = [{"name": "serving_default_logits:0", "shape": (1, 10), "dtype": "int8", "scale": input_scale},
               {"name": "StatefulPartitionedCall:0", "shape": (1, 10), "dtype": "int8", "scale": 1 / 256,
                "zero_point": -128}]
    ops = [{"op": "SOFTMAX", "in": [0], "out": [1], "options": ("SoftmaxOptions", {"beta": 1.0})}]
    return build_tflite(tensors, ops, [0], [1])


def test_a_softmax_input_scale_below_2_to_the_minus_26_aborts_tflm_as_the_profile_predicts():
    """A near-constant softmax input (an untrained model's logits) quantizes to a scale TFLM's
    Prepare refuses with an abort; the profile's SOFTMAX rule predicts it, so the two agree."""
    profile = load_profile("tflm")
    fine, tiny = softmax(0.05), softmax(1e-9)
    assert tflm.run(fine, litert_samples(fine)).ok
    r = tflm.run(tiny, litert_samples(tiny))
    assert not r.ok and "crashed (SIGABRT) while loading" in r.error, r.error
    placement = check(read_tflite(tiny), profile)
    assert placement.first_unsupported["op"] == "SOFTMAX" and "2^-26" in placement.first_unsupported["reason"]
    assert tflm.compare(placement, r) == [] and check(read_tflite(fine), profile).fully_on_target


def test_each_output_gets_its_own_counts_in_the_result_and_the_text_report():
    """Two outputs, a difference planted in the second's reference only: the per-output entries
    say where it is, and the text report lists them (the totals alone would not)."""
    from io import StringIO

    from rich.console import Console

    from qfix.report.text import render_runtime

    shape = (1, 4, 4, 3)
    model = build_tflite(
        [{"name": "image", "shape": shape, "dtype": "uint8"},
         {"name": "q", "shape": shape, "dtype": "int8"},
         {"name": "probs", "shape": shape, "dtype": "uint8"},
         {"name": "boxes", "shape": shape, "dtype": "uint8", "scale": 0.1}],
        [{"op": "QUANTIZE", "in": [0], "out": [1]}, {"op": "QUANTIZE", "in": [1], "out": [2]},
         {"op": "QUANTIZE", "in": [1], "out": [3]}], [0], [2, 3])
    samples = litert_samples(model)
    arr = samples["outputs"][0][3]
    moved = arr.astype(np.int32).ravel()
    moved[:5] = np.where(moved[:5] < 128, moved[:5] + 3, moved[:5] - 3)  # 3 steps, never clipped
    samples["outputs"][0][3] = moved.reshape(arr.shape).astype(arr.dtype)
    r = tflm.run(model, samples)
    assert r.ok, r.error
    first, second = r.to_json()["outputs"]
    assert (first["name"], first["values"], first["differing"], first["max_diff_steps"]) == ("probs", 4 * 48, 0, 0)
    assert (second["name"], second["values"], second["differing"], second["beyond_one_step"],
            second["max_diff_steps"]) == ("boxes", 4 * 48, 5, 5, 3)
    assert (r.values, r.differing, r.max_diff_steps) == (8 * 48, 5, 3)
    out = StringIO()
    render_runtime({"used": tflm.NAME, "result": r.to_json()}, Console(file=out, width=200, color_system=None))
    text = out.getvalue()
    assert "5 of 384 values differ, max 3 step(s) apart" in text
    assert "output probs: 0 of 192 values differ, max 0 step(s) apart" in text
    assert "output boxes: 5 of 192 values differ, max 3 step(s) apart" in text


def test_tflm_is_also_compared_with_litert_s_reference_kernels(chain):
    """The same inputs run through LiteRT's reference kernels (BUILTIN_REF) in the child: TFLM's
    kernels are ported from them, so on a conv chain they agree value for value."""
    _, _, r = chain
    ref = r.reference_kernels
    assert ref is not None and ref.error is None, ref
    assert ref.values == r.values and ref.beyond_one_step == 0 and ref.differing == 0, ref
    assert r.to_json()["reference_kernels"]["values"] == r.values


def test_samples_the_converted_model_cannot_take_are_not_fed_and_tflm_is_not_blamed():
    """A dynamic-shape model: LiteRT was resized to the samples, TFLM cannot be (issue 13, item 4).
    qfix skips the run and says why; QF309 (the runtime's refusal) does not fire."""
    model = conv_chain(signature_batch=-1)
    samples = litert_samples(conv_chain())
    samples["inputs"] = [{t: np.concatenate([a, a]) for t, a in row.items()} for row in samples["inputs"]]
    r = tflm.run(model, samples)
    assert not r.ok and r.error is None and r.arena_bytes is None
    assert r.skipped == ("input 'serving_default_input_1:0' is [-1, 4, 4, 3] in the converted model (dynamic "
                         "dimensions); TFLM allocates fixed shapes and cannot take the [2, 4, 4, 3] samples: "
                         "fix the input shape first")
    compiler = {"used": tflm.NAME, "kind": tflm.KIND, "result": r.to_json()}
    assert list(TargetRuntimeError().judge(compiler, "TFLM")) == []
    assert tflm.compare(check(read_tflite(model), load_profile("tflm")), r) == []
    assert tflm.memory(r)["ram"][0] is None
