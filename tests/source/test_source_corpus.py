"""Run every source rule (with all fixes, unsafe included) over real code nobody here wrote:
the installed sources of tensorflow_model_optimization, tf_keras and keras.

Zero crashes, every fixed output re-parses, a second run changes nothing, no fix adds a line
ending in whitespace. Slow (minutes): marked `slow`. `QFIX_CORPUS_LIMIT=N` samples N files
evenly for a quicker run.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor

import libcst as cst
import pytest

from qfix.rules import source_rules
from qfix.source.engine import fix_source
from qfix.source.runner import Job, collect_files, process_file

from bench.bench_codemod import corpus_roots  # the same corpus the benchmark reads

pytestmark = pytest.mark.slow

TARGETS = (None, "edgetpu")


def _trailing_whitespace(code: str) -> int:
    return sum(line != line.rstrip() for line in code.splitlines())


def _check(args: tuple[str, str | None]) -> dict:
    path, target = args
    job = Job(source_rules(), target=target, fix=True, unsafe_fixes=True, include_generated=True)
    res = process_file(path, job, explicit=True)
    out = {
        "path": path,
        "codes": [v.code for v in res.violations],
        "crash": [v.message for v in res.remaining if v.code == "QF916"] + ([res.error] if res.error else []),
        "reparse": None,
        "idempotent": True,
        "changed": res.new_code is not None,
        "new_trailing_whitespace": 0,
    }
    if res.new_code is not None:
        try:
            cst.parse_module(res.new_code)
        except Exception as exc:  # noqa: BLE001
            out["reparse"] = str(exc)
        again = fix_source(res.new_code, rules=source_rules(), path=path, target=target, unsafe_fixes=True)
        out["idempotent"] = again.code == res.new_code
        with open(path, encoding="utf-8") as f:
            before = _trailing_whitespace(f.read())
        out["new_trailing_whitespace"] = max(0, _trailing_whitespace(res.new_code) - before)
    return out


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    roots = corpus_roots()
    if not roots:
        pytest.skip("corpus packages not installed")
    files = [str(f) for f in collect_files(roots)]
    limit = int(os.environ.get("QFIX_CORPUS_LIMIT", "0") or 0)
    if limit and len(files) > limit:
        step = len(files) / limit
        files = [files[int(i * step)] for i in range(limit)]
    return files


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t or "no-target")
def test_corpus(corpus: list[str], target: str | None):
    with ProcessPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        results = list(pool.map(_check, [(f, target) for f in corpus], chunksize=8))
    crashes = [(r["path"], r["crash"]) for r in results if r["crash"]]
    unparsable = [(r["path"], r["reparse"]) for r in results if r["reparse"]]
    not_idempotent = [r["path"] for r in results if not r["idempotent"]]
    parse_errors = [r["path"] for r in results if "QF915" in r["codes"]]
    messy = [(r["path"], r["new_trailing_whitespace"]) for r in results if r["new_trailing_whitespace"]]
    findings = sum(len(r["codes"]) for r in results)
    from collections import Counter

    by_code = Counter(c for r in results for c in r["codes"])
    print(f"\ncorpus target={target}: {len(results)} files, {findings} findings {dict(sorted(by_code.items()))}, {sum(r['changed'] for r in results)} files changed")
    assert crashes == []
    assert unparsable == []
    assert not_idempotent == []
    assert parse_errors == []
    assert messy == []  # (path, lines a fix left ending in whitespace)
