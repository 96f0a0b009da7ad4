"""What a Lambda body or a tf_keras TFOpLambda / SlicingOpLambda computes → the built-in layer
that computes the same thing. Pure data; `qfix.model.lambda_plan` matches expressions to it.

Names are canonical: `tf.` → `tensorflow.`, `tf.keras.` / `tf_keras.` → `keras.` (see
`ALIASES`); a TFOpLambda's `function` (`"math.multiply"`) is read as `tensorflow.<function>`.
What tfmot 0.8 does with each result (default 8-bit registry, exact class match):
`Activation`, `ReLU`, `Cropping1D/2D/3D`, `UpSampling2D`, `Conv2D`, `Dense`, `Reshape`,
`GlobalAveragePooling1D/2D` are quantized; `Rescaling` and `Resizing` are not in the registry
(qfix's registry rewrites handle them, QF502-QF504); TFOpLambda, SlicingOpLambda and Lambda
fail (errors.md B5-B7).
"""

from __future__ import annotations

# The first component(s) of a dotted name as people import them → the canonical prefix.
# A Lambda's globals are not stored, so the aliases are the conventional ones.
ALIASES = {
    "tf.keras": "keras", "tensorflow.keras": "keras", "tf_keras": "keras", "tf": "tensorflow",
    "K": "keras.backend", "ops": "keras.ops", "layers": "keras.layers",
}

# Elementwise arithmetic with one constant operand (→ Rescaling(scale, offset)).
ARITHMETIC = {
    "tensorflow.math.multiply": "*", "tensorflow.multiply": "*", "tensorflow.__operators__.mul": "*",
    "tensorflow.math.add": "+", "tensorflow.add": "+", "tensorflow.__operators__.add": "+",
    "tensorflow.math.subtract": "-", "tensorflow.subtract": "-", "tensorflow.__operators__.sub": "-",
    "tensorflow.math.truediv": "/", "tensorflow.math.divide": "/", "tensorflow.divide": "/",
    "tensorflow.truediv": "/", "tensorflow.__operators__.truediv": "/",
    "keras.ops.multiply": "*", "keras.ops.add": "+", "keras.ops.subtract": "-", "keras.ops.divide": "/",
    "keras.ops.true_divide": "/",
}
NEGATE = {"tensorflow.math.negative", "tensorflow.negative", "keras.ops.negative"}

# relu-family calls → ReLU(max_value=...): the max value a call implies (None: unbounded).
RELU = {
    "tensorflow.nn.relu": None, "keras.activations.relu": None, "keras.ops.relu": None,
    "keras.ops.nn.relu": None, "keras.backend.relu": None,
    "tensorflow.nn.relu6": 6.0, "keras.activations.relu6": 6.0, "keras.ops.relu6": 6.0,
    "keras.ops.nn.relu6": 6.0, "keras.backend.relu6": 6.0,
}
# Keyword a relu-family call may carry, and the value that keeps it a plain ReLU.
RELU_NEUTRAL_KW = {"alpha": 0.0, "negative_slope": 0.0, "threshold": 0.0, "name": None}

# clip(x, lo, hi) → ReLU(max_value=hi) when lo is 0: (positional names of x, lo, hi).
CLIP = {
    "tensorflow.clip_by_value": ("t", "clip_value_min", "clip_value_max"),
    "tensorflow.keras.backend.clip": ("x", "min_value", "max_value"),
    "keras.ops.clip": ("x", "x_min", "x_max"),
    "keras.backend.clip": ("x", "min_value", "max_value"),
}
# maximum(x, 0) → ReLU().
MAXIMUM = {"tensorflow.maximum": ("x", "y"), "tensorflow.math.maximum": ("x", "y"), "keras.ops.maximum": ("x1", "x2")}

# Activation functions → Activation(name) (tfmot quantizes a standalone Activation of these).
ACTIVATION = {
    "tensorflow.nn.sigmoid": "sigmoid", "tensorflow.math.sigmoid": "sigmoid", "tensorflow.sigmoid": "sigmoid",
    "keras.activations.sigmoid": "sigmoid", "keras.ops.sigmoid": "sigmoid",
    "tensorflow.nn.tanh": "tanh", "tensorflow.math.tanh": "tanh", "tensorflow.tanh": "tanh",
    "keras.activations.tanh": "tanh", "keras.ops.tanh": "tanh",
    "tensorflow.nn.softmax": "softmax", "tensorflow.math.softmax": "softmax", "keras.activations.softmax": "softmax",
    "keras.ops.softmax": "softmax",
    "tensorflow.nn.swish": "swish", "tensorflow.nn.silu": "swish", "keras.activations.swish": "swish",
    "keras.activations.silu": "swish", "keras.ops.silu": "swish", "keras.ops.swish": "swish",
}
# Keywords an activation call may carry with the value that keeps its default behaviour.
ACTIVATION_NEUTRAL_KW = {"name": None, "axis": -1}

# resize(x, (h, w), method) → Resizing(h, w, interpolation) (UpSampling2D for integer factors in
# tf_keras, which tfmot quantizes): the keyword holding the method, and the neutral keywords.
RESIZE = {"tensorflow.image.resize": "method", "keras.ops.image.resize": "interpolation"}
RESIZE_NEUTRAL_KW = {"antialias": False, "preserve_aspect_ratio": False, "name": None,
                     "crop_to_aspect_ratio": False, "data_format": "channels_last"}
METHODS = {
    "bilinear": "bilinear", "nearest": "nearest", "bicubic": "bicubic", "area": "area", "lanczos3": "lanczos3",
    "lanczos5": "lanczos5", "gaussian": "gaussian", "mitchellcubic": "mitchellcubic",
    "tensorflow.image.ResizeMethod.BILINEAR": "bilinear", "tensorflow.image.ResizeMethod.NEAREST_NEIGHBOR": "nearest",
    "tensorflow.image.ResizeMethod.BICUBIC": "bicubic", "tensorflow.image.ResizeMethod.AREA": "area",
}
UPSAMPLING_METHODS = {"nearest", "bilinear"}  # tf_keras UpSampling2D is tf.image.resize with these

# mean over the spatial axes → GlobalAveragePooling{1,2}D(keepdims=...): rank → axes.
MEAN = {"tensorflow.math.reduce_mean", "tensorflow.reduce_mean", "keras.ops.mean", "keras.backend.mean"}
MEAN_AXES = {3: (1,), 4: (1, 2)}
MEAN_POOL = {3: "GlobalAveragePooling1D", 4: "GlobalAveragePooling2D"}

# reshape(x, (-1, *rest)) → Reshape(rest).
RESHAPE = {"tensorflow.reshape", "tensorflow.compat.v1.reshape", "keras.ops.reshape", "keras.backend.reshape"}

# Slicing: x[...] (a Lambda's subscript, or a SlicingOpLambda `__operators__.getitem`).
GETITEM = {"tensorflow.__operators__.getitem"}
CROPPING = {3: "Cropping1D", 4: "Cropping2D", 5: "Cropping3D"}  # rank → the layer cropping axes 1..rank-2
# A channel (last axis) selection becomes a layer with a 0/1 selection kernel and no bias,
# exact in float (each output is one input times 1.0 plus zeros) and quantized by tfmot: the
# 1×1 Conv2D for 4-D tensors, Dense (which acts on the last axis) otherwise. Not trainable,
# so QAT keeps it a selection; 0 and 1 quantize exactly (per-channel scale 1/127).
SELECTION = {4: "Conv2D"}
SELECTION_DEFAULT = "Dense"

# One line per row, for the rule docs and the report.
ROWS = [
    ("x * a + b, x / a - b, -x, tf.math.multiply/add/subtract/truediv with a constant", "Rescaling(scale, offset)"),
    ("x (the identity)", "Activation('linear')"),
    ("tf.nn.relu, relu6, tf.clip_by_value(x, 0, c), tf.maximum(x, 0)", "ReLU(max_value=...)"),
    ("tf.nn.sigmoid, tanh, softmax (last axis), swish/silu", "Activation(name)"),
    ("tf.image.resize(x, (h, w), method)", "Resizing(h, w, interpolation) / UpSampling2D(k) in tf_keras"),
    ("x[:, a:b], x[:, a:b, c:d, :] (spatial)", "Cropping1D / Cropping2D / Cropping3D"),
    ("x[..., a:b] (channels, any step)", "1×1 Conv2D (4-D) / Dense with a 0/1 selection kernel"),
    ("tf.reduce_mean(x, axis=[1, 2], keepdims)", "GlobalAveragePooling2D(keepdims) (1D for axis=[1])"),
    ("tf.reshape(x, (-1, *shape))", "Reshape(shape)"),
]
