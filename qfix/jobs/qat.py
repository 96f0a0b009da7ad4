"""The `--mode qat` job: make a functional model trainable with tfmot quantization-aware
training, and prove it by training it.

    static findings → Keras 3 → tf_keras (one call, see `tf_keras_input`) → the qat-mode
    rewrites (qfix.jobs.fix.apply_fixes) → candidate `.keras` in the run folder →
    tfmot `quantize_model` + one training step + QAT conversion (worker `qat_trial`) →
    the QAT `.tflite` checked op by op against the target → float equivalence of the
    rewrites → verdict → `<stem>.qfix.qat.keras` (not with --check).

The verdict comes from tfmot's run, never from the static rules alone: a model on which
`quantize_model` raises gets QF505 (tfmot's message, the layer it names) and exit 1. Loading,
tfmot and converting run in the worker child (TF_USE_LEGACY_KERAS=1); this process never
imports TensorFlow.
"""

from __future__ import annotations

import copy
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qfix.convert.worker import session
from qfix.errors import error
from qfix.jobs.check import Options, Result, judge, load, why_not_loadable, context
from qfix.jobs.fix import (AppliedFix, SAFE_TOLERANCE, mark_applied, apply_fixes, for_inputs, safe_tolerance,
                            with_absolute_handles)
from qfix.jobs.outputs import check_outputs, qat_output_paths, write_outputs
from qfix.jobs.prove import Progress, verify
from qfix.model.archive import KerasArchive
from qfix.model.graph import build_graph
from qfix.model.inputs import input_specs
from qfix.model.edit import EditError
from qfix.model.rewrites.drop_noop_cast import drop_noop_casts
from qfix.model.rewrites.annotate_float_part import FloatPartPlan, annotate_float_part
from qfix.model.to_tf_keras import Untranslatable, translate, written_notes
from qfix.model.writer import archive_zip, write_archive
from qfix.rules.custom_layer_quantize_config import attach_templates
from qfix.rules.qat_float_layer import QatFloatLayer
from qfix.rules.tfmot_refused import TfmotRefused
from qfix.types import QfixError, Severity

KERAS3_NOT_TRAINED = "not trained: the Keras 3 model has no tf_keras equivalent (QF501): {}"
REFUSED = "not trained: tfmot's quantize_model refused the model (QF505)"
NOOP_CAST = "a cast to the dtype its input already has: removed, float outputs unchanged"
LAMBDA_CODE = "QF202"  # lambda-layer: a Lambda qfix's table replaces with built-in layers
MAX_ROLLBACKS = 2  # tfmot runs after rolling back rewrites it refuses (one trial each)


@dataclass
class QatRun:
    """A `--mode qat` run. `result` holds the findings (static, QF505/QF506, the QAT model's
    verification) and, when the QAT model converted, its Verification."""

    result: Result
    fixes: list[AppliedFix] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    trial: Any = None  # qfix.convert.qat.QatTrial, None when tfmot never ran
    not_trained: str | None = None  # why tfmot did not run, or refused the model
    float_equivalence: float | None = None  # rewritten float model vs the input (max abs diff)
    tolerance: float = SAFE_TOLERANCE
    translated: bool = False  # the input was Keras 3, translated to tf_keras
    translation_notes: list[str] = field(default_factory=list)  # what the translation changed
    outputs: dict[str, str | None] = field(default_factory=lambda: {"model": None})
    not_written: str | None = None  # why no `.qfix.qat.keras` was written
    output_path: str = ""  # where the `.qfix.qat.keras` goes (the snippet loads it)
    custom_objects: str | None = None
    templates: dict[str, str] = field(default_factory=dict)  # QF510's QuantizeConfig template by layer
    float_part: FloatPartPlan | None = None  # integer inputs: only the float part is annotated
    casts_dropped: list[str] = field(default_factory=list)  # no-op casts removed (drop_noop_cast)
    # When the float outputs change: what changes them, each with the max abs diff left without
    # it ("QF504 (relu6 split)" → 0.0; "the Keras 3 → tf_keras translation" when no rewrite does).
    float_culprits: dict[str, float] = field(default_factory=dict)

    @property
    def annotated(self) -> bool:
        """The written model carries the float part's annotations: train it with quantize_apply."""
        return self.float_part is not None and bool(self.float_part.annotate)

    @property
    def changed(self) -> bool:
        """The model tfmot gets is not the input as it is (what is then compared and written)."""
        return bool(self.active or self.translated or self.annotated or self.casts_dropped)

    @property
    def active(self) -> list[AppliedFix]:
        return [f for f in self.fixes if not f.rolled_back]

    @property
    def exact(self) -> bool:
        """The rewrites keep the float outputs (within the safe tolerance), or there are none.
        Unsafe rewrites (--unsafe-fixes) promise no such thing: the report states their delta."""
        if any(f.applicability == "unsafe" for f in self.active):
            return True
        return self.float_equivalence is None or self.float_equivalence <= self.tolerance

    @property
    def trained(self) -> bool:
        """One training step ran, its losses are finite and it moved the weights."""
        step = self.trial.step if self.trial is not None else None
        return step is not None and step.finite and step.weights_changed

    def problems(self) -> list[str]:
        """Why the run is not a success besides the findings' blockers (the verdict's words)."""
        out = []
        if self.not_trained:
            out.append(self.not_trained)
        elif self.trial is not None and not self.trained:
            out.append("the training step did not train (non-finite loss or weights unchanged)")
        if self.trial is not None and self.trial.conversion_error:
            out.append(f"the QAT model does not convert: {self.trial.conversion_error}")
        if not self.exact:
            blame = "".join(f"; {who} changes them (max abs diff without it: {left:.3g})"
                            for who, left in self.float_culprits.items())
            out.append(f"the rewrites change the float outputs (max abs diff {self.float_equivalence:.3g} "
                       f"> tolerance {self.tolerance:.3g}){blame}")
        return out

    def exit_code(self) -> int:
        if self.problems() or self.result.verification is None:
            return 1
        return self.result.exit_code()


def tf_keras_input(archive: KerasArchive) -> tuple[dict[str, Any], bytes, dict[str, Any], list[str]]:
    """The input as tf_keras: (config, weights, metadata, notes). A Keras 3 model is translated
    (qfix.model.to_tf_keras; its float outputs are compared with the original's after the run);
    `notes` say what the translation changed beyond spelling. Raises Untranslatable."""
    if archive.dialect == "tf_keras":
        return archive.config, archive.weights_bytes, archive.metadata, []
    t = translate(archive.config, archive.weights_bytes)
    return t.config, t.weights, t.metadata, t.notes


def run_qat(path: str | Path, opts: Options, *, check: bool = False, unsafe: bool = False,
            out_dir: Path | None = None, progress: Progress = lambda s: None) -> QatRun:
    path = Path(path)
    t0 = time.perf_counter()
    archive, graph, profile, findings = load(path, opts)
    result = Result(path, archive, graph, profile, findings, budget=opts.memory,
                    select=opts.select, ignore=opts.ignore)
    run = QatRun(result, custom_objects=opts.custom_objects)
    outputs = qat_output_paths(path, out_dir)
    run.output_path = str(outputs.model)
    result.timings["static"] = time.perf_counter() - t0

    try:
        tfk_config, tfk_weights, metadata, run.translation_notes = tf_keras_input(archive)
    except Untranslatable as exc:
        why = f"layer {exc.layer!r}: {exc.reason}"
        run.not_trained = result.not_converted = KERAS3_NOT_TRAINED.format(why)
        for v in findings:
            if v.code == "QF501":
                v.message = f"{v.message}; qfix cannot translate it: {why}"
        return run
    run.translated = archive.dialect != "tf_keras"
    if run.translated:
        for v in findings:
            if v.code == "QF501":  # resolved by the translation; its float outputs are compared below
                v.applied = True
                v.message = f"{v.message} (translated to tf_keras)"
    try:
        tfk_config, tfk_weights, run.casts_dropped = drop_noop_casts(tfk_config, tfk_weights, "tf_keras")
    except EditError:  # a config the edit cannot rewire: tfmot meets the casts as they are
        run.casts_dropped = []
    _casts_dropped(findings, run.casts_dropped, run.translation_notes)
    ctx = context(profile, opts, path)  # hub handles are relative to the model file
    config, weights, run.fixes, run.skipped = apply_fixes(
        copy.deepcopy(tfk_config), tfk_weights, "tf_keras", ctx, opts, unsafe)
    result.not_converted = why_not_loadable(_still_blocking(findings, run.fixes), opts)
    if result.not_converted:
        run.not_trained = result.not_converted = result.not_converted.replace("not converted", "not trained", 1)
        run.fixes = []
        return run
    from qfix.convert.calibration import load_calibration

    # Bad calibration data is a QF908 before TensorFlow loads (arrays are read without it).
    user_calib = load_calibration(opts.calibration, input_specs(graph), n=opts.samples)
    if not check and (run.fixes or run.translated or run.casts_dropped):
        check_outputs(outputs)  # before tfmot: a blocked output fails in a second, not minutes
    with session(legacy_keras=True) as worker:
        for attempt in range(MAX_ROLLBACKS + 1):
            config, weights, run.float_part = annotate_float_part(config, weights)
            fixed_graph = build_graph(config, "tf_keras")
            calib = for_inputs(user_calib, fixed_graph)
            # The candidate lives in the run folder: its hub handles must not be searched there.
            candidate = write_archive(worker.run_dir / f"qat-candidate-{attempt}.keras",
                                      with_absolute_handles(config, path), metadata, weights)
            progress("quantizing with tfmot, training one step, converting")
            try:
                trial = worker.qat_trial(candidate, profile.recipe, calib, opts.custom_objects, opts.trust_lambdas,
                                         "quantizing the model with tfmot")
            except QfixError as exc:
                if exc.code != "QF917" or not run.translated:
                    raise
                # The Keras 3 model's own classes are registered with Keras 3 only (the
                # input loaded); tf_keras needs its own twin of each.
                named = re.search(r"names ('[^']+')", exc.message)
                run.not_trained = result.not_converted = KERAS3_NOT_TRAINED.format(
                    f"the custom class {named.group(1) if named else ''} is registered with Keras 3 only; "
                    "tfmot needs a tf_keras class of the same registered name (tf_keras.saving."
                    "register_keras_serializable) in the --custom-objects module")
                return run
            culprits = _rewrites_refused(trial, run.fixes) if attempt < MAX_ROLLBACKS else set()
            if not culprits:
                break
            # A rewrite for the target (LeakyReLU → PReLU) can make a layer tfmot's registry
            # lacks: undo it, as the PTQ job undoes a rewrite that makes the check worse.
            progress(f"rolling back {', '.join(sorted(culprits))}: tfmot refuses the rewritten layer")
            for f in run.fixes:
                if f.code in culprits:
                    f.rolled_back, f.reason = True, f"tfmot's quantize_model refuses the rewritten layer: {trial.refused}"
            worker.drop(str(candidate))  # refused: the child holds no QAT model for it
            rolled = [f for f in run.fixes if f.rolled_back]
            skip = {f.code for f in rolled}
            config, weights, kept, run.skipped = apply_fixes(
                copy.deepcopy(tfk_config), tfk_weights, "tf_keras", ctx, opts, unsafe, skip_codes=skip)
            run.fixes = rolled + kept
        run.trial = trial
        run.templates = attach_templates(result.findings, trial.custom_weights, fixed_graph)
        run.translation_notes = written_notes(run.translation_notes, config)
        model = str(candidate)
        if trial.refused:
            run.not_trained = REFUSED
            result.findings.extend(TfmotRefused().from_trial(trial, fixed_graph))
        else:
            result.findings.extend(QatFloatLayer().from_trial(trial))
        if trial.tflite is not None:
            ver = verify(worker, trial.qat_model, fixed_graph, profile, calib, trial.tflite,
                         trial.seconds.get("convert", 0.0), progress, " the QAT model", qat_recipe(profile.recipe))
            ver.qat_reference = True  # the .tflite is compared with the QAT model, not the float one
            stats = worker.output_stats(model, calib, "reading the float outputs")
            run.tolerance = safe_tolerance(stats)
            if run.changed:
                progress("comparing the rewritten float model with the original")
                original = _reference(worker, path, archive.dialect, opts, run, metadata, calib, lambda skip: apply_fixes(
                    copy.deepcopy(tfk_config), tfk_weights, "tf_keras", ctx, opts, unsafe, skip_codes=skip))
                run.float_equivalence = worker.float_equivalence(
                    original, model, calib, "comparing the rewritten float model with the original")
                if not run.exact:
                    progress("finding the rewrite that changes the float outputs")
                    run.float_culprits = _float_culprits(
                        worker, original, run, calib, lambda skip: apply_fixes(
                            copy.deepcopy(tfk_config), tfk_weights, "tf_keras", ctx, opts, unsafe, skip_codes=skip),
                        metadata)
            result.input_layers = len(list(graph.walk()))
            result.graph = fixed_graph
            mark_applied(result, run, fixed_graph, opts, ver)
            judge(result, ver, stats, calib, {l.name: l.out_dtype for l in graph.input_layers()})
            one_step_ranges(result.findings)
        else:
            mark_applied(result, run, fixed_graph, opts)
    result.not_converted = result.not_converted or run.not_trained
    if check:
        result.timings["total"] = time.perf_counter() - t0
        return run
    if run.not_trained or not run.exact:
        run.not_written = f"{outputs.model}: not written ({'; '.join(run.problems())})"
    elif not run.changed:
        run.not_written = f"{outputs.model}: the input is already what quantize_model accepts (nothing rewritten)"
    else:
        write_outputs(outputs, archive_zip(config, metadata, weights), None)
        run.outputs = {"model": str(outputs.model)}
    result.timings["total"] = time.perf_counter() - t0
    return run


def one_step_ranges(findings: list) -> None:
    """QF408 (zero signal) on a QAT model trained one step is a warning, not the verdict: its
    output quantizers keep tfmot's initial ranges (±6), whose step (12/255 ≈ 0.047) dwarfs small
    outputs, so one rounding flip between the .tflite and the QAT model reads as noise, and
    outputs smaller than half a step all round to one value (the same answer for every sample).
    Training sets the ranges; the user's run decides — the message says what to do."""
    for v in findings:
        if v.code == "QF408" and v.severity == Severity.BLOCKER:
            v.severity = Severity.WARNING
            v.message += (" (a QAT model trained one step keeps tfmot's initial quantizer ranges, ±6 at the "
                          "outputs, step 0.047; training sets them: train on representative data until the "
                          "outputs vary, and check the converted model's outputs again)")


def _casts_dropped(findings: list, dropped: list[str], notes: list[str]) -> None:
    """A cast to the dtype its input has is removed before tfmot runs (qfix.model.rewrites.
    drop_noop_cast): QF303's CAST on it is resolved, and the notes say what went."""
    for name in dropped:
        notes.append(f"{name}: {NOOP_CAST}")
        for v in findings:
            if v.code == "QF303" and v.location.layer == name:
                v.applied = True
                v.message = f"{v.message} ({NOOP_CAST})"


def _still_blocking(findings: list, fixes: list[AppliedFix]) -> list:
    """The input's findings less the Lambdas a kept rewrite replaced (QF202 with a built-in
    layer from qfix's table, read from the bytecode, never run): the model tfmot loads has no
    bytecode left there, so those need no --trust-lambdas."""
    replaced = {f.layer for f in fixes if f.code == LAMBDA_CODE and not f.rolled_back}
    return [v for v in findings if not (v.code == LAMBDA_CODE and v.location.layer in replaced)]


def _reference(worker, path: Path, dialect: str, opts: Options, run: QatRun, metadata, calib, refix) -> str | dict:
    """The model the rewritten one is compared with: the input itself, or, when loading it would
    run Lambda bytecode the user did not trust, the input with only its Lambdas replaced (QF202's
    table rows are the same float functions), so every other rewrite is still checked. A Keras 3
    input whose custom classes the worker cannot find in Keras 3 gives its outputs instead of a
    handle (`keras3_outputs`)."""
    if opts.trust_lambdas or not any(f.code == LAMBDA_CODE for f in run.active):
        try:
            return worker.load(path, dialect, opts.custom_objects, opts.trust_lambdas)
        except QfixError as exc:
            if exc.code != "QF917" or dialect != "keras3" or not opts.custom_objects:
                raise
        return keras3_outputs(path, opts, calib)
    others = {f.code for f in run.active} - {LAMBDA_CODE}
    config, weights, _, _ = refix(others)
    ref = write_archive(worker.run_dir / "float-reference.keras", config, metadata, weights)
    return worker.load(ref, "tf_keras", opts.custom_objects, False)


def keras3_outputs(path: Path, opts: Options, calib) -> dict:
    """The Keras 3 input's float outputs on `calib`, computed in a Keras 3 worker. The QAT
    worker runs with TF_USE_LEGACY_KERAS=1, and a --custom-objects module that picks its Keras by
    that variable (`import tf_keras as keras` when it is "1") registers its classes with tf_keras
    there: what tfmot needs, but the Keras 3 original then finds no class. Without the variable
    the module registers them with Keras 3. Raises QF917 saying what the module must register
    when it registers no Keras 3 class either."""
    with session(legacy_keras=False) as k3:
        try:
            key = k3.load(path, "keras3", opts.custom_objects, opts.trust_lambdas)
        except QfixError as exc:
            if exc.code == "QF917":
                exc.message += (" — qfix compares the tf_keras model tfmot trains with this Keras 3 original, "
                                "so the module must register both: a tf_keras class when TF_USE_LEGACY_KERAS=1 "
                                "(the QAT worker) and a Keras 3 class otherwise")
            raise
        return k3.float_outputs(key, calib, "reading the Keras 3 original's float outputs")


def _float_culprits(worker, original: str | dict, run: QatRun, calib, refix, metadata) -> dict[str, float]:
    """Which rewrite changes the float outputs: the model is rebuilt without each code of the
    kept rewrites in turn (`refix(skip_codes)`, float only: no tfmot) and compared with the
    input; a code without which the outputs agree (within the tolerance) is named, with the
    diff left. When none is, and the input was Keras 3, the model with no rewrite at all tells
    whether the translation does. Returns {description: max abs diff without it}."""
    codes = sorted({f.code for f in run.active})

    def diff_without(skip: set[str], tag: str) -> float:
        config, weights, _, _ = refix(skip)
        path = write_archive(worker.run_dir / f"float-without-{tag}.keras", config, metadata, weights)
        key = worker.load(path, "tf_keras", run.custom_objects, False)
        try:
            return worker.float_equivalence(original, key, calib, "comparing the float model without a rewrite")
        finally:
            worker.drop(key)

    found: dict[str, float] = {}
    for code in codes:
        left = diff_without({code}, code)
        if left <= run.tolerance:
            layers = sorted({f.layer for f in run.active if f.code == code and f.layer})
            found[f"{code} ({', '.join(map(repr, layers))})" if layers else code] = left
    if not found and run.translated:
        left = diff_without(set(codes), "any")
        if left > run.tolerance:
            found["the Keras 3 → tf_keras translation"] = left
    return found


def _rewrites_refused(trial, fixes: list[AppliedFix]) -> set[str]:
    """The codes of the kept rewrites that made the layer tfmot refuses (none when tfmot
    accepted the model or refuses a layer no rewrite touched)."""
    layer = trial.refused_layer if trial.refused else None  # the layer tfmot names itself
    return {f.code for f in fixes if not f.rolled_back and layer is not None and f.layer == layer}


def qat_recipe(recipe) -> str:
    """How qfix converts the QAT model for the target (the `recipe` adapted, see qfix.convert.qat)."""
    io = f"{recipe.io_dtype} I/O, " if recipe.full_integer else ""
    batch = f"batch {recipe.batch} at conversion, " if recipe.batch else ""
    return (f"QAT conversion: Optimize.DEFAULT, {io}{batch}the model's own quantization ranges "
            "(no representative dataset, no INT8-only op set)")
