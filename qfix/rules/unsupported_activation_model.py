"""QF302 unsupported-activation, model side (the source side lives in unsupported_activation.py)."""

from __future__ import annotations

from ..model.build import functional_config
from ..model.opmap import ACTIVATION_OPS, LAYER_OPS, activations_of
from ..types import Applicability
from .base import ModelCase, ModelRule

# How qfix replaces each activation, and how safe that is.
REPLACEMENT = {
    "hard_swish": ("x·relu6(x+3)/6 written so the converter keeps it unfused", Applicability.SAFE),
    "hard_silu": ("x·relu6(x+3)/6 written so the converter keeps it unfused", Applicability.SAFE),
    "leaky_relu": ("PReLU with constant alpha, shared over H and W", Applicability.SAFE),
    "LeakyReLU": ("PReLU with constant alpha, shared over H and W", Applicability.SAFE),
    "gelu": ("the tanh approximation built from TANH and MUL (changes numbers)", Applicability.UNSAFE),
}


class UnsupportedActivationModel(ModelRule):
    """
    What it does: finds activations the target cannot run: hard_swish (HARD_SWISH), gelu
    (GELU), LeakyReLU (LEAKY_RELU), elu, exponential… on the Edge TPU.

    Why is this bad? The Edge TPU compiler stops at the first op it cannot map: everything after
    a hard_swish in MobileNetV3's stem runs on the CPU.

    Example: `Conv2D(16, 3, activation="hard_swish")`, `LeakyReLU(0.1)`

    Use instead: hard_swish → x·relu6(x+3)/6, LeakyReLU → PReLU with constant alpha (exact);
    gelu → tanh approximation (close, not exact).

    Fix safety: safe for hard_swish and LeakyReLU; unsafe for gelu (the report states the float
    delta).

    Targets: edgetpu (and any profile that lacks the op).
    """

    code = "QF302"
    name = "unsupported-activation"
    fix_applicability = Applicability.SAFE

    def check(self, graph, ctx):
        yield from self._spelled_hard_swish(graph, ctx)
        for _, layer in graph.walk():
            found: list[tuple[str, tuple[str, ...]]] = []
            for act in activations_of(layer):
                if act in ACTIVATION_OPS:
                    found.append((act, ACTIVATION_OPS[act]))
            if layer.class_name in ("LeakyReLU", "ELU"):
                found.append((layer.class_name, LAYER_OPS[layer.class_name]))
            for act, ops in found:
                missing = [op for op in ops if not ctx.target.supports(op)]
                if not missing:
                    continue
                how, app = REPLACEMENT.get(act, (None, None))
                yield self.violation(
                    f"{layer.class_name} {layer.name!r} uses {act} ({', '.join(missing)}), which "
                    f"{ctx.target.name} does not run; the graph is cut there",
                    layer.name,
                    fix=f"replace {act} by {how}" if how else None,
                    applicability=app,
                    pointer=layer.pointer,
                )

    def _spelled_hard_swish(self, graph, ctx):
        """`Multiply([x, relu6(x + 3) / 6])` (tf_keras MobileNetV3, hand-written code): no
        activation says hard_swish, but the converter fuses the pattern into HARD_SWISH."""
        from ..model.fixes.hard_swish_spelled import find

        if ctx.target.supports("HARD_SWISH"):
            return
        graphs = [graph] + [layer.subgraph for _, layer in graph.walk() if layer.subgraph is not None]
        for g in graphs:
            for multiply, _ in find(g):
                layer = g.layers[multiply]
                yield self.violation(
                    f"Multiply {multiply!r} spells out hard_swish, x·relu6(x+3)/6: the converter fuses it into "
                    f"HARD_SWISH, which {ctx.target.name} does not run; the graph is cut there",
                    multiply,
                    fix="move the 1/6 onto x, relu6(x+3)·(x/6), which the converter keeps unfused",
                    pointer=layer.pointer,
                )

    CASES = [
        ModelCase(
            "spelled-out-hard-swish",
            functional_config(
                [("x", (1, 8), "float32")],
                [("plus3", "Rescaling", {"scale": 1.0, "offset": 3.0}, ["x"]),
                 ("relu6", "ReLU", {"max_value": 6.0}, ["plus3"]),
                 ("div6", "Rescaling", {"scale": 1 / 6, "offset": 0.0}, ["relu6"]),
                 ("hswish", "Multiply", {}, ["x", "div6"])],
                ["hswish"],
            ),
            fires=True,
            count=1,
        ),
        ModelCase(
            "conv-hard-swish",
            functional_config(
                [("x", (1, 8, 8, 3), "float32")], [("c", "Conv2D", {"filters": 4, "kernel_size": 3,
                                                                    "activation": "hard_silu"}, ["x"])], ["c"]
            ),
            fires=True,
            count=1,
        ),
        ModelCase(
            "leaky-relu-layer",
            functional_config([("x", (1, 8), "float32")], [("l", "LeakyReLU", {"negative_slope": 0.1}, ["x"])], ["l"]),
            fires=True,
            count=1,
        ),
        ModelCase(
            "gelu-dense",
            functional_config([("x", (1, 8), "float32")], [("d", "Dense", {"units": 4, "activation": "gelu"}, ["x"])], ["d"]),
            fires=True,
            count=1,
        ),
        ModelCase(
            "relu6",
            functional_config([("x", (1, 8), "float32")], [("d", "Dense", {"units": 4, "activation": "relu6"}, ["x"])], ["d"]),
            fires=False,
        ),
        ModelCase(
            "hard-swish-fine-on-int8-cpu",
            functional_config(
                [("x", (1, 8, 8, 3), "float32")], [("c", "Conv2D", {"filters": 4, "kernel_size": 3,
                                                                    "activation": "hard_silu"}, ["x"])], ["c"]
            ),
            fires=False,
            targets=("int8",),
        ),
    ]
