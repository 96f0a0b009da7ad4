"""The hostile corpus (tests/hostile/corpus.py) through the installed console script: every
input gets exit 1 or 2 with at most one error line and no traceback, within a time limit; no
module named by the file is imported; nothing from outside the archive reaches any output; the
input is unchanged; no terminal escape code is printed. Cases that reach conversion need TF."""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hostile"))
import corpus  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
QFIX = shutil.which("qfix", path=str(Path(sys.executable).parent)) or "qfix"
# Built at collection (parametrize needs the cases), in a folder removed when the process ends.
_FOLDER = Path(tempfile.mkdtemp(prefix="qfix-hostile-"))
atexit.register(shutil.rmtree, _FOLDER, ignore_errors=True)
CASES = corpus.build(_FOLDER)


def run(case: corpus.Case, out_dir: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), case.env.get("QFIX_TEST_EXTRA_PATH")])))
    args = [QFIX, str(case.path), *case.args]
    if case.path.suffix == ".keras" and not {"--static", "--check", "--diff"} & set(case.args):
        args += ["--out-dir", str(out_dir)]
    return subprocess.run(args, capture_output=True, env=env, cwd=out_dir, timeout=300)


def digest(p: Path) -> str | None:
    return hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() and not p.is_symlink() else None


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name, marks=[pytest.mark.tf] if c.needs_tf else [])
                                  for c in CASES])
def test_hostile_input(case: corpus.Case, tmp_path: Path) -> None:
    before = digest(case.path)
    proc = run(case, tmp_path)
    out, err = proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")
    assert proc.returncode in case.exit_codes, (proc.returncode, out[-2000:], err[-2000:])
    assert "Traceback" not in out + err
    assert "\x1b" not in out + err
    if proc.returncode == 2:
        lines = [l for l in err.splitlines() if l.strip()]
        assert len(lines) == 1 and lines[0].startswith(case.codes), err
    elif case.codes != ("",):
        assert any(code in out for code in case.codes), out
    marker_dir = case.env.get("QFIX_TEST_EXTRA_PATH")
    if marker_dir:
        assert not (Path(marker_dir) / corpus.MARKER_FILE).exists(), "qfix imported a module named by the model file"
    if case.secret:
        assert case.secret not in proc.stdout + proc.stderr
        for written in tmp_path.rglob("*"):
            if written.is_file():
                assert case.secret not in written.read_bytes(), written
    assert digest(case.path) == before


def test_every_kind_has_two_members():
    kinds: dict[str, set[str]] = {}
    for c in CASES:
        kinds.setdefault(c.kind.split()[0], set()).add(c.path.name)
    assert {k for k, files in kinds.items() if len(files) < 2} == set(), kinds
