"""A seeded mutator over the fixtures' config.json: every mutant gets a clean exit (0, 1 or a
one-line QF9xx with 2) from `--static` and `--diff`, never a traceback or an internal error.

In-process (qfix.cli.main) so that hundreds of mutants fit in seconds; bounded by
QFIX_FUZZ_SECONDS (default 20 s per test) and QFIX_FUZZ_SEED (default 0).
"""

from __future__ import annotations

import copy
import json
import os
import random
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from qfix.cli import main

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
SOURCES = sorted(p for p in FIXTURES.glob("*.keras") if "lambda" not in p.name and "custom" not in p.name)
BUDGET = float(os.environ.get("QFIX_FUZZ_SECONDS", "20"))
SEED = int(os.environ.get("QFIX_FUZZ_SEED", "0"))
MIN_MUTANTS = 6
ODD_VALUES: list[Any] = [None, True, False, -1, 0, 2**40, 1e308, -0.0, "", "x" * 5000, "\x1b[2J", [], {},
                         [[[]]], {"class_name": []}, ["a", "b", "c"], [1e5, -3, None], {"config": "x"}]


def paths(node: Any) -> list[tuple]:
    """Every path (tuple of keys/indices) into a JSON value, iteratively."""
    out, todo = [], [((), node)]
    while todo:
        path, value = todo.pop()
        out.append(path)
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        todo.extend((path + (k,), v) for k, v in items)
    return out


def odd(rng: random.Random) -> Any:
    """A fresh copy of an odd value: a shared list or dict, mutated later in the same mutant,
    could end up inside itself."""
    return copy.deepcopy(rng.choice(ODD_VALUES))


def mutate(config: dict, rng: random.Random) -> dict:
    cfg = json.loads(json.dumps(config))
    for _ in range(rng.randint(1, 3)):
        candidates = [p for p in paths(cfg) if p]
        path = rng.choice(candidates)
        parent = cfg
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        op = rng.randrange(5)
        if op == 0:
            parent[key] = odd(rng)
        elif op == 1:
            del parent[key]
        elif op == 2 and isinstance(parent, list):
            parent.insert(key, json.loads(json.dumps(parent[key])))  # duplicate (same name twice)
        elif op == 3 and isinstance(parent[key], str):
            names = [p[-1] for p in paths(cfg) if p and p[-1] == "name"]
            parent[key] = rng.choice(["input_layer", "dense", "conv2d", "ghost", parent[key] * 2] + names[:3])
        elif op == 4 and isinstance(parent[key], int) and not isinstance(parent[key], bool):
            parent[key] = rng.choice([-1, 1, 2, 99, 2**31, 2**63])
        else:
            parent[key] = odd(rng)
    return cfg


def run(argv: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    captured = capsys.readouterr()
    return int(exit_.value.code or 0), captured.err


@pytest.mark.parametrize("source", SOURCES, ids=[p.stem for p in SOURCES])
def test_mutated_configs_never_crash(source: Path, tmp_path: Path, capsys, monkeypatch):
    monkeypatch.delenv("QFIX_DEBUG", raising=False)
    with zipfile.ZipFile(source) as z:
        members = {n: z.read(n) for n in z.namelist()}
    config = json.loads(members["config.json"])
    rng = random.Random(f"{SEED}:{source.name}")
    deadline, count = time.monotonic() + BUDGET / len(SOURCES) * 4, 0
    # at least MIN_MUTANTS whatever the machine's load (no timed assertion), then as many as the budget allows
    while count < MIN_MUTANTS or (time.monotonic() < deadline and count < 200):
        count += 1
        mutant = tmp_path / f"m{count}.keras"
        with zipfile.ZipFile(mutant, "w") as z:
            for name, data in members.items():
                z.writestr(name, json.dumps(mutate(config, rng)).encode() if name == "config.json" else data)
        for args in (["--static"], ["--diff"]):
            code, err = run([str(mutant), *args], capsys)
            lines = [l for l in err.splitlines() if l.strip()]
            assert code in (0, 1, 2), (count, args, err)
            assert "Traceback" not in err and not any(l.startswith("QF999") for l in lines), (count, args, err)
            if code == 2:
                assert len(lines) == 1 and lines[0].startswith("QF9"), (count, args, err)
        mutant.unlink()
