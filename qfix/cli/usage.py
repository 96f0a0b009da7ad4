"""Options that do not combine, and options that mean nothing for what is being checked: QF914
instead of silently ignoring one of them. README ("Options that do not combine") lists the same."""

from __future__ import annotations

from qfix.errors import error
from qfix.rules import model_rules, select as select_rules, unknown_selectors, verify_rules

# (option, option, why they contradict), checked in this order on models and sources alike
CONFLICTS = (
    ("--check", "--write", "--check writes nothing"),
    ("--check", "--in-place", "--check writes nothing"),
    ("--check", "--out-dir", "--check writes nothing"),
    ("--check", "--diff", "--check reports the findings, --diff shows the fixes: pick one"),
    ("--diff", "--write", "--diff shows the fixes without writing them"),
    ("--diff", "--in-place", "--diff shows the fixes without writing them"),
    ("--diff", "--out-dir", "--diff shows the fixes without writing them"),
    ("--static", "--diff", "--static reports the static findings only, it fixes nothing"),
    ("--static", "--in-place", "--static reports the static findings only, it writes nothing"),
    ("--static", "--out-dir", "--static reports the static findings only, it writes nothing"),
    ("--static", "--unsafe-fixes", "--static reports the static findings only, it fixes nothing"),
    ("--static", "--calibration", "--static does not convert, so it uses no calibration data"),
    ("--static", "--samples", "--static does not convert, so it uses no samples"),
    ("--static", "--memory", "--static does not convert, so nothing is measured against --memory"),
)
# a model's check does not apply fixes, so it cannot choose which
MODEL_CONFLICTS = (("--check", "--unsafe-fixes", "--check applies no fix (--diff --unsafe-fixes shows them)"),)
# --mode qat trains with tfmot: no static-only run, no diff of PTQ fixes, never over the input
QAT_CONFLICTS = (
    ("--static", "--static reports the static findings only; --mode qat's verdict comes from tfmot's run"),
    ("--diff", "--mode qat writes <stem>.qfix.qat.keras (or, with --check, nothing); it shows no diff"),
    ("--in-place", "--mode qat writes a tf_keras model for training, <stem>.qfix.qat.keras, never over the input"),
)
MODEL_ONLY = ("--in-place", "--out-dir", "--calibration", "--samples", "--trust-lambdas",
              "--custom-objects", "--static", "--mode", "--memory")
SOURCE_ONLY = ("--write", "--force-exclude")


def check_usage(given: set[str], *, models: bool, select: list[str] | None, ignore: list[str] | None,
                qat: bool = False) -> None:
    """Raise QF914 for the first contradiction among the options in `given` (long names of the
    options the user set) for a run over models (`models=True`) or Python sources; `qat`:
    `--mode qat` was given."""
    for a, b, why in CONFLICTS + (MODEL_CONFLICTS if models else ()):
        if a in given and b in given:
            raise error("QF914", f"{a} and {b} do not combine: {why}")
    for opt, why in QAT_CONFLICTS if qat and models else ():
        if opt in given:
            raise error("QF914", f"--mode qat and {opt} do not combine: {why}")
    wrong = SOURCE_ONLY if models else MODEL_ONLY
    for opt in wrong:
        if opt in given:
            if models and opt == "--write":
                raise error("QF914", f"{opt} applies fixes to Python files; a model is fixed by default "
                                     "(without --check) into <stem>.qfix.keras")
            if models:
                raise error("QF914", f"{opt} applies to Python sources, not to .keras models")
            raise error("QF914", f"{opt} applies to .keras models, not to Python sources")
    for flag, selectors in (("--select", select), ("--ignore", ignore)):
        if selectors is not None and not selectors:
            raise error("QF914", f"{flag} needs at least one rule code, prefix or name (see qfix rules)")
        unknown = unknown_selectors(selectors)
        if unknown:
            raise error("QF914", f"{flag} {', '.join(unknown)}: no such rule code, prefix or name (see qfix rules)")
    # As on Python sources: a selection that keeps no rule for a model checks nothing.
    if models and select and not select_rules([*model_rules(), *verify_rules()], select, ignore):
        raise error("QF914", f"--select {','.join(select)} matches no model rule (source-only codes: see qfix rules)")
