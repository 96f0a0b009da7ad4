"""The main job: rewrite the model until it fits the target, and prove every rewrite.

    lint → apply fixes (one at a time; re-lint, since edits move layers) → write a candidate →
    convert + check op by op + compare numbers → roll back what made things worse → outputs.

A fixable model finding carries its rewrite (`Fix.edits`, qfix.model.rewrites): it edits the
config dict, then model.weights.h5 is re-keyed once for it. Loading, converting and comparing
run in the worker child (qfix.convert.worker, through qfix.jobs.prove): this process never
imports TensorFlow.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qfix.model.edit import EditError, ModelEdit
from qfix.model.graph import build_graph
from qfix.rules.lint import lint
from qfix.model.inputs import input_specs
from qfix.jobs.outputs import check_outputs, output_paths, write_outputs
from qfix.model.writer import archive_zip, write_archive
from qfix.report.diff import config_diff
from qfix.convert.worker import session
from qfix.jobs.check import Options, Result, context, load, why_not_loadable
from qfix.jobs.prove import Progress, Verification, prove, verification_findings
from qfix.rules.base import Context
from qfix.model.rewrites import Rewrite
from qfix.types import Applicability, Violation

MAX_EDITS = 500  # every edit removes a finding; this only bounds a fix that keeps re-firing
SQNR_TOLERANCE_DB = 3.0  # int8 noise between two exact rewrites of the same model


@dataclass
class AppliedFix:
    code: str
    name: str
    layer: str | None
    applicability: str
    note: str
    rolled_back: bool = False
    reason: str | None = None
    # The converted model is the same under qfix's recipe (`Rewrite.recipe_neutral`): no
    # "before" conversion is needed to prove it. Not part of the JSON report.
    recipe_neutral: bool = False

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "recipe_neutral"}


@dataclass
class FixRun:
    result: Result  # the original model's findings (applied flags set) + the final verification
    fixes: list[AppliedFix] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    before: Verification | None = None
    float_equivalence: float | None = None
    outputs: dict[str, str | None] = field(default_factory=lambda: {"model": None, "tflite": None})
    config: dict[str, Any] | None = None
    diff: str | None = None
    mode: str = "ptq"

    @property
    def active(self) -> list[AppliedFix]:
        return [f for f in self.fixes if not f.rolled_back]


def _fixable(v: Violation, unsafe: bool) -> bool:
    if v.fix is None:
        return False
    return v.fix.applicability is Applicability.SAFE or (unsafe and v.fix.applicability is Applicability.UNSAFE)


def apply_rewrites(config: dict[str, Any], weights: bytes, dialect: str,
                   rewrites: list[Rewrite]) -> tuple[dict[str, Any], bytes, str]:
    """The config and `model.weights.h5` after `rewrites` (what one finding carries), and their
    notes. The weights are re-keyed once, after the last rewrite. Raises EditError when a
    rewrite does not apply; the inputs are never modified."""
    edit = ModelEdit(config, dialect)
    notes = [r.apply(edit) for r in rewrites]
    return edit.config, edit.weights(weights), "; ".join(notes)


def apply_fixes(config: dict[str, Any], weights: bytes, dialect: str, ctx: Context, opts: Options,
                unsafe: bool, skip_codes: set[str] = frozenset()) -> tuple[dict, bytes, list[AppliedFix], list[str]]:
    """Apply the rewrites of every fixable finding, one finding at a time, re-linting after each
    (an edit moves layers). A finding that carries no rewrite (display-only, or covered by
    another finding's rewrite) is left as it is."""
    applied: list[AppliedFix] = []
    skipped: list[str] = []
    failed: set[tuple[str, str | None]] = set()
    for _ in range(MAX_EDITS):
        graph = build_graph(config, dialect)
        todo = [v for v in lint(graph, ctx, opts.select, opts.ignore)
                if _fixable(v, unsafe) and v.code not in skip_codes and (v.code, v.location.layer) not in failed]
        v = next((v for v in todo if v.fix.edits), None)
        if v is None:
            break
        try:
            config, weights, note = apply_rewrites(config, weights, dialect, v.fix.edits)
        except EditError as exc:
            failed.add((v.code, v.location.layer))
            skipped.append(f"{v.code} {v.location.layer}: {exc}")
            continue
        applied.append(AppliedFix(v.code, v.name, v.location.layer, v.fix.applicability.value, note,
                                  recipe_neutral=all(r.recipe_neutral for r in v.fix.edits)))
    return config, weights, applied, skipped


def for_inputs(calib, graph):
    """The same samples, cast to the fixed model's input dtypes (folding an input cast turns a
    uint8 input into a float32 one with the same values)."""
    from qfix.convert.calibration import Calibration

    dtypes = {spec.name: spec.dtype for spec in input_specs(graph)}
    samples = [{k: v.astype(dtypes.get(k, v.dtype)) for k, v in s.items()} for s in calib.samples]
    return Calibration(samples, calib.synthetic, calib.source)


def worse(before: Verification, after: Verification) -> str | None:
    """Why `after` is worse than `before` on the target or in fidelity, or None."""
    b, a = before.placement, after.placement
    if b.fully_on_target and not a.fully_on_target:
        return "the model no longer runs fully on the target"
    # Absolute count: a rewrite behind the cut adds CPU ops without moving the cut (the gelu
    # after an attention block), which is not worse; a cut that moves earlier loses ops.
    if a.ops_on_target < b.ops_on_target:
        return f"fewer ops on target ({a.ops_on_target}/{a.ops_total} vs {b.ops_on_target}/{b.ops_total})"
    if len(a.float_tensors) > len(b.float_tensors):
        return f"more float tensors ({len(a.float_tensors)} vs {len(b.float_tensors)})"
    bs, as_ = before.fidelity.sqnr_db, after.fidelity.sqnr_db
    if as_ < bs - SQNR_TOLERANCE_DB:
        return f"int8 fidelity dropped (SQNR {as_:.1f} dB vs {bs:.1f} dB)"
    return None


def run_fix(path: str | Path, opts: Options, *, unsafe: bool = False, out_dir: Path | None = None,
            in_place: bool = False, diff_only: bool = False, progress: Progress = lambda s: None) -> FixRun:
    path = Path(path)
    t0 = time.perf_counter()
    archive, graph, profile, findings = load(path, opts)
    result = Result(path, archive, graph, profile, findings)
    run = FixRun(result, mode=opts.mode)
    ctx = context(profile, opts)

    original_weights = archive.weights_bytes
    config, weights, applied, run.skipped = apply_fixes(
        copy.deepcopy(archive.config), original_weights, archive.dialect, ctx, opts, unsafe)
    run.fixes, run.config = applied, config
    if diff_only:
        run.diff = config_diff(archive.config, config, path.name)
        _mark_applied(result, run, build_graph(config, archive.dialect), opts)
        return run
    result.not_converted = why_not_loadable(findings, opts)
    if result.not_converted:
        run.fixes = []  # nothing is written for a model qfix may not load
        return run
    from qfix.convert.calibration import load_calibration

    # Bad calibration data is a QF908 before TensorFlow loads (arrays are read without it).
    calib = load_calibration(opts.calibration, input_specs(graph), n=opts.samples)
    outputs = output_paths(path, profile.id, out_dir, in_place)
    check_outputs(outputs)  # before the conversion: a blocked output fails in a second, not minutes
    with session() as worker:
        progress("loading the model")
        original = worker.load(path, archive.dialect, opts.custom_objects, opts.trust_lambdas)

        def candidate(cfg: dict[str, Any], w: bytes, tag: str) -> str:
            p = write_archive(worker.run_dir / f"{tag}.keras", cfg, archive.metadata, w)
            return worker.load(p, archive.dialect, opts.custom_objects, opts.trust_lambdas)

        if run.active and not all(f.recipe_neutral for f in run.active):
            run.before = prove(worker, original, graph, profile, calib, progress, " the original")
        fixed = candidate(config, weights, "fixed") if run.active else original
        fixed_graph = build_graph(config, archive.dialect)
        fixed_calib = for_inputs(calib, fixed_graph)
        after = prove(worker, fixed, fixed_graph, profile, fixed_calib, progress,
                      " the fixed model" if run.active else "")
        # Roll back, rule by rule (last applied first), whatever made the target check worse.
        while run.before is not None and (why := worse(run.before, after)) and run.active:
            code = run.active[-1].code
            progress(f"rolling back {code}: {why}")
            for f in run.active:
                if f.code == code:
                    f.rolled_back, f.reason = True, why
            kept = {f.code for f in run.active}
            config, weights, _, _ = apply_fixes(
                copy.deepcopy(archive.config), original_weights, archive.dialect, ctx, opts, unsafe,
                skip_codes={f.code for f in run.fixes} - kept)
            if fixed != original:
                worker.drop(fixed)
            fixed = candidate(config, weights, f"fixed-{len(run.fixes)}") if run.active else original
            fixed_graph = build_graph(config, archive.dialect)
            fixed_calib = for_inputs(calib, fixed_graph)
            after = prove(worker, fixed, fixed_graph, profile, fixed_calib, progress, " the fixed model")
        run.config = config
        if run.before is None:
            run.before = after if run.active else None
        if run.active:
            doing = "comparing the fixed float model with the original"
            progress(doing)
            # Same samples as the fixed model saw (each model casts them to its own input dtype),
            # so the fixed model's float outputs are reused from its fidelity check.
            run.float_equivalence = worker.float_equivalence(original, fixed, fixed_calib, doing)

    result.verification = after
    result.input_layers = len(list(result.graph.walk()))
    result.graph = fixed_graph  # built from the final config above
    result.findings = findings + verification_findings(after, profile)
    _mark_applied(result, run, fixed_graph, opts)
    write_outputs(outputs, archive_zip(config, archive.metadata, weights), after.tflite)
    run.outputs = {"model": str(outputs.model), "tflite": str(outputs.tflite)}
    result.timings["total"] = time.perf_counter() - t0
    return run


def _mark_applied(result: Result, run: FixRun, fixed_graph, opts: Options) -> None:
    """An original finding is resolved when the fixed model no longer has it: by its own fix,
    or by another one (folding an input cast also removes the uint8 ⊕ float merge)."""
    if not run.active:
        return
    remaining = {(v.code, v.location.layer) for v in lint(fixed_graph, context(result.profile, opts), None, None)}
    for v in result.findings:
        if v.fix is not None and (v.code, v.location.layer) not in remaining:
            v.applied = True
