"""How much the float model's outputs vary from sample to sample, and how large they are.

Read by the jobs to judge the int8 numbers (QF408: an output that is the same for every
input carries no signal, whatever its SQNR) and to scale the safe-fix tolerance to the outputs'
magnitude. The float outputs are the ones the fidelity check already computed on the same
calibration (cached per model and calibration in qfix.convert.fidelity); TensorFlow is only
imported there.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from qfix.convert.calibration import Calibration
from qfix.convert.fidelity import _keras_outputs


def output_stats(model: Any, calibration: Calibration) -> list[dict[str, Any]]:
    """One dict per model output, in the model's order: `name`; `peak`, the largest |y| over
    all samples; `spread`, the largest standard deviation across samples of any one output
    element (0.0: the output is the same for every sample); `samples`. Units: the output's."""
    out = []
    for name, y in _keras_outputs(model, calibration).items():  # (N, ...) float64
        peak = float(np.max(np.abs(y))) if y.size else 0.0
        spread = float(np.max(np.std(y, axis=0))) if y.size and len(y) > 1 else 0.0
        out.append({"name": name, "peak": peak, "spread": spread, "samples": int(len(y))})
    return out
