"""QF502 tfmot-rejected-layer: a layer tfmot's 8-bit registry rejects, so `quantize_model` fails.

## What it does
With `--mode qat`, finds every built-in layer that tfmot 0.8's default 8-bit scheme does not
accept (`qfix.model.tfmot_registry`): Conv1D, MaxPooling1D, Rescaling, Normalization,
Multiply, Subtract, LayerNormalization, PReLU, a BatchNormalization tfmot cannot fold (after
an Add, a Concatenate, the input, or anything but a linear Conv2D/DepthwiseConv2D/Dense), the
recurrent layers, MultiHeadAttention, and more. A layer already annotated with a
QuantizeConfig is accepted and not reported, and so is a layer that reads integer tensors
(an Embedding of token ids): qfix annotates only the float part of such a model
(`qfix.model.rewrites.annotate_float_part`) and tfmot never sees it.

## Why is this bad?
`tfmot.quantization.keras.quantize_model` raises before training starts: "Layer multiply:<class
'tf_keras.src.layers.merging.multiply.Multiply'> is not supported. You can quantize this layer
by passing a `tfmot.quantization.keras.QuantizeConfig` instance to the `quantize_annotate_layer`
API." (errors.md B8, B10-B14; checked against the installed tfmot by a test).

## Example
```python
i = tf_keras.Input((32, 4))
x = tf_keras.layers.Conv1D(8, 3)(i)
y = tf_keras.layers.Multiply()([x, x])
```

## Use instead
```python
i = tf_keras.Input((32, 4))
x = tf_keras.layers.Reshape((1, -1, 4))(i)            # Conv1D as the Conv2D TFLite runs anyway
x = tf_keras.layers.Conv2D(8, (1, 3))(x)
x = tf_keras.layers.Reshape((-1, 8))(x)
y = quantize_annotate_layer(tf_keras.layers.Multiply(), OutputQuantizeConfig())([x, x])
# then quantize_model inside quantize_scope(qfix.convert.qat_configs.custom_objects())
```

## Fix safety
Safe, from the table's remedy for the class: an exact rewrite (Conv1D/DepthwiseConv1D →
Reshape, Conv2D/DepthwiseConv2D 1×k, Reshape with the kernel reshaped; MaxPooling1D →
MaxPooling2D 1×p; a BatchNormalization or a Normalization → a 1×1 DepthwiseConv2D holding its
folded statistics, equal in inference) keeps the float outputs (checked to 1e-5); an
annotation with qfix's OutputQuantizeConfig changes nothing in the float model, only what tfmot
quantizes. Where the table says the annotated op still converts to float (LayerNormalization,
ELU, Average) the finding says so. Annotations are written into tf_keras configs (the QAT model);
in a Keras 3 config the fix is display-only until the model is translated. A class with no
remedy (recurrent layers, EinsumDense, ...) gets a display-only finding: use int8
post-training quantization for that model. A MultiHeadAttention is left float (a warning): qfix
annotates the rest of the model and trains it with `quantize_apply`; its ops stay float in the
converted model, which the target check then reports (on the Edge TPU: a cut at its first op).

## Targets
Every target: the rule reads no property of the target's profile; it fires only with
`--mode qat` (quantization-aware training with tfmot).
"""

from __future__ import annotations

from qfix.model import rewrites
from qfix.model import tfmot_registry as reg
from qfix.model.builtin_layers import is_builtin
from qfix.model.cases import functional_config, sequential_config
from qfix.model.config import activation_name
from qfix.model.rewrites import Rewrite
from qfix.model.rewrites.annotate_float_part import plan as float_part_plan
from qfix.rules.base import ModelCase, ModelRule
from qfix.types import Applicability, Severity

# Not this rule's: other QAT rules own them (nested models, Lambda/TFOpLambda, hub, inputs).
OWNED_ELSEWHERE = {"InputLayer", "Lambda", "TFOpLambda", "SlicingOpLambda", "KerasLayer", "TensorFlowOpLayer"}


def producer(graph, layer):
    """The layer whose output `layer` reads (its single input), or None."""
    ins = layer.inputs
    return graph.layers.get(ins[0].layer) if len(ins) == 1 else None


def activated_producer(graph, layer):
    """For a BatchNormalization: the Conv2D/DepthwiseConv2D/Dense before it whose non-linear
    activation keeps tfmot from folding it (QF503's case), else None."""
    prev = producer(graph, layer)
    if prev is None or prev.class_name not in reg.BN_FOLDS_INTO or prev.quantize_config:
        return None
    return None if reg.folds_batchnorm(prev.class_name, activation_name({"config": prev.config})) else prev


def folded(graph, bn) -> bool:
    """Whether tfmot's transforms fold the BatchNormalization `bn`: its input is a linear
    Conv2D/DepthwiseConv2D/Dense called once whose output nothing else reads (model_transformer
    matches an inner layer only when it has a single consumer and is not a model output)."""
    prev = producer(graph, bn)
    if prev is None or not reg.folds_batchnorm(prev.class_name, activation_name({"config": prev.config})):
        return False
    outputs = {t.layer for t in graph.outputs}
    return len(prev.calls) == 1 and len(graph.consumers(prev.name)) == 1 and prev.name not in outputs


class TfmotRejectedLayer(ModelRule):
    """QF502 tfmot-rejected-layer; documented in the module docstring (`qfix rule QF502`)."""

    code = "QF502"
    name = "tfmot-rejected-layer"
    fix_applicability = Applicability.SAFE

    def check(self, graph, ctx):
        if ctx.mode != "qat":
            return
        integer_part = float_part_plan(graph).integer  # never annotated: quantize_apply skips them
        for path, layer in graph.walk():
            g = _scope_graph(graph, path)
            if (layer.is_model or layer.is_op or layer.class_name in OWNED_ELSEWHERE or layer.quantize_config
                    or not is_builtin(layer) or (not path and layer.name in integer_part)):
                continue
            entry = reg.entry(layer.class_name)
            if layer.class_name == "BatchNormalization":
                if folded(g, layer) or activated_producer(g, layer) is not None:
                    continue  # tfmot folds it, or QF503 reports it
            elif not entry.rejected:
                continue
            yield self._finding(layer, path, entry, graph.dialect)

    def _finding(self, layer, path, entry, dialect):
        what = f"{layer.class_name} {layer.name!r}"
        if layer.class_name == "BatchNormalization":
            msg = (f"tfmot does not fold {what} (it folds a BN only right after a linear Conv2D/DepthwiseConv2D/"
                   "Dense that nothing else reads): quantize_model rejects it")
        else:
            said = entry.error.split(". ")[0]
            if said.startswith("is not supported"):
                said = f"Layer {layer.name}:<class '…{layer.class_name}'> {said}"
            msg = f"tfmot's 8-bit registry rejects {what}: quantize_model raises \"{said}\""
        if entry.remedy == reg.REWRITE:
            return self.violation(msg, layer.name, pointer=layer.pointer, fix=entry.advice,
                                  rewrite=Rewrite(getattr(rewrites, entry.rewrite), path, layer.name))
        if entry.remedy in (reg.ANNOTATE, reg.FLOAT):
            severity = Severity.WARNING if entry.remedy == reg.FLOAT else None
            if dialect != "tf_keras":
                return self.violation(msg, layer.name, pointer=layer.pointer, severity=severity,
                                      applicability=Applicability.DISPLAY_ONLY,
                                      fix=entry.advice + " (written once the model is translated to tf_keras)")
            return self.violation(msg, layer.name, pointer=layer.pointer, fix=entry.advice, severity=severity,
                                  rewrite=Rewrite(rewrites.annotate_quantize, path, layer.name))
        if entry.remedy == reg.KEEP_FLOAT:  # annotate_float_part leaves it out; QF506 confirms from tfmot's run
            return self.violation(f"{msg}; {what} stays float in the QAT model, only the rest is trained "
                                  "quantization-aware", layer.name, pointer=layer.pointer, severity=Severity.WARNING,
                                  applicability=Applicability.DISPLAY_ONLY, fix=entry.advice)
        return self.violation(msg, layer.name, pointer=layer.pointer, applicability=Applicability.DISPLAY_ONLY,
                              fix=entry.advice)

    CASES = [
        ModelCase(
            "conv1d",
            functional_config([("x", (None, 16, 4), "float32")],
                              [("conv", "Conv1D", {"filters": 8, "kernel_size": 3, "padding": "valid",
                                                   "activation": "relu"}, ["x"], "float32", (None, 14, 8))], ["conv"]),
            fires=True, count=1, mode="qat",
            expected=[("x", "InputLayer"), ("conv_pre", "Reshape"), ("conv_2d", "Conv2D"), ("conv", "Reshape")],
        ),
        ModelCase(
            "sequential-maxpool1d",
            sequential_config(("x", (None, 16, 4), "float32"), [("pool", "MaxPooling1D", {"pool_size": 2}, (None, 16, 4))]),
            fires=True, count=1, mode="qat",
            expected=[("x", "InputLayer"), ("pool", "Reshape"), ("pool_2d", "MaxPooling2D"), ("pool_1d", "Reshape")],
        ),
        ModelCase(
            "standalone-batchnorm",
            functional_config([("x", (None, 8, 8, 3), "float32")],
                              [("conv", "Conv2D", {"filters": 4, "kernel_size": 1}, ["x"], "float32", (None, 8, 8, 4)),
                               ("add", "Add", {}, ["conv", "conv"], "float32", (None, 8, 8, 4)),
                               ("bn", "BatchNormalization", {"axis": -1, "epsilon": 1e-3}, ["add"], "float32",
                                (None, 8, 8, 4))], ["bn"]),
            fires=True, count=1, mode="qat",
            expected={"name": "bn", "class_name": "DepthwiseConv2D"},
        ),
        ModelCase(  # Keras 3: the annotation is written after translation; display-only here
            "multiply-keras3",
            functional_config([("x", (None, 8), "float32")],
                              [("d", "Dense", {"units": 8}, ["x"]), ("m", "Multiply", {"__module": "keras.layers"}, ["x", "d"])], ["m"]),
            fires=True, count=1, mode="qat",
        ),
        ModelCase(  # integer ids in: the Embedding stays out of the annotated float part
            "embedding-of-integer-ids",
            functional_config([("ids", (None, 16), "int32")],
                              [("emb", "Embedding", {"input_dim": 50, "output_dim": 8}, ["ids"], "float32", (None, 16, 8)),
                               ("d", "Dense", {"units": 2}, ["emb"], "float32", (None, 16, 2))], ["d"]),
            fires=False, mode="qat",
        ),
        ModelCase(
            "multiply-ptq",
            functional_config([("x", (None, 8), "float32")],
                              [("d", "Dense", {"units": 8}, ["x"]), ("m", "Multiply", {"__module": "keras.layers"}, ["x", "d"])], ["m"]),
            fires=False,
        ),
        ModelCase(  # the conv's output is read twice: tfmot's pattern does not match, the BN is rejected
            "batchnorm-after-shared-linear-conv",
            functional_config([("x", (None, 8, 8, 3), "float32")],
                              [("conv", "Conv2D", {"filters": 4, "kernel_size": 1}, ["x"], "float32", (None, 8, 8, 4)),
                               ("bn", "BatchNormalization", {}, ["conv"], "float32", (None, 8, 8, 4)),
                               ("add", "Add", {}, ["bn", "conv"], "float32", (None, 8, 8, 4))], ["add"]),
            fires=True, count=1, mode="qat",
            expected={"name": "bn", "class_name": "DepthwiseConv2D"},
        ),
        ModelCase(
            "batchnorm-after-linear-conv",
            functional_config([("x", (None, 8, 8, 3), "float32")],
                              [("conv", "Conv2D", {"filters": 4, "kernel_size": 1}, ["x"], "float32", (None, 8, 8, 4)),
                               ("bn", "BatchNormalization", {}, ["conv"], "float32", (None, 8, 8, 4))], ["bn"]),
            fires=False, mode="qat",
        ),
        ModelCase(
            "supported-layers",
            sequential_config(("x", (None, 8, 8, 3), "float32"),
                              [("conv", "Conv2D", {"filters": 4, "kernel_size": 3}), ("pool", "MaxPooling2D", {}),
                               ("flat", "Flatten", {}), ("d", "Dense", {"units": 2, "activation": "softmax"})]),
            fires=False, mode="qat",
        ),
    ]


def _scope_graph(graph, path):
    g = graph
    for name in path:
        g = g.layers[name].subgraph
    return g
