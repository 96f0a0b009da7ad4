"""The SARIF 2.1.0 report (`--format sarif`): one log, one run, for source files or models.

Terms and rules are the OASIS standard's (SARIF v2.1.0 plus errata 01; the schema is shipped
in tests/data/ and every test log is validated against it):

* `tool.driver.rules`: every rule code of the catalogue, plus the QF9xx codes a source run
  reports as findings (QF915, QF916) when they occur, each with its whole document as `help`
  (text and Markdown: what `qfix rule CODE` prints); `tool.driver.notifications`: the QF9xx
  error codes, which a run over several models reports per model in
  `invocations[0].toolExecutionNotifications` (the others still run).
* Source results: a physical location relative to `%SRCROOT%` (`originalUriBaseIds`: the
  working folder), a region in UTF-16 code units (`columnKind` says so; §3.30.2: lines and
  columns 1-based, the end column excluded), and `fixes` for a finding whose fix qfix can
  apply: that fix alone, as replacements of regions of the unmodified file (§3.57).
* Model results: the `.keras` file as a physical location (no region: a zip has no lines),
  and the model (`kind` "module") and its layer (`kind` "member") as logical locations
  (§3.33.7); the model's artifact carries the rest of qfix's JSON report (verification,
  outputs) in its property bag under `qfix`.
* `tool.driver.informationUri` and each rule's `helpUri`: the project and the catalogue's
  page of the code (`qfix.HOME`, `RuleDoc.url`), the pages the editor links to.
* `invocations[0]`: `exitCode` (qfix's exit status) and `executionSuccessful` (false when
  an error code ended the run or one model's part of it).
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence
from urllib.parse import quote

from qfix import HOME, __version__
from qfix.types import Applicability, QfixError, RuleDoc, Severity, Violation

if TYPE_CHECKING:  # the model front end must not load libcst
    from qfix.source.runner import FileResult, SourceRun

SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
SRCROOT = "SRCROOT"
LEVELS = {Severity.BLOCKER: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
# GitHub code scanning filters by tags; one per hundred of the codes (DESIGN.md, "Rule codes").
TAGS = {"QF1": "dtypes", "QF2": "model-structure", "QF3": "target-ops", "QF4": "quantization-recipe",
        "QF5": "qat", "QF9": "qfix"}


@dataclass
class ModelReport:
    """One model of a run, as the CLI hands it over: its findings and exit status, the rest of
    its JSON report (`summary`: verification, outputs, ...), or the error that ended its part."""

    path: Path
    findings: list[Violation]
    exit_code: int
    summary: dict[str, Any] | None = None
    error: QfixError | None = None


def source_log(run: SourceRun, catalogue: Sequence[RuleDoc], base: Path | None = None) -> dict[str, Any]:
    """The log of a source run: the findings the files hold now (after --write, those left)."""
    log = _Log(catalogue, base)
    for file in run.files:
        found = file.remaining if run.write else file.violations
        if found:
            artifact = log.source_artifact(file)
            for v in found:
                log.results.append(log.source_result(v, file, artifact))
    sarif_run = log.run(run.exit_code, text=True)
    sarif_run["properties"] = {"target": run.target, "filesChecked": run.checked, "filesWritten": run.written}
    return log.envelope(sarif_run)


def model_log(models: Sequence[ModelReport], catalogue: Sequence[RuleDoc], base: Path | None = None) -> dict[str, Any]:
    """The log of a run over one or more models; the exit status is the worst of theirs."""
    log = _Log(catalogue, base)
    for m in models:
        artifact = log.model_artifact(m)
        if m.error is not None:
            log.notify(m.error, artifact)
            continue
        for v in m.findings:
            log.results.append(log.model_result(v, m, artifact))
    return log.envelope(log.run(max((m.exit_code for m in models), default=0), text=False))


class _Log:
    """Builds one run: artifacts, logical locations and rules are indexed as results use them."""

    def __init__(self, catalogue: Sequence[RuleDoc], base: Path | None) -> None:
        self.catalogue = {d.code: d for d in catalogue}
        self.base = (base or Path.cwd()).resolve()
        self.rules = [d for d in catalogue if not d.error]
        self.rule_index = {d.code: i for i, d in enumerate(self.rules)}
        self.errors = [d for d in catalogue if d.error]
        self.artifacts: list[dict[str, Any]] = []
        self.logical: list[dict[str, Any]] = []
        self.logical_index: dict[str, int] = {}
        self.results: list[dict[str, Any]] = []
        self.notifications: list[dict[str, Any]] = []

    # -- locations -------------------------------------------------------------------------
    def location(self, path: str | Path, index: int | None = None) -> dict[str, Any]:
        """An artifactLocation: relative to %SRCROOT% below the working folder, else absolute."""
        p = Path(os.path.abspath(path))
        try:
            loc: dict[str, Any] = {"uri": quote(p.relative_to(self.base).as_posix()), "uriBaseId": SRCROOT}
        except ValueError:
            loc = {"uri": p.as_uri()}
        if index is not None:
            loc["index"] = index
        return loc

    def _artifact(self, path: str | Path, **fields: Any) -> int:
        self.artifacts.append({"location": self.location(path), "roles": ["analysisTarget"], **fields})
        return len(self.artifacts) - 1

    def source_artifact(self, file: FileResult) -> int:
        return self._artifact(file.path, encoding=_iana(file.encoding), sourceLanguage="python")

    def model_artifact(self, m: ModelReport) -> int:
        summary = {k: v for k, v in (m.summary or {}).items() if k != "findings"}
        return self._artifact(m.path, mimeType="application/zip", **({"properties": {"qfix": summary}} if summary else {}))

    def logical_location(self, name: str, qualified: str, kind: str, parent: int | None = None) -> dict[str, Any]:
        """A logicalLocation for a result, entered once in `run.logicalLocations`."""
        if qualified not in self.logical_index:
            entry: dict[str, Any] = {"name": name, "fullyQualifiedName": qualified, "kind": kind}
            if parent is not None:
                entry["parentIndex"] = parent
            self.logical_index[qualified] = len(self.logical)
            self.logical.append(entry)
        return {"name": name, "fullyQualifiedName": qualified, "kind": kind, "index": self.logical_index[qualified]}

    # -- results ---------------------------------------------------------------------------
    def rule(self, code: str) -> int:
        """The index of `code` in `tool.driver.rules`; a QF9xx code that a run reports as a
        finding (QF915, QF916) joins the rules when it first occurs."""
        if code not in self.rule_index:
            doc = self.catalogue.get(code) or RuleDoc(code, code, Severity.BLOCKER, code, code, code)
            self.rule_index[code] = len(self.rules)
            self.rules.append(doc)
        return self.rule_index[code]

    def _result(self, v: Violation, message: str) -> dict[str, Any]:
        out: dict[str, Any] = {"ruleId": v.code, "ruleIndex": self.rule(v.code), "level": LEVELS[v.severity],
                               "message": {"text": message}}
        if v.fix is not None:
            out["properties"] = {"fix": {"applicability": v.fix.applicability.value,
                                         "description": v.fix.description}, "applied": v.applied}
        return out

    def source_result(self, v: Violation, file: FileResult, artifact: int) -> dict[str, Any]:
        out = self._result(v, v.message)
        lines = _lines(file.text)
        physical: dict[str, Any] = {"artifactLocation": self.location(file.path, artifact)}
        if v.location.line:
            physical["region"] = _region(lines, v.location.line, v.location.col or 1,
                                         v.location.end_line, v.location.end_col)
        out["locations"] = [{"physicalLocation": physical}]
        if v.fix is not None and v.fix.text_edits:
            unsafe = v.fix.applicability is Applicability.UNSAFE
            out["fixes"] = [{
                "description": {"text": v.fix.description + (" (unsafe: it changes the numbers or the interface)"
                                                             if unsafe else "")},
                "artifactChanges": [{
                    "artifactLocation": self.location(file.path, artifact),
                    "replacements": [{"deletedRegion": _region(lines, e.line, e.col, e.end_line, e.end_col),
                                      "insertedContent": {"text": e.new_text}} for e in v.fix.text_edits],
                }],
            }]
        return out

    def display(self, path: str | Path) -> str:
        """A path as people read it: relative to the working folder below it, else absolute."""
        p = Path(os.path.abspath(path))
        try:
            return p.relative_to(self.base).as_posix()
        except ValueError:
            return p.as_posix()

    def model_result(self, v: Violation, m: ModelReport, artifact: int) -> dict[str, Any]:
        model = self.display(m.path)
        module = self.logical_location(m.path.name, model, "module")
        logical = module
        if v.location.layer:
            logical = self.logical_location(v.location.layer, f"{model}/{v.location.layer}", "member",
                                            parent=module["index"])
        out = self._result(v, v.message)  # the messages name their layer
        out["locations"] = [{"physicalLocation": {"artifactLocation": self.location(m.path, artifact)},
                             "logicalLocations": [logical]}]
        if v.location.pointer:
            out.setdefault("properties", {})["jsonPointer"] = v.location.pointer
        # A binary artifact has no line to hash: the code and the layer identify a finding
        # across runs (GitHub code scanning matches alerts on partialFingerprints).
        key = "\0".join((model, v.code, v.location.layer or ""))
        out["partialFingerprints"] = {"qfixModelFinding/v1": hashlib.sha256(key.encode()).hexdigest()[:32]}
        return out

    def notify(self, error: QfixError, artifact: int) -> None:
        """An error that ended one model's part of the run (the CLI also prints its line)."""
        codes = [d.code for d in self.errors]
        where = {**self.artifacts[artifact]["location"], "index": artifact}
        note: dict[str, Any] = {"level": "error", "message": {"text": f"{error.code} {error.message}"},
                                "locations": [{"physicalLocation": {"artifactLocation": where}}]}
        if error.code in codes:
            note["descriptor"] = {"id": error.code, "index": codes.index(error.code)}
        self.notifications.append(note)

    # -- the log ---------------------------------------------------------------------------
    def driver(self) -> dict[str, Any]:
        driver: dict[str, Any] = {"name": "qfix", "version": __version__, "semanticVersion": __version__}
        driver["informationUri"] = HOME
        driver["rules"] = [_descriptor(d) for d in self.rules]
        driver["notifications"] = [_descriptor(d) for d in self.errors]
        return driver

    def run(self, exit_code: int, *, text: bool) -> dict[str, Any]:
        invocation: dict[str, Any] = {"executionSuccessful": exit_code in (0, 1) and not self.notifications,
                                      "exitCode": exit_code}
        if self.notifications:
            invocation["toolExecutionNotifications"] = self.notifications
        run: dict[str, Any] = {
            "tool": {"driver": self.driver()},
            "invocations": [invocation],
            "originalUriBaseIds": {SRCROOT: {"uri": self.base.as_uri().rstrip("/") + "/",
                                             "description": {"text": "the working folder qfix ran in"}}},
            "artifacts": self.artifacts,
            "results": self.results,
        }
        if self.logical:
            run["logicalLocations"] = self.logical
        if text:  # §3.14.27: present for text artifacts, absent otherwise
            from qfix.source.text_edits import NEWLINES  # Python's line ends; SARIF's default lacks "\r"

            run["columnKind"] = "utf16CodeUnits"
            run["newlineSequences"] = list(NEWLINES)
        return run

    @staticmethod
    def envelope(run: dict[str, Any]) -> dict[str, Any]:
        return {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}


def _descriptor(d: RuleDoc) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": d.code,
        "name": d.name,
        "shortDescription": {"text": d.summary},
        "fullDescription": {"text": d.description},
        "help": {"text": d.doc, "markdown": d.doc},
        "defaultConfiguration": {"level": LEVELS[d.severity]},
        "properties": {"tags": [t for prefix, t in TAGS.items() if d.code.startswith(prefix)]},
    }
    if d.url:
        out["helpUri"] = d.url  # the catalogue's page, as the editor links it
    return out


def _iana(encoding: str) -> str:
    """Python's codec name as the IANA charset name SARIF's `encoding` wants (§3.24.9)."""
    name = codecs.lookup(encoding).name  # utf-8-sig -> utf-8-sig, latin-1 -> iso8859-1
    return {"utf-8": "UTF-8", "utf-8-sig": "UTF-8", "iso8859-1": "ISO-8859-1", "ascii": "US-ASCII"}.get(name, name)


def _lines(text: str | None) -> list[str] | None:
    if text is None:
        return None
    from qfix.source.text_edits import split_lines

    return split_lines(text)


def _utf16(lines: list[str] | None, line: int, col: int) -> int:
    """`col` (code points, 1-based) on `line` as UTF-16 code units (1-based). Without the text,
    or past its end, the column is kept as it is."""
    if lines is None or not 1 <= line <= len(lines):
        return max(col, 1)
    head = lines[line - 1][:max(col - 1, 0)]
    return len(head.encode("utf-16-le")) // 2 + 1 + max(col - 1 - len(head), 0)


def _region(lines: list[str] | None, line: int, col: int, end_line: int | None, end_col: int | None) -> dict[str, Any]:
    region = {"startLine": max(line, 1), "startColumn": _utf16(lines, line, col)}
    if end_line is not None and end_col is not None:
        region["endLine"] = max(end_line, region["startLine"])
        region["endColumn"] = _utf16(lines, end_line, end_col)
    return region


def dumps(log: dict[str, Any]) -> str:
    return json.dumps(log, indent=2, allow_nan=False, default=str)

