"""Check a `.tflite` model op by op against a target profile and predict its placement.

The profile says what each op needs (data); this module holds the predicates those rules name
and the placement model (`prefix` = single cut, `islands`, `all_or_nothing`). Every tensor's
dtype is scanned, not just op names: TFLITE_BUILTINS_INT8 still lets the converter leave
float islands (DEQUANTIZE -> float op -> QUANTIZE).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

from qfix.targets.argtypes import Activation, DType, Index, TensorRef
from qfix.targets.op_version import own_version
from qfix.targets.tflite import FLOAT_DTYPES, Op, Tensor, TfliteModel, op_layer
from qfix.targets import Profile, Rule

# ---- predicates: (model, op, **args) -> None when the constraint holds, else what breaks it.
# Their signatures declare the arguments' types (qfix.targets.argtypes): a profile is checked
# against them before anything converts (qfix.targets.schema).

Predicate = Callable[..., "str | None"]
NO_LAYER = "from no Keras layer (its tensors carry no layer's name: an op the converter added)"


def from_layer(layer: str | None) -> str:
    """Where an op comes from, in a finding or a report line: its layer, or why none is named."""
    return f"from layer {layer!r}" if layer is not None else NO_LAYER


def _tensor(model: TfliteModel, op: Op, ref: str) -> Tensor | None:
    """'input0' / 'output1' -> that tensor of the op (None if absent or optional)."""
    kind, idx = (op.inputs, int(ref[5:])) if ref.startswith("input") else (op.outputs, int(ref[6:]))
    if idx >= len(kind) or kind[idx] < 0:
        return None
    return model.tensors[kind[idx]]


def _const(model: TfliteModel, op: Op, input_idx: int) -> np.ndarray | None:
    if input_idx >= len(op.inputs) or op.inputs[input_idx] < 0:
        return None
    return model.tensors[op.inputs[input_idx]].const_value()


def _effective_rank(shape: tuple[int, ...]) -> int:
    dims = list(shape)
    while len(dims) > 1 and dims[0] == 1:
        dims.pop(0)
    return len(dims)


def attr_eq(model: TfliteModel, op: Op, a: str, b: str) -> str | None:
    va, vb = op.options.get(a), op.options.get(b)
    return None if va == vb else f"{a}={va}, {b}={vb}"


def attr_in(model: TfliteModel, op: Op, name: str, values: list[Any]) -> str | None:
    v = op.options.get(name)
    return None if v is None or v in values else f"{name}={v}"


def attr_not_in(model: TfliteModel, op: Op, name: str, values: list[Any]) -> str | None:
    v = op.options.get(name)
    return f"{name}={v}" if v in values else None


def fused_activation_in(model: TfliteModel, op: Op, values: list[Activation]) -> str | None:
    v = op.options.get("fused_activation_function", "NONE")
    return None if v in values else f"fused activation {v}"


def effective_rank_le(model: TfliteModel, op: Op, tensor: TensorRef, n: int) -> str | None:
    t = _tensor(model, op, tensor)
    if t is None:
        return None
    return None if _effective_rank(t.shape) <= n else f"{tensor} shape {list(t.shape)}"


def num_elements_le(model: TfliteModel, op: Op, tensor: TensorRef, n: int) -> str | None:
    t = _tensor(model, op, tensor)
    if t is None:
        return None
    size = int(np.prod(t.shape)) if t.shape else 1
    return None if size <= n else f"{tensor} has {size} elements"


def weight_sum_le(model: TfliteModel, op: Op, n: int, n_int16: int | None = None) -> str | None:
    """The sum of |w - zero_point| over one output channel's integer weights (input 1) is at most
    `n` for every channel; `n_int16` when the op's input is int16 (Vela: "The sum of absolute
    weights cannot exceed 8323072", 2130706432 for a 16-bit IFM on the U85). The output channel
    is the last axis of a DEPTHWISE_CONV_2D filter, the first of the others (TFLite layouts
    [O,H,W,I], [1,H,W,O], [O,I]); Vela observed per channel: 9,353,567 for Dense(16) over
    147,456 inputs, the tensor's total being 16x that."""
    w = _tensor(model, op, "input1")
    data = _tensor(model, op, "input2" if op.name == "TRANSPOSE_CONV" else "input0")  # [shape, w, x, b]
    values = None if w is None else w.const_value()
    if values is None or w.dtype not in ("int8", "uint8") or values.ndim < 2:
        return None
    axis = values.ndim - 1 if op.name == "DEPTHWISE_CONV_2D" else 0
    zp = np.asarray(w.zero_point or [0], dtype=np.int64)
    if zp.size > 1:  # per channel, along the output axis
        zp = zp.reshape([-1 if i == axis else 1 for i in range(values.ndim)])
    sums = np.abs(values.astype(np.int64) - zp).sum(axis=tuple(i for i in range(values.ndim) if i != axis))
    limit = n_int16 if n_int16 is not None and data is not None and data.dtype == "int16" else n
    worst = int(sums.max())
    return None if worst <= limit else f"the absolute sum of one output channel's weights is {worst} > {limit}"


def size_warn(model: TfliteModel, op: Op, tensor: TensorRef, elements: int) -> str | None:
    return num_elements_le(model, op, tensor, elements)


def spatial_size_le(model: TfliteModel, op: Op, tensor: TensorRef, pixels: int) -> str | None:
    """H x W of an NHWC tensor (rank 4) at most `pixels`; other ranks pass."""
    t = _tensor(model, op, tensor)
    if t is None or len(t.shape) != 4:
        return None
    h, w = t.shape[1], t.shape[2]
    return None if h * w <= pixels else f"{tensor} is {h}x{w} ({h * w} pixels, limit {pixels})"


def _axes(model: TfliteModel, op: Op, axes_input: Index, data_input: Index) -> tuple[list[int], int] | None:
    axes = _const(model, op, axes_input)
    data = _tensor(model, op, f"input{data_input}")
    if axes is None or data is None:
        return None
    rank = len(data.shape)
    return sorted({int(a) % rank for a in np.ravel(axes)}) if rank else [], rank


def axes_exclude(model: TfliteModel, op: Op, dims: list[int], axes_input: Index = 1, data_input: Index = 0) -> str | None:
    found = _axes(model, op, axes_input, data_input)
    if found is None:
        return "axes are not a compile-time constant"
    axes, rank = found
    bad = [a for a in axes if a in {d % rank for d in dims}] if rank else []
    return f"reduces axes {axes}" if bad else None


def dim_multiple_of_if_reduced(model: TfliteModel, op: Op, axis: int, k: int) -> str | None:
    found = _axes(model, op, 1, 0)
    data = _tensor(model, op, "input0")
    if found is None or data is None or not data.shape:
        return None
    axes, rank = found
    ax = axis % rank
    return f"reduces axis {ax} of size {data.shape[ax]}" if ax in axes and data.shape[ax] % k else None


def const_input_all_eq(model: TfliteModel, op: Op, input: Index, value: int) -> str | None:
    data = _const(model, op, input)
    if data is None:
        return f"input {input} is not a compile-time constant"
    return None if np.all(data == value) else f"input {input} = {np.ravel(data).tolist()}"


def const_inputs_zero_pad(model: TfliteModel, op: Op) -> str | None:
    consts = [model.tensors[i] for i in op.inputs if i >= 0 and model.tensors[i].is_const]
    if not consts:
        return None
    if len(op.inputs) != 2:
        return f"{len(consts)} constant input(s) among {len(op.inputs)} inputs"
    # A quantized all-zero tensor stores its zero point, not 0.
    t = consts[0]
    data = t.const_value()
    zero = t.zero_point[0] if t.zero_point else 0
    return None if data is not None and np.all(data == zero) else f"constant input '{t.name}' is not all zeros"


def pad_excludes_dims(model: TfliteModel, op: Op, dims: list[int]) -> str | None:
    pads = _const(model, op, 1)
    if pads is None:
        return "paddings are not a compile-time constant"
    pads = np.asarray(pads).reshape(-1, 2)
    bad = [d for d in dims if d < len(pads) and np.any(pads[d] != 0)]
    return f"pads dimension(s) {bad}" if bad else None


def dtype_in(model: TfliteModel, op: Op, tensor: TensorRef, values: list[DType]) -> str | None:
    t = _tensor(model, op, tensor)
    return None if t is None or t.dtype in values else f"{tensor} is {t.dtype}"


def scale_gt(model: TfliteModel, op: Op, tensor: TensorRef, value: float) -> str | None:
    """Every quantization scale of the tensor is above `value` (an unquantized tensor passes)."""
    t = _tensor(model, op, tensor)
    if t is None or not t.scale or min(t.scale) > value:
        return None
    return f"{tensor} scale {min(t.scale):.3g}"


def const_innermost_only(model: TfliteModel, op: Op, input: Index) -> str | None:
    t = _tensor(model, op, f"input{input}")
    if t is None:
        return None
    outer = [d for d in t.shape[:-1] if d > 1]
    return f"input {input} shape {list(t.shape)}" if outer else None


def attrs_le(model: TfliteModel, op: Op, names: list[str], n: int, unless: dict[str, Any] | None = None) -> str | None:
    """Each option in `names` (e.g. stride_w, stride_h) is at most `n`, unless every option of
    `unless` has the value it gives (Vela: "Stride>3 is only supported IF (dilation = 1 AND
    padding = VALID)")."""
    over = [f"{a}={op.options[a]}" for a in names if isinstance(op.options.get(a), int) and op.options[a] > n]
    if not over or unless and all(op.options.get(k) == v for k, v in unless.items()):
        return None
    return ", ".join(over)


def no_scalar_activations(model: TfliteModel, op: Op) -> str | None:
    """No activation (non-constant) tensor of the op is a scalar, shape () (Vela 5.2.0:
    "Operation has shapeless tensor" on the STRIDED_SLICE that picks a dynamic batch out of a
    SHAPE, and on the PACK that reads it)."""
    t = next((t for t in _op_activations(model, op) if not t.shape), None)
    return None if t is None else f"tensor '{t.name}' is a scalar"


def _padding(model: TfliteModel, op: Op) -> tuple[int, int]:
    """Total (H, W) padding a SAME-padded conv or pool adds (TF's rule: max((out-1)*stride +
    (kernel-1)*dilation + 1 - in, 0)); (0, 0) for VALID or unknown shapes."""
    ifm, ofm = _tensor(model, op, "input0"), _tensor(model, op, "output0")
    if op.options.get("padding") != "SAME" or ifm is None or ofm is None or len(ifm.shape) != 4 or len(ofm.shape) != 4:
        return 0, 0
    o = op.options
    if "filter_height" in o:
        kh, kw = o["filter_height"], o["filter_width"]
    else:
        w = _tensor(model, op, "input1")
        if w is None or len(w.shape) != 4:
            return 0, 0
        kh, kw = w.shape[1], w.shape[2]
    pads = []
    for i, k, s, d in ((1, kh, o.get("stride_h", 1), o.get("dilation_h_factor", 1)),
                       (2, kw, o.get("stride_w", 1), o.get("dilation_w_factor", 1))):
        pads.append(max((ofm.shape[i] - 1) * s + (k - 1) * d + 1 - ifm.shape[i], 0))
    return pads[0], pads[1]


def stride_le_unless_unpadded(model: TfliteModel, op: Op, n: int) -> str | None:
    """Strides of at most `n`, unless the op adds no padding and has no dilation (Vela U55/U65:
    "Stride>3 is only supported IF (dilation = 1 AND padding = VALID)"; a SAME op whose padding
    comes to zero counts as VALID: Vela 5.2.0 placed a SAME 4x4/4 conv and a SAME 3x3/4 pool
    on a 16x16 map on the NPU, and the same ops with padding on the CPU)."""
    o = op.options
    strides = (o.get("stride_w", 1), o.get("stride_h", 1))
    if max(strides) <= n:
        return None
    pad = _padding(model, op)
    if (o.get("dilation_w_factor", 1), o.get("dilation_h_factor", 1)) == (1, 1) and pad == (0, 0):
        return None
    what = f"stride {strides[0]}x{strides[1]}"
    return f"{what} with padding {pad[0]}x{pad[1]}" if pad != (0, 0) else f"{what} with dilation"


def _hwc(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """H, W, C of a shape seen as 4-D NHWC (Vela's view: missing leading dimensions are 1)."""
    return tuple((1, 1, 1, *shape)[-3:])  # type: ignore[return-value]


def batch_one(model: TfliteModel, op: Op, tensor: TensorRef = "input0") -> str | None:
    """The tensor's batch, the product of its dimensions before the last three, is 1."""
    t = _tensor(model, op, tensor)
    if t is None or len(t.shape) < 4:
        return None
    batch = int(np.prod(t.shape[:-3]))
    return None if batch == 1 else f"{tensor} {list(t.shape)} has batch {batch}"


def depth_reduction_needs_unit(model: TfliteModel, op: Op) -> str | None:
    """A reduction over the last (depth) axis leaves H, W or C of the input at 1 (Vela:
    "Reduction over depth is only supported if any of h,w,c == 1")."""
    found = _axes(model, op, 1, 0)
    data = _tensor(model, op, "input0")
    if found is None or data is None or not data.shape:
        return None
    axes, rank = found
    if rank - 1 not in axes or 1 in _hwc(data.shape):
        return None
    return f"reduces the depth of input0 {list(data.shape)}"


def _resize_scales(model: TfliteModel, op: Op) -> tuple[float, float] | None:
    """(H scale, W scale) of a RESIZE_* op as Vela defines them: OFM/IFM, or (OFM-1)/(IFM-1)
    with align_corners; None when the op needs no scaling (IFM 1x1, or IFM shape == OFM shape)."""
    ifm, ofm = _tensor(model, op, "input0"), _tensor(model, op, "output0")
    if ifm is None or ofm is None or len(ifm.shape) != 4 or len(ofm.shape) != 4:
        return None
    (ih, iw), (oh, ow) = ifm.shape[1:3], ofm.shape[1:3]
    if (ih == iw == 1) or ifm.shape == ofm.shape:
        return None
    if op.options.get("align_corners"):
        return ((oh - 1) / (ih - 1) if ih > 1 else 1.0), ((ow - 1) / (iw - 1) if iw > 1 else 1.0)
    return oh / ih, ow / iw


def resize_scale_in(model: TfliteModel, op: Op, scales: list[int], half_pixel_scales: list[int]) -> str | None:
    """The resize scales H and W alike by one of `scales` (`half_pixel_scales` with
    half_pixel_centers); a scale may differ only along a dimension that stays 1 (Vela U55/U65)."""
    found = _resize_scales(model, op)
    if found is None:
        return None
    h, w = found
    ifm, ofm = _tensor(model, op, "input0"), _tensor(model, op, "output0")
    if h != w:
        if ofm.shape[2] == ifm.shape[2] == 1:  # type: ignore[union-attr]
            w = h
        elif ofm.shape[1] == ifm.shape[1] == 1:  # type: ignore[union-attr]
            h = w
        else:
            return f"H scale {h:g} differs from W scale {w:g}"
    allowed = half_pixel_scales if op.options.get("half_pixel_centers") else scales
    if h in allowed:
        return None
    return f"scale factor {h:g}" + (" with half_pixel_centers" if allowed is half_pixel_scales else "")


def resize_scale_le(model: TfliteModel, op: Op, max_scale: int, max_align_corners: int,
                    power_of_two: bool = False) -> str | None:
    """Each upscaling factor (H, W) is at most `max_scale` (`max_align_corners` with
    align_corners) and, with `power_of_two`, an integer power of two (Vela U85)."""
    found = _resize_scales(model, op)
    if found is None:
        return None
    top = max_align_corners if op.options.get("align_corners") else max_scale
    for dim, scale in zip("HW", found):
        if scale < 1 and not power_of_two:
            continue  # Vela 5.2.0 placed a 0.5x nearest resize on the U85 NPU (and a 0.5x bilinear one on the CPU)
        if scale > top or power_of_two and (scale != int(scale) or int(scale) & (int(scale) - 1)):
            return f"{dim} scale factor {scale:g}"
    return None
# -- input counts, ranks and dtypes: the shape of an op the GPU delegate's checks look at
# (tensorflow/lite/tools/versioning/gpu_compatibility.cc). "Runtime" inputs are the
# non-constant ones that are present (an optional input left out is -1).


def _present(model: TfliteModel, op: Op) -> list[Tensor]:
    return [model.tensors[i] for i in op.inputs if i >= 0]


def _constant(model: TfliteModel, t: Tensor) -> bool:
    """A constant, or the DEQUANTIZE of one: float16 weights reach their op through a
    DEQUANTIZE that TFLite runs once and a delegate folds (the GPU delegate's
    FP16GraphPartitionHelper hands the op the float16 constant itself)."""
    if t.is_const:
        return True
    producer = model.producer(t.index)
    return (producer is not None and producer.name == "DEQUANTIZE"
            and all(i >= 0 and model.tensors[i].is_const for i in producer.inputs))


def runtime_inputs_le(model: TfliteModel, op: Op, n: int) -> str | None:
    got = sum(not _constant(model, t) for t in _present(model, op))
    return None if got <= n else f"{got} runtime input(s)"


def const_inputs_le(model: TfliteModel, op: Op, n: int) -> str | None:
    got = sum(_constant(model, t) for t in _present(model, op))
    return None if got <= n else f"{got} constant input(s)"


def inputs_count_in(model: TfliteModel, op: Op, values: list[int]) -> str | None:
    got = len(_present(model, op))
    return None if got in values else f"{got} input(s)"


def input_is_const(model: TfliteModel, op: Op, input: Index) -> str | None:
    t = _tensor(model, op, f"input{input}")
    return None if t is None or _constant(model, t) else f"input {input} is not a compile-time constant"


def dtype_not_in(model: TfliteModel, op: Op, tensor: TensorRef, values: list[DType]) -> str | None:
    t = _tensor(model, op, tensor)
    return f"{tensor} is {t.dtype}" if t is not None and t.dtype in values else None


def input_not_const(model: TfliteModel, op: Op, input: Index) -> str | None:
    t = _tensor(model, op, f"input{input}")
    return f"input {input} is a constant" if t is not None and _constant(model, t) else None


def rank_in(model: TfliteModel, op: Op, tensor: TensorRef, values: list[int]) -> str | None:
    t = _tensor(model, op, tensor)
    return None if t is None or len(t.shape) in values else f"{tensor} has rank {len(t.shape)}"


def dim_in(model: TfliteModel, op: Op, tensor: TensorRef, axis: int, values: list[int]) -> str | None:
    t = _tensor(model, op, tensor)
    if t is None or not t.shape or not -len(t.shape) <= axis < len(t.shape):
        return None
    return None if t.shape[axis] in values else f"{tensor} shape {list(t.shape)}"


def dtype_pair_in(model: TfliteModel, op: Op, pairs: list[list[DType]]) -> str | None:
    """(input0 dtype, output0 dtype) is one of `pairs` (CAST's supported conversions)."""
    a, b = _tensor(model, op, "input0"), _tensor(model, op, "output0")
    if a is None or b is None:
        return None
    return None if [a.dtype, b.dtype] in [list(p) for p in pairs] else f"{a.dtype} -> {b.dtype}"


def custom_code_in(model: TfliteModel, op: Op, values: list[str]) -> str | None:
    return None if op.custom_code in values else f"custom op '{op.custom_code}'"


def attrs_not_all(model: TfliteModel, op: Op, names: list[str]) -> str | None:
    """Not every one of the boolean options `names` is set (RESIZE_BILINEAR's align_corners
    with half_pixel_centers)."""
    return "both " + " and ".join(names) if all(op.options.get(n) for n in names) else None


def depth_multiplier_single_channel(model: TfliteModel, op: Op) -> str | None:
    """DEPTHWISE_CONV_2D: a depth_multiplier other than 1 only on a one-channel input."""
    t = _tensor(model, op, "input0")
    m = op.options.get("depth_multiplier", 1)
    if t is None or not t.shape or m in (None, 0, 1) or t.shape[-1] == 1:
        return None
    return f"depth_multiplier={m} on {t.shape[-1]} input channels"


def one_input_covers_other(model: TfliteModel, op: Op) -> str | None:
    """MUL with inputs of equal rank: one of them is at least as large in every dimension
    (no outer-product broadcast, which the GPU delegate leaves to a convolution)."""
    a, b = _tensor(model, op, "input0"), _tensor(model, op, "input1")
    if a is None or b is None or len(a.shape) != len(b.shape):
        return None
    a_smaller = any(x < y for x, y in zip(a.shape, b.shape))
    b_smaller = any(y < x for x, y in zip(a.shape, b.shape))
    return f"input shapes {list(a.shape)} and {list(b.shape)}" if a_smaller and b_smaller else None


PREDICATES: dict[str, Predicate] = {
    f.__name__: f
    for f in (attr_eq, attr_in, attr_not_in, fused_activation_in, effective_rank_le, num_elements_le,
              size_warn, spatial_size_le, axes_exclude, dim_multiple_of_if_reduced, const_input_all_eq,
              const_inputs_zero_pad, pad_excludes_dims, const_innermost_only, dtype_in, attrs_le, batch_one,
              depth_reduction_needs_unit, resize_scale_in, resize_scale_le, stride_le_unless_unpadded,
              no_scalar_activations,
              runtime_inputs_le, const_inputs_le, inputs_count_in, input_is_const, input_not_const, dtype_not_in,
              rank_in, dim_in, dtype_pair_in, custom_code_in, attrs_not_all, depth_multiplier_single_channel,
              one_input_covers_other, scale_gt, weight_sum_le)
}


# ---- results --------------------------------------------------------------------------------


@dataclass
class OpPlacement:
    index: int
    op: str
    version: int
    layer: str | None
    on_target: bool
    status: str  # in the target's own words (compiler status strings for Edge TPU)
    reason: str  # plain words: why
    boundary: bool = False  # I/O QUANTIZE/DEQUANTIZE: never cuts, never blocks
    fix_hint: str | None = None
    source: str | None = None
    confidence: str | None = None
    # Off target only because another op is (after a single cut, or an all-or-nothing failure):
    # no cause of its own.
    spread: bool = False


@dataclass
class Placement:
    target: str
    ops_total: int
    ops_on_target: int
    fully_on_target: bool
    first_unsupported: dict[str, Any] | None
    float_tensors: list[str]
    float_islands: list[dict[str, Any]]  # each float tensor with the op that produced it
    ops: list[OpPlacement]
    dynamic_tensors: list[str]
    warnings: list[str] = field(default_factory=list)
    # Set when the toolchain rejects the whole file (an op version it cannot parse): why.
    model_failure: str | None = None
    # Islands targets whose profile names where an op that misses goes (`statuses.fallback`,
    # e.g. "falls back to the CPU"): one {index, op, layer, status, reason} per such op.
    fallback: list[dict[str, Any]] = field(default_factory=list)
    # The profile's placement ("prefix", "islands", "all_or_nothing"): whether an op off target
    # cuts the graph, for the report's wording.
    spread: str = "prefix"
    # The recipe makes an integer model: float tensors are islands worth counting (a float16
    # target computes in float throughout).
    integer: bool = True

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Verdict:
    ok: bool
    status: str  # status key
    reason: str
    source: str | None = None
    confidence: str | None = None
    fix_hint: str | None = None


# ---- the check ------------------------------------------------------------------------------


def check(model: TfliteModel, profile: Profile, layer_names: Iterable[str] = (),
          output_layers: dict[int, str] | None = None) -> Placement:
    """Judge every op of `model` against `profile` and spread failures by its placement.

    output_layers: graph output tensor index -> the Keras layer that computes it (from the
    signature's output names), for ops whose own tensor names are generic.
    """
    names = set(layer_names)
    boundary = {op.index for op in model.ops if _is_boundary(model, op)}
    warnings: list[str] = []
    layers = _op_layers(model, names, output_layers or {})

    verdicts = [_judge(model, op, profile, warnings, layers[op.index]) for op in model.ops]
    placements = [
        OpPlacement(op.index, op.name, op.version, layers[op.index], v.ok,
                    profile.status(v.status), v.reason, op.index in boundary, v.fix_hint,
                    v.source, v.confidence)
        for op, v in zip(model.ops, verdicts)
    ]
    for p in placements:
        if p.boundary:
            _boundary_status(model, model.ops[p.index], p, profile)
    culprit = _blame_versions(model, profile, placements)

    first = next((p for p in placements if not p.on_target and not p.boundary), None)
    failure = None
    broken = _semantics_broken(model) if profile.checks_semantics and culprit is None else None
    if broken is not None:
        op, why = broken
        first = placements[op.index]
        tool = profile.toolchain.get("name", profile.id)
        failure = f"{tool} rejects the whole file: {op.name} (op {op.index}) {why}, so no op runs on {profile.name}"
        for p in placements:
            p.on_target, p.status = False, profile.status("rejected")
            p.reason = (f"{why} (TFLite semantics)" if p.index == op.index
                        else f"the file is rejected: {op.name} (op {op.index}) {why}")
    elif culprit is not None and profile.version_failure == "model":
        first = culprit
        tool = profile.toolchain.get("name", profile.id)
        # No layer named here: attribution by class (qfix.jobs.prove) may still name it.
        failure = (f"{tool} rejects the whole file ('{profile.status('unparsable')}'), "
                   f"so no op runs on {profile.name}")
        for p in placements:
            p.on_target = False
            p.status = profile.status("unparsable")
            if p.op != culprit.op:  # ops of the rejected type already say why
                p.reason = f"the model is not parsed: {culprit.op} v{culprit.version} (op {culprit.index})"
    elif first is not None and profile.placement == "prefix":
        # Single cut: every later op that would map runs on the CPU instead.
        for p in placements[first.index + 1:]:
            if p.on_target and not p.boundary:
                p.on_target = False
                p.spread = True
                p.status = profile.status("after_cut")
                p.reason = f"after the cut at op {first.index} ({first.op}): the compiler maps one segment only"
    elif first is not None and profile.placement == "all_or_nothing":
        for p in placements:
            if p.on_target:
                p.on_target = False
                p.spread = True
                p.reason = f"the model fails on op {first.index} ({first.op}), so nothing runs"

    # A float tensor is an island only where the recipe makes an integer model; a float16 or
    # float recipe (the GPU delegate) computes in float throughout.
    floats, islands = _float_tensors(model, boundary, layers) if profile.integer else ([], [])
    if any(p.boundary and _touches_float(model, model.ops[p.index]) for p in placements):
        warnings.append("float model input/output: the boundary QUANTIZE/DEQUANTIZE runs on the CPU in float")
    dynamic = [t.name for t in _activations(model) if t.is_dynamic]
    if dynamic and not profile.static_shapes:
        warnings.append(f"{len(dynamic)} tensor(s) have dynamic dimensions; resize inputs before use")
    _model_warnings(model, profile, warnings)
    fallback = []
    if profile.placement == "islands" and "fallback" in profile.statuses:
        fallback = [{"index": p.index, "op": p.op, "layer": p.layer, "status": profile.status("fallback"),
                     "reason": p.reason} for p in placements if not p.on_target and not p.boundary]
        _partition_warning(model, profile, placements, warnings)

    return Placement(
        target=profile.id,
        ops_total=len(placements),
        ops_on_target=sum(p.on_target for p in placements),
        # A target that computes in float too (TFLM's float kernels) runs an island: listed, and
        # QF405 warns of its cost, but the model does run fully there.
        fully_on_target=first is None and not (floats and not computes_float(profile)),
        first_unsupported=None if first is None else {
            "op": first.op, "layer": first.layer, "reason": first.reason,
            "index": first.index, "status": first.status, "fix_hint": first.fix_hint,
        },
        float_tensors=floats,
        float_islands=islands,
        ops=placements,
        dynamic_tensors=dynamic,
        warnings=warnings,
        model_failure=failure,
        fallback=fallback,
        spread=profile.placement,
        integer=profile.integer,
    )


def partitions(model: TfliteModel, delegated: set[int]) -> list[list[int]]:
    """The delegated ops (`delegated`: op indices) grouped into the partitions a TFLite
    delegate gets, the way TFLite's graph partitioner forms them
    (tensorflow/lite/graph_info.cc, PartitionGraphIntoIndependentNodeSubsets): ops are taken
    in execution order while their inputs are ready, all of one kind (delegated or not) before
    switching to the other, so independent branches of one kind share a partition."""
    produced = {o: op.index for op in model.ops for o in op.outputs}
    ready = {t.index for t in model.tensors if t.index not in produced}
    left = list(model.ops)
    out: list[list[int]] = []
    kind = bool(left) and left[0].index in delegated
    empty = 0  # subsets in a row that took nothing: two means nothing is ready (a bad graph)
    while left and empty < 2:
        subset, progress = [], True
        while progress:
            progress = False
            for op in list(left):
                if (op.index in delegated) == kind and all(i < 0 or i in ready for i in op.inputs):
                    subset.append(op.index)
                    ready.update(op.outputs)
                    left.remove(op)
                    progress = True
        empty = 0 if subset else empty + 1
        if kind and subset:
            out.append(subset)
        kind = not kind
    return out


def _partition_warning(model: TfliteModel, profile: Profile, placements: list[OpPlacement],
                       warnings: list[str]) -> None:
    """A delegate that takes only its N largest partitions by default (the GPU delegate:
    max_delegated_partitions = 1) leaves the others' ops on the CPU too."""
    limit = profile.max_delegated_partitions
    if limit is None:
        return
    parts = partitions(model, {p.index for p in placements if p.on_target and not p.boundary})
    if len(parts) <= limit:
        return
    kept = sorted(parts, key=len, reverse=True)[:limit]
    left = sum(len(p) for p in parts) - sum(len(p) for p in kept)
    warnings.append(f"the ops on target form {len(parts)} partitions; {profile.toolchain.get('name', profile.id)}'s "
                    f"default options delegate only the {limit} largest (max_delegated_partitions = {limit}, "
                    f"{', '.join(str(len(p)) for p in kept)} op(s)), so {left} more op(s) run on the CPU unless "
                    f"the application raises it")


_CONVERTER_NAMES = ("tfl.", "arith.", "StatefulPartitionedCall", "serving_default", "PartitionedCall")


def _lost_scope(model: TfliteModel, op: Op) -> bool:
    name = model.tensors[op.outputs[0]].name if op.outputs and op.outputs[0] >= 0 else ""
    return bool(name) and "/" not in name and not name.startswith(_CONVERTER_NAMES)


def _blame_versions(model: TfliteModel, profile: Profile, placements: list[OpPlacement]) -> OpPlacement | None:
    """For each op type stored at a version newer than the profile knows, find the op whose own
    settings need it (a .tflite stores one version per op type, so every op of the type shows
    it) and say so on every op of the type. Returns the culprit of the first such type in
    graph order, or None."""
    first_culprit = None
    bad_types = []
    for p in placements:
        spec = profile.op(p.op)
        if spec is not None and spec.too_new(p.version) and p.op not in bad_types:
            bad_types.append(p.op)
    for op_type in bad_types:
        spec = profile.op(op_type)
        group = [p for p in placements if p.op == op_type]
        needs = {p.index: own_version(model, model.ops[p.index]) for p in group}
        culprit = next((p for p in group if (n := needs[p.index]) is not None and n.version > spec.max_version),
                       group[0])
        need = needs[culprit.index]
        tool = profile.toolchain.get("name", profile.id)
        stored = (f"{op_type} v{culprit.version} is newer than v{spec.max_version}, the newest {tool} knows; "
                  f"a .tflite stores one version per op type")
        if need is not None and need.version > spec.max_version:
            culprit.reason = f"{stored}, and this op needs v{need.version} ({need.why})"
            culprit.fix_hint = need.fix_hint or culprit.fix_hint
        else:
            culprit.reason = f"{stored} (which op of the type needs it is not known to qfix)"
            culprit.fix_hint = (f"change the layer setting that raises {op_type} to v{culprit.version} "
                                "(tensorflow/lite/tools/versioning/op_version.cc lists them per op)")
        for p in group:
            p.on_target = False
            p.status = profile.status("bad_version")
            p.source, p.confidence = spec.version_source or spec.source, spec.version_confidence or "R"
            if p is not culprit:
                p.reason = (f"{stored}: op {culprit.index} ({f'layer {culprit.layer!r}' if culprit.layer is not None else 'no Keras layer'}) raises every {op_type} "
                            f"to v{culprit.version}; this op alone would need v{needs[p.index].version}"
                            if needs[p.index] is not None else stored)
                p.fix_hint = culprit.fix_hint
        first_culprit = first_culprit or culprit
    return first_culprit


def _op_layers(model: TfliteModel, names: set[str], output_layers: dict[int, str]) -> list[str | None]:
    """Each op's Keras layer. Ops that write a graph output (or feed the boundary op that does)
    take the layer the signature names for that output: their own tensors are named
    `StatefulPartitionedCall:N` and name matching would charge them to the layer feeding them."""
    by_tensor = dict(output_layers)
    for op in model.ops:  # the boundary QUANTIZE's input is that output's value too
        if _is_boundary(model, op):
            for o in op.outputs:
                if o in by_tensor:
                    for i in op.inputs:
                        if i >= 0:
                            by_tensor.setdefault(i, by_tensor[o])
    own: list[str | None] = []
    for op in model.ops:
        named = next((by_tensor[o] for o in op.outputs if o in by_tensor), None)
        own.append(named if named is not None and not _is_boundary(model, op) else op_layer(model, op, names, True))
    # An op whose output is a TF op name that lost its layer scope (Keras 3's grouped conv
    # writes `convolution1`) belongs to the layer its readers agree on (reverse order: chains
    # resolve back to front). Converter-made names (`tfl.strided_slice` after an LSTM) and
    # everything else take the layer of their inputs, as before.
    for op in reversed(model.ops):
        if own[op.index] is not None:
            continue
        if _is_boundary(model, op) or not _lost_scope(model, op):
            own[op.index] = op_layer(model, op, names)
            continue
        readers = {own[c.index] for o in op.outputs for c in model.consumers(o) if not _is_boundary(model, c)}
        own[op.index] = (readers.pop() if len(readers) == 1 and None not in readers
                         else op_layer(model, op, names))
    return own


def _op_tensors(model: TfliteModel, op: Op) -> list[Tensor]:
    return [model.tensors[i] for i in (*op.inputs, *op.outputs) if i >= 0]


def _op_activations(model: TfliteModel, op: Op) -> list[Tensor]:
    return [t for t in _op_tensors(model, op) if not t.is_const]


def _activations(model: TfliteModel) -> list[Tensor]:
    seen = {i for op in model.ops for i in (*op.inputs, *op.outputs) if i >= 0}
    return [model.tensors[i] for i in sorted(seen) if not model.tensors[i].is_const]


def _semantics_broken(model: TfliteModel) -> tuple[Op, str] | None:
    """The first op whose stored shapes break TFLite's semantics, as Vela checks them before
    compiling: a RESHAPE whose input and output hold different numbers of elements (the plain
    converter writes one when a dynamic batch feeds the shape at run time)."""
    for op in model.ops:
        if op.name != "RESHAPE" or not op.inputs or not op.outputs or op.inputs[0] < 0:
            continue
        src, dst = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
        if src.shape and dst.shape and int(np.prod(src.shape)) != int(np.prod(dst.shape)):
            return op, (f"has input and output element counts that differ (IFM shape "
                        f"{list(src.shape)}, OFM shape {list(dst.shape)})")
    return None


def computes_float(profile: Profile) -> bool:
    """The profile's activation dtypes include a float type (tflm: its float32 kernels)."""
    return any(d in FLOAT_DTYPES for d in profile.activation_dtypes)


def _touches_float(model: TfliteModel, op: Op) -> bool:
    return any(t.dtype in FLOAT_DTYPES for t in _op_activations(model, op))


def _is_boundary(model: TfliteModel, op: Op) -> bool:
    """A QUANTIZE/DEQUANTIZE that converts the model's I/O type: a QUANTIZE reading a graph input
    (float -> int8, or uint8 -> int8), a DEQUANTIZE writing a graph output (int8 -> float), or a
    requantizing QUANTIZE (int8 -> uint8) writing one. A DEQUANTIZE reading an integer graph
    input, or a float -> int8 QUANTIZE writing a graph output, is not the interface: it opens or
    closes a float island inside an integer model (a Conv3D kept float), and is judged as such."""
    reads_input = any(i in model.inputs for i in op.inputs)
    writes_output = any(o in model.outputs for o in op.outputs)
    if op.name == "QUANTIZE":
        requantize = not any(model.tensors[i].dtype in FLOAT_DTYPES for i in op.inputs if i >= 0)
        return reads_input or (writes_output and requantize)
    if op.name == "DEQUANTIZE":
        return writes_output
    return False


def _boundary_status(model: TfliteModel, op: Op, p: OpPlacement, profile: Profile) -> None:
    if _touches_float(model, op):
        p.on_target = False
        p.status = profile.status("bad_dtype")
        p.reason = "float<->int8 conversion at the model boundary (float I/O); runs on the CPU, does not cut"
    elif profile.placement == "prefix" and any(o in model.outputs for o in op.outputs):
        # Compiler logs show the trailing requantize left on the CPU (google-coral/edgetpu #342).
        p.on_target = False
        p.status = profile.status("boundary_cpu")
        p.reason = "output type conversion at the model boundary; left on the CPU, does not cut"


def _judge(model: TfliteModel, op: Op, profile: Profile, warnings: list[str], layer: str | None) -> _Verdict:
    spec = profile.op(op.name)
    where = f"op {op.index} {op.name}"

    allowed = set(profile.activation_dtypes) | set(profile.aux_dtypes)
    for t in _op_activations(model, op):
        if t.dtype in allowed or t.is_variable and t.dtype in profile.state_dtypes:
            continue
        computes = '/'.join(profile.activation_dtypes)
        if t.dtype not in FLOAT_DTYPES:
            # An integer tensor of another width (int16 state, 16x8 activations): never "float".
            key = "bad_int_dtype" if "bad_int_dtype" in profile.statuses else "bad_dtype"
            what = "state" if t.is_variable else "tensor"
            return _Verdict(False, key, f"{t.dtype} {what} '{t.name}' (integer, but the target computes in {computes})",
                            *_facts(profile, "activation_dtypes"), fix_hint=spec.fix_hint if spec else None)
        reason = f"{t.dtype} tensor '{t.name}' (target computes in {computes})"
        if op.name == "DEQUANTIZE":
            users = sorted({c.name for o in op.outputs for c in model.consumers(o)})
            reason = (f"float island starts here: dequantizes to {t.dtype} for {', '.join(users) or 'nothing'}, "
                      "which has no int8 kernel in this conversion")
        return _Verdict(False, "bad_dtype", reason, *_facts(profile, "activation_dtypes"),
                        fix_hint=spec.fix_hint if spec else None)

    if not profile.supports(op.name):
        what = f"custom op '{op.custom_code}'" if op.name == "CUSTOM" else op.name
        return _Verdict(False, "unsupported_op", f"{what} is not in the {profile.name} op table",
                        spec.source if spec else None, spec.confidence if spec else None,
                        spec.fix_hint if spec else None)

    if spec is not None and spec.too_new(op.version):
        return _Verdict(False, "bad_version", f"{op.name} v{op.version} is newer than v{spec.max_version}, "
                        f"the newest {profile.toolchain.get('name', profile.id)} knows",
                        spec.version_source or spec.source, spec.version_confidence or "R")

    if profile.static_shapes:
        # A toolchain that sets a dynamic batch to 1 (Vela) minds only the other dimensions.
        first = 1 if profile.dynamic_batch else 0
        dyn = [t for t in _op_activations(model, op) if any(d < 0 for d in t.shape_signature[first:])]
        if dyn:
            fact = "dynamic_batch" if profile.dynamic_batch else "static_shapes"
            return _Verdict(False, "dynamic", f"tensor '{dyn[0].name}' has dynamic shape "
                            f"{list(dyn[0].shape_signature)}; sizes must be fixed at compile time"
                            + (" (all but the batch)" if profile.dynamic_batch else ""),
                            *_facts(profile, fact),
                            fix_hint=f"fix the batch size to {profile.batch or 1} (and every other dimension)")

    if profile.max_rank is not None:
        deep = [t for t in _op_activations(model, op) if len(t.shape) > profile.max_rank]
        if deep:
            return _Verdict(False, "bad_rank", f"tensor '{deep[0].name}' has rank {len(deep[0].shape)}, more than "
                            f"{profile.max_rank}", *_facts(profile, "max_rank"),
                            fix_hint=f"keep tensors at rank {profile.max_rank} or less (fold the extra dimension)")

    n = profile.max_innermost_dims
    if n is not None:
        for t in _op_activations(model, op):
            if any(d > 1 for d in t.shape[:-n]):
                return _Verdict(False, "bad_rank", f"tensor '{t.name}' shape {list(t.shape)} has a dimension "
                                f"> 1 outside the {n} innermost", *_facts(profile, "max_innermost_dims"),
                                fix_hint="reshape to at most 3 non-trivial dims (batch 1, no 5-D tensors)")

    slow: Rule | None = None  # a broken "reference" rule: still runs, on the slow kernel
    for rule in spec.constraints if spec else ():
        broken = PREDICATES[rule.predicate](model, op, **rule.args)
        if broken is None:
            continue
        if rule.severity == "warn":
            warnings.append(f"{where}: {rule.text} ({broken})")
        elif rule.severity == "reference":
            slow = slow or Rule(rule.predicate, rule.args, f"{rule.text} ({broken})", source=rule.source,
                                confidence=rule.confidence, fix_hint=rule.fix_hint)
        else:
            return _Verdict(False, rule.status, f"{rule.text} ({broken})", rule.source, rule.confidence,
                            rule.fix_hint or spec.fix_hint)

    if slow is not None or spec is None and profile.unlisted_ops == "reference" or spec and spec.kernel == "reference":
        warnings.append(f"{where}{f' (layer {layer})' if layer else ''}: {profile.status('reference')}")
        if slow is not None:
            return _Verdict(True, "reference", slow.text, slow.source, slow.confidence, slow.fix_hint)
        return _Verdict(True, "reference", "supported in int8 on a reference (slower) kernel",
                        spec.source if spec else None, spec.confidence if spec else None,
                        spec.fix_hint if spec else None)
    return _Verdict(True, "mapped", "supported", spec.source if spec else None, spec.confidence if spec else None)


def _facts(profile: Profile, key: str) -> tuple[str | None, str | None]:
    fact = profile.facts.get(key, {})
    return fact.get("source"), fact.get("confidence")


def _float_tensors(model: TfliteModel, boundary: set[int], layers: list[str | None]) -> tuple[list[str], list[dict[str, Any]]]:
    producers = {o: op for op in model.ops for o in op.outputs}
    consumers: dict[int, list[Op]] = {}
    for op in model.ops:
        for i in op.inputs:
            consumers.setdefault(i, []).append(op)
    floats, islands = [], []
    for t in _activations(model):
        if t.dtype not in FLOAT_DTYPES:
            continue
        prod = producers.get(t.index)
        cons = consumers.get(t.index, [])
        # Float I/O handled by a boundary QUANTIZE/DEQUANTIZE is the interface, not an island.
        if t.index in model.inputs and cons and all(c.index in boundary for c in cons):
            continue
        if t.index in model.outputs and prod is not None and prod.index in boundary:
            continue
        floats.append(t.name)
        islands.append({
            "tensor": t.name, "dtype": t.dtype,
            "producer": prod.name if prod else None,
            "producer_index": prod.index if prod else None,
            "layer": layers[prod.index] if prod else None,
        })
    return floats, islands


def _version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split(".") if x.isdigit())


def _model_warnings(model: TfliteModel, profile: Profile, warnings: list[str]) -> None:
    if profile.max_subgraphs is not None and model.subgraph_count > profile.max_subgraphs:
        warnings.append(f"model has {model.subgraph_count} subgraphs; {profile.name} maps only "
                        f"{profile.max_subgraphs} (control flow runs on the CPU)")
    ceiling, mrv = profile.max_tflite_runtime, model.min_runtime_version
    if ceiling and mrv and _version_tuple(mrv) > _version_tuple(ceiling):
        warnings.append(f"model min_runtime_version {mrv} is newer than {ceiling}, about what "
                        f"{profile.toolchain.get('name', profile.id)} parses; an op version may be rejected")
