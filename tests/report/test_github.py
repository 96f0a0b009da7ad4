"""`--format github`: one GitHub Actions workflow command per finding, escaped as the Actions
toolkit escapes them (actions/toolkit packages/core/src/command.ts), read back here as the
runner reads them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from qfix.report.github import command, escape_data, escape_property

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"

SOURCE = (
    "import tensorflow as tf\n"
    "y = tf.keras.layers.Lambda(\n"
    "    lambda t: t * 2.0)(inputs)\n"
    "c = tf.lite.TFLiteConverter.from_keras_model(m)\n"
    "c.inference_input_type = tf.lite.constants.INT8\n"
    "c.optimizations = [tf.lite.Optimize.DEFAULT]\n"
    "c.representative_dataset = rep\n"
)


def qfix(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("QFIX_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "qfix", *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=600)


def unescape(text: str, prop: bool) -> str:
    pairs = [("%0D", "\r"), ("%0A", "\n")] + ([("%3A", ":"), ("%2C", ",")] if prop else []) + [("%25", "%")]
    for k, v in pairs:
        text = text.replace(k, v)
    return text


def parse(line: str) -> tuple[str, dict[str, str], str]:
    """A workflow command as the runner splits it: `::name k=v,k=v::message`."""
    assert line.startswith("::")
    head, sep, message = line[2:].partition("::")
    assert sep, line
    name, _, props = head.partition(" ")
    properties = {}
    for item in filter(None, props.split(",")):
        key, eq, value = item.partition("=")
        assert eq, item
        properties[key] = unescape(value, prop=True)
    return name, properties, unescape(message, prop=False)


def test_escaping_round_trips_through_the_runner_split():
    title = "QF1, a: b %41 \r\n end"
    message = "50% of it:: here\nand, there\r"
    line = command("warning", message, file="a,b:c.py", line=3, title=title, col=None)
    assert "\n" not in line and "\r" not in line
    name, props, msg = parse(line)
    assert name == "warning" and msg == message
    assert props == {"file": "a,b:c.py", "line": "3", "title": title}  # None values are left out
    assert escape_property("a:b,c%") == "a%3Ab%2Cc%25" and escape_data("a:b,c%\n") == "a:b,c%25%0A"


def test_terminal_sequences_from_a_file_are_escaped():
    line = command("error", "layer \x1b]0;pwned\x07 x", file="m.keras", title="QF1 \x1b[2J")
    assert "\x1b" not in line and "\x07" not in line
    assert "\\x1b]0;pwned\\x07" in line


def test_source_annotations(tmp_path: Path):
    (tmp_path / "train.py").write_text(SOURCE)
    proc = qfix("train.py", "--format", "github", "--target", "none", cwd=tmp_path)  # the target-free rules
    assert proc.returncode == 1 and proc.stderr == ""
    report = json.loads(qfix("train.py", "--format", "json", "--target", "none", cwd=tmp_path).stdout)
    lines = proc.stdout.splitlines()
    assert len(lines) == len(report["findings"]) == 2
    for line, f in zip(lines, report["findings"]):
        name, props, message = parse(line)
        loc = f["location"]
        assert name == "error"  # both are blockers
        assert props["file"] == "train.py" and props["title"] == f"{f['code']} {f['name']}"
        assert int(props["line"]) == loc["line"] and int(props["endLine"]) == loc["end_line"]
        if loc["line"] == loc["end_line"]:
            assert (int(props["col"]), int(props["endColumn"])) == (loc["col"], loc["end_col"])
        else:  # the toolkit: columns cannot be sent for a range over several lines
            assert "col" not in props and "endColumn" not in props
        first, help_line = message.split("\n")
        assert first == f["message"] and help_line == f"help: {f['fix']['description']} [safe fix]"
    assert {parse(l)[2].split("\n")[0] for l in lines} == {f["message"] for f in report["findings"]}
    assert parse(lines[0])[1]["endLine"] == "3"  # the Lambda spans two lines


def test_model_annotations_name_the_file_and_layer(tmp_path: Path):
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(FIXTURES / "two_input_k3.keras", models / "a.keras")
    (models / "b.keras").write_bytes(b"junk" * 40)
    proc = qfix("models", "--static", "--format", "github", cwd=tmp_path)
    assert proc.returncode == 2
    (err,) = proc.stderr.splitlines()
    assert err.startswith("QF901 ")
    parsed = [parse(l) for l in proc.stdout.splitlines()]
    report = json.loads(qfix("models/a.keras", "--static", "--format", "json", cwd=tmp_path).stdout)
    found = [p for p in parsed if p[1]["file"] == "models/a.keras"]
    assert len(found) == len(report["findings"])
    for (name, props, message), f in zip(found, report["findings"]):
        assert name == {"blocker": "error", "warning": "warning"}[f["severity"]]
        assert "line" not in props
        assert props["title"] == f"{f['code']} {f['name']} (layer {f['layer']})"
        assert message.split("\n")[0] == f["message"]
    assert {"error", "warning"} <= {p[0] for p in found}
    (bad,) = [p for p in parsed if p[1]["file"] == "models/b.keras"]
    assert bad[0] == "error" and bad[1]["title"] == "QF901 not-a-keras-archive" and err == f"QF901 {bad[2]}"


def test_clean_file_prints_nothing(tmp_path: Path):
    (tmp_path / "ok.py").write_text("x = 1\n")
    proc = qfix("ok.py", "--format", "github", cwd=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
