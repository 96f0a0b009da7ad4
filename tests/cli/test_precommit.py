"""The repository as a pre-commit hook (`.pre-commit-hooks.yaml`), run by the real `pre-commit`
in a temporary git repository, as a user's `.pre-commit-config.yaml` names it: pre-commit
clones this checkout (its working tree, committed into a snapshot repository), builds a
virtualenv by pip-installing qfix from it (`language: python`, the core without TensorFlow)
and runs the hooks. The hook fails (exit 1) on a file with findings and passes on a clean one.

Slow: the first run installs qfix and its dependencies (half a minute of CPU, minutes on a
loaded machine); the environment is built once per session (PRE_COMMIT_HOME in a session
folder) and reused by every test here."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
PRE_COMMIT = shutil.which("pre-commit", path=str(Path(sys.executable).parent))
GIT_ENV = {"GIT_AUTHOR_NAME": "qfix tests", "GIT_AUTHOR_EMAIL": "tests@qfix.invalid",
           "GIT_COMMITTER_NAME": "qfix tests", "GIT_COMMITTER_EMAIL": "tests@qfix.invalid"}

FINDINGS = (
    "import tensorflow as tf\n"
    "y = tf.keras.layers.Lambda(lambda t: t * 2.0)(inputs)\n"
    "c = tf.lite.TFLiteConverter.from_keras_model(m)\n"
    "c.inference_input_type = tf.lite.constants.INT8\n"
    "c.optimizations = [tf.lite.Optimize.DEFAULT]\n"
    "c.representative_dataset = rep\n"
)


def git(*args: str, cwd: Path) -> str:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="session")
def hook_repo(tmp_path_factory) -> tuple[Path, str]:
    """This checkout's working tree (tracked and new files, as git would commit them) committed
    into a repository of its own: what a user's config points at, at a fixed revision."""
    repo = tmp_path_factory.mktemp("qfix-hook-repo")
    files = git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=ROOT).split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, repo / name)
    git("init", "-q", cwd=repo)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "snapshot", cwd=repo)
    return repo, git("rev-parse", "HEAD", cwd=repo).strip()


@pytest.fixture(scope="session")
def pre_commit_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pre-commit-home")


@pytest.fixture
def project(tmp_path: Path, hook_repo) -> Path:
    repo, rev = hook_repo
    (tmp_path / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {repo}\n    rev: {rev}\n    hooks:\n      - id: qfix\n      - id: qfix-keras\n")
    (tmp_path / "train.py").write_text(FINDINGS)
    (tmp_path / "clean.py").write_text("import tensorflow as tf\nx = tf.constant(1.0)\n")
    shutil.copy(FIXTURES / "two_input_k3.keras", tmp_path / "blocked.keras")  # QF101/QF102: blockers
    shutil.copy(FIXTURES / "tiny_cnn_k3.keras", tmp_path / "fine.keras")  # a QF301 warning only
    git("init", "-q", cwd=tmp_path)
    git("add", "-A", cwd=tmp_path)
    return tmp_path


def pre_commit(*args: str, cwd: Path, home: Path) -> subprocess.CompletedProcess:
    assert PRE_COMMIT, f"no pre-commit next to {sys.executable}"
    env = {**os.environ, **GIT_ENV, "PRE_COMMIT_HOME": str(home), "PRE_COMMIT_COLOR": "never"}
    for name in ("PYTHONPATH", "VIRTUAL_ENV", "QFIX_DEBUG"):  # the hook runs its own installed qfix
        env.pop(name, None)
    return subprocess.run([PRE_COMMIT, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)


def test_python_hook_fails_on_findings_and_passes_a_clean_file(project: Path, pre_commit_home: Path):
    bad = pre_commit("run", "qfix", "--files", "train.py", cwd=project, home=pre_commit_home)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "- exit code: 1" in bad.stdout
    assert "train.py:2:5: QF202 [*]" in bad.stdout and "train.py:4:26: QF204 [*]" in bad.stdout
    good = pre_commit("run", "qfix", "--files", "clean.py", cwd=project, home=pre_commit_home)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "Passed" in good.stdout
    assert (project / "train.py").read_text() == FINDINGS  # the hook reports, it does not fix


def test_keras_hook_runs_static_findings(project: Path, pre_commit_home: Path):
    bad = pre_commit("run", "qfix-keras", "--files", "blocked.keras", cwd=project, home=pre_commit_home)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "QF101" in bad.stdout and "QF102" in bad.stdout
    assert "not converted" not in bad.stdout  # --static: no conversion was attempted
    good = pre_commit("run", "qfix-keras", "--files", "fine.keras", cwd=project, home=pre_commit_home)
    assert good.returncode == 0, good.stdout + good.stderr


def test_hooks_pick_their_files(project: Path, pre_commit_home: Path):
    """`types: [python]` and `files: \\.keras$`: each hook gets only its own files."""
    run = pre_commit("run", "--all-files", "--verbose", cwd=project, home=pre_commit_home)
    assert run.returncode == 1
    py_part, keras_part = run.stdout.split("qfix (.keras models)", 1)
    # train.py and clean.py, no model; source runs default to the edgetpu target (no pyproject
    # here), so the converter's settings are judged for it too: QF402, QF403.
    assert "Found 4 issues in 1 file (of 2 checked)." in py_part
    assert "train.py:6:1: QF402 [*]" in py_part and "train.py:6:1: QF403" in py_part
    assert "== blocked.keras ==" in keras_part and "== fine.keras ==" in keras_part  # both models, in one run
    assert "train.py" not in keras_part


def test_python_hook_honours_the_configured_exclude(project: Path, pre_commit_home: Path):
    """pre-commit names every staged file; `[tool.qfix] exclude` still holds for them (the hook
    runs `qfix --force-exclude`, as Ruff's does). Review of issue 12."""
    (project / "experiments").mkdir()
    (project / "experiments" / "exp.py").write_text(FINDINGS)
    (project / "pyproject.toml").write_text('[tool.qfix]\nexclude = ["experiments/*"]\n')
    git("add", "-A", cwd=project)
    run = pre_commit("run", "qfix", "--files", "experiments/exp.py", cwd=project, home=pre_commit_home)
    assert run.returncode == 0, run.stdout + run.stderr
    run = pre_commit("run", "qfix", "--files", "experiments/exp.py", "train.py", cwd=project, home=pre_commit_home)
    assert run.returncode == 1 and "train.py:2:5: QF202" in run.stdout and "exp.py" not in run.stdout
