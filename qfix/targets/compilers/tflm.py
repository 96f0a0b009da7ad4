"""The real TFLite Micro interpreter (pip `tflite-micro`, pre-release builds): run the converted
model on the calibration samples, compare its outputs with LiteRT's, and measure the tensor
arena the model needs.

The interpreter runs in a child process of its own (`tflm_child.py`): it is native code, and
a model it cannot take can end in SIGSEGV; that ends the child, never qfix. The child is fed
the very integer tensors LiteRT was fed in the fidelity check (`Fidelity.raw`), so the two
runtimes' outputs compare value by value, in quantization steps (one step = one integer level
of the output tensor, `scale` in real units).

The arena figure is measured: the least arena in which the interpreter allocates the model and
runs a sample to the same outputs, found by running it again (tflm_child.least_arena). TFLM's
own record (`RecordingMicroAllocator`'s "Arena allocation total", what `arena_used_bytes()`
returns) is reported beside it and can be short: planning needs scratch space it frees again
(a tiny model here: 1,392 bytes recorded, 1,864 needed). Both are measured on the host build
with the reference kernels and an unaligned buffer (TFLM rounds the arena's start up to 16
bytes): on a 32-bit MCU the interpreter's own structs are smaller, while optimized kernels
(CMSIS-NN) may ask for scratch buffers the reference kernels do not; treat it as the figure to
start from, with a margin, as TFLM's docs advise for arena_used_bytes().

The Python interpreter registers every TFLM kernel (an all-ops resolver), so it answers "can
TFLM run this op with these tensors", not "did my application register it": the op table of
tflm.toml covers the latter.
"""

from __future__ import annotations

import importlib.util
import json
import resource
import signal
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

NAME = "tflite-micro"  # the toolchain name in tflm.toml
KIND = "runtime"  # a runtime that runs the model, not a compiler that maps it
NEEDS_SAMPLES = True  # run() takes the samples LiteRT ran (prove asks the fidelity check for them)
MEASURES = frozenset({"flash", "ram"})  # what --memory can be checked against here
MEMORY_TEXT = {"ram": "the tensor arena the TFLM interpreter needs"}  # for `qfix targets`
CHILD = Path(__file__).with_name("tflm_child.py")
# Arenas to try: the first fits every model an MCU can hold; a model that needs more gets one
# more try, so its figure is still measured (and reported as over any MCU's RAM).
ARENAS = (16 << 20, 256 << 20)
# What TFLM's allocator prints when the arena is too small (the exception alone, "TFLM failed
# to allocate tensors", also ends a missing op: only these lines tell the two apart).
_TOO_SMALL = ("failed to resize buffer", "failed to allocate tail memory", "failed to allocate memory")


@dataclass
class OutputMatch:
    """One output of the model: TFLM's values against LiteRT's on every sample."""

    index: int  # position among the .tflite's outputs
    name: str
    dtype: str
    values: int  # compared values (all samples)
    differing: int
    beyond_one_step: int  # integer outputs: values more than one quantization step apart
    max_diff_steps: int | None  # integer outputs: largest difference in steps (None: float output)
    max_abs_diff: float  # in the output's own units (steps for integer outputs)


@dataclass
class ReferenceMatch:
    """TFLM's outputs against LiteRT's reference kernels (`OpResolverType.BUILTIN_REF`) on the
    same inputs: the kernels TFLM's are ported from. When TFLM differs from LiteRT's default
    (optimized) kernels but matches these, the difference is the optimized kernels' rounding,
    not TFLM's (seen on RESIZE_BILINEAR and TRANSPOSE_CONV: up to 3 steps)."""

    values: int = 0
    differing: int = 0
    beyond_one_step: int = 0
    max_diff_steps: int | None = None
    error: str | None = None  # the reference run failed (its own words)


@dataclass
class RuntimeResult:
    ok: bool  # the interpreter loaded the model and ran every sample
    version: str | None
    stage: str | None  # what failed: "loading" (building it, allocating tensors), "invoking"
    error: str | None
    arena_bytes: int | None  # the least tensor arena the model ran in (bytes)
    arena_recorded: int | None  # what TFLM's allocator recorded as used (arena_used_bytes())
    model_bytes: int  # the flatbuffer: what a TFLM application keeps in flash
    samples: int
    values: int = 0
    differing: int = 0
    beyond_one_step: int = 0
    max_diff_steps: int | None = None
    outputs: list[OutputMatch] = field(default_factory=list)
    log: list[str] = field(default_factory=list)  # what TFLM printed (its errors)
    reference_kernels: ReferenceMatch | None = None  # vs LiteRT's reference kernels
    # Why qfix did not start the interpreter (ok is then False, error None): a reason of qfix's,
    # not the runtime's refusal (QF309 does not fire; the profile's verdict stands alone).
    skipped: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def matches(self) -> bool:
        """Same values as LiteRT (its default kernels, or its reference kernels), or within one
        quantization step."""
        ref = self.reference_kernels
        return self.ok and (self.beyond_one_step == 0 or (ref is not None and ref.error is None
                                                           and ref.values > 0 and ref.beyond_one_step == 0))


def available() -> str | None:
    """Where `tflite_micro` is installed, or None (found without importing it)."""
    try:
        spec = importlib.util.find_spec("tflite_micro")
    except (ImportError, ValueError):  # a broken install, or hidden (sys.modules entry None)
        return None
    return spec.origin if spec is not None else None


def run(model: bytes, samples: dict[str, list[dict[int, np.ndarray]]] | None = None, timeout: float = 600.0,
        memory_limit: int | None = None) -> RuntimeResult | None:
    """Run `model` (a .tflite) in the TFLM interpreter on `samples` (`Fidelity.raw`: per sample,
    {tensor index: array} of what LiteRT was fed and gave) and compare. None when tflite-micro
    is not installed, or without samples (a compiler's step, `run(tflite)`: this runtime runs
    after the numbers check, on its samples). Never raises for the model's sake: a failure or a
    crash is the result."""
    if samples is None or available() is None:
        return None
    from qfix.targets.tflite import read_tflite

    tfl = read_tflite(model)
    feed = samples.get("inputs") or []
    base = RuntimeResult(False, None, "loading", None, None, None, len(model), len(feed))
    try:
        arrays = {f"s{s}_i{i}": row[t] for s, row in enumerate(feed) for i, t in enumerate(tfl.inputs)}
    except KeyError as exc:
        base.error = f"no sample for .tflite input tensor {exc.args[0]}"
        return base
    if not feed:
        base.error = "no samples to run"
        return base
    why = _unfeedable(tfl, feed[0])
    if why is not None:
        base.stage, base.skipped = None, why
        return base
    with tempfile.TemporaryDirectory(prefix="qfix-tflm-") as tmp:
        work = Path(tmp)
        (work / "model.tflite").write_bytes(model)
        np.savez(work / "inputs.npz", **arrays)
        for arena in ARENAS:
            result, outs, refs, ref_error = _child(work, len(feed), list(tfl.inputs), list(tfl.outputs), arena,
                                                   timeout, memory_limit)
            result.model_bytes, result.samples = len(model), len(feed)
            if result.ok or not _too_small(result):
                break
            result.error = f"{result.error} (the model needs more than {arena >> 20} MiB of tensor arena)"
    if result.ok:
        _compare(result, outs, samples.get("outputs") or [], tfl)
        result.reference_kernels = _compare_reference(outs, refs, ref_error)
    return result


def _unfeedable(tfl: Any, sample: dict[int, np.ndarray]) -> str | None:
    """Why `sample` cannot be fed to the interpreter as the .tflite is (None: it can). TFLM
    allocates each tensor once at the flatbuffer's `shape` and has no ResizeInputTensor, so an
    input with dynamic dimensions (shape_signature -1; LiteRT was resized to the samples) cannot
    take samples of another size. Feeding them anyway would blame TFLM for qfix's feeding."""
    for t in tfl.inputs:
        tensor, got = tfl.tensors[t], tuple(np.shape(sample[t]))
        if got != tuple(tensor.shape):
            dyn = " (dynamic dimensions)" if tensor.is_dynamic else ""
            return (f"input {tensor.name!r} is {list(tensor.shape_signature)} in the converted model{dyn}; TFLM "
                    f"allocates fixed shapes and cannot take the {list(got)} samples: fix the input shape first")
    return None


def _too_small(result: RuntimeResult) -> bool:
    text = " ".join(result.log).lower()
    return result.stage == "loading" and any(t in text for t in _TOO_SMALL)


def _child(work: Path, samples: int, inputs: list[int], outputs: list[int], arena: int, timeout: float,
           memory_limit: int | None) -> tuple[RuntimeResult, list[list[np.ndarray]], list[list[np.ndarray]], str | None]:
    """Run the child: TFLM's outputs and LiteRT's reference kernels' (`outs[sample][position]`,
    empty when not run), and the reference run's error."""
    n_in, n_out = len(inputs), len(outputs)
    (work / "request.json").write_text(json.dumps({"samples": samples, "inputs": n_in, "outputs": n_out,
                                                   "arena": arena, "input_tensors": inputs,
                                                   "output_tensors": outputs}))
    for stale in ("result.json", "outputs.npz", "reference.npz"):
        (work / stale).unlink(missing_ok=True)

    def limits() -> None:  # in the child, before exec
        if memory_limit:
            resource.setrlimit(resource.RLIMIT_DATA, (memory_limit, memory_limit))

    code: int | None
    try:
        proc = subprocess.run([sys.executable, str(CHILD), str(work)], capture_output=True, timeout=timeout,
                              preexec_fn=limits, stdin=subprocess.DEVNULL)
        code, stderr = proc.returncode, proc.stderr.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        code, stderr = None, ""
    raw = _read_json(work / "result.json")
    result = RuntimeResult(bool(raw.get("ok")), raw.get("version"), raw.get("stage", "starting"), raw.get("error"),
                           raw.get("arena_bytes"), raw.get("arena_recorded"), 0, samples,
                           log=[str(line) for line in raw.get("log", [])])
    where = f" while {result.stage}" if result.stage else " while measuring the arena"
    if result.ok and code != 0:  # every sample ran; only the arena search did not end
        how = "timed out" if code is None else f"ended with {_signal_name(code) if code < 0 else f'status {code}'}"
        result.log.append(f"the arena search {how}")
    elif code is None:
        result.ok, result.error = False, f"the TFLM interpreter timed out after {timeout:g} s{where}"
    elif code < 0:
        result.error = f"the TFLM interpreter crashed ({_signal_name(code)}){where}"
    elif code != 0 and result.error is None:  # the child died of an error of its own (an import)
        tail = [line for line in stderr.splitlines() if line.strip()][-1:] or ["no message"]
        result.error = f"the TFLM interpreter could not run (exit status {code}){where}: {tail[0][:300]}"
    if not result.ok and result.error is None:
        result.error = "the TFLM interpreter failed"
    if result.ok and not result.error:
        outs = _load_outputs(work / "outputs.npz", samples, n_out)
        refs = _load_outputs(work / "reference.npz", samples, n_out) if (work / "reference.npz").exists() else []
        ref_error = raw.get("reference_error") or (None if refs else "the reference run did not end")
        return result, outs, refs, ref_error
    if not result.ok and result.log:  # TFLM's own words say which op and why
        result.error = f"{result.error}: {'; '.join(result.log[:3])}"[:600]
    return result, [], [], None


def _load_outputs(path: Path, samples: int, n_out: int) -> list[list[np.ndarray]]:
    """The child's `s<sample>_o<output position>` arrays as `[sample][position]`."""
    with np.load(path) as data:
        return [[data[f"s{s}_o{j}"] for j in range(n_out)] for s in range(samples)]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def _diff_counts(got: np.ndarray, ref: np.ndarray) -> tuple[int, int, int, int | None, float]:
    """Two runtimes' values of one output (flattened): values compared, differing, more than one
    quantization step apart, the largest difference in steps (integer outputs, else None) and
    the largest absolute difference. Values of different shapes all count as differing."""
    if got.shape != ref.shape:
        return int(ref.size), int(ref.size), int(ref.size), None, float("inf")
    diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    integer = np.issubdtype(got.dtype, np.integer)
    return (int(diff.size), int(np.count_nonzero(diff)),
            int(np.count_nonzero(diff > 1)) if integer else int(np.count_nonzero(diff)),
            int(diff.max()) if integer and diff.size else None, float(diff.max()) if diff.size else 0.0)


def _flat(rows: list, key: Any) -> np.ndarray:
    """One output over every sample (`rows[sample][key]`), flattened."""
    return np.concatenate([np.ravel(row[key]) for row in rows]) if rows else np.array([])


def _compare(result: RuntimeResult, outs: list[list[np.ndarray]], reference: list[dict[int, np.ndarray]],
             tfl: Any) -> None:
    """Fill the counts: TFLM's outputs (`outs[sample][position]`) against LiteRT's."""
    worst = None
    for j, t in enumerate(tfl.outputs):
        tensor = tfl.tensors[t]
        match = OutputMatch(j, tensor.name, tensor.dtype, *_diff_counts(_flat(outs, j), _flat(reference, t)))
        result.outputs.append(match)
        result.values += match.values
        result.differing += match.differing
        result.beyond_one_step += match.beyond_one_step
        if match.max_diff_steps is not None:
            worst = max(worst or 0, match.max_diff_steps)
    result.max_diff_steps = worst


def _compare_reference(outs: list[list[np.ndarray]], refs: list[list[np.ndarray]],
                       error: str | None) -> ReferenceMatch:
    """TFLM's outputs against LiteRT's reference kernels' (both `[sample][position]`)."""
    match = ReferenceMatch(error=error)
    if error or not refs:
        return match
    for j in range(len(refs[0])):
        values, differing, beyond, steps, _ = _diff_counts(_flat(outs, j), _flat(refs, j))
        match.values += values
        match.differing += differing
        match.beyond_one_step += beyond
        if steps is not None:
            match.max_diff_steps = max(match.max_diff_steps or 0, steps)
    return match


def compare(placement: Any, result: RuntimeResult) -> list[str]:
    """Where the interpreter and the profile's prediction disagree (empty = they agree)."""
    first = placement.first_unsupported
    if result.skipped:
        return []  # not run: nothing to compare
    if not result.ok and first is None:
        return [f"the TFLM interpreter failed ({result.error}); the profile predicted every op runs"]
    if result.ok and first is not None:
        return [f"the profile predicts {first['op']} (op {first['index']}) fails ('{first.get('status')}'), "
                "yet the TFLM interpreter ran the model"]
    return []


def memory(result: RuntimeResult) -> dict[str, tuple[int | None, str]]:
    """What this runtime measured, for --memory: kind -> (bytes, what was measured)."""
    return {"flash": (result.model_bytes, "the .tflite flatbuffer"),
            "ram": (result.arena_bytes, "TFLM tensor arena (tflite-micro host build)")}
