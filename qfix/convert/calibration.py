"""Calibration data: load what the user gave us, or synthesise it, keyed by model input name.

Every sample is a dict ``{input name: array with batch dim 1}`` in the input's own dtype, so the
converter's representative dataset and the verifier feed inputs by NAME (TFLite orders signature
inputs by name, not by the Keras ``inputs=[...]`` order: errors.md C3).

Sources, in what ``load_calibration`` accepts:

* ``.npz``  keyed by input name; each array is ``(N, *dims)`` or one sample ``dims``.
* ``.npy``  for a single-input model, same layout.
* a folder of images (jpg/png/bmp/gif, searched recursively) for a single image input
  ``(batch, H, W, C)``: decoded and resized to H, W with TensorFlow (imported only there,
  after every picked file's first bytes were checked: a file that is not an image is named
  before TensorFlow loads; one TensorFlow cannot decode is named too).
  Pixels 0..255 are mapped linearly onto the input's ``value_range`` when it has one, else kept
  as 0..255.
* ``"module:function"`` (when no such file exists): the user's function, imported and called
  because the user named it; returns name-keyed arrays, one array, or an iterable of samples.
* ``None``  synthetic data, uniform in ``value_range``; default the whole range of a 16-bit
  integer input (int16 audio, uint16 depth: -32768..32767, 0..65535), ``[0, 255]`` for other
  integer image inputs, ``[0, 1]`` for other integer inputs (token ids: always valid embedding
  indices), ``[-1, 1]`` for float inputs. Every dynamic (None) dim other than batch becomes 224.
  For an input a Masking layer reads, every second sample ends in 1 to T-1 time steps of its
  ``mask_value`` (padding the model skips; uniform values never equal it).
  Results are marked ``synthetic=True``: numbers verified on them say little about accuracy.

Arrays are always read with ``allow_pickle=False``: a calibration file never runs code. Every
problem is a QF908; everything but the image decoding is checked without TensorFlow, so the
jobs load the calibration before the model (a bad file fails in a second, not after TF loads).
"""

from __future__ import annotations

import itertools
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qfix.convert.user_code import import_user_module
from qfix.errors import error, first_line
from qfix.model.inputs import InputSpec

# A dynamic spatial / sequence dim gets this size in synthetic data (the common ImageNet size).
SYNTHETIC_DYNAMIC_DIM = 224
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif"}
# The first bytes of each format TensorFlow's decode_image reads: a file that is not an image is
# named before TensorFlow loads.
IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM")


@dataclass
class Calibration:
    samples: list[dict[str, np.ndarray]]  # each array has batch dim 1
    synthetic: bool
    source: str

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return iter(self.samples)

    @property
    def input_names(self) -> list[str]:
        return list(self.samples[0]) if self.samples else []


def load_calibration(
    path: str | Path | None, specs: list[InputSpec], n: int = 32, seed: int = 0
) -> Calibration:
    """Load up to ``n`` samples from ``path`` (or synthesise ``n``), checked against ``specs``."""
    if n < 1:
        raise error("QF908", f"calibration sample count must be >= 1, got {n}")
    if not specs:
        raise error("QF908", "the model declares no inputs to calibrate")
    if path is None:
        return synthetic_calibration(specs, n, seed)
    p = Path(path)
    if not p.exists() and _FUNCTION_REF.match(str(path)):
        return _from_function(str(path), specs, n)
    if not p.exists():
        raise error("QF908", f"calibration data not found: {p}")
    if p.is_dir():
        return _from_image_folder(p, specs, n, seed)
    suffix = p.suffix.lower()
    if suffix == ".npz":
        return calibration_from_arrays(_read_npz(p), specs, n, source=str(p))
    if suffix == ".npy":
        if len(specs) != 1:
            names = ", ".join(s.name for s in specs)
            raise error(
                "QF908",
                f"{p.name}: a .npy file calibrates a single-input model; this model has "
                f"{len(specs)} inputs ({names}): use an .npz keyed by input name",
            )
        return calibration_from_arrays({specs[0].name: _read_npy(p)}, specs, n, source=str(p))
    raise error("QF908", f"{p.name}: calibration data must be .npz, .npy, a folder of images or module:function")


def calibration_from_arrays(
    arrays: dict[str, np.ndarray], specs: list[InputSpec], n: int = 32, source: str = "arrays"
) -> Calibration:
    """Validate name-keyed arrays (``(N, *dims)`` or one sample) and split them into samples."""
    names = [s.name for s in specs]
    missing = [k for k in names if k not in arrays]
    extra = sorted(k for k in arrays if k not in names)
    if missing or extra:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(repr(k) for k in missing))
        if extra:
            parts.append("unexpected " + ", ".join(repr(k) for k in extra))
        raise error(
            "QF908",
            f"{source}: calibration keys must be the model input names "
            f"({', '.join(names)}): {'; '.join(parts)}",
        )
    counts, batched = {}, {}
    for s in specs:
        arr = _with_batch_axis(np.asarray(arrays[s.name]), s, source)
        counts[s.name] = len(arr)
        batched[s.name] = _coerce(arr[:n], s, source)  # only what will be used
    if len(set(counts.values())) != 1:
        raise error("QF908", f"{source}: inputs have different sample counts: {counts}")
    total = next(iter(counts.values()))
    if total == 0:
        raise error("QF908", f"{source}: calibration data holds no samples")
    samples = [{k: v[i : i + 1] for k, v in batched.items()} for i in range(min(n, total))]
    return Calibration(samples, synthetic=False, source=source)


def synthetic_calibration(specs: list[InputSpec], n: int = 32, seed: int = 0) -> Calibration:
    """Uniform random samples in each input's value range (see the module docstring)."""
    rng = np.random.default_rng(seed)
    samples: list[dict[str, np.ndarray]] = []
    for i in range(n):
        sample = {}
        for s in specs:
            shape = (1,) + tuple(SYNTHETIC_DYNAMIC_DIM if d is None else d for d in s.shape[1:])
            lo, hi = default_range(s)
            dt = np.dtype(s.dtype)
            if dt.kind == "b":
                arr = rng.integers(0, 2, shape).astype(bool)
            elif dt.kind in "iu":
                arr = rng.integers(int(np.ceil(lo)), int(np.floor(hi)) + 1, shape).astype(dt)
            else:
                arr = rng.uniform(lo, hi, shape).astype(dt)
            if _padded(s, i):  # the end of the sequence is padding, 1 to T-1 steps of it
                arr[:, shape[1] - 1 - (i // 2) % (shape[1] - 1):] = s.mask_value
            sample[s.name] = arr
        samples.append(sample)
    ranges = ", ".join(f"{s.name}~U{list(default_range(s))}"
                       + (f", every 2nd sample padded with {s.mask_value:g} at its end" if n > 1 and _padded(s, 1)
                          else "")
                       for s in specs)
    return Calibration(samples, synthetic=True, source=f"synthetic ({ranges})")


def _padded(spec: InputSpec, i: int) -> bool:
    """Synthetic sample `i` of an input a Masking reads ends in padding (every second one): the
    calibration sees the masked steps, and the verification compares the outputs the model
    gives for them (uniform values alone never equal the mask value)."""
    steps = spec.shape[1] if len(spec.shape) >= 3 else None
    return spec.mask_value is not None and i % 2 == 1 and (steps is None or steps >= 2)


def default_range(spec: InputSpec) -> tuple[float, float]:
    if spec.value_range is not None:
        return spec.value_range
    dt = np.dtype(spec.dtype)
    if dt.kind in "iu" and dt.itemsize == 2:  # 16-bit audio or depth frames use their whole range
        info = np.iinfo(dt)
        return (float(info.min), float(info.max))
    if dt.kind in "iu":
        return (0.0, 255.0) if spec.is_image else (0.0, 1.0)
    return (-1.0, 1.0)


# --- readers -----------------------------------------------------------------------------

_FUNCTION_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def _from_function(ref: str, specs: list[InputSpec], n: int) -> Calibration:
    """`module:function` -> call it (user code, named explicitly by the user). It may return
    name-keyed arrays, one array (single-input model), or an iterable of samples (dicts keyed
    by input name; a bare array per sample only for a single-input model). Only the first `n`
    samples of an iterable are drawn."""
    module, func = ref.split(":")
    try:
        result = getattr(import_user_module(module), func)()
    except Exception as e:  # anything the user's code raises
        raise error("QF908", f"calibration function {ref} failed: {type(e).__name__}: {first_line(e, limit=None)}")
    if isinstance(result, dict):
        return calibration_from_arrays(result, specs, n, source=ref)
    if isinstance(result, np.ndarray):
        return calibration_from_arrays(_single(result, specs, ref), specs, n, source=ref)
    try:
        drawn = list(itertools.islice(iter(result), n))
    except Exception as e:
        raise error("QF908", f"calibration function {ref} did not give arrays or samples: {first_line(e, limit=None)}")
    per_name: dict[str, list[np.ndarray]] = {}
    for sample in drawn:
        sample = sample if isinstance(sample, dict) else _single(sample, specs, ref)
        for k, v in sample.items():
            v = np.asarray(v)
            spec = next((s for s in specs if s.name == k), None)
            per_name.setdefault(k, []).append(v[None] if spec and v.ndim == len(spec.shape) - 1 else v)
    try:
        arrays = {k: np.concatenate(v) for k, v in per_name.items()}
    except ValueError as e:
        raise error("QF908", f"{ref}: samples have inconsistent shapes ({first_line(e, limit=None)})")
    return calibration_from_arrays(arrays, specs, n, source=ref)


def _single(x, specs: list[InputSpec], ref: str) -> dict[str, np.ndarray]:
    if len(specs) != 1:
        raise error("QF908", f"{ref}: a multi-input model needs samples keyed by input name "
                    f"({', '.join(s.name for s in specs)}), not positional arrays")
    x = x[0] if isinstance(x, (list, tuple)) and len(x) == 1 else x
    return {specs[0].name: np.asarray(x)}


def _read_npz(p: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(p, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise error("QF908", f"{p.name}: not a readable .npz of plain arrays ({first_line(e, limit=None)})")


def _read_npy(p: Path) -> np.ndarray:
    try:
        return np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise error("QF908", f"{p.name}: not a readable .npy of plain numbers ({first_line(e, limit=None)})")


def _from_image_folder(folder: Path, specs: list[InputSpec], n: int, seed: int) -> Calibration:
    if len(specs) != 1 or not specs[0].is_image:
        raise error(
            "QF908",
            f"{folder}: an image folder calibrates a model with one image input "
            "(batch, H, W, C); use an .npz keyed by input name",
        )
    spec = specs[0]
    files = sorted(
        f for f in folder.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise error("QF908", f"{folder}: no jpg/png/bmp/gif images found")
    if len(files) > n:
        # Random (seeded) rather than first-n: class sub-folders are sorted, so the first n
        # files would often all be one class.
        pick = np.random.default_rng(seed).choice(len(files), n, replace=False)
        files = [files[i] for i in sorted(pick)]
    h, w, c = (SYNTHETIC_DYNAMIC_DIM if d is None else d for d in spec.shape[1:])
    for f in files:
        _check_image(f)
    import tensorflow as tf  # only this loader needs TF (image codecs + resize)

    pixels = []
    for f in files:
        try:
            img = tf.io.decode_image(f.read_bytes(), channels=c, expand_animations=False)
        except Exception as e:  # tf.errors.InvalidArgumentError and friends
            raise error("QF908", f"{f}: cannot decode image, truncated or corrupt ({_tf_reason(e)})")
        img = tf.image.resize(img, (h, w))  # float32, still 0..255
        pixels.append(np.clip(img.numpy(), 0.0, 255.0))
    data = np.stack(pixels)
    if spec.value_range is not None:
        lo, hi = spec.value_range
        data = lo + data * ((hi - lo) / 255.0)
    if np.dtype(spec.dtype).kind in "iu":
        data = np.round(data)
    return calibration_from_arrays(
        {spec.name: data.astype(spec.dtype)}, specs, n, source=f"{folder} ({len(files)} images)"
    )


def _check_image(f: Path) -> None:
    """QF908 naming `f` unless it can be read and its first bytes are a JPEG, PNG, GIF or BMP's."""
    try:
        with open(f, "rb") as fh:
            head = fh.read(8)
    except OSError as e:
        raise error("QF908", f"{f}: cannot read image ({e.strerror or e})") from None
    if not head.startswith(IMAGE_MAGIC):
        raise error("QF908", f"{f}: not a JPEG, PNG, GIF or BMP image")


def _tf_reason(e: BaseException) -> str:
    """TensorFlow's error text without its `{{function_node ...}}` prefix and `[Op:...]` suffix."""
    text = re.sub(r"\{\{.*?\}\}\s*", "", first_line(e, limit=None))
    return re.sub(r"\s*\[Op:.*$", "", text).strip() or type(e).__name__


# --- checks ------------------------------------------------------------------------------


def _with_batch_axis(arr: np.ndarray, spec: InputSpec, source: str) -> np.ndarray:
    """Return ``arr`` as ``(N, *dims)`` matching the spec's static dims, or raise QF908."""
    rank = len(spec.shape)
    if arr.ndim == rank - 1:
        arr = arr[None]  # a single sample without its batch axis
    if arr.ndim != rank:
        raise error(
            "QF908",
            f"{source}: input '{spec.name}' expects rank {rank} {_fmt(spec.shape)}, "
            f"got shape {arr.shape}",
        )
    for got, want in zip(arr.shape[1:], spec.shape[1:]):
        if want is not None and got != want:
            raise error(
                "QF908",
                f"{source}: input '{spec.name}' expects {_fmt(spec.shape)}, got shape {arr.shape}",
            )
    return arr


def _coerce(arr: np.ndarray, spec: InputSpec, source: str) -> np.ndarray:
    want = np.dtype(spec.dtype)
    have = arr.dtype
    where = f"{source}: input '{spec.name}' ({want.name})"
    if have.kind not in "biuf":
        raise error("QF908", f"{where}: calibration data has dtype {have}, expected numbers")
    if have.kind == "f" and arr.size and not np.isfinite(arr).all():
        raise error("QF908", f"{where}: calibration data contains NaN or inf")
    if have == want:
        return arr
    if want.kind == "f":
        return arr.astype(want)  # e.g. float64 from `x / 255.0` (C3): a safe narrowing
    if want.kind in "iub":
        lo, hi = (0, 1) if want.kind == "b" else (np.iinfo(want).min, np.iinfo(want).max)
        if arr.size:
            amin, amax = arr.min(), arr.max()
            if have.kind == "f" and not np.array_equal(arr, np.round(arr)):
                raise error(
                    "QF908",
                    f"{where}: calibration data is {have} with fractional values "
                    f"(range {amin:g}..{amax:g}); pass raw integer values",
                )
            if amin < lo or amax > hi:
                raise error(
                    "QF908",
                    f"{where}: calibration values {amin:g}..{amax:g} do not fit {want.name}",
                )
        return arr.astype(want)
    raise error("QF908", f"{where}: cannot use calibration data of dtype {have}")


def _fmt(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


