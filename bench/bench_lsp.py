"""The language server's latencies, as an editor meets them (prints figures, asserts nothing).

    python bench/bench_lsp.py [--runs 5] [--lines 1000]

`qfix lsp` runs as the editor starts it (`python -m qfix lsp` from this checkout, a fresh
process per run) and is spoken to in raw LSP frames over its stdin/stdout:

* start-up: from spawning the process to the `initialize` response (goal <= 0.5 s);
* first diagnostics: `didOpen` of a generated Python file of `--lines` lines (converter and
  model code, three findings) to its `publishDiagnostics`, right after `initialized` (libcst and
  the rules still loading) and once warm (goal <= 100 ms for 1,000 lines);
* after an edit: `didChange` of one line to the new version's `publishDiagnostics`, shown with
  the 150 ms debounce and without it (the check's own time);
* code actions on the same file: a quick fix and `source.fixAll.qfix` (listed, then resolved);
* for scale: the CPU time of a server that only answers `initialize` and exits, of importing
  lsprotocol alone (pygls's types, most of the start-up), and the source engine's own check of
  the same text in this process (`lint_source`, what every diagnostic waits for).

Medians over `--runs` runs (min-max in brackets). The machine is shared: figures move with its load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from queue import Empty, Queue

ROOT = Path(__file__).resolve().parents[1]
DEBOUNCE = 0.15  # qfix.lsp.server.DEBOUNCE

BLOCK = '''

def export_{i}(model, rep):
    """Convert model {i} for the Edge TPU."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = rep
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    converter.inference_output_type = tf.uint8
    return converter.convert()


def build_{i}(inputs):
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU(6.0)(x)
    return keras.layers.GlobalAveragePooling2D()(x)
'''
FINDINGS = '''
x = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
c = tflite_converter(m)
c.inference_input_type = tf.lite.constants.INT8
noise = np.random.rand(1, 8, dtype=np.float32)
'''


def source(lines: int) -> str:
    head = '"""A generated training and export script."""\nimport keras\nimport numpy as np\nimport tensorflow as tf\n'
    text, i = head + FINDINGS, 0
    while text.count("\n") < lines:
        text += BLOCK.format(i=i)
        i += 1
    return "\n".join(text.split("\n")[:lines]) + "\n"


class Server:
    CAPABILITIES = {"textDocument": {"codeAction": {"resolveSupport": {"properties": ["edit"]},
                                                    "codeActionLiteralSupport": {"codeActionKind": {"valueSet": []}}}}}

    def __init__(self, cwd: Path) -> None:
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, "-m", "qfix", "lsp"], cwd=cwd, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     env={**os.environ, "PYTHONPATH": str(ROOT)})
        self.inbox: Queue = Queue()
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
                elif line == b"\r\n":
                    break
            self.inbox.put((time.perf_counter(), json.loads(out.read(length))))

    def send(self, message: dict) -> float:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()
        return time.perf_counter()

    def wait(self, match, timeout: float = 120) -> tuple[float, dict]:
        deadline = time.perf_counter() + timeout
        while True:
            try:
                at, msg = self.inbox.get(timeout=max(0.01, deadline - time.perf_counter()))
            except Empty:
                raise SystemExit("the server did not answer in time") from None
            if match(msg):
                return at, msg

    def diagnostics(self, uri: str, version: int) -> tuple[float, dict]:
        return self.wait(lambda m: m.get("method") == "textDocument/publishDiagnostics"
                         and m["params"]["uri"] == uri and m["params"].get("version") == version)

    def stop(self) -> None:
        self.send({"id": 999, "method": "shutdown"})
        self.wait(lambda m: m.get("id") == 999)
        self.send({"method": "exit"})
        self.proc.wait(timeout=30)


def one_run(folder: Path, text: str) -> dict[str, float]:
    figures: dict[str, float] = {}
    server = Server(folder)
    server.send({"id": 1, "method": "initialize", "params": {"capabilities": Server.CAPABILITIES,
                                                             "rootUri": folder.as_uri()}})
    at, _ = server.wait(lambda m: m.get("id") == 1)
    figures["start-up (spawn to initialize response)"] = at - server.t0
    server.send({"method": "initialized", "params": {}})

    uri = (folder / "cold.py").as_uri()
    sent = server.send({"method": "textDocument/didOpen", "params": {"textDocument": {
        "uri": uri, "languageId": "python", "version": 1, "text": text}}})
    at, msg = server.diagnostics(uri, 1)
    figures["first diagnostics, cold (right after initialized)"] = at - sent
    found = msg["params"]["diagnostics"]

    uri = (folder / "warm.py").as_uri()
    sent = server.send({"method": "textDocument/didOpen", "params": {"textDocument": {
        "uri": uri, "languageId": "python", "version": 1, "text": text}}})
    at, _ = server.diagnostics(uri, 1)
    figures["first diagnostics, warm"] = at - sent

    edited = text.replace("ReLU(6.0)", "ReLU(6.0, name='r')", 1)
    sent = server.send({"method": "textDocument/didChange", "params": {
        "textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"text": edited}]}})
    at, _ = server.diagnostics(uri, 2)
    figures["after an edit (debounce included)"] = at - sent
    figures["after an edit (the check alone)"] = at - sent - DEBOUNCE

    lam = next(d for d in found if d["code"] == "QF202")
    sent = server.send({"id": 2, "method": "textDocument/codeAction", "params": {
        "textDocument": {"uri": uri}, "range": lam["range"], "context": {"diagnostics": [lam], "only": ["quickfix"]}}})
    at, msg = server.wait(lambda m: m.get("id") == 2)
    figures["code actions for one finding (listed)"] = at - sent
    fix = next(a for a in msg["result"] if a["title"].startswith("qfix QF202"))
    sent = server.send({"id": 3, "method": "codeAction/resolve", "params": fix})
    at, _ = server.wait(lambda m: m.get("id") == 3)
    figures["its quick fix (resolved)"] = at - sent
    sent = server.send({"id": 4, "method": "textDocument/codeAction", "params": {
        "textDocument": {"uri": uri}, "range": lam["range"], "context": {"diagnostics": [], "only": ["source.fixAll"]}}})
    at, msg = server.wait(lambda m: m.get("id") == 4)
    sent2 = server.send({"id": 5, "method": "codeAction/resolve", "params": msg["result"][0]})
    at, _ = server.wait(lambda m: m.get("id") == 5)
    figures["source.fixAll.qfix (listed and resolved)"] = at - sent
    server.stop()
    figures["findings"] = len(found)
    return figures


def cpu_seconds(cmd: list[str], stdin: bytes = b"") -> float:
    """User + system CPU time of one child process (less sensitive to the machine's load)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, input=stdin, cwd=ROOT, capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def frames(*messages: dict) -> bytes:
    out = b""
    for m in messages:
        body = json.dumps({"jsonrpc": "2.0", **m}).encode()
        out += b"Content-Length: %d\r\n\r\n" % len(body) + body
    return out


def engine_seconds(text: str, runs: int) -> list[float]:
    sys.path.insert(0, str(ROOT))
    from qfix.rules import source_rules
    from qfix.source.engine import lint_source

    rules = source_rules()
    lint_source(text, rules=rules)  # imports, caches
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        lint_source(text, rules=rules)
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--lines", type=int, default=1000)
    args = parser.parse_args()
    import tempfile

    text = source(args.lines)
    with tempfile.TemporaryDirectory(prefix="qfix-bench-lsp-") as tmp:
        runs = [one_run(Path(tmp), text) for _ in range(args.runs)]
    print(f"qfix lsp, {args.lines}-line Python file ({runs[0]['findings']:.0f} findings), "
          f"{args.runs} runs, load average {os.getloadavg()[0]:.1f}")
    for key in runs[0]:
        if key == "findings":
            continue
        show(key, [r[key] for r in runs])
    quick = frames({"id": 1, "method": "initialize", "params": {"capabilities": {}}},
                   {"id": 2, "method": "shutdown"}, {"method": "exit"})
    show("start-up CPU time (initialize, shutdown, exit)",
         [cpu_seconds([sys.executable, "-m", "qfix", "lsp"], quick) for _ in range(args.runs)])
    show("  of which importing lsprotocol.types", [cpu_seconds([sys.executable, "-c", "import lsprotocol.types"])
                                                  for _ in range(args.runs)])
    show("the source engine alone (lint_source, in process)", engine_seconds(text, args.runs))


def show(label: str, seconds: list[float]) -> None:
    values = [x * 1000 for x in seconds]
    print(f"  {label:<52} {statistics.median(values):7.0f} ms  [{min(values):.0f}-{max(values):.0f}]")


if __name__ == "__main__":
    main()
