"""Issue 9, faults 8 and 9: the main job's verdicts agree with the proof.

8. A rewrite that does not improve the verified check is reported as "no effect" and not kept
   (no `.qfix.keras` when nothing is kept); a float input beside an integer one gets its
   quantization reported and QF409 when its precision is lost.
9. Static blockers the verification disproves (Lambda, custom objects) do not decide the
   verdict; int8 outputs without signal are not a success (QF408); only-unsafe fixes end with
   a hint; the batch the recipe fixes at conversion is not claimed for the model file.

Each fault on its smallest input and another member of its kind, real conversions, tiny models
built here (both dialects where the kind exists in both).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from qfix.jobs.check import Options, run_check
from qfix.jobs.fix import NO_EFFECT, run_fix, safe_tolerance
from qfix.jobs.qat import run_qat
from qfix.rules.zero_signal import MIN_SQNR_DB

pytestmark = pytest.mark.tf

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
SAMPLES = 8


def _mixed_concat(a):
    """The issue's smallest input: uint8 image flattened and concatenated with a float vector."""
    L = a.L
    img = a.K.Input((8, 8, 3), dtype="uint8", name="img")
    vec = a.K.Input((4,), name="vec")
    x = L.Flatten()(img) if a.dialect == "k3" else L.Flatten()(a.cast(img, "float32"))
    return a.K.Model([img, vec], L.Dense(2, name="out")(L.Concatenate()([x, vec])))


def _mixed_add(a):
    """Another member: a uint8 vector added to a float one (Keras 3 promotes silently)."""
    L = a.L
    ids = a.K.Input((4,), dtype="uint8", name="ids")
    vec = a.K.Input((4,), name="vec")
    return a.K.Model([ids, vec], L.Dense(2, name="out")(L.Add()([ids, vec])))


def _constant_softmax(a):
    """Output independent of the input: zero kernel, softmax over 1000 classes = 0.001, below
    half an int8 step of the softmax output (1/256): the int8 model answers 0."""
    L = a.L
    x = a.K.Input((8,), name="x")
    y = L.Dense(1000, kernel_initializer="zeros", activation="softmax", name="probs")(x)
    return a.K.Model(x, y)


def _constant_relu(a):
    """Another member: a ReLU that never opens (bias -10, zero kernel): every output 0."""
    L = a.L
    x = a.K.Input((8,), name="x")
    h = L.Dense(8, kernel_initializer="zeros", bias_initializer=a.K.initializers.Constant(-10.0),
                activation="relu")(x)
    return a.K.Model(x, L.Dense(3, name="out")(h))


def _nested_activation(a):
    """Two rules' rewrites in one model: an activation the Edge TPU lacks (kept: it moves the
    model onto the target) inside a nested backbone (flattening adds nothing to that)."""
    L = a.L
    b_in = a.K.Input((16, 16, 3))
    y = L.LeakyReLU(0.1)(L.Conv2D(8, 3)(b_in))
    backbone = a.K.Model(b_in, y, name="backbone")
    inp = a.K.Input((16, 16, 3), name="image")
    return a.K.Model(inp, L.Dense(2)(L.GlobalAveragePooling2D()(backbone(inp))))


BUILDERS = {"nested_activation": _nested_activation, "mixed_concat": _mixed_concat, "mixed_add": _mixed_add,
            "constant_softmax": _constant_softmax, "constant_relu": _constant_relu}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """name_dialect -> .keras path, built on first use and shared by the module's tests."""
    from fixtures.build import saved_on_first_use

    return saved_on_first_use(tmp_path_factory.mktemp("verdicts"), BUILDERS)


def qfix(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "qfix", *args], capture_output=True, text=True,
                          timeout=600, cwd=ROOT, env=env)


# --- fault 8: a fix that changes nothing -----------------------------------------------------


@pytest.mark.parametrize("name,state", [("mixed_concat", "no effect")])
def test_rewrite_without_gain_is_rolled_back_and_not_written(name, state, models, tmp_path):
    """The cast before the concatenation changes nothing the check sees (same CAST, same
    island): no effect. It is not kept, and a run that keeps nothing writes no model."""
    src = models(name)
    before = src.read_bytes()
    run = run_fix(src, Options(target="int8", samples=SAMPLES), out_dir=tmp_path)
    cast = [f for f in run.fixes if f.code == "QF101"]
    assert cast and all(f.rolled_back for f in cast), run.fixes
    assert cast[0].to_json()["state"] == state
    assert cast[0].reason.startswith(NO_EFFECT) is (state == "no effect")
    assert not run.active  # int8 has no batch rewrite: nothing is kept
    # nothing kept: no .qfix.keras, the verified .tflite still written
    assert run.outputs["model"] is None and run.not_written == str(tmp_path / f"{src.stem}.qfix.keras")
    assert not (tmp_path / f"{src.stem}.qfix.keras").exists()
    assert Path(run.outputs["tflite"]).read_bytes() == run.result.verification.tflite
    assert src.read_bytes() == before
    # the float outputs are the input model's: no equivalence to claim
    assert run.float_equivalence is None


def test_rewrite_that_moves_the_model_onto_the_target_is_kept_despite_a_few_db(models, tmp_path):
    """Before the Add the cast folds into the input: the CAST float island goes, the model runs
    fully on the int8 CPU, for a few dB of int8 noise (the uint8 input now shares the grid):
    kept, with both SQNRs reported; the float model is the same."""
    run = run_fix(models("mixed_add"), Options(target="int8", samples=SAMPLES), out_dir=tmp_path)
    assert [(f.code, f.rolled_back) for f in run.fixes] == [("QF101", False)]
    b, a = run.before, run.result.verification
    assert not b.placement.fully_on_target and b.placement.float_tensors
    assert a.placement.fully_on_target and not a.placement.float_tensors
    assert a.fidelity.sqnr_db > 30
    assert run.float_equivalence is not None and run.float_equivalence <= run.tolerance
    assert run.outputs["model"] is not None


@pytest.mark.parametrize("dialect", ["k3", "tfk"])
def test_flattening_a_nested_model_has_no_effect_under_ptq(dialect, tmp_path):
    """Another member: the converter inlines a nested model, so flattening it converts to the
    same .tflite: "no effect" under PTQ, kept with --mode qat (tfmot needs a flat model)."""
    src = FIXTURES / f"nested_{dialect}.keras"
    run = run_fix(src, Options(samples=SAMPLES), out_dir=tmp_path / "ptq")
    (flat,) = [f for f in run.fixes if f.code == "QF201"]
    assert flat.no_effect
    assert run.result.verification.tflite == run.before.tflite
    qat = run_qat(src, Options(samples=SAMPLES, mode="qat"), check=True)
    assert "QF201" in {f.code for f in qat.active}


@pytest.mark.parametrize("dialect", ["k3", "tfk"])
def test_each_rule_must_add_something(dialect, models, tmp_path):
    """Together the rewrites move the model onto the target; without the flattening they do as
    well, so it alone is rolled back as no effect and the written model keeps its nesting."""
    run = run_fix(models("nested_activation", dialect), Options(samples=SAMPLES), out_dir=tmp_path)
    states = {f.code: f.to_json()["state"] for f in run.fixes}
    assert states == {"QF201": "no effect", "QF301": "kept", "QF302": "kept"}, run.fixes
    assert run.result.verification.placement.fully_on_target
    assert not run.before.placement.fully_on_target
    assert run.result.exit_code() == 0
    assert run.float_equivalence <= run.tolerance
    config = json.loads(_member(Path(run.outputs["model"]), "config.json"))
    assert "backbone" in {l["name"] for l in config["config"]["layers"]}


def test_no_effect_rewrite_beside_a_kept_batch_fix_edgetpu(models, tmp_path):
    """On the Edge TPU the batch rewrite (which the recipe's conversion cannot see) stays, so
    the model file is written, without the cast that changed nothing."""
    src = models("mixed_concat")
    run = run_fix(src, Options(target="edgetpu", samples=SAMPLES), out_dir=tmp_path)
    states = {f.code: f.to_json()["state"] for f in run.fixes}
    assert states == {"QF101": "no effect", "QF301": "kept"}, states
    b, a = run.before.placement, run.result.verification.placement
    assert (a.ops_on_target, len(a.float_tensors)) == (b.ops_on_target, len(b.float_tensors))
    config = json.loads(_member(Path(run.outputs["model"]), "config.json"))
    assert "_to_float32" not in json.dumps(config)  # the cast is not in the written model
    # A static batch can pick another float kernel (CI saw 6.7e-5): equal up to float rounding.
    assert run.float_equivalence <= run.tolerance


@pytest.mark.parametrize("name,dialect,lost", [("mixed_concat", "k3", True), ("mixed_concat", "tfk", True),
                                               ("mixed_add", "k3", False)])
def test_float_input_beside_an_integer_one_reports_its_quantization(name, dialect, lost, models):
    """CONCATENATION keeps one scale for all its inputs: the float input gets the uint8 one's
    (about 1.0, 2 steps over -1..1). ADD rescales each input: the float one keeps its own."""
    res = run_check(models(name, dialect), Options(target="edgetpu", samples=SAMPLES))
    rows = {r["name"]: r for r in res.input_quantization}
    vec = rows["vec"]
    assert vec["kind"] == "float" and vec["tflite_dtype"] == "uint8"
    lo, hi = vec["range"]
    assert -1.0 <= lo < -0.5 and 0.5 < hi <= 1.0  # the float input's synthetic range, not 0..255
    integer = next(r for r in rows.values() if r["kind"] == "integer")
    assert integer["range"][1] > 200  # the uint8 input keeps its 0..255
    found = [v for v in res.findings if v.code == "QF409"]
    if lost:
        assert vec["scale"] > 0.5 and vec["levels"] < 4
        assert [v.location.layer for v in found] == ["vec"]
        assert integer["name"] in found[0].message and "scale" in found[0].message
    else:
        assert vec["scale"] < 0.01 and vec["levels"] > 200
        assert not found


def test_float_input_alone_keeps_its_precision():
    """The other side of QF409: a float input quantized on its own range gets ~255 steps."""
    res = run_check(FIXTURES / "tiny_cnn_k3.keras", Options(target="int8", samples=SAMPLES))
    (row,) = res.input_quantization
    assert row["kind"] == "float" and row["levels"] > 200
    assert not any(v.code == "QF409" for v in res.findings)


def test_safe_tolerance_scales_with_the_outputs():
    assert safe_tolerance([{"peak": 0.3}]) == pytest.approx(1e-5)
    assert safe_tolerance([{"peak": 0.3}, {"peak": 450.0}]) == pytest.approx(4.5e-3)


# --- fault 9: verdicts that contradict themselves --------------------------------------------


@pytest.mark.parametrize("args", [
    ("lambda_cnn_k3.keras", "--trust-lambdas"),
    ("lambda_cnn_tfk.keras", "--trust-lambdas"),
    ("custom_layer_k3.keras", "--custom-objects", "fixtures.custom_layers"),
], ids=lambda a: a[0])
def test_disproved_static_blockers_do_not_decide_the_verdict(args, tmp_path):
    name, *flags = args
    out = qfix(str(FIXTURES / name), *flags, "--out-dir", str(tmp_path), "--format", "json")
    report = json.loads(out.stdout)
    assert report["verification"]["fully_on_target"] is True
    assert out.returncode == report["exit_code"] == 0, out.stderr
    if "lambda" in name:
        # The Lambda's exact builtin replacement is kept although the placement is the same:
        # its value is a written model that loads without --trust-lambdas (a reviewer found it
        # rolled back as "no effect", the .qfix.keras still holding the Lambda)
        (v,) = [f for f in report["findings"] if f["code"] == "QF202"]
        assert v["applied"]
        (fix,) = [f for f in report["fixes"] if f["code"] == "QF202"]
        assert fix["state"] == "kept"
        written = json.loads(zipfile.ZipFile(report["outputs"]["model"]).read("config.json"))
        assert "Lambda" not in {layer["class_name"] for layer in written["config"]["layers"]}
    else:
        (v,) = [f for f in report["findings"] if f["code"] == "QF203"]
        assert v["severity"] == "warning" and "the verification disproves this" in v["message"]
    assert not [f for f in report["findings"] if f["severity"] == "blocker" and not f["applied"]]


def test_disproved_blocker_in_the_text_report(tmp_path):
    out = qfix(str(FIXTURES / "lambda_cnn_k3.keras"), "--trust-lambdas", "--check")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.rstrip().splitlines()[-1].startswith("runs fully on Coral Edge TPU")


@pytest.mark.parametrize("dialect", ["k3", "tfk"])
def test_outputs_without_signal_are_not_a_success(dialect, models):
    res = run_check(models("constant_softmax", dialect), Options(target="int8", samples=SAMPLES))
    assert res.verification.placement.fully_on_target
    assert res.verification.fidelity.sqnr_db < MIN_SQNR_DB  # 0.001 quantizes to 0: all zeros
    (v,) = [f for f in res.findings if f.code == "QF408"]
    assert v.severity.value == "blocker" and "same output for every sample" in v.message
    assert res.exit_code() == 1


def test_mobilenet_v3_small_untrained_is_not_a_success(tmp_path):
    """The issue's input: keras.applications.MobileNetV3Small, weights=None, 32x32, 1000
    classes. Its float output is 0.001 for every input (untrained), the int8 one 0: SQNR 0 dB."""
    import keras

    path = tmp_path / "mnv3s.keras"
    keras.applications.MobileNetV3Small(input_shape=(32, 32, 3), weights=None).save(path)
    res = run_check(path, Options(target="int8", samples=4))
    assert res.verification.placement.fully_on_target
    assert res.verification.fidelity.sqnr_db < MIN_SQNR_DB
    (v,) = [f for f in res.findings if f.code == "QF408"]
    assert v.severity.value == "blocker" and "untrained weights" in v.message
    assert res.exit_code() == 1


def test_constant_output_with_exact_numbers_is_a_warning(models):
    """A ReLU that never opens: every output 0, reproduced exactly by int8 (SQNR inf). The run
    stands (exit 0) but QF408 says the numbers prove nothing."""
    res = run_check(models("constant_relu"), Options(target="int8", samples=SAMPLES))
    (v,) = [f for f in res.findings if f.code == "QF408"]
    assert v.severity.value == "warning" and "same output for every sample" in v.message
    assert res.exit_code() == 0


def test_zero_signal_final_line(models):
    out = qfix(str(models("constant_softmax")), "--check", "--target", "int8")
    assert out.returncode == 1
    last = out.stdout.rstrip().splitlines()[-1]
    assert "carry no signal" in last and "QF408" in last and "not a success" in last


def test_signal_present_is_not_flagged():
    res = run_check(FIXTURES / "tiny_cnn_k3.keras", Options(target="int8", samples=SAMPLES))
    assert not any(v.code == "QF408" for v in res.findings)
    assert res.verification.fidelity.sqnr_db > MIN_SQNR_DB


@pytest.mark.parametrize("dialect", ["k3", "tfk"])
def test_only_unsafe_fixes_left_end_with_a_hint(dialect, tmp_path):
    src = str(FIXTURES / f"gelu_mlp_{dialect}.keras")
    out = qfix(src, "--out-dir", str(tmp_path))
    assert out.returncode == 1
    last = out.stdout.rstrip().splitlines()[-1]
    assert "--unsafe-fixes" in last and "QF302" in last
    report = json.loads(qfix(src, "--check", "--format", "json").stdout)
    assert report["unsafe_fixes_available"] == ["QF302"]
    applied = qfix(src, "--out-dir", str(tmp_path / "u"), "--unsafe-fixes", "--format", "json")
    assert json.loads(applied.stdout)["unsafe_fixes_available"] == []


@pytest.mark.parametrize("name", ["tiny_cnn_k3", "two_input_k3"])
def test_int8_batch_is_not_claimed_for_the_model_file(name, tmp_path):
    """int8 converts at batch 1 but has no batch rewrite: the report says the batch is fixed in
    the .tflite only, and the written model (when there is one) indeed keeps None."""
    run = run_fix(FIXTURES / f"{name}.keras", Options(target="int8", samples=SAMPLES), out_dir=tmp_path)
    assert run.batch_note and "fixed at conversion only" in run.batch_note
    assert not any(f.code == "QF301" for f in run.fixes)
    if run.outputs["model"]:
        config = json.loads(_member(Path(run.outputs["model"]), "config.json"))
        shapes = [l["config"]["batch_shape"] for l in config["config"]["layers"] if l["class_name"] == "InputLayer"]
        assert shapes and all(s[0] is None for s in shapes)
        assert run.outputs["model"] in run.batch_note


def test_edgetpu_batch_is_in_the_model_file(tmp_path):
    run = run_fix(FIXTURES / "tiny_cnn_k3.keras", Options(target="edgetpu", samples=SAMPLES), out_dir=tmp_path)
    assert run.batch_note is None
    config = json.loads(_member(Path(run.outputs["model"]), "config.json"))
    shapes = [l["config"]["batch_shape"] for l in config["config"]["layers"] if l["class_name"] == "InputLayer"]
    assert shapes == [[1, 32, 32, 3]]


def _member(path: Path, name: str) -> bytes:
    import zipfile

    with zipfile.ZipFile(path) as z:
        return z.read(name)
