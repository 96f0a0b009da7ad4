"""The real edgetpu_compiler, when it is on PATH: run it and read its per-op log.

It ships only as a Debian package from Google's apt repo, so most machines lack it; `run()`
then returns None and the profile's prediction stands alone. When it is there, `compare()`
lists where the compiler and qfix's profile disagree, so the profile can be corrected.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from qfix.targets.check import Placement

NAME = BINARY = "edgetpu_compiler"  # the toolchain name in edgetpu.toml
# `OPNAME   <count>   <status>` rows under the `Operator  Count  Status` header.
_ROW = re.compile(r"^([A-Z][A-Z0-9_]*)\s+(\d+)\s+(\S.*?)\s*$")
_COUNT = {
    "ops_on_tpu": re.compile(r"Number of operations that will run on Edge TPU:\s*(\d+)"),
    "ops_on_cpu": re.compile(r"Number of operations that will run on CPU:\s*(\d+)"),
    "total_ops": re.compile(r"Total number of operations:\s*(\d+)"),
    "subgraphs": re.compile(r"Number of Edge TPU subgraphs:\s*(\d+)"),
}
_FATAL = ("Compilation failed", "Invalid model", "Model not quantized", "Model could not be parsed",
          "Internal compiler error")


@dataclass
class CompilerOps:
    op: str
    count: int
    status: str


@dataclass
class CompilerResult:
    ok: bool
    version: str | None
    ops: list[CompilerOps]
    ops_on_tpu: int | None
    ops_on_cpu: int | None
    total_ops: int | None
    subgraphs: int | None
    error: str | None  # first fatal line, when compilation failed
    log: str = field(repr=False, default="")
    compiled: bytes | None = field(repr=False, default=None)  # the *_edgetpu.tflite

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in ("log", "compiled")}

    def status_counts(self) -> Counter[tuple[str, str]]:
        counts: Counter[tuple[str, str]] = Counter()
        for row in self.ops:
            counts[(row.op, row.status)] += row.count
        return counts


def parse_log(text: str) -> CompilerResult:
    """Parse compiler stdout (with `-s`) or the `<model>_edgetpu.log` file."""
    version = re.search(r"Edge TPU Compiler version (\S+)", text)
    counts = {k: (int(m.group(1)) if (m := rx.search(text)) else None) for k, rx in _COUNT.items()}
    rows: list[CompilerOps] = []
    in_table = False
    for line in text.splitlines():
        if re.match(r"^Operator\s+Count\s+Status\s*$", line.strip()):
            in_table = True
            continue
        if in_table:
            m = _ROW.match(line.strip())
            if m:
                rows.append(CompilerOps(m.group(1), int(m.group(2)), m.group(3)))
            elif line.strip() and rows:
                in_table = False  # the table ended; a second table (log file + stdout) may follow
    fatal = next((ln.strip() for ln in text.splitlines() if ln.strip().startswith(_FATAL) or ln.startswith("ERROR:")), None)
    failed = "Compilation failed" in text or (fatal is not None and not rows and counts["total_ops"] is None)
    return CompilerResult(
        ok=not failed,
        version=version.group(1) if version else None,
        ops=rows,
        error=fatal if failed else None,
        log=text,
        **counts,
    )


def available() -> str | None:
    return shutil.which(BINARY)


def run(model: bytes | str | Path, timeout: float = 180.0, binary: str | None = None) -> CompilerResult | None:
    """Compile with `edgetpu_compiler -s -o tmpdir`; None when the compiler is not installed."""
    exe = binary or available()
    if exe is None:
        return None
    with tempfile.TemporaryDirectory(prefix="qfix-edgetpu-") as tmp:
        src = Path(tmp) / "model.tflite"
        if isinstance(model, bytes):
            src.write_bytes(model)
        else:
            shutil.copyfile(model, src)
        out_dir = Path(tmp) / "out"
        out_dir.mkdir()
        try:
            proc = subprocess.run([exe, "-s", "-o", str(out_dir), "-t", str(int(timeout)), str(src)],
                                  capture_output=True, text=True, timeout=timeout + 30)
        except subprocess.TimeoutExpired:
            return CompilerResult(False, None, [], None, None, None, None, f"{BINARY} timed out after {timeout:.0f} s")
        except OSError as exc:
            return CompilerResult(False, None, [], None, None, None, None, f"{BINARY} could not run: {exc.strerror}")
        result = parse_log(proc.stdout + "\n" + proc.stderr)
        if proc.returncode != 0 and result.ok:
            result.ok, result.error = False, f"{BINARY} exited with status {proc.returncode}"
        compiled = out_dir / "model_edgetpu.tflite"
        if compiled.exists():
            result.compiled = compiled.read_bytes()
        return result


def compare(placement: Placement, result: CompilerResult) -> list[str]:
    """Where the real compiler and the profile's prediction disagree (empty = they agree)."""
    diffs: list[str] = []
    if not result.ok:
        if placement.ops_on_target:
            diffs.append(f"compiler failed ({result.error}); qfix predicted {placement.ops_on_target} "
                         f"op(s) on the Edge TPU")
        return diffs
    if result.ops_on_tpu is not None and result.ops_on_tpu != placement.ops_on_target:
        diffs.append(f"ops on Edge TPU: compiler {result.ops_on_tpu}, qfix {placement.ops_on_target}")
    if result.total_ops is not None and result.total_ops != placement.ops_total:
        diffs.append(f"total ops: compiler {result.total_ops}, qfix {placement.ops_total}")
    if result.ops:
        ours: Counter[tuple[str, str]] = Counter((p.op, p.status) for p in placement.ops)
        theirs = result.status_counts()
        for key in sorted(set(ours) | set(theirs)):
            if ours[key] != theirs[key]:
                op, status = key
                diffs.append(f"{op} '{status}': compiler {theirs[key]}, qfix {ours[key]}")
    return diffs
