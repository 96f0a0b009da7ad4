"""One target registry: the profile TOML is the only source of a target.

Adding a target is one TOML file: a copy of int8.toml under another id, in a temp folder,
works for source files and models exactly like the built-in it was copied from. Built-in ids
and aliases mean the same on both front ends; a broken profile is one QF912 line.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

from qfix.model.opmap import ACTIVATION_OPS
from qfix.targets import FLOAT32_BASELINE, available_targets, load_profile
from qfix.targets.compilers import find, verdict_source
from qfix.types import QfixError

REPO = Path(__file__).resolve().parents[2]
FIX = REPO / "fixtures"

CONVERTER_SCRIPT = """\
import tensorflow as tf
converter = tf.lite.TFLiteConverter.from_keras_model(model)
converter.optimizations = [tf.lite.Optimize.DEFAULT]
tflite_model = converter.convert()
"""


def qfix(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "qfix", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)


@pytest.fixture
def my_npu(tmp_path: Path) -> Path:
    """int8.toml copied to a temp folder as another target, `my_npu`."""
    text = resources.files("qfix.targets").joinpath("int8.toml").read_text(encoding="utf-8")
    assert 'id = "int8"' in text
    path = tmp_path / "my_npu.toml"
    path.write_text(text.replace('id = "int8"', 'id = "my_npu"', 1), encoding="utf-8")
    return path


# ---- the profile carries the recipe and the source rules' view ------------------------------


def test_recipes_come_from_the_profiles():
    tpu, cpu = load_profile("edgetpu").recipe, load_profile("int8").recipe
    assert (tpu.quantization, tpu.io_dtype, tpu.batch, tpu.supported_ops) == (
        "full_integer", "uint8", 1, ("TFLITE_BUILTINS_INT8",))
    assert (cpu.quantization, cpu.io_dtype, cpu.batch) == ("full_integer", "int8", 1)
    for t in ("tflm", "ethos-u55", "ethos-u65", "ethos-u85"):
        r = load_profile(t).recipe
        assert (r.target, r.full_integer, r.io_dtype, r.batch) == (t, True, "int8", 1)
    assert FLOAT32_BASELINE.quantization == "none" and not FLOAT32_BASELINE.full_integer


@pytest.mark.parametrize("target,integer,static,io,int8_only", [
    ("edgetpu", True, True, "uint8", True),
    ("int8", True, False, None, False),
    ("tflm", True, True, "int8", True),
    ("ethos-u55", True, True, "int8", True),
    ("ethos-u85", True, True, "int8", True),
])
def test_source_view(target, integer, static, io, int8_only):
    p = load_profile(target)
    assert (p.integer, p.static_shapes, p.io_dtype, p.int8_ops_only) == (integer, static, io, int8_only)


@pytest.mark.parametrize("target", ["edgetpu", "int8", "tflm", "ethos-u55", "ethos-u65", "ethos-u85"])
def test_missing_activations_are_derived_from_the_op_table(target):
    p = load_profile(target)
    assert p.missing_activations == {a for a, ops in ACTIVATION_OPS.items() if not all(p.supports(o) for o in ops)}


def test_missing_activations_per_target():
    assert {"hard_swish", "gelu", "leaky_relu", "elu", "selu", "mish"} <= load_profile("edgetpu").missing_activations
    assert load_profile("int8").missing_activations == frozenset()  # unlisted ops: reference kernels
    assert load_profile("tflm").missing_activations == {"gelu"}  # GELU is not registered in TFLM
    # U55/U65 run EXP, LOG, TANH (so mish) but leave LOG_SOFTMAX and DIV to the CPU; the U85 runs DIV
    assert load_profile("ethos-u55").missing_activations == {"log_softmax", "softsign"}
    assert load_profile("ethos-u65").missing_activations == {"log_softmax", "softsign"}
    assert load_profile("ethos-u85").missing_activations == {"log_softmax"}


@pytest.mark.parametrize("name,target", [
    ("coral", "edgetpu"), ("EdgeTPU", "edgetpu"), ("ethos-u", "ethos-u55"), ("Ethos-U65", "ethos-u65"),
    ("ethos-u85", "ethos-u85"), ("vela", "ethos-u55"), ("Ethos-U55:128", "ethos-u55"), ("TFLM", "tflm"), ("INT8", "int8"),
])
def test_aliases_and_case(name, target):
    assert load_profile(name).id == target


def test_placements_of_the_new_targets():
    assert load_profile("tflm").placement == "all_or_nothing"
    assert {load_profile(t).placement for t in ("ethos-u55", "ethos-u65", "ethos-u85")} == {"islands"}
    assert not load_profile("tflm").supports("TOPK_V2") and load_profile("tflm").supports("LOG_SOFTMAX")
    assert load_profile("ethos-u55").supports("GELU") and not load_profile("ethos-u55").supports("CUMSUM")
    assert not load_profile("ethos-u65").supports("CAST") and load_profile("ethos-u85").supports("CAST")


# ---- recipe validation ---------------------------------------------------------------------


@pytest.mark.parametrize("recipe,needle", [
    ('quantisation = "full_integer"', "recipe.quantisation"),
    ('quantization = "int4"', "recipe.quantization"),
    ('io_dtype = "uint7"', "recipe.io_dtype"),
    ("batch = 0", "recipe.batch"),
    ('supported_ops = ["TFLITE_BUILTINS_INT4"]', "recipe.supported_ops"),
    ("description = 3", "recipe.description"),
])
def test_bad_recipe_is_qf912_naming_the_key(tmp_path, recipe, needle):
    path = tmp_path / "bad.toml"
    path.write_text(f'schema = 1\n[target]\nid = "x"\nplacement = "islands"\n[recipe]\n{recipe}\n')
    with pytest.raises(QfixError) as err:
        load_profile(str(path))
    assert err.value.code == "QF912" and needle in err.value.message and "\n" not in str(err.value)


@pytest.mark.parametrize("change,needle", [
    (('id = "my_npu"', 'id = "../../etc/x"'), "target.id"),  # the id names output files
    (('id = "my_npu"', 'id = "red\\u001b[31m"'), "target.id"),
    (("[op.ADD]", "[op.ADD]\nrules = []"), "unknown key 'rules'"),  # [[op.ADD.rule]] misspelt
    (("[op.ADD]\ncode = 0", '[op.ADD]\ncode = "zero"'), "op.ADD.code"),
])
def test_profile_keys_are_checked(my_npu, change, needle):
    text = my_npu.read_text(encoding="utf-8")
    assert change[0] in text
    my_npu.write_text(text.replace(change[0], change[1], 1), encoding="utf-8")
    with pytest.raises(QfixError) as err:
        load_profile(str(my_npu))
    assert err.value.code == "QF912" and needle in err.value.message, err.value.message


def test_a_profile_that_is_not_text_is_qf912(tmp_path):
    path = tmp_path / "binary.toml"
    path.write_bytes(b"\xff\xfe\x00schema = 1")
    with pytest.raises(QfixError) as err:
        load_profile(str(path))
    assert err.value.code == "QF912" and "UTF-8" in err.value.message


def test_profile_loader_knows_exactly_the_check_predicates():
    from qfix.targets import PREDICATE_NAMES
    from qfix.targets.check import PREDICATES

    assert set(PREDICATES) == PREDICATE_NAMES


def test_loading_a_profile_imports_no_numpy():
    code = ("import sys; from qfix.targets import load_profile; load_profile('edgetpu').missing_activations;"
            "assert 'numpy' not in sys.modules and 'qfix.targets.check' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_profile_without_recipe_gets_the_int8_default(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('schema = 1\n[target]\nid = "mine"\nplacement = "islands"\n')
    r = load_profile(str(path)).recipe
    assert (r.target, r.quantization, r.io_dtype, r.batch, r.supported_ops) == (
        "mine", "full_integer", "int8", 1, ("TFLITE_BUILTINS_INT8",))


# ---- compilers by toolchain name -----------------------------------------------------------


def test_compiler_found_by_toolchain_name(my_npu):
    from qfix.targets.compilers import edgetpu, tflm

    assert find(load_profile("edgetpu")) is edgetpu
    from qfix.targets.compilers import vela

    assert find(load_profile("tflm")) is tflm and tflm.KIND == "runtime"
    assert all(find(load_profile(t)) is None for t in ("int8", "gpu"))
    assert load_profile("tflm").toolchain["name"] == "tflite-micro"
    assert all(find(load_profile(t)) is vela for t in ("ethos-u55", "ethos-u65", "ethos-u85"))
    # a user profile naming edgetpu_compiler as its toolchain gets the real compiler too
    text = my_npu.read_text().replace('name = "ai-edge-litert"', 'name = "edgetpu_compiler"')
    my_npu.write_text(text)
    assert find(load_profile(str(my_npu))) is edgetpu


def test_no_target_id_literals_outside_the_edgetpu_module():
    for path in (REPO / "qfix").rglob("*.py"):
        if path.name == "edgetpu.py" and path.parent.name == "compilers":
            continue
        text = path.read_text(encoding="utf-8")
        assert "profile.id ==" not in text and '"edgetpu_compiler"' not in text, path


# ---- both front ends, through the CLI --------------------------------------------------------


def test_targets_command_lists_every_target_with_its_verdict_source():
    r = qfix("targets")
    assert r.returncode == 0, r.stderr
    blocks = r.stdout.strip().split("\n\n")
    assert [b.split()[0] for b in blocks] == available_targets()
    for t, block in zip(available_targets(), blocks):
        p = load_profile(t)
        labels = [line.split()[0] for line in block.splitlines()[1:]]
        mac = ["variants"] if p.toolchain.get("accelerator_configs") else []
        assert labels == ["requires", "placement", "recipe", "memory", "verdict", "sources", *mac], block
        assert p.recipe.description in block and f"verdict    {verdict_source(p)}" in block
    by_id = dict(zip(available_targets(), blocks))
    assert "verdict    real compiler (edgetpu_compiler) when on PATH, else profile" in by_id["edgetpu"]
    assert "verdict    real runtime (tflite-micro interpreter) when installed, else profile" in by_id["tflm"]
    assert "verdict    profile only (no GPU here" in by_id["gpu"]
    assert "ram (the tensor arena the TFLM interpreter needs)" in by_id["tflm"]
    assert "variants   ethos-u55:32, ethos-u55:64, ethos-u55:128, ethos-u55:256 (MACs per cycle)" in by_id["ethos-u55"]
    assert "--memory flash (Vela's output .tflite), ram (Vela's SRAM estimate)" in by_id["ethos-u85"]
    assert "\n  ops  " not in r.stdout  # the op tables are for targets named on the command line
    assert "ram" not in by_id["edgetpu"].split("memory")[1].split("\n")[0]
    assert "int8 I/O, batch 1, static shapes" in by_id["tflm"] and "all or nothing" in by_id["tflm"]
    assert "float32/float16 tensors" in by_id["gpu"] and "rank 4 or less" in by_id["gpu"]
    assert "prefix: the first op off target cuts the graph" in by_id["edgetpu"]
    for t in ("ethos-u55", "ethos-u65", "ethos-u85"):
        assert "verdict    real compiler (vela) when ethos-u-vela is installed, else profile" in by_id[t]


def test_targets_command_shows_a_user_profile_or_its_error(my_npu, tmp_path):
    r = qfix("targets", str(my_npu))
    assert r.returncode == 0 and r.stdout.startswith("my_npu  "), r.stdout + r.stderr
    assert f"[profile {my_npu}]" in r.stdout.splitlines()[0] and "verdict    profile only" in r.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(my_npu.read_text().replace("static_shapes = false", "static_shape = false"))
    r = qfix("targets", str(bad))
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip() == (f"QF912 bad target profile {bad}: target.model_rules.static_shape: unknown key "
                                "(known: activation_dtypes, aux_dtypes, checks_semantics, dynamic_batch, integer_io, max_delegated_partitions, "
                                "max_innermost_dims, max_rank, max_subgraphs, max_tflite_runtime, sram_bytes_approx, "
                                "state_dtypes, static_shapes, version_failure, each with _source and _confidence)")


def test_added_target_runs_source_rules_like_its_original(tmp_path, my_npu):
    script = tmp_path / "convert.py"
    script.write_text(CONVERTER_SCRIPT)
    mine = qfix(str(script), "--target", str(my_npu), "--format", "json")
    base = qfix(str(script), "--target", "int8", "--format", "json")
    assert mine.returncode == base.returncode == 1, mine.stdout + mine.stderr
    codes = lambda r: sorted(f["code"] for f in json.loads(r.stdout)["findings"])  # noqa: E731
    assert codes(mine) == codes(base) == ["QF401"]
    assert "target my_npu needs full integer" in mine.stdout


@pytest.mark.parametrize("target", ["tflm", "ethos-u", "ethos-u85", "ethos-u65:512", "coral"])
def test_new_targets_accepted_by_both_front_ends(tmp_path, target):
    script = tmp_path / "convert.py"
    script.write_text(CONVERTER_SCRIPT)
    src = qfix(str(script), "--target", target, "--format", "concise")
    assert src.returncode == 1 and "QF401" in src.stdout, src.stdout + src.stderr
    model = qfix(str(FIX / "tiny_cnn_k3.keras"), "--target", target, "--check", "--static", "--format", "json")
    assert model.returncode == 0, model.stdout + model.stderr
    assert json.loads(model.stdout)["target"] == load_profile(target).id


def test_gpu_sources_need_no_integer_recipe(tmp_path):
    """The float16 recipe: a converter script with Optimize.DEFAULT alone is no QF401 for the GPU."""
    script = tmp_path / "convert.py"
    script.write_text(CONVERTER_SCRIPT)
    r = qfix(str(script), "--target", "gpu", "--format", "json")
    assert r.returncode == 0 and json.loads(r.stdout)["findings"] == [], r.stdout + r.stderr
    assert not load_profile("gpu").integer and load_profile("gpu").recipe.quantization == "float16"


def test_tflm_model_side_flags_gelu():
    r = qfix(str(FIX / "gelu_mlp_k3.keras"), "--target", "tflm", "--check", "--static", "--format", "json")
    assert "QF302" in {f["code"] for f in json.loads(r.stdout)["findings"]}, r.stdout + r.stderr


@pytest.mark.parametrize("path", ["convert.py", str(FIX / "tiny_cnn_k3.keras")])
def test_unknown_target_is_the_same_qf910_on_both_sides(tmp_path, path):
    script = tmp_path / "convert.py"
    script.write_text(CONVERTER_SCRIPT)
    r = qfix(path, "--target", "gpu9000", "--check", cwd=tmp_path)
    assert r.returncode == 2
    line = (r.stdout + r.stderr).strip()
    assert line == ("QF910 unknown target 'gpu9000' (known: edgetpu, ethos-u55, ethos-u65, ethos-u85, gpu, int8, tflm; "
                    "or pass a .toml profile)")


@pytest.mark.parametrize("path", ["convert.py", str(FIX / "tiny_cnn_k3.keras")])
def test_broken_profile_is_one_qf912_line(tmp_path, my_npu, path):
    my_npu.write_text(my_npu.read_text().replace('io_dtype = "int8"', 'io_dtype = "int8"\nbatch_size = 1', 1))
    script = tmp_path / "convert.py"
    script.write_text(CONVERTER_SCRIPT)
    r = qfix(path, "--target", str(my_npu), "--check", cwd=tmp_path)
    assert r.returncode == 2
    out = (r.stdout + r.stderr).strip()
    assert out.startswith("QF912 ") and "recipe.batch_size" in out and "\n" not in out, out


@pytest.mark.tf
def test_added_target_converts_and_checks_a_model(my_npu):
    r = qfix(str(FIX / "tiny_cnn_k3.keras"), "--target", str(my_npu), "--check", "--format", "json")
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    ver = report["verification"]
    assert report["target"] == "my_npu" and ver["converted"] and ver["fully_on_target"]
    assert ver["recipe"] == load_profile("int8").recipe.description
    assert ver["ops_total"] == ver["ops_on_target"] > 0


@pytest.mark.tf
@pytest.mark.parametrize("target", ["tflm", "ethos-u"])
def test_new_targets_convert_and_check_a_model(target):
    r = qfix(str(FIX / "tiny_cnn_k3.keras"), "--target", target, "--check", "--format", "json")
    assert r.returncode == 0, r.stdout + r.stderr
    ver = json.loads(r.stdout)["verification"]
    real = find(load_profile(target))  # Vela, when ethos-u-vela is installed, judges the Ethos-U
    assert ver["converted"] and ver["fully_on_target"]
    assert ver["compiler"]["used"] == (real.NAME if real is not None and real.available() else "profile")
    assert ver["recipe"] == load_profile(target).recipe.description
    assert all(op["status"] in (load_profile(target).status("mapped"), load_profile(target).status("boundary_cpu"))
               for op in ver["ops"])


def test_a_named_target_shows_its_canonical_id_and_op_table():
    """`qfix targets CORAL` (issue 13, items 6 and 7): the canonical id, not the user's capitals,
    and the op table the README promises, each op with its rules."""
    r = qfix("targets", "CORAL")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("edgetpu  Coral Edge TPU") and "CORAL" not in r.stdout
    p = load_profile("edgetpu")
    assert f"  ops        {len(p.ops)} listed; an op not listed is off target" in lines
    conv = next(i for i, line in enumerate(lines) if line.split()[:1] == ["CONV_2D"])
    assert lines[conv].split()[1:3] == ["yes,", "max"] and "Must use the same dilation" in lines[conv + 1]
    assert any(line.split()[:2] == ["HARD_SWISH", "no"] for line in lines)
    r = qfix("targets", "Ethos-U55:128")
    assert r.stdout.startswith("ethos-u55:128  Arm Ethos-U55 NPU (128 MACs)"), r.stdout[:200]


def test_targets_json_has_the_documented_shape():
    r = qfix("targets", "ethos-u65", "examples/targets/my_npu.toml", "--format", "json")
    assert r.returncode == 0, r.stderr
    u65, mine = json.loads(r.stdout)["targets"]
    assert set(u65) == {"id", "name", "aliases", "profile", "requires", "placement", "recipe", "memory",
                        "verdict_source", "toolchain", "accelerator_config", "variants", "sources",
                        "unlisted_ops", "ops"}
    assert u65["id"] == "ethos-u65" and u65["variants"] == ["ethos-u65:256", "ethos-u65:512"]
    assert u65["memory"] == ["flash", "ram"] and u65["accelerator_config"] == "ethos-u65-256"
    assert len(u65["ops"]) == len(load_profile("ethos-u65").ops)
    assert mine["id"] == "my_npu" and mine["profile"] == "examples/targets/my_npu.toml" and mine["variants"] == []
    (conv,) = [o for o in mine["ops"] if o["op"] == "CONV_2D"]
    assert conv["supported"] and conv["rules"][1] == {
        "predicate": "fused_activation_in", "args": {"values": ["NONE", "RELU", "RELU6"]},
        "text": "Only ReLU and ReLU6 fuse into a convolution.", "severity": "blocker",
        "source": "My NPU SDK guide 2.1, table 4", "confidence": "R"}
    bad = qfix("targets", "--format", "xml")
    assert bad.returncode == 2 and bad.stderr.strip().startswith("QF914 --format 'xml'")
