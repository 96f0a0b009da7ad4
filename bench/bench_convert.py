"""Benchmark: qfix's conversion path vs what a user writes by hand (`bare_convert`).

    python bench/bench_convert.py [--model MobileNetV2] [--size 96] [--samples 32]
                                  [--dialect k3|tfk] [--repeat 1] [--work-dir DIR]

Wall time on a shared machine is noisy, so CPU time (process_time: all threads) is reported
too. Each measurement runs in a fresh subprocess (TF import excluded from the timing) so neither
path benefits from the other's warm caches. Both use the same recipe (edgetpu) and the same
synthetic calibration samples. "qfix" = load_model + convert (SavedModel signature export);
"bare" = load_model + TFLiteConverter.from_keras_model. Fidelity is measured for both outputs.

Measured 2026-11-27 (TF 2.21, 2 shared cores, load 4-5; MobileNetV2 96x96, edgetpu, 32 samples):

    dialect  path   wall s  CPU s   SQNR dB
    k3       qfix    19.9   13.4    36.1
    k3       bare    27.1   21.4    36.1
    tfk      qfix    25.0   16.0    36.1
    tfk      bare    56.9   39.0    36.1

(bare leaves the batch dynamic; qfix fixes it to 1 and keys inputs by name.)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _one(args) -> dict:
    sys.path[:0] = [str(REPO)]
    import tensorflow  # noqa: F401  (import cost kept out of the timings)

    from fixtures.applications import SELF_PREPROCESSING, build_application
    from qfix.convert.calibration import load_calibration
    from qfix.convert.converter import bare_convert, convert, recipe_for
    from qfix.convert.keras import input_specs, load_model
    from qfix.convert.fidelity import fidelity

    path = build_application(args.model, args.dialect, args.work_dir, args.size)
    dialect = "keras3" if args.dialect == "k3" else "tf_keras"
    recipe = recipe_for(args.target)
    c0, t0 = time.process_time(), time.perf_counter()
    model = load_model(path, dialect)
    load_s, load_cpu = time.perf_counter() - t0, time.process_time() - c0
    specs = input_specs(model)
    if args.model in SELF_PREPROCESSING:
        specs[0].value_range = (0.0, 255.0)
    cal = load_calibration(None, specs, n=args.samples)
    c0 = time.process_time()
    if args.one == "qfix":
        result = convert(model, recipe, cal)
        total, cpu = load_s + result.seconds, load_cpu + time.process_time() - c0
    else:  # bare_convert loads the model itself: its time includes the load
        result = bare_convert(path, recipe, cal, dialect=dialect)
        total, cpu = result.seconds, time.process_time() - c0
    t1 = time.perf_counter()
    fid = fidelity(model, result.tflite, cal)
    return {
        "path": args.one,
        "seconds": round(total, 2),
        "cpu_seconds": round(cpu, 2),
        "load_seconds": round(load_s, 2),
        "tflite_kib": round(len(result.tflite) / 1024, 1),
        "sqnr_db": round(fid.sqnr_db, 2),
        "top1": fid.top1_agreement,
        "fidelity_seconds": round(time.perf_counter() - t1, 2),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="MobileNetV2")
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--dialect", default="k3", choices=["k3", "tfk"])
    ap.add_argument("--target", default="edgetpu")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--work-dir", default=os.path.join(tempfile.gettempdir(), "qfix-bench"))
    ap.add_argument("--one", choices=["qfix", "bare"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(_one(args)))
        return 0
    base = [sys.executable, __file__] + [
        f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items() if k not in ("one", "repeat")
    ]
    print(f"{args.model} {args.size}x{args.size} {args.dialect} {args.target}, "
          f"{args.samples} calibration samples")
    for _ in range(args.repeat):
        for which in ("qfix", "bare"):
            r = subprocess.run(base + [f"--one={which}"], capture_output=True, text=True)
            lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
            if r.returncode or not lines:
                print(f"{which}: failed\n{r.stderr[-2000:]}")
                continue
            print(json.dumps(json.loads(lines[-1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
