"""`--memory flash=SIZE,ram=SIZE`: the parser's units and every malformed spelling, through the
installed console script (one `QF914` line, exit 2, no traceback, nothing converted)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from qfix.targets.memory import MemoryBudget, format_bytes, parse_memory
from qfix.types import QfixError

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "fixtures" / "tiny_cnn_k3.keras"
QFIX = shutil.which("qfix", path=str(Path(sys.executable).parent))


def qfix_run(*args: str) -> subprocess.CompletedProcess:
    assert QFIX, f"no qfix console script next to {sys.executable}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("QFIX_DEBUG", None)
    return subprocess.run([QFIX, *map(str, args)], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize("spec,flash,ram", [
    ("flash=1MB,ram=256KB", 1 << 20, 256 << 10),
    ("ram=256KiB", None, 262144),  # KB and KiB are both 1024 bytes (datasheet usage)
    ("FLASH = 2 mib", 2 << 20, None),
    ("flash=1.5MB", 1572864, None),
    ("flash=4096", 4096, None),  # a bare number is bytes
    ("flash=100B, ram=0.5KB", 100, 512),
    ("ram=1.0009KB", None, 1024),  # rounded down to whole bytes
    ("flash=1GB,ram=2GiB", 1 << 30, 2 << 30),  # an Ethos-U65/U85 system's DRAM
])
def test_sizes(spec, flash, ram):
    assert parse_memory(spec) == MemoryBudget(flash, ram)


@pytest.mark.parametrize("n,text", [(0, "0 B"), (1023, "1023 B"), (1024, "1 KiB"), (1536, "1.5 KiB"),
                                    (1 << 20, "1 MiB"), (3 << 29, "1.5 GiB"), (None, "unknown")])
def test_format_bytes(n, text):
    assert format_bytes(n) == text


HOSTILE = [
    ("", "empty"),
    ("   ", "empty"),
    ("flash", "not KIND=SIZE"),
    ("flash=", "not KIND=SIZE"),
    ("=1MB", "not KIND=SIZE"),
    ("flash=1XB", "unknown unit"),
    ("flash=1 TB", "unknown unit"),
    ("rom=1MB", "unknown memory 'rom'"),
    ("flash=1MB,flash=2MB", "flash is given twice"),
    ("flash=0", "less than one byte"),
    ("ram=0.1B", "less than one byte"),
    ("flash=-1MB", "must be positive"),
    ("flash=1e3MB", "not KIND=SIZE"),
    ("flash=\u0661MB", "not KIND=SIZE"),  # Arabic-Indic one: Python's float() would take it
    ("flash=nanMB", "not KIND=SIZE"),
    ("flash=inf", "not KIND=SIZE"),
    ("flash=1MB,,ram=2KB", "empty item"),
    ("flash=1MB,", "empty item"),
    ("flash=1MB;ram=2KB", "not KIND=SIZE"),
    ("flash=999999999999999MB", "more than any device has"),
    ("flash=1" + "0" * 40 + "MB", "not KIND=SIZE"),
    ("\x1b[31mflash=1MB", "not KIND=SIZE"),
    ("flash=1MB\nram=2KB", "not KIND=SIZE"),
]


@pytest.mark.parametrize("spec,needle", HOSTILE)
def test_malformed_specs_are_one_qf914(spec, needle):
    with pytest.raises(QfixError) as err:
        parse_memory(spec)
    assert err.value.code == "QF914" and needle in err.value.message and "\n" not in err.value.message


@pytest.mark.parametrize("spec,needle", [HOSTILE[i] for i in (0, 5, 6, 8, 13, 21)])
def test_malformed_specs_through_the_console_script(spec, needle):
    proc = qfix_run(TINY, "--check", "--target", "tflm", "--memory", spec)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stdout + proc.stderr and proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("QF914 --memory") and needle in lines[0], proc.stderr
    assert "\x1b" not in proc.stderr  # control characters are escaped, not sent to the terminal


@pytest.mark.parametrize("args,needle", [
    (("--target", "edgetpu", "--memory", "ram=256KB"), "target edgetpu measures flash only"),
    (("--target", "int8", "--memory", "flash=1MB,ram=1MB"), "target int8 measures flash only"),
    (("--static", "--target", "tflm", "--memory", "ram=1MB"), "--static and --memory do not combine"),
])
def test_a_budget_the_run_cannot_check_is_refused_before_converting(args, needle):
    proc = qfix_run(TINY, "--check", *args)
    assert proc.returncode == 2 and needle in proc.stderr and len(proc.stderr.splitlines()) == 1, proc.stderr


def test_memory_is_for_models(tmp_path):
    script = tmp_path / "train.py"
    script.write_text("x = 1\n")
    proc = qfix_run(script, "--memory", "flash=1MB")
    assert proc.returncode == 2 and proc.stderr.startswith("QF914 --memory applies to .keras models"), proc.stderr
