"""Arm's Vela compiler (`pip install ethos-u-vela`) for the Ethos-U targets: run it, read where
each op of the `.tflite` runs (NPU or CPU) and why, and its performance estimates.

Vela runs in a child process (`python -m ethosu.vela`, the interpreter qfix runs on), with a
time limit and a memory limit, in a temporary folder: a crash, a hang or a memory blow-up in
its C++ core ("regor") is one line in the report, never qfix's own death. What is read, all
written by Vela 5.2.0 itself:

- placement: `--enable-debug-db` writes `<net>_debug.xml`, CSV tables in CDATA. The `source`
  table maps Vela's operator ids to the input's op indices (`ext_key`); the `perf` table lists
  the lowered operations of each source op, `Passthrough` for one left to the CPU; the `queue`
  and `group` tables list what went into the NPU command stream. An operation is on the NPU when
  its optimised id is queued or it is grouped (fused) into one that is, as Vela's own
  `--show-cpu-operations` decides (ethosu/vela/stats_writer.py, regor_operations_from_database).
  A source op with a CPU operation runs on the CPU. A source op Vela removed (a RESHAPE becomes a
  view of its input) has no operation: it costs the NPU nothing, and counts as on the NPU.
- reasons: stdout, one block per op Vela leaves on the CPU:
  `Warning (supported operators) operator: CUMSUM, ofm: '<tensor name>'` then `Reason: ...` and
  the constraint text; matched to the op by its type and output tensor name.
- estimates: `<net>_summary_<system config>.csv` (one row: cycles, inference time in seconds at
  the configuration's clock, memory used per area in KiB, MACs; stats_writer.py
  write_summary_metrics_csv_common).

Exit status 0 even when ops fall back to the CPU; 1 when the input cannot be compiled (a float
ARG_MAX: "Does not have valid TFLite Semantics"), then the profile's verdict stands.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from qfix.targets.check import Placement, from_layer

NAME = "vela"  # the toolchain name in the ethos-u*.toml profiles
OUTPUT_SUFFIX = "_vela.tflite"  # Vela names its output <input stem>_vela.tflite
PACKAGE = "ethosu.vela"
DEFAULT_CONFIG = "ethos-u55-256"  # Vela's own default (`vela --help`)
TIMEOUT_S = 600.0
MEMORY_LIMIT = 4 << 30  # RLIMIT_DATA of the child; MobileNetV2 at 32x32 needs about 200 MiB
WHEN = "when ethos-u-vela is installed"  # for `qfix targets`

# The child: limits first, then Vela's own command line (`vela` is this function).
_CHILD = (
    "import resource, sys\n"
    "limit = int(sys.argv[1])\n"
    "resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))\n"
    "from ethosu.vela.vela import main\n"
    "sys.exit(main(sys.argv[2:]))\n"
)
_WARNING = re.compile(r"^Warning \(supported operators\) operator: (\S+), ofm: '(.*)'\s*$")
_TABLE = re.compile(r'<table name="([^"]+)">\s*<!\[CDATA\[\n(.*?)\]\]>', re.S)
_FATAL = re.compile(r"^(Error|.*Compilation failed|.*RuntimeError|Traceback)", re.M)
KIB = 1024


@dataclass
class VelaOp:
    """One op of the input `.tflite` as Vela placed it."""

    index: int
    op: str
    on_npu: bool
    reason: str | None = None  # Vela's "Reason:" line for a CPU op
    constraint: str | None = None  # the constraint text Vela prints under it
    lowered: list[str] = field(default_factory=list)  # Vela's operations for it (Conv2D, LUT, ...)


@dataclass
class Estimates:
    """Vela's performance estimates for one inference (batch 1) at the configuration's clock."""

    accelerator_config: str
    system_config: str
    memory_mode: str
    clock_hz: float
    cycles_total: int
    cycles_npu: int
    inference_ms: float
    inferences_per_second: float | None
    macs: int
    sram_bytes: int
    dram_bytes: int
    on_chip_flash_bytes: int
    off_chip_flash_bytes: int
    original_weights_bytes: int
    encoded_weights_bytes: int

    @property
    def flash_bytes(self) -> int:
        return self.on_chip_flash_bytes + self.off_chip_flash_bytes


@dataclass
class VelaResult:
    ok: bool
    version: str | None
    accelerator_config: str
    ops: list[VelaOp]
    estimates: Estimates | None
    error: str | None  # why Vela produced no placement (its own error, a crash, a time-out)
    log: str = field(repr=False, default="")
    # Vela ran and refused the file ("Compilation failed: ..."): nothing runs on the NPU. A crash
    # or a time-out is not a refusal: it says nothing about the model.
    rejected: bool = False
    rejected_op: int | None = None  # the op Vela's error names, when it names one
    # The size of Vela's output .tflite (`<name>_vela.tflite`): the file an Ethos-U device
    # flashes, its command stream and encoded weights with the CPU ops beside them.
    output_bytes: int | None = None
    # That file itself (the deliverable for an Ethos-U device), written by the main job beside
    # the plain .tflite as `<stem>.qfix.<target>_vela.tflite`, Vela's own suffix.
    output: bytes | None = field(repr=False, default=None)

    @property
    def ops_on_npu(self) -> int:
        return sum(o.on_npu for o in self.ops)

    @property
    def ops_on_cpu(self) -> int:
        return sum(not o.on_npu for o in self.ops)

    @property
    def npu_share(self) -> float | None:
        """TFLite ops on the NPU over all ops (Vela's own percentages count lowered operations)."""
        return self.ops_on_npu / len(self.ops) if self.ops else None

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("log", "ops", "estimates", "rejected_op", "output")}
        out["ops_on_npu"], out["ops_on_cpu"] = self.ops_on_npu, self.ops_on_cpu
        out["cpu_ops"] = [{"index": o.index, "op": o.op, "reason": o.reason, "constraint": o.constraint}
                          for o in self.ops if not o.on_npu]
        out["estimates"] = None if self.estimates is None else {
            **asdict(self.estimates), "flash_bytes": self.estimates.flash_bytes}
        return out


MEASURES = frozenset({"flash", "ram"})  # what --memory can be checked against (memory())
MEMORY_TEXT = {"flash": "Vela's output .tflite", "ram": "Vela's SRAM estimate"}  # for `qfix targets`


def available() -> str | None:
    """Where `ethosu.vela` is installed (in qfix's own environment), or None."""
    spec = importlib.util.find_spec(PACKAGE.split(".")[0])
    if spec is None or importlib.util.find_spec(PACKAGE) is None:
        return None
    return str(Path(spec.origin or "").parent) if spec.origin else PACKAGE


def version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("ethos-u-vela")
    except metadata.PackageNotFoundError:
        return None


def memory(result: VelaResult) -> dict[str, tuple[int | None, str]]:
    """What Vela measured, for --memory: kind -> (bytes, what was measured). flash: Vela's
    output .tflite, the file the device flashes (not the converter's .tflite, which the NPU never
    sees); ram: Vela's SRAM estimate (`sram_memory_used` of its summary CSV) for the system
    configuration it compiled for. None where Vela gave no figure (it failed or refused)."""
    est = result.estimates
    where = f", {est.system_config}" if est is not None else ""
    return {"flash": (result.output_bytes, "Vela's output .tflite (what the Ethos-U device flashes)"),
            "ram": (None if est is None else est.sram_bytes, f"Vela's SRAM estimate (sram_memory_used{where})")}


def notes(profile: Any) -> list[str]:
    """What the report should say about how Vela was run for `profile`: the accelerator
    configuration it was given by default, when the profile names none (a user profile with
    `toolchain = { name = "vela" }` alone)."""
    if profile.toolchain.get("accelerator_config"):
        return []
    return [f"vela compiled for {DEFAULT_CONFIG}, its default: the profile sets no "
            "toolchain.accelerator_config (e.g. \"ethos-u55-128\", \"ethos-u65-512\")"]


def options(profile: Any) -> dict[str, Any]:
    """The `run()` arguments the profile sets: its accelerator configuration."""
    return {"accelerator_config": str(profile.toolchain.get("accelerator_config", DEFAULT_CONFIG))}


def run(model: bytes | str | Path, accelerator_config: str = DEFAULT_CONFIG, timeout: float = TIMEOUT_S,
        memory_limit: int = MEMORY_LIMIT) -> VelaResult | None:
    """Compile `model` (flatbuffer bytes or a path) with Vela for `accelerator_config`
    (e.g. 'ethos-u55-128'); None when ethos-u-vela is not installed.

    Never raises for what Vela does: a failure, a crash (signal), a time-out (`timeout`
    seconds) or the memory limit (`memory_limit` bytes of RLIMIT_DATA) is a result with
    ok=False and `error` saying which."""
    if available() is None:
        return None
    failed = lambda why, log="": VelaResult(False, version(), accelerator_config, [], None, why, log)  # noqa: E731
    data = model if isinstance(model, bytes) else Path(model).read_bytes()
    with tempfile.TemporaryDirectory(prefix="qfix-vela-") as tmp:
        src = Path(tmp) / "model.tflite"
        src.write_bytes(data)
        out = Path(tmp) / "out"
        cmd = [sys.executable, "-c", _CHILD, str(int(memory_limit)), str(src), "--output-dir", str(out),
               "--accelerator-config", accelerator_config, "--enable-debug-db", "--show-cpu-operations"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return failed(f"vela timed out after {timeout:g} s")
        except OSError as exc:
            return failed(f"vela could not start: {exc.strerror}")
        log = proc.stdout + proc.stderr
        if proc.returncode < 0:
            return failed(f"vela crashed (signal {-proc.returncode}){_oom_note(log, memory_limit)}", log)
        debug = out / "model_debug.xml"
        refusal = _refusal(log)
        if refusal is not None:
            return VelaResult(False, version(), accelerator_config, [], None, refusal, log, True,
                              _refused_op(refusal, data))
        if proc.returncode != 0 or not debug.exists():
            why = _first_error(log) or f"vela exited with status {proc.returncode}{_oom_note(log, memory_limit)}"
            return failed(why, log)
        try:
            tables = read_debug_db(debug.read_text(encoding="utf-8"))
            ops = placement_of(tables, parse_warnings(log), *read_ops(data))
            summary = next(out.glob("model_summary_*.csv"), None)
            estimates = read_summary(summary.read_text(encoding="utf-8")) if summary else None
        except (KeyError, ValueError, IndexError) as exc:  # a Vela whose files qfix cannot read
            return failed(f"vela's output could not be read ({type(exc).__name__}: {exc})", log)
        written = next(out.glob("*_vela.tflite"), None)
        output = written.read_bytes() if written else None
        return VelaResult(True, version(), accelerator_config, ops, estimates, None, log,
                          output_bytes=len(output) if output is not None else None, output=output)


def _oom_note(log: str, limit: int) -> str:
    oom = ("MemoryError", "bad_alloc", "Memory allocation", "Cannot allocate memory")
    return f": out of memory (limit {limit >> 20} MiB)" if any(m in log for m in oom) else ""


def _refusal(log: str) -> str | None:
    """Vela's own refusal of the file, one line: "Error: RESHAPE '<name>' Does not have valid
    TFLite Semantics.; - Input and output number of elements must match; IFM shape=1, 32, OFM
    shape=1, 8, 32" (the "Compilation failed:" line with the detail lines that follow it)."""
    lines = log.splitlines()
    at = next((i for i, ln in enumerate(lines) if "Compilation failed:" in ln), None)
    if at is None:
        return None
    parts = [lines[at].split("Compilation failed:", 1)[1].strip()]
    for ln in lines[at + 1:]:
        if not ln.strip() or ln.strip() == "Failed to parse TFLite file":
            break
        parts.append(ln.strip())
    return "; ".join(p for p in parts if p)[:500]


_NAMED_OP = re.compile(r"Error: (\w+) '([^']*)'")


def _refused_op(refusal: str, data: bytes) -> int | None:
    """The index of the op Vela's refusal names (by type and output tensor), if it names one."""
    m = _NAMED_OP.search(refusal)
    if not m:
        return None
    try:
        ops, _ = read_ops(data)
    except Exception:  # noqa: BLE001 - not a file qfix can read either: no op to name
        return None
    name = _VELA_NAMES.get(m.group(1), m.group(1))
    return next((i for i, (op, ofm) in enumerate(ops) if ofm == m.group(2) and op == name), None)


def _first_error(log: str) -> str | None:
    """Vela's own error line ('Error: ARGMAX ... Does not have valid TFLite Semantics ...')."""
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    hit = next((ln for ln in lines if _FATAL.match(ln)), None)
    if hit is not None and hit.startswith("Traceback"):  # the exception line is the last one
        hit = lines[-1]
    return hit[:500] if hit else None


# ---- reading Vela's files --------------------------------------------------------------------


def read_debug_db(text: str) -> dict[str, list[dict[str, str]]]:
    """The debug database (`<net>_debug.xml`): table name -> rows as dicts (CSV in CDATA)."""
    tables = {}
    for name, body in _TABLE.findall(text):
        rows = list(csv.reader(io.StringIO(body.strip("\n"))))
        if rows:
            tables[name] = [dict(zip(rows[0], r)) for r in rows[1:]]
    return tables


def parse_warnings(log: str) -> dict[tuple[str, str], tuple[str, str | None]]:
    """(op type, ofm tensor name) -> (reason, constraint text) from Vela's stdout."""
    out: dict[tuple[str, str], tuple[str, str | None]] = {}
    lines = log.splitlines()
    for i, line in enumerate(lines):
        m = _WARNING.match(line.strip())
        if not m:
            continue
        reason, rest = None, []
        for nxt in lines[i + 1:]:
            if not nxt.strip() or _WARNING.match(nxt.strip()):
                break
            if reason is None and nxt.startswith("Reason:"):
                reason = nxt[len("Reason:"):].strip()
            else:
                rest.append(nxt.rstrip())
        out.setdefault((m.group(1), m.group(2)), (reason or "placed on the CPU", "\n".join(rest) or None))
    return out


def read_ops(data: bytes) -> tuple[list[tuple[str, str]], int]:
    """(op type, first output tensor name) of each op of the main subgraph, in order, and the
    number of subgraphs."""
    from qfix.targets.tflite import read_tflite

    tfl = read_tflite(data)
    ops = [(op.name, tfl.tensors[op.outputs[0]].name if op.outputs and op.outputs[0] >= 0 else "")
           for op in tfl.ops]
    return ops, tfl.subgraph_count


# Vela's operator names in its `source` table where they are not the TFLite name without "_".
_SOURCE_NAMES = {"AVERAGE_POOL_2D": "avgpool", "CONCATENATION": "concat", "LOGISTIC": "sigmoid",
                 "MAX_POOL_2D": "maxpool", "TRANSPOSE_CONV": "transposeconv2d"}


def _same_op(tflite_name: str, vela_name: str) -> bool:
    return _SOURCE_NAMES.get(tflite_name, tflite_name.replace("_", "").lower()) == vela_name.lower()


# Vela writes ARGMAX where TFLite's schema says ARG_MAX (ethosu/vela/vela.py normalise_ignore_ops).
_VELA_NAMES = {"ARGMAX": "ARG_MAX"}


def placement_of(tables: dict[str, list[dict[str, str]]], warnings: dict[tuple[str, str], tuple[str, str | None]],
                 ops: list[tuple[str, str]], subgraphs: int = 1) -> list[VelaOp]:
    """Each op of the main subgraph (`ops`: type and output name, by index) as Vela placed it.

    `ext_key` is an op's index in its own subgraph: with several subgraphs (control flow) a row
    counts only when its operator is the main subgraph's op at that index."""
    by_source = {row["id"]: int(row["ext_key"]) for row in tables["source"]
                 if row.get("ext_key", "").isdigit() and int(row["ext_key"]) < len(ops)
                 and (subgraphs == 1 or _same_op(ops[int(row["ext_key"])][0], row.get("operator", "")))}
    queued = {row["optimised_id"] for row in tables.get("queue", [])}
    grouped = {row["id"] for row in tables.get("group", [])}
    lowered: dict[int, list[tuple[str, bool]]] = {}
    for row in tables.get("perf", []):
        index = by_source.get(row["source_id"])
        if index is None:
            continue
        npu = row["optimised_id"] in queued or row["id"] in grouped
        lowered.setdefault(index, []).append((row["operator"], npu))
    warned = {(_VELA_NAMES.get(op, op), ofm): why for (op, ofm), why in warnings.items()}
    # Vela splits a fused activation off its op and warns about it by the op's output name
    # ("operator: RELU, ofm: '<the CONV_2D's output>'"): the op's reason all the same.
    by_ofm = {ofm: why for (_, ofm), why in warnings.items()}
    placed = []
    for index, (op, ofm) in enumerate(ops):
        parts = lowered.get(index, [])
        why = warned.get((op, ofm)) or by_ofm.get(ofm)
        on_npu = all(npu for _, npu in parts) and why is None
        reason, constraint = why if why else (None, None)
        if not on_npu and reason is None:
            reason = "placed on the CPU (Vela gave no reason)"
        placed.append(VelaOp(index, op, on_npu, reason, constraint, [name for name, _ in parts]))
    return placed


def _num(row: dict[str, str], key: str) -> float:
    value = row.get(key, "")
    try:
        return float(value)
    except ValueError:
        return 0.0


def read_summary(text: str) -> Estimates:
    """The summary CSV's one row of network totals (memory columns are KiB there)."""
    row = next(csv.DictReader(io.StringIO(text)))
    seconds = _num(row, "inference_time")
    ips = _num(row, "inferences_per_second")
    return Estimates(
        accelerator_config=row.get("accelerator_configuration", ""),
        system_config=row.get("system_config", ""),
        memory_mode=row.get("memory_mode", ""),
        clock_hz=_num(row, "core_clock"),
        cycles_total=int(_num(row, "cycles_total")),
        cycles_npu=int(_num(row, "cycles_npu")),
        inference_ms=seconds * 1e3,
        inferences_per_second=ips if ips == ips and ips > 0 else None,
        macs=int(_num(row, "nn_macs")),
        sram_bytes=round(_num(row, "sram_memory_used") * KIB),
        dram_bytes=round(_num(row, "dram_memory_used") * KIB),
        on_chip_flash_bytes=round(_num(row, "on_chip_flash_memory_used") * KIB),
        off_chip_flash_bytes=round(_num(row, "off_chip_flash_memory_used") * KIB),
        original_weights_bytes=int(_num(row, "total_original_weights")),
        encoded_weights_bytes=int(_num(row, "total_npu_encoded_weights")),
    )


# ---- against the profile ---------------------------------------------------------------------


def compare(placement: Placement, result: VelaResult) -> list[str]:
    """Where Vela and the profile's prediction disagree, op by op (empty = they agree)."""
    if result.rejected:
        on = placement.ops_on_target
        return [f"vela rejects the whole file ({result.error}); the profile put {on} op(s) on the NPU"] if on else []
    if not result.ok:  # Vela said nothing about the ops: no disagreement (summary_line says it failed)
        return []
    if len(result.ops) != len(placement.ops):
        return [f"vela read {len(result.ops)} op(s), qfix {len(placement.ops)}"]
    diffs = []
    for ours, theirs in zip(placement.ops, result.ops):
        if ours.on_target != theirs.on_npu:
            said = "NPU" if theirs.on_npu else f"CPU ({theirs.reason})"
            diffs.append(f"op {ours.index} {ours.op} {from_layer(ours.layer)}: vela {said}, profile "
                         f"{'NPU' if ours.on_target else f'CPU ({ours.reason})'}")
    return diffs


def apply(placement: Placement, result: VelaResult, profile: Any) -> bool:
    """Make Vela's placement the verdict: each op's on_target, status and reason become Vela's,
    and the totals and the first CPU op follow; a file Vela refuses has no op on the NPU and
    says why in `model_failure`. Float tensors, dynamic tensors and warnings stay (they are
    facts of the file). Returns False, changing nothing, when Vela crashed, timed out or read
    other ops: then the profile's prediction stands."""
    if result.rejected and placement.ops:
        _refused(placement, result, profile)
        return True
    if not result.ok or len(result.ops) != len(placement.ops):
        return False
    npu, cpu = profile.status("mapped"), profile.status("cpu")
    for ours, theirs in zip(placement.ops, result.ops):
        agreed = ours.on_target == theirs.on_npu
        ours.on_target = theirs.on_npu
        if theirs.on_npu:
            if not agreed:
                ours.status, ours.reason = npu, "supported (vela placed it on the NPU)"
                ours.fix_hint = None
        else:
            ours.status = cpu
            ours.reason = theirs.reason or "placed on the CPU"
            if theirs.constraint and "\n" not in theirs.constraint:  # a one-line rule says why
                ours.reason += f" ({theirs.constraint.strip()})"
        ours.source, ours.confidence = f"vela {result.version} ({result.accelerator_config})", "V"
    placement.ops_on_target = sum(o.on_target for o in placement.ops)
    first = next((o for o in placement.ops if not o.on_target and not o.boundary), None)
    placement.first_unsupported = None if first is None else {
        "op": first.op, "layer": first.layer, "reason": first.reason, "index": first.index,
        "status": first.status, "fix_hint": first.fix_hint}
    placement.fully_on_target = first is None and not placement.float_tensors
    # Where each op Vela leaves off the NPU goes, as the GPU profile's `fallback` says it: the CPU.
    placement.fallback = [{"index": o.index, "op": o.op, "layer": o.layer, "status": cpu, "reason": o.reason}
                          for o in placement.ops if not o.on_target and not o.boundary]
    return True


def _refused(placement: Placement, result: VelaResult, profile: Any) -> None:
    source = f"vela {result.version} ({result.accelerator_config})"
    culprit = result.rejected_op if result.rejected_op is not None else 0
    for op in placement.ops:
        op.on_target, op.status, op.source, op.confidence = False, profile.status("rejected"), source, "V"
        op.reason = (result.error or "refused") if op.index == culprit else f"vela rejects the file at op {culprit}"
    first = placement.ops[culprit]
    placement.ops_on_target, placement.fully_on_target = 0, False
    placement.first_unsupported = {"op": first.op, "layer": first.layer, "reason": first.reason,
                                   "index": first.index, "status": first.status, "fix_hint": first.fix_hint}
    placement.model_failure = f"vela rejects the whole file, so no op runs on {profile.name}"


def summary_line(result: VelaResult) -> str:
    """One line for the text report: where the ops run and what Vela estimates."""
    if result.rejected:
        return f"vela {result.version} ({result.accelerator_config}) rejects the file: {result.error}"
    if not result.ok:
        return f"vela {result.version or ''} ({result.accelerator_config}) failed: {result.error}"
    # TFLite ops: Vela's own summary counts its lowered operations, a different figure.
    head = (f"vela {result.version} ({result.accelerator_config}): {result.ops_on_npu}/{len(result.ops)} TFLite "
            f"ops on the NPU")
    e = result.estimates
    if e is None:
        return head
    mem = [f"SRAM {e.sram_bytes / KIB:.1f} KiB"]
    if e.dram_bytes:
        mem.append(f"DRAM {e.dram_bytes / KIB:.1f} KiB")
    if e.flash_bytes:  # the NPU's weights and command stream alone, not the output file's size
        mem.append(f"off-chip flash {e.flash_bytes / KIB:.1f} KiB")
    return (f"{head}; {e.cycles_total} cycles, {e.inference_ms:.3f} ms at {e.clock_hz / 1e6:.0f} MHz "
            f"({e.system_config}), {', '.join(mem)}")
