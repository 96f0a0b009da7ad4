"""`qfix lsp` as a subprocess spoken to in raw LSP frames (`Content-Length` + JSON body), with
no client library: for what a well-behaved client refuses to send (tests/lsp/test_lsp_wire.py)
and for timing the server as an editor meets it (bench/bench_lsp.py). Standard library only.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Callable


def frame(body: bytes) -> bytes:
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def frames(*messages: dict) -> bytes:
    """JSON-RPC 2.0 messages as one stream of LSP frames (for a server's whole stdin)."""
    return b"".join(frame(json.dumps({"jsonrpc": "2.0", **m}).encode()) for m in messages)


class Wire:
    """A server started with `command` in `cwd`; each message it sends is kept with the
    `time.perf_counter()` at which it was read (`arrived`)."""

    def __init__(self, command: list[str], cwd: Path, env: dict[str, str], stderr: Any = subprocess.PIPE) -> None:
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                                     cwd=cwd, env=env)
        self.messages: "queue.Queue[tuple[float, dict]]" = queue.Queue()
        self.arrived = 0.0  # when the message `next` returned last was read
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        out = self.proc.stdout
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    return
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
                elif line in (b"\r\n", b"\n"):
                    break
            self.messages.put((time.perf_counter(), json.loads(out.read(length))))

    def raw(self, body: bytes) -> float:
        """Send one frame; returns the `time.perf_counter()` after it was flushed."""
        self.proc.stdin.write(frame(body))
        self.proc.stdin.flush()
        return time.perf_counter()

    def send(self, message: dict) -> float:
        return self.raw(json.dumps({"jsonrpc": "2.0", **message}).encode())

    def next(self, match: Callable[[dict], bool], timeout: float = 60.0) -> dict:
        """The next message for which `match(message)` holds (others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                at, msg = self.messages.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no matching message within {timeout} s") from None
            if match(msg):
                self.arrived = at
                return msg

    def response(self, msg_id, timeout: float = 60.0) -> dict:
        return self.next(lambda m: "method" not in m and m.get("id") == msg_id, timeout)

    def diagnostics(self, uri: str, version: int | None = None, timeout: float = 60.0) -> dict:
        """The next publishDiagnostics for `uri` (of `version`, if given)."""
        return self.next(lambda m: m.get("method") == "textDocument/publishDiagnostics" and m["params"]["uri"] == uri
                         and (version is None or m["params"].get("version") == version), timeout)

    def cpu(self) -> float | None:
        """User + system CPU seconds the server has used so far (Linux /proc; None elsewhere or
        once it has exited): what a step cost the server whatever the machine's load."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        import os

        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime

    def close(self) -> int:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            return self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
