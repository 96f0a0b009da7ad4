"""qfix's own error codes (QF9xx): bad input or usage. Each is one line and exit status 2."""

from __future__ import annotations

from qfix.types import QfixError

# code -> short name; documented in README.md ("Errors").
CODES = {
    "QF901": "not-a-keras-archive",
    "QF902": "unsafe-archive-member",
    "QF903": "archive-too-large",
    "QF904": "malformed-config",
    "QF905": "weights-missing-or-truncated",
    "QF906": "unsupported-model-format",
    "QF907": "input-not-found",
    "QF908": "bad-calibration-data",
    "QF909": "conversion-failed",
    "QF910": "unknown-target",
    "QF911": "custom-objects-import-failed",
    "QF912": "bad-target-profile",
    "QF913": "output-write-failed",
    "QF914": "bad-usage",
    "QF917": "untrusted-reference",
    # reported as findings by source runs, which go on with the next file
    "QF915": "source-parse-error",
    "QF916": "fix-failed",
}


def error(code: str, message: str) -> QfixError:
    assert code in CODES, code
    return QfixError(code, message)
