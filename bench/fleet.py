"""The fleet: every keras.applications architecture through qfix and through the plain converter.

For each architecture (enumerated from `keras.applications`, and from `tf_keras.applications`
for the same names; weights=None, classes=10, the smallest square input it accepts) and each
target, three fresh processes run serially on the same `.keras` file:

  plain   `bare_convert` (load_model + TFLiteConverter.from_keras_model) with the target
          profile's recipe and the same synthetic calibration samples qfix uses; its .tflite is
          judged by qfix's own op-by-op checker (qfix.targets.check);
  check   `qfix MODEL --target T --check --format json`;
  main    `qfix MODEL --target T --format json --out-dir TMP` (rewrite, convert, verify).

Each row records ops on target (plain | before → after), whether the model is fully on target,
the first blocker with its layer and reason, the float equivalence of the fixed model, the int8
SQNR, the wall time of each qfix run over the plain converter's, and the exit statuses. A row's
`faults` list what breaks the fleet's expectations: a crash (signal, exit 139, QF909, time-out;
not QF906, a file its own Keras cannot load, counted as "unloadable"),
a blocker that names no layer or no reason, qfix worse than the plain converter, a verdict that
contradicts its exit status, an int8 SQNR below QF408's threshold (MIN_SQNR_DB, 2 effective bits)
that qfix does not report as QF408.

    python bench/fleet.py --only MobileNet,VGG16 --targets edgetpu
    python bench/fleet.py --dialect both --out /work/fleet/results.json --resume

Every model is built (once, cached) in one child process; rows then run smallest file first, so
the big ones (ConvNeXtXLarge, EfficientNetV2L, NASNetLarge) come last. Results are written after
every row, so `--resume` picks a long run up where it stopped.
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

from qfix.rules.zero_signal import MIN_SQNR_DB

QFIX = Path(sys.executable).with_name("qfix")  # the installed console script beside this Python
TARGETS = ("edgetpu", "int8")
DIALECTS = {"keras3": "keras", "tf_keras": "tf_keras"}
SIZES = (32, 71, 75)  # smallest inputs keras.applications accepts, tried in turn (Xception 71, Inception* 75)
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}

# --- child processes (TensorFlow is imported only there) --------------------------------------

BUILD = r"""
import json, re, sys
from pathlib import Path
module, out = sys.argv[1], Path(sys.argv[2])
tag = "k3" if module == "keras" else "tfk"  # file names as in fixtures/applications.py
K = __import__(module)
sizes = [int(s) for s in sys.argv[3].split(",")]
import keras  # the fleet is keras.applications; tf_keras builds the same names where it has them
names = sys.argv[4].split(",") if sys.argv[4] else sorted(
    n for n in dir(keras.applications) if n[0].isupper() and callable(getattr(keras.applications, n)))
for name in names:
    row = {"arch": name}
    if not hasattr(K.applications, name):
        print(json.dumps({**row, "error": f"{module}.applications has no {name}"}), flush=True)
        continue
    done = sorted(out.glob(f"{name.lower()}_*_{tag}.keras"))
    if done:
        row.update(path=str(done[0]), size=int(done[0].name.split("_")[-2]))
    else:
        error = None
        for size in sizes:
            K.backend.clear_session()
            K.utils.set_random_seed(0)
            try:
                model = getattr(K.applications, name)(input_shape=(size, size, 3), weights=None, classes=10)
            except Exception as e:  # too small an input: try the next size
                error = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
                continue
            path = out / f"{name.lower()}_{size}_{tag}.keras"
            model.save(path.with_suffix(".tmp.keras"))
            path.with_suffix(".tmp.keras").replace(path)
            row.update(path=str(path), size=size, params=int(model.count_params()))
            break
        else:
            row["error"] = error
    print(json.dumps(row), flush=True)
"""

PLAIN = r"""
import json, sys, time
t0 = time.perf_counter()
from qfix.convert.calibration import synthetic_calibration
from qfix.convert.converter import bare_convert
from qfix.model.archive import read_archive
from qfix.model.graph import build_graph
from qfix.model.inputs import input_specs
from qfix.targets import load_profile
from qfix.targets.check import check
from qfix.targets.compilers import judge
from qfix.targets.tflite import read_tflite
path, target, samples = sys.argv[1], sys.argv[2], int(sys.argv[3])
archive = read_archive(path)
graph = build_graph(archive.config, archive.dialect)
profile = load_profile(target)
calib = synthetic_calibration(input_specs(graph), n=samples)  # what qfix uses without --calibration
result = bare_convert(path, profile.recipe, calib, archive.dialect)
placement = check(read_tflite(result.tflite), profile, [l.name for _, l in graph.walk()])
judge(profile, result.tflite, placement)  # the real compiler's placement, where qfix runs one (Vela)
print(json.dumps({"ops_total": placement.ops_total, "ops_on_target": placement.ops_on_target,
                  "fully_on_target": placement.fully_on_target,
                  "first_unsupported": placement.first_unsupported,
                  "convert_seconds": round(result.seconds, 2)}))
"""


def run(cmd: list[str], timeout: float) -> dict:
    """Run one child; its exit status, wall seconds, stdout JSON (or None) and last stderr line."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"exit": "timeout", "seconds": round(time.perf_counter() - t0, 1), "json": None,
                "error": f"timed out after {timeout:.0f}s"}
    seconds = round(time.perf_counter() - t0, 1)
    try:
        out = json.loads(proc.stdout) if proc.stdout.strip() else None
    except json.JSONDecodeError:
        out = None
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    qf = [ln for ln in lines if re.match(r"QF9\d\d ", ln)]
    error = (qf or lines or [""])[-1][:300] if proc.returncode not in (0, 1) or out is None else None
    return {"exit": proc.returncode, "seconds": seconds, "json": out, "error": error}


def build_all(dialect: str, names: list[str], cache: Path, timeout: float) -> list[dict]:
    """Build (or find in the cache) every architecture of a dialect: [{arch, path, size} | {arch, error}]."""
    cache.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-c", BUILD, DIALECTS[dialect], str(cache), ",".join(map(str, SIZES)), ",".join(names)]
    proc = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)
    rows = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or [""])[-1]
        print(f"build child ({dialect}) exited {proc.returncode}: {tail}", file=sys.stderr)
    return [{**r, "dialect": dialect} for r in rows]


# --- one row ----------------------------------------------------------------------------------


def measure(model: dict, target: str, samples: int, timeout: float) -> dict:
    """Plain converter, qfix --check and the qfix main job on one model for one target."""
    path = model["path"]
    plain = run([sys.executable, "-c", PLAIN, path, target, str(samples)], timeout)
    qfix = [str(QFIX), path, "--target", target, "--format", "json", "--samples", str(samples)]
    check = run([*qfix, "--check"], timeout)
    with tempfile.TemporaryDirectory(prefix="qfix-fleet-") as out_dir:
        main = run([*qfix, "--out-dir", out_dir], timeout)
    row = {"arch": model["arch"], "dialect": model["dialect"], "target": target, "size": model["size"],
           "file_mib": round(Path(path).stat().st_size / 2**20, 1), "samples": samples,
           "plain": summarize_plain(plain), "check": summarize_qfix(check), "main": summarize_qfix(main)}
    row["faults"] = faults(row)
    return row


def _verification(ver: dict | None) -> dict:
    if not ver or not ver.get("converted"):
        return {"converted": False, "reason": (ver or {}).get("reason")}
    fid = ver.get("fidelity") or {}
    return {"converted": True, "ops_total": ver["ops_total"], "ops_on_target": ver["ops_on_target"],
            "fully_on_target": ver["fully_on_target"], "first_unsupported": ver["first_unsupported"],
            "float_tensors": len(ver["float_tensors"]), "sqnr_db": fid.get("sqnr_db"),
            "warnings": ver.get("warnings", [])}


def summarize_plain(res: dict) -> dict:
    out = res["json"] or {}
    return {"exit": res["exit"], "seconds": res["seconds"], "error": res["error"], **out}


def summarize_qfix(res: dict) -> dict:
    """The parts of a qfix JSON report the table needs (the main job adds `before`)."""
    rep = res["json"] or {}
    row = {"exit": res["exit"], "seconds": res["seconds"], "error": res["error"]}
    if not rep:
        return row
    row["after"] = _verification(rep.get("verification"))
    if rep.get("before"):  # the main job reports `before` only when it rewrote the model
        row["before"] = _verification(rep["before"])
    row["blockers"] = [f"{f['code']} {f['layer']}" for f in rep["findings"]
                       if f["severity"] == "blocker" and not f.get("applied")]
    row["warnings"] = sorted({f["code"] for f in rep["findings"] if f["severity"] == "warning"})
    row["fixes"] = [f"{f['code']} {f['layer']}" + (" (rolled back)" if f.get("rolled_back") else "")
                    for f in rep.get("fixes", [])]
    row["not_applied"] = [f"{f.get('code')} {f.get('layer')}: {str(f.get('reason'))[:120]}"
                          for f in rep.get("not_applied", [])]
    row["float_equivalence"] = (rep.get("float_equivalence") or {}).get("max_abs_diff")
    return row


# --- expectations -----------------------------------------------------------------------------


def _crash(res: dict) -> str | None:
    code = res["exit"]
    if code == "timeout" or (isinstance(code, int) and code not in (0, 1, 2)):
        return f"exit {code}{': ' + res['error'] if res['error'] else ' with no word'}"
    if code == 2 and res["error"] and res["error"].startswith("QF909"):
        return res["error"]
    if code == 2 and not _unloadable(res):
        return f"exit 2: {res['error']}"
    return None


def _unloadable(res: dict) -> bool:
    """QF906: the model's own Keras cannot load the file (tf_keras's ConvNeXt, tensorflow#59767),
    reported in one line; no converter can take such a file, so it is no crash of qfix's."""
    return res["exit"] == 2 and bool(res["error"]) and res["error"].startswith("QF906")


def _off(ver: dict) -> int:
    return ver["ops_total"] - ver["ops_on_target"]


def faults(row: dict) -> list[str]:
    """What in this row breaks the fleet's expectations (see the module docstring)."""
    found = []
    for job in ("check", "main"):
        res = row[job]
        crash = _crash(res)
        if crash:
            found.append(f"{job} crash: {crash}")
            continue
        if _unloadable(res):
            found.append(f"{job} unloadable: {res['error']}")
            continue
        after = res.get("after") or {}
        if not after.get("converted"):
            continue
        if not after["fully_on_target"]:
            first = after["first_unsupported"]
            if first is None and after["float_tensors"]:
                pass  # float islands only: QF405 names them
            elif first is None or not first.get("layer") or not first.get("reason"):
                found.append(f"{job}: blocker without a layer or reason: {first}")
        verdict_ok = res["exit"] == (0 if after["fully_on_target"] and not res["blockers"] else 1)
        if not verdict_ok:
            found.append(f"{job}: exit {res['exit']} with fully_on_target={after['fully_on_target']} "
                         f"and blockers {res['blockers']}")
        sqnr = after.get("sqnr_db")
        # A signal lost in quantization is QF408's to report: unreported it is a fault
        reported = any(c.startswith("QF408") for c in res["blockers"] + res.get("warnings", []))
        if isinstance(sqnr, (int, float)) and sqnr < MIN_SQNR_DB and not reported:
            found.append(f"{job}: int8 SQNR {sqnr:.1f} dB (< {MIN_SQNR_DB:.1f}) without QF408")
    plain, after = row["plain"], (row["main"].get("after") or {})
    if plain.get("ops_total") and "converted" in after and not after["converted"]:
        found.append(f"qfix worse than plain: the plain converter converts it, qfix does not ({after['reason']})")
    if plain.get("ops_total") and after.get("converted"):
        if plain["fully_on_target"] and not after["fully_on_target"]:
            found.append("qfix worse than plain: plain is fully on target, qfix's output is not")
        elif _off(after) > _off(plain):  # counts off target: the plain file's dynamic-batch shape ops inflate its share
            found.append(f"qfix worse than plain: {_off(after)} ops off target ({after['ops_on_target']}/"
                         f"{after['ops_total']} on) vs plain {_off(plain)} ({plain['ops_on_target']}/{plain['ops_total']})")
    return found


# --- table ------------------------------------------------------------------------------------


def _ops(ver: dict | None) -> str:
    if not ver:
        return "-"
    if not ver.get("converted", True) or "ops_total" not in ver:
        return "x"
    return f"{ver['ops_on_target']}/{ver['ops_total']}"


def _before_after(main: dict) -> str:
    """'4/111→148/149', or '= 109/109' when the main job changed nothing."""
    if "before" not in main and main.get("after"):
        return f"= {_ops(main['after'])}"
    return f"{_ops(main.get('before'))}→{_ops(main.get('after'))}"


def _blocker(row: dict) -> str:
    main = row["main"]
    if _crash(main):
        return (main["error"] or f"exit {main['exit']}")[:60]
    return blocker(main.get("after") or {}, 60)


def _fmt(x: float | None, spec: str) -> str:
    return format(x, spec) if isinstance(x, (int, float)) else "-"


def table(rows: list[dict]) -> str:
    head = ("arch", "dialect", "target", "in", "plain", "before→after", "fully", "first blocker (main job)",
            "float eq", "SQNR", "check×", "main×", "exit c/m")
    lines = []
    for r in rows:
        p, c, m = r["plain"], r["check"], r["main"]
        base = p["seconds"] if p.get("ops_total") else None
        lines.append((
            r["arch"], r["dialect"], r["target"], str(r["size"]), _ops(p) if p.get("ops_total") else "x",
            _before_after(m), str((m.get("after") or {}).get("fully_on_target", "-")),
            _blocker(r), _fmt(m.get("float_equivalence"), ".1e"), _fmt((m.get("after") or {}).get("sqnr_db"), ".1f"),
            _fmt(c["seconds"] / base if base else None, ".2f"), _fmt(m["seconds"] / base if base else None, ".2f"),
            f"{c['exit']}/{m['exit']}"))
    return columns(head, lines)


def _median(xs: list[float]) -> float | None:
    xs = sorted(xs)
    return (xs[(len(xs) - 1) // 2] + xs[len(xs) // 2]) / 2 if xs else None


def groups(rows: list[dict]) -> list[dict]:
    """One summary per (dialect, target): counts of the table's verdicts and faults, times."""
    out = []
    for dialect, target in sorted({(r["dialect"], r["target"]) for r in rows}):
        mine = [r for r in rows if (r["dialect"], r["target"]) == (dialect, target)]
        timed = [r for r in mine if r["plain"].get("ops_total")]
        out.append({
            "dialect": dialect, "target": target, "archs": len(mine),
            "plain": sum(bool(r["plain"].get("fully_on_target")) for r in mine),
            "before": sum(bool((r["check"].get("after") or {}).get("fully_on_target")) for r in mine),
            "after": sum(bool((r["main"].get("after") or {}).get("fully_on_target")) for r in mine),
            "crashes": sum(any(" crash: " in f for f in r["faults"]) for r in mine),
            "unloadable": sum(any(" unloadable: " in f for f in r["faults"]) for r in mine),
            "worse": sum(any(f.startswith("qfix worse") for f in r["faults"]) for r in mine),
            "faulty": sum(bool(r["faults"]) for r in mine),
            "check_x": _median([r["check"]["seconds"] / r["plain"]["seconds"] for r in timed]),
            "main_x": _median([r["main"]["seconds"] / r["plain"]["seconds"] for r in timed]),
            "minutes": sum(r["plain"]["seconds"] + r["check"]["seconds"] + r["main"]["seconds"] for r in mine) / 60,
        })
    return out


def summary(rows: list[dict]) -> str:
    """One paragraph: per dialect and target, how many archs end fully on target, crash, or do worse."""
    parts = [f"{g['dialect']}/{g['target']}: {g['after']}/{g['archs']} fully on target after qfix "
             f"(before {g['before']}, plain converter {g['plain']}), {g['crashes']} crashed, {g['unloadable']} not "
             f"loadable by their own Keras, qfix worse than "
             f"plain on {g['worse']}, {g['faulty']} rows break an expectation; median time {_fmt(g['check_x'], '.2f')}× "
             f"(check) and {_fmt(g['main_x'], '.2f')}× (main job) the plain converter's; {g['minutes']:.0f} min"
             for g in groups(rows)]
    return f"{len({(r['arch'], r['dialect']) for r in rows})} models, {len(rows)} rows. " + "; ".join(parts) + "."


def markdown(rows: list[dict]) -> str:
    """The summary as the README's Markdown table."""
    lines = ["| dialect | target | archs | fully on target: plain / qfix before / after | crashes | "
             "unloadable | qfix worse than plain | rows with a fault | time × plain (check / main) | minutes |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for g in groups(rows):
        lines.append(f"| {g['dialect']} | {g['target']} | {g['archs']} | {g['plain']} / {g['before']} / {g['after']} | "
                     f"{g['crashes']} | {g['unloadable']} | {g['worse']} | {g['faulty']} | {_fmt(g['check_x'], '.2f')} / "
                     f"{_fmt(g['main_x'], '.2f')} | {g['minutes']:.0f} |")
    return "\n".join(lines)


# --- main -------------------------------------------------------------------------------------


def _key(row: dict) -> tuple[str, str, str]:
    return row["arch"], row["dialect"], row["target"]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dialect", choices=("keras3", "tf_keras", "both"), default="keras3")
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--only", default="", help="architectures, comma-separated (default: all)")
    ap.add_argument("--samples", type=int, default=8, help="calibration/comparison samples")
    ap.add_argument("--out", type=Path, default=CACHE / "fleet.json")
    ap.add_argument("--cache", type=Path, default=CACHE / "fleet")
    ap.add_argument("--resume", action="store_true", help="keep the rows already in --out, run the rest")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per child process")
    ap.add_argument("--report", action="store_true", help="only print the table of the rows in --out")
    ap.add_argument("--markdown", action="store_true", help="with --report: the summary as a Markdown table")
    args = ap.parse_args(argv)
    if args.report:
        return report(json.loads(args.out.read_text()), args.markdown)

    dialects = ["keras3", "tf_keras"] if args.dialect == "both" else [args.dialect]
    only = [n for n in args.only.split(",") if n]
    targets = [t for t in args.targets.split(",") if t]
    rows = json.loads(args.out.read_text()) if args.resume and args.out.exists() else []
    done = {_key(r) for r in rows}

    models = []
    for dialect in dialects:
        for m in build_all(dialect, only, args.cache, 4 * args.timeout):
            if "error" in m:
                print(f"not built: {m['arch']} ({dialect}): {m['error']}", file=sys.stderr)
            else:
                models.append(m)
    models.sort(key=lambda m: Path(m["path"]).stat().st_size)  # the big ones last

    start = time.perf_counter()
    for m in models:
        for target in targets:
            if (m["arch"], m["dialect"], target) in done:
                continue
            row = measure(m, target, args.samples, args.timeout)
            rows.append(row)
            save_rows(rows, args.out)
            print(f"[{time.perf_counter() - start:6.0f}s] {m['arch']} {m['dialect']} {target}: "
                  f"{_before_after(row['main'])} "
                  f"{'; '.join(row['faults']) or 'ok'}", file=sys.stderr, flush=True)
    report(rows)


def report(rows: list[dict], as_markdown: bool = False) -> None:
    """The table and the summary (rows of an older run are judged by today's rules)."""
    for r in rows:
        r["faults"] = faults(r)
    if as_markdown:
        return print(markdown(rows))
    print(table(rows))
    print()
    print(summary(rows))


if __name__ == "__main__":
    main()
