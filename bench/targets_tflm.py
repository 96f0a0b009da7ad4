"""TFLite Micro and GPU-delegate targets over the fixtures (and, with --apps, keras.applications):
what the real TFLM interpreter says about each converted model, and what falls back to the CPU
on the GPU delegate.

For each model and target, one `qfix MODEL --target T --format json --out-dir TMP` (the main
job: rewrite, convert, verify) in a fresh process. A row records the exit status, ops on
target, the first unsupported op, the int8 (tflm) or float16 (gpu) SQNR and the wall time;
for tflm what the interpreter did (ran, or its error), how many output values differ from
LiteRT's and by how many quantization steps, the least tensor arena it ran in beside TFLM's own
record, and the model size; for gpu how many ops fall back to the CPU and how many more the
delegate's one-partition default leaves there. Figures are printed, never asserted.

    python bench/targets_tflm.py                          # every fixture, both targets
    python bench/targets_tflm.py --only tiny_cnn_k3,gru_k3 --targets tflm
    python bench/targets_tflm.py --apps MobileNetV2,MobileNetV3Small --out /tmp/targets_tflm.json
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

from _common import ROOT, built_application, timed

QFIX = Path(sys.executable).with_name("qfix")  # the installed console script beside this Python
TARGETS = ("tflm", "gpu")
# Fixtures the model job refuses to load without an opt-in (Lambda bytecode, custom classes,
# a hub handle): reported as such by qfix, nothing to measure here.
REFUSED = {"custom_layer_k3", "lambda_cnn_k3", "lambda_cnn_tfk", "hub_seed_tfk"}


def run(model: Path, target: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="qfix-bench-") as out:
        seconds, peak, proc = timed([str(QFIX), str(model), "--target", target, "--format", "json", "--out-dir", out])
    row = {"model": model.stem, "target": target, "exit": proc.returncode, "seconds": round(seconds, 1),
           "peak_mib": peak}
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        row["error"] = (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]
        return row
    ver = report.get("verification") or {}
    if not ver.get("converted"):
        row["error"] = str(ver.get("reason") or "not converted")[:200]
        return row
    first = ver.get("first_unsupported") or {}
    fid = ver.get("fidelity") or {}
    row.update(ops=f"{ver['ops_on_target']}/{ver['ops_total']}", fully=ver["fully_on_target"],
               first=f"{first.get('op')} ({first.get('layer')})" if first else "-",
               sqnr_db=fid.get("sqnr_db"), blockers=sorted({f["code"] for f in report["findings"]
                                                            if f["severity"] == "blocker"}))
    if target == "tflm":
        r = (ver.get("compiler") or {}).get("result") or {}
        row.update(tflm_ran=r.get("ok"), tflm_error=(r.get("error") or "")[:120] or None,
                   values=r.get("values"), differing=r.get("differing"), beyond_one_step=r.get("beyond_one_step"),
                   max_steps=r.get("max_diff_steps"), arena=r.get("arena_bytes"), arena_recorded=r.get("arena_recorded"),
                   model_bytes=r.get("model_bytes"))
    else:
        row["cpu_fallback"] = len(ver.get("fallback") or [])
        more = [int(m.group(1)) for w in ver.get("warnings", []) if (m := re.search(r"so (\d+) more op", w))]
        row["left_by_one_partition"] = more[0] if more else 0
    return row


def fixtures(only: set[str] | None) -> list[Path]:
    models = sorted((ROOT / "fixtures").glob("*.keras"), key=lambda p: p.stat().st_size)
    return [p for p in models if p.stem not in REFUSED and (not only or p.stem in only)]


def show(row: dict) -> str:
    head = f"{row['model']:<26} {row['target']:<5} exit {row['exit']}  {row['seconds']:>6.1f}s"
    if "error" in row:
        return f"{head}  {row['error']}"
    sqnr = "-" if row.get("sqnr_db") is None else f"{float(row['sqnr_db']):.1f} dB" if isinstance(
        row["sqnr_db"], (int, float)) else str(row["sqnr_db"])
    text = f"{head}  ops {row['ops']:<7} fully {str(row['fully']):<5} SQNR {sqnr:<9} first {row['first']}"
    if row["target"] == "tflm":
        if row.get("tflm_ran"):
            text += (f"\n{'':<34}TFLM ran: {row['differing']}/{row['values']} values differ, "
                     f"{row['beyond_one_step']} beyond one step (max {row['max_steps']}); arena {row['arena']:,} B "
                     f"(TFLM records {row['arena_recorded']:,} B), model {row['model_bytes']:,} B")
        elif row.get("tflm_ran") is False:
            text += f"\n{'':<34}TFLM failed: {row['tflm_error']}"
    else:
        text += f"\n{'':<34}falls back to the CPU: {row['cpu_fallback']} op(s); " \
                f"{row['left_by_one_partition']} more left by the one-partition default"
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", help="fixture stems, comma-separated (default: every fixture)")
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--apps", default="", help="keras.applications names to add (weights=None, 96x96)")
    ap.add_argument("--no-fixtures", action="store_true", help="only the --apps models")
    ap.add_argument("--out", type=Path, help="write the rows as JSON")
    args = ap.parse_args()
    models = [] if args.no_fixtures else fixtures(set(args.only.split(",")) if args.only else None)
    models += [built_application(name) for name in filter(None, args.apps.split(","))]
    rows = []
    for model in models:
        for target in args.targets.split(","):
            rows.append(run(model, target))
            print(show(rows[-1]), flush=True)
            if args.out:
                args.out.write_text(json.dumps(rows, indent=1))
    tflm = [r for r in rows if r["target"] == "tflm" and r.get("tflm_ran")]
    if tflm:
        values = sum(r["values"] for r in tflm)
        print(f"\nTFLM vs LiteRT over {len(tflm)} model(s): {sum(r['differing'] for r in tflm)} of {values} "
              f"values differ, {sum(r['beyond_one_step'] for r in tflm)} by more than one step, max "
              f"{max(r['max_steps'] or 0 for r in tflm)} step(s)")


if __name__ == "__main__":
    main()
