"""The check run: read → graph → static rules → convert → op-by-op check → numbers.

The static half runs here; loading, converting and interpreting run in the worker child
(qfix.convert.worker) through qfix.jobs.prove: this process never imports TensorFlow.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qfix.convert.worker import WorkerFailure, session
from qfix.jobs.causes import one_blocker_per_cause
from qfix.jobs.numbers import input_quantization, numbers_findings
from qfix.jobs.prove import Progress, Verification, prove, verification_findings
from qfix.jobs.runtime import check_budget, runtime_findings
from qfix.model.archive import KerasArchive, read_archive
from qfix.model.graph import Graph, build_graph
from qfix.rules import model_rules, verify_rules
from qfix.rules import select as select_rules
from qfix.rules.lint import lint
from qfix.model.inputs import input_specs
from qfix.rules.base import Context
from qfix.targets import Profile, load_profile
from qfix.targets.memory import MemoryBudget
from qfix.types import QfixError, Severity, Violation

@dataclass
class Options:
    target: str = "edgetpu"
    calibration: str | None = None
    custom_objects: str | None = None
    trust_lambdas: bool = False
    mode: str = "ptq"
    select: list[str] | None = None
    ignore: list[str] | None = None
    samples: int = 32
    static_only: bool = False
    memory: MemoryBudget | None = None  # --memory: the device's flash and RAM


@dataclass
class Result:
    path: Path
    archive: KerasArchive
    graph: Graph
    profile: Profile
    findings: list[Violation]
    verification: Verification | None = None
    not_converted: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    input_layers: int | None = None  # layers of the input model when `graph` is the fixed one
    # Each input's quantization in the .tflite (qfix.jobs.numbers.input_quantization).
    input_quantization: list[dict] | None = None
    budget: MemoryBudget | None = None  # --memory, judged against the verification's `memory`
    # --select / --ignore: the verification's findings are kept by the same selectors as the lint's
    select: list[str] | None = None
    ignore: list[str] | None = None

    @property
    def blockers(self) -> list[Violation]:
        return [v for v in self.findings if v.severity == Severity.BLOCKER and not v.applied]

    def exit_code(self) -> int:
        if self.verification is not None:
            return 0 if self.verification.placement.fully_on_target and not self.blockers else 1
        return 1 if self.blockers or self.not_converted else 0


def context(profile: Profile, opts: Options, model: str | Path | None = None) -> Context:
    """The rules' context; `model` is the model file (hub handles are relative to its folder)."""
    return Context(profile, opts.mode, trust_lambdas=opts.trust_lambdas, custom_objects=opts.custom_objects,
                   model_dir=str(Path(model).resolve().parent) if model is not None else None)


def load(path: str | Path, opts: Options) -> tuple[KerasArchive, Graph, Profile, list[Violation]]:
    """The static half: no TensorFlow. A --memory budget the target cannot measure is a QF914
    here, before anything converts."""
    profile = load_profile(opts.target)
    check_budget(opts.memory, profile)
    archive = read_archive(path)
    graph = build_graph(archive.config, archive.dialect)
    return archive, graph, profile, lint(graph, context(profile, opts, path), opts.select, opts.ignore)


def why_not_loadable(findings: list[Violation], opts: Options) -> str | None:
    """Loading runs code for Lambda and custom classes: refuse unless the user opted in (the
    rules that say so: `ModelRule.blocks_loading`)."""
    blocking = {r.code: r() for r in model_rules() if r.blocks_loading}
    for v in findings:
        why = blocking[v.code].refuses_loading(v, opts) if v.code in blocking else None
        if why:
            return why
    return None


def explains_failure(findings: list[Violation]) -> bool:
    failing = {r.code for r in model_rules() if r.fails_conversion}
    return any(v.code in failing and v.severity == Severity.BLOCKER for v in findings)


DISPROVED = "the verification disproves this: the converted model runs fully on the target"
LAYER_DISPROVED = "the verification disproves this: every op of {layer!r} in the converted model runs on the target"


def reconcile(findings: list[Violation], ver: Verification) -> None:
    """The verification is the proof: a static blocker (a Lambda or custom class qfix cannot
    read, a predicted cut) on a model whose converted form runs fully on the target is a
    prediction the proof contradicts. It becomes a warning saying so, so that the table, the
    verdict and the exit status agree. On a partial run the same holds per layer: a static
    blocker about a layer whose converted ops the placement all puts on the target is
    contradicted too. Findings of the verification itself, and findings about the numbers
    (`Violation.numeric`), which no placement disproves, are left alone."""
    static = {r.code for r in model_rules()}
    placement = ver.placement
    per_layer: dict[str, list[bool]] = {}
    for op in placement.ops:
        if op.layer is not None and not op.boundary:
            per_layer.setdefault(op.layer, []).append(op.on_target)
    for v in findings:
        if v.code not in static or v.severity != Severity.BLOCKER or v.applied or v.numeric:
            continue
        if placement.fully_on_target:
            v.severity = Severity.WARNING
            v.message = f"{v.message} ({DISPROVED})"
        elif v.location.layer is not None and all(per_layer.get(v.location.layer, [False])):
            v.severity = Severity.WARNING
            v.message = f"{v.message} ({LAYER_DISPROVED.format(layer=v.location.layer)})"


def run_check(path: str | Path, opts: Options, progress: Progress = lambda s: None) -> Result:
    t0 = time.perf_counter()
    archive, graph, profile, findings = load(path, opts)
    result = Result(Path(path), archive, graph, profile, findings, budget=opts.memory,
                    select=opts.select, ignore=opts.ignore)
    result.timings["static"] = time.perf_counter() - t0
    if opts.static_only:
        return result
    result.not_converted = why_not_loadable(findings, opts)
    if result.not_converted is None:
        try:
            ver, stats, calib = convert_and_verify(Path(path), archive, graph, profile, opts, progress)
        except WorkerFailure as exc:
            # A native crash whose cause qfix knows (a layer named by crash_hint, e.g. a rolled
            # Keras 3 RNN, QF305) is this model's verdict, reported beside the findings; an
            # unexplained crash or a limit stays a QF909 error.
            if exc.kind != "crash" or not exc.explained:
                raise
            result.not_converted = f"not converted: {exc.message}"
        except QfixError as exc:
            # likewise a converter error that a finding explains (`ModelRule.fails_conversion`)
            if exc.code != "QF909" or not explains_failure(findings):
                raise
            result.not_converted = f"not converted: {exc.message}"
        else:
            judge(result, ver, stats, calib)
    result.timings["total"] = time.perf_counter() - t0
    return result


def judge(result: Result, ver: Verification, stats: list[dict], calib,
          declared: dict[str, str] | None = None) -> None:
    """Attach the verification `ver` of `result.graph`'s model to `result`: the findings of the
    placement and of the numbers (QF408, QF409, from the float outputs' `stats` and the
    calibration `calib`), then the static findings the proof contradicts downgraded.
    `declared`: the input dtypes of the user's model, when rewrites changed them."""
    result.verification = ver
    result.input_quantization = input_quantization(ver.tflite, calib, result.graph, declared)
    found = [*verification_findings(ver, result.profile), *runtime_findings(ver, result.profile, result.budget),
             *numbers_findings(ver, stats, result.input_quantization, result.graph)]
    skipped = ({r.code for r in verify_rules()}
               - {r.code for r in select_rules(verify_rules(), result.select, result.ignore)})
    result.findings.extend(v for v in found if v.code not in skipped)
    reconcile(result.findings, ver)
    result.findings = one_blocker_per_cause(result.findings, ver)


def convert_and_verify(path: Path, archive: KerasArchive, graph: Graph, profile: Profile, opts: Options,
                       progress: Progress) -> tuple[Verification, list[dict], Any]:
    """The verification, the float outputs' stats (qfix.convert.output_stats) and the
    calibration it used."""
    from qfix.convert.calibration import load_calibration

    # Bad calibration data is a QF908 before TensorFlow loads (arrays are read without it).
    calib = load_calibration(opts.calibration, input_specs(graph), n=opts.samples)
    with session() as worker:
        progress("loading the model")
        model = worker.load(path, archive.dialect, opts.custom_objects, opts.trust_lambdas)
        ver = prove(worker, model, graph, profile, calib, progress)
        stats = worker.output_stats(model, calib, "reading the float outputs")
        return ver, stats, calib
