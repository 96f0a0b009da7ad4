"""QF507 hub-keras-layer: a TF-Hub `hub.KerasLayer` that tfmot cannot quantize (model, --mode qat).

## What it does
With `--mode qat`, finds `hub.KerasLayer` layers in a tf_keras model and reads the SavedModel
each one wraps (never downloading it, never running anything in it):

* saved from Keras (it has `keras_metadata.pb`): the backbone's layers can be inlined;
* a plain TF SavedModel, or a backbone with a custom layer, a Lambda (without
  `--trust-lambdas`) or a nested model, or a hub layer called with `arguments` or a
  signature: the backbone stays float, and the finding says why;
* a remote handle (a URL), or a path that is missing or not a SavedModel folder: the model
  cannot be used as it is.

## Why is this bad?
`tfmot.quantization.keras.quantize_model` sees a hub layer as one opaque layer with no
QuantizeConfig and refuses the whole model (reproduced on TF 2.21 / tfmot 0.8; tfmot#786):
``RuntimeError: Layer keras_layer:<class 'tensorflow_hub.keras_layer.KerasLayer'> is not
supported. You can quantize this layer by passing a `tfmot.quantization.keras.QuantizeConfig`
instance to the `quantize_annotate_layer` API.`` Even annotated with a no-op config, the
backbone, which holds nearly all of the model's compute, trains and converts in float.

## Example
```python
backbone = hub.KerasLayer("feature_extractor/", trainable=False)  # a Keras-saved SavedModel
model = tf_keras.Sequential([tf_keras.Input((96, 96, 3)), backbone, tf_keras.layers.Dense(5)])
tfmot.quantization.keras.quantize_model(model)  # RuntimeError: Layer keras_layer ... is not supported
```

## Use instead
```python
backbone = tf_keras.models.load_model("feature_extractor/")  # its real Keras layers
backbone.trainable = False
inputs = tf_keras.Input((96, 96, 3))
model = tf_keras.Model(inputs, tf_keras.layers.Dense(5)(backbone(inputs)))  # then flatten it (QF201)
```
qfix does this on the saved model: the hub layer is replaced by the backbone's layers, with the
variables the hub layer holds in `model.weights.h5` (fine-tuned or not). For a plain TF
SavedModel, use the backbone's Keras version (keras.applications) to train it
quantization-aware, or accept a float backbone.

## Fix safety
Safe when the backbone was saved from Keras: the inlined layers compute the same function with
the same variables (float outputs checked equal to 1e-5); a frozen hub layer
(`trainable=False`) gives frozen layers. Otherwise display-only.

## Targets
Every target: the rule reads no property of the target's profile. It runs only with
`--mode qat`; hub handles that cannot be used are reported in every mode by QF203.
"""

from __future__ import annotations

from qfix.model.cases import functional_config, sequential_config
from qfix.model.hub import Backbone, HubError, is_hub_layer, read_backbone, refusal, resolve_handle
from qfix.model.rewrites import Rewrite
from qfix.model.rewrites.inline_hub import inline_hub
from qfix.rules.base import ModelCase, ModelRule
from qfix.types import Applicability, Severity

_HUB = {"__module": "tensorflow_hub.keras_layer", "__registered_name": "KerasLayer", "trainable": False}


def _hub_sequential(handle: str) -> dict:
    """A Sequential of a hub layer and a Dense head (sequential_config writes only Keras modules)."""
    config = sequential_config(("x", (None, 8, 8, 3), "float32"),
                               [("features", "KerasLayer", {"trainable": False, "handle": handle}),
                                ("head", "Dense", {"units": 2}, (None, 4))])
    config["config"]["layers"][1].update(module="tensorflow_hub.keras_layer", registered_name="KerasLayer")
    return config


class HubKerasLayer(ModelRule):
    """Model side of QF507 hub-keras-layer; documented once, in the module docstring
    (`qfix rule QF507`)."""

    code = "QF507"
    name = "hub-keras-layer"
    # Display-only unless the backbone can be inlined (then a finding carries a safe rewrite).
    fix_applicability = Applicability.DISPLAY_ONLY

    def check(self, graph, ctx):
        if ctx.mode != "qat":
            return
        for path, layer in graph.walk():
            if not is_hub_layer(layer):
                continue
            handle = layer.config.get("handle")
            try:
                backbone = read_backbone(resolve_handle(handle, ctx.model_dir))
            except HubError as exc:
                yield self.violation(
                    f"hub.KerasLayer {layer.name!r} cannot be used: {exc}", layer.name,
                    fix="point the handle at a local SavedModel folder (relative to the model file)",
                    pointer=layer.pointer)
                continue
            why = refusal(backbone, ctx.trust_lambdas, layer.config)
            if graph.dialect != "tf_keras":  # a crafted file: Keras 3 cannot hold a hub layer
                why = "hub.KerasLayer is a tf_keras layer and this is not a tf_keras model"
            if why is None:
                yield self.violation(
                    f"hub.KerasLayer {layer.name!r} hides {_count(backbone)} Keras layers of "
                    f"{backbone.folder.name!r} from tfmot, whose quantize_model rejects it (\"Layer "
                    f"{layer.name} ... is not supported\")", layer.name,
                    fix="inline the backbone's layers into the model, with the hub layer's variables",
                    applicability=Applicability.SAFE, pointer=layer.pointer,
                    rewrite=Rewrite(_bound(ctx.model_dir, ctx.trust_lambdas), path, layer.name))
            else:
                yield self.violation(
                    f"hub.KerasLayer {layer.name!r} stays float: {why}; qfix cannot show its layers "
                    "to tfmot, so only the rest of the model is trained quantization-aware", layer.name,
                    fix="to quantize the backbone too, save it from tf_keras (model.save(folder)) with "
                        "built-in layers only, or use its keras.applications version",
                    severity=Severity.WARNING, pointer=layer.pointer)

    CASES = [
        ModelCase(
            "remote-handle",
            functional_config(
                [("x", (None, 8, 8, 3), "float32")],
                [("features", "KerasLayer", {**_HUB, "handle": "https://tfhub.dev/google/imagenet/x/5"}, ["x"],
                  "float32", (None, 4)),
                 ("head", "Dense", {"units": 2}, ["features"], "float32", (None, 2))],
                ["head"],
            ),
            fires=True,
            mode="qat",
            count=1,
        ),
        ModelCase(
            "missing-folder-in-sequential",
            _hub_sequential("no/such/qfix-backbone"),
            fires=True,
            mode="qat",
            count=1,
        ),
        ModelCase(
            "ptq-mode",
            functional_config(
                [("x", (None, 8, 8, 3), "float32")],
                [("features", "KerasLayer", {**_HUB, "handle": "https://tfhub.dev/google/imagenet/x/5"}, ["x"])],
                ["features"],
            ),
            fires=False,
        ),
        ModelCase(
            "no-hub-layer",
            sequential_config(("x", (None, 4), "float32"), [("head", "Dense", {"units": 2}, (None, 4))]),
            fires=False,
            mode="qat",
        ),
    ]


def _count(backbone: Backbone) -> int:
    return sum(1 for raw in (backbone.config or {}).get("config", {}).get("layers", [])
               if raw.get("class_name") != "InputLayer")


def _bound(model_dir: str | None, trust_lambdas: bool):
    """`inline_hub` as a rewrite (edit, scope, name), with the run's model folder and trust."""

    def inline_hub_layer(edit, scope, name):
        return inline_hub(edit, scope, name, model_dir=model_dir, trust_lambdas=trust_lambdas)

    return inline_hub_layer
