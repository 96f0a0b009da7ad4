"""QF301 dynamic-shape, model side (the source side lives in dynamic_shape.py)."""

from __future__ import annotations

from ..model.build import functional_config
from ..types import Applicability, Severity
from .base import ModelCase, ModelRule


class DynamicShapeModel(ModelRule):
    """
    What it does: finds model inputs with unknown (None) dimensions, for targets that need
    static shapes (Edge TPU, TFLite Micro, Ethos-U).

    Why is this bad? Dynamic tensors are refused outright ("Attempting to use a delegate that
    only supports static-sized tensors"); a dynamic batch also leaves SHAPE → STRIDED_SLICE →
    PACK chains (EfficientNet's squeeze-excite, MobileNetV3) that the Edge TPU cannot map.

    Example: `Input((None, None, 3))`

    Use instead: `Input((224, 224, 3), batch_size=1)`.

    Fix safety: safe for the batch dimension (qfix's recipe converts with batch 1); a spatial
    size must be chosen by you, so it is display-only.

    Targets: edgetpu, tflm, ethos-u (static shapes); int8 CPU accepts dynamic shapes.
    """

    code = "QF301"
    name = "dynamic-shape"
    fix_applicability = Applicability.SAFE

    def check(self, graph, ctx):
        if not ctx.target.static_shapes:
            return
        for inp in graph.input_layers():
            shape = inp.out_shape
            if shape is None:
                continue
            spatial = [i for i, d in enumerate(shape) if d is None and i > 0]
            if spatial:
                yield self.violation(
                    f"input {inp.name!r} has shape {_fmt(shape)}: dimension(s) {spatial} are unknown and "
                    f"{ctx.target.name} needs static shapes",
                    inp.name,
                    fix="give the input a fixed size (e.g. the training resolution)",
                    applicability=Applicability.DISPLAY_ONLY,
                    pointer=inp.pointer,
                )
            elif shape and shape[0] is None and ctx.target.batch:
                yield self.violation(
                    f"input {inp.name!r} has a dynamic batch {_fmt(shape)}; {ctx.target.name} runs batch "
                    f"{ctx.target.batch} (qfix's recipe fixes it at conversion)",
                    inp.name,
                    fix=f"fix the batch dimension to {ctx.target.batch}",
                    severity=Severity.WARNING,
                    pointer=inp.pointer,
                )

    CASES = [
        ModelCase(
            "dynamic-spatial",
            functional_config([("x", (None, None, None, 3), "float32")], [("r", "ReLU", {}, ["x"])], ["r"]),
            fires=True,
            count=1,
        ),
        ModelCase(
            "static",
            functional_config([("x", (1, 8, 8, 3), "float32")], [("r", "ReLU", {}, ["x"])], ["r"]),
            fires=False,
        ),
        ModelCase(
            "dynamic-ok-on-int8-cpu",
            functional_config([("x", (None, None, None, 3), "float32")], [("r", "ReLU", {}, ["x"])], ["r"]),
            fires=False,
            targets=("int8",),
        ),
    ]


def _fmt(shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"
