"""Lambda bodies read from marshalled bytecode without running them (qfix.model.bytecode), and
matched to built-in layers (qfix.model.lambda_plan). No TensorFlow: the lambdas are compiled
here (by the interpreter that reads them, as Keras would store them), or taken from configs
that Keras 3 and tf_keras really saved."""

from __future__ import annotations

import base64
import marshal
import sys

import numpy as np
import pytest

from qfix.model import bytecode as bc
from qfix.model.lambda_plan import Plan, op_expr, plan


def b64(obj) -> str:
    return base64.b64encode(marshal.dumps(obj)).decode("ascii")


def read(fn, arguments=None):
    """The body of a Lambda storing `fn` the way Keras 3 does."""
    cfg = {"function": {"class_name": "__lambda__", "config": {"code": b64(fn.__code__)}},
           "arguments": arguments or {}}
    return bc.read_lambda(cfg)


def shown(fn, **kw) -> str:
    body = read(fn, **kw)
    assert isinstance(body, bc.Expr), body
    return bc.render(body)


# --- reading and rendering ---------------------------------------------------------------


@pytest.mark.parametrize("fn,text", [
    (lambda x: x / 127.5 - 1.0, "x / 127.5 - 1.0"),
    (lambda x: (x - 127.5) / 127.5, "(x - 127.5) / 127.5"),
    (lambda t: -t * 2 + 3, "-t * 2 + 3"),
    (lambda x: x - (1.0 - x), "x - (1.0 - x)"),
    (lambda x: (x ** 2) ** 3, "(x ** 2) ** 3"),
    (lambda t: tf.nn.relu6(t), "tf.nn.relu6(t)"),  # noqa: F821  (never resolved: only read)
    (lambda t: tf.image.resize(t, (224, 224), method="nearest"), "tf.image.resize(t, (224, 224), method='nearest')"),  # noqa: F821
    (lambda x: keras.ops.image.resize(x, [64, 64]), "keras.ops.image.resize(x, [64, 64])"),  # noqa: F821
    (lambda t: t[:, :, :, 0:2], "t[:, :, :, 0:2]"),
    (lambda t: t[..., 1:3], "t[..., 1:3]"),
    (lambda t: t[:, ::2], "t[:, ::2]"),
    (lambda t: t[:, 1:-1, 2:6], "t[:, 1:-1, 2:6]"),
    (lambda x: tf.reduce_mean(x, axis=[1, 2], keepdims=True), "tf.reduce_mean(x, axis=[1, 2], keepdims=True)"),  # noqa: F821
    (lambda x: x.shape, "x.shape"),
    (lambda x: __import__("os").system("rm -rf /"), "__import__('os').system('rm -rf /')"),
])
def test_bodies_are_read_and_rendered_as_python(fn, text):
    assert shown(fn) == text


def test_lambda_arguments_are_bound_as_constants():
    assert shown(lambda x, scale: x * scale, arguments={"scale": 0.5}) == "x * 0.5"
    body = read(lambda x, scale: x * scale)
    assert isinstance(body, bc.Unreadable) and "scale" in body.reason


def test_stored_defaults_and_closure_are_bound_as_constants():
    """What `func_dump` stores beside the code (Keras 3 `defaults`/`closure`, tf_keras
    `function[1:]`): the values a lambda reads from its defaults and enclosing function."""
    fn = _def_closure()
    code = b64(fn.__code__)
    keras3 = {"function": {"class_name": "__lambda__", "config": {"code": code, "defaults": None, "closure": [2.0]}}}
    tf_keras = {"function": [code, None, [2.0]], "function_type": "lambda"}
    for cfg in (keras3, tf_keras):
        assert bc.render(bc.read_lambda(cfg)) == "x * 2.0"
    dflt = b64((lambda x, s=0.5: x * s).__code__)
    assert bc.render(bc.read_lambda({"function": [dflt, [0.5], None], "function_type": "lambda"})) == "x * 0.5"
    opaque = {"function": [code, None, [{"class_name": "Tensor"}]], "function_type": "lambda"}
    assert "not plain constants" in bc.read_lambda(opaque).reason


def test_tf_keras_and_keras3_configs_really_saved():
    """`lambda t: t / 127.5 - 1.0` as tf_keras 2.21 and Keras 3.15 saved it (Python 3.11)."""
    code = ("4wEAAAAAAAAAAAAAAAIAAAADAAAA8xIAAACXAHwAZAF6CwAAZAJ6CgAAUwCpA07nAAAAAADgX0Dn\n"
            "AAAAAAAA8D+pAKkB2gF0cwEAAAAg+g4vdG1wL2xhbS9tay5wefoIPGxhbWJkYT5yCQAAABkAAABz\n"
            "DgAAAIAAoHGoNaF5sDOhf4AA8wAAAAA=\n")
    tf_keras = {"name": "lambda", "function": [code, None, None], "function_type": "lambda", "module": "__main__",
                "arguments": {}}
    keras3 = {"name": "lambda", "function": {"class_name": "__lambda__",
                                             "config": {"code": code, "defaults": None, "closure": None}},
              "arguments": {}}
    if sys.version_info[:2] != (3, 11):
        pytest.skip("the stored bytecode is Python 3.11's")
    for cfg in (tf_keras, keras3):
        body = bc.read_lambda(cfg)
        assert bc.render(body) == "t / 127.5 - 1.0"
        p = plan(body, [None, 8, 8, 4], "tf_keras")
        assert p.steps[0].class_name == "Rescaling"
        assert p.steps[0].config == {"scale": 1 / 127.5, "offset": -1.0}


def test_a_named_function_has_no_body_to_read():
    body = bc.read_lambda({"function": "my_module.preprocess", "function_type": "function"})
    assert isinstance(body, bc.Unreadable) and "by reference" in body.reason


# --- hostile bytecode: a finding, never a traceback, never executed ------------------------


def _def_closure():
    s = 2.0
    return lambda x: x * s


@pytest.mark.parametrize("code,reason", [
    ("!!! not base64 ???", "not base64"),
    (12, "not base64 text"),
    ("", "empty"),
    (b64(1.5), "a marshalled float, not a code object"),
    (b64({"a": 1}), "a marshalled dict, not a code object"),
    (base64.b64encode(b"\xe3" + b"\xff" * 40).decode(), "not marshal data of this Python"),
    (base64.b64encode(b"[" + (2 ** 31 - 1).to_bytes(4, "little")).decode(), "not marshal data of this Python"),
    (base64.b64encode(b"\xcb\x0d\r\n" + b"\0" * 12 + marshal.dumps((lambda x: x).__code__)).decode(),
     "a .pyc header of Python 3.12 (magic 3531)"),
    (base64.b64encode(b"\x6f\x0d\r\n" + b"\0" * 12).decode(), "Python 3.10"),
    ("A" * 200_000, "more than a lambda's"),
])
def test_stored_code_that_is_not_a_lambda_is_unreadable(code, reason):
    got = bc.disassemble(code)
    assert isinstance(got, bc.Unreadable)
    assert reason in got.reason


@pytest.mark.parametrize("fn,reason", [
    (lambda x: [i for i in x], "a nested function or comprehension"),
    (lambda x: (lambda y: y)(x), "a nested function or comprehension"),
    (lambda x: x if x else 1.0, "control flow"),
    (lambda x: x > 0, "comparison"),
    (lambda x, *rest: x, "exactly one tensor"),
    (lambda x, **kw: x, "exactly one tensor"),
    (_def_closure(), "enclosing function (s)"),
])
def test_bodies_qfix_does_not_read_say_why(fn, reason):
    body = read(fn)
    assert isinstance(body, bc.Unreadable)
    assert reason in body.reason


def test_huge_constants_are_refused_in_the_child():
    big = read(eval("lambda x: x * " + "9" * 400))  # a 400-digit int constant
    assert isinstance(big, bc.Unreadable) and "big" in big.reason
    # marshal references make a small blob a tree of 100**3 nodes: the reader stops at a budget
    t: tuple = (1.0,)
    for _ in range(3):
        t = (t,) * 100
    code = (lambda x: x * 2.0).__code__
    fn_code = code.replace(co_consts=(None, t))
    raw = marshal.dumps(fn_code)
    assert len(raw) < 4000
    got = bc.read_lambda({"function": {"class_name": "__lambda__", "config": {"code": base64.b64encode(raw).decode()}}})
    assert isinstance(got, bc.Unreadable) and "larger than a lambda's" in got.reason


def test_a_module_with_an_import_is_refused():
    code = compile("import os\n", "<m>", "exec").replace(co_argcount=1, co_varnames=("x",), co_nlocals=1)
    got = bc.evaluate(bc.disassemble(b64(code)))
    assert isinstance(got, bc.Unreadable) and "imports 'os'" in got.reason


def test_reading_a_body_never_runs_it(tmp_path):
    """A body whose execution would create a file: read, rendered, planned, rewritten-away;
    the file never appears."""
    target = tmp_path / "ran.txt"
    fn = eval(f"lambda x: open({str(target)!r}, 'w').write('ran') or x")
    body = read(fn)
    assert isinstance(body, bc.Unreadable)  # `or` is control flow
    fn2 = eval(f"lambda x: x * len(open({str(target)!r}, 'w').name)")
    body2 = read(fn2)
    assert isinstance(body2, bc.Expr) and "open(" in bc.render(body2)
    assert isinstance(plan(body2, [None, 4], "keras3"), str)
    assert not target.exists()


def test_a_reader_that_crashes_or_hangs_is_a_finding(monkeypatch):
    """The parent survives a real native crash of the child and a child that never answers."""
    crash = "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"
    got = bc.run_reader(b"", crash)
    assert isinstance(got, bc.Unreadable) and "crashed (signal 11)" in got.reason
    monkeypatch.setattr(bc, "TIMEOUT_S", 0.5)
    got = bc.run_reader(b"", "import time; time.sleep(30)")
    assert isinstance(got, bc.Unreadable) and "timed out" in got.reason
    got = bc.run_reader(b"", "print('[1, 2]')")
    assert isinstance(got, bc.Unreadable) and "no result" in got.reason


def test_unknown_opcodes_name_another_python_version():
    dis_ = bc.Disassembly(("x",), 0, 0, (), ({"op": "RESUME", "arg": 0, "val": 0},
                                              {"op": "<121>", "arg": 0, "val": None}))
    got = bc.evaluate(dis_)
    assert isinstance(got, bc.Unreadable) and "another Python version" in got.reason


# --- the table -----------------------------------------------------------------------------


def steps(fn, shape=(None, 8, 8, 4), dialect="keras3"):
    p = plan(read(fn), list(shape), dialect)
    assert isinstance(p, Plan), p
    return [(s.class_name, {k: v for k, v in s.config.items() if k in KEYS}) for s in p.steps]


KEYS = {"scale", "offset", "max_value", "height", "width", "interpolation", "size", "cropping",
        "filters", "units", "keepdims", "target_shape"}


@pytest.mark.parametrize("fn,expected", [
    (lambda x: x / 127.5 - 1.0, [("Rescaling", {"scale": 1 / 127.5, "offset": -1.0})]),
    (lambda x: (x - 127.5) / 127.5, [("Rescaling", {"scale": 1 / 127.5, "offset": -1.0})]),
    (lambda x: 3.0 - x * 2, [("Rescaling", {"scale": -2.0, "offset": 3.0})]),
    (lambda x: tf.math.multiply(x, 0.5), [("Rescaling", {"scale": 0.5, "offset": 0.0})]),  # noqa: F821
    (lambda x: x, [("Activation", {})]),
    (lambda x: tf.nn.relu6(x), [("ReLU", {"max_value": 6.0})]),  # noqa: F821
    (lambda x: keras.activations.relu(x, max_value=4.0), [("ReLU", {"max_value": 4.0})]),  # noqa: F821
    (lambda x: tf.clip_by_value(x, 0.0, 3.0), [("ReLU", {"max_value": 3.0})]),  # noqa: F821
    (lambda x: keras.ops.clip(x, 0, 6), [("ReLU", {"max_value": 6.0})]),  # noqa: F821
    (lambda x: tf.maximum(x, 0.0), [("ReLU", {"max_value": None})]),  # noqa: F821
    (lambda x: tf.nn.sigmoid(x), [("Activation", {})]),  # noqa: F821
    (lambda x: tf.image.resize(x, (16, 12), method="bilinear"),  # noqa: F821
     [("Resizing", {"height": 16, "width": 12, "interpolation": "bilinear"})]),
    (lambda x: x[:, 1:7, 2:6, :], [("Cropping2D", {"cropping": [[1, 1], [2, 2]]})]),
    (lambda x: x[:, 1:-1], [("Cropping2D", {"cropping": [[1, 1], [0, 0]]})]),
    (lambda x: x[:, :, :, 0:2], [("Conv2D", {"filters": 2})]),
    (lambda x: x[..., ::2], [("Conv2D", {"filters": 2})]),
    (lambda x: x[:, 2:, :, 1:], [("Cropping2D", {"cropping": [[2, 0], [0, 0]]}), ("Conv2D", {"filters": 3})]),
    (lambda x: x[:, :, :, :], [("Activation", {})]),
    (lambda x: tf.reduce_mean(x, axis=[1, 2], keepdims=True), [("GlobalAveragePooling2D", {"keepdims": True})]),  # noqa: F821
    (lambda x: tf.reshape(x, (-1, 16, 16)), [("Reshape", {"target_shape": [16, 16]})]),  # noqa: F821
])
def test_table_rows(fn, expected):
    assert steps(fn) == expected


def test_activations():
    assert plan(read(lambda x: x), [None, 4], "keras3").steps[0].config == {"activation": "linear"}
    assert plan(read(lambda x: tf.nn.sigmoid(x)), [None, 4], "keras3").steps[0].config == {"activation": "sigmoid"}  # noqa: F821
    assert plan(read(lambda x: tf.nn.silu(x)), [None, 4], "keras3").steps[0].config == {"activation": "swish"}  # noqa: F821


def test_resize_by_an_integer_factor_is_upsampling_in_tf_keras():
    fn = lambda x: tf.image.resize(x, (16, 16), method="nearest")  # noqa: E731, F821
    assert steps(fn, dialect="tf_keras") == [("UpSampling2D", {"size": [2, 2], "interpolation": "nearest"})]
    assert steps(fn, dialect="keras3")[0][0] == "Resizing"
    assert steps(lambda x: tf.image.resize(x, (12, 12)), dialect="tf_keras")[0][0] == "Resizing"  # noqa: F821


def test_slices_of_other_ranks():
    assert steps(lambda x: x[:, 2:5], shape=(None, 10, 3)) == [("Cropping1D", {"cropping": [2, 5]})]
    assert steps(lambda x: x[:, 0:4], shape=(None, 8)) == [("Dense", {"units": 4})]
    assert steps(lambda x: x[:, :, 1:], shape=(None, 10, 3)) == [("Dense", {"units": 2})]


def test_channel_selection_kernel_selects_exactly():
    p = plan(read(lambda x: x[..., 3:0:-2]), [None, 8, 8, 5], "tf_keras")
    (step,) = p.steps
    kernel = step.weights[0]
    assert kernel.shape == (1, 1, 5, 2) and step.config["trainable"] is False and step.config["use_bias"] is False
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 5)).astype(np.float32)
    np.testing.assert_array_equal(x @ kernel[0, 0], x[..., 3:0:-2])


@pytest.mark.parametrize("fn,shape,why", [
    (lambda x: x * x, (None, 4), "not one of the expressions"),
    (lambda x: x[:, 0], (None, 4, 3), "rank changes"),
    (lambda x: x[0:1], (None, 4), "batch axis"),
    (lambda x: x[:, ::2, :], (None, 8, 3), "step"),
    (lambda x: x[:, 1:3], (None, None, 3), "no static size"),
    (lambda x: x[:, 1:3], None, "shape is not known"),
    (lambda x: tf.clip_by_value(x, -1.0, 1.0), (None, 4), "only a clip from 0"),  # noqa: F821
    (lambda x: tf.image.resize(x, (8, 8), antialias=True), (None, 4, 4, 3), "antialias"),  # noqa: F821
    (lambda x: tf.nn.relu(x, 2.0), (None, 4), "relu"),  # noqa: F821
    (lambda x: tf.math.exp(x), (None, 4), "no built-in layer"),  # noqa: F821
    (lambda x: tf.reshape(x, (4, -1)), (None, 4), "keeps the batch"),  # noqa: F821
])
def test_expressions_outside_the_table_say_why(fn, shape, why):
    got = plan(read(fn), list(shape) if shape else None, "keras3")
    assert isinstance(got, str) and why in got, got


# --- tf_keras op layers as expressions (JSON as tf_keras 2.21 saved it) --------------------

FULL = {"start": None, "stop": None, "step": None}


@pytest.mark.parametrize("cls,function,kwargs,text,first", [
    ("SlicingOpLambda", "__operators__.getitem",
     {"slice_spec": [FULL, FULL, FULL, {"start": 0, "stop": 2, "step": None}]}, "x[:, :, :, 0:2]", "Conv2D"),
    ("SlicingOpLambda", "__operators__.getitem",
     {"slice_spec": [FULL, {"start": 1, "stop": 7, "step": None}, {"start": 2, "stop": 6, "step": None}, FULL]},
     "x[:, 1:7, 2:6, :]", "Cropping2D"),
    ("TFOpLambda", "math.multiply", {"y": 2.0, "name": None}, "tf.math.multiply(x, y=2.0)", "Rescaling"),
    ("TFOpLambda", "math.truediv", {"y": 255.0, "name": None}, "tf.math.truediv(x, y=255.0)", "Rescaling"),
    ("TFOpLambda", "__operators__.add", {"y": 3.0, "name": None}, "tf.__operators__.add(x, y=3.0)",
     "Rescaling"),
    ("TFOpLambda", "math.subtract", {"y": 1.0, "name": None}, "tf.math.subtract(x, y=1.0)", "Rescaling"),
    ("TFOpLambda", "nn.relu6", {}, "tf.nn.relu6(x)", "ReLU"),
    ("TFOpLambda", "image.resize", {"size": [16, 16], "method": "nearest"},
     "tf.image.resize(x, size=[16, 16], method='nearest')", "UpSampling2D"),
    ("TFOpLambda", "clip_by_value", {"clip_value_min": 0.0, "clip_value_max": 6.0},
     "tf.clip_by_value(x, clip_value_min=0.0, clip_value_max=6.0)", "ReLU"),
])
def test_op_layers_read_as_the_same_expressions(cls, function, kwargs, text, first):
    raw = {"class_name": cls, "config": {"name": "op", "function": function},
           "inbound_nodes": [["input_1", 0, 0, kwargs]]}
    e = op_expr(raw)
    assert bc.render(e) == text
    p = plan(e, [None, 8, 8, 4], "tf_keras")
    assert isinstance(p, Plan) and p.steps[0].class_name == first


def test_an_op_of_two_tensors_is_not_rewritten():
    raw = {"class_name": "TFOpLambda", "config": {"function": "math.multiply"},
           "inbound_nodes": [["dense", 0, 0, {"y": ["dense_1", 0, 0], "name": None}]]}
    got = op_expr(raw)
    assert isinstance(got, bc.Unreadable) and "two-input" in got.reason


# --- the rewrites on configs (no TensorFlow; float equivalence: tests/jobs/test_lambda_rewrites.py)


def _lambda_cfg(fn) -> dict:
    return {"function": {"class_name": "__lambda__", "config": {"code": b64(fn.__code__)}}, "arguments": {}}


def _fix(config, code="QF202", mode="ptq"):
    from qfix.jobs.check import Options, context
    from qfix.jobs.fix import apply_fixes
    from qfix.model.cases import empty_weights
    from qfix.targets import load_profile

    opts = Options(target="edgetpu", select=[code], mode=mode)
    return apply_fixes(config, empty_weights(config), "keras3", context(load_profile("edgetpu"), opts), opts,
                       unsafe=False)


def test_a_lambda_inside_a_nested_model_is_rewritten_in_its_scope():
    from qfix.model.cases import functional_config
    from qfix.model.graph import build_graph

    inner = functional_config([("a", (None, 8, 8, 4), "float32")], [("lam", "Lambda", _lambda_cfg(lambda t: t * 0.5),
                                                                     ["a"])], ["lam"], name="inner")
    outer = functional_config([("x", (None, 8, 8, 4), "float32")],
                              [("inner", "Functional", {"__sub": inner}, ["x"])], ["inner"])
    config, _, applied, skipped = _fix(outer)
    assert [f.layer for f in applied] == ["lam"] and not skipped
    (path, layer), = [(p, l) for p, l in build_graph(config, "keras3").walk() if l.name == "lam"]
    assert path == ("inner",) and layer.class_name == "Rescaling" and layer.config["scale"] == 0.5


def test_the_selection_kernel_is_written_into_the_weights():
    from qfix.model.cases import functional_config
    from qfix.model.weights import group_keys, read_vars

    config = functional_config([("x", (None, 8, 8, 5), "float32")],
                               [("lam", "Lambda", _lambda_cfg(lambda t: t[..., 1:4]), ["x"])], ["lam"])
    config["config"]["layers"][1]["build_config"] = {"input_shape": [None, 8, 8, 5]}
    fixed, weights, applied, skipped = _fix(config)
    assert len(applied) == 1 and not skipped
    (kernel,) = read_vars(weights, group_keys(fixed, "keras3")[("lam",)])
    expected = np.zeros((1, 1, 5, 3), np.float32)
    expected[0, 0, [1, 2, 3], [0, 1, 2]] = 1.0
    np.testing.assert_array_equal(kernel, expected)


def test_an_unreadable_lambda_is_reported_with_what_it_computes():
    from qfix.jobs.check import Options, context
    from qfix.model.cases import functional_config
    from qfix.model.graph import build_graph
    from qfix.rules.lint import lint
    from qfix.targets import load_profile
    from qfix.types import Applicability

    config = functional_config([("x", (None, 4), "float32")],
                               [("lam", "Lambda", _lambda_cfg(lambda t: t * t + 1.0), ["x"])], ["lam"])
    (v,) = [f for f in lint(build_graph(config, "keras3"), context(load_profile("edgetpu"), Options()))
            if f.code == "QF202"]
    assert "`t * t + 1.0`" in v.message and v.fix.applicability is Applicability.DISPLAY_ONLY
    assert "def call(self, t): return t * t + 1.0" in v.fix.description
