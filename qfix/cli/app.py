"""qfix's command line (typer): `qfix PATH...` runs the model job on `.keras` models or the
source job on Python files/folders (qfix.cli.paths decides which); `qfix rules | rule CODE |
targets` is the catalogue. Results go to stdout; bad input or usage prints one line `QF9xx
message` on stderr and exits 2, never a traceback (typer raises its own usage errors: it vendors
click). `qfix.cli.main` loads this module for every command but `qfix lsp`.
"""

from __future__ import annotations

import os
import platform
import signal
import sys
from importlib import metadata
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from typer.core import TyperCommand

from qfix import __version__
from qfix.report.sanitize import printable
from qfix.cli import internal_error
from qfix.cli.paths import COMMANDS, classify
from qfix.cli.usage import check_usage
from qfix.types import QfixError

HELP = """qfix finds what stops a Keras model from quantizing for the hardware it must run on
(Coral Edge TPU, int8 CPU, your own target profile), fixes what it can, and proves the result:
it converts the model to TFLite with the target's recipe and checks it op by op against the
target and number by number against the float model. It reads .keras files safely: no code
from a model file runs, and the input is never modified.

\b
Four ways to call it:
  qfix MODEL.keras [OPTIONS]    check, fix and verify a model; a folder of
                                .keras models: each model in turn
  qfix PY_FILE|FOLDER...        the same mistakes in the Python that builds
                                and converts models (--write fixes them)
  qfix rules|rule CODE|targets  the catalogue: the rules, one rule's (or a
                                QF9xx error's) documentation, the targets
  qfix lsp                      the language server for editors (stdio)
"""

EPILOG = """\b
Examples:
  qfix model.keras              fix for the Edge TPU: writes model.qfix.keras
                                and model.qfix.edgetpu.tflite beside it
  qfix model.keras --check --format json
                                report only, as one JSON document
  qfix model.keras --static     static findings only (no TensorFlow)
  qfix src/ --format sarif > qfix.sarif
                                findings for code scanning (SARIF 2.1.0)
  qfix models/ --check -t int8  every .keras model in models/
  qfix train.py src/ --write    apply the safe fixes to Python sources
  qfix rule QF302               what a finding means

\b
Exit status:
  0  nothing left: the model runs fully on the target / no findings
  1  findings or blockers remain
  2  bad input or usage: one line "QF9xx message" on stderr
"""

CONTEXT = {"help_option_names": ["-h", "--help"]}
FORMATS = ("text", "json", "concise", "sarif", "github")
# The libraries behind a conversion result: what a bug report needs (read from the installed
# package metadata, never imported: importing TensorFlow takes seconds).
VERSIONED = (("TensorFlow", "tensorflow"), ("Keras", "keras"), ("tf_keras", "tf-keras"),
             ("tfmot", "tensorflow-model-optimization"), ("ai-edge-litert", "ai-edge-litert"),
             ("libcst", "libcst"), ("numpy", "numpy"), ("typer", "typer"))


class PlainHelp(TyperCommand):
    """Help in plain words: `PATH...` where typer writes `{PATH}...` and `PATH <list[Path]>`."""

    def collect_usage_pieces(self, ctx) -> list[str]:
        return ["[OPTIONS]", *(_name(p) for p in self.get_params(ctx) if p.param_type_name == "argument")]

    def format_options(self, ctx, formatter) -> None:
        params = self.get_params(ctx)
        args = [(_name(p), p.help or "") for p in params if p.param_type_name == "argument"]
        opts = [r for p in params if p.param_type_name == "option" and (r := p.get_help_record(ctx))]
        for title, rows in (("Arguments", args), ("Options", opts)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


def _name(arg) -> str:
    return (arg.metavar or arg.name.upper()) + ("..." if arg.nargs != 1 else "")


app = typer.Typer(add_completion=False, rich_markup_mode=None, context_settings=CONTEXT)
catalogue = typer.Typer(add_completion=False, rich_markup_mode=None, context_settings=CONTEXT,
                        help="qfix catalogue commands")


def versions() -> str:
    """qfix's version, then Python's and the libraries' (`not installed` when absent)."""
    lines = [f"qfix {__version__}",
             f"Python {platform.python_version()} ({platform.python_implementation()}, {platform.system()} {platform.machine()})"]
    for label, dist in VERSIONED:
        try:
            lines.append(f"{label} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            lines.append(f"{label} not installed")
    return "\n".join(lines)


def _version(value: bool) -> None:
    if value:
        print(versions())
        raise typer.Exit(0)


def _csv(values: Optional[List[str]]) -> Optional[List[str]]:
    """`--select A,B --select C` -> [A, B, C] as typed (None when not given)."""
    if not values:
        return None
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def _upper(selectors: Optional[List[str]]) -> Optional[List[str]]:
    return [s.upper() for s in selectors] if selectors else None


@app.command(cls=PlainHelp, help=HELP, epilog=EPILOG)
def main_command(
    paths: List[str] = typer.Argument(..., metavar="PATH", show_default=False,
                                       help="a .keras model or a folder of them, or .py files / folders"),
    target: Optional[str] = typer.Option(None, "--target", "-t", metavar="T",
                                         help="edgetpu (the default; for Python sources [tool.qfix] target first), int8, tflm, ethos-u (see `qfix targets`), or a profile .toml; Python sources also `none` (no target rules)"),
    check: bool = typer.Option(False, "--check", help="report only: write nothing"),
    calibration: Optional[str] = typer.Option(
        None, "--calibration", metavar="P",
        help=".npz keyed by input name, .npy, a folder of images, or module:function"),
    output_format: str = typer.Option("text", "--format", metavar="FORMAT",
                                      help="text (default), json, concise (Python sources), sarif (SARIF 2.1.0) "
                                           "or github (GitHub Actions annotations)", show_default=False),
    custom_objects: Optional[str] = typer.Option(None, "--custom-objects", metavar="MODULE",
                                                 help="module that registers your custom layer classes"),
    trust_lambdas: bool = typer.Option(False, "--trust-lambdas", help="allow loading Lambda bytecode from the file"),
    mode: Optional[str] = typer.Option(None, "--mode", metavar="ptq|qat",
                                       help="post-training (default) or quantization-aware training"),
    select: Optional[List[str]] = typer.Option(None, "--select", metavar="CODES",
                                               help="rule codes, prefixes or names to run (comma-separated)"),
    ignore: Optional[List[str]] = typer.Option(None, "--ignore", metavar="CODES",
                                               help="rule codes, prefixes or names to skip"),
    samples: Optional[int] = typer.Option(None, "--samples", min=1, max=10000, metavar="N",
                                          help="calibration / comparison samples (default 32)"),
    memory: Optional[str] = typer.Option(None, "--memory", metavar="SPEC",
                                         help="models: the device's memory, e.g. flash=1MB,ram=256KB (KB = KiB = "
                                              "1024 B); over it is a blocker (ram: targets whose runtime measures "
                                              "its arena, tflm)"),
    static: bool = typer.Option(False, "--static", help="models: static findings only, no TensorFlow"),
    write: bool = typer.Option(False, "--write", help="Python sources: apply the safe fixes in place"),
    unsafe_fixes: bool = typer.Option(False, "--unsafe-fixes", help="also apply fixes that change the numbers"),
    diff: bool = typer.Option(False, "--diff", help="show the diff of the fixes, write nothing"),
    out_dir: Optional[Path] = typer.Option(None, "--out-dir", metavar="DIR",
                                           help="models: write the outputs there (created if needed)"),
    in_place: bool = typer.Option(False, "--in-place", help="models: overwrite the input with the fixed model"),
    force_exclude: bool = typer.Option(False, "--force-exclude",
                                       help="Python sources: apply [tool.qfix] exclude to files named on the "
                                            "command line too (as pre-commit passes them)"),
    version: bool = typer.Option(False, "--version", "-V", is_eager=True, callback=_version,
                                 help="print the versions of qfix, Python and its libraries"),
) -> None:
    if output_format not in FORMATS:
        raise QfixError("QF914", f"--format must be text, json, concise, sarif or github, not {output_format!r}")
    if diff and output_format in ("sarif", "github"):
        raise QfixError("QF914", f"--diff and --format {output_format} do not combine: --diff prints the diff "
                                 f"of the fixes, --format {output_format} reports the findings")
    mode = mode.lower() if mode else mode
    if mode not in (None, "ptq", "qat"):
        raise QfixError("QF914", f"--mode must be ptq or qat, not {mode!r}")
    if custom_objects is not None and not custom_objects.strip():  # '' would silently mean "none"
        raise QfixError("QF914", "--custom-objects needs a module name (e.g. my_pkg.layers), not an empty string")
    given = {flag for flag, value in (
        ("--check", check), ("--calibration", calibration is not None), ("--custom-objects", custom_objects),
        ("--trust-lambdas", trust_lambdas), ("--mode", mode), ("--samples", samples is not None),
        ("--static", static), ("--write", write), ("--unsafe-fixes", unsafe_fixes), ("--diff", diff),
        ("--out-dir", out_dir), ("--in-place", in_place), ("--memory", memory is not None),
        ("--force-exclude", force_exclude)) if value}
    if any(not p for p in paths):  # Path("") is the current folder: never what was meant
        raise QfixError("QF907", "no such file or folder: '' (an empty path)")
    inputs = classify([Path(p) for p in paths])
    try:
        check_usage(given, models=bool(inputs.models), select=_csv(select), ignore=_csv(ignore),
                    qat=mode == "qat")
    except QfixError as exc:
        note = inputs.unchecked_note()  # a model option on a Python folder: say where the models are
        raise QfixError(exc.code, f"{exc.message}; {note}" if note else exc.message) from None
    select, ignore = _upper(_csv(select)), _upper(_csv(ignore))  # codes are matched upper-case
    console = Console(stderr=False)
    if inputs.models:
        from qfix.targets.memory import parse_memory

        budget = parse_memory(memory) if memory is not None else None  # before the jobs' imports
        from qfix.targets import load_profile

        # An empty --target is an error, not the default; a bad one (unknown, `ethos-u55:7`, a
        # broken profile) is refused here, before any model is read.
        target = "edgetpu" if target is None else target
        load_profile(target)
        from qfix.jobs.check import Options

        opts = Options(target=target, calibration=calibration, custom_objects=custom_objects,
                       trust_lambdas=trust_lambdas, mode=mode or "ptq", select=select, ignore=ignore,
                       samples=samples or 32, static_only=static,
                       memory=budget)
        raise typer.Exit(_run_models(inputs.models, opts, console, output_format=output_format, check=check,
                                     diff=diff, unsafe_fixes=unsafe_fixes, out_dir=out_dir, in_place=in_place))
    from qfix.cli.source import run as run_source

    if note := inputs.unchecked_note():
        print(f"note: {note}", file=sys.stderr)

    code = run_source(inputs.sources, write=write, unsafe_fixes=unsafe_fixes, diff=diff, select=select,
                      ignore=ignore, target=target, output_format=output_format, console=console,
                      force_exclude=force_exclude)
    raise typer.Exit(code)


def _run_models(models: List[Path], opts, console: Console, *, output_format: str, **kw) -> int:
    """One model: its report. Several (a folder): each in turn under a `== path ==` header; an
    error (QF9xx) in one is printed and the next runs; the exit status is the worst."""
    from qfix.cli.model import run_model, run_models_for_ci

    if output_format in ("sarif", "github"):  # one report for every model
        return run_models_for_ci(models, opts, output_format=output_format, **kw)
    if output_format == "concise":
        output_format = "text"
    if len(models) == 1:
        return run_model(models[0], opts, console, output_format=output_format, **kw)
    if output_format == "json":
        raise QfixError("QF914", f"--format json reports one model and {len(models)} were given "
                                 f"({models[0]}, ...): run qfix once per model, or use --format sarif")
    worst = 0
    for i, path in enumerate(models):
        print(f"{'' if i == 0 else chr(10)}== {path} ==", flush=True)
        try:
            code = run_model(path, opts, console, output_format=output_format, **kw)
        except QfixError as exc:
            print(f"{exc.code} {exc.message}", file=sys.stderr, flush=True)
            code = 2
        worst = max(worst, code)
    return worst


@catalogue.command("rules", cls=PlainHelp)
def rules_command() -> None:
    """List every rule: code, name, sides."""
    from qfix.rules import model_rules, source_rules, verify_rules

    sides: dict[str, dict] = {}
    for side, classes in (("model", model_rules()), ("source", source_rules()), ("verify", verify_rules())):
        for cls in classes:
            entry = sides.setdefault(cls.code, {"name": cls.name, "sides": []})
            entry["sides"].append(side)
    console = Console()
    for code in sorted(sides):
        console.print(f"{code}  {sides[code]['name']:<28} {', '.join(sides[code]['sides'])}")


@catalogue.command("rule", cls=PlainHelp)
def rule_command(code: str = typer.Argument(..., metavar="CODE", help="a rule code such as QF302, or an error code such as QF908")) -> None:
    """Show the documentation of one rule (both sides) or error code."""
    from qfix.rules.docs import doc_for

    doc = doc_for(code)
    if doc is None:
        raise QfixError("QF914", f"no rule or error code {code.upper()} (see `qfix rules`)")
    print(doc)


@catalogue.command("lsp", cls=PlainHelp)
def lsp_command(stdio: bool = typer.Option(True, "--stdio", hidden=True,
                                           help="talk over stdin/stdout (the only transport; accepted as editors pass it)")) -> None:
    """Run the language server for editors over stdin/stdout: diagnostics, quick fixes and
    fix-all for Python files, static findings for .keras models (see README, Editor)."""
    try:
        from qfix.lsp.server import serve
    except ImportError as exc:  # the core install has no pygls
        raise QfixError("QF914", f"qfix lsp needs the lsp extra ({exc.name} is not installed): "
                                 "pip install 'qfix[lsp]'") from None
    raise typer.Exit(serve())


@catalogue.command("targets", cls=PlainHelp)
def targets_command(
    profiles: Optional[List[str]] = typer.Argument(None, metavar="[PROFILE]",
                                                   help="target ids or your own profile .toml files (checked "
                                                        "as --target would): show only those, with their op tables"),
    fmt: str = typer.Option("text", "--format", help="text | json (README: 'qfix targets --format json')"),
) -> None:
    """List the targets: what each requires, its placement and recipe, what --memory can
    check, how the verdict is obtained (real compiler, real runtime or profile only), its MAC
    variants and the profile's sources; a target named here also shows its op table."""
    import json

    from qfix.report.targets import render_targets, target_json
    from qfix.targets import available_targets, load_profile

    if fmt not in ("text", "json"):
        raise QfixError("QF914", f"--format {fmt!r:.30}: qfix targets prints text or json")
    keys = profiles or available_targets()
    loaded = [(k, load_profile(k)) for k in keys]
    if fmt == "json":
        print(json.dumps({"targets": [target_json(p, k) for k, p in loaded]}, indent=2))
    else:
        print(render_targets(loaded, ops=bool(profiles)))


def _usage_line(exc: Exception) -> str:
    text = exc.format_message().strip()  # type: ignore[attr-defined]
    first = text.splitlines()[0] if text else "bad usage"
    ctx = getattr(exc, "ctx", None)
    return f"QF914 {first} (see {ctx.command_path if ctx else 'qfix'} --help)"


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM, raised where the main thread is so that every `finally` runs: staged
    outputs and temp folders are removed (qfix.atomic, the converter's TemporaryDirectory)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []


def _on_signal(signum: int, frame) -> None:
    _received.append(signum)
    for s in _SIGNALS:  # a second Ctrl-C must not cut short the cleanup the first one started
        signal.signal(s, signal.SIG_IGN)
    raise Interrupted(signum)


def _catch_signals() -> dict[int, object]:
    """Install `_on_signal`; return the handlers it replaces."""
    _received.clear()
    previous = {s: signal.getsignal(s) for s in _SIGNALS}
    for s, handler in previous.items():
        if handler is not signal.SIG_IGN:  # `cmd &` in a script ignores SIGINT: keep that
            signal.signal(s, _on_signal)
    return previous


def main(argv: Optional[List[str]] = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        print("QF914 nothing to check: give a .keras model, Python files or folders, or a command "
              "(rules, rule CODE, targets, lsp); see qfix --help", file=sys.stderr)
        sys.exit(2)
    previous = _catch_signals()
    try:
        code = _dispatch(argv)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if _received:  # typer turns KeyboardInterrupt into exit 130; say which signal it was
        print("qfix: interrupted", file=sys.stderr)
        code = 128 + _received[0]
    sys.exit(code)


def _dispatch(argv: List[str]) -> int:
    """Run the command; return its exit status, having printed any error as one line."""
    target_app = catalogue if argv[0] in COMMANDS else app
    try:
        rc = target_app(args=argv, prog_name="qfix", standalone_mode=False)
    except QfixError as exc:
        print(printable(f"{exc.code} {exc.message}", limit=2000), file=sys.stderr)
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except typer.TyperException as exc:  # usage errors (typer's vendored click): one line
        print(_usage_line(exc), file=sys.stderr)
        return 2
    except typer.Abort:  # click's answer to EOF inside its own parsing
        print("qfix: interrupted", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        if not _received:
            print("qfix: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # anything unforeseen: one line, exit 2
        if os.environ.get("QFIX_DEBUG"):
            raise
        print(internal_error(exc), file=sys.stderr)
        return 2
    return rc if isinstance(rc, int) else 0


if __name__ == "__main__":  # pragma: no cover
    main()
