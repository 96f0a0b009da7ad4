"""QF101 mixed-dtype-merge, model side (the source side lives in mixed_dtype_merge.py)."""

from __future__ import annotations

from ..model.build import functional_config
from ..model.graph import is_float, is_integer, tensor_dtype
from ..types import Applicability
from .base import ModelCase, ModelRule

MERGES = {"Concatenate", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Dot"}


class MixedDtypeMerge(ModelRule):
    """
    What it does: finds merge layers (Concatenate, Add, Multiply, …) and keras.ops merges whose
    inputs mix an integer tensor (uint8 image, int32 ids) with a float one.

    Why is this bad? Keras 3 promotes silently; tf_keras fails at build time. The converter
    then inserts a CAST op, which int8 targets cannot run (Edge TPU cuts the graph there), and
    the integer values reach the merge unscaled.

    Example: `Concatenate()([frame_uint8_flat, features_f32])`

    Use instead: cast and rescale the integer tensor at the model boundary, or cast explicitly:
    `Concatenate()([Rescaling(1/255)(frame), features])`.

    Fix safety: safe — an explicit cast where the promotion happens today computes the same.

    Targets: all integer targets (edgetpu, int8, tflm, ethos-u).
    """

    code = "QF101"
    name = "mixed-dtype-merge"
    fix_applicability = Applicability.SAFE

    def check(self, graph, ctx):
        for path, layer in graph.walk():
            if layer.class_name not in MERGES or layer.is_input:
                continue
            inner = graph
            for p in path:
                inner = inner.layers[p].subgraph
            dtypes = [(r.layer, tensor_dtype(inner, r)) for r in layer.inputs]
            ints = [(n, d) for n, d in dtypes if is_integer(d)]
            floats = [(n, d) for n, d in dtypes if is_float(d)]
            if ints and floats:
                parts = ", ".join(f"{d} {n!r}" for n, d in ints + floats)
                yield self.violation(
                    f"{layer.class_name} {layer.name!r} merges {parts}: the integer input is "
                    "promoted silently and becomes a CAST op (and unscaled values) on device",
                    layer.name,
                    fix="insert an explicit cast of the integer input before the merge",
                    pointer=layer.pointer,
                )

    CASES = [
        ModelCase(
            "uint8-concat-float",
            functional_config(
                [("frame", (None, 4), "uint8"), ("feat", (None, 4), "float32")],
                [("cat", "Concatenate", {"axis": -1}, ["frame", "feat"], "float32", (None, 8))],
                ["cat"],
            ),
            fires=True,
            count=1,
        ),
        ModelCase(
            "float-concat-float",
            functional_config(
                [("a", (None, 4), "float32"), ("b", (None, 4), "float32")],
                [("cat", "Concatenate", {"axis": -1}, ["a", "b"], "float32", (None, 8))],
                ["cat"],
            ),
            fires=False,
        ),
        ModelCase(
            "cast-before-concat",
            functional_config(
                [("frame", (None, 4), "uint8"), ("feat", (None, 4), "float32")],
                [("c", "Cast", {"dtype": "float32"}, ["frame"]),
                 ("cat", "Concatenate", {"axis": -1}, ["c", "feat"], "float32", (None, 8))],
                ["cat"],
            ),
            fires=False,
        ),
    ]
