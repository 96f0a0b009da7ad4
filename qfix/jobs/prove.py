"""The shared "prove" step of the check run and the main job: convert a model with the target's
recipe, check the .tflite op by op, ask the target's compiler, compare the numbers.

Converting and interpreting run in the worker child (qfix.convert.worker); the op-by-op check
and the compiler run here, in the parent: they read only the flatbuffer bytes the child hands
back, need the Profile (possibly a user's .toml) and the graph without pickling them, and are
pure Python (the compiler is its own subprocess), so nothing in them can crash the parent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from qfix.convert.worker import Worker, WorkerFailure
from qfix.model.graph import Graph
from qfix.targets import Profile
from qfix.types import Violation

Progress = Callable[[str], None]

# Layers known to crash TF's converter natively, by (dialect, class) -> (stage words, why).
# Source: issue 8 — Keras 3 `Input((5, 16)) → GRU(8) → Dense(2)` (also LSTM, SimpleRNN): a rolled
# RNN becomes a WHILE loop and int8 calibration segfaults (TF 2.21, Keras 3.15).
KNOWN_CRASHES: dict[tuple[str, str], tuple[tuple[str, ...], str]] = {
    (dialect, cls): (("TFLite converter",), "a rolled RNN (unroll=False) becomes a WHILE loop whose "
                     "int8 calibration crashes TF's converter; try unroll=True on a fixed-length input (QF305)")
    for dialect, classes in (("keras3", ("GRU", "LSTM", "SimpleRNN", "RNN")),
                             ("tf_keras", ("GRU", "SimpleRNN")))  # tf_keras's LSTM converts to a fused op
    for cls in classes
}


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


def prove(worker: Worker, model: str, graph: Graph, profile: Profile, calib: Any, progress: Progress,
          label: str = "") -> Verification:
    """Convert the model the worker loaded as `model` with the target's recipe, check it op by
    op, compare numbers. Raises QfixError (QF909 for a converter error, a crash or a limit)."""
    from qfix.targets.check import check
    from qfix.targets.compilers import find as find_compiler
    from qfix.targets.tflite import read_tflite

    doing = f"converting{label} for {profile.id}"
    progress(f"{doing} ({len(calib)} calibration samples)")
    recipe = profile.recipe
    try:
        converted = worker.convert(model, recipe, calib, doing)
    except WorkerFailure as e:
        raise e.with_hint(crash_hint(graph, e)) from None
    progress(f"checking{label} op by op")
    tfl = read_tflite(converted.tflite)
    names = [layer.name for _, layer in graph.walk()]
    placement = check(tfl, profile, names)
    _attribute_op_nodes(placement, tfl, graph)
    compiler = None
    real = find_compiler(profile)  # the profile's toolchain, when its compiler is installed
    if real is not None:
        compiled = real.run(converted.tflite)
        if compiled is not None:
            compiler = {"used": real.NAME, "result": compiled.to_json(),
                        "disagreements": real.compare(placement, compiled)}
    progress(f"comparing{label} numbers with the float model")
    fid = worker.fidelity(model, converted.tflite, calib, f"comparing{label} numbers with the float model")
    return Verification(placement, fid, compiler, converted.seconds, converted.tflite, calib.source,
                        recipe.description)


def crash_hint(graph: Graph, failure: WorkerFailure) -> str | None:
    """The likely culprit of a native crash: the first layer of a class known to crash in that
    stage (KNOWN_CRASHES), or None."""
    if failure.kind != "crash":
        return None
    for _, layer in graph.walk():
        inner = layer.config.get("layer") if layer.class_name == "Bidirectional" else None
        cls = inner.get("class_name") if isinstance(inner, dict) else layer.class_name
        cfg = inner.get("config", {}) if isinstance(inner, dict) else layer.config
        known = KNOWN_CRASHES.get((graph.dialect, cls))
        if known and any(w in failure.stage for w in known[0]) and not cfg.get("unroll", False):
            return f"likely layer '{layer.name}' ({cls}): {known[1]}"
    return None


def _attribute_op_nodes(placement: Any, tfl: Any, graph: Graph) -> None:
    """Keras 3 op nodes (`keras.ops.cast` → layer 'cast') lower to TF ops named by op type
    ('model_1/Cast'), which name matching misses: match the last scope component, ignoring case
    (and, failing that, the `_N` suffix), against the op-node layers only."""
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
