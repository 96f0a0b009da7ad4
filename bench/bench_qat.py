"""Benchmark: `qfix MODEL --mode qat --check` against the same work done by hand with tfmot:
load, `quantize_model`, one training step, conversion of the QAT model.

    python bench/bench_qat.py [--model fixtures/tiny_cnn_tfk.keras | --app MobileNetV2 --size 96]
                              [--samples 16] [--target edgetpu] [--repeat 1]

Both run as fresh processes with the same number of synthetic samples and the same recipe
(Optimize.DEFAULT, the target's integer I/O, batch 1 at conversion, no dataset). "by hand"
is the script a user writes: what it does is timed without and with TensorFlow's import (qfix's
time always includes it: its worker imports TF). qfix does more on top: the static rules, the
rewrites, a float model run for the training targets, the op-by-op check of the QAT `.tflite`
against the target and its fidelity against the QAT model.

Measured 2026-11-30 (TF 2.21, 2 shared cores, load 7, edgetpu):

    model                         samples  qfix --mode qat --check   by hand (without TF import)
    tiny_cnn_tfk                  16        49.7 s (exit 0, trained)   43.8 s (22.8 s)
    MobileNetV2 96x96 (tf_keras)   8       168.0 s (exit 0, trained)  310.5 s (277.3 s)

(by hand converts through `from_concrete_functions` at batch 1; qfix exports a SavedModel
signature, which is faster on MobileNetV2, as bench_convert.py measured for PTQ.)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, built_application, timed  # noqa: E402

BY_HAND = r"""
import json, os, sys, time
t_start = time.perf_counter()
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import numpy as np
import tensorflow as tf
import tf_keras
import tensorflow_model_optimization as tfmot
t0 = time.perf_counter()
path, n, io = sys.argv[1], int(sys.argv[2]), sys.argv[3]
model = tf_keras.models.load_model(path, compile=False)
x = np.random.default_rng(0).random((n, *model.input_shape[1:]), dtype=np.float32)
y = model(x, training=False)
qat = tfmot.quantization.keras.quantize_model(model)
qat.compile(optimizer=tf_keras.optimizers.Adam(1e-3), loss="mse")
qat.train_on_batch(x, y)
spec = tf.TensorSpec([1, *model.input_shape[1:]], tf.float32)
serve = tf.function(lambda t: qat(t, training=False))
converter = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function(spec)], qat)
converter.optimizations = [tf.lite.Optimize.DEFAULT]
converter.inference_input_type = converter.inference_output_type = tf.as_dtype(io)
size = len(converter.convert())
print(json.dumps({"work_s": time.perf_counter() - t0, "total_s": time.perf_counter() - t_start, "bytes": size}))
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "fixtures" / "tiny_cnn_tfk.keras"), help="a tf_keras .keras file")
    ap.add_argument("--app", help="a keras.applications name, built with tf_keras and weights=None (overrides --model)")
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--target", default="edgetpu")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args(argv)
    path = built_application(args.app, "tfk", args.size) if args.app else Path(args.model)
    sys.path.insert(0, str(ROOT))
    from qfix.targets import load_profile

    io = load_profile(args.target).recipe.io_dtype
    qfix = [sys.executable, "-m", "qfix", str(path), "--mode", "qat", "--check", "--format", "json",
            "--samples", str(args.samples), "--target", args.target]
    rows = []
    for _ in range(args.repeat):
        q_s, q_mb, proc = timed(qfix)
        report = json.loads(proc.stdout) if proc.stdout.strip() else {}
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "by_hand.py"
            script.write_text(BY_HAND)
            h_s, h_mb, hand = timed([sys.executable, str(script), str(path), str(args.samples), io])
        if hand.returncode != 0:
            print(hand.stderr[-2000:], file=sys.stderr)
            return 1
        h = json.loads(hand.stdout.strip().splitlines()[-1])
        rows.append((q_s, q_mb, proc.returncode, report.get("qat", {}).get("trained"), h_s, h["work_s"], h_mb))
    print(f"model {path.name}, {args.samples} samples, target {args.target}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print(f"{'run':>3}  {'qfix --mode qat s':>17} {'MiB':>6} {'exit':>4} {'trained':>7}   "
          f"{'by hand s (total)':>17} {'(no TF import)':>14} {'MiB':>6}")
    for i, (q_s, q_mb, rc, trained, h_s, h_work, h_mb) in enumerate(rows, 1):
        print(f"{i:>3}  {q_s:>17.1f} {q_mb:>6} {rc:>4} {str(trained):>7}   {h_s:>17.1f} {h_work:>14.1f} {h_mb:>6}")
    return 0


if __name__ == "__main__":
    t = time.perf_counter()
    code = main()
    print(f"bench_qat: {time.perf_counter() - t:.0f}s", file=sys.stderr)
    sys.exit(code)
