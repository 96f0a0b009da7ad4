"""The shared "prove" step of the check run and the main job: convert a model with the target's
recipe, check the .tflite op by op, ask the target's compiler, compare the numbers.

Converting and interpreting run in the worker child (qfix.convert.worker); the op-by-op check
and the compiler run here, in the parent: they read only the flatbuffer bytes the child hands
back, need the Profile (possibly a user's .toml) and the graph without pickling them, and are
pure Python (the compiler, or a runtime such as the TFLM interpreter, is its own subprocess),
so nothing in them can crash the parent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from qfix.convert.worker import Worker, WorkerFailure, memory_limit, stage_timeout
from qfix.model.graph import Graph
from qfix.targets import Profile
from qfix.types import Violation

Progress = Callable[[str], None]

# Layers known to crash TF's converter natively, by (dialect, class) -> (stage words, why).
# Source: issue 8 — Keras 3 `Input((5, 16)) → GRU(8) → Dense(2)` (also LSTM, SimpleRNN,
# ConvLSTM1D/2D): a rolled RNN becomes a WHILE loop and int8 calibration segfaults (TF 2.21,
# Keras 3.15). The classes are QF305's (rolled_rnn.CRASHES), so that the rule and the crash line
# name the same layers.
_ROLLED = ("a rolled RNN (unroll=False) becomes a WHILE loop whose int8 calibration crashes TF's "
           "converter; {advice} (QF305)")
_UNROLL = "try unroll=True on a fixed-length input"


def _known_crashes() -> dict[tuple[str, str], tuple[tuple[str, ...], str]]:
    from qfix.model.rewrites.unroll_rnn import UNROLLABLE
    from qfix.rules.rolled_rnn import CRASHES

    return {
        (dialect, cls): (("TFLite converter",), _ROLLED.format(
            advice=_UNROLL if cls in UNROLLABLE[dialect] else f"{dialect} cannot unroll a {cls}"))
        for dialect, classes in CRASHES.items()
        for cls in classes
    }


KNOWN_CRASHES = _known_crashes()


def _loops(graph: Graph, layer) -> bool:
    """A rolled layer of a class that is fused or not by its config and mask (QF305's
    rolled_rnn.lowering) that becomes the crashing WHILE loop: a masked tf_keras LSTM, say.
    Only top-level layers: the mask of a nested one is looked for in the outer graph."""
    from qfix.rules.rolled_rnn import FUSED, lowering

    inner = layer.config.get("layer") if layer.class_name == "Bidirectional" else layer.raw
    cls = inner.get("class_name") if isinstance(inner, dict) else None
    return cls in FUSED.get(graph.dialect, ()) and layer.name in graph.layers and lowering(graph, layer) == "crash"


@dataclass
class Verification:
    placement: Any  # qfix.targets.check.Placement
    fidelity: Any | None  # qfix.convert.fidelity.Fidelity
    compiler: dict[str, Any] | None
    convert_seconds: float
    tflite: bytes = b""
    calibration_source: str = ""
    recipe: str = ""
    # .tflite output index -> {"index", "name" (signature key), "layer" (Keras output layer)}.
    outputs: list[dict[str, Any]] = field(default_factory=list)
    # The fidelity's reference is a QAT model (it rounds as the .tflite does), not the float model:
    # its SQNR says nothing about the float outputs (QF408 then also checks the output's int8 step).
    qat_reference: bool = False
    # What the run measured, for --memory: kind ("flash", "ram") -> {"bytes", "what"}.
    memory: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Files the target's compiler made from `tflite`, by suffix (Vela's "_vela.tflite": what an
    # Ethos-U device flashes); the main job writes them beside the .tflite.
    compiled: dict[str, bytes] = field(default_factory=dict, repr=False)

    @property
    def outputs_in_model_order(self) -> bool:
        """The .tflite lists its outputs in the Keras model's order (index-based runtimes read
        output i as the model's output i). Outputs the signature does not tie to a model output
        (position None) cannot show a mix-up."""
        return all(o["position"] in (None, i) for i, o in enumerate(self.outputs))

    def to_json(self) -> dict[str, Any]:
        p = self.placement
        fid = self.fidelity
        return {
            "converted": True,
            "ops_total": p.ops_total,
            "ops_on_target": p.ops_on_target,
            "fully_on_target": p.fully_on_target,
            "first_unsupported": p.first_unsupported,
            "model_failure": p.model_failure,
            "float_tensors": p.float_tensors,
            "dynamic_tensors": p.dynamic_tensors,
            "warnings": p.warnings,
            "fallback": p.fallback,
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
                # added: the varying part's SQNR (not swamped by a constant offset) and per output
                "sqnr_ac_db": _finite(fid.sqnr_ac_db) if fid.sqnr_ac_db is not None else None,
                "per_output": [_output_json(o, self.outputs) for o in fid.per_output],
            },
            "compiler": self.compiler or {"used": "profile", "name": None},
            "convert_seconds": round(self.convert_seconds, 3),
            "recipe": self.recipe,
            "outputs": self.outputs,
            "outputs_in_model_order": self.outputs_in_model_order,
            "memory": self.memory,
        }


def _output_json(o: Any, outputs: list[dict[str, Any]] = ()) -> dict[str, Any]:
    """One output's numbers (qfix.convert.fidelity.OutputFidelity), non-finite floats as null,
    with the Keras layer that computes it (`outputs`: the .tflite's outputs, as `output_order`
    matched them; a Keras 3 Sequential's output is named `keras_tensor_N`, not after a layer)."""
    layer = next((x["layer"] for x in outputs if x["name"] == o.name), None)
    return {"name": o.name, "layer": layer, "sqnr_db": _finite(o.sqnr_db),
            "sqnr_ac_db": None if o.sqnr_ac_db is None else _finite(o.sqnr_ac_db),
            "max_abs_error": o.max_abs_error, "top1_agreement": o.top1_agreement,
            "quantized_spread": o.quantized_spread, "quantized_levels": o.quantized_levels,
            "output_step": o.output_step}


def _finite(x: float) -> float | None:
    """JSON numbers only: an infinite SQNR (the quantized outputs equal the float ones exactly)
    or a NaN becomes null, never a string in a number field."""
    return x if x == x and abs(x) != float("inf") else None


def prove(worker: Worker, model: str, graph: Graph, profile: Profile, calib: Any, progress: Progress,
          label: str = "") -> Verification:
    """Convert the model the worker loaded as `model` with the target's recipe, check it op by
    op, compare numbers. Raises QfixError (QF909 for a converter error, a crash or a limit)."""
    doing = f"converting{label} for {profile.id}"
    progress(f"{doing} ({len(calib)} calibration samples)")
    recipe = profile.recipe
    try:
        converted = worker.convert(model, recipe, calib, doing)
    except WorkerFailure as e:
        raise e.with_hint(crash_hint(graph, e)) from None
    return verify(worker, model, graph, profile, calib, converted.tflite, converted.seconds, progress, label,
                  recipe.description)


def verify(worker: Worker, model: str, graph: Graph, profile: Profile, calib: Any, tflite: bytes,
           seconds: float, progress: Progress, label: str = "", recipe: str = "") -> Verification:
    """Check a converted `tflite` op by op against the target, ask the target's compiler, and
    compare its numbers with the Keras model the worker holds as `model` (`graph` is that
    model's graph). `seconds`: the conversion's time; `recipe`: how it was converted."""
    from qfix.targets.check import check
    from qfix.targets.compilers import judge as judge_with_compiler, runtime_for
    from qfix.targets.tflite import read_tflite

    progress(f"checking{label} op by op")
    tfl = read_tflite(tflite)
    names = [layer.name for _, layer in graph.walk()]
    outputs = output_order(tfl, graph)
    placement = check(tfl, profile, names, {o["tensor"]: o["layer"] for o in outputs if o["layer"]})
    _attribute_op_nodes(placement, tfl, graph)
    _attribute_by_class(placement, tfl, graph)
    _attribute_weighted_ops(placement, graph)
    _warnings_name_layers(placement)
    # The profile's toolchain, when its compiler is installed (Vela's placement becomes the verdict).
    compiled: dict[str, bytes] = {}
    compiler = judge_with_compiler(profile, tflite, placement, progress, compiled)
    # A runtime that runs the model (TFLM) is fed what LiteRT was fed in the numbers check.
    runtime = runtime_for(profile)
    progress(f"comparing{label} numbers with the float model")
    fid = worker.fidelity(model, tflite, calib, f"comparing{label} numbers with the float model",
                          raw=runtime is not None)
    ran = None
    if runtime is not None:
        progress(f"running{label} the converted model in the {runtime.NAME} interpreter")
        ran = runtime.run(tflite, fid.raw, timeout=stage_timeout(), memory_limit=memory_limit())
        fid.raw = None  # LiteRT's tensors served their purpose; verifications are kept around
        if ran is not None:
            compiler = {"used": runtime.NAME, "kind": runtime.KIND, "result": ran.to_json(),
                        "disagreements": runtime.compare(placement, ran)}
    return Verification(placement, fid, compiler, seconds, tflite, calib.source,
                        recipe, [{k: v for k, v in o.items() if k != "tensor"} for o in outputs],
                        memory=measured_memory(tflite, runtime, ran, compiler), compiled=compiled)


def measured_memory(tflite: bytes, real: Any, ran: Any, compiler: dict[str, Any] | None = None
                    ) -> dict[str, dict[str, Any]]:
    """kind -> {"bytes", "what"}: the .tflite's size as flash, unless the target's real tool
    measured its own figures: the TFLM interpreter (`ran` by runtime `real`: the flatbuffer, and
    its tensor arena as ram), or a compiler whose `compiler` entry carries `memory` (Vela: its
    output .tflite as flash, its SRAM estimate as ram). The entry's `memory` is taken out of it:
    the figures are reported once, here."""
    out: dict[str, dict[str, Any]] = {"flash": {"bytes": len(tflite), "what": "the .tflite flatbuffer"}}
    figures: dict[str, Any] = {}
    if ran is not None and hasattr(real, "memory"):
        figures = real.memory(ran)
    elif compiler is not None:
        figures = compiler.pop("memory", None) or {}
    for kind, (size, what) in figures.items():
        if size is not None:
            out[kind] = {"bytes": int(size), "what": what}
    return out


def output_order(tfl: Any, graph: Graph) -> list[dict[str, Any]]:
    """The .tflite's outputs in its own order, each with its signature name, the Keras output
    layer it holds and that output's position in the Keras model (None when unknown).

    qfix's export keys the signature by the model's output names (converter.py), so the
    signature maps each output tensor back to its Keras layer; a signature keyed
    `output_0`, `output_1`, ... (a bare from_keras_model export) is positional.
    """
    model_outputs = [t.layer for t in graph.outputs]
    names = {layer.name for _, layer in graph.walk()}
    by_tensor = {idx: name for name, idx in tfl.signature_outputs.items()}
    out = []
    for i, t in enumerate(tfl.outputs):
        name = by_tensor.get(t)
        pos = model_outputs.index(name) if name in model_outputs else None
        if pos is None and name and re.fullmatch(r"output_\d+", name):
            pos = int(name.split("_")[1])
        if pos is None and len(model_outputs) == len(tfl.outputs) == 1:  # a Keras 3 Sequential's
            pos = 0  # output is named after its tensor ('keras_tensor_17'), not a layer
        layer = model_outputs[pos] if pos is not None and pos < len(model_outputs) else (
            name if name in names else None)  # e.g. a layer inside a nested output model
        out.append({"index": i, "name": name, "layer": layer, "position": pos, "tensor": t})
    return out


def crash_hint(graph: Graph, failure: WorkerFailure) -> str | None:
    """The likely culprit of a native crash: the first layer of a class known to crash in that
    stage (KNOWN_CRASHES; a Bidirectional by the layer it wraps), or None."""
    if failure.kind != "crash":
        return None
    for _, layer in graph.walk():
        inner = layer.config.get("layer") if layer.class_name == "Bidirectional" else None
        cls = inner.get("class_name") if isinstance(inner, dict) else layer.class_name
        cfg = (inner.get("config") or {}) if isinstance(inner, dict) else layer.config
        known = KNOWN_CRASHES.get((graph.dialect, cls))
        if known is None and _loops(graph, layer):  # a tf_keras LSTM off its fused path
            known = (("TFLite converter",), _ROLLED.format(advice=_UNROLL))
        if known and any(w in failure.stage for w in known[0]) and not cfg.get("unroll", False):
            what = cls if cls == layer.class_name else f"{layer.class_name}({cls})"
            return f"likely layer '{layer.name}' ({what}): {known[1]}"
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


def _attribute_by_class(placement: Any, tfl: Any, graph: Graph) -> None:
    """Fused kernels whose tensors carry no layer scope (an integer LSTM's tensors are
    `arith.constant*`, its output `tfl.unidirectional_sequence_lstm`) are matched to the
    layers of the class that makes that op in the model's dialect (opmap.layer_ops), in graph
    order, when the counts agree; a converter-made DEQUANTIZE, or a CAST with no layer scope,
    takes the layer of the ops reading it; ops the converter adds after them (the last-step
    STRIDED_SLICE of return_sequences=False) take the layer of the op feeding them."""
    from qfix.model.opmap import layer_ops

    for op_type in sorted({p.op for p in placement.ops if p.layer is None}):
        ops = [p for p in placement.ops if p.op == op_type and p.layer is None]
        # A layer already charged with an op of this type is taken; one charged with others is
        # not (tf_keras's Bidirectional: its concatenation carries its name, its backward pass's
        # REVERSE_V2 no name at all).
        taken = {p.layer for p in placement.ops if p.op == op_type and p.layer is not None}
        layers = [l.name for _, l in graph.walk() if op_type in (layer_ops(l, graph.dialect) or ()) and l.name not in taken]
        if layers and len(ops) == len(layers):
            for p, name in zip(ops, layers):
                p.layer = name
    # A converter-made DEQUANTIZE of a model input exists for the float ops reading it (a
    # Masking's NOT_EQUAL): it takes their layer when they agree. So does a CAST with no layer
    # scope (Keras 3.15's Normalization casts an integer input at the model's scope,
    # 'functional/Cast'), read through the QUANTIZE the converter puts after it.
    def readers_of(index: int, depth: int = 0) -> set:
        found = set()
        for o in tfl.ops[index].outputs:
            for c in tfl.consumers(o):
                q = placement.ops[c.index]
                if q.layer is None and q.op == "QUANTIZE" and not q.boundary and depth < 4:
                    found |= readers_of(c.index, depth + 1)
                else:
                    found.add(q.layer)
        return found

    for p in placement.ops:
        if p.layer is None and p.op in ("DEQUANTIZE", "CAST") and not p.boundary:
            readers = readers_of(p.index) if p.op == "CAST" else {
                placement.ops[c.index].layer for o in tfl.ops[p.index].outputs for c in tfl.consumers(o)}
            if len(readers) == 1 and None not in readers:
                p.layer = readers.pop()
    producers = {o: op.index for op in tfl.ops for o in op.outputs}
    for p in placement.ops:
        acts = [i for i in tfl.ops[p.index].inputs if i >= 0 and not tfl.tensors[i].is_const]
        if p.layer is None and not p.boundary and len(acts) == 1 and acts[0] in producers:
            p.layer = placement.ops[producers[acts[0]]].layer
    first = placement.first_unsupported
    if first is not None and first.get("layer") is None:
        first["layer"] = placement.ops[first["index"]].layer
    for island in placement.float_islands:
        if island.get("layer") is None and island.get("producer_index") is not None:
            island["layer"] = placement.ops[island["producer_index"]].layer


_OP_WARNING = re.compile(r"^op (\d+) ([A-Z0-9_]+)(?: \(layer [^)]*\))?: ")


def _warnings_name_layers(placement: Any) -> None:
    """The checker's per-op warnings ("op 0 UNIDIRECTIONAL_SEQUENCE_LSTM: int8, TFLite reference
    kernel") were written before the attributions above: name each op's layer as finally charged
    (review of issue 9: tf_keras's fused LSTM op was charged to 'lstm', its warning named none)."""
    def named(m: re.Match) -> str:
        index = int(m[1])
        layer = placement.ops[index].layer if index < len(placement.ops) else None
        return f"op {index} {m[2]}{f' (layer {layer})' if layer else ''}: "

    placement.warnings[:] = [_OP_WARNING.sub(named, w, count=1) for w in placement.warnings]


# Ops with weights -> the layer classes that own such weights. A fused activation writes the op's
# output, so an op that writes a model output takes the activation layer's name (a Conv2D
# followed by ReLU as the last layer): the owner is the nearest layer above it of these classes.
WEIGHTED_OPS: dict[str, frozenset[str]] = {
    "CONV_2D": frozenset({"Conv1D", "Conv2D", "SeparableConv1D", "SeparableConv2D"}),
    "DEPTHWISE_CONV_2D": frozenset({"DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D"}),
    "TRANSPOSE_CONV": frozenset({"Conv1DTranspose", "Conv2DTranspose"}),
    "FULLY_CONNECTED": frozenset({"Dense", "EinsumDense"}),
}
FUSIBLE_STEPS = 3  # activation layers between a weighted layer and the output (BN, ReLU, Activation)


def _attribute_weighted_ops(placement: Any, graph: Graph) -> None:
    """Charge each weighted op (WEIGHTED_OPS) to the layer that owns its weights: an op named
    after an activation layer walks up to the weighted layer that activation follows; an op
    with no name takes the one weighted layer of its class left unclaimed."""
    layers = {l.name: l for _, l in graph.walk()}
    for p in placement.ops:
        classes = WEIGHTED_OPS.get(p.op)
        if classes is None or p.layer is None or p.layer not in layers:
            continue
        layer = layers[p.layer]
        for _ in range(FUSIBLE_STEPS):
            if layer.class_name in classes or len(layer.inputs) != 1 or layer.inputs[0].layer not in layers:
                break
            layer = layers[layer.inputs[0].layer]
        if layer.class_name in classes:
            p.layer = layer.name
    for op_type, classes in WEIGHTED_OPS.items():
        unnamed = [p for p in placement.ops if p.op == op_type and p.layer is None]
        claimed = {p.layer for p in placement.ops if p.op == op_type}
        free = [l.name for l in layers.values() if l.class_name in classes and l.name not in claimed]
        if len(unnamed) == 1 and len(free) == 1:
            unnamed[0].layer = free[0]
    first = placement.first_unsupported
    if first is not None:
        first["layer"] = placement.ops[first["index"]].layer


def verification_findings(ver: Verification, profile: Profile) -> list[Violation]:
    from qfix.rules import verify_rules

    out: list[Violation] = []
    for rule_cls in verify_rules():
        out.extend(rule_cls().check(ver.placement, profile))
    return out
