"""`--format sarif`: one SARIF 2.1.0 log per run, valid against the official schema (both
dialects shipped in tests/data/, see its README), for source files and for models. Through the
real CLI (`python -m qfix` with this checkout on the path, or the console script for the
hostile cases); the fixes it carries are applied here as a SARIF consumer would (UTF-16
columns, replacements in the unmodified file) and compared with what `--write` writes."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from jsonschema.validators import validator_for

from qfix.errors import CODES
from qfix.rules import all_rules
from qfix.rules.docs import doc_for

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
FIXTURES = ROOT / "fixtures"
SCHEMAS = [DATA / "sarif-schema-2.1.0.json", DATA / "sarif-schema-2.1.0.draft-07.json"]
QFIX = shutil.which("qfix", path=str(Path(sys.executable).parent))

TRAIN = (
    "import tensorflow as tf\n"
    'x = "🐍🐍"; y = tf.keras.layers.Lambda(lambda t: t * 2.0)(inputs)\n'  # surrogate pairs before the finding
    "c = tf.lite.TFLiteConverter.from_keras_model(m)\n"
    "c.inference_input_type = tf.lite.constants.INT8  # é\n"
    "c.optimizations = [tf.lite.Optimize.DEFAULT]\n"
    "c.representative_dataset = rep\n"
)
QAT = "import tensorflow_model_optimization as tfmot\r\nimport tensorflow.keras as K\r\nm = K.Sequential()\r\n"


def qfix(*args: str, cwd: Path, script: bool = False) -> subprocess.CompletedProcess:
    """`python -m qfix` (or, with `script`, the installed console script) running this checkout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("QFIX_DEBUG", None)
    cmd = [QFIX] if script else [sys.executable, "-m", "qfix"]
    assert cmd[0], f"no qfix console script next to {sys.executable}"
    return subprocess.run([*cmd, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


def validate(log: dict) -> None:
    """Valid against both shipped schemas, each with the validator its `$schema` names."""
    for path in SCHEMAS:
        schema = json.loads(path.read_text())
        cls = validator_for(schema)
        cls.check_schema(schema)
        errors = sorted(cls(schema, format_checker=cls.FORMAT_CHECKER).iter_errors(log), key=str)
        assert not errors, f"{path.name}: {errors[0].json_path}: {errors[0].message}"
    # the schemas' "uri" formats are not checked without an extra package: check ours here
    run = log["runs"][0]
    uris = [a["location"]["uri"] for a in run["artifacts"]] + [run["originalUriBaseIds"]["SRCROOT"]["uri"]]
    for uri in uris:
        assert uri and not any(c.isspace() for c in uri) and "\\" not in uri, uri
    assert run["originalUriBaseIds"]["SRCROOT"]["uri"].startswith("file:///")
    assert run["originalUriBaseIds"]["SRCROOT"]["uri"].endswith("/")  # §3.14.14


def sarif(*args: str, cwd: Path) -> tuple[subprocess.CompletedProcess, dict]:
    proc = qfix(*args, "--format", "sarif", cwd=cwd)
    assert "Traceback" not in proc.stderr, proc.stderr
    log = json.loads(proc.stdout)
    validate(log)
    assert log["runs"][0]["invocations"][0]["exitCode"] == proc.returncode
    return proc, log


# -- a SARIF consumer: regions in UTF-16 code units over the log's newline sequences ----------
def lines_of(text: str, newlines: list[str]) -> list[str]:
    out, start, i = [], 0, 0
    while i < len(text):
        nl = next((n for n in sorted(newlines, key=len, reverse=True) if text.startswith(n, i)), None)
        if nl:
            out.append(text[start:i + len(nl)])
            i = start = i + len(nl)
        else:
            i += 1
    if start < len(text):
        out.append(text[start:])
    return out


def offset(lines: list[str], line: int, col16: int) -> int:
    """The character offset of (line, UTF-16 column), both 1-based."""
    base = sum(len(x) for x in lines[:line - 1])
    text = lines[line - 1] if line <= len(lines) else ""
    units, i = 1, 0
    while units < col16:
        units += 2 if ord(text[i]) > 0xFFFF else 1
        i += 1
    assert units == col16, "a column inside a surrogate pair"
    return base + i


def region_text(text: str, newlines: list[str], region: dict) -> str:
    lines = lines_of(text, newlines)
    begin = offset(lines, region["startLine"], region.get("startColumn", 1))
    end = offset(lines, region.get("endLine", region["startLine"]), region["endColumn"])
    return text[begin:end]


def apply_fix(text: str, newlines: list[str], fix: dict) -> str:
    """§3.57: replacements in order, each region located in the unmodified text."""
    (change,) = fix["artifactChanges"]
    lines = lines_of(text, newlines)
    spans = []
    for r in change["replacements"]:
        d = r["deletedRegion"]
        spans.append((offset(lines, d["startLine"], d["startColumn"]),
                      offset(lines, d.get("endLine", d["startLine"]), d["endColumn"]),
                      r.get("insertedContent", {}).get("text", "")))
    for begin, end, new in sorted(spans, reverse=True):
        text = text[:begin] + new + text[end:]
    return text


def make_tree(root: Path) -> Path:
    (root / "src").mkdir()
    (root / "src" / "train.py").write_text(TRAIN, encoding="utf-8")
    (root / "src" / "qat.py").write_bytes(QAT.encode())
    (root / "src" / "clean.py").write_text("x = 1\n")
    (root / "src" / "broken.py").write_text("def f(:\n")
    return root


@pytest.fixture(scope="module")
def source_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess, dict]:
    """One SARIF run over the tree (read only by the tests that share it)."""
    tree = make_tree(tmp_path_factory.mktemp("tree"))
    proc, log = sarif("src", "--target", "none", cwd=tree)  # the target-free rules
    return tree, proc, log


def test_source_log_rules_results_and_utf16_regions(source_run):
    tree, proc, log = source_run
    assert proc.returncode == 1 and proc.stderr == ""
    (run,) = log["runs"]
    assert log["version"] == "2.1.0"
    driver = run["tool"]["driver"]
    assert driver["name"] == "qfix" and driver["version"]
    rules = driver["rules"]
    for r in rules:  # every rule carries its whole document, as `qfix rule CODE` prints it
        assert r["help"]["markdown"] == r["help"]["text"] == doc_for(r["id"])
        assert r["shortDescription"]["text"] and r["fullDescription"]["text"]
        assert r["defaultConfiguration"]["level"] in ("error", "warning", "note")
        # the catalogue's page, the editor's link too (a file of this repository's rules/)
        assert r["helpUri"].endswith(f"/rules/{r['id']}.md") and (ROOT / "rules" / f"{r['id']}.md").exists()
    assert driver["informationUri"].startswith("https://")
    # the whole catalogue: every rule code, and QF915 as this run reports it; the QF9xx codes
    # as notification descriptors
    assert [r["id"] for r in rules] == sorted({r.code for r in all_rules()}) + ["QF915"]
    assert [n["id"] for n in driver["notifications"]] == sorted(CODES)
    assert rules[-1]["name"] == "source-parse-error"
    assert run["columnKind"] == "utf16CodeUnits"

    found = {(r["ruleId"], r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]) for r in run["results"]}
    assert found == {("QF202", "src/train.py"), ("QF204", "src/train.py"), ("QF501", "src/qat.py"),
                     ("QF915", "src/broken.py")}
    for r in run["results"]:
        assert rules[r["ruleIndex"]]["id"] == r["ruleId"]
        loc = r["locations"][0]["physicalLocation"]["artifactLocation"]
        assert loc["uriBaseId"] == "SRCROOT"
        assert run["artifacts"][loc["index"]]["location"]["uri"] == loc["uri"]
    assert {a["location"]["uri"] for a in run["artifacts"]} == {"src/train.py", "src/qat.py", "src/broken.py"}

    # The same findings as the JSON report, located in code points there, in UTF-16 here.
    report = json.loads(qfix("src", "--format", "json", "--target", "none", cwd=tree).stdout)
    for f in report["findings"]:
        if f["code"] == "QF915":
            continue
        (r,) = [r for r in run["results"] if r["ruleId"] == f["code"]]
        path = tree / f["location"]["path"]
        text = path.read_bytes().decode()
        region = r["locations"][0]["physicalLocation"]["region"]
        lines = text.splitlines(keepends=True)
        loc = f["location"]
        expected = "".join(lines[loc["line"] - 1:loc["end_line"]])
        expected = expected[loc["col"] - 1:len(expected) - len(lines[loc["end_line"] - 1]) + loc["end_col"] - 1]
        assert region_text(text, run["newlineSequences"], region) == expected, f["code"]
        assert r["message"]["text"] == f["message"]
    (lam,) = [r for r in run["results"] if r["ruleId"] == "QF202"]
    region = lam["locations"][0]["physicalLocation"]["region"]
    assert region["startColumn"] == 15 + 2  # two snakes before it: two surrogate pairs


def test_source_fixes_are_what_write_writes(source_run, tmp_path: Path):
    """Each result's fix, applied to the file as a consumer applies SARIF replacements, gives
    the text `qfix FILE --write --select CODE` writes (each code has one finding here)."""
    from qfix.cli.source import run as run_source

    tree, proc, log = source_run
    (run,) = log["runs"]
    fixed = [r for r in run["results"] if r.get("fixes")]
    assert {r["ruleId"] for r in fixed} == {"QF202", "QF204", "QF501"}  # QF915: no fix
    for r in fixed:
        uri = r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        original = (tree / uri).read_bytes().decode()
        (fix,) = r["fixes"]
        assert fix["artifactChanges"][0]["artifactLocation"]["uri"] == uri
        got = apply_fix(original, run["newlineSequences"], fix)
        scratch = tmp_path / r["ruleId"] / "f.py"
        scratch.parent.mkdir()
        scratch.write_bytes(original.encode())
        unsafe = r["properties"]["fix"]["applicability"] == "unsafe"
        run_source([scratch], write=True, unsafe_fixes=unsafe, diff=False, select=[r["ruleId"]], ignore=None,
                   target="none", output_format="concise", console=None, jobs=1)
        assert got == scratch.read_bytes().decode(), r["ruleId"]
        assert got != original
    (qat,) = [r for r in fixed if r["ruleId"] == "QF501"]
    assert "unsafe" in qat["fixes"][0]["description"]["text"]
    assert len(qat["fixes"][0]["artifactChanges"][0]["replacements"]) == 2  # the import, and os.environ on top
    assert (tree / "src" / "train.py").read_text(encoding="utf-8") == TRAIN  # a report writes nothing


def test_source_log_after_write_holds_what_is_left(tmp_path: Path):
    tree = make_tree(tmp_path)
    proc, log = sarif("src", "--write", "--target", "none", cwd=tree)
    (run,) = log["runs"]
    assert proc.returncode == 1  # QF501 (unsafe) and the parse error remain
    assert sorted(r["ruleId"] for r in run["results"]) == ["QF501", "QF915"]
    assert run["properties"]["filesWritten"] == 1
    (qat,) = [r for r in run["results"] if r["ruleId"] == "QF501"]
    text = (tree / "src" / "qat.py").read_bytes().decode()
    assert apply_fix(text, run["newlineSequences"], qat["fixes"][0]).startswith('import os\r\nos.environ["TF_USE_LEGACY_KERAS"] = "1"\r\n')


def test_clean_source_log(tmp_path: Path):
    tree = make_tree(tmp_path)
    proc, log = sarif("src/clean.py", cwd=tree)
    assert proc.returncode == 0 and log["runs"][0]["results"] == []
    assert log["runs"][0]["invocations"][0]["executionSuccessful"] is True


def test_model_log_static(tmp_path: Path):
    shutil.copy(FIXTURES / "two_input_k3.keras", tmp_path / "two input.keras")  # a space: %20 in the URI
    proc, log = sarif("two input.keras", "--static", cwd=tmp_path)
    assert proc.returncode == 1
    (run,) = log["runs"]
    assert "columnKind" not in run  # §3.14.27: no text artifacts
    (artifact,) = run["artifacts"]
    assert artifact["location"] == {"uri": "two%20input.keras", "uriBaseId": "SRCROOT"}
    assert artifact["properties"]["qfix"]["target"] == "edgetpu"
    report = json.loads(qfix("two input.keras", "--static", "--format", "json", cwd=tmp_path).stdout)
    assert [(r["ruleId"], r["message"]["text"]) for r in run["results"]] == \
        [(f["code"], f["message"]) for f in report["findings"]]
    logical = run["logicalLocations"]
    assert logical[0] == {"name": "two input.keras", "fullyQualifiedName": "two input.keras", "kind": "module"}
    for r, f in zip(run["results"], report["findings"]):
        (loc,) = r["locations"]
        assert loc["physicalLocation"]["artifactLocation"]["index"] == 0 and "region" not in loc["physicalLocation"]
        (ll,) = loc["logicalLocations"]
        assert ll["name"] == f["layer"] and ll["kind"] == "member"
        assert logical[ll["index"]]["parentIndex"] == 0 and logical[ll["index"]]["name"] == f["layer"]
        assert r["properties"]["jsonPointer"] == f["location"]["pointer"]
        assert r["level"] == {"blocker": "error", "warning": "warning"}[f["severity"]]
    prints = [r["partialFingerprints"]["qfixModelFinding/v1"] for r in run["results"]]
    assert len(set(prints)) == len(prints)


def test_several_models_one_log_an_error_is_a_notification(tmp_path: Path):
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(FIXTURES / "tiny_cnn_k3.keras", models / "a.keras")
    shutil.copy(FIXTURES / "nested_k3.keras", models / "b.keras")
    (models / "c.keras").write_bytes(b"not a zip" * 20)
    proc, log = sarif("models", "--static", cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("QF901 ")
    (run,) = log["runs"]
    assert [a["location"]["uri"] for a in run["artifacts"]] == ["models/a.keras", "models/b.keras", "models/c.keras"]
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in run["results"]}
    assert uris == {"models/a.keras", "models/b.keras"}
    (invocation,) = run["invocations"]
    assert invocation["executionSuccessful"] is False and invocation["exitCode"] == 2
    (note,) = invocation["toolExecutionNotifications"]
    assert note["descriptor"]["id"] == "QF901" and note["message"]["text"] == lines[0]
    assert run["tool"]["driver"]["notifications"][note["descriptor"]["index"]]["id"] == "QF901"
    assert note["locations"][0]["physicalLocation"]["artifactLocation"]["index"] == 2


def test_schema_validation_can_fail(source_run):
    """The validator is live: a region at column 0 (columns are 1-based) is rejected."""
    _, _, log = source_run
    broken = copy.deepcopy(log)
    broken["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startColumn"] = 0
    with pytest.raises(AssertionError, match="startColumn|minimum"):
        validate(broken)


@pytest.mark.parametrize("fmt,args,code", [
    ("sarif", ["missing.py"], "QF907"),
    ("sarif", ["model.keras", "--static"], "QF901"),
    ("sarif", ["model.keras", "--static", "--target", "nosuchchip"], "QF910"),
    ("sarif", ["src", "--diff"], "QF914"),
    ("sarif", ["src", "--write", "--static"], "QF914"),
    ("sarif", ["rulez"], "QF914"),
    ("github", ["missing.py"], "QF907"),
    ("github", ["model.keras", "--static"], "QF901"),
    ("github", ["model.keras", "--diff"], "QF914"),
])
def test_bad_input_is_one_line_not_half_a_report(tmp_path: Path, fmt, args, code):
    (tmp_path / "model.keras").write_bytes(b"junk" * 40)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("x = 1\n")
    proc = qfix(*args, "--format", fmt, cwd=tmp_path, script=True)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(code + " "), proc.stderr


def test_unknown_format_names_the_new_ones(tmp_path: Path):
    proc = qfix("x.py", "--format", "sarf", cwd=tmp_path, script=True)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == "QF914 --format must be text, json, concise, sarif or github, not 'sarf'"


@pytest.mark.tf
def test_model_logs_of_check_and_main_job(tmp_path: Path):
    """`--check` and the main job (TensorFlow in the worker): the verification and the outputs
    travel in the artifact's property bag, the exit status in the invocation; the main job's
    applied fixes say so."""
    shutil.copy(FIXTURES / "tiny_cnn_k3.keras", tmp_path / "tiny.keras")
    proc, log = sarif("tiny.keras", "--check", "--samples", "4", cwd=tmp_path)
    (run,) = log["runs"]
    summary = run["artifacts"][0]["properties"]["qfix"]
    assert summary["verification"]["converted"] is not False and summary["verification"]["ops_total"] > 0
    assert summary["exit_code"] == proc.returncode == run["invocations"][0]["exitCode"]
    assert "findings" not in summary and summary["outputs"] == {"model": None, "tflite": None}

    proc, log = sarif("tiny.keras", "--samples", "4", "--out-dir", "out", cwd=tmp_path)
    (run,) = log["runs"]
    summary = run["artifacts"][0]["properties"]["qfix"]
    assert summary["outputs"]["tflite"] and Path(tmp_path / summary["outputs"]["tflite"]).is_file()
    assert "fixes" in summary and "before" in summary
    assert summary["exit_code"] == proc.returncode == run["invocations"][0]["exitCode"]
    assert any(r["properties"].get("applied") for r in run["results"])  # QF301's batch fix
