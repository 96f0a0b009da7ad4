"""The `--mode qat` report (text and JSON): which layers tfmot quantizes and which stay float
and why, the training step, the QAT model's check against the target, and the training
snippet (`training_snippet`, executed by tests/jobs/test_qat_job.py)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from rich.console import Console

from qfix.report.json_report import check_json
from qfix.report.text import escape, findings_table, render_header, render_inputs, render_verification

_STATE_STYLE = {"quantized": "green", "pass-through": "cyan", "float": "yellow", "integer": "cyan",
                "transformed": "dim"}


def has_snippet(run) -> bool:
    """A training snippet is shown when the model trains and its QAT model converts: a run whose
    only fault is the placement (exit 1, e.g. attention left float cuts the Edge TPU graph)
    still wrote a model worth training; one tfmot refused or that does not convert did not."""
    return not run.problems() and run.result.verification is not None


def training_snippet(run) -> str:
    """A short script that trains and converts the model qfix wrote (or the input, when no
    rewrite was needed): load inside the quantize scope (qfix's QuantizeConfigs, the user's
    layers), quantize_model (quantize_apply when qfix annotated the float part of a model with
    integer inputs), compile/fit on `x_train, y_train` (the user's data), convert with
    Optimize.DEFAULT and the target's integer I/O at a fixed batch, without the INT8-only op
    set (on TF 2.21 it makes the converter demand a representative dataset, errors.md C1)."""
    recipe = run.result.profile.recipe
    rewritten = run.changed  # else the input is what tfmot accepts
    model = run.output_path if rewritten else str(run.result.path)
    stem = Path(run.output_path).name.removesuffix(".qfix.qat.keras") or "model"
    # Your layer classes in the scope too: an annotated custom layer deserializes inside it.
    scope = f"custom_objects({run.custom_objects!r})" if run.custom_objects else "custom_objects()"
    io = (f"converter.inference_input_type = tf.{recipe.io_dtype}\n"
          f"converter.inference_output_type = tf.{recipe.io_dtype}\n") if recipe.full_integer else ""
    # Integer inputs: qfix annotated the float part, quantize_model would fake-quantize the ids.
    quantize = ("    qat = tfmot.quantization.keras.quantize_apply(model)  # the float part is annotated\n"
                if run.annotated else "    qat = tfmot.quantization.keras.quantize_model(model)\n")
    if recipe.batch:
        convert = (
            f"# batch {recipe.batch} for {run.result.profile.id}, fixed here only: the model keeps its dynamic batch\n"
            f"specs = [tf.TensorSpec([{recipe.batch}, *t.shape[1:]], t.dtype) for t in qat.inputs]\n"
            "serve = tf.function(lambda *xs: qat(list(xs) if len(xs) > 1 else xs[0], training=False))\n"
            "converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function(*specs)], qat)\n")
    else:
        convert = "converter = tf.lite.TFLiteConverter.from_keras_model(qat)\n"
    # A --check run writes nothing: the snippet's file comes from the same command without it.
    written = ("" if not rewritten or run.outputs.get("model") else
               f"# {Path(model).name} is not written by --check: run the same qfix command without --check first\n")
    return (
        written +
        "import os\n"
        'os.environ["TF_USE_LEGACY_KERAS"] = "1"  # before TensorFlow: tfmot trains tf_keras models\n'
        "import tensorflow as tf\n"
        "import tf_keras\n"
        "import tensorflow_model_optimization as tfmot\n"
        "from qfix.convert.qat_configs import custom_objects  # qfix's QuantizeConfigs (and your layers)\n"
        "\n"
        f"with tfmot.quantization.keras.quantize_scope({scope}):\n"
        f"    model = tf_keras.models.load_model({str(model)!r}, compile=False)\n"
        f"{quantize}"
        'qat.compile(optimizer="adam", loss="mse")  # your loss and metrics\n'
        "qat.fit(x_train, y_train, epochs=1)  # your data; fine-tune a trained model a few epochs\n\n"
        f"{convert}"
        "converter.optimizations = [tf.lite.Optimize.DEFAULT]\n"
        f"{io}"
        "# no target_spec.supported_ops = [TFLITE_BUILTINS_INT8]: a QAT model needs no representative dataset\n"
        f"with open({f'{stem}.qat.{run.result.profile.id}.tflite'!r}, \"wb\") as f:\n"
        "    f.write(converter.convert())\n"
    )


def render_qat(run, console: Console) -> None:
    """The text report of a `--mode qat` run."""
    result = run.result
    render_header(result, console)
    if result.findings:
        console.print(findings_table(result.findings))
    else:
        console.print("[green]no findings[/]")
    for f in run.fixes:
        state = f"[red]rolled back[/] ({escape(f.reason or '')})" if f.rolled_back else "[green]kept[/]"
        console.print(f"  rewrite {f.code} {escape(f.layer or '-')}: {escape(f.note)} \\[{f.applicability}] — {state}")
    for s in run.skipped:
        console.print(f"  [yellow]not applied:[/] {escape(s)}")
    if run.translated:
        console.print("[bold]translated from Keras 3 to tf_keras[/]"
                      + (":" if run.translation_notes else " (spelling only)"))
        for note in run.translation_notes:
            console.print(f"  {escape(note)}")
    for name, template in run.templates.items():  # QF510's, display-only
        console.print(f"[bold]QuantizeConfig template for {escape(name)!r}[/] (QF510, display-only):")
        for line in template.splitlines():
            console.print(f"  {escape(line)}", highlight=False, soft_wrap=True)
    trial = run.trial  # a refusal is its QF505 finding, in the table above
    if trial is not None and trial.layers:
        counts = {s: sum(lq.state == s for lq in trial.layers) for s in _STATE_STYLE}
        summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        console.print(f"[bold]tfmot {trial.method}:[/] {summary}")
        for lq in trial.layers:
            style = _STATE_STYLE[lq.state]
            console.print(f"  [{style}]{lq.state:<12}[/] {escape(lq.name)} ({escape(lq.class_name)}): {escape(lq.detail)}")
    if (step := step_summary(run)) is not None:
        console.print(f"[bold]training step:[/] {escape(step)}")
    if result.verification is not None:
        render_verification(result.verification, console, title="QAT model")
        render_inputs(result, console)
    if run.float_equivalence is not None:
        console.print(f"[bold]float equivalence (rewritten vs input):[/] max abs diff {run.float_equivalence:.3g} "
                      f"(tolerance {run.tolerance:.3g})")
    if run.outputs.get("model"):
        console.print(f"wrote {escape(run.outputs['model'])} (tf_keras, dynamic batch; no .tflite: a model "
                      "trained one step is not a deliverable)")
    elif run.not_written:
        console.print(f"{escape(run.not_written)}")
    if has_snippet(run):
        console.print("[bold]train it:[/]")
        for line in training_snippet(run).splitlines():  # line by line: escape() shows a newline as \n
            console.print(f"  {escape(line)}", highlight=False, soft_wrap=True)
    render_qat_verdict(run, console)


def render_qat_verdict(run, console: Console) -> None:
    """The last line: it follows tfmot's run and the QAT model's check (the exit status)."""
    name = escape(run.result.profile.name)
    if run.exit_code() == 0:
        dead = any(v.code == "QF408" for v in run.result.findings)
        console.print(f"[bold green]trains with tfmot; the QAT model runs fully on {name}[/]"
                      + (" [yellow](QF408 warns: its numbers prove little before training)[/]" if dead else ""))
        return
    why = run.problems()
    if not why and run.result.verification is not None and not run.result.verification.placement.fully_on_target:
        why = [f"the QAT model does not run fully on {run.result.profile.name}"]
    elif not why:
        why = ["blockers remain"]
    console.print(f"[bold red]{escape('; '.join(why))}[/]")


def qat_json(run) -> dict[str, Any]:
    """The check keys (for the rewritten model's QAT conversion) plus a `qat` object."""
    fe = run.float_equivalence
    ver = run.result.verification
    out = check_json(run.result, outputs=run.outputs, float_equivalence=None if fe is None else {
        "max_abs_diff": fe, "samples": ver.fidelity.samples if ver else 0,
        "unsafe": any(f.applicability == "unsafe" for f in run.active),
        "tolerance": run.tolerance})
    trial = run.trial
    out["mode"] = "qat"
    out["fixes"] = [f.to_json() for f in run.fixes]
    out["not_applied"] = run.skipped
    out["qat"] = {
        "trained": run.trained,
        "not_trained": run.not_trained,
        "tfmot_error": trial.refused if trial is not None else None,
        "quantize_call": trial.method if trial is not None else None,  # quantize_apply: float part annotated
        "layers": [lq.to_json() for lq in trial.layers] if trial is not None else [],
        "training_step": trial.step.to_json() if trial is not None and trial.step is not None else None,
        "conversion_error": trial.conversion_error if trial is not None else None,
        "translated_from_keras3": run.translated,
        "translation_notes": run.translation_notes,
        "problems": run.problems(),
        "float_culprits": run.float_culprits,  # what changes the float outputs → max abs diff without it
        "snippet": training_snippet(run) if has_snippet(run) else None,
        "quantize_config_templates": run.templates,
    }
    out["model_not_written"] = run.not_written
    out["exit_code"] = run.exit_code()
    return out


def step_summary(run) -> str | None:
    """The training step of a qfix.jobs.qat.QatRun in words: `MSE to the float model 0.0123 →
    0.0101 (one Adam step on 16 synthetic samples, weights changed, 1.7s)`, or None."""
    step = run.trial.step if run.trial is not None else None
    if step is None:
        return None
    data = "synthetic" if step.synthetic else "calibration"

    def f(x: float) -> str:
        return f"{x:.4g}" if math.isfinite(x) else str(x)

    moved = "weights changed" if step.weights_changed else "weights UNCHANGED"
    return (f"MSE to the float model {f(step.loss_before)} → {f(step.loss_after)} (one Adam step on "
            f"{step.samples} {data} samples, {moved}, {step.seconds:.1f}s)")

