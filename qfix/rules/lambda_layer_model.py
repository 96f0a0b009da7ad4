"""QF202 lambda-layer, model side (the source side lives in lambda_layer.py)."""

from __future__ import annotations

from ..model.build import functional_config
from ..types import Applicability
from .base import ModelCase, ModelRule


class LambdaLayerModel(ModelRule):
    """
    What it does: finds Lambda layers in a model file.

    Why is this bad? A Lambda stores Python bytecode. Loading it means running code from the
    file (Keras refuses in safe mode), its bytecode only loads on the Python version that wrote
    it, and tfmot cannot quantize it. qfix never runs it.

    Example: `Lambda(lambda t: t * 2.0)`

    Use instead: a built-in layer (Rescaling, ReLU(max_value=6), Resizing…) or a registered
    custom layer. `qfix train.py` rewrites simple Lambda bodies in the source.

    Fix safety: display-only on the model (the body is never decompiled); pass
    `--trust-lambdas` to convert a model you trust as it is.

    Targets: all.
    """

    code = "QF202"
    name = "lambda-layer"
    fix_applicability = Applicability.DISPLAY_ONLY

    def check(self, graph, ctx):
        trusted = ctx.options.get("trust_lambdas", False)
        for _, layer in graph.walk():
            if layer.class_name == "Lambda":
                fn = layer.config.get("function")
                kind = "Python bytecode" if isinstance(fn, (list, dict)) else "a function reference"
                tail = "loaded because --trust-lambdas was given" if trusted else \
                    "qfix never runs it; the model cannot be converted without --trust-lambdas"
                yield self.violation(
                    f"Lambda {layer.name!r} holds {kind}; {tail}",
                    layer.name,
                    fix="replace the Lambda with a built-in layer in the code that builds the model",
                    pointer=layer.pointer,
                )

    CASES = [
        ModelCase(
            "lambda",
            functional_config(
                [("x", (None, 4), "float32")],
                [("lam", "Lambda", {"function": {"class_name": "__lambda__", "config": {"code": "4wEA"}}}, ["x"])],
                ["lam"],
            ),
            fires=True,
            count=1,
        ),
        ModelCase(
            "builtin",
            functional_config([("x", (None, 4), "float32")], [("r", "ReLU", {}, ["x"])], ["r"]),
            fires=False,
        ),
    ]
