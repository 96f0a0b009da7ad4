"""Numerical verification: the float Keras model against its quantized .tflite, and a rewritten
float model against the original.

The .tflite runs in `ai_edge_litert.interpreter.Interpreter` through its signature runner, fed
by input NAME. Float samples are quantized with each TFLite input's own scale / zero point
(errors.md D5); integer Keras inputs (uint8 frames, int64 ids) are fed raw, since the converter
leaves them unquantized. Integer outputs are dequantized before comparison.
TensorFlow is imported only inside functions.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from qfix.convert.calibration import Calibration
from qfix.convert.worker import mark
from qfix.errors import error, first_line
from qfix.convert.keras import call_model, captured_output, import_tf, input_names, output_names

SIGNATURE = "serving_default"


@dataclass
class OutputFidelity:
    name: str
    sqnr_db: float
    max_abs_error: float
    top1_agreement: float | None  # only for classifier-like outputs (rank 2, last dim > 1)
    # The largest standard deviation across samples of any one element of the dequantized
    # .tflite output (0.0: the quantized model answers the same for every sample; None: one
    # sample). Units: the output's. QF408 compares it with the float output's own spread.
    quantized_spread: float | None = None
    # One int8 step of the .tflite output (its scale, the output's units); None for a float output.
    output_step: float | None = None
    # SQNR of the varying part: the float output less its mean over the samples (per element)
    # against the same error, float − int8. A constant offset (a bias of 1000 on an output that
    # varies by 0.05) makes `sqnr_db` high whatever the int8 output does; this one is not
    # swamped by it. -inf when the float output does not vary and the error is not zero.
    sqnr_ac_db: float | None = None
    # The most distinct values any one element of the .tflite output takes over the samples
    # (1: the same for every sample). None with one sample.
    quantized_levels: int | None = None


@dataclass
class Fidelity:
    samples: int
    synthetic: bool
    sqnr_db: float  # over all outputs; inf when the outputs are identical (null in JSON)
    max_abs_error: float
    top1_agreement: float | None  # mean over classifier-like outputs, None if there are none
    per_output: list[OutputFidelity] = field(default_factory=list)
    # The varying part's SQNR over all outputs (see OutputFidelity.sqnr_ac_db); None when not measured.
    sqnr_ac_db: float | None = None
    # With `fidelity(..., raw=True)`: what LiteRT was fed and gave, in the .tflite's own dtypes,
    # for a second runtime to be fed the same (the TFLM interpreter): {"inputs": [...],
    # "outputs": [...]}, one {tensor index: array} per sample. Not part of the JSON report.
    raw: dict[str, list[dict[int, np.ndarray]]] | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        """JSON-safe: non-finite floats (an infinite SQNR: identical outputs) become null; JSON
        has no infinity and a string in a number field breaks consumers."""
        d = asdict(self)
        d.pop("per_output")
        d.pop("raw")
        d["per_output"] = [_json_floats(asdict(o)) for o in self.per_output]
        return _json_floats(d)


def fidelity(model: Any, tflite: bytes, calibration: Calibration, raw: bool = False) -> Fidelity:
    """Run the float model and the quantized model on the same samples and compare outputs.
    `raw`: also hand back LiteRT's inputs and outputs as fed and given (`Fidelity.raw`)."""
    from ai_edge_litert.interpreter import Interpreter

    if not calibration.samples:
        raise error("QF908", "no samples to compare the float and quantized models on")
    mark("interpreting the converted model")
    with captured_output():  # LiteRT announces its XNNPACK delegate on stderr
        interpreter = Interpreter(model_content=tflite)
        sigs = interpreter.get_signature_list()
        key = SIGNATURE if SIGNATURE in sigs else next(iter(sigs))
        runner = interpreter.get_signature_runner(key)
    in_details = runner.get_input_details()
    out_details = runner.get_output_details()
    k_in = input_names(model)
    k_out = output_names(model)
    inputs = _match_inputs(k_in, list(in_details))  # tflite name -> Keras name
    tfl_out = _match_outputs(k_out, list(out_details))
    int_inputs = {n for n, t in zip(k_in, model.inputs) if _is_integer(t.dtype)}

    ref = _keras_outputs(model, calibration)  # name -> (N, ...) float64
    mark("interpreting the converted model")
    got: dict[str, list[np.ndarray]] = {n: [] for n in k_out}
    kept: dict[str, list[dict[int, np.ndarray]]] = {"inputs": [], "outputs": []}
    for sample in calibration.samples:
        feed = {
            t: _to_tflite(sample[k], in_details[t], raw=k in int_inputs) for t, k in inputs.items()
        }
        try:
            with captured_output():  # the delegate is created (and announced) on first invoke
                result = runner(**feed)
        except Exception as e:  # ValueError / RuntimeError from the interpreter
            raise error("QF909", f"the converted model does not run: {first_line(e)}") from None
        if raw:  # keyed by tensor index: the signature's names mean nothing to other runtimes
            kept["inputs"].append({int(in_details[t]["index"]): x for t, x in feed.items()})
            kept["outputs"].append({int(d["index"]): np.array(result[n]) for n, d in out_details.items()})
        for k_name, tfl_name in zip(k_out, tfl_out):
            got[k_name].append(_from_tflite(result[tfl_name], out_details[tfl_name]))

    per_output = []
    signal = noise = ac_signal = 0.0
    for name, tfl_name in zip(k_out, tfl_out):
        r = ref[name]
        q = np.concatenate(got[name])
        if q.size != r.size:
            raise error("QF909", f"output {name!r}: .tflite gives {q.shape}, Keras {r.shape}")
        q = q.reshape(r.shape)
        s, e = float(np.sum(r * r)), float(np.sum((r - q) ** 2))
        signal, noise = signal + s, noise + e
        ac = float(np.sum((r - np.mean(r, axis=0)) ** 2)) if len(r) else 0.0
        ac_signal += ac
        top1 = None
        if r.ndim == 2 and r.shape[-1] > 1:
            top1 = float(np.mean(np.argmax(r, -1) == np.argmax(q, -1)))
        spread = float(np.max(np.std(q, axis=0))) if q.size and len(q) > 1 else None
        step = _step(out_details[tfl_name])
        per_output.append(OutputFidelity(name, _sqnr(s, e), float(np.max(np.abs(r - q))), top1, spread, step,
                                         _sqnr(ac, e), _levels(q)))
    tops = [o.top1_agreement for o in per_output if o.top1_agreement is not None]
    return Fidelity(
        samples=len(calibration.samples),
        synthetic=calibration.synthetic,
        sqnr_db=_sqnr(signal, noise),
        max_abs_error=max(o.max_abs_error for o in per_output),
        top1_agreement=float(np.mean(tops)) if tops else None,
        per_output=per_output,
        sqnr_ac_db=_sqnr(ac_signal, noise),
        raw=kept if raw else None,
    )


def float_equivalence(model_a: Any, model_b: Any, calibration: Calibration) -> float:
    """Max abs difference of the float outputs of two models on the same samples (inf when the
    outputs do not even line up). Used to prove a rewrite computes what the original did.
    `model_a` may be the outputs themselves, {output name: array} from `float_outputs` of a
    model another process loaded (a Keras 3 original next to a tf_keras rewrite)."""
    # Both models run at the same batch: a rewrite that fixes the batch to 1 (the Edge TPU's)
    # is compared with the original fed one sample per call too, since a kernel's summation
    # order depends on the batch and a deep untrained model can amplify that to a flipped
    # softmax (Keras 3 EfficientNetV2L, weights=None: max abs diff 1.0 across batches 8 and 1).
    step = _common_batch(model_b) if isinstance(model_a, dict) else _common_batch(model_a, model_b)
    a = model_a if isinstance(model_a, dict) else _keras_outputs(model_a, calibration, step)
    b = _keras_outputs(model_b, calibration, step)
    mark("comparing float outputs")
    if len(a) != len(b):
        return math.inf
    # Pair outputs by name when both models name them alike (a rewrite can reorder a model's
    # outputs), else in each model's own order (a rewrite renamed them).
    pairs = [(a[n], b[n]) for n in a] if set(a) == set(b) else list(zip(a.values(), b.values()))
    worst = 0.0
    for ra, rb in pairs:
        if ra.shape != rb.shape:
            return math.inf
        worst = max(worst, float(np.max(np.abs(ra - rb))) if ra.size else 0.0)
    return worst


# --- float side ----------------------------------------------------------------------------


def float_outputs(model: Any, calibration: Calibration) -> dict[str, np.ndarray]:
    """The float outputs of `model` for every sample of `calibration`, {output name: array of
    shape (samples, ...)} in the model's output order, float32 as the model computes them."""
    return _keras_outputs(model, calibration)


def _fixed_batches(model: Any) -> set[int]:
    return {t.shape[0] for t in model.inputs if t.shape[0] is not None}


def _common_batch(*models: Any) -> int | None:
    """The one fixed batch size among the models' inputs, if they have exactly one (else each
    model runs at its own)."""
    fixed = set().union(*(_fixed_batches(m) for m in models))
    return fixed.pop() if len(fixed) == 1 else None


def _keras_outputs(model: Any, calibration: Calibration, step: int | None = None) -> dict[str, np.ndarray]:
    """Float outputs for every sample, keyed by output name, computed once per (model,
    calibration, batch) triple: the main job compares the fixed model with the quantized one and
    with the original on the same samples."""
    fixed = _fixed_batches(model)
    step = step or (min(fixed) if fixed else len(calibration.samples))
    cache = calibration.__dict__.setdefault("_float_outputs", [])
    for cached_model, cached_step, outputs in cache:
        if cached_model is model and cached_step == step:
            return outputs
    outputs = _compute_keras_outputs(model, calibration, step)
    cache.append((model, step, outputs))
    return outputs


def _compute_keras_outputs(model: Any, calibration: Calibration, step: int) -> dict[str, np.ndarray]:
    """Samples go through `step` at a time: all at once, or the model's fixed batch size (a
    model fixed to batch 1 for the Edge TPU takes one sample per call, through one traced graph:
    eager calls cost ~10x more); a short last batch is padded."""
    tf = import_tf()
    mark("running the float model")

    names = input_names(model)
    n = len(calibration.samples)
    stacked = []
    for i, (name, t) in enumerate(zip(names, model.inputs)):
        arrs = [_lookup(s, name, names, position=i) for s in calibration.samples]
        stacked.append(np.concatenate(arrs).astype(_np_dtype(t.dtype)))
    chunks: list[list[np.ndarray]] = []
    def run(feed: dict[str, Any]) -> list[Any]:
        return call_model(model, feed)

    if step < n:
        run = tf.function(run, autograph=False)
    for start in range(0, n, step):
        part = [a[start : start + step] for a in stacked]
        short = step - len(part[0])
        if short:
            part = [np.concatenate([p, np.repeat(p[-1:], short, axis=0)]) for p in part]
        y = run({k: tf.constant(p) for k, p in zip(names, part)})
        chunks.append([np.asarray(v, dtype=np.float64)[: step - short] for v in y])
    return {
        name: np.concatenate([c[j] for c in chunks]) for j, name in enumerate(output_names(model))
    }


def _lookup(sample: dict[str, np.ndarray], name: str, names: list[str], position: int):
    """A sample's array for Keras input `name`; a second model whose inputs were renamed by a
    rewrite falls back to the position among its own inputs."""
    if name in sample:
        return sample[name]
    if len(sample) == len(names):
        return list(sample.values())[position]
    raise error("QF908", f"no calibration data for input {name!r} (have {', '.join(sample)})")


# --- quantized side ------------------------------------------------------------------------


def _to_tflite(x: np.ndarray, detail: dict, raw: bool) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    scale, zero = detail["quantization"]
    if dtype.kind == "f" or raw or scale == 0:
        return x.astype(dtype)
    info = np.iinfo(dtype)
    q = np.round(x.astype(np.float64) / scale + zero)
    return np.clip(q, info.min, info.max).astype(dtype)


def _step(detail: dict) -> float | None:
    scale, _ = detail["quantization"]
    return float(scale) if np.dtype(detail["dtype"]).kind in "iu" and scale else None


def _from_tflite(y: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero = detail["quantization"]
    y = y.astype(np.float64)
    return (y - zero) * scale if np.dtype(detail["dtype"]).kind in "iu" and scale else y


def _match_inputs(keras_names: list[str], tflite_names: list[str]) -> dict[str, str]:
    """TFLite input name -> Keras input name: by name (also `serving_default_x:0` style), or
    trivially for one input. Never by position for several inputs: TFLite sorts them by name,
    so position is exactly the mix-up this module exists to avoid."""
    if len(keras_names) == len(tflite_names) == 1:
        return {tflite_names[0]: keras_names[0]}
    mapping = {}
    for t in tflite_names:
        hits = [k for k in keras_names if k == t] or [k for k in keras_names if k in t]
        if len(hits) != 1:
            raise error(
                "QF909", f".tflite input {t!r} matches no single model input ({', '.join(keras_names)})"
            )
        mapping[t] = hits[0]
    return mapping


def _match_outputs(keras_names: list[str], tflite_names: list[str]) -> list[str]:
    """TFLite output names for each Keras output: by name (qfix's export names them), else by
    order (a bare from_keras_model export names them output_0, output_1, ... in Keras order)."""
    if set(keras_names) <= set(tflite_names):
        return list(keras_names)
    if len(keras_names) != len(tflite_names):
        raise error(
            "QF909", f"model has {len(keras_names)} outputs, .tflite has {len(tflite_names)}"
        )
    return sorted(tflite_names, key=lambda n: (len(n), n))


# --- helpers -------------------------------------------------------------------------------


def _levels(q: np.ndarray) -> int | None:
    """The most distinct values any one element of `q` (samples first) takes over the samples."""
    if len(q) < 2 or not q.size:
        return None
    flat = np.sort(q.reshape(len(q), -1), axis=0)
    return int(np.max(np.sum(np.diff(flat, axis=0) != 0, axis=0)) + 1)


def _sqnr(signal: float, noise: float) -> float:
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def _np_dtype(dtype: Any) -> np.dtype:
    return np.dtype(dtype if isinstance(dtype, str) else dtype.as_numpy_dtype)


def _is_integer(dtype: Any) -> bool:
    return _np_dtype(dtype).kind in "iub"


def _json_floats(d: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()
    }
