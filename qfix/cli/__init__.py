"""The `qfix` entry point. `qfix lsp` goes straight to the language server: an editor waits
for its start-up, and the command line's own modules (typer, rich, the rule catalogue: about
0.3 s of CPU) are no part of it. Every other command, `qfix lsp --help` included, runs the
typer application in `qfix.cli.app`.
"""

from __future__ import annotations

import sys
from typing import List, Optional

# `qfix lsp [--stdio]`: the only spellings the fast path takes (anything else is typer's to parse)
_LSP_FLAGS = {"--stdio"}


def main(argv: Optional[List[str]] = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["lsp"] and set(argv[1:]) <= _LSP_FLAGS:
        sys.exit(_lsp())
    from qfix.cli.app import main as app_main

    app_main(argv)


def _lsp() -> int:
    """What `qfix.cli.app`'s `lsp` command does, without loading it: the exit status of the
    server (0 after shutdown and exit, else 1), or one line and 2 (QF914 without pygls, QF999
    on a bug), or 128 + the signal after SIGINT/SIGTERM (pygls ends its loop quietly on the
    KeyboardInterrupt raised for either); never a traceback."""
    import os
    import signal

    received: list[int] = []

    def stop(signum: int, frame) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    for s in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(s) is not signal.SIG_IGN:  # `cmd &` in a script ignores SIGINT: keep that
            signal.signal(s, stop)
    import gc

    gc.disable()  # the server collects when idle (qfix.lsp.server.collect_garbage), not mid-check
    try:
        from qfix.lsp.server import serve

        code = serve()
    except ImportError as exc:  # the core install has no pygls
        print(f"QF914 qfix lsp needs the lsp extra ({exc.name} is not installed): pip install 'qfix[lsp]'",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        code = 128 + signal.SIGINT
    except Exception as exc:  # noqa: BLE001 - one line, as the rest of the CLI
        if os.environ.get("QFIX_DEBUG"):
            raise
        print(internal_error(exc), file=sys.stderr)
        return 2
    if received:
        print("qfix: interrupted", file=sys.stderr)
        return 128 + received[0]
    return code


def internal_error(exc: BaseException) -> str:
    """The one line an unforeseen exception gets (exit status 2), for every command."""
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"QF999 internal error: {type(exc).__name__}: {first} (set QFIX_DEBUG=1 for the traceback)"
