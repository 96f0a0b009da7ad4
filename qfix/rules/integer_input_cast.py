"""QF102 integer-input-cast: an integer model input cast to float inside the graph (model).

## What it does
Finds an integer model input (a uint8 camera frame, int8, int16 audio, uint16 depth) that is
cast to float inside the graph (`keras.ops.cast`, `tf.cast`, or implicitly by a layer that
computes in float from it: Rescaling, Dense, EinsumDense, BatchNormalization,
LayerNormalization, Normalization, LeakyReLU, CenterCrop in both dialects; in Keras 3 also
GlobalAveragePooling1D/2D/3D and an `Activation` of tanh, leaky_relu or exponential; in
tf_keras UnitNormalization), directly or after layers that keep its values
exactly (a Concatenate of two uint8 frames, Reshape, Flatten, Permute, Cropping, ZeroPadding,
nearest UpSampling) or pick among them as integers (max pooling, ReLU, Dropout, Maximum and
Minimum of integer inputs: TFLite has no integer MaxPool, so `uint8 → MaxPooling2D → Flatten →
Dense` failed to convert, `'tf.MaxPool' op is neither a custom op nor a flex op`). The implicit casts were measured with Keras 3.15, tf_keras and TF 2.21,
each layer alone on a uint8, int8, int16 and int32 input: a float32 output, and the model
qfix converts for the Edge TPU begins with a CAST (the table is `IMPLICIT_CASTS` here).
Not among them: Resizing, RMSNormalization and GroupNormalization, which cast their result
back to the integer type (folding the cast would change what they compute), and tf_keras's
GlobalAveragePooling, which computes a truncated integer mean (QF106's).

## Why is this bad?
After conversion that cast is a CAST op on device (`Dense` on a uint8 input: Keras 3 and
tf_keras both cast inside the layer, and the converted model begins with a CAST that names
the Dense): the Edge TPU cannot run it, so the whole model falls back to the CPU from the
first op. The converter's own input quantization already
turns the raw uint8 frame into the model's first tensor.

## Example
```python
x = keras.Input((224, 224, 3), dtype="uint8")
y = keras.layers.Rescaling(1 / 255)(keras.ops.cast(x, "float32"))
# also: keras.layers.GlobalAveragePooling2D()(x), keras.layers.Normalization(mean=m, variance=v)(x)
```

## Use instead
```python
x = keras.Input((224, 224, 3))  # float input
y = keras.layers.Rescaling(1 / 255)(x)
# and converter.inference_input_type = tf.uint8: the TFLite input stays the raw uint8 frame
```

## Fix safety
Safe: the cast (and an exact Rescaling) fold into the input quantization; the on-device
input is still the raw uint8 frame. An implicitly casting Dense, pooling, normalization or
activation computes the same float32 values from the float32 input as from the integer one it
cast itself (it casts first, then computes), except Keras 3's LayerNormalization: it takes the
mean and variance of an integer input in that integer type (truncated; 2.08 away from the
LayerNormalization of the float values for uint8), so there the fold changes its outputs and
is unsafe (tf_keras's casts first: safe). Through a Concatenate every input it joins is folded (each
keeps its raw uint8 input; the Rescaling after the join applies to all of them alike).

## Targets
Every target: the rule reads no property of the target's profile.
"""

from __future__ import annotations

from qfix.model import rewrites
from qfix.model.cases import functional_config, sequential_config
from qfix.model.rewrites import Rewrite
from qfix.model.rewrites.float_kernel_cast import hands_on_integers
from qfix.model.rewrites.mixed_merge_cast import MERGES
from qfix.model.graph import EXACT_IN_FLOAT32, integer_closure, integer_sources, is_float, is_integer
from qfix.types import Applicability
from qfix.rules.base import ModelCase, ModelRule


class IntegerInputCast(ModelRule):
    """Model side of QF102 integer-input-cast; documented once, in the module docstring
    (`qfix rule QF102`)."""

    code = "QF102"
    name = "integer-input-cast"
    fix_applicability = Applicability.SAFE

    def check(self, graph, ctx):
        seen: set[str] = set()
        for inp in graph.input_layers():
            if not is_integer(inp.out_dtype) or inp.out_dtype in ("int32", "int64"):
                continue  # token ids feed Embedding lookups, not casts
            path, readers = (integer_closure(graph, inp, hands_on_integers) if inp.out_dtype in EXACT_IN_FLOAT32
                             else ([], []))
            direct = graph.consumers(inp.name)
            for user in direct + [r for r in readers if r not in direct]:
                if user.name in seen or not _casts(user, graph.dialect):
                    continue
                how = "casts it to float" if user.is_cast else "casts it implicitly"
                if user in direct:
                    what = f"input {inp.name!r} is {inp.out_dtype} and"
                else:  # reached through value-preserving layers (Concatenate, Reshape, ...)
                    sources = integer_sources(graph, user, hands_on_integers)
                    if not sources or _meets_float(graph, user):
                        continue
                    names = ", ".join(repr(s.name) for s in sources)
                    dtypes = "/".join(sorted({s.out_dtype for s in sources}))
                    via = ", ".join(f"{p.class_name} {p.name!r}" for p in path if _upstream(graph, p, user))
                    what = (f"input{'s' if len(sources) > 1 else ''} {names} {'are' if len(sources) > 1 else 'is'} "
                            f"{dtypes}, kept as integers through {via}, and")
                    how = how.replace(" it", " them") if len(sources) > 1 else how
                seen.add(user.name)
                inexact = user.class_name in INEXACT_IMPLICIT_CASTS.get(graph.dialect, ())
                yield self.violation(
                    f"{what} {user.class_name} {user.name!r} {how} inside the graph: a CAST op on device",
                    user.name,
                    fix="fold the cast (and exact rescaling) into the input quantization" + (
                        f"; {user.class_name} then computes from the float32 values, not in {inp.out_dtype}: "
                        f"{INEXACT_IMPLICIT_CASTS[graph.dialect][user.class_name]}" if inexact else ""),
                    applicability=Applicability.UNSAFE if inexact else Applicability.SAFE,
                    pointer=user.pointer,
                    rewrite=Rewrite(rewrites.fold_input_cast, (), user.name),
                )

    CASES = [
        ModelCase(
            "uint8-cast-rescale",
            functional_config(
                [("frame", (None, 8, 8, 3), "uint8")],
                [("cast", "Cast", {"dtype": "float32"}, ["frame"]),
                 ("rescaling", "Rescaling", {"scale": 1 / 255, "offset": 0.0}, ["cast"])],
                ["rescaling"],
            ),
            fires=True,
            count=1,
            expected=[("frame", "InputLayer"), ("rescaling", "Rescaling")],
        ),
        ModelCase(
            "sequential-uint8-rescale",
            sequential_config(("frame", (1, 8, 8, 3), "uint8"), [("rescaling", "Rescaling", {"scale": 1 / 255, "offset": 0.0})]),
            fires=True,
            count=1,
            expected={"class_name": "InputLayer", "config": {"name": "frame", "dtype": "float32"}},
        ),
        ModelCase(
            "two-uint8-concatenated-then-rescaled",  # the Concatenate keeps uint8: Rescaling casts
            functional_config(
                [("a", (None, 8, 8, 3), "uint8"), ("b", (None, 8, 8, 3), "uint8")],
                [("cat", "Concatenate", {"axis": -1}, ["a", "b"], "float32", (None, 8, 8, 6)),
                 ("rescaling", "Rescaling", {"scale": 1 / 255, "offset": 0.0}, ["cat"])],
                ["rescaling"],
            ),
            fires=True,
            count=1,
            expected=[("a", "InputLayer"), ("b", "InputLayer"), ("cat", "Concatenate"), ("rescaling", "Rescaling")],
        ),
        ModelCase(
            "uint8-padded-reshaped-then-cast",
            functional_config(
                [("frame", (None, 4, 4, 1), "uint8")],
                [("pad", "ZeroPadding2D", {"padding": [[1, 1], [1, 1]]}, ["frame"], "uint8", (None, 6, 6, 1)),
                 ("flat", "Reshape", {"target_shape": [36]}, ["pad"], "uint8", (None, 36)),
                 ("cast", "Cast", {"dtype": "float32"}, ["flat"]),
                 ("dense", "Dense", {"units": 2}, ["cast"], "float32", (None, 2))],
                ["dense"],
            ),
            fires=True,
            count=1,
            expected=[("frame", "InputLayer"), ("pad", "ZeroPadding2D"), ("flat", "Reshape"), ("dense", "Dense")],
        ),
        ModelCase(
            "uint8-max-pooled-flattened-into-dense",  # Keras 3 records float32 after the pool: it is uint8
            functional_config(
                [("frame", (None, 8, 8, 3), "uint8")],
                [("pool", "MaxPooling2D", {"pool_size": [2, 2]}, ["frame"], "float32", (None, 4, 4, 3)),
                 ("flat", "Flatten", {}, ["pool"], "float32", (None, 48)),
                 ("dense", "Dense", {"units": 2}, ["flat"], "float32", (None, 2))],
                ["dense"],
            ),
            fires=True,
            count=1,
            expected={"name": "frame", "config": {"dtype": "float32"}},
        ),
        ModelCase(
            "uint8-into-dense",  # Dense casts the uint8 input itself: a CAST op named 'dense'
            functional_config(
                [("frame", (None, 4), "uint8")],
                [("dense", "Dense", {"units": 2}, ["frame"], "float32", (None, 2))],
                ["dense"],
            ),
            fires=True,
            count=1,
            expected={"name": "frame", "config": {"dtype": "float32"}},
        ),
        ModelCase(
            "uint8-flattened-into-batchnorm",
            functional_config(
                [("frame", (None, 4, 4), "uint8")],
                [("flat", "Flatten", {}, ["frame"], "uint8", (None, 16)),
                 ("bn", "BatchNormalization", {}, ["flat"], "float32", (None, 16)),
                 ("dense", "Dense", {"units": 2}, ["bn"], "float32", (None, 2))],
                ["dense"],
            ),
            fires=True,
            count=1,
            expected={"name": "frame", "config": {"dtype": "float32"}},
        ),
        ModelCase(
            "uint8-into-global-average-pooling",  # Keras 3 casts, then means: a CAST named for the layer
            functional_config(
                [("frame", (None, 8, 8, 3), "uint8")],
                [("gap", "GlobalAveragePooling2D", {}, ["frame"], "float32", (None, 3)),
                 ("dense", "Dense", {"units": 2}, ["gap"], "float32", (None, 2))],
                ["dense"],
            ),
            fires=True,
            count=1,
            expected={"name": "frame", "config": {"dtype": "float32"}},
        ),
        ModelCase(
            "uint8-into-normalization",
            functional_config(
                [("x", (None, 8), "uint8")],
                [("norm", "Normalization", {"axis": [-1], "mean": 100.0, "variance": 400.0}, ["x"], "float32",
                  (None, 8)),
                 ("dense", "Dense", {"units": 2}, ["norm"], "float32", (None, 2))],
                ["dense"],
            ),
            fires=True,
            count=1,
            expected={"name": "x", "config": {"dtype": "float32"}},
        ),
        ModelCase(
            "int16-flattened-into-leaky-relu",
            functional_config(
                [("audio", (None, 4, 2), "int16")],
                [("flat", "Flatten", {}, ["audio"], "int16", (None, 8)),
                 ("act", "LeakyReLU", {"negative_slope": 0.3}, ["flat"], "float32", (None, 8))],
                ["act"],
            ),
            fires=True,
            count=1,
            expected={"name": "audio", "config": {"dtype": "float32"}},
        ),
        ModelCase(
            "uint8-into-tanh",  # Keras 3's Activation("tanh") casts an integer input itself
            functional_config(
                [("x", (None, 8), "uint8")],
                [("act", "Activation", {"activation": "tanh"}, ["x"], "float32", (None, 8))],
                ["act"],
            ),
            fires=True,
            count=1,
        ),
        ModelCase(
            "uint8-into-relu",  # ReLU keeps the integers: no cast
            functional_config(
                [("x", (None, 8), "uint8")],
                [("act", "Activation", {"activation": "relu"}, ["x"], "uint8", (None, 8))],
                ["act"],
            ),
            fires=False,
        ),
        ModelCase(
            "uint8-concatenated-with-float",  # not the input's values any more: QF101's finding
            functional_config(
                [("a", (None, 4), "uint8"), ("f", (None, 4), "float32")],
                [("cat", "Concatenate", {"axis": -1}, ["a", "f"], "float32", (None, 8)),
                 ("rescaling", "Rescaling", {"scale": 1 / 255, "offset": 0.0}, ["cat"])],
                ["rescaling"],
            ),
            fires=False,
        ),
        ModelCase(
            "uint8-through-a-conv",  # computed values: not followed
            functional_config(
                [("a", (None, 4, 4, 1), "uint8")],
                [("conv", "Conv2D", {"filters": 1, "kernel_size": 1}, ["a"], "float32", (None, 4, 4, 1)),
                 ("rescaling", "Rescaling", {"scale": 1 / 255, "offset": 0.0}, ["conv"])],
                ["rescaling"],
            ),
            fires=False,
        ),
        ModelCase(
            "float-input",
            functional_config(
                [("x", (None, 8, 8, 3), "float32")],
                [("rescaling", "Rescaling", {"scale": 1 / 255, "offset": 0.0}, ["x"])],
                ["rescaling"],
            ),
            fires=False,
        ),
        ModelCase(
            "int32-ids-embedding",
            functional_config(
                [("ids", (None, 8), "int32")],
                [("emb", "Embedding", {"input_dim": 10, "output_dim": 4}, ["ids"], "float32", (None, 8, 4))],
                ["emb"],
            ),
            fires=False,
        ),
    ]


def _meets_float(graph, cast) -> bool:
    """Whether the cast's output is merged with float data: QF101's mixed merge, whose explicit
    cast stays (folding it would give the float input the integer input's quantization at the
    merge, as QF409 says), so that its verdict ('no effect' or kept) is QF101's alone."""
    for reader in graph.consumers(cast.name):
        if reader.class_name in MERGES and any(
            ref.layer != cast.name and is_float(graph.layers[ref.layer].out_dtype)
            for ref in reader.inputs if ref.layer in graph.layers
        ):
            return True
    return False


# Layers that cast an integer input to their float compute dtype themselves, by dialect (measured
# with Keras 3 and tf_keras under TensorFlow: a uint8 input gives a float32 output and, converted,
# a CAST op named for the layer). Measured again with Keras 3.15 / TF 2.21 and tf_keras 2.21, a
# uint8, int8, int16 and int32 input into the layer alone, qfix's Edge TPU recipe: the converted
# model begins with CAST. Not here: Resizing, RMSNormalization and GroupNormalization cast
# their result back to the input's integer dtype (the fold would drop the rounding; Keras 3's
# GroupNormalization of uint8 gives 0s and 255s, wrapped);
# Discretization and Embedding read the integers; tf_keras's GlobalAveragePooling computes an
# integer mean (uint8 stays uint8), its tanh and GroupNormalization refuse integers.
_BOTH, _KERAS3, _TF_KERAS = frozenset({"keras3", "tf_keras"}), frozenset({"keras3"}), frozenset({"tf_keras"})
IMPLICIT_CASTS = {
    "Rescaling": _BOTH, "Dense": _BOTH, "EinsumDense": _BOTH, "BatchNormalization": _BOTH,
    "LayerNormalization": _BOTH, "Normalization": _BOTH, "LeakyReLU": _BOTH, "CenterCrop": _BOTH,
    "GlobalAveragePooling1D": _KERAS3, "GlobalAveragePooling2D": _KERAS3, "GlobalAveragePooling3D": _KERAS3,
    "UnitNormalization": _TF_KERAS,
}
# `Activation(...)` casts an integer input itself for these activations (Keras 3.15; tf_keras's
# tanh refuses integers, its leaky relu keeps them)
IMPLICIT_CASTS_ACTIVATIONS = {"tanh": _KERAS3, "leaky_relu": _KERAS3, "exponential": _KERAS3}


# Implicit casts after which the layer does not compute what it would from the float values:
# Keras 3's LayerNormalization takes the moments of an integer input in that integer type
# (measured, Keras 3.15: 2.08 from the float LayerNormalization of the same uint8 values, 0.99
# for int8, int16, int32); tf_keras's casts first (1.2e-7).
INEXACT_IMPLICIT_CASTS = {
    "keras3": {"LayerNormalization": "Keras 3 takes the mean and variance of an integer input in that "
                                     "integer type (truncated), so its outputs change"},
}


def _casts(layer, dialect: str = "keras3") -> bool:
    """A cast, or a float layer that casts an integer input implicitly (IMPLICIT_CASTS)."""
    if layer.is_cast:
        return True
    if layer.class_name == "Activation":
        where = IMPLICIT_CASTS_ACTIVATIONS.get(layer.config.get("activation"), frozenset())
    else:
        where = IMPLICIT_CASTS.get(layer.class_name, frozenset())
    return dialect in where and is_float(layer.dtype_policy)


def _upstream(graph, layer, user, depth: int = 0) -> bool:
    """`layer` is on a path into `user`."""
    if depth > 64:
        return False
    return any(r.layer == layer.name or (r.layer in graph.layers and _upstream(graph, layer, graph.layers[r.layer], depth + 1))
               for r in user.inputs)
