"""Judging the numbers of a verified conversion, beyond the placement: does the int8 model carry
a signal (QF408), did each input keep its precision (QF409, with every input's scale and
zero point for the report), and can a Masking still find its padding (QF411)?

Pure Python over what the worker handed back (the `.tflite` bytes, the float outputs' stats)
and the calibration samples: no TensorFlow here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qfix.model.graph import Graph
from qfix.model.inputs import masking_value
from qfix.rules.coarse_input_scale import CoarseInputScale
from qfix.rules.mask_value_off_grid import MaskValueOffGrid
from qfix.rules.zero_signal import ZeroSignal
from qfix.types import Violation


def input_quantization(tflite: bytes, calib: Any, graph: Graph,
                       declared: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """One row per model input: `name`, `dtype` (the Keras input's), `kind` ("integer" or
    "float"), `tflite_dtype`, `scale` and `zero_point` of the `.tflite` input (0.0 / 0 when it
    is fed raw), `range` (min, max of the calibration samples, the input's units) and `levels`
    (int8 steps over that range, range / scale; None when fed raw or the range is a point).
    `declared`: input name -> the dtype the user's model declares, when a rewrite changed it
    (a folded uint8 input is float32 in the fixed model, yet the user still feeds bytes)."""
    from qfix.targets.tflite import read_tflite

    tfl = read_tflite(tflite)
    tensors = [tfl.tensors[i] for i in tfl.inputs]
    rows = []
    for layer in graph.input_layers():
        name = layer.name
        dtype = (declared or {}).get(name) or layer.out_dtype or "float32"
        t = _tensor_for(name, tensors)
        values = [s[name] for s in calib.samples if name in s]
        lo = float(min(np.min(v) for v in values)) if values else 0.0
        hi = float(max(np.max(v) for v in values)) if values else 0.0
        scale = float(t.scale[0]) if t is not None and t.scale else 0.0
        zero = int(t.zero_point[0]) if t is not None and t.zero_point else 0
        rows.append({
            "name": name, "dtype": dtype,
            "kind": "integer" if np.dtype(dtype).kind in "iub" else "float",
            "tflite_dtype": t.dtype.lower() if t is not None else None,
            "scale": scale, "zero_point": zero, "range": [lo, hi],
            "levels": (hi - lo) / scale if scale and hi > lo else None,
        })
    return rows


def _tensor_for(name: str, tensors: list[Any]) -> Any:
    """The .tflite input tensor of Keras input `name`: signature inputs are named
    `serving_default_<name>:0`; one input matches trivially."""
    for t in tensors:
        base = t.name.split(":")[0]
        if base in (name, f"serving_default_{name}"):
            return t
    return tensors[0] if len(tensors) == 1 else None


def numbers_findings(ver: Any, stats: list[dict[str, Any]], inputs: list[dict[str, Any]],
                     graph: Graph) -> list[Violation]:
    """QF408, QF409 and QF411 for the verified conversion `ver` (qfix.jobs.prove.Verification)."""
    fid = ver.fidelity
    acts = sorted({str(l.config.get("activation")) for _, l in graph.walk()} |
                  {l.class_name.lower() for _, l in graph.walk()})
    out = list(ZeroSignal().judge(fid, stats, bool(fid and fid.synthetic), acts, coarse=ver.qat_reference))
    out += CoarseInputScale().judge(inputs)
    layers = {o.index: o.layer for o in ver.placement.ops}
    maskings = {l.name: masking_value(l) for _, l in graph.walk() if l.class_name == "Masking"}
    out += MaskValueOffGrid().judge(ver.tflite, layers, {n: v for n, v in maskings.items() if v is not None})
    return out
