"""Which Keras 3 layers can read an integer model input (uint8 images, int8, int16 audio, int32),
the facts behind QF106's FLOAT_KERNELS (qfix/model/rewrites/float_kernel_cast.py) and QF102's
IMPLICIT_CASTS (qfix/rules/integer_input_cast.py).

For each layer, alone after `keras.Input(shape, dtype=...)`: whether Keras runs the model
(`model(x)`, and the output's dtype), and qfix's Edge TPU conversion of it (this checkout's
converter and recipe, two random calibration samples): the QF909 it fails with, or its ops.
A failure with "DataType ... not in list of allowed values" is a float kernel (QF106); a float32
output and a converted model beginning with CAST is an implicit cast (QF102); an output of the
input's dtype passes integers through. One JSON line per (layer, dtype).

    PYTHONPATH=$PWD nice -n 10 python bench/integer_inputs.py                 # every layer, uint8/int8/int16
    PYTHONPATH=$PWD nice -n 10 python bench/integer_inputs.py Pooling int32   # names containing 'Pooling'

Prints figures only; asserts nothing. (A layer whose conversion crashes the process, as
Activation("exponential") did on TF 2.21, ends the run: run it on its own.)"""
import json
import os
import sys
import tempfile
import traceback

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import keras  # noqa: E402
from keras import layers as L  # noqa: E402

from qfix.convert.calibration import Calibration  # noqa: E402
from qfix.convert.converter import convert, recipe_for  # noqa: E402

V, S1, S2, S3 = (8,), (8, 3), (8, 8, 3), (4, 4, 4, 3)
SPECS = {
    "AveragePooling1D": (S1, lambda: L.AveragePooling1D(2)),
    "AveragePooling2D": (S2, lambda: L.AveragePooling2D(2)),
    "AveragePooling3D": (S3, lambda: L.AveragePooling3D(2)),
    "GlobalAveragePooling1D": (S1, lambda: L.GlobalAveragePooling1D()),
    "GlobalAveragePooling2D": (S2, lambda: L.GlobalAveragePooling2D()),
    "GlobalAveragePooling3D": (S3, lambda: L.GlobalAveragePooling3D()),
    "MaxPooling2D": (S2, lambda: L.MaxPooling2D(2)),
    "GlobalMaxPooling2D": (S2, lambda: L.GlobalMaxPooling2D()),
    "Normalization": (V, lambda: L.Normalization(mean=100.0, variance=400.0)),
    "Discretization": (V, lambda: L.Discretization(bin_boundaries=[10.0, 100.0])),
    "Softmax": (V, lambda: L.Softmax()),
    "Act-sigmoid": (V, lambda: L.Activation("sigmoid")),
    "Act-relu": (V, lambda: L.Activation("relu")),
    "Act-tanh": (V, lambda: L.Activation("tanh")),
    "Act-gelu": (V, lambda: L.Activation("gelu")),
    "Act-swish": (V, lambda: L.Activation("swish")),
    "Act-elu": (V, lambda: L.Activation("elu")),
    "Act-hard_sigmoid": (V, lambda: L.Activation("hard_sigmoid")),
    "Act-softplus": (V, lambda: L.Activation("softplus")),
    "Act-relu6": (V, lambda: L.Activation("relu6")),
    "Act-leaky_relu": (V, lambda: L.Activation("leaky_relu")),
    "ReLU": (V, lambda: L.ReLU()),
    "ReLU-max6": (V, lambda: L.ReLU(max_value=6.0)),
    "LeakyReLU": (V, lambda: L.LeakyReLU()),
    "ELU": (V, lambda: L.ELU()),
    "PReLU": (V, lambda: L.PReLU()),
    "Conv2D": (S2, lambda: L.Conv2D(2, 1)),
    "DepthwiseConv2D": (S2, lambda: L.DepthwiseConv2D(1)),
    "UpSampling2D-bilinear": (S2, lambda: L.UpSampling2D(interpolation="bilinear")),
    "UpSampling2D": (S2, lambda: L.UpSampling2D()),
    "Resizing": (S2, lambda: L.Resizing(4, 4)),
    "Resizing-nearest": (S2, lambda: L.Resizing(4, 4, interpolation="nearest")),
    "CenterCrop": (S2, lambda: L.CenterCrop(4, 4)),
    "Cropping2D": (S2, lambda: L.Cropping2D(1)),
    "ZeroPadding2D": (S2, lambda: L.ZeroPadding2D(1)),
    "Reshape": (S2, lambda: L.Reshape((-1,))),
    "Flatten": (S2, lambda: L.Flatten()),
    "Permute": (S1, lambda: L.Permute((2, 1))),
    "Dropout": (V, lambda: L.Dropout(0.5)),
    "GaussianNoise": (V, lambda: L.GaussianNoise(0.1)),
    "GaussianDropout": (V, lambda: L.GaussianDropout(0.1)),
    "ActivityRegularization": (V, lambda: L.ActivityRegularization()),
    "UnitNormalization": (V, lambda: L.UnitNormalization()),
    "GroupNormalization": (S2, lambda: L.GroupNormalization(groups=3)),
    "RMSNormalization": (V, lambda: L.RMSNormalization()) if hasattr(L, "RMSNormalization") else None,
    "BatchNormalization": (V, lambda: L.BatchNormalization()),
    "LayerNormalization": (V, lambda: L.LayerNormalization()),
    "Dense": (V, lambda: L.Dense(2)),
    "EinsumDense": (V, lambda: L.EinsumDense("ab,bc->ac", output_shape=2)),
    "Rescaling": (V, lambda: L.Rescaling(1 / 255)),
    "Embedding": (V, lambda: L.Embedding(256, 2)),
    "CategoryEncoding": (V, lambda: L.CategoryEncoding(num_tokens=256, output_mode="count")),
    "RepeatVector": (V, lambda: L.RepeatVector(2)),
    "Identity": (V, lambda: L.Identity()),
    "SpatialDropout1D": (S1, lambda: L.SpatialDropout1D(0.5)),
    "AlphaDropout": (V, lambda: L.AlphaDropout(0.5)) if hasattr(L, "AlphaDropout") else None,
    "Masking": (S1, lambda: L.Masking()),
    "Act-exponential": (V, lambda: L.Activation("exponential")),
    "Act-selu": (V, lambda: L.Activation("selu")),
    "Act-softsign": (V, lambda: L.Activation("softsign")),
    "Act-silu": (V, lambda: L.Activation("silu")),
    "Act-linear": (V, lambda: L.Activation("linear")),
    "Act-log_softmax": (V, lambda: L.Activation("log_softmax")),
    "Conv1D": (S1, lambda: L.Conv1D(2, 1)),
    "SeparableConv2D": (S2, lambda: L.SeparableConv2D(2, 1)),
    "Conv2DTranspose": (S2, lambda: L.Conv2DTranspose(2, 1)),
}
DTYPES = {"uint8": (0, 256), "int8": (-128, 128), "int16": (-2**15, 2**15), "uint16": (0, 2**16), "int32": (0, 1000)}


def ops_of(tfl: bytes) -> list[str]:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=tfl)
    return [o["op_name"] for o in it._get_ops_details()]


def measure(name, dtype):
    shape, make = SPECS[name]
    lo, hi = DTYPES[dtype]
    row = {"layer": name, "dtype": dtype}
    try:
        i = keras.Input(shape, dtype=dtype, name="x")
        y = make()(i)
        m = keras.Model(i, y)
    except Exception as e:
        row["build"] = f"FAIL {str(e).splitlines()[0][:90]}"
        return row
    x = np.random.default_rng(0).integers(lo, hi, (1, *shape)).astype(dtype)
    try:
        out = m(x)
        row["run"] = f"ok {np.asarray(out).dtype}"
    except Exception as e:
        row["run"] = f"FAIL {str(e).splitlines()[0][:90]}"
    try:
        cal = Calibration([{"x": np.random.default_rng(k).integers(lo, hi, (1, *shape)).astype(dtype)}
                           for k in range(2)], True, "m")
        res = convert(m, recipe_for("edgetpu"), cal)
        ops = ops_of(res.tflite)
        row["ops"] = " ".join(ops)
    except BaseException as e:
        msg = str(e).replace("\n", " ")
        row["convert"] = f"FAIL {msg[:160]}"
    return row


if __name__ == "__main__":  # argv: [name filter] [comma-separated dtypes]
    names = [n for n in SPECS if SPECS[n] and (len(sys.argv) < 2 or sys.argv[1] in n)]
    dts = sys.argv[2].split(",") if len(sys.argv) > 2 else ["uint8", "int8", "int16"]
    for n in names:
        for d in dts:
            try:
                r = measure(n, d)
            except BaseException as e:
                r = {"layer": n, "dtype": d, "err": repr(e)[:200]}
            print(json.dumps(r), flush=True)
