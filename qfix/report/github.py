"""GitHub Actions annotations (`--format github`): one workflow command per finding,

    ::error file=train.py,line=4,col=26,endLine=4,endColumn=51,title=QF204 nonexistent-quantize-api::message

`error` for a blocker, `warning` for a warning, `notice` for an info. Values are escaped as the
Actions toolkit's `issueCommand` does (actions/toolkit packages/core/src/command.ts): in the
message `%`, `\\r` and `\\n`; in a property also `:` and `,`. Columns are sent only for a
one-line range (the toolkit's AnnotationProperties: "cannot be sent when startLine and endLine
are different values"). A model finding names the `.keras` file and no line; its layer goes in
the title. Other control characters are escaped as in every text report (`printable`), so a
name from a file cannot drive the terminal a log is read in.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from qfix.errors import CODES
from qfix.report.diff import rel
from qfix.report.sanitize import printable
from qfix.types import QfixError, Severity, Violation

if TYPE_CHECKING:  # the model front end must not load libcst
    from qfix.source.runner import SourceRun

COMMANDS = {Severity.BLOCKER: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def escape_data(text: str) -> str:
    return printable(text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A"))


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(name: str, message: str, **properties: object) -> str:
    """`::name k=v,k=v::message`; properties that are None are left out."""
    props = ",".join(f"{k}={escape_property(str(v))}" for k, v in properties.items() if v is not None)
    return f"::{name}{' ' + props if props else ''}::{escape_data(message)}"


def _message(v: Violation) -> str:
    """The message, and the fix as a second line (`help:`, as in the text report)."""
    if v.fix is None or not v.fix.description:
        return v.message
    applied = ", applied to the written model" if v.applied else ""
    return f"{v.message}\nhelp: {v.fix.description} [{v.fix.applicability.value} fix{applied}]"


def source_annotations(run: SourceRun) -> list[str]:
    """One command per finding the files hold now (after --write: the ones left)."""
    out = []
    for v in run.shown:
        loc = v.location
        one_line = loc.end_line is None or loc.end_line == loc.line
        out.append(command(COMMANDS[v.severity], _message(v), file=Path(rel(loc.path or "-")).as_posix(),
                           line=loc.line or 1, endLine=loc.end_line,
                           col=max(loc.col or 1, 1) if one_line else None,
                           endColumn=loc.end_col if one_line else None,
                           title=f"{v.code} {v.name}"))
    return out


def model_annotations(path: Path, findings: Iterable[Violation]) -> list[str]:
    """One command per finding of a model; the file is the `.keras`, the layer in the title."""
    file = Path(rel(str(path))).as_posix()
    return [command(COMMANDS[v.severity], _message(v), file=file,
                    title=f"{v.code} {v.name}" + (f" (layer {v.location.layer})" if v.location.layer else ""))
            for v in findings]


def error_annotation(path: Path, error: QfixError) -> str:
    """The error that ended one model's part of a run over several (its line is on stderr too)."""
    return command("error", error.message, file=Path(rel(str(path))).as_posix(),
                   title=f"{error.code} {CODES.get(error.code, '')}".strip())
