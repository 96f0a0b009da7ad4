"""The Keras -> TFLite conversion with a target's recipe (the profile's `[recipe]`, see
qfix.targets.Recipe) (TensorFlow is imported only inside
functions, here and in verify.py / keras_load.py).

Conversion path, the same for both dialects on TF 2.21: a SavedModel whose one signature,
`serving_default`, is a `tf.function` calling the model (training=False) on batch-1
`tf.TensorSpec`s named after the InputLayers and returning a dict keyed by output name, then
`TFLiteConverter.from_saved_model(dir, signature_keys=["serving_default"])`. That keeps the
input names in the .tflite signature, lets the representative dataset yield dicts keyed by
those names (TFLite orders inputs by name, not in Keras order: errors.md C3) and keeps integer
inputs (uint8 frames, int64 ids) integer.

Not `from_concrete_functions`: a frozen function has no SignatureDef, so calibration cannot be
fed by name; with a trackable object it loses Keras 3 variables (READ_VARIABLE fails in
calibration). Not `from_keras_model`: it keeps the dynamic batch, names Keras 3 inputs after
their tensors ("keras_tensor_3"), and swallows export errors.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qfix.convert.calibration import Calibration
from qfix.convert.worker import mark
from qfix.errors import error
from qfix.targets import Recipe, load_profile
from qfix.convert.keras import (
    Dialect,
    call_model,
    captured_output,
    import_tf,
    input_names,
    output_names,
    sniff_dialect,
)

SIGNATURE = "serving_default"


def recipe_for(target: str) -> Recipe:
    """The conversion recipe of a target (id, alias or profile path): its profile's `[recipe]`.
    Raises QF910 / QF912 like `load_profile`."""
    return load_profile(target).recipe


@dataclass
class ConvertResult:
    tflite: bytes
    seconds: float
    input_names: list[str]  # signature input names of the .tflite (sorted by TFLite)
    log: str  # converter stderr/warnings, for --verbose and bug reports
    # TF's MLIR quantizer on the (deterministic) calibrated model: how often it ran and how
    # many different models it gave (see _steady_quantizer); 0 when it did not run.
    quantizer_runs: int = 0
    quantizer_outcomes: int = 0


def convert(model: Any, recipe: Recipe, calibration: Calibration | None) -> ConvertResult:
    """Convert an already loaded Keras model (either dialect) with the target's recipe."""
    names = input_names(model)
    if recipe.full_integer:
        _check_calibration(calibration, names)
    tf = import_tf()

    def make_converter(tmp: str):
        export = _export_saved_model(model, names, recipe.batch, tmp)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp, signature_keys=[SIGNATURE])
        _apply_recipe(converter, recipe, calibration)
        return converter, f"qfix: serving signature exported via {export}\n"

    runs: list[tuple[int, int, str]] = []  # (float tensors, size, sha256) per quantizer run
    with _steady_quantizer(runs):
        result = _run(make_converter, recipe)
    result.quantizer_runs, result.quantizer_outcomes = len(runs), len(set(runs))
    if len(set(runs)) > 1:
        result.log += (f"qfix: TF's quantizer gave {len(set(runs))} different models in {len(runs)} runs on "
                       f"the same calibrated model (float tensors: {sorted({r[0] for r in runs})}); "
                       f"kept one with {min(runs)[0]}\n")
    result.tflite = outputs_in_model_order(result.tflite, output_names(model))
    if recipe.slice_time_steps:
        from qfix.convert.unstack import slice_time_steps

        result.tflite, n = slice_time_steps(result.tflite)
        if n:
            result.log += f"qfix: {n} UNPACK(s) of an unrolled RNN's time steps read with STRIDED_SLICE instead\n"
    if recipe.split_equal:
        from qfix.convert.equal_split import split_v_as_split

        result.tflite, n = split_v_as_split(result.tflite)
        if n:
            result.log += f"qfix: {n} SPLIT_V(s) of equal sizes split with SPLIT instead\n"
    if recipe.pack_off_batch:
        from qfix.convert.unbatched_pack import pack_off_batch

        result.tflite, n = pack_off_batch(result.tflite)
        if n:
            result.log += f"qfix: {n} PACK(s) on the batch axis stacked on axis 1 and reshaped instead\n"
    return result


def bare_convert(
    path: str | Path, recipe: Recipe, calibration: Calibration | None, dialect: Dialect | None = None
) -> ConvertResult:
    """The benchmark baseline: what a user writes by hand with the same recipe and samples.

    load_model + `TFLiteConverter.from_keras_model` + the recipe, nothing else (no batch fix, no
    name-keyed export). Single-input models get the usual positional `[x]` samples; multi-input
    ones the name-keyed dict, the only form that converts. Its time includes the model load.
    """
    if recipe.full_integer and (calibration is None or not calibration.samples):
        raise error("QF908", "full-integer quantization needs calibration samples; got none")
    dialect = dialect or sniff_dialect(path)
    tf = import_tf()

    def make_converter(_tmp: str):
        if dialect == "keras3":
            import keras

            model = keras.saving.load_model(path)
        else:
            import tf_keras

            model = tf_keras.models.load_model(path)
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        _apply_recipe(converter, recipe, calibration, positional=len(model.inputs) == 1)
        return converter, "bare: TFLiteConverter.from_keras_model\n"

    return _run(make_converter, recipe)


def _run(make_converter, recipe: Recipe) -> ConvertResult:
    """Build (`make_converter(tmp_dir) -> (converter, note)`) and run a converter with its
    output captured; a failure becomes one QF909 line (the full converter log rides along as
    `QfixError.log` for --verbose)."""
    failure: Exception | None = None
    note = ""
    start = time.perf_counter()
    with captured_output() as log, tempfile.TemporaryDirectory(prefix="qfix-sm-") as tmp:
        try:
            mark("exporting the serving signature")
            converter, note = make_converter(tmp)
            mark("converting in the TFLite converter")
            tflite = converter.convert()
            seconds = time.perf_counter() - start
            signature_inputs = _signature_inputs(tflite)
        except Exception as e:  # export or converter failure, never a traceback
            failure = e
    if failure is not None:
        err = error("QF909", f"{recipe.target} conversion failed: {_meaningful_line(failure)}")
        err.log = note + log.text + str(failure)
        raise err from None
    return ConvertResult(tflite, seconds, signature_inputs, note + log.text)


# --- the quantizer's non-determinism ------------------------------------------------------

# TF's MLIR quantizer (`mlir_quantize`, TF 2.21) is not deterministic: fed the same calibrated
# .tflite bytes it returns different models from call to call, in one process or in fresh ones,
# single-threaded too (an unrolled LSTM/GRU cell's SPLIT at step 0, whose forget-gate output is
# dead, is left as a float island or not). The float model and the calibration before it are
# deterministic. So the quantizer runs again on the same calibrated model while its result has
# float tensors, and the model with the fewest float tensors (then the smallest, then the least
# hash: an order of the outcomes, not of the runs) is kept. A model whose float island is real
# gives the same bytes every time: after QUANTIZER_SAME identical runs it stops; a big model
# stops once the reruns took QUANTIZER_BUDGET_S. In the 4-layer RNN of tests/convert/
# test_determinism.py about 4 runs in 10 are float-free, so 24 runs miss one with p < 1e-4.
QUANTIZER_RUNS = 24
QUANTIZER_SAME = 3
QUANTIZER_BUDGET_S = 30.0


@contextlib.contextmanager
def _steady_quantizer(runs: list[tuple[int, int, str]]) -> Iterator[None]:
    """Within the block, the converter's `_mlir_quantize` is the retrying one above; `runs`
    collects (float tensors, size, sha256) of every run."""
    from tensorflow.lite.python import lite as tf_lite

    original = getattr(tf_lite, "_mlir_quantize", None)
    if original is None:  # another TF layout: convert as it is
        yield
        return

    def quantize(model, *args, **kwargs):
        best: tuple[tuple[int, int, str], Any] | None = None
        mine: list[tuple[int, int, str]] = []
        start = time.perf_counter()
        for n in range(QUANTIZER_RUNS):
            if n and time.perf_counter() - start > QUANTIZER_BUDGET_S:
                break
            out = original(model, *args, **kwargs)
            key = (_float_activations(out), len(out), hashlib.sha256(out).hexdigest())
            runs.append(key)
            mine.append(key)
            if best is None or key < best[0]:
                best = (key, out)
            if key[0] == 0 or (len(mine) >= QUANTIZER_SAME and len(set(mine)) == 1):
                break
        return best[1]

    tf_lite._mlir_quantize = quantize
    try:
        yield
    finally:
        tf_lite._mlir_quantize = original


def _float_activations(tflite: bytes) -> int:
    """Float32 tensors inside the model: no data (not a constant), not a subgraph's input or
    output (float I/O is the recipe's, not an island), in every subgraph."""
    from tflite.Model import Model
    from tflite.TensorType import TensorType

    root = Model.GetRootAs(tflite, 0)
    count = 0
    for s in range(root.SubgraphsLength()):
        graph = root.Subgraphs(s)
        io = {*(graph.Inputs(j) for j in range(graph.InputsLength())),
              *(graph.Outputs(j) for j in range(graph.OutputsLength()))}
        for i in range(graph.TensorsLength()):
            t = graph.Tensors(i)
            if i not in io and t.Type() == TensorType.FLOAT32 and not root.Buffers(t.Buffer()).DataLength():
                count += 1
    return count


# --- steps ---------------------------------------------------------------------------------


def dialect_of(model: Any) -> Dialect:
    modules = (c.__module__ for c in type(model).__mro__)
    return "tf_keras" if any(m.split(".")[0] == "tf_keras" for m in modules) else "keras3"


def _export_saved_model(model: Any, names: list[str], batch: int | None, out_dir: str,
                        outputs: list[str] | None = None) -> str:
    """Write the serving signature as a SavedModel; returns which export was used. `outputs`
    keys the signature's outputs (default: the model's output names)."""
    tf = import_tf()
    specs = [
        tf.TensorSpec((batch, *tuple(t.shape)[1:]), tf.as_dtype(t.dtype), name=name)
        for name, t in zip(names, model.inputs)
    ]
    outs = outputs or output_names(model)

    def serve(inputs):
        flat = inputs if len(specs) > 1 else [inputs]
        return dict(zip(outs, call_model(model, dict(zip(names, flat)))))

    signature = [specs if len(specs) > 1 else specs[0]]
    fn = tf.function(serve, input_signature=signature)
    try:
        # Fast path: a bare tf.Module holding only the tf.Variables and the one function.
        # Saving the model object itself re-traces every layer for Keras metadata (tf_keras)
        # or tracks every resource (Keras 3 ExportArchive): 2-4x slower on MobileNetV2. Keras 3
        # variables wrap a tf.Variable (`.value`), which is what the traced function captures.
        holder = tf.Module()
        holder.model_variables = [_tf_variable(v) for v in model.variables]
        holder.serve = fn
        tf.saved_model.save(holder, out_dir, signatures={SIGNATURE: fn.get_concrete_function()})
        return "tf.Module"
    except Exception:  # e.g. an untracked lookup-table resource: use the full exports
        for child in Path(out_dir).iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    if dialect_of(model) == "keras3":
        import keras

        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(SIGNATURE, serve, signature)
        archive.write_out(out_dir, verbose=False)
        return "keras.export.ExportArchive"
    tf.saved_model.save(model, out_dir, signatures={SIGNATURE: fn.get_concrete_function()})
    return "tf.saved_model.save(model)"


def _tf_variable(v: Any) -> Any:
    """The tf.Variable behind a Keras variable (Keras 3 wraps it in `.value`; tf_keras
    variables are tf.Variables already, whose `.value` is a method)."""
    tf = import_tf()
    return v if isinstance(v, tf.Variable) else v.value


def _apply_recipe(
    converter: Any, recipe: Recipe, calibration: Calibration | None, positional: bool = False
) -> None:
    if recipe.quantization == "none":
        return
    tf = import_tf()
    converter.target_spec.supported_ops = [getattr(tf.lite.OpsSet, o) for o in recipe.supported_ops]
    if recipe.quantization == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
        return
    samples = list(calibration.samples)

    def representative_dataset():
        # The converter calls this to calibrate, then quantizes: the stage a crash is blamed on.
        mark("calibrating in the TFLite converter")
        for s in samples:
            yield list(s.values()) if positional else dict(s)
        mark("quantizing in the TFLite converter")

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    # Applies to float model inputs/outputs only; integer inputs (uint8 frames, int64 ids)
    # keep their own dtype in the signature.
    converter.inference_input_type = tf.as_dtype(recipe.io_dtype)
    converter.inference_output_type = tf.as_dtype(recipe.io_dtype)


def _check_calibration(calibration: Calibration | None, names: list[str]) -> None:
    if calibration is None or not calibration.samples:
        raise error("QF908", "full-integer quantization needs calibration samples; got none")
    have = calibration.input_names
    if sorted(have) != sorted(names):
        raise error(
            "QF908",
            f"calibration inputs ({', '.join(have)}) are not the model inputs ({', '.join(names)})",
        )


def _signature_inputs(tflite: bytes) -> list[str]:
    from ai_edge_litert.interpreter import Interpreter

    runner_sigs = Interpreter(model_content=tflite).get_signature_list()
    sig = runner_sigs.get(SIGNATURE) or next(iter(runner_sigs.values()), {"inputs": []})
    return list(sig["inputs"])


def outputs_in_model_order(tflite: bytes, names: list[str]) -> bytes:
    """The .tflite with its main subgraph's outputs listed in the Keras model's order.

    The converter orders a multi-output graph's outputs by its own graph walk, not by the
    signature (tf_keras heads came out as [head_c, head_dil, head_gap]), and index-based
    runtimes (get_output_details()[i], the Edge TPU's pycoral) then read the wrong head. The
    signature maps each output name to its tensor, so the outputs vector is permuted in place:
    same tensors, same length, nothing else moves. Unchanged when the signature does not name
    every output or the order already matches. Pure Python (the `tflite` schema bindings).
    """
    import struct

    from tflite.Model import Model

    root = Model.GetRootAs(tflite, 0)
    sig = next((root.SignatureDefs(i) for i in range(root.SignatureDefsLength())
                if root.SignatureDefs(i).SubgraphIndex() == 0), None)
    if sig is None or root.SubgraphsLength() == 0:
        return tflite
    by_name = {sig.Outputs(j).Name().decode(): sig.Outputs(j).TensorIndex() for j in range(sig.OutputsLength())}
    graph = root.Subgraphs(0)
    current = [graph.Outputs(j) for j in range(graph.OutputsLength())]
    wanted = [by_name[n] for n in names if n in by_name]
    if wanted == current or sorted(wanted) != sorted(current):
        return tflite
    start = graph._tab.Vector(graph._tab.Offset(8))  # SubGraph.outputs: an int32 vector
    buf = bytearray(tflite)
    for j, tensor in enumerate(wanted):
        struct.pack_into("<i", buf, start + 4 * j, tensor)
    return bytes(buf)


# --- errors ----------------------------------------------------------------------


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_RAISED = re.compile(r"\b(\w+(?:Error|Exception)): (.+)")
_NOISE = ("Traceback", "File ", "<unknown>", "Exception encountered", "in user code:")


def _without_location(text: str) -> str:
    """An MLIR diagnostic's text with its leading `loc(...)` (often 200+ characters of
    `callsite(fused[...])`) moved to the end as the first op path it names: "error: 'tfl.x' op
    …reason… (at model/quant_layer/Op)"."""
    if not text.startswith("loc("):
        return f"error: {text}"
    depth, quoted = 0, False
    for i, ch in enumerate(text):
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in "()":
            depth += 1 if ch == "(" else -1
            if depth == 0:
                where = next((q for q in re.findall(r'"([^"]*)"', text[:i]) if "/" in q), None)
                rest = text[i + 1:].lstrip(": ").strip()
                return f"error: {rest}" + (f" (at {where})" if where else "")
    return f"error: {text}"


def _meaningful_line(e: BaseException) -> str:
    """The line of a converter/Keras error that says something: an MLIR `error:` line, else a
    `SomeError: message` line (tf.function wraps the real one in `in user code:` frames), else
    the first line that is not a traceback frame."""
    lines = [_ANSI.sub("", ln).strip() for ln in str(e).splitlines()]
    lines = [ln for ln in lines if ln]
    for ln in lines:
        if "error:" in ln:
            return _without_location(ln[ln.index("error:") + len("error:"):].strip())[:300]
    for ln in lines:
        m = _RAISED.search(ln)
        if m:
            return f"{m.group(1)}: {m.group(2)}"[:300]
    for ln in lines:
        if not ln.startswith(_NOISE):
            return ln[:300]
    return type(e).__name__
