"""A `.keras` model's static findings as diagnostics: what `qfix MODEL.keras --static` reports
(`qfix.jobs.check.load`: the archive read as data, the config graph, the model rules; no
TensorFlow, no code from the file), read from the file on disk.

The server runs `check_model` in a thread of its own with a time limit (`QFIX_LSP_MODEL_TIMEOUT`
seconds, default 30): a huge or hostile archive never holds up the editor. Errors about the file
(QF901 not a .keras archive, QF903 too large, QF904 malformed config, ...) are one diagnostic.
"""

from __future__ import annotations

import os
from pathlib import Path

from lsprotocol import types as lsp

from qfix.lsp.diagnostics import SOURCE, START, error_diagnostic, model_diagnostic
from qfix.lsp.settings import Overrides, resolve
from qfix.source.runner import SKIP_DIRS
from qfix.types import QfixError

SUFFIX = ".keras"
TIMEOUT = 30.0  # seconds for one model's static check
MAX_MODELS = 100  # a workspace's models checked at start-up, at most
MAX_ENTRIES = 50_000  # files and folders looked at to find them, at most


def timeout() -> float:
    """`QFIX_LSP_MODEL_TIMEOUT` (seconds, > 0), else `TIMEOUT`."""
    try:
        value = float(os.environ.get("QFIX_LSP_MODEL_TIMEOUT", TIMEOUT))
    except ValueError:
        return TIMEOUT
    return value if value > 0 else TIMEOUT


def is_model(path: str | Path) -> bool:
    return str(path).lower().endswith(SUFFIX)


def check_model(path: Path, overrides: Overrides, root: Path | None = None) -> list[lsp.Diagnostic]:
    """The diagnostics of the model at `path` (none when `[tool.qfix] exclude` matches it)."""
    from qfix.jobs.check import Options, load  # the model side loads only when a model is seen

    settings = resolve(path, overrides, root, model=True)
    if settings.error is not None:
        return [error_diagnostic(settings.error.code, settings.error.message)]
    if settings.excluded:
        return []
    opts = Options(target=settings.target or "edgetpu", select=settings.select, ignore=settings.ignore or None,
                   static_only=True)
    try:
        findings = load(path, opts)[3]
    except QfixError as exc:
        return [error_diagnostic(exc.code, exc.message)]
    except Exception as exc:  # noqa: BLE001 - a model must not stop the server
        return [error_diagnostic("QF999", f"internal error: {type(exc).__name__}: {exc} (a bug in qfix)")]
    return [model_diagnostic(v) for v in findings]


def timed_out(seconds: float) -> lsp.Diagnostic:
    """What the file shows when its check ran out of time (no code: no rule found anything)."""
    return lsp.Diagnostic(range=START, severity=lsp.DiagnosticSeverity.Warning, source=SOURCE,
                          message=f"qfix: the static check did not finish within {seconds:g} s; run "
                                  "`qfix MODEL.keras --static` in a terminal")


def find_models(roots: list[Path]) -> list[Path]:
    """The `.keras` files under `roots` (sorted), skipping the folders a source run skips
    (VCS, virtual environments, caches, builds), at most MAX_MODELS of them."""
    found: list[Path] = []
    seen = 0
    for root in roots:
        for folder, dirs, files in os.walk(root):
            seen += len(dirs) + len(files)
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS
                             and not d.endswith(".egg-info") and not os.path.exists(os.path.join(folder, d, "pyvenv.cfg")))
            found.extend(Path(folder) / f for f in files if is_model(f))
            if seen > MAX_ENTRIES or len(found) >= MAX_MODELS:
                return sorted(found)[:MAX_MODELS]
    return sorted(found)
