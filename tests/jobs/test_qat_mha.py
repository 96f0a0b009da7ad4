"""A MultiHeadAttention under `--mode qat` (issue 10, gap 3): left float, the rest trained.

tfmot's 8-bit registry has no MultiHeadAttention (quantize_model: "Layer mha:<class ...
MultiHeadAttention'> is not supported"), and no QuantizeConfig route qfix has checked. As for a
plain hub layer, qfix leaves it out of the annotation (`annotate_float_part`), annotates every
other layer and trains with `quantize_apply`; QF502 and QF506 name the layer and say why. The
fixture `mha_block` (fixtures/build.py): Input((8, 16)) → MultiHeadAttention `mha` → Add
`residual` → LayerNormalization `norm` → Dense `head`, saved by tf_keras and by Keras 3.

On the Edge TPU the float attention ops are the cut (its first op off the TPU), and the verdict
says so: exit 1, with the model trained and converted."""

from __future__ import annotations

import pytest

from qfix.model import tfmot_registry as reg
from qfix.model.archive import read_archive
from qfix.model.graph import build_graph
from qfix.model.rewrites.annotate_float_part import annotate_float_part, plan
from qfix.rules.base import Context
from qfix.rules.tfmot_rejected_layer import TfmotRejectedLayer
from qfix.targets import load_profile
from tests.jobs.test_qat_job import FIXTURES, digest, qat_json

TFK = FIXTURES / "mha_block_tfk.keras"
K3 = FIXTURES / "mha_block_k3.keras"


def test_the_table_keeps_multi_head_attention_float():
    e = reg.entry("MultiHeadAttention")
    assert e.rejected and e.remedy == reg.KEEP_FLOAT and reg.kept_float("MultiHeadAttention")
    assert "no MultiHeadAttention" in e.why and "quantize_apply" in e.advice
    assert not reg.kept_float("Dense") and not reg.kept_float("EinsumDense")  # only the route checked


def test_the_plan_leaves_the_attention_out_and_annotates_the_rest():
    archive = read_archive(TFK)
    p = plan(build_graph(archive.config, "tf_keras"))
    assert p.applies and p.kept_float == ["mha"] and not p.integer_inputs
    assert set(p.annotate) == {"residual", "norm", "head"}
    config, _, _ = annotate_float_part(archive.config, archive.weights_bytes)
    classes = {l.name: l.class_name for l in build_graph(config, "tf_keras")}
    assert classes["mha"] == "MultiHeadAttention"  # not wrapped
    wrapped = {r["config"]["layer"]["config"]["name"] for r in config["config"]["layers"]
               if r["class_name"] == "QuantizeAnnotate"}
    assert wrapped == {"residual", "norm", "head"}


def test_qf502_names_the_attention_as_a_float_warning_not_a_blocker():
    graph = build_graph(read_archive(TFK).config, "tf_keras")
    ctx = Context(target=load_profile("edgetpu"), mode="qat")
    (v,) = [v for v in TfmotRejectedLayer().check(graph, ctx) if v.location.layer == "mha"]
    assert v.severity.value == "warning" and v.fix.applicability.value == "display-only"
    assert "MultiHeadAttention 'mha' stays float in the QAT model" in v.message
    assert "quantize_apply" in v.fix.description


def _assert_trained_with_the_attention_float(code: int, report: dict, translated: bool = False) -> None:
    qat = report["qat"]
    assert qat["trained"] and qat["tfmot_error"] is None and qat["conversion_error"] is None
    assert qat["quantize_call"] == "quantize_apply" and qat["problems"] == []
    rows = {r["name"]: r for r in qat["layers"]}
    assert rows["mha"]["state"] == "float" and "no MultiHeadAttention" in rows["mha"]["detail"]
    assert {rows[n]["state"] for n in ("residual", "norm", "head")} == {"quantized"}
    (qf506,) = [f for f in report["findings"] if f["code"] == "QF506"]
    assert qf506["layer"] == "mha" and "left float by qfix" in qf506["message"]
    eq = report["float_equivalence"]
    if translated:  # Keras 3's and tf_keras's attention kernels round differently (4.8e-7 seen)
        assert eq["max_abs_diff"] <= eq["tolerance"] and report["qat"]["float_culprits"] == {}
    else:
        assert eq["max_abs_diff"] == 0.0  # annotations change no float value
    # The Edge TPU verdict, honestly: the float attention ops are the cut, so exit 1.
    ver = report["verification"]
    assert ver["converted"] and not ver["fully_on_target"]
    assert ver["first_unsupported"]["layer"] == "mha"
    float_ops = {o["op"] for o in ver["ops"] if o["layer"] == "mha" and not o["on_target"]}
    assert {"BATCH_MATMUL", "SOFTMAX"} <= float_ops
    assert any(f["code"] == "QF303" and f["layer"] == "mha" and "BATCH_MATMUL" in f["message"]
               for f in report["findings"])
    assert code == 1 and report["exit_code"] == 1
    # ... and the model still trains: the snippet says how (the placement is the only fault)
    assert "quantize_apply(model)" in qat["snippet"] and "qat.fit(" in qat["snippet"]


@pytest.mark.tf
def test_a_tf_keras_transformer_block_trains_and_converts_with_the_attention_float():
    code, report = qat_json(TFK, "--check")
    _assert_trained_with_the_attention_float(code, report)


@pytest.mark.tf
def test_a_keras3_transformer_block_is_translated_and_trains_with_the_attention_float(tmp_path):
    before = digest(K3)
    code, report = qat_json(K3, "--out-dir", tmp_path)
    assert report["qat"]["translated_from_keras3"]
    _assert_trained_with_the_attention_float(code, report, translated=True)
    assert digest(K3) == before
    # exit 1 is the target's verdict: the rewritten model is still written, for training
    assert report["model_not_written"] is None
    assert [p.name for p in tmp_path.iterdir()] == ["mha_block_k3.qfix.qat.keras"]
