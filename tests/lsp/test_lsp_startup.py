"""What `qfix lsp` loads before it answers `initialize` (issue 12's start-up goal): the
server's protocol libraries only, never the command line's typer/rich application, libcst or
the rules (they load in a worker thread after `initialized`), and never TensorFlow."""

from __future__ import annotations

import os
import subprocess
import sys

from lsp_client import ENV, ROOT
from lsp_wire import frames

LATE = ("typer", "rich", "qfix.cli.app", "libcst", "qfix.rules", "qfix.source.engine", "tensorflow", "keras")


def test_initialize_is_answered_without_the_cli_or_the_engine(tmp_path):
    # the console script's own code (`from qfix.cli import main; main()`), reporting at exit
    code = ("import atexit, sys\n"
            f"atexit.register(lambda: print('loaded:', [m for m in {LATE!r} if m in sys.modules], file=sys.stderr))\n"
            "sys.argv = ['qfix', 'lsp']\nfrom qfix.cli import main\nmain()\n")
    stdin = frames({"id": 1, "method": "initialize", "params": {"capabilities": {}}}, {"id": 2, "method": "shutdown"},
                   {"method": "exit"})
    proc = subprocess.run([sys.executable, "-c", code], input=stdin, capture_output=True, cwd=tmp_path,
                          env={**ENV, "PYTHONPATH": os.pathsep.join([str(ROOT), ENV.get("PYTHONPATH", "")])},
                          timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    assert b'"capabilities"' in proc.stdout
    assert proc.stderr.decode().splitlines()[-1] == "loaded: []", proc.stderr.decode()


def test_lsp_help_and_bad_options_still_go_through_the_command_line(tmp_path):
    helped = subprocess.run([sys.executable, "-m", "qfix", "lsp", "--help"], capture_output=True, text=True,
                            cwd=tmp_path, env=ENV, timeout=120)
    assert helped.returncode == 0 and "language server" in helped.stdout
    bad = subprocess.run([sys.executable, "-m", "qfix", "lsp", "--tcp"], capture_output=True, text=True,
                         cwd=tmp_path, env=ENV, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("QF914 ") and "Traceback" not in bad.stderr
