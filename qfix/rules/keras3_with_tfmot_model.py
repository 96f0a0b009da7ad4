"""QF501 keras3-with-tfmot, model side (the source side lives in keras3_with_tfmot.py)."""

from __future__ import annotations

from ..model.build import functional_config
from ..types import Applicability
from .base import ModelCase, ModelRule


class Keras3WithTfmotModel(ModelRule):
    """
    What it does: with `--mode qat`, reports a model saved by Keras 3.

    Why is this bad? tensorflow-model-optimization works only with Keras 2 (tf_keras); a Keras 3
    model fails with "'to_quantize' can only either be a keras Sequential or Functional model".

    Example: a `.keras` file whose metadata says keras_version 3.x, passed to quantize_model.

    Use instead: rebuild and train the model with tf_keras (`import tf_keras as keras`,
    `TF_USE_LEGACY_KERAS=1`), or use post-training quantization (qfix's default).

    Fix safety: display-only (reported only for now).

    Targets: all, in --mode qat.
    """

    code = "QF501"
    name = "keras3-with-tfmot"
    fix_applicability = Applicability.DISPLAY_ONLY

    def check(self, graph, ctx):
        if ctx.mode == "qat" and graph.dialect == "keras3":
            yield self.violation(
                f"model {graph.name!r} was saved by Keras 3, but tfmot quantization-aware training needs "
                "a tf_keras (Keras 2) model",
                None,
                fix="rebuild with tf_keras and TF_USE_LEGACY_KERAS=1, or use post-training quantization",
            )

    CASES = [
        ModelCase(
            "keras3-qat",
            functional_config([("x", (1, 4), "float32")], [("d", "Dense", {"units": 2}, ["x"])], ["d"]),
            fires=True,
            mode="qat",
            count=1,
        ),
        ModelCase(
            "keras3-ptq",
            functional_config([("x", (1, 4), "float32")], [("d", "Dense", {"units": 2}, ["x"])], ["d"]),
            fires=False,
        ),
    ]
