"""A user's own profile (`--target my_npu.toml`): the documented example loads and means what
it says; every broken variant is one QF912 line naming the key and the problem, through the
loader and through the installed console script (exit 2, never a traceback)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from qfix.targets import available_targets, load_profile
from qfix.targets.check import PREDICATES, check
from qfix.targets.schema import builtin_codes, validate
from qfix.targets.tflite import read_tflite
from qfix.types import QfixError

from tflite_models import build_tflite, conv_chain

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "targets" / "my_npu.toml"
TINY = ROOT / "fixtures" / "tiny_cnn_k3.keras"
QFIX = shutil.which("qfix", path=str(Path(sys.executable).parent))


def qfix_run(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("QFIX_DEBUG", None)
    return subprocess.run([QFIX, *map(str, args)], capture_output=True, text=True, env=env, timeout=300)


# ---- the documented example ------------------------------------------------------------------


def test_the_readme_shows_the_example_profile_as_shipped():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", readme, re.S)
    assert EXAMPLE.read_text(encoding="utf-8") in blocks


def test_the_example_loads_and_means_what_it_says():
    p = load_profile(str(EXAMPLE))
    assert (p.id, p.placement, p.static_shapes, p.io_dtype, p.max_rank) == ("my_npu", "islands", True, "int8", 4)
    assert p.recipe.full_integer and p.recipe.batch == 1 and p.sources == ("My NPU SDK guide 2.1",)
    assert p.supports("CONV_2D") and not p.supports("LEAKY_RELU") and not p.supports("TANH")
    assert p.op("LEAKY_RELU").fix_hint and p.status("fallback") == "falls back to the CPU"
    assert "leaky_relu" in p.missing_activations  # the source rules see the same table


def test_the_example_judges_a_model():
    """uint8 -> QUANTIZE -> CONV_2D(+RELU) -> [op] -> QUANTIZE -> uint8: the boundary
    QUANTIZEs never count, CONV_2D runs, an unlisted op falls back to the CPU."""
    p = load_profile(str(EXAMPLE))
    ok = check(read_tflite(conv_chain()), p)
    assert ok.ops_on_target == 1 and ok.first_unsupported is None and ok.fallback == []
    off = check(read_tflite(conv_chain("TANH")), p)
    assert off.first_unsupported["op"] == "TANH" and off.first_unsupported["status"] == "no NPU kernel"
    assert [(f["op"], f["status"]) for f in off.fallback] == [("TANH", "falls back to the CPU")]


def test_every_builtin_profile_passes_the_strict_checks():
    for t in available_targets():
        path = ROOT / "qfix" / "targets" / f"{t}.toml"
        assert load_profile(str(path)).id == t


def _sample(annotation):
    """A value of a predicate parameter's type, as a profile writes it."""
    import types
    import typing

    from qfix.targets import argtypes

    fixed = {argtypes.TensorRef: "input0", argtypes.Index: 1, argtypes.Activation: "RELU", argtypes.DType: "int8",
             int: 1, float: 0.5, bool: True, str: "x", typing.Any: 1}
    if annotation in fixed:
        return fixed[annotation]
    origin, params = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return _sample(next(p for p in params if p is not type(None)))
    if origin is list:
        return [_sample(params[0])]
    assert origin is dict, annotation
    return {"padding": _sample(params[1])}


def test_the_strict_checks_know_every_predicate_s_arguments():
    """A rule for each predicate with arguments of its declared types: accepted; one more
    argument, or one of another type: refused, naming the argument."""
    import inspect
    import typing

    for name, fn in PREDICATES.items():
        hints = typing.get_type_hints(fn)
        params = [q.name for q in list(inspect.signature(fn).parameters.values())[2:]]
        doc = {"schema": 1, "target": {"id": "x", "placement": "islands"},
               "op": {"ADD": {"rule": [{"predicate": name, "args": {a: _sample(hints[a]) for a in params}}]}}}
        validate(doc, "t", strict=True)
        args = doc["op"]["ADD"]["rule"][0]["args"]
        for a in params:
            good = args[a]
            args[a] = 3.5 if isinstance(good, dict) else {"not": "this"}  # a type no parameter takes besides
            with pytest.raises(QfixError, match=f"args\\.{a}: {name}: (must|unknown)"):
                validate(doc, "t", strict=True)
            args[a] = good
        args["bogus"] = 1
        with pytest.raises(QfixError, match="takes no argument 'bogus'"):
            validate(doc, "t", strict=True)


def test_builtin_operator_codes_come_from_the_schema_enum():
    from tflite.BuiltinOperator import BuiltinOperator

    codes = builtin_codes()
    assert codes["CONV_2D"] == BuiltinOperator.CONV_2D == 3 and codes["STABLEHLO_CASE"] == 209


# ---- broken profiles: one line naming the key and the problem --------------------------------

BROKEN = [  # (replace this, with that) in the example, what the message must say
    (("placement = \"islands\" ", "plaecment = \"islands\" "), "target.plaecment: unknown key"),
    (("schema = 1", "schema = 1\nextra = 3"), "extra: unknown key"),
    (("static_shapes = true ", "static_shape = true "), "target.model_rules.static_shape: unknown key"),
    (("static_shapes = true ", "static_shapes = \"yes\" "), "target.model_rules.static_shapes: must be true or false"),
    (("max_rank = 4 ", "max_rank = 0 "), "target.model_rules.max_rank: must be a positive integer"),
    (('activation_dtypes = ["int8"]', 'activation_dtypes = ["int9"]'), "unknown tensor type 'int9'"),
    (('activation_dtypes = ["int8"]', 'activation_dtypes = "int8"'), "target.model_rules.activation_dtypes: must be a list"),
    (('static_shapes_confidence = "R"', 'static_shapes_confidence = "sure"'), "static_shapes_confidence: must be one of V/M/R"),
    (('name = "My NPU (int8)"', "name = 7"), "target.name: must be a string"),
    (('sources = ["My NPU SDK guide 2.1"]', 'sources = "guide"'), "target.sources: must be a list of strings"),
    (('unlisted_ops = "unsupported" ', 'unlisted_ops = "maybe" '), "target.unlisted_ops: must be"),
    (('note = "no compiler', 'nt = "no compiler'), "target.toolchain.nt: unknown key"),
    (('mapped = "runs on the NPU"', 'maped = "runs on the NPU"'), "statuses.maped: unknown key"),
    (('fallback = "falls back to the CPU"', "fallback = 1"), "statuses.fallback: must be a string"),
    (("[op.ADD]", "[op.ADDITION]"), "op.ADDITION: not a TFLite builtin operator name"),
    (("[op.ADD]\ncode = 0", "[op.ADD]\ncode = 1"), "op.ADD.code: is 1, but ADD is 0"),
    (("[op.ADD]\ncode = 0", '[op.ADD]\ncode = "zero"'), "op.ADD.code must be an integer"),
    (('predicate = "attr_eq"', 'predicate = "os.system"'), "unknown predicate 'os.system'"),
    (('args = { a = "dilation_h_factor", b = "dilation_w_factor" }', 'args = { a = "dilation_h_factor" }'),
     "op.CONV_2D.rule[0].args: attr_eq needs b"),
    (("args = { dims = [0] }", "args = { dims = [0], axis = 1 }"), "op.MEAN.rule[0].args.axis: axes_exclude takes no argument 'axis'"),
    (('text = "At most 4096 elements."', 'txet = "At most 4096 elements."'), "op.SOFTMAX.rule[0].txet: unknown key"),
    (('confidence = "R"\n\n[op.DEPTHWISE', 'confidence = "high"\n\n[op.DEPTHWISE'),
     "op.CONV_2D.rule[1].confidence: must be one of V/M/R, got 'high'"),
    (('supported = false ', 'supported = "no" '), "op.LEAKY_RELU.supported: must be true or false"),
    (('quantization = "full_integer" ', 'quantization = "int4" '), "recipe.quantization must be one of"),
    (("batch = 1", "batch = -1"), "recipe.batch must be a positive integer"),
    # verified at batch 1 only: a batch-4 profile failed in TFLite's RESHAPE prepare, after TF
    (("batch = 1", "batch = 4"), "recipe.batch: qfix converts and verifies at batch 1 only, got 4"),
    (("batch = 1", "batch = 99999999999999999999999"), "recipe.batch: qfix converts and verifies at batch 1 only"),
    (("schema = 1", "schema = true"), "expected `schema = 1` at the top of the file, got True"),
    (('name = "my-npu-sdk"', 'name = "vela", accelerator_config = 128'), "target.toolchain.accelerator_config: must be a string"),
    (('name = "my-npu-sdk"', 'name = "vela", accelerator_config = "fast"'),
     "target.toolchain.accelerator_config: must name a Vela accelerator configuration ending in -<MACs>"),
    (('id = "my_npu" ', 'id = "../my npu" '), "target.id must be 1 to 64 letters, digits"),
    (('id = "my_npu" ', 'id = "' + "a" * 65 + '" '), "target.id must be 1 to 64 letters, digits"),
    (("max_rank = 4 ", "max_rank = 99999999999999999999 "), "target.model_rules.max_rank: must be below 2147483648"),
    (("[recipe]", "recipe = 3\n[recipe_]"), "recipe_: unknown key"),
]


@pytest.mark.parametrize("change,needle", BROKEN, ids=[n for _, n in BROKEN])
def test_a_broken_profile_is_one_qf912_naming_the_key(tmp_path, change, needle):
    text = EXAMPLE.read_text(encoding="utf-8")
    assert change[0] in text, change[0]
    path = tmp_path / "my_npu.toml"
    path.write_text(text.replace(change[0], change[1], 1), encoding="utf-8")
    with pytest.raises(QfixError) as err:
        load_profile(str(path))
    assert err.value.code == "QF912" and needle in err.value.message, err.value.message
    assert str(path) in err.value.message and "\n" not in err.value.message


def test_a_toml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "my_npu.toml"
    path.write_text(EXAMPLE.read_text().replace('name = "My NPU (int8)"', 'name = "My NPU (int8)'), encoding="utf-8")
    with pytest.raises(QfixError) as err:
        load_profile(str(path))
    line = EXAMPLE.read_text().splitlines().index('name = "My NPU (int8)"') + 1
    assert err.value.code == "QF912" and "invalid TOML" in err.value.message and f"line {line}" in err.value.message


@pytest.mark.parametrize("name,content,needle", [
    ("missing.toml", None, "No such file or directory"),
    ("sub/missing", None, "No such file or directory"),
    ("profiles", "folder", "is a folder"),
    ("p.toml", "folder", "is a folder"),
    ("latin1.toml", b"schema = 1\nname = '\xe9'\n", "not UTF-8"),
    ("empty.toml", b"", "expected `schema = 1`"),
    ("bom.toml", "\ufeffschema = 1\n".encode(), "missing [target] table"),  # the BOM is skipped: the next problem shows
])
def test_files_that_are_not_profiles(tmp_path, name, content, needle):
    path = tmp_path / name
    if content == "folder":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(QfixError) as err:
        load_profile(str(path))
    assert err.value.code == "QF912" and needle in err.value.message, err.value.message


# ---- through the console script ----------------------------------------------------------------


@pytest.mark.parametrize("change,needle", [BROKEN[i] for i in (2, 5, 14, 19)] +
                         [(("schema = 1", "schema = [1"), "invalid TOML")])
def test_broken_profiles_through_the_console_script(tmp_path, change, needle):
    path = tmp_path / "my_npu.toml"
    path.write_text(EXAMPLE.read_text(encoding="utf-8").replace(change[0], change[1], 1), encoding="utf-8")
    for args in ((TINY, "--check", "--target", path), ("targets", path)):
        proc = qfix_run(*args)
        assert proc.returncode == 2, (proc.stdout, proc.stderr)
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("QF912 ") and needle in lines[0], proc.stderr
        assert "Traceback" not in proc.stdout + proc.stderr and proc.stdout == ""


@pytest.mark.parametrize("name,needle", [("profiles", "is a folder"), ("nope.toml", "No such file or directory"),
                                         ("sub/nope", "No such file or directory")])
def test_a_profile_path_that_is_no_profile_through_the_console_script(tmp_path, name, needle):
    (tmp_path / "profiles").mkdir()
    proc = qfix_run(TINY, "--check", "--target", tmp_path / name)
    assert proc.returncode == 2 and proc.stdout == "", proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("QF912 ") and needle in lines[0], proc.stderr


def test_the_example_runs_the_static_check_through_the_console_script():
    proc = qfix_run(TINY, "--target", EXAMPLE, "--check", "--static", "--format", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    # static_shapes = true and batch 1: the dynamic batch is reported (the recipe fixes it)
    assert report["target"] == "my_npu" and [f["code"] for f in report["findings"]] == ["QF301"]


def test_without_vela_the_ethos_u_profile_says_where_an_op_off_the_npu_goes():
    """Profile only (Vela not run): an Ethos-U op off the NPU is listed as a CPU fallback, as
    Vela's own placement lists it (islands: the ops after it stay on the NPU)."""
    q = {"dtype": "int8"}
    tensors = [{"name": "x", "shape": (1, 8), **q}, {"name": "model/relu/out", "shape": (1, 8), **q},
               {"name": "model/log_softmax/out", "shape": (1, 8), **q}, {"name": "model/tanh/out", "shape": (1, 8), **q}]
    ops = [{"op": "RELU", "in": [0], "out": [1]}, {"op": "LOG_SOFTMAX", "in": [1], "out": [2]},
           {"op": "TANH", "in": [2], "out": [3]}]
    for target in ("ethos-u55", "ethos-u65", "ethos-u85"):
        p = check(read_tflite(build_tflite(tensors, ops, [0], [3])), load_profile(target))
        assert [o.on_target for o in p.ops] == [True, False, True], target
        assert [(f["op"], f["status"]) for f in p.fallback] == [
            ("LOG_SOFTMAX", "falls back to the CPU (TensorFlow Lite Micro's kernel)")], target


@pytest.mark.parametrize("name", ["edgetpu", "int8", "tflm", "Coral", "ethos-u55:128", "vela"])
@pytest.mark.parametrize("kind", ["folder", "file"])
def test_a_builtin_name_means_the_builtin_beside_a_file_or_folder_of_that_name(tmp_path, monkeypatch, name, kind):
    """An `edgetpu/` output folder (or a stray file called `tflm`) in the working directory does
    not turn the built-in target into a user profile."""
    monkeypatch.chdir(tmp_path)
    if kind == "folder":
        (tmp_path / name).mkdir()
    else:
        (tmp_path / name).write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    assert load_profile(name).id == load_profile(name.split(":")[0]).id != "my_npu"
    # A name that is no built-in still reads the file (the README's "naming an existing file").
    (tmp_path / "mine").write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    assert load_profile("mine").id == "my_npu"


def test_a_float_island_at_the_model_edges_is_judged_not_taken_for_the_interface():
    """int8 in -> DEQUANTIZE -> TANH (float) -> QUANTIZE -> int8 out: the DEQUANTIZE reads an
    integer graph input and the QUANTIZE writes an integer graph output, so neither converts
    the model's I/O type; they open and close a float island (Vela puts all three on the CPU:
    "DEQUANTIZE ... Unsupported opType"). The report listed two and warned of float model I/O."""
    tensors = [{"name": "x", "shape": (1, 8), "dtype": "int8"},
               {"name": "model/conv3d/deq", "shape": (1, 8), "dtype": "float32"},
               {"name": "model/conv3d/tanh", "shape": (1, 8), "dtype": "float32"},
               {"name": "model/conv3d/out", "shape": (1, 8), "dtype": "int8"}]
    ops = [{"op": "DEQUANTIZE", "in": [0], "out": [1]}, {"op": "TANH", "in": [1], "out": [2]},
           {"op": "QUANTIZE", "in": [2], "out": [3]}]
    for target in ("ethos-u55", "int8", "tflm"):
        p = check(read_tflite(build_tflite(tensors, ops, [0], [3])), load_profile(target))
        assert [o.boundary for o in p.ops] == [False, False, False], target
        assert p.float_tensors == ["model/conv3d/deq", "model/conv3d/tanh"], target
        assert not any("float model input/output" in w for w in p.warnings), (target, p.warnings)
        if target == "tflm":  # TFLM registers float kernels: the island runs (QF405 warns of it)
            assert p.fully_on_target and p.first_unsupported is None
            continue
        assert not p.fully_on_target and p.first_unsupported["op"] == "DEQUANTIZE", target
        assert "float island starts here" in p.first_unsupported["reason"], target
    # QF405: a blocker where the target has no float kernels, a warning on TFLM (it runs them).
    from qfix.rules.float_island import FloatIsland
    from qfix.types import Severity
    for target, severity in (("tflm", Severity.WARNING), ("int8", Severity.BLOCKER), ("ethos-u55", Severity.BLOCKER)):
        prof = load_profile(target)
        (v,) = FloatIsland().check(check(read_tflite(build_tflite(tensors, ops, [0], [3])), prof), prof)
        assert v.severity is severity, target
        assert ("runs them on its float kernels" in v.message) is (target == "tflm")
    u55 = check(read_tflite(build_tflite(tensors, ops, [0], [3])), load_profile("ethos-u55"))
    assert [f["op"] for f in u55.fallback] == ["DEQUANTIZE", "TANH", "QUANTIZE"]
    # The interface itself is still the boundary: float in -> QUANTIZE -> int8 ... -> DEQUANTIZE -> float out.
    io = [{"name": "x", "shape": (1, 8), "dtype": "float32"}, {"name": "q", "shape": (1, 8), "dtype": "int8"},
          {"name": "t", "shape": (1, 8), "dtype": "int8"}, {"name": "y", "shape": (1, 8), "dtype": "float32"}]
    io_ops = [{"op": "QUANTIZE", "in": [0], "out": [1]}, {"op": "TANH", "in": [1], "out": [2]},
              {"op": "DEQUANTIZE", "in": [2], "out": [3]}]
    p = check(read_tflite(build_tflite(io, io_ops, [0], [3])), load_profile("ethos-u55"))
    assert [o.boundary for o in p.ops] == [True, False, True] and p.ops[1].on_target
