"""Precision of the source findings over folders of real code (issue 11, kind 6).

Runs `qfix FOLDER --target T --format json` (this checkout's qfix, one process per folder),
prints the findings per code and per folder, and draws a seeded random sample of findings
with file:line and message, for a reviewer to judge true or false. No corpus path is built
in: pass the folders (for example the public repositories extracted under /work/corpus).

    python bench/precision.py /work/corpus/* --sample 30 --seed 12
    python bench/precision.py /work/corpus/* --save after.json          # run once, keep the findings
    python bench/precision.py --load after.json --code QF401 --all       # every QF401, for a census
    python bench/precision.py /work/corpus/* --root ../main --save before.json   # another checkout's qfix
    python bench/precision.py --load after.json --compare before.json    # counts before / after per code

Prints figures only; asserts nothing.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_folder(folder: Path, target: str, root: Path = ROOT) -> list[dict]:
    """Findings of one folder by the qfix of checkout `root`, each with `repo` (the folder's
    name) and `path` relative to the folder."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.run([sys.executable, "-m", "qfix", str(folder), "--target", target, "--format", "json"],
                          cwd=root, capture_output=True, text=True, env=env)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"qfix failed on {folder} (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    out = []
    for f in json.loads(proc.stdout)["findings"]:
        loc = f.get("location") or {}
        path = loc.get("path") or ""
        try:
            path = str(Path(path).resolve().relative_to(folder.resolve()))
        except ValueError:
            pass
        out.append({"repo": folder.name, "path": path, "line": loc.get("line"), "code": f["code"],
                    "message": f["message"]})
    return out


def table(findings: list[dict]) -> str:
    """Counts per code (rows) and per repository (columns)."""
    repos = sorted({f["repo"] for f in findings})
    codes = sorted({f["code"] for f in findings})
    count = collections.Counter((f["code"], f["repo"]) for f in findings)
    width = max([len(r) for r in repos] + [5])
    lines = ["code   " + " ".join(r[:width].rjust(width) for r in repos) + "   total"]
    for c in codes:
        lines.append(f"{c:6} " + " ".join(str(count[c, r] or "").rjust(width) for r in repos)
                     + f"   {sum(count[c, r] for r in repos):5}")
    lines.append("all    " + " ".join(str(sum(count[c, r] for c in codes)).rjust(width) for r in repos)
                 + f"   {len(findings):5}")
    return "\n".join(lines)


def show(findings: list[dict]) -> str:
    return "\n".join(f"{i + 1:3}. {f['code']} {f['repo']}/{f['path']}:{f['line']}\n     {f['message']}"
                     for i, f in enumerate(findings))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="*", type=Path, help="folders to run qfix over (one repository each)")
    ap.add_argument("--target", default="edgetpu")
    ap.add_argument("--root", type=Path, default=ROOT, help="checkout whose qfix runs (default: this one)")
    ap.add_argument("--save", type=Path, help="write the findings (JSON) here")
    ap.add_argument("--load", type=Path, help="read findings saved by --save instead of running qfix")
    ap.add_argument("--compare", type=Path, help="saved findings of another run: print counts per code side by side")
    ap.add_argument("--code", action="append", default=[], help="only these codes (repeatable)")
    ap.add_argument("--sample", type=int, default=30, help="size of the random sample (0: none)")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--all", action="store_true", help="list every (selected) finding instead of a sample")
    args = ap.parse_args(argv)

    if args.load:
        findings = json.loads(args.load.read_text())
    elif args.folders:
        findings = [f for folder in args.folders for f in run_folder(folder, args.target, args.root)]
    else:
        ap.error("give folders or --load")
    if args.save:
        args.save.write_text(json.dumps(findings, indent=1))
    print(table(findings))
    if args.compare:
        before = collections.Counter(f["code"] for f in json.loads(args.compare.read_text()))
        after = collections.Counter(f["code"] for f in findings)
        print(f"\ncode   {args.compare.name[:12]:>12} {'this run':>12}")
        for c in sorted(before | after):
            print(f"{c:6} {before[c]:12} {after[c]:12}")
        print(f"all    {sum(before.values()):12} {sum(after.values()):12}")
    chosen = [f for f in findings if not args.code or f["code"] in args.code]
    chosen.sort(key=lambda f: (f["repo"], f["path"], f["line"] or 0, f["code"]))
    if args.all:
        print(f"\n{len(chosen)} findings:\n" + show(chosen))
    elif args.sample and chosen:
        pick = random.Random(args.seed).sample(chosen, min(args.sample, len(chosen)))
        print(f"\nrandom sample of {len(pick)} of {len(chosen)} findings (seed {args.seed}):\n" + show(pick))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
