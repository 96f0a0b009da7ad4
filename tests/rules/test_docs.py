"""One document per code: every rule code's (both sides in one) and every QF9xx error code's,
printed whole by `qfix rule CODE`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from qfix.errors import CODES
from qfix.rules import all_rules, model_rules, source_rules
from qfix.rules.docs import RULE_SECTIONS, doc_for

RULE_CODES = sorted({r.code for r in all_rules()})
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("code", RULE_CODES)
def test_every_rule_code_has_one_document_with_the_sections(code):
    doc = doc_for(code)
    (name,) = {r.name for r in all_rules() if r.code == code}  # one name per code, on every side
    assert doc.startswith(f"{code} {name}: "), doc.splitlines()[0]
    headers = re.findall(r"^## (.+)$", doc, re.M)
    assert tuple(headers) == RULE_SECTIONS, headers
    for section in re.split(r"^## .+$", doc, flags=re.M)[1:]:
        assert section.strip(), (code, "empty section")
    assert doc_for(code.lower()) == doc


@pytest.mark.parametrize("code", RULE_CODES)
def test_a_code_on_both_sides_documents_both_and_its_classes_point_to_it(code):
    sides = {r.SIDE for r in all_rules() if r.code == code}
    doc = doc_for(code)
    if {"model", "source"} <= sides:
        assert "Model side:" in doc and "Source side:" in doc, code
    for rule in all_rules():
        if rule.code == code:
            assert f"qfix rule {code}" in (rule.__doc__ or ""), rule.__name__


def test_rule_documents_name_target_properties_not_target_lists():
    """A list of target ids rots when a target is added; the Targets section says which
    property of a target's profile triggers the rule."""
    for code in RULE_CODES:
        targets = doc_for(code).split("## Targets", 1)[1]
        assert not re.search(r"\b(edgetpu|tflm|ethos-u|int8),", targets), (code, targets)


@pytest.mark.parametrize("code", sorted(CODES))
def test_every_error_code_has_a_document(code):
    doc = doc_for(code)
    assert doc.startswith(f"{code} {CODES[code]} ")
    assert re.findall(r"^## (.+)$", doc, re.M) == ["What causes it", "What to do"]


def test_unknown_code_has_no_document():
    assert doc_for("QF998") is None and doc_for("E501") is None


def qfix(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "qfix", *args], capture_output=True, text=True, env=env, timeout=120)


def test_qfix_rule_prints_both_sides_of_qf302():
    p = qfix("rule", "QF302")
    assert p.returncode == 0 and p.stderr == ""
    assert p.stdout.strip() == doc_for("QF302")
    assert "Model side:" in p.stdout and "Source side:" in p.stdout
    assert "```python" in p.stdout and "## Fix safety" in p.stdout
    assert {"QF302"} <= {r.code for r in model_rules()} & {r.code for r in source_rules()}


def test_qfix_rule_explains_an_error_code():
    p = qfix("rule", "qf908")
    assert p.returncode == 0 and p.stdout.strip() == doc_for("QF908")
    assert "--calibration" in p.stdout and "## What to do" in p.stdout


def test_qfix_rule_unknown_code_is_a_usage_error():
    p = qfix("rule", "QF399")
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.startswith("QF914 ") and len(p.stderr.strip().splitlines()) == 1
