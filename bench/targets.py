"""Every target qfix ships, over the fixtures, the tiny Ethos-U models and keras.applications:
ops on target for the plain converter's file and for qfix's, and what each target's own judge says.

For each model (fixtures/*.keras, the tiny models of fixtures/ethos_models.py, and
keras.applications models at 32x32 with weights=None, smallest file first) and each target
(every built-in profile, `qfix targets`, by default):

  plain   `bare_convert` (load_model + TFLiteConverter.from_keras_model) with the target's recipe
          and the synthetic samples qfix uses, in one child process per model (targets with the
          same recipe share one conversion); qfix's profile places its ops, and on the Ethos-U
          targets Vela places them too and the two are compared op by op;
  qfix    `qfix MODEL --target T --format json --out-dir TMP` (the main job: rewrite, convert,
          verify): its `before` (the model as given, converted qfix's way) and `verification`
          (after the rewrite).

A row: ops on target plain → after, fully on target, the first blocker (op @layer: reason) and
what is specific to the target:
  ethos-u*  NPU share by Vela (TFLite ops Vela places on the NPU / all ops; Vela's own
            percentages count its lowered operations instead), the profile-vs-Vela
            disagreements on the plain, before and after files (each one listed), Vela's
            estimate for qfix's file;
  tflm      the TFLM-vs-LiteRT output comparison on qfix's file: per output, values compared,
            how many differ and the largest difference in quantization steps; the tensor arena
            and the model size;
  gpu       the profile's verdict (no GPU here), how many ops fall back to the CPU and how many
            more the delegate's one-partition default leaves there;
  edgetpu   whose verdict (edgetpu_compiler when on PATH, else the profile).
Rows are written to --out after every row (so --resume picks a run up); `--report` prints the
table and the summary of a results file. Figures are printed, never asserted.

    python bench/targets.py --no-apps                               # fixtures, every target
    python bench/targets.py --only MobileNetV3Small --targets ethos-u55,tflm --apps-cache /work/fleet/cache
    python bench/targets.py --report                                # the committed results
    python bench/targets.py --targets tflm --out bench/targets-results/tflm.json   # one file per run
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import CACHE, ROOT, blocker, columns, save_rows

from qfix.targets import available_targets

RESULTS = ROOT / "bench" / "targets-results" / "targets.json"
# Smallest first: about 2-5 min per model per Ethos-U target on 2 shared cores.
APPS = ("MobileNetV3Small", "MobileNetV2", "MobileNet", "EfficientNetB0", "NASNetMobile", "MobileNetV3Large",
        "EfficientNetV2B0", "DenseNet121", "ResNet50")
SIZE = 32  # the smallest input every application above accepts (the fleet's size)
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
# Fixtures that need an opt-in to load (their code would run).
OPT_INS = {"lambda_cnn_k3": ["--trust-lambdas"], "lambda_cnn_tfk": ["--trust-lambdas"],
           "custom_layer_k3": ["--custom-objects", "fixtures.custom_layers"]}

# One child per model: convert once per distinct recipe, place the ops by each target's profile,
# and let the real compiler (Vela) place them too, keeping its disagreements with the profile.
PLAIN = r"""
import json, sys
from qfix.convert.calibration import synthetic_calibration
from qfix.convert.converter import bare_convert
from qfix.model.archive import read_archive
from qfix.model.graph import build_graph
from qfix.model.inputs import input_specs
from qfix.targets import load_profile
from qfix.targets.check import check
from qfix.targets.compilers import judge
from qfix.targets.tflite import read_tflite
path, targets, samples = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3])
if len(sys.argv) > 4:
    __import__(sys.argv[4])  # the fixture's custom layers, as --custom-objects does
archive = read_archive(path)
graph = build_graph(archive.config, archive.dialect)
names = [l.name for _, l in graph.walk()]
calib = synthetic_calibration(input_specs(graph), n=samples)
files = {}
for target in targets:
    profile = load_profile(target)
    r = profile.recipe
    key = (r.quantization, r.io_dtype, r.batch, r.supported_ops)
    row = {"target": target}
    try:
        if key not in files:
            files[key] = bare_convert(path, r, calib, archive.dialect).tflite
        data = files[key]
    except Exception as exc:
        files[key] = exc
    if isinstance(files[key], Exception):
        exc = files[key]
        row["error"] = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        print(json.dumps(row), flush=True)
        continue
    placement = check(read_tflite(data), profile, names)
    compiler = judge(profile, data, placement)
    row.update(ops_total=placement.ops_total, ops_on_target=placement.ops_on_target,
               fully_on_target=placement.fully_on_target, first_unsupported=placement.first_unsupported,
               float_tensors=len(placement.float_tensors))
    if compiler:
        res = compiler.get("result") or {}
        row.update(compiler=compiler["used"], verdict=compiler["verdict"],
                   disagreements=compiler.get("disagreements") or [],
                   rejected=res.get("error") if res.get("rejected") else None)
    print(json.dumps(row), flush=True)
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


def family(target: str) -> str:
    return "ethos-u" if target.startswith("ethos-u") else target


# --- the models ---------------------------------------------------------------------------------


def models(only: set[str] | None, apps: list[str], apps_cache: Path | None) -> list[tuple[str, Path]]:
    """(kind, .keras file) to run: the fixtures, the tiny Ethos-U models, the applications."""
    import hashlib

    # Keyed by the builders' source: a changed model is built again.
    digest = hashlib.sha256((ROOT / "fixtures" / "ethos_models.py").read_bytes()).hexdigest()[:10]
    tiny = CACHE / f"ethos_models-{digest}"
    tiny.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-c", BUILD_TINY, str(tiny)], check=True, cwd=ROOT, env=ENV,
                   capture_output=True)
    out = [("ethos-u model", p) for p in sorted(tiny.glob("*.keras"))]
    out += [("fixture", p) for p in sorted((ROOT / "fixtures").glob("*.keras"), key=lambda p: p.stat().st_size)]
    for name in apps:
        if only and name not in only:
            continue
        cached = apps_cache / f"{name.lower()}_{SIZE}_k3.keras" if apps_cache else None
        out.append(("application", cached if cached and cached.exists() else application(name)))
    return [(k, p) for k, p in out if not only or p.stem in only or k == "application"]


def application(name: str) -> Path:
    """Build (once, in bench/.cache) a keras.applications model as the fleet does: weights=None,
    classes=10, SIZE x SIZE x 3, seeded; in a child so this process never imports TensorFlow."""
    path = CACHE / "targets-apps" / f"{name.lower()}_{SIZE}_k3.keras"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        code = ("import sys, keras; keras.utils.set_random_seed(0); "
                f"m = getattr(keras.applications, {name!r})(input_shape=({SIZE}, {SIZE}, 3), weights=None, classes=10); "
                f"m.save({str(path.with_suffix('.tmp.keras'))!r})")
        subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=ENV, capture_output=True)
        path.with_suffix(".tmp.keras").replace(path)
    return path


# --- the two runs -------------------------------------------------------------------------------


def plain_runs(path: Path, targets: list[str], samples: int, timeout: float) -> dict[str, dict]:
    """target -> the plain converter's row (or {"error": ...})."""
    extra = [OPT_INS[path.stem][1]] if OPT_INS.get(path.stem, [""])[0] == "--custom-objects" else []
    cmd = [sys.executable, "-c", PLAIN, str(path), ",".join(targets), str(samples), *extra]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)
        rows = {r["target"]: r for r in map(json.loads, (ln for ln in proc.stdout.splitlines() if ln.startswith("{")))}
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        why = (lines[-1] if lines else f"exit {proc.returncode}").removeprefix("qfix.types.QfixError: ")[:200]
    except subprocess.TimeoutExpired:
        rows, why = {}, f"timed out after {timeout:.0f}s"
    return {t: rows.get(t) or {"target": t, "error": why} for t in targets}


def qfix_run(path: Path, target: str, samples: int, timeout: float) -> dict:
    cmd = [sys.executable, "-m", "qfix", str(path), "--target", target, "--format", "json",
           "--samples", str(samples), *OPT_INS.get(path.stem, [])]
    with tempfile.TemporaryDirectory(prefix="qfix-targets-") as out:
        t0 = time.perf_counter()
        try:
            proc = subprocess.run([*cmd, "--out-dir", out], cwd=ROOT, env=ENV, capture_output=True, text=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"exit": "timeout", "seconds": round(time.perf_counter() - t0, 1)}
        seconds = round(time.perf_counter() - t0, 1)
    try:
        rep = json.loads(proc.stdout)
    except json.JSONDecodeError:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        return {"exit": proc.returncode, "error": (lines[-1] if lines else "")[:200], "seconds": seconds}
    return {"exit": proc.returncode, "seconds": seconds, "after": verification(rep.get("verification")),
            "before": verification(rep.get("before")),
            "blockers": sorted({f["code"] for f in rep.get("findings", [])
                                if f.get("severity") == "blocker" and not f.get("applied")}),
            "fixes": [f"{f.get('code')} {f.get('layer')}" for f in rep.get("fixes", [])]}


def verification(ver: dict | None) -> dict | None:
    """The parts of a qfix `verification` (or `before`) object the table needs, per target."""
    if not ver:
        return None
    if not ver.get("converted"):
        return {"converted": False, "reason": str(ver.get("reason") or "not converted")[:200]}
    fid = ver.get("fidelity") or {}
    comp = ver.get("compiler") or {}
    res = comp.get("result") or {}
    out = {"converted": True, "ops_total": ver["ops_total"], "ops_on_target": ver["ops_on_target"],
           "fully_on_target": ver["fully_on_target"], "first_unsupported": ver.get("first_unsupported"),
           "float_tensors": len(ver.get("float_tensors") or []), "sqnr_db": fid.get("sqnr_db"),
           "verdict": comp.get("verdict") or comp.get("used") or "profile",
           "fallback": len(ver.get("fallback") or [])}
    # GPU delegate: ops its one-partition default leaves on the CPU beyond the unsupported ones
    more = [int(m.group(1)) for w in ver.get("warnings") or [] if (m := re.search(r"so (\d+) more op", w))]
    if more:
        out["one_partition_more"] = more[0]
    if comp.get("used") == "vela":
        out.update(disagreements=comp.get("disagreements") or [], estimates=res.get("estimates"),
                   rejected=res.get("error") if res.get("rejected") else None)
    elif comp.get("used") == "tflite-micro":
        out["tflm"] = {"ran": res.get("ok"), "error": (res.get("error") or "")[:300] or None,
                       "values": res.get("values"), "differing": res.get("differing"),
                       "beyond_one_step": res.get("beyond_one_step"), "max_diff_steps": res.get("max_diff_steps"),
                       "outputs": [{k: o.get(k) for k in ("name", "dtype", "values", "differing", "beyond_one_step",
                                                          "max_diff_steps", "max_abs_diff")}
                                   for o in res.get("outputs") or []],
                       "arena_bytes": res.get("arena_bytes"), "arena_recorded": res.get("arena_recorded"),
                       "model_bytes": res.get("model_bytes")}
    return out


# --- the table ----------------------------------------------------------------------------------


def _ops(v: dict | None) -> str:
    if not v:
        return "-"
    if v.get("error") or v.get("converted") is False or "ops_total" not in v:
        return "x"
    return f"{v['ops_on_target']}/{v['ops_total']}"


def share(v: dict | None) -> float | None:
    return v["ops_on_target"] / v["ops_total"] if v and v.get("ops_total") else None


def first_blocker(r: dict) -> str:
    q = r["qfix"]
    if q.get("error") or q.get("exit") == "timeout":
        return f"qfix exit {q.get('exit')}: {q.get('error', '')}"[:70]
    return blocker(q.get("after") or {}, 70)


def specific(r: dict) -> str:
    """The target's own column: Vela's disagreements and estimate, TFLM's match, GPU fallback."""
    after = r["qfix"].get("after") or {}
    fam = family(r["target"])
    if fam == "ethos-u":
        dis = "/".join(str(len(v["disagreements"])) if v and "disagreements" in v else "-"
                       for v in (r["plain"], r["qfix"].get("before"), after))
        est = after.get("estimates")
        text = f"disagree p/b/a {dis}"
        if est:
            text += f"; {est['cycles_total']} cyc, SRAM {est['sram_bytes'] / 1024:.1f} KiB"
        if (r["plain"] or {}).get("rejected"):
            text += f"; vela rejects plain: {r['plain']['rejected']}"[:80]
        return text
    if fam == "tflm":
        t = after.get("tflm")
        if not t:
            return "-"
        if not t["ran"]:
            return f"TFLM failed: {t['error']}"[:90]
        outs = ", ".join(f"{o['differing']}/{o['values']} ≤{o['max_diff_steps']}st" for o in t["outputs"])
        return f"TFLM≠LiteRT {outs}; arena {t['arena_bytes']:,} B"
    if fam == "gpu":
        if not after:
            return "-"
        more = f", {after['one_partition_more']} more by the one-partition default" if after.get("one_partition_more") else ""
        return f"{after.get('verdict', '-')}: {after.get('fallback', '-')} op(s) to the CPU{more}"
    return f"verdict: {after.get('verdict', '-')}" if after else "-"


def table(rows: list[dict]) -> str:
    head = ("model", "target", "plain", "before→after", "fully", "first blocker (qfix's file)", "exit", "target-specific")
    lines = [(r["model"], r["target"], _ops(r["plain"]),
              f"{_ops(r['qfix'].get('before'))}→{_ops(r['qfix'].get('after'))}",
              str((r["qfix"].get("after") or {}).get("fully_on_target", "-")), first_blocker(r),
              str(r["qfix"].get("exit")), specific(r)) for r in rows]
    return columns(head, lines)


def disagreements(rows: list[dict]) -> list[str]:
    """Every profile-vs-Vela disagreement: model, target, which file, Vela's words."""
    out = []
    for r in rows:
        for which, v in (("plain", r["plain"]), ("before", r["qfix"].get("before")), ("after", r["qfix"].get("after"))):
            out += [f"{r['model']} {r['target']} {which}: {d}" for d in (v or {}).get("disagreements") or []]
    return out


def summary(rows: list[dict]) -> str:
    lines = []
    for target in sorted({r["target"] for r in rows}):
        mine = [r for r in rows if r["target"] == target]
        both = [r for r in mine if share(r["plain"]) is not None and share(r["qfix"].get("after")) is not None]
        lower = [r for r in both if share(r["qfix"]["after"]) < share(r["plain"])]
        higher = [r for r in both if share(r["qfix"]["after"]) > share(r["plain"])]
        fully = lambda v: bool(v and v.get("fully_on_target"))  # noqa: E731
        text = (f"{target}: {len(mine)} models; fully on target plain {sum(fully(r['plain']) for r in mine)}, "
                f"qfix before {sum(fully(r['qfix'].get('before')) for r in mine)}, "
                f"after {sum(fully(r['qfix'].get('after')) for r in mine)}; op share after vs plain "
                f"({len(both)} with both): higher {len(higher)}, lower {len(lower)}; "
                f"qfix exit 0/1/other: {sum(r['qfix'].get('exit') == 0 for r in mine)}/"
                f"{sum(r['qfix'].get('exit') == 1 for r in mine)}/"
                f"{sum(r['qfix'].get('exit') not in (0, 1) for r in mine)}")
        if family(target) == "ethos-u":
            placed = sum(v["ops_total"] for r in mine for v in (r["plain"], r["qfix"].get("before"), r["qfix"].get("after"))
                         if v and "disagreements" in v)
            n = sum(len(v["disagreements"]) for r in mine
                    for v in (r["plain"], r["qfix"].get("before"), r["qfix"].get("after")) if v and "disagreements" in v)
            text += f"; profile vs Vela: {n} disagreement(s) in {placed} op placements"
        if family(target) == "tflm":
            ran = [t for r in mine if (t := (r["qfix"].get("after") or {}).get("tflm")) and t["ran"]]
            text += (f"; TFLM ran {len(ran)} of {len(mine)}: {sum(t['differing'] for t in ran)} of "
                     f"{sum(t['values'] for t in ran)} output values differ from LiteRT's, "
                     f"{sum(t['beyond_one_step'] for t in ran)} by more than one step, max "
                     f"{max([t['max_diff_steps'] or 0 for t in ran], default=0)} step(s)")
        lines.append(text)
        lines += [f"  qfix below plain: {r['model']}: {_ops(r['plain'])} → {_ops(r['qfix']['after'])}" for r in lower]
    return "\n".join(lines)


def report(rows: list[dict]) -> None:
    print(table(rows))
    print()
    print(summary(rows))
    dis = disagreements(rows)
    print(f"\nprofile vs Vela, every disagreement ({len(dis)}):" if dis else "\nprofile vs Vela: no disagreement")
    for d in dis:
        print(f"  {d}")


# --- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--targets", default=",".join(available_targets()), help="default: every built-in target")
    ap.add_argument("--only", default="", help="model stems or application names, comma-separated")
    ap.add_argument("--apps", default=",".join(APPS), help="keras.applications names, smallest first")
    ap.add_argument("--no-apps", action="store_true", help="skip the keras.applications models")
    ap.add_argument("--no-fixtures", action="store_true", help="only the applications")
    ap.add_argument("--apps-cache", type=Path, help="a folder of <name>_32_k3.keras files (the fleet's cache) to "
                                                    "reuse; a model not there is built into bench/.cache")
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per child process")
    ap.add_argument("--out", type=Path, default=RESULTS, help="the results file (JSON rows)")
    ap.add_argument("--resume", action="store_true", help="keep the rows already in --out, run the pairs no results file holds")
    ap.add_argument("--report", nargs="*", type=Path, metavar="FILE",
                    help="only print the table and summary of these results files (default: every "
                         "bench/targets-results/*.json)")
    args = ap.parse_args(argv)
    if args.report is not None:
        files = args.report or sorted(RESULTS.parent.glob("*.json"))
        report([row for f in files for row in json.loads(f.read_text())])
        return 0
    targets = [t for t in args.targets.split(",") if t]
    only = {o for o in args.only.split(",") if o} or None
    apps = [] if args.no_apps else [a for a in args.apps.split(",") if a]
    rows = json.loads(args.out.read_text()) if args.resume and args.out.exists() else []
    done = {(r["model"], r["target"]) for r in rows}
    if args.resume:  # a pair already measured in another results file is not run again
        done |= {(r["model"], r["target"]) for f in RESULTS.parent.glob("*.json") for r in json.loads(f.read_text())}
    todo = models(only, apps, args.apps_cache)
    if args.no_fixtures:
        todo = [(k, p) for k, p in todo if k == "application"]
    start = time.perf_counter()
    for kind, path in todo:
        mine = [t for t in targets if (path.stem, t) not in done]
        if not mine:
            continue
        plain = plain_runs(path, mine, args.samples, args.timeout)
        for target in mine:
            row = {"model": path.stem, "kind": kind, "target": target, "plain": plain[target],
                   "qfix": qfix_run(path, target, args.samples, args.timeout)}
            rows.append(row)
            save_rows(rows, args.out)
            print(f"[{time.perf_counter() - start:6.0f}s] {row['model']} {target}: {_ops(row['plain'])} → "
                  f"{_ops(row['qfix'].get('after'))} exit {row['qfix'].get('exit')}; {specific(row)}",
                  file=sys.stderr, flush=True)
    report(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
