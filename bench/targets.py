"""The Ethos-U targets with the real Vela: NPU op share of the plain converter's output vs qfix's,
and how often qfix's profile and Vela disagree, on the fixtures and a few keras.applications models.

For each model (fixtures/*.keras, the tiny models of fixtures/ethos_models.py, and
keras.applications models at 32x32 with weights=None) and each target (ethos-u55, ethos-u65,
ethos-u85 by default):

  plain   `bare_convert` (load_model + TFLiteConverter.from_keras_model) with the target's recipe
          and the synthetic samples qfix uses, in a child process (once per model: the three
          targets share the recipe); Vela then places its ops, and qfix's profile is checked
          against that placement op by op;
  qfix    `qfix MODEL --target T --format json --out-dir TMP` (the main job: rewrite, convert,
          verify): its `verification` (after) and `before`, both judged by Vela, each with the
          profile's disagreements.

Columns: NPU share = TFLite ops Vela places on the NPU / all ops (Vela's own percentages count
its lowered operations instead); plain → after; "disagree" = ops where the profile's prediction
and Vela differ on the plain / before / after files; Vela's estimate for qfix's file (cycles,
SRAM, flash + DRAM). The last lines sum the agreement and count the rows where qfix's share is
below the plain converter's (the issue's goal is none).

    python bench/targets.py                                   # everything (about an hour on 2 cores)
    python bench/targets.py --only tiny_cnn_k3,MobileNetV2 --targets ethos-u55
    python bench/targets.py --no-apps --out /tmp/targets.json
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

from _common import CACHE, ROOT

from qfix.targets import load_profile
from qfix.targets.check import check
from qfix.targets.compilers import vela
from qfix.targets.tflite import read_tflite

TARGETS = ("ethos-u55", "ethos-u65", "ethos-u85")
APPS = ("MobileNetV2", "MobileNetV3Small", "EfficientNetB0")
SIZE = 32
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
# Fixtures that need an opt-in to load (their code would run) or crash TF's converter by design.
OPT_INS = {"lambda_cnn_k3": ["--trust-lambdas"], "lambda_cnn_tfk": ["--trust-lambdas"],
           "custom_layer_k3": ["--custom-objects", "fixtures.custom_layers"]}

PLAIN = r"""
import sys
from qfix.convert.calibration import synthetic_calibration
from qfix.convert.converter import bare_convert
from qfix.model.archive import read_archive
from qfix.model.graph import build_graph
from qfix.model.inputs import input_specs
from qfix.targets import load_profile
path, target, samples, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if len(sys.argv) > 5:
    __import__(sys.argv[5])  # the fixture's custom layers, as --custom-objects does
archive = read_archive(path)
calib = synthetic_calibration(input_specs(build_graph(archive.config, archive.dialect)), n=samples)
open(out, "wb").write(bare_convert(path, load_profile(target).recipe, calib, archive.dialect).tflite)
"""

BUILD_TINY = r"""
import sys, keras
from pathlib import Path
from fixtures.ethos_models import builders
out = Path(sys.argv[1])
for name, build in builders().items():
    path = out / f"vela_{name}_k3.keras"
    if not path.exists():
        keras.backend.clear_session()
        keras.utils.set_random_seed(0)
        build().save(path)
"""


def models(only: set[str] | None, apps: bool) -> list[Path]:
    """The .keras files to run: the fixtures, the tiny Ethos-U models, the applications."""
    import hashlib

    # Keyed by the builders' source: a changed model is built again.
    digest = hashlib.sha256((ROOT / "fixtures" / "ethos_models.py").read_bytes()).hexdigest()[:10]
    tiny = CACHE / f"ethos_models-{digest}"
    tiny.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-c", BUILD_TINY, str(tiny)], check=True, cwd=ROOT, env=ENV,
                   capture_output=True)
    paths = sorted((ROOT / "fixtures").glob("*.keras")) + sorted(tiny.glob("*.keras"))
    if apps:
        from _common import built_application

        paths += [built_application(name, "k3", SIZE) for name in APPS if not only or name in only]
    return [p for p in paths if not only or p.stem in only or any(p.stem.startswith(o.lower()) for o in only)]


def plain_tflite(path: Path, samples: int, out: Path) -> str | None:
    """Convert with the bare converter into `out`; None, or why it failed."""
    extra = [OPT_INS[path.stem][1]] if path.stem in OPT_INS and OPT_INS[path.stem][0] == "--custom-objects" else []
    try:
        proc = subprocess.run([sys.executable, "-c", PLAIN, str(path), TARGETS[0], str(samples), str(out), *extra],
                              cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=1800)
    except subprocess.TimeoutExpired:
        return "timed out"
    if proc.returncode != 0 or not out.exists():
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        return (lines[-1] if lines else f"exit {proc.returncode}").removeprefix("qfix.types.QfixError: ")[:100]
    return None


def judged(data: bytes, target: str) -> dict:
    """Vela's placement of a .tflite and the profile's disagreements with it (a file Vela
    refuses whole: no op on the NPU, and each op the profile put there disagrees)."""
    profile = load_profile(target)
    result = vela.run(data, **vela.options(profile))
    placement = check(read_tflite(data), profile)
    if result.rejected:
        return {"npu": 0, "total": placement.ops_total, "disagree": placement.ops_on_target,
                "compared": placement.ops_total, "rejected": result.error}
    if not result.ok:
        return {"error": result.error}
    return {"npu": result.ops_on_npu, "total": len(result.ops), "disagree": len(vela.compare(placement, result)),
            "compared": len(result.ops)}


def qfix_run(path: Path, target: str, samples: int) -> dict:
    cmd = [sys.executable, "-m", "qfix", str(path), "--target", target, "--format", "json",
           "--samples", str(samples), *OPT_INS.get(path.stem, [])]
    with tempfile.TemporaryDirectory(prefix="qfix-targets-") as out:
        t0 = time.perf_counter()
        try:
            proc = subprocess.run([*cmd, "--out-dir", out], cwd=ROOT, env=ENV, capture_output=True, text=True,
                                  timeout=3600)
        except subprocess.TimeoutExpired:
            return {"exit": "timeout"}
        seconds = time.perf_counter() - t0
    try:
        rep = json.loads(proc.stdout)
    except json.JSONDecodeError:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        return {"exit": proc.returncode, "error": (lines[-1] if lines else "")[:100], "seconds": seconds}
    return {"exit": proc.returncode, "seconds": seconds, "after": _ver(rep.get("verification")),
            "before": _ver(rep.get("before"))}


def _ver(ver: dict | None) -> dict | None:
    if not ver or not ver.get("converted"):
        return None
    comp = ver.get("compiler") or {}
    res = comp.get("result") or {}
    if comp.get("verdict") != "vela":
        return {"error": res.get("error") or "vela did not judge"}
    return {"npu": res["ops_on_npu"], "total": ver["ops_total"], "disagree": len(comp["disagreements"]),
            "compared": ver["ops_total"], "estimates": res.get("estimates")}


def _share(v: dict | None) -> str:
    if not v:
        return "-"
    if "error" in v:
        return "err"
    return f"{v['npu']}/{v['total']}"


def _ratio(v: dict | None) -> float | None:
    return v["npu"] / v["total"] if v and "npu" in v and v["total"] else None


def row_line(r: dict) -> str:
    after = r["qfix"].get("after")
    dis = "/".join(str(v["disagree"]) if v and "disagree" in v else "-"
                   for v in (r["plain"], r["qfix"].get("before"), after))
    est = (after or {}).get("estimates")
    e = "-" if not est else (f"{est['cycles_total']:>9} cyc  SRAM {est['sram_bytes'] / 1024:7.1f} KiB  "
                             f"flash+DRAM {(est['flash_bytes'] + est['dram_bytes']) / 1024:8.1f} KiB")
    note = (f"plain: {r['plain_error']}" if r.get("plain_error") else
            f"vela rejects the plain file: {r['plain']['rejected']}"[:140] if (r["plain"] or {}).get("rejected") else
            r["qfix"].get("error") or "")
    return (f"{r['model']:<30} {r['target']:<10} {_share(r['plain']):>8} → {_share(after):<8} "
            f"{dis:<8} {r['qfix'].get('exit')!s:<5} {e} {note}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--only", default="", help="model stems or application names, comma-separated")
    ap.add_argument("--no-apps", action="store_true", help="skip the keras.applications models")
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = ap.parse_args()
    if vela.available() is None:
        print("ethos-u-vela is not installed: pip install '.[targets]'", file=sys.stderr)
        return 2
    targets = [t for t in args.targets.split(",") if t]
    only = {o for o in args.only.split(",") if o} or None
    rows = []
    print(f"{'model':<30} {'target':<10} {'NPU ops plain → qfix':<19} {'disagree':<8} {'exit':<5} "
          f"Vela's estimate for qfix's file")
    for path in models(only, not args.no_apps):
        with tempfile.TemporaryDirectory(prefix="qfix-plain-") as tmp:
            plain_path = Path(tmp) / "plain.tflite"
            plain_error = plain_tflite(path, args.samples, plain_path)
            plain_data = None if plain_error else plain_path.read_bytes()
        for target in targets:
            row = {"model": path.stem, "target": target, "plain_error": plain_error,
                   "plain": judged(plain_data, target) if plain_data else None,
                   "qfix": qfix_run(path, target, args.samples)}
            rows.append(row)
            print(row_line(row), flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))
    summary(rows)
    return 0


def summary(rows: list[dict]) -> None:
    compared = disagree = 0
    for r in rows:
        for v in (r["plain"], r["qfix"].get("before"), r["qfix"].get("after")):
            if v and "compared" in v:
                compared, disagree = compared + v["compared"], disagree + v["disagree"]
    both = [r for r in rows if _ratio(r["plain"]) is not None and _ratio(r["qfix"].get("after")) is not None]
    worse = [r for r in both if _ratio(r["qfix"]["after"]) < _ratio(r["plain"])]
    better = [r for r in both if _ratio(r["qfix"]["after"]) > _ratio(r["plain"])]
    full_plain = sum(_ratio(r["plain"]) == 1.0 for r in both)
    full_after = sum(_ratio(r["qfix"]["after"]) == 1.0 for r in both)
    print(f"\nprofile vs Vela: {disagree} disagreement(s) in {compared} op placements "
          f"(plain, before and after files of {len(rows)} rows)")
    print(f"NPU op share, qfix vs plain converter ({len(both)} rows with both): higher on {len(better)}, "
          f"lower on {len(worse)}; all ops on the NPU: plain {full_plain}, qfix {full_after}")
    for r in worse:
        print(f"  lower: {r['model']} {r['target']}: {_share(r['plain'])} → {_share(r['qfix']['after'])}")


if __name__ == "__main__":
    sys.exit(main())
