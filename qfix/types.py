"""One set of result types for every front end (model files, source files, the editor)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


class Applicability(str, Enum):
    """How far qfix may go with a fix (Ruff's fix-safety levels)."""

    SAFE = "safe"  # same float outputs (max abs diff <= 1e-5), weights load
    UNSAFE = "unsafe"  # valid, but changes numbers or the interface; needs --unsafe-fixes
    DISPLAY_ONLY = "display-only"  # a suggestion qfix cannot apply


class Severity(str, Enum):
    BLOCKER = "blocker"  # stops quantization or placement on the target
    WARNING = "warning"  # runs, but slower, less accurate or fragile
    INFO = "info"


@dataclass(frozen=True)
class Location:
    """Where a finding is: a source range, or a model layer (+ JSON pointer into config.json)."""

    path: str | None = None
    line: int | None = None
    col: int | None = None
    end_line: int | None = None
    end_col: int | None = None
    layer: str | None = None
    pointer: str | None = None


@dataclass(frozen=True)
class TextEdit:
    """Replace the text from (`line`, `col`) up to, not including, (`end_line`, `end_col`) by
    `new_text`. Lines and columns are 1-based; columns count code points (as libcst's positions
    and `Location` do); an empty range is an insertion point. Positions are in the text the
    finding refers to."""

    line: int
    col: int
    end_line: int
    end_col: int
    new_text: str


@dataclass
class Fix:
    """A fix: what it does and how safe it is. `edits` are front-end specific
    (graph edits for models, libcst edits for source) and are not serialised. `text_edits`:
    a source fix as plain text replacements, when the run asked for them (SARIF's `fixes`)."""

    applicability: Applicability
    description: str
    edits: list[Any] = field(default_factory=list)
    text_edits: list[TextEdit] = field(default_factory=list)


@dataclass
class Violation:
    code: str  # "QF101"
    name: str  # "mixed-dtype-merge"
    message: str
    location: Location = field(default_factory=Location)
    severity: Severity = Severity.BLOCKER
    fix: Fix | None = None
    applied: bool = False
    # The TFLite ops the finding is about: the ops a static rule predicts the target lacks
    # (QF302, QF303), the ops the converted model keeps off the target (QF304). Its cause, for
    # telling whether a fix removed it and whether a converted-model finding proves it.
    ops: tuple[str, ...] = ()
    # About the numbers the model computes, not where its ops run (a truncated integer mean that
    # converts and runs on the target): a placement on the target does not disprove it.
    numeric: bool = False

    def to_json(self) -> dict[str, Any]:
        loc = {k: v for k, v in asdict(self.location).items() if v is not None}
        return {
            "code": self.code,
            "name": self.name,
            "severity": self.severity.value,
            "layer": self.location.layer,
            "location": loc,
            "message": self.message,
            "fix": None
            if self.fix is None
            else {"applicability": self.fix.applicability.value, "description": self.fix.description},
            "applied": self.applied,
        }


@dataclass(frozen=True)
class RuleDoc:
    """One code of the catalogue as reports describe it (`qfix.rules.docs.catalogue`).
    `summary`: the document's first line without its `QFxxx name: ` head; `description`: its
    first section (What it does, or for an error code What causes it); `doc`: the whole
    Markdown document (`qfix rule CODE`); `error`: a QF9xx code; `url`: its page in the
    catalogue (`qfix.rules.docs.doc_url`)."""

    code: str
    name: str
    severity: Severity
    summary: str
    description: str
    doc: str
    error: bool = False
    url: str = ""


class QfixError(Exception):
    """Bad input or usage: reported as one line `QF9xx message`, exit status 2, no traceback."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message
