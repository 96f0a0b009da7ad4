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
import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qfix.errors import error
from qfix.model.edit import EditError, ModelEdit
from qfix.model.graph import build_graph, is_integer
from qfix.model.hub import HubError, absolute_handles
from qfix.rules import model_rules
from qfix.rules.lint import lint
from qfix.model.inputs import input_specs
from qfix.jobs.outputs import check_outputs, output_paths, write_outputs
from qfix.model.writer import archive_zip, write_archive
from qfix.report.diff import config_diff
from qfix.convert.worker import WorkerFailure, session
from qfix.jobs.check import Options, Result, context, explains_failure, judge, load, why_not_loadable
from qfix.jobs.prove import Progress, Verification, prove, verification_findings
from qfix.rules.base import Context
from qfix.rules.zero_signal import MIN_SQNR_DB
from qfix.model.rewrites import Rewrite
from qfix.types import Applicability, QfixError, Severity, Violation

MAX_EDITS = 500  # every edit removes a finding; this only bounds a fix that keeps re-firing
SQNR_TOLERANCE_DB = 3.0  # int8 noise between two exact rewrites of the same model
NO_EFFECT = "no effect on the verified check: "
MAX_ATTRIBUTED = 4  # rules whose rewrites are each proved to add something (one conversion each)
# A safe rewrite's float outputs match the original's within SAFE_TOLERANCE times the outputs'
# peak magnitude (at least 1): float32 keeps 24 bits (eps 1.2e-7), and an exact rewrite that
# re-associates a few hundred products (a split conv, a moved activation) stays two decades
# under it; a real change of the computation does not.
SAFE_TOLERANCE = 1e-5


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
    # It replaces what loading would run from the file (a Lambda's bytecode: a rule that
    # `blocks_loading`): the written model then loads without --trust-lambdas. That is its
    # value, which the target check cannot see, so "no effect" on the check does not undo it.
    removes_code: bool = False

    @property
    def no_effect(self) -> bool:
        return self.rolled_back and (self.reason or "").startswith(NO_EFFECT)

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("recipe_neutral", "removes_code")}
        out["state"] = "kept" if not self.rolled_back else "no effect" if self.no_effect else "rolled back"
        return out


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
    unsafe: bool = False  # --unsafe-fixes was given
    tolerance: float = SAFE_TOLERANCE  # the safe float delta for this model (safe_tolerance)
    not_written: str | None = None  # the `.qfix.keras` a run that kept no rewrite did not write
    stale_model: bool = False  # ... and one from an earlier run is there (it does not match the .tflite)
    batch_note: str | None = None  # the batch is fixed only in the .tflite, not in the model
    # The original's conversion crashed natively (QF909's line): the rewrites are what let the
    # model convert at all (a rolled Keras 3 RNN), so `before` stays None and they are kept.
    before_failure: str | None = None
    # ... and the original float model does not run in TensorFlow either: no float comparison
    float_reference_failure: str | None = None

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
        note += interface_note(graph, build_graph(config, dialect), ctx.target)
        applied.append(AppliedFix(v.code, v.name, v.location.layer, v.fix.applicability.value, note,
                                  recipe_neutral=all(r.recipe_neutral for r in v.fix.edits),
                                  removes_code=v.code in _loading_blockers()))
    return config, weights, applied, skipped


def interface_note(before: Any, after: Any, target: Any) -> str:
    """What a rewrite that made integer model inputs float32 (QF102's fold, QF106, QF107) does to
    the .tflite's inputs under `target`'s recipe: with integer I/O (the Edge TPU's uint8) they
    stay integer, quantized from the same values; with float I/O (the GPU delegate's float32)
    the deployed input type changes. '' when no input changed so."""
    was = {s.name: s.dtype for s in input_specs(before)}
    changed = [s for s in input_specs(after) if s.dtype == "float32" and is_integer(was.get(s.name, "float32"))]
    if not changed:
        return ""
    it = "it" if len(changed) == 1 else "them"
    io = target.recipe.io_dtype
    if io.startswith("float"):
        names = ", ".join(f"{s.name!r} ({was[s.name]})" for s in changed)
        return (f"; the .tflite takes {it} as {io} now ({target.name}'s recipe has {io} I/O): the deployed "
                f"input {names} becomes {io}, fed the same values")
    return (f"; the .tflite takes {it} as {io} ({target.name}'s recipe), quantized from these values "
            "(the inputs table gives scale and zero point)")


def _loading_blockers() -> set[str]:
    """Codes of the rules whose finding refuses loading (the file's own code would run)."""
    return {r.code for r in model_rules() if r.blocks_loading}


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
    # after an attention block), which is not worse; a cut that moves earlier loses ops. A model
    # that now runs fully on the target is not worse for having fewer ops (a LayerNormalization
    # without its float NEG island: 10/10 ops on int8 where it had 11/14).
    now_fully = a.fully_on_target and not b.fully_on_target
    if a.ops_on_target < b.ops_on_target and not now_fully:
        return f"fewer ops on target ({a.ops_on_target}/{a.ops_total} vs {b.ops_on_target}/{b.ops_total})"
    if len(a.float_tensors) > len(b.float_tensors):
        return f"more float tensors ({len(a.float_tensors)} vs {len(b.float_tensors)})"
    bs, as_ = before.fidelity.sqnr_db, after.fidelity.sqnr_db
    # A rewrite that moves the model onto the target is worth some int8 noise (a split grouped
    # conv requantizes at its Concatenate: a few dB); the table states both SQNRs. Only a drop
    # to no signal at all (QF408's floor) undoes such a gain.
    placed_better = (a.fully_on_target and not b.fully_on_target) or a.ops_on_target > b.ops_on_target
    floor = MIN_SQNR_DB if placed_better else bs - SQNR_TOLERANCE_DB
    if as_ < bs - SQNR_TOLERANCE_DB and as_ < floor:
        return f"int8 fidelity dropped (SQNR {as_:.1f} dB vs {bs:.1f} dB)"
    return None




def safe_tolerance(stats: list[dict[str, Any]]) -> float:
    """The float delta a safe rewrite may show: SAFE_TOLERANCE × max(1, peak |output|)."""
    return SAFE_TOLERANCE * max([1.0, *(s["peak"] for s in stats)])


def equivalence(worker, original: str, fixed: str, calib, progress: Progress) -> float:
    doing = "comparing the fixed float model with the original"
    progress(doing)
    # Same samples as the fixed model saw (each model casts them to its own input dtype), so
    # the fixed model's float outputs are reused from its fidelity check.
    return worker.float_equivalence(original, fixed, calib, doing)


def improved(before: Verification, after: Verification, profile) -> str | None:
    """What `after` does better than `before` on the target, or None. Better is one of: runs
    fully on the target (and before did not), more ops on target, fewer float tensors, fewer
    blocker findings of the verification (a cut or island gone), or int8 SQNR up by more than
    SQNR_TOLERANCE_DB."""
    b, a = before.placement, after.placement
    if a.fully_on_target and not b.fully_on_target:
        return "the model now runs fully on the target"
    if a.ops_on_target > b.ops_on_target:
        return f"more ops on target ({a.ops_on_target}/{a.ops_total} vs {b.ops_on_target}/{b.ops_total})"
    if len(a.float_tensors) < len(b.float_tensors):
        return f"fewer float tensors ({len(a.float_tensors)} vs {len(b.float_tensors)})"
    nb, na = (len(_verified_blockers(v, profile)) for v in (before, after))
    if na < nb:
        return f"fewer blockers found by the verification ({na} vs {nb})"
    wb, wa = (_wide_tensors(v) for v in (before, after))
    if wa < wb:
        return f"fewer 64-bit tensors ({wa} vs {wb}), which no integer accelerator runs"
    if after.fidelity.sqnr_db > before.fidelity.sqnr_db + SQNR_TOLERANCE_DB:
        return f"int8 fidelity up (SQNR {after.fidelity.sqnr_db:.1f} dB vs {before.fidelity.sqnr_db:.1f} dB)"
    return None


def no_change(after: Verification, before: Verification | None = None) -> str:
    """Why a rollback found no effect, in the rewritten model's numbers; when the rewrite moved
    the cut (the op it made is itself off target), where the rewritten model is cut and why."""
    a = after.placement
    out = (f"{a.ops_on_target}/{a.ops_total} ops on target, {len(a.float_tensors)} float tensor(s), "
           f"fully on target {a.fully_on_target}, as before")
    cut = a.first_unsupported
    was = before.placement.first_unsupported if before is not None else None
    if cut and (was is None or (cut.get("op"), cut.get("layer")) != (was.get("op"), was.get("layer"))):
        # UpSampling2D(4) to 256x256 as Resizing: one RESIZE_NEAREST_NEIGHBOR, over the size limit
        out += (f"; rewritten, the model is cut at {cut.get('op')} ({cut.get('layer') or 'no layer'}): "
                f"{cut.get('reason')}")
    return out


def _wide_tensors(ver: Verification) -> int:
    from qfix.targets.tflite import read_tflite

    return sum(t.dtype.upper() in ("INT64", "UINT64", "FLOAT64") for t in read_tflite(ver.tflite).tensors)


def _verified_blockers(ver: Verification, profile) -> list[Violation]:
    return [v for v in verification_findings(ver, profile) if v.severity == Severity.BLOCKER]


def with_absolute_handles(config: dict[str, Any], path: Path) -> dict[str, Any]:
    """`config` with its hub handles resolved against the input model's folder (then the cwd),
    as loading the input would, for a candidate written to the run folder; QF917 names the
    input, not qfix's temporary candidate."""
    try:
        return absolute_handles(config, path.resolve().parent)
    except HubError as exc:
        raise error("QF917", f"{path.name}: hub.KerasLayer {exc}") from None


def run_fix(path: str | Path, opts: Options, *, unsafe: bool = False, out_dir: Path | None = None,
            in_place: bool = False, diff_only: bool = False, progress: Progress = lambda s: None) -> FixRun:
    """The PTQ fix job. `--mode qat` is qfix.jobs.qat.run_qat (tfmot decides what is kept there,
    not the PTQ check this job rolls back by): ValueError for it here."""
    if opts.mode == "qat":
        raise ValueError("run_fix is the PTQ job; --mode qat runs qfix.jobs.qat.run_qat")
    path = Path(path)
    t0 = time.perf_counter()
    archive, graph, profile, findings = load(path, opts)
    result = Result(path, archive, graph, profile, findings, budget=opts.memory,
                    select=opts.select, ignore=opts.ignore)
    run = FixRun(result, mode=opts.mode, unsafe=unsafe)
    ctx = context(profile, opts, path)

    original_weights = archive.weights_bytes
    config, weights, applied, run.skipped = apply_fixes(
        copy.deepcopy(archive.config), original_weights, archive.dialect, ctx, opts, unsafe)
    run.fixes, run.config = applied, config
    if diff_only:
        run.diff = config_diff(archive.config, config, path.name)
        mark_applied(result, run, build_graph(config, archive.dialect), opts)
        return run
    result.not_converted = why_not_loadable(findings, opts)
    if result.not_converted:
        # Nothing is written for a model qfix may not load: each rewrite is checked against the
        # original, which would run the file's code. Say so for each, not silently.
        if applied:
            why = result.not_converted.removeprefix("not converted: ")
            names = ", ".join(f"{f.code} {f.layer or '-'}" for f in applied)
            run.skipped.append(f"{names}: each rewrite is checked against the original, which qfix does not "
                               f"load: {why}")
        run.fixes = []
        return run
    from qfix.convert.calibration import load_calibration

    # Bad calibration data is a QF908 before TensorFlow loads (arrays are read without it).
    calib = load_calibration(opts.calibration, input_specs(graph), n=opts.samples)
    outputs = output_paths(path, profile.id, out_dir, in_place)
    check_outputs(outputs)  # before the conversion: a blocked output fails in a second, not minutes
    with session() as worker:
        progress("loading the model")
        original = worker.load(path, archive.dialect, opts.custom_objects, opts.trust_lambdas)

        tags = itertools.count(1)

        def candidate(cfg: dict[str, Any], w: bytes, tag: str) -> str:
            # The candidate lives in the run folder: its hub handles must not be searched there.
            p = write_archive(worker.run_dir / f"{tag}.keras", with_absolute_handles(cfg, path), archive.metadata, w)
            return worker.load(p, archive.dialect, opts.custom_objects, opts.trust_lambdas)

        def build(keep: set[str]) -> tuple:
            """The original config with only the fixes of `keep` re-applied, loaded and proved:
            (config, weights, model, graph, calibration, verification)."""
            cfg, w, _, _ = apply_fixes(
                copy.deepcopy(archive.config), original_weights, archive.dialect, ctx, opts, unsafe,
                skip_codes={f.code for f in run.fixes} - keep)
            model = candidate(cfg, w, f"fixed-{next(tags)}") if keep else original
            g = build_graph(cfg, archive.dialect)
            c = for_inputs(calib, g)
            neutral = all(f.recipe_neutral for f in run.fixes if f.code in keep)
            ver = run.before if neutral else prove(worker, model, g, profile, c, progress, " the fixed model")
            return cfg, w, model, g, c, ver

        def adopt(built: tuple) -> None:
            nonlocal config, weights, fixed, fixed_graph, fixed_calib, after
            if fixed != original and fixed != built[2]:
                worker.drop(fixed)
            config, weights, fixed, fixed_graph, fixed_calib, after = built

        def rebuild(why: str, codes: set[str]) -> None:
            """Roll back the fixes of `codes` (reason `why`), re-apply the others to the original
            config and prove the result (the surviving fixes, converted)."""
            progress(f"rolling back {', '.join(sorted(codes))}: {why}")
            for f in run.active:
                if f.code in codes:
                    f.rolled_back, f.reason = True, why
            adopt(build({f.code for f in run.active}))

        if run.active and not all(f.recipe_neutral for f in run.active):
            try:
                run.before = prove(worker, original, graph, profile, calib, progress, " the original")
            except WorkerFailure as exc:  # the child is gone with the models it held
                if exc.kind != "crash" or not exc.explained:
                    raise
                run.before_failure = exc.message
                original = worker.load(path, archive.dialect, opts.custom_objects, opts.trust_lambdas)
            except QfixError as exc:
                # The converter refused the original (an integer tensor into a float-only
                # kernel, QF106): as for a crash, the rewrites are what may let it convert. If
                # the fixed model fails too, that failure is the run's.
                if exc.code != "QF909":
                    raise
                run.before_failure = exc.message
        fixed = candidate(config, weights, "fixed") if run.active else original
        fixed_graph = build_graph(config, archive.dialect)
        fixed_calib = for_inputs(calib, fixed_graph)
        try:
            # "the fixed model" only when a rewrite changes what converts: a recipe-neutral one
            # (the batch fixed to the recipe's) converts to what the original would.
            after = prove(worker, fixed, fixed_graph, profile, fixed_calib, progress,
                          " the fixed model" if any(not f.recipe_neutral for f in run.active) else "")
        except WorkerFailure as exc:
            if exc.kind != "crash" or not exc.explained:
                raise
            # As in the check run: a crash qfix can explain (no fix avoids it here, e.g. a rolled
            # RNN on a dynamic length) is the verdict, beside its finding. Nothing is written.
            return _not_converted(run, exc.message)
        except QfixError as exc:
            # The converter refused the model as a finding whose fix was not applied explains
            # (QF106 with an unsafe fix and no --unsafe-fixes): the verdict, beside the finding,
            # as in the check run; a blocker remains. Nothing is written.
            applied = {(f.code, f.layer) for f in run.active}
            if exc.code != "QF909" or not explains_failure(
                    [v for v in findings if (v.code, v.location.layer) not in applied]):
                raise
            return _not_converted(run, exc.message)
        # Roll back, rule by rule (last applied first), whatever made the target check worse.
        while run.before is not None and (why := worse(run.before, after)) and run.active:
            rebuild(why, {run.active[-1].code})
        # What is left must earn its place: rewrites the check cannot see (recipe-neutral, or
        # removing code that loading would run) stay; the others are kept only when, together,
        # they improve the verified check.
        proved = [f for f in run.active if not f.recipe_neutral and not f.removes_code]
        if run.before is not None and proved and not improved(run.before, after, profile):
            rebuild(NO_EFFECT + no_change(after, run.before), {f.code for f in proved})
        # Several rules' rewrites that help together: each must add something. Without it
        # (last applied first), the check must be worse; one conversion per rule, so only for
        # a few rules (the usual model has one or two).
        codes = list(dict.fromkeys(f.code for f in run.active if not f.recipe_neutral and not f.removes_code))
        if run.before is not None and 1 < len(codes) <= MAX_ATTRIBUTED:
            for code in reversed(codes):
                progress(f"checking what {code} adds")
                trial = build({f.code for f in run.active} - {code})
                if improved(trial[5], after, profile):
                    if trial[2] != original:
                        worker.drop(trial[2])
                    continue
                for f in run.active:
                    if f.code == code:
                        f.rolled_back, f.reason = True, NO_EFFECT + "the other rewrites do as well without it"
                adopt(trial)
        if run.before is None and run.before_failure is None:
            run.before = after if run.active else None
        stats = worker.output_stats(fixed, fixed_calib, "reading the float outputs")
        run.tolerance = safe_tolerance(stats)
        if run.active:
            try:
                run.float_equivalence = equivalence(worker, original, fixed, fixed_calib, progress)
            except QfixError as exc:
                if run.before_failure is None or isinstance(exc, WorkerFailure):
                    raise
                # the original does not even run in TensorFlow (a Keras 3 model only its
                # symbolic shapes accepted): there is nothing to compare the fixed model with
                run.float_reference_failure = exc.message
            # A "safe" rewrite promises the same outputs: beyond the tolerance it is not safe.
            # Only judged when every rewrite that changes the model is a safe one (the delta of
            # several cannot be split between them).
            changing = [f for f in run.active if not f.recipe_neutral]
            if (run.float_equivalence is not None and run.float_equivalence > run.tolerance and changing
                    and all(f.applicability == Applicability.SAFE.value for f in changing)):
                why = (f"float delta {run.float_equivalence:.3g} exceeds the safe tolerance "
                       f"{run.tolerance:.3g}")
                if unsafe:  # the user accepts changed numbers: keep them, not called safe
                    for f in changing:
                        f.applicability, f.reason = Applicability.UNSAFE.value, why
                else:
                    rebuild(why, {f.code for f in changing})
                    stats = worker.output_stats(fixed, fixed_calib, "reading the float outputs")
                    run.float_equivalence = (equivalence(worker, original, fixed, fixed_calib, progress)
                                             if run.active else None)
        run.config = config

    result.input_layers = len(list(result.graph.walk()))
    result.graph = fixed_graph  # built from the final config above
    result.findings = list(findings)
    mark_applied(result, run, fixed_graph, opts, after)  # before judging: applied findings stay as they are
    judge(result, after, stats, fixed_calib, {l.name: l.out_dtype for l in graph.input_layers()})
    # No rewrite kept: the model is the input's, so only the verified conversion is written.
    stale = not run.active and not in_place and outputs.model.exists()
    model_zip = archive_zip(config, archive.metadata, weights) if run.active else None
    compiled = write_outputs(outputs, model_zip, after.tflite, after.compiled)
    run.outputs = {"model": str(outputs.model) if run.active else None, "tflite": str(outputs.tflite)}
    if compiled:  # the target compiler's file (Vela's), what --memory flash= measured
        run.outputs["compiled"] = next(iter(compiled.values()))
    run.not_written = None if run.active else str(outputs.model)
    run.stale_model = stale
    run.batch_note = batch_note(profile, fixed_graph, run)
    result.timings["total"] = time.perf_counter() - t0
    return run


def _not_converted(run: FixRun, message: str) -> FixRun:
    """The fixed model does not convert, for a reason a finding explains: that is the verdict;
    every rewrite is unproven and nothing is written."""
    run.result.not_converted = f"not converted: {message}"
    for f in run.active:
        f.rolled_back, f.reason = True, "not proven: the model does not convert"
    run.config = None
    return run


def batch_note(profile, graph, run: FixRun) -> str | None:
    """The recipe converts at the profile's batch; say so when the model file keeps a dynamic
    one (targets without static shapes, e.g. int8, have no batch rewrite), so that neither the
    recipe line nor the rewrites claim the `.qfix.keras` has it."""
    batch = profile.recipe.batch
    dynamic = [l.name for l in graph.input_layers() if l.out_shape and l.out_shape[0] is None]
    if not batch or not dynamic:
        return None
    model = run.outputs.get("model") or "the input model"
    return (f"the .tflite runs batch {batch} (fixed at conversion only); {model} keeps a dynamic batch "
            f"on {', '.join(dynamic)}")


def mark_applied(result: Result, run, fixed_graph, opts: Options, ver: Verification | None = None) -> None:
    """An original finding is resolved when the fixed model no longer has it: by its own fix,
    or by another one (folding an input cast also removes the uint8 ⊕ float merge). `run` is
    a FixRun or a qfix.jobs.qat.QatRun (anything with `active` fixes).

    "Resolved by another fix" is a claim about the converted model, so it is checked against
    the fixed model's verification `ver` when there is one: a blocker is not resolved while its
    layer keeps, on its own account, an op off the target that is its cause (the ops it names,
    `Violation.ops`; any op for a finding that names none). Ops off the target only because of
    a cut elsewhere (`spread`) and other ops of the layer are other causes, reported as QF304:
    a GRU unrolled by QF305 whose PACK still cuts the Edge TPU's graph has no WHILE left, so
    QF303's WHILE is resolved."""
    if not run.active:
        return
    ctx = context(result.profile, opts, result.path)
    remaining = {(v.code, v.location.layer) for v in lint(fixed_graph, ctx, None, None)}
    still_cut = _layers_off_target(ver)
    for v in result.findings:
        if v.fix is None or (v.code, v.location.layer) in remaining:
            continue
        if (not v.fix.edits and v.severity == Severity.BLOCKER and v.location.layer is not None
                and v.location.layer in still_cut
                and (not v.ops or set(v.ops) & still_cut[v.location.layer])):
            continue
        v.applied = True


def _layers_off_target(ver: Verification | None) -> dict[str, set[str]]:
    """The layers with an op the verified placement keeps off the target on its own account
    (not only after a cut elsewhere; I/O boundary ops left out), and those ops."""
    if ver is None:
        return {}
    off: dict[str, set[str]] = {}
    for p in ver.placement.ops:
        if p.layer is not None and not p.on_target and not p.boundary and not p.spread:
            off.setdefault(p.layer, set()).add(p.op)
    return off
