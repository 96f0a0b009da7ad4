"""qfix's command line. `qfix PATH` dispatches on what PATH is: a `.keras` file (model check
and fix), a `.py` file or a folder (source codemods). Subcommands: rules, rule CODE, targets.

Bad input or usage prints one line `QF9xx message` and exits 2; never a traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from qfix import __version__
from qfix.types import QfixError

SUBCOMMANDS = {"rules", "rule", "targets"}

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, rich_markup_mode=None)
sub = typer.Typer(add_completion=False, no_args_is_help=True, help="qfix catalogue commands")


def _csv(values: Optional[List[str]]) -> Optional[List[str]]:
    if not values:
        return None
    return [v.strip().upper() for item in values for v in item.split(",") if v.strip()]


@app.command()
def main_command(
    paths: List[Path] = typer.Argument(..., help="a .keras model, or .py files / folders"),
    target: Optional[str] = typer.Option(None, "--target", "-t",
                                         help="edgetpu (default for models), int8, tflm, ethos-u (see `qfix targets`), or a profile .toml"),
    check: bool = typer.Option(False, "--check", help="report only: write nothing"),
    calibration: Optional[str] = typer.Option(None, "--calibration", help=".npz keyed by input name, .npy, or an image folder"),
    output_format: str = typer.Option("text", "--format", help="text, json, or concise (source files)"),
    custom_objects: Optional[str] = typer.Option(None, "--custom-objects", help="module that registers custom layer classes"),
    trust_lambdas: bool = typer.Option(False, "--trust-lambdas", help="allow loading Lambda bytecode from the file"),
    mode: str = typer.Option("ptq", "--mode", help="ptq (post-training) or qat (quantization-aware training)"),
    select: Optional[List[str]] = typer.Option(None, "--select", help="rule codes or prefixes to run"),
    ignore: Optional[List[str]] = typer.Option(None, "--ignore", help="rule codes or prefixes to skip"),
    samples: int = typer.Option(32, "--samples", min=1, max=10000, help="calibration / comparison samples"),
    static: bool = typer.Option(False, "--static", help="static findings only: no conversion, no TensorFlow"),
    write: bool = typer.Option(False, "--write", help="source files: apply safe fixes in place"),
    unsafe_fixes: bool = typer.Option(False, "--unsafe-fixes", help="also apply unsafe fixes"),
    diff: bool = typer.Option(False, "--diff", help="show the diff of fixes without writing"),
    out_dir: Optional[Path] = typer.Option(None, "--out-dir", help="where to write fixed outputs"),
    in_place: bool = typer.Option(False, "--in-place", help="overwrite the input model with the fixed one"),
) -> None:
    console = Console(stderr=False)
    if output_format not in ("text", "json", "concise"):
        raise QfixError("QF914", f"--format must be text, json or concise, not {output_format!r}")
    if mode not in ("ptq", "qat"):
        raise QfixError("QF914", f"--mode must be ptq or qat, not {mode!r}")
    models = [p for p in paths if p.suffix in (".keras", ".h5", ".hdf5") or (p.is_dir() and (p / "saved_model.pb").exists())]
    if models:
        if len(paths) != 1:
            raise QfixError("QF914", "give one model file at a time")
        from qfix.jobs.check import Options
        from qfix.cli.model import run_model

        if output_format == "concise":
            output_format = "text"

        opts = Options(target=target or "edgetpu", calibration=calibration, custom_objects=custom_objects,
                       trust_lambdas=trust_lambdas, mode=mode, select=_csv(select), ignore=_csv(ignore),
                       samples=samples, static_only=static)
        code = run_model(paths[0], opts, console, output_format=output_format, check=check, diff=diff,
                         unsafe_fixes=unsafe_fixes, out_dir=out_dir, in_place=in_place)
        raise typer.Exit(code)
    for p in paths:
        if not p.exists():
            raise QfixError("QF907", f"{p}: no such file or folder")
    try:
        from qfix.cli.source import run as run_source
    except ImportError:
        raise QfixError("QF914", "source files are not supported by this build") from None
    code = run_source(list(paths), write=write, unsafe_fixes=unsafe_fixes, diff=diff, select=_csv(select),
                      ignore=_csv(ignore), target=target, output_format=output_format, console=console)
    raise typer.Exit(code)


@sub.command("rules")
def rules_command() -> None:
    """List every rule: code, name, sides, fix safety."""
    from qfix.rules import model_rules, source_rules, verify_rules

    sides: dict[str, dict] = {}
    for side, classes in (("model", model_rules()), ("source", source_rules()), ("verify", verify_rules())):
        for cls in classes:
            entry = sides.setdefault(cls.code, {"name": cls.name, "sides": []})
            entry["sides"].append(side)
    console = Console()
    for code in sorted(sides):
        console.print(f"{code}  {sides[code]['name']:<28} {', '.join(sides[code]['sides'])}")


@sub.command("rule")
def rule_command(code: str) -> None:
    """Show the documentation of one rule."""
    from qfix.rules import model_rules, source_rules, verify_rules

    code = code.upper()
    docs = [c for c in (*model_rules(), *source_rules(), *verify_rules()) if c.code == code]
    if not docs:
        raise QfixError("QF914", f"no rule {code} (see `qfix rules`)")
    import inspect

    print(f"{code} {docs[0].name}\n")
    print(inspect.cleandoc(docs[0].__doc__ or ""))


@sub.command("targets")
def targets_command() -> None:
    """List the built-in targets: recipe, and how `--check` obtains the verdict."""
    from qfix.targets import available_targets, load_profile
    from qfix.targets.compilers import verdict_source

    for t in available_targets():
        p = load_profile(t)
        aka = f" (also: {', '.join(p.aliases)})" if p.aliases else ""
        print(f"{t:<10} {p.name}{aka}\n{'':<10} recipe: {p.recipe.description}\n"
              f"{'':<10} verdict: {verdict_source(p)}")


def main(argv: Optional[List[str]] = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("--version", "-V"):
        print(f"qfix {__version__}")
        sys.exit(0)
    target_app = sub if argv and argv[0] in SUBCOMMANDS else app
    try:
        rc = target_app(args=argv, prog_name="qfix", standalone_mode=False)
    except QfixError as exc:
        print(f"{exc.code} {exc.message}", file=sys.stderr)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        print("qfix: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # click usage errors and anything unforeseen: one line, exit 2
        import click

        if isinstance(exc, click.exceptions.ClickException):
            print(f"QF914 {exc.format_message()}", file=sys.stderr)
            sys.exit(2)
        if os.environ.get("QFIX_DEBUG"):
            raise
        print(f"QF999 internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
              "(set QFIX_DEBUG=1 for the traceback)", file=sys.stderr)
        sys.exit(2)
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
