"""A Lambda's safe rewrite without --trust-lambdas (review of issue 9). The table offered
"fix [safe]: replace the Lambda with Rescaling", then the run ended "not converted" with no
rewrites section: the rewrite was dropped without a word. It is not applied (checking it runs
the original, whose bytecode qfix does not load unasked), and the report now says so."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from fixtures.build import save_with

pytestmark = pytest.mark.tf


def scaled(K):
    i = K.Input((8,), name="x")
    return K.Model(i, K.layers.Dense(2)(K.layers.Lambda(lambda t: t * 2.0 + 1.0, name="lam")(i)))


@pytest.mark.parametrize("dialect", ["k3", "tfk"])
def test_the_untried_rewrite_is_named_with_the_flag_that_allows_it(tmp_path, dialect):
    path = save_with(dialect, scaled, tmp_path / f"lam_{dialect}.keras")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "qfix", str(path), "--format", "json", "--out-dir", str(out)],
                          capture_output=True, text=True, timeout=600)
    report = json.loads(proc.stdout)
    assert proc.returncode == report["exit_code"] == 1
    (line,) = report["not_applied"]
    assert line.startswith("QF202 lam") and "checked against the original" in line and "--trust-lambdas" in line
    assert report["fixes"] == [] and report["outputs"]["model"] is None
    assert not out.exists() or not any(out.iterdir())
