"""The worker: one child process that does everything that loads, converts or interprets a
user's model, so a native crash, a hang or a memory blow-up inside TensorFlow ends the run with
one QF909 line instead of exit 139, a hung terminal or a swapping machine.

The child is started with multiprocessing "spawn" (never fork: the parent imports no TensorFlow,
and a fork after TF is unsafe), lazily on the first call, and kept for the whole run so TF is
imported once. Each call is one stage with picklable arguments (model file paths, the target's recipe,
calibration arrays, flatbuffer bytes) and picklable results (ConvertResult, Fidelity, QatTrial, a float).
Loaded models stay in the child, named by their path; a stage that runs out of memory in a child
that has grown over earlier stages is tried once more in a fresh one.

Limits (environment):
  QFIX_STAGE_TIMEOUT  seconds one call may take; the TF import counts as one (default 1800).
  QFIX_MEMORY_LIMIT   the child's RLIMIT_DATA: "4G", "512M", "0" for none (default: the
                      machine's RAM, at least 4 GiB; the check of MobileNetV2 96x96 peaks at
                      1.6 GiB, TF import alone needs more than 300 MiB).

The child's temporary files (SavedModels, KERAS_HOME) live in the run folder, its TMPDIR, which
`session()` removes in `finally`; the child dies with the parent (PR_SET_PDEATHSIG) and ignores
SIGINT, so a Ctrl-C is the parent's to handle.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import re
import shutil
import signal
import tempfile
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from qfix.convert.calibration import Calibration
from qfix.targets import Recipe
from qfix.types import QfixError

DEFAULT_TIMEOUT_S = 1800.0
MIN_DEFAULT_MEMORY = 4 << 30
_POLL_S = 0.2
# What a C++ allocation failure, the loader or a thread start (its stack counts in RLIMIT_DATA)
# prints before the child dies of it.
_OOM_TEXT = ("std::bad_alloc", "Cannot allocate memory", "MemoryError", "out of memory",
             "failed to map segment", "pthread_create() failed")


class WorkerFailure(QfixError):
    """The child crashed, hit a limit or could not start: QF909, one line. `kind` is "crash",
    "timeout" or "memory"; `stage` is what the child was doing (e.g. "calibrating in the TFLite
    converter")."""

    def __init__(self, message: str, kind: str, stage: str, explained: bool = False):
        super().__init__("QF909", message)
        self.kind, self.stage = kind, stage
        self.explained = explained  # a hint names the layer that causes it (with_hint)

    def with_hint(self, hint: str | None) -> QfixError:
        return self if not hint else WorkerFailure(f"{self.message}; {hint}", self.kind, self.stage, True)


# --- limits --------------------------------------------------------------------------------


def stage_timeout() -> float:
    raw = os.environ.get("QFIX_STAGE_TIMEOUT", "").strip()
    if not raw:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise QfixError("QF914", f"QFIX_STAGE_TIMEOUT={raw!r}: expected a number of seconds > 0")
    return value


def memory_limit() -> int | None:
    """Bytes of RLIMIT_DATA for the child, or None for no limit."""
    raw = os.environ.get("QFIX_MEMORY_LIMIT", "").strip()
    if not raw:
        return max(MIN_DEFAULT_MEMORY, _ram_bytes())
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?", raw, re.IGNORECASE)
    if not m:
        raise QfixError("QF914", f"QFIX_MEMORY_LIMIT={raw!r}: expected a size such as 4G or 512M (0: no limit)")
    value = int(float(m.group(1)) * 1024 ** " KMGT".index(m.group(2).upper() or " "))
    return value or None


def _ram_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


def _fmt_bytes(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} B"


# --- parent side ---------------------------------------------------------------------------


@contextlib.contextmanager
def session(legacy_keras: bool = False) -> Iterator["Worker"]:
    """A worker for one run and its run folder; both are gone when the block ends, however it
    ends (an error, a time-out, SIGINT/SIGTERM turned into an exception). `legacy_keras`: the
    child imports TensorFlow with TF_USE_LEGACY_KERAS=1 (tfmot, `--mode qat`)."""
    timeout, limit = stage_timeout(), memory_limit()  # bad values are a QF914 before the folder
    run_dir = Path(tempfile.mkdtemp(prefix="qfix-run-"))
    worker = Worker(run_dir, timeout, limit, legacy_keras)
    try:
        yield worker
    finally:
        worker.close()
        shutil.rmtree(run_dir, ignore_errors=True)


class Worker:
    """The parent's handle on the child. Each method is one stage; `doing` names it for the
    user ("converting for edgetpu"). Every failure raises QfixError (WorkerFailure for a crash
    or a limit), after which the child is gone; a later stage starts a fresh child, which loads
    again the models that stage reads (those of `load`; a QAT trial's are not loaded again). A
    stage that runs out of memory in a child that converted or holds other models is tried once
    more in a fresh child."""

    def __init__(self, run_dir: Path, timeout: float, limit: int | None, legacy_keras: bool = False):
        self.run_dir = run_dir
        self._legacy_keras = legacy_keras
        self._proc: Any = None
        self._conn: Any = None
        self._stage = ""  # the child's last `mark`
        self._sent: dict[int, Calibration] = {}  # calibrations the child holds, by id here
        self._loads: dict[str, tuple] = {}  # handle -> `load` arguments, for a fresh child to load again
        self._held: set[str] = set()  # handles the current child holds
        self._converted = False  # the current child has converted or interpreted a model
        self._peak_data = 0
        self._timeout = timeout
        self._limit = limit

    # stages

    def load(self, path: Path, dialect: str, custom_objects: str | None, trust_lambdas: bool) -> str:
        """Load a model in the child; returns its handle for the other calls. Keras loads only
        files named `*.keras`: a `model.KERAS` is loaded through a link named as Keras wants."""
        path = Path(path)
        if path.suffix != ".keras":  # messages keep the file's stem
            folder = self.run_dir / f"input-{len(list(self.run_dir.glob('input-*')))}"
            folder.mkdir()
            link = folder / f"{path.stem}.keras"
            link.symlink_to(path.resolve())
            path = link
        key = str(path)
        self._call("load", (key, dialect, custom_objects, trust_lambdas), "loading the model")
        return key

    def drop(self, model: str) -> None:
        """Forget a loaded model (a candidate the main job replaced): the child holds it otherwise."""
        self._call("drop", (model,), "releasing a model")

    def convert(self, model: str, recipe: Recipe, calib: Calibration, doing: str) -> Any:
        """qfix.convert.converter.ConvertResult of `convert(model, recipe, calib)` (the recipe of
        the target's profile: a user profile's file is read once, here in the parent)."""
        return self._call("convert", (model, recipe, calib), doing)

    def fidelity(self, model: str, tflite: bytes, calib: Calibration, doing: str, raw: bool = False) -> Any:
        """qfix.convert.fidelity.Fidelity of the float model against the converted one; `raw`:
        with LiteRT's integer inputs and outputs (`Fidelity.raw`) for a second runtime."""
        return self._call("fidelity", (model, tflite, calib, raw), doing)

    def float_equivalence(self, a: str | dict[str, Any], b: str, calib: Calibration, doing: str) -> float:
        """Max abs diff of the float outputs of two loaded models on `calib`; `a` may instead be
        outputs `float_outputs` read in another worker (a Keras 3 original, see qfix.jobs.qat)."""
        return self._call("float_equivalence", (a, b, calib), doing)

    def float_outputs(self, model: str, calib: Calibration, doing: str) -> dict[str, Any]:
        """{output name: numpy array over the samples} of the loaded model on `calib`."""
        return self._call("float_outputs", (model, calib), doing)

    def output_stats(self, model: str, calib: Calibration, doing: str) -> list[dict[str, Any]]:
        """qfix.convert.output_stats.output_stats of the loaded model on `calib`."""
        return self._call("output_stats", (model, calib), doing)

    def qat_trial(self, path: Path, recipe: Recipe, calib: Calibration, custom_objects: str | None,
                  trust_lambdas: bool, doing: str) -> Any:
        """qfix.convert.qat.QatTrial of the tf_keras model file `path` (named `*.keras`), loaded
        inside the quantize scope: quantize_model, one training step, the QAT conversion with
        `recipe`. Afterwards the float model is loaded under `str(path)` and the QAT model
        under the trial's `qat_model` handle."""
        return self._call("qat_trial", (str(path), recipe, calib, custom_objects, trust_lambdas), doing)

    # plumbing

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._stage = "starting"
        self._sent = {}  # a fresh child holds no calibration, no model
        self._held, self._converted, self._peak_data = set(), False, 0
        parent_conn, child_conn = ctx.Pipe()
        env = {"TMPDIR": str(self.run_dir), "KERAS_HOME": str(self.run_dir / "keras-home")}
        if self._legacy_keras:  # read once, when TensorFlow is imported
            env["TF_USE_LEGACY_KERAS"] = "1"
        log = None if os.environ.get("QFIX_DEBUG") else str(self.run_dir / "worker.log")
        self._proc = ctx.Process(target=_serve, args=(child_conn, env, self._limit, log),
                                 name="qfix-worker", daemon=True)
        self._proc.start()
        child_conn.close()
        self._conn = parent_conn

    def _call(self, op: str, args: tuple, doing: str) -> Any:
        needs = [] if op in ("load", "drop", "qat_trial") else [a for a in args if isinstance(a, str) and a in self._loads]
        burdened = self._proc is not None and (self._converted or bool(self._held - set(needs)))
        try:
            return self._call_once(op, args, needs, doing)
        except WorkerFailure as exc:
            # TensorFlow and the allocator keep much of what a stage took, and the child holds
            # every model loaded so far: a stage that runs out of memory in a child that
            # converted or holds other models gets one more try in a fresh child, which loads
            # only the models it reads. (Keras 3 ConvNeXtXLarge, int8: the plain converter and
            # qfix's check convert it; the main job's second conversion ran out of 23.5 GiB.)
            if exc.kind != "memory" or not burdened or op == "qat_trial":
                raise
        return self._call_once(op, args, needs, doing)

    def _call_once(self, op: str, args: tuple, needs: list[str], doing: str) -> Any:
        if self._proc is None:
            self._start()
            self._wait(doing)  # the child's "ready", once TensorFlow is imported
        for key in needs:  # a fresh child (after a crash or a retry) loads what this stage reads
            if key not in self._held:
                self._send("load", (key, *self._loads[key]), "loading the model")
                self._held.add(key)
        answer = self._send(op, args, doing)
        if op == "load":
            self._loads[args[0]] = args[1:]
            self._held.add(args[0])
        elif op == "drop":
            self._loads.pop(args[0], None)
            self._held.discard(args[0])
        elif op == "qat_trial":  # loaded in the quantize scope: not what `load` gives again
            self._held.update((args[0], f"{args[0]}#qat"))
        self._converted = self._converted or op in ("convert", "fidelity", "qat_trial")
        return answer

    def _send(self, op: str, args: tuple, doing: str) -> Any:
        wire = tuple(self._share(a) for a in args)
        try:
            self._conn.send((op, wire))
        except (OSError, ValueError):  # the child is already gone
            pass
        return self._wait(doing)

    def _share(self, arg: Any) -> Any:
        """Send a calibration once: later calls name it, and the child keeps its float outputs."""
        if not isinstance(arg, Calibration):
            return arg
        key = id(arg)
        if key in self._sent:
            return _Shared(key, None)
        self._sent[key] = arg  # held, so the id is not reused by another object
        return _Shared(key, arg)

    def _wait(self, doing: str) -> Any:
        deadline = time.monotonic() + self._timeout
        while True:
            try:
                ready = self._conn.poll(max(0.0, min(_POLL_S, deadline - time.monotonic())))
                msg = self._conn.recv() if ready else None
            except (EOFError, OSError):
                ready, msg = True, None
            if msg is not None and msg[0] == "stage":
                self._stage = msg[1]
                continue
            if msg is not None:
                return self._answer(msg, doing)
            if ready or not self._proc.is_alive():  # EOF: the child died
                self._proc.join(5)
                raise self._death(doing)
            self._watch_memory()
            if time.monotonic() >= deadline:
                stage = self._stage
                self._kill()
                raise WorkerFailure(f"{doing} exceeded the time limit ({self._timeout:g} s){_while(stage, doing)} "
                                    "(raise it with QFIX_STAGE_TIMEOUT)", "timeout", stage)

    def _answer(self, msg: tuple, doing: str) -> Any:
        kind, *rest = msg
        if kind == "ok":
            return rest[0]
        if kind == "memory":
            self._kill()
            raise self._out_of_memory(doing, rest[0])
        code, message, log = rest
        if code is None:  # a bug or an unexpected error in the child: name it, keep the log
            self._kill()
            err = QfixError("QF909", f"{doing} failed: {message}")
        else:
            err = QfixError(code, message)
        err.log = log
        raise err

    def _death(self, doing: str) -> QfixError:
        stage = self._stage
        code = self._proc.exitcode
        self._kill()
        if self._looks_out_of_memory(code):
            return self._out_of_memory(doing, stage)
        if code is not None and code < 0:
            try:
                how = signal.Signals(-code).name
            except ValueError:
                how = f"signal {-code}"
            return WorkerFailure(f"{doing} crashed ({how}){_while(stage, doing)}", "crash", stage)
        return WorkerFailure(f"{doing} failed: the worker exited with status {code}{_while(stage, doing)}",
                             "crash", stage)

    def _out_of_memory(self, doing: str, stage: str) -> WorkerFailure:
        limit = f"limit {_fmt_bytes(self._limit)}" if self._limit else "no limit set"
        return WorkerFailure(f"{doing} ran out of memory ({limit}){_while(stage, doing)} "
                             "(raise the limit with QFIX_MEMORY_LIMIT)", "memory", stage)

    def _looks_out_of_memory(self, code: int | None) -> bool:
        """A C++ allocation failure aborts; the kernel's OOM killer sends SIGKILL; the loader
        fails to map a library. Judged from the child's log and its last seen data size."""
        if code == -signal.SIGKILL:
            return True
        if self._limit and self._peak_data >= 0.9 * self._limit:
            return True
        try:
            with open(self.run_dir / "worker.log", "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 8192))
                tail = f.read().decode("utf-8", "replace")
        except OSError:
            return False
        return any(t in tail for t in _OOM_TEXT)

    def _watch_memory(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            with open(f"/proc/{self._proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmData:"):
                        self._peak_data = max(self._peak_data, int(line.split()[1]) * 1024)
                        return

    def _kill(self) -> None:
        if self._proc is None:
            return
        if self._proc.is_alive():
            self._proc.kill()
        self._proc.join(10)
        self._conn.close()
        self._proc = None  # a later call starts a fresh child

    def close(self) -> None:
        """Stop the child: ask, then kill; it is reaped either way."""
        if self._proc is None:
            return
        with contextlib.suppress(OSError, ValueError):
            self._conn.send(None)
        self._proc.join(2)
        self._kill()


def _while(stage: str, doing: str) -> str:
    return "" if stage == doing else f" while {stage}"


class _Shared:
    """A calibration sent once: `value` is None when the child already holds `key`."""

    def __init__(self, key: int, value: Calibration | None):
        self.key, self.value = key, value


# --- child side ----------------------------------------------------------------------------

_CONN: Any = None  # the child's end of the pipe, in the child only
_NOW = ""


def mark(stage: str) -> None:
    """Tell the parent what the child is doing, for its message if the child dies there
    (a no-op outside the worker)."""
    global _NOW
    if _CONN is not None and stage != _NOW:
        _NOW = stage
        _CONN.send(("stage", stage))


def _serve(conn: Any, env: dict[str, str], limit: int | None, log: str | None) -> None:
    global _CONN
    _CONN = conn
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.update(env)
    os.makedirs(env["KERAS_HOME"], exist_ok=True)
    tempfile.tempdir = None  # re-read TMPDIR
    if log is not None:  # native chatter goes to the run's log (read back to diagnose a crash)
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(fd, 2)
        os.close(fd)
    os.dup2(2, 1)  # stdout is the parent's report: nothing from TF may land in it
    if limit:
        import resource

        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    try:
        mark("importing TensorFlow")
        from qfix.convert.keras import import_tf

        import_tf()
    except MemoryError:
        conn.send(("memory", "importing TensorFlow"))
        return
    except BaseException as e:  # noqa: BLE001  reported, never a traceback on the terminal
        text = f"{type(e).__name__}: {e}"
        if any(t in text for t in _OOM_TEXT):
            conn.send(("memory", "importing TensorFlow"))
        else:
            conn.send(("error", None, f"importing TensorFlow: {text.splitlines()[0][:300]}", traceback.format_exc()))
        return
    conn.send(("ok", None))
    models: dict[str, Any] = {}
    calibrations: dict[int, Calibration] = {}
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            msg = None
        if msg is None:  # nothing to flush: skip TensorFlow's slow interpreter teardown
            os._exit(0)
        op, wire = msg
        args = [_resolve(a, calibrations) for a in wire]
        try:
            conn.send(("ok", _OPS[op](models, *args)))
        except QfixError as e:
            conn.send(("error", e.code, e.message, getattr(e, "log", "")))
        except MemoryError:
            conn.send(("memory", _NOW))
        except Exception as e:  # noqa: BLE001  a qfix bug or an unexpected TF error: one line
            first = (str(e).strip().splitlines() or [""])[0][:300]
            conn.send(("error", None, f"{type(e).__name__}: {first} (while {_NOW})",
                       traceback.format_exc()))


def _resolve(arg: Any, calibrations: dict[int, Calibration]) -> Any:
    if isinstance(arg, _Shared):
        if arg.value is not None:
            calibrations[arg.key] = arg.value
        return calibrations[arg.key]
    return arg


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when the parent dies, however it dies."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent died before the call
            os._exit(1)


def _op_load(models: dict[str, Any], path: str, dialect: str, custom_objects: str | None,
             trust_lambdas: bool) -> None:
    from qfix.convert.keras import load_model

    mark("loading the model")
    models[path] = load_model(path, dialect, custom_objects, trust_lambdas)


def _op_drop(models: dict[str, Any], path: str) -> None:
    models.pop(path, None)


def _op_convert(models: dict[str, Any], path: str, recipe: Recipe, calib: Calibration) -> Any:
    from qfix.convert.converter import convert

    return convert(models[path], recipe, calib)


def _op_fidelity(models: dict[str, Any], path: str, tflite: bytes, calib: Calibration, raw: bool = False) -> Any:
    from qfix.convert.fidelity import fidelity

    return fidelity(models[path], tflite, calib, raw)


def _op_float_equivalence(models: dict[str, Any], a: Any, b: str, calib: Calibration) -> float:
    from qfix.convert.fidelity import float_equivalence

    return float_equivalence(models[a] if isinstance(a, str) else a, models[b], calib)


def _op_float_outputs(models: dict[str, Any], path: str, calib: Calibration) -> dict[str, Any]:
    from qfix.convert.fidelity import float_outputs

    return float_outputs(models[path], calib)


def _op_output_stats(models: dict[str, Any], path: str, calib: Calibration) -> list[dict[str, Any]]:
    from qfix.convert.output_stats import output_stats

    return output_stats(models[path], calib)


def _op_qat_trial(models: dict[str, Any], path: str, recipe: Recipe, calib: Calibration,
                  custom_objects: str | None, trust_lambdas: bool) -> Any:
    from qfix.convert.qat import fidelity_view, load_in_scope, output_names_of, trial

    mark("loading the model in the quantize scope")
    models[path] = load_in_scope(path, custom_objects, trust_lambdas)
    result, qat = trial(models[path], recipe, calib, custom_objects)
    if qat is not None:
        result.qat_model = f"{path}#qat"
        models[result.qat_model] = fidelity_view(qat, output_names_of(models[path]))
    return result


_OPS = {"load": _op_load, "qat_trial": _op_qat_trial, "drop": _op_drop, "convert": _op_convert, "fidelity": _op_fidelity,
        "float_equivalence": _op_float_equivalence, "float_outputs": _op_float_outputs, "output_stats": _op_output_stats}
