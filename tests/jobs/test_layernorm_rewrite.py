"""QF308 on Keras 3 LayerNormalization: its -mean·inv is a NEG that full-integer quantization
leaves in float (DEQUANTIZE, NEG, QUANTIZE in every layer norm). Tiny real models, real
conversions, three ways: the finding (on the layer) fires on int8 and edgetpu and is gone after
the rewrite; the float model computes the same (ranks 2, 3, 4; center and scale on and off);
the converted model has no float tensor left and more of it on the target."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from qfix.jobs.check import Options, context
from qfix.jobs.fix import SAFE_TOLERANCE, apply_fixes, run_fix
from qfix.model.archive import read_archive
from qfix.model.graph import build_graph
from qfix.rules.lint import lint
from qfix.targets import load_profile
from qfix.types import Applicability

pytestmark = pytest.mark.tf

SHAPES = {2: (8,), 3: (6, 8), 4: (4, 4, 8)}


def _build(K, rank: int, center: bool = True, scale: bool = True, sequential: bool = False, axis=-1):
    """Input → LayerNormalization "ln" (random γ, β) → a head the Edge TPU maps (1×1 conv; Dense on rank 2)."""
    L = K.layers
    ln = L.LayerNormalization(axis=axis, epsilon=1e-6, center=center, scale=scale, name="ln",
                              gamma_initializer=K.initializers.RandomUniform(0.5, 1.5),
                              beta_initializer=K.initializers.RandomNormal(stddev=1.0))
    head = {2: lambda: L.Dense(3, name="head"), 3: lambda: L.Conv1D(3, 1, name="head"),
            4: lambda: L.Conv2D(3, 1, name="head")}[rank]()
    if sequential:
        return K.Sequential([K.Input(SHAPES[rank]), ln, head])
    x = K.Input(SHAPES[rank])
    return K.Model(x, head(ln(x)))


def _save(tmp: Path, name: str, dialect: str = "k3", **kw) -> Path:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if dialect == "k3":
        import keras as K
    else:
        import tf_keras as K
    K.backend.clear_session()
    K.utils.set_random_seed(0)
    path = tmp / f"{name}.keras"
    _build(K, **kw).save(path)
    return path


def findings(path: Path, target: str, config: dict | None = None):
    a = read_archive(path)
    graph = build_graph(config if config is not None else a.config, a.dialect)
    return [v for v in lint(graph, context(load_profile(target), Options())) if v.code == "QF308"]


def _config(path: str) -> dict:
    with zipfile.ZipFile(path) as z:
        return json.loads(z.read("config.json"))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("layernorm")


# (name, build kwargs, target)
THROUGH_THE_JOB = [
    ("r4", {"rank": 4}, "int8"),
    ("r4", {"rank": 4}, "edgetpu"),
    ("r3", {"rank": 3}, "edgetpu"),
    ("seq_r2", {"rank": 2, "sequential": True}, "int8"),
]


@pytest.mark.parametrize("name,kw,target", THROUGH_THE_JOB, ids=[f"{n}-{t}" for n, _, t in THROUGH_THE_JOB])
def test_fix_removes_the_float_neg_island(folder, name, kw, target, tmp_path):
    from qfix.targets.tflite import read_tflite

    path = folder / f"{name}.keras"
    if not path.exists():
        path = _save(folder, name, **kw)
    for t in ("int8", "edgetpu"):  # the finding, on the layer, on both integer targets
        (v,) = findings(path, t)
        assert v.location.layer == "ln" and "NEG" in v.message and "float" in v.message
        assert v.fix.applicability is Applicability.SAFE and v.fix.edits
    run = run_fix(path, Options(target=target, samples=8), out_dir=tmp_path)

    assert [f.layer for f in run.active if f.code == "QF308"] == ["ln"]
    fixed = _config(run.outputs["model"])
    for t in ("int8", "edgetpu"):
        assert not findings(path, t, fixed)
    assert run.float_equivalence is not None and run.float_equivalence <= run.tolerance
    b, a = run.before.placement, run.result.verification.placement
    assert len(b.float_tensors) >= 2 and not a.float_tensors  # the NEG island is gone
    assert not b.fully_on_target and a.fully_on_target
    assert a.ops_on_target / a.ops_total > b.ops_on_target / b.ops_total
    if target == "edgetpu":  # the cut at the DEQUANTIZE before NEG moves to the end
        assert a.ops_on_target > b.ops_on_target
    ops = [op.name for op in read_tflite(Path(run.outputs["tflite"]).read_bytes()).ops]
    assert "NEG" not in ops and "DEQUANTIZE" not in ops
    assert {"SUB", "RSQRT"} <= set(ops)
    profile = load_profile(target)
    for op in read_tflite(Path(run.outputs["tflite"]).read_bytes()).ops:  # every op at a version the target parses
        spec = profile.op(op.name)
        assert spec is None or spec.max_version is None or op.version <= spec.max_version, (op.name, op.version)


CASES = [(r, c, s, seq) for r in (2, 3, 4) for c in (True, False) for s in (True, False) for seq in (False,)]
CASES += [(4, True, True, True), (3, False, True, True)]


@pytest.mark.parametrize("rank,center,scale,sequential", CASES,
                         ids=[f"r{r}-c{int(c)}-s{int(s)}{'-seq' if q else ''}" for r, c, s, q in CASES])
def test_decomposition_computes_the_same(rank, center, scale, sequential, tmp_path):
    from qfix.convert.keras import load_model
    from qfix.model.writer import write_archive

    path = _save(tmp_path, "m", rank=rank, center=center, scale=scale, sequential=sequential)
    a = read_archive(path)
    opts = Options(target="int8", select=["QF308"])
    config, weights, applied, skipped = apply_fixes(a.config, a.weights_bytes, a.dialect,
                                                    context(load_profile("int8"), opts), opts, unsafe=False)
    assert [f.layer for f in applied] == ["ln"] and not skipped
    out = write_archive(tmp_path / "f.keras", config, a.metadata, weights)
    assert not findings(out, "int8")
    original, fixed = load_model(a.path, a.dialect), load_model(out, a.dialect)
    classes = [type(layer).__name__ for layer in fixed.layers]
    assert "LayerNormalization" not in classes and "RMSNormalization" in classes
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(4, *SHAPES[rank])) * 3 + 1).astype("float32")  # a mean far from 0
    diff = np.max(np.abs(np.asarray(original(x)) - np.asarray(fixed(x))))
    assert diff <= SAFE_TOLERANCE, diff


def test_tf_keras_layernorm_gets_no_finding(tmp_path):
    path = _save(tmp_path, "tfk", dialect="tfk", rank=4)
    for t in ("int8", "edgetpu", "tflm", "ethos-u55"):
        assert not findings(path, t)


@pytest.mark.parametrize("axis", [[1, 2, 3], 1], ids=["all-axes", "axis-1"])
def test_other_axes_are_explained_without_a_rewrite(axis, tmp_path):
    """Keras 3 writes the NEG whatever the axes; the decomposition is for the last axis alone."""
    path = _save(tmp_path, "ax", rank=4, axis=axis)
    (v,) = findings(path, "int8")
    assert v.location.layer == "ln" and "NEG" in v.message
    assert v.fix.applicability is Applicability.DISPLAY_ONLY and not v.fix.edits
    assert "not the last axis alone" in v.fix.description


def test_tflm_island_is_a_warning(folder):
    """TFLite Micro registers float kernels: the island runs there (slower), as QF405 says it."""
    from qfix.types import Severity

    path = folder / "r4.keras"
    if not path.exists():
        path = _save(folder, "r4", rank=4)
    (v,) = findings(path, "tflm")
    assert v.severity is Severity.WARNING and "float kernels" in v.message
    for t in ("int8", "edgetpu", "ethos-u55"):
        (v,) = findings(path, t)
        assert v.severity is Severity.BLOCKER
