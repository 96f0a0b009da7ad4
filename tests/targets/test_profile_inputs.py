"""Target flags and profile files that are not what they seem (issue 13, a new user's review):
devices, FIFOs, huge files, trailing slashes, an empty --target, a bad `:N`, a signed
--memory. Each is one line with its code and exit status 2, through the console script, and
never reads past the 1 MiB cap or blocks on a FIFO."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "targets" / "my_npu.toml"
TINY = ROOT / "fixtures" / "tiny_cnn_k3.keras"
QFIX = shutil.which("qfix", path=str(Path(sys.executable).parent))


def qfix_run(*args, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("QFIX_DEBUG", None)
    # a hang (a FIFO opened for reading) fails the test by its timeout instead of blocking it
    return subprocess.run([QFIX, *map(str, args)], capture_output=True, text=True, env=env, timeout=120, cwd=cwd)


def one_line(proc: subprocess.CompletedProcess, line: str) -> None:
    assert proc.returncode == 2 and proc.stdout == "", proc.stdout + proc.stderr
    assert proc.stderr.splitlines() == [line], proc.stderr


def both_ways(arg: str, line: str, cwd: Path = ROOT) -> None:
    """`qfix targets ARG` and `qfix MODEL --check --target ARG`: the same line."""
    one_line(qfix_run("targets", arg, cwd=cwd), line)
    one_line(qfix_run(TINY, "--check", "--target", arg, cwd=cwd), line)


NOT_REGULAR = "is not a regular file (a device, FIFO or socket); pass the profile's .toml file"


def test_a_device_is_refused_before_it_is_read():
    both_ways("/dev/zero", f"QF912 target profile /dev/zero {NOT_REGULAR}")


def test_a_toml_symlink_to_a_device_is_refused(tmp_path):
    (tmp_path / "zero.toml").symlink_to("/dev/zero")
    both_ways("zero.toml", f"QF912 target profile zero.toml {NOT_REGULAR}", cwd=tmp_path)


def test_a_fifo_is_refused_without_opening_it(tmp_path):
    os.mkfifo(tmp_path / "fifo.toml")
    both_ways("fifo.toml", f"QF912 target profile fifo.toml {NOT_REGULAR}", cwd=tmp_path)


def test_a_file_over_the_cap_is_refused(tmp_path):
    (tmp_path / "huge.toml").write_bytes(b"#" * ((1 << 20) + 1))
    both_ways("huge.toml", "QF912 target profile huge.toml is larger than 1 MiB (a profile is a few KiB)",
              cwd=tmp_path)


def test_a_symlink_to_a_regular_profile_works(tmp_path):
    (tmp_path / "mine.toml").symlink_to(EXAMPLE)
    proc = qfix_run("targets", "mine.toml", cwd=tmp_path)
    assert proc.returncode == 0 and "my_npu  My NPU (int8) (also: mynpu)  [profile mine.toml]" in proc.stdout, proc.stdout + proc.stderr


def test_a_trailing_slash_is_refused(tmp_path):
    shutil.copy(EXAMPLE, tmp_path / "ok.toml")
    both_ways("ok.toml/", "QF912 target profile ok.toml/ ends in '/', so it names a folder; "
                          "pass the profile's .toml file", cwd=tmp_path)


def test_an_upper_case_toml_name_is_a_path(tmp_path):
    shutil.copy(EXAMPLE, tmp_path / "MINE.TOML")
    proc = qfix_run("targets", "MINE.TOML", cwd=tmp_path)
    assert proc.returncode == 0 and "my_npu  My NPU (int8) (also: mynpu)  [profile MINE.TOML]" in proc.stdout, proc.stdout + proc.stderr
    both_ways("GONE.Toml", "QF912 cannot read target profile GONE.Toml: No such file or directory", cwd=tmp_path)


@pytest.mark.parametrize("arg", ["", "  "])
def test_an_empty_target_is_refused_not_defaulted(arg):
    both_ways(arg, "QF910 empty target: pass a target id (see `qfix targets`) or a profile .toml file")


def test_an_empty_target_on_python_sources(tmp_path):
    (tmp_path / "m.py").write_text("x = 1\n", encoding="utf-8")
    one_line(qfix_run(tmp_path / "m.py", "--target", ""),
             "QF910 empty target: pass a target id (see `qfix targets`) or a profile .toml file")


def test_a_bad_mac_configuration_is_refused_before_the_model_is_read(tmp_path):
    """The model path does not even exist as a model: the target is refused first."""
    bogus = tmp_path / "not_a_model.keras"
    bogus.write_bytes(b"not a zip")
    one_line(qfix_run(bogus, "--check", "--target", "ethos-u55:7"),
             "QF910 unknown MAC configuration 'ethos-u55:7' (known: ethos-u55:32, ethos-u55:64, "
             "ethos-u55:128, ethos-u55:256)")


@pytest.mark.parametrize("spec,line", [
    ("ram=-1", "QF914 --memory ram: '-1' must be positive (a size with no sign, like 256KB)"),
    ("flash=-2MB", "QF914 --memory flash: '-2MB' must be positive (a size with no sign, like 256KB)"),
])
def test_a_signed_memory_size_must_be_positive(spec, line):
    one_line(qfix_run(TINY, "--check", "--target", "tflm", "--memory", spec), line)


# ---- values the schema checks before anything converts ------------------------------------------

STATUSES = ("after_cut, bad_dtype, bad_int_dtype, bad_rank, bad_version, boundary_cpu, cpu, dynamic, fallback, "
            "hidden_limit, mapped, reference, rejected, unparsable, unsupported_op")
WRONG_VALUES = [  # (replace this, with that) in the example, the exact line after "<path>: "
    (("args = { dims = [0] }", 'args = { dims = "zero" }'),
     "op.MEAN.rule[0].args.dims: axes_exclude: must be a list, got 'zero'"),
    (("args = { dims = [0] }", "args = { dims = [0, true] }"),
     "op.MEAN.rule[0].args.dims: axes_exclude: item 1: must be an integer, got True"),
    (("n = 4096", 'n = "many"'), "op.SOFTMAX.rule[0].args.n: num_elements_le: must be an integer, got 'many'"),
    (('tensor = "input0"', 'tensor = "the_input"'),
     "op.SOFTMAX.rule[0].args.tensor: num_elements_le: must name an op tensor as input<N> or output<N> "
     "(e.g. input0), got 'the_input'"),
    (('tensor = "input0"', 'tensor = "output7"'),
     "op.SOFTMAX.rule[0].args.tensor: 'output7' names no tensor: SOFTMAX has one output (output0)"),
    (('values = ["NONE", "RELU", "RELU6"]', 'values = ["NONE", "RELUX"]'),
     "op.CONV_2D.rule[1].args.values: fused_activation_in: item 1: unknown fused activation 'RELUX' "
     "(TFLite's ActivationFunctionType: NONE, RELU, RELU_N1_TO_1, RELU6, TANH, SIGN_BIT)"),
    (('text = "At most 4096 elements."', 'text = "At most 4096 elements."\n  status = "melted"'),
     f"op.SOFTMAX.rule[0].status: 'melted' is not a status key (known: {STATUSES})"),
]


@pytest.mark.parametrize("change,line", WRONG_VALUES, ids=[c[1] for c, _ in WRONG_VALUES])
def test_a_wrong_value_is_one_qf912_line(tmp_path, change, line):
    text = EXAMPLE.read_text(encoding="utf-8")
    assert change[0] in text, change[0]
    (tmp_path / "p.toml").write_text(text.replace(change[0], change[1], 1), encoding="utf-8")
    one_line(qfix_run("targets", "p.toml", cwd=tmp_path), f"QF912 bad target profile p.toml: {line}")


def test_a_wrong_argument_type_stops_a_model_run_before_it_converts(tmp_path):
    """The run that used to end in a TypeError inside check.py."""
    text = EXAMPLE.read_text(encoding="utf-8").replace("args = { dims = [0] }", 'args = { dims = "zero" }')
    (tmp_path / "p.toml").write_text(text, encoding="utf-8")
    one_line(qfix_run(TINY, "--check", "--target", "p.toml", cwd=tmp_path),
             "QF912 bad target profile p.toml: op.MEAN.rule[0].args.dims: axes_exclude: must be a list, got 'zero'")


# ---- recipes that cannot work, and what a profile must say itself --------------------------------


def _write(tmp_path: Path, text: str, name: str = "p.toml") -> str:
    (tmp_path / name).write_text(text, encoding="utf-8")
    return name


def test_float16_over_an_int8_parent_is_a_conflict_naming_both_keys(tmp_path):
    """TF's converter refuses float16 with TFLITE_BUILTINS_INT8 (the op set inherited here)."""
    name = _write(tmp_path, 'schema = 1\nextends = "ethos-u55"\n[target]\nid = "u55c"\n'
                            '[recipe]\nquantization = "float16"\n')
    line = ("QF912 bad target profile p.toml: recipe.quantization = 'float16' conflicts with recipe.supported_ops "
            "'TFLITE_BUILTINS_INT8' (from extends = 'ethos-u55'): TF's converter takes it only with full-integer "
            "quantization; use TFLITE_BUILTINS")
    both_ways(name, line, cwd=tmp_path)


def test_integer_io_without_full_integer_is_a_conflict(tmp_path):
    name = _write(tmp_path, 'schema = 1\n[target]\nid = "f16"\nplacement = "islands"\n'
                            '[recipe]\nquantization = "float16"\nio_dtype = "uint8"\n')
    one_line(qfix_run("targets", name, cwd=tmp_path),
             "QF912 bad target profile p.toml: recipe.quantization = 'float16' conflicts with recipe.io_dtype "
             "'uint8': integer model I/O needs full-integer quantization; use float32")


def test_a_child_that_changes_the_recipe_gets_a_description_of_its_own(tmp_path):
    name = _write(tmp_path, 'schema = 1\nextends = "ethos-u55"\n[target]\nid = "u55f"\n[recipe]\n'
                            'quantization = "float16"\nio_dtype = "float32"\nsupported_ops = ["TFLITE_BUILTINS"]\n')
    proc = qfix_run("targets", name, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "  recipe     float16 quantization, TFLITE_BUILTINS, float32 I/O, batch 1\n" in proc.stdout, proc.stdout
    assert "Ethos-U55 via Vela" not in proc.stdout.split("recipe", 1)[1].splitlines()[0]


def test_a_child_that_keeps_the_recipe_keeps_its_description(tmp_path):
    name = _write(tmp_path, 'schema = 1\nextends = "ethos-u55"\n[target]\nid = "u55k"\n')
    proc = qfix_run("targets", name, cwd=tmp_path)
    assert proc.returncode == 0 and "(Arm Ethos-U55 via Vela)" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.parametrize("text,got", [('extends = "ethos-u55"\n', "no schema key"),
                                      ('schema = 2\n[target]\nid = "x"\n', "2")])
def test_every_file_says_schema_1_itself(tmp_path, text, got):
    both_ways(_write(tmp_path, text),
              f"QF912 bad target profile p.toml: expected `schema = 1` at the top of the file, got {got}", cwd=tmp_path)


@pytest.mark.parametrize("target_id,what", [("edgetpu", "the id of a built-in target"),
                                            ("Coral", "an alias of the built-in target edgetpu"),
                                            ("ETHOS-U55", "the id of a built-in target")])
def test_a_user_profile_may_not_take_a_builtin_name(tmp_path, target_id, what):
    name = _write(tmp_path, f'schema = 1\n[target]\nid = "{target_id}"\nplacement = "islands"\n')
    one_line(qfix_run("targets", name, cwd=tmp_path),
             f"QF912 bad target profile p.toml: target.id: {target_id!r} is {what}; give your profile its own id")


def test_a_minimal_profile_reports_statuses_in_words(tmp_path):
    """No [statuses] and no [recipe]: the documented defaults, and words, not `unsupported_op`."""
    import json

    name = _write(tmp_path, 'schema = 1\n[target]\nid = "tiny"\nplacement = "islands"\n')
    proc = qfix_run(TINY, "--check", "--target", name, "--format", "json", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report["verification"]["first_unsupported"]["status"] == "op not supported by the target"
    listed = qfix_run("targets", name, cwd=tmp_path)
    assert "  recipe     full_integer quantization, TFLITE_BUILTINS_INT8, int8 I/O, batch 1\n" in listed.stdout


def test_a_nul_byte_in_a_configured_target_path(tmp_path):
    """`[tool.qfix] target` is a TOML string, which may hold \\u0000: no file has that name."""
    (tmp_path / "pyproject.toml").write_text('[tool.qfix]\ntarget = "p\\u0000.toml"\n', encoding="utf-8")
    (tmp_path / "m.py").write_text("x = 1\n", encoding="utf-8")
    one_line(qfix_run("m.py", cwd=tmp_path),
             "QF912 cannot read target profile 'p\\x00.toml': a path cannot hold a NUL byte")
