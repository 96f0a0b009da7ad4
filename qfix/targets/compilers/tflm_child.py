"""The TFLite Micro interpreter in a process of its own: `python tflm_child.py DIR`.

Started by qfix.targets.compilers.tflm, never imported by qfix: the interpreter is native code
(an arena far too small for the model, or a malformed flatbuffer, ends in SIGSEGV), so it runs
where a crash ends only this process. It imports tflite_micro and numpy, nothing of qfix's
(it runs as a script, so it needs no qfix on sys.path).

Reads   DIR/model.tflite, DIR/inputs.npz (`s<sample>_i<input position>`, the .tflite's own dtypes),
        DIR/request.json (`samples`, `outputs`: how many of each, `arena`: bytes to try).
Writes  DIR/outputs.npz (`s<sample>_o<output position>`) and DIR/result.json: `ok`, `stage`
        (what failed: "loading" = building the interpreter and allocating its tensors,
        "invoking"), `error`, `log` (what TFLM printed), `arena_recorded` (what the arena's
        allocator recorded as used: RecordingMicroAllocator's total, the figure
        `arena_used_bytes()` gives), `arena_bytes` (the least arena the model ran in, found by
        running it again: see least_arena), `version`.
result.json is written before the arena search, so a crash there leaves the run's figures.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile
from pathlib import Path

# "[RecordingMicroAllocator] Arena allocation total 8416 bytes" (print_allocations, on stderr)
ARENA_TOTAL = re.compile(r"Arena allocation total (\d+) bytes")


@contextlib.contextmanager
def captured_stderr(lines: list[str]):
    """What native code prints on fd 2 inside the block, appended to `lines` (MicroPrintf
    writes there, below Python's sys.stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", "replace")
            lines.extend(line.rstrip() for line in text.splitlines() if line.strip())


def run(interpreter, inputs, samples: int, n_in: int, n_out: int):
    outs = []
    for s in range(samples):
        for i in range(n_in):
            interpreter.set_input(inputs[f"s{s}_i{i}"], i)
        interpreter.invoke()
        outs.append([interpreter.get_output(j).copy() for j in range(n_out)])
    return outs


def main(folder: str) -> None:
    import numpy as np

    work = Path(folder)
    request = json.loads((work / "request.json").read_text())
    model = (work / "model.tflite").read_bytes()
    inputs = np.load(work / "inputs.npz")
    samples, n_in, n_out = request["samples"], request["inputs"], request["outputs"]
    result = {"ok": False, "stage": "loading", "error": None, "log": [], "arena_bytes": None,
              "arena_recorded": None, "version": None}

    def save() -> None:
        (work / "result.json").write_text(json.dumps(result))

    save()
    import tflite_micro
    from tflite_micro import runtime

    result["version"] = str(tflite_micro.__version__)
    log: list[str] = []
    try:
        with captured_stderr(log):
            interpreter = runtime.Interpreter.from_bytes(model, arena_size=request["arena"])
            result["stage"] = "invoking"
            outs = run(interpreter, inputs, samples, n_in, n_out)
            result["stage"] = None
            interpreter.print_allocations()
    except Exception as exc:  # noqa: BLE001  the interpreter's RuntimeError/ValueError: reported
        result["error"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        result["log"] = [line for line in log if "RecordingMicroAllocator" not in line][:50]
        save()
        return
    result["log"] = [line for line in log if "RecordingMicroAllocator" not in line][:50]
    found = [int(m.group(1)) for line in log if (m := ARENA_TOTAL.search(line))]
    result["arena_recorded"] = found[-1] if found else None
    result["ok"] = True
    np.savez(work / "outputs.npz", **{f"s{s}_o{j}": out for s, row in enumerate(outs) for j, out in enumerate(row)})
    save()
    if request.get("input_tensors") is not None:
        result["reference_error"] = reference_outputs(model, inputs, samples, request, work)
        save()
    if result["arena_recorded"]:
        result["arena_bytes"] = least_arena(runtime, model, inputs, n_in, n_out, outs[0], result["arena_recorded"],
                                            request["arena"])
        save()


def reference_outputs(model: bytes, inputs, samples: int, request: dict, work: Path) -> str | None:
    """Run the model in LiteRT with its reference kernels (`OpResolverType.BUILTIN_REF`, the
    portable C++ implementations TFLM's kernels are ported from) on the same inputs; writes
    DIR/reference.npz (`s<sample>_o<output position>`). LiteRT's default resolver uses optimized
    kernels (XNNPACK, ruy) whose rounding may differ from the reference's by a few steps on
    some ops (resize, transposed conv): this run says whether a difference is TFLM's or theirs.
    Returns the error text, or None."""
    import numpy as np

    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        with captured_stderr([]):
            it = Interpreter(model_content=model, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
            it.allocate_tensors()
            outs = {}
            for s in range(samples):
                for i, t in enumerate(request["input_tensors"]):
                    it.set_tensor(t, inputs[f"s{s}_i{i}"])
                it.invoke()
                outs.update({f"s{s}_o{j}": it.get_tensor(t).copy() for j, t in enumerate(request["output_tensors"])})
    except Exception as exc:  # noqa: BLE001  reported beside the TFLM result, which stands
        return f"{type(exc).__name__}: {str(exc).strip()[:300]}"
    np.savez(work / "reference.npz", **outs)
    return None


def least_arena(runtime, model: bytes, inputs, n_in: int, n_out: int, expected, recorded: int, large: int):
    """The smallest arena (bytes) in which the model allocates and runs sample 0 to the same
    outputs as in the large arena, or None when no size up to `large` is found. The allocator's
    record is a lower bound, not the answer: planning needs scratch space it frees again (seen
    here: 1,392 bytes recorded, 1,864 needed). Sizes at or above the record fail cleanly
    (RuntimeError), so probing never goes where the interpreter crashes."""
    import numpy as np

    def runs(size: int) -> bool:
        try:
            with captured_stderr([]):
                got = run(runtime.Interpreter.from_bytes(model, arena_size=size), inputs, 1, n_in, n_out)[0]
        except Exception:  # noqa: BLE001  too small: "TFLM failed to allocate tensors"
            return False
        return all(np.array_equal(a, b) for a, b in zip(got, expected))

    low, step = recorded - 1, 16  # low: known (or assumed) too small
    high = recorded
    while not runs(high):  # grow until it runs: the excess over the record is small
        low, step = high, step * 2
        high = recorded + step
        if high > large:
            return None
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if runs(mid) else (mid, high)
    return high


if __name__ == "__main__":
    main(sys.argv[1])
