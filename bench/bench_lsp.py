"""The language server's latencies, as an editor meets them (prints figures, asserts nothing).

    python bench/bench_lsp.py [--runs 5] [--lines 1000]

`qfix lsp` runs as the editor starts it (`python -m qfix lsp` from this checkout, a fresh
process per run) and is spoken to in raw LSP frames over its stdin/stdout (tests/lsp/lsp_wire.py,
the client the wire tests use). Each figure is given as wall time and as the server's own CPU
time for that step (read from /proc; `-` where it cannot be), which moves far less with the load
of a shared machine:

* start-up: from spawning the process to the `initialize` response (goal <= 0.5 s);
* first diagnostics: `didOpen` of a generated Python file of `--lines` lines (converter and
  model code, three findings) to its `publishDiagnostics`, right after `initialized` (libcst and
  the rules still loading) and once warm (goal <= 100 ms for 1,000 lines);
* after an edit: `didChange` of one line to the new version's `publishDiagnostics`, shown with
  the 150 ms debounce and without it (the check's own time); the first edit comes right after
  the diagnostics of the opened file (the server has not yet measured its statements, which it
  does once idle), the second is typing on (the statements known from the first edit);
* code actions on the same file: a quick fix and `source.fixAll.qfix` (listed, then resolved);
* after an edit, in process: the full check of the edited text against the incremental one
  (`qfix.source.incremental`: only the changed top-level statements re-parsed; `qfix.source.memo`
  on, as in the server: per-statement results of the previous check reused);
* for scale: a bare pygls server with no features answering the same messages (the start-up
  no pygls server can go below), importing lsprotocol alone (pygls's types: most of the
  start-up) and starting Python; the source engine's own check
  of the same text in this process (`lint_source`, what every diagnostic waits for), and its
  parts: libcst's parse, the rules' walk with the findings' positions.

Medians over `--runs` runs (min-max of the wall time in brackets), with the machine's CPU count
and load average.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "lsp"))
from lsp_wire import Wire, frames  # noqa: E402 - the raw-frame client the wire tests use

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
DEBOUNCE = 0.15  # qfix.lsp.server.DEBOUNCE
CAPABILITIES = {"textDocument": {"codeAction": {"resolveSupport": {"properties": ["edit"]},
                                                "codeActionLiteralSupport": {"codeActionKind": {"valueSet": []}}}}}

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


def start(folder: Path) -> Wire:
    return Wire([sys.executable, "-m", "qfix", "lsp"], folder, ENV, stderr=subprocess.DEVNULL)


# A pygls 2.x server with no feature, started as qfix's is: what any pygls server costs here
BARE_PYGLS = "from pygls.lsp.server import LanguageServer; LanguageServer('bare', 'v0').start_io()"

Figures = dict[str, tuple[float, float | None]]  # label -> (wall seconds, server CPU seconds)


def one_run(folder: Path, text: str) -> tuple[Figures, int]:
    figures: Figures = {}
    server = start(folder)

    def step(label: str, sent: float, cpu_before: float | None, less: float = 0.0) -> None:
        after = server.cpu()
        cpu = after - cpu_before if after is not None and cpu_before is not None else None
        figures[label] = (server.arrived - sent - less, cpu)

    server.send({"id": 1, "method": "initialize", "params": {"capabilities": CAPABILITIES, "rootUri": folder.as_uri()}})
    server.response(1, timeout=120)
    step("start-up (spawn to initialize response)", server.started, 0.0)
    server.send({"method": "initialized", "params": {}})

    uri = (folder / "cold.py").as_uri()
    cpu = server.cpu()
    sent = server.send({"method": "textDocument/didOpen", "params": {"textDocument": {
        "uri": uri, "languageId": "python", "version": 1, "text": text}}})
    found = server.diagnostics(uri, 1, timeout=120)["params"]["diagnostics"]
    step("first diagnostics, cold (right after initialized)", sent, cpu)

    uri = (folder / "warm.py").as_uri()
    cpu = server.cpu()
    sent = server.send({"method": "textDocument/didOpen", "params": {"textDocument": {
        "uri": uri, "languageId": "python", "version": 1, "text": text}}})
    server.diagnostics(uri, 1, timeout=120)
    step("first diagnostics, warm", sent, cpu)

    edited = text.replace("ReLU(6.0)", "ReLU(6.0, name='r')", 1)
    cpu = server.cpu()
    sent = server.send({"method": "textDocument/didChange", "params": {
        "textDocument": {"uri": uri, "version": 2}, "contentChanges": [{"text": edited}]}})
    server.diagnostics(uri, 2, timeout=120)
    step("after an edit (debounce included)", sent, cpu)
    step("after an edit (the check alone)", sent, cpu, less=DEBOUNCE)
    again = edited.replace("GlobalAveragePooling2D()", "GlobalAveragePooling2D(name='g')", 1)
    cpu = server.cpu()
    sent = server.send({"method": "textDocument/didChange", "params": {
        "textDocument": {"uri": uri, "version": 3}, "contentChanges": [{"text": again}]}})
    server.diagnostics(uri, 3, timeout=120)
    step("after a second edit (the check alone)", sent, cpu, less=DEBOUNCE)

    lam = next(d for d in found if d["code"] == "QF202")
    cpu = server.cpu()
    sent = server.send({"id": 2, "method": "textDocument/codeAction", "params": {
        "textDocument": {"uri": uri}, "range": lam["range"], "context": {"diagnostics": [lam], "only": ["quickfix"]}}})
    actions = server.response(2, timeout=120)["result"]
    step("code actions for one finding (listed)", sent, cpu)
    fix = next(a for a in actions if a["title"].startswith("qfix QF202"))
    cpu = server.cpu()
    sent = server.send({"id": 3, "method": "codeAction/resolve", "params": fix})
    server.response(3, timeout=120)
    step("its quick fix (resolved)", sent, cpu)
    cpu = server.cpu()
    sent = server.send({"id": 4, "method": "textDocument/codeAction", "params": {
        "textDocument": {"uri": uri}, "range": lam["range"], "context": {"diagnostics": [], "only": ["source.fixAll"]}}})
    listed = server.response(4, timeout=120)["result"]
    server.send({"id": 5, "method": "codeAction/resolve", "params": listed[0]})
    server.response(5, timeout=120)
    step("source.fixAll.qfix (listed and resolved)", sent, cpu)

    server.send({"id": 999, "method": "shutdown"})
    server.response(999)
    server.send({"method": "exit"})
    server.proc.wait(timeout=30)
    return figures, len(found)


def cpu_seconds(cmd: list[str], stdin: bytes = b"") -> tuple[float, float]:
    """Wall and user + system CPU time of one child process run to its end."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, input=stdin, cwd=ROOT, capture_output=True, env=ENV)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def in_process(fn, runs: int) -> list[tuple[float, float]]:
    fn()  # imports, caches
    out = []
    for _ in range(runs):
        w, c = time.perf_counter(), time.process_time()
        fn()
        out.append((time.perf_counter() - w, time.process_time() - c))
    return out


def engine_figures(text: str, runs: int) -> dict[str, list[tuple[float, float]]]:
    """The source engine in this process: what every diagnostic waits for, and its parts."""
    sys.path.insert(0, str(ROOT))
    import libcst as cst

    from qfix.rules import source_rules
    from qfix.source.engine import lint_source
    from qfix.targets import load_profile

    from qfix.source.engine import lint_parsed
    from qfix.source.incremental import Parsed

    rules, target = source_rules(), load_profile("edgetpu")
    module = cst.parse_module(text)
    edited = text.replace("ReLU(6.0)", "ReLU(6.0, name='r')", 1)  # the wire's edit
    before = Parsed.parse(text)
    before.prepare()  # the server does it after publishing the first diagnostics
    from qfix.source import memo

    full = in_process(lambda: lint_source(edited, rules=rules, target=target), runs)
    reparse = in_process(lambda: before.update(edited), runs)
    memo.enable()  # as the server: per-statement results kept between checks
    lint_parsed(before, rules=rules, target=target)
    incremental = in_process(lambda: lint_parsed(before.update(edited), rules=rules, target=target), runs)
    memo.enable(False)
    return {
        "after an edit, in process: full (lint_source)": full,
        "after an edit, in process: incremental": incremental,
        "  of which the re-parse of the changed statements": reparse,
        "the source engine alone (lint_source, in process)": in_process(lambda: lint_source(text, rules=rules, target=target), runs),
        "  of which libcst's parse": in_process(lambda: cst.parse_module(text), runs),
        "  of which the rules' walk and positions": in_process(
            lambda: lint_source(text, rules=rules, target=target, module=module), runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--lines", type=int, default=1000)
    args = parser.parse_args()
    import tempfile

    text = source(args.lines)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="qfix-bench-lsp-") as tmp:
        runs = [one_run(Path(tmp), text) for _ in range(args.runs)]
    print(f"qfix lsp, {args.lines}-line Python file ({runs[0][1]} findings), {args.runs} runs, "
          f"{os.cpu_count()} CPUs, load average {load[0]:.1f} before / {os.getloadavg()[0]:.1f} after")
    print(f"  {'':<52} {'wall (median, min-max)':>26}   {'CPU':>7}")
    for key in runs[0][0]:
        show(key, [r[0][key] for r in runs])
    quick = frames({"id": 1, "method": "initialize", "params": {"capabilities": {}}},
                   {"id": 2, "method": "shutdown"}, {"method": "exit"})
    show("start-up, whole process (initialize, shutdown, exit)",
         [cpu_seconds([sys.executable, "-m", "qfix", "lsp"], quick) for _ in range(args.runs)])
    show("  a bare pygls server, same messages (the floor)",
         [cpu_seconds([sys.executable, "-c", BARE_PYGLS], quick) for _ in range(args.runs)])
    show("  of which importing lsprotocol.types", [cpu_seconds([sys.executable, "-c", "import lsprotocol.types"])
                                                  for _ in range(args.runs)])
    show("  of which starting Python", [cpu_seconds([sys.executable, "-c", "pass"]) for _ in range(args.runs)])
    for label, figures in engine_figures(text, args.runs).items():
        show(label, figures)
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (CPU figures move less with it than wall ones)")


def show(label: str, figures: list[tuple[float, float | None]]) -> None:
    wall = [w * 1000 for w, _ in figures]
    cpu = [c * 1000 for _, c in figures if c is not None]
    cpu_text = f"{statistics.median(cpu):7.0f} ms" if cpu else "      -"
    print(f"  {label:<52} {statistics.median(wall):7.0f} ms [{min(wall):5.0f}-{max(wall):5.0f}]   {cpu_text}")


if __name__ == "__main__":
    main()
