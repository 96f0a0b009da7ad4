"""The check run: read → graph → static rules → convert → op-by-op check → numbers.

TensorFlow is imported only inside `_convert_and_verify` (through qfix.convert.converter/verify).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from qfix.model.archive import KerasArchive, read_archive
from qfix.model.graph import Graph, build_graph
from qfix.rules import model_rules
from qfix.rules.lint import lint
from qfix.model.inputs import input_specs
from qfix.rules.base import Context
from qfix.targets import Profile, load_profile
from qfix.types import Severity, Violation

Progress = Callable[[str], None]


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


@dataclass
class Verification:
    placement: Any  # qfix.targets.check.Placement
    fidelity: Any | None  # qfix.convert.fidelity.Fidelity
    compiler: dict[str, Any] | None
    convert_seconds: float
    tflite: bytes = b""
    calibration_source: str = ""
    recipe: str = ""

    def to_json(self) -> dict[str, Any]:
        p = self.placement
        fid = self.fidelity
        return {
            "converted": True,
            "ops_total": p.ops_total,
            "ops_on_target": p.ops_on_target,
            "fully_on_target": p.fully_on_target,
            "first_unsupported": p.first_unsupported,
            "float_tensors": p.float_tensors,
            "dynamic_tensors": p.dynamic_tensors,
            "warnings": p.warnings,
            "ops": [
                {"index": o.index, "op": o.op, "version": o.version, "layer": o.layer,
                 "on_target": o.on_target, "status": o.status, "reason": o.reason}
                for o in p.ops
            ],
            "fidelity": None if fid is None else {
                "samples": fid.samples,
                "synthetic": fid.synthetic,
                "calibration": self.calibration_source,
                "sqnr_db": _finite(fid.sqnr_db),
                "max_abs_error": fid.max_abs_error,
                "top1_agreement": fid.top1_agreement,
            },
            "compiler": self.compiler or {"used": "profile", "name": None},
            "convert_seconds": round(self.convert_seconds, 3),
            "recipe": self.recipe,
        }


def _finite(x: float) -> float | str:
    return x if x == x and abs(x) != float("inf") else str(x)


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

    @property
    def blockers(self) -> list[Violation]:
        return [v for v in self.findings if v.severity == Severity.BLOCKER and not v.applied]

    def exit_code(self) -> int:
        if self.verification is not None:
            return 0 if self.verification.placement.fully_on_target and not self.blockers else 1
        return 1 if self.blockers or self.not_converted else 0


def context(profile: Profile, opts: Options) -> Context:
    return Context(profile, opts.mode, trust_lambdas=opts.trust_lambdas, custom_objects=opts.custom_objects)


def load(path: str | Path, opts: Options) -> tuple[KerasArchive, Graph, Profile, list[Violation]]:
    """The static half: no TensorFlow."""
    profile = load_profile(opts.target)
    archive = read_archive(path)
    graph = build_graph(archive.config, archive.dialect)
    return archive, graph, profile, lint(graph, context(profile, opts), opts.select, opts.ignore)


def why_not_loadable(findings: list[Violation], opts: Options) -> str | None:
    """Loading runs code for Lambda and custom classes: refuse unless the user opted in (the
    rules that say so: `ModelRule.blocks_loading`)."""
    blocking = {r.code: r() for r in model_rules() if r.blocks_loading}
    for v in findings:
        why = blocking[v.code].refuses_loading(v, opts) if v.code in blocking else None
        if why:
            return why
    return None


def run_check(path: str | Path, opts: Options, progress: Progress = lambda s: None) -> Result:
    t0 = time.perf_counter()
    archive, graph, profile, findings = load(path, opts)
    result = Result(Path(path), archive, graph, profile, findings)
    result.timings["static"] = time.perf_counter() - t0
    if opts.static_only:
        return result
    result.not_converted = why_not_loadable(findings, opts)
    if result.not_converted is None:
        result.verification = convert_and_verify(Path(path), archive, graph, profile, opts, progress)
        result.findings.extend(verification_findings(result.verification, profile))
    result.timings["total"] = time.perf_counter() - t0
    return result


def convert_and_verify(path: Path, archive: KerasArchive, graph: Graph, profile: Profile, opts: Options,
                       progress: Progress) -> Verification:
    from qfix.convert.calibration import load_calibration
    from qfix.convert.keras import load_model

    # Bad calibration data is a QF908 before TensorFlow loads (arrays are read without it).
    calib = load_calibration(opts.calibration, input_specs(graph), n=opts.samples)
    progress("loading the model")
    model = load_model(path, archive.dialect, opts.custom_objects, opts.trust_lambdas)
    return verify_model(model, graph, profile, calib, progress)


def verify_model(model: Any, graph: Graph, profile: Profile, calib: Any, progress: Progress,
                 label: str = "") -> Verification:
    """Convert a loaded model with the target's recipe, check it op by op, compare numbers."""
    from qfix.convert.converter import convert
    from qfix.targets.check import check
    from qfix.targets.compilers import find as find_compiler
    from qfix.targets.tflite import read_tflite
    from qfix.convert.fidelity import fidelity

    progress(f"converting{label} for {profile.id} ({len(calib)} calibration samples)")
    recipe = profile.recipe
    converted = convert(model, recipe, calib)
    progress(f"checking{label} op by op")
    tfl = read_tflite(converted.tflite)
    names = [layer.name for _, layer in graph.walk()]
    placement = check(tfl, profile, names)
    _attribute_op_nodes(placement, tfl, graph)
    compiler = None
    real = find_compiler(profile)
    if real is not None:
        compiled = real.run(converted.tflite)
        if compiled is not None:
            compiler = {"used": real.NAME, "result": compiled.to_json(),
                        "disagreements": real.compare(placement, compiled)}
    progress(f"comparing{label} numbers with the float model")
    fid = fidelity(model, converted.tflite, calib)
    return Verification(placement, fid, compiler, converted.seconds, converted.tflite, calib.source,
                        recipe.description)


def _attribute_op_nodes(placement: Any, tfl: Any, graph: Graph) -> None:
    """Keras 3 op nodes (`keras.ops.cast` → layer 'cast') lower to TF ops named by op type
    ('model_1/Cast'), which name matching misses: match the last scope component, ignoring case
    (and, failing that, the `_N` suffix), against the op-node layers only."""
    import re

    op_nodes = {l.name.lower(): l.name for _, l in graph.walk() if l.is_op}
    if not op_nodes:
        return
    for p in placement.ops:
        if p.layer is not None:
            continue
        for t in tfl.ops[p.index].outputs:
            if t < 0:
                continue
            last = tfl.tensors[t].name.split(";")[0].split("/")[-1].split(":")[0]
            key = next((k for k in (last.lower(), re.sub(r"_\d+$", "", last).lower()) if k in op_nodes), None)
            if key is not None:
                p.layer = op_nodes[key]
                break
    first = placement.first_unsupported
    if first is not None and first.get("layer") is None:
        first["layer"] = placement.ops[first["index"]].layer


def verification_findings(ver: Verification, profile: Profile) -> list[Violation]:
    from qfix.rules import verify_rules

    out: list[Violation] = []
    for rule_cls in verify_rules():
        out.extend(rule_cls().check(ver.placement, profile))
    return out
