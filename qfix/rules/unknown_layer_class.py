"""QF203 unknown-layer-class: layers whose class is not part of Keras (model).

## What it does
Finds layers in a `.keras` config whose class is not part of Keras: custom layers
(`register_keras_serializable`), `hub.KerasLayer`, classes from other packages.

## Why is this bad?
Loading the model means importing and running that class's code. qfix never imports it
unless you pass `--custom-objects MODULE`; tfmot needs a QuantizeConfig for each custom
layer. A `hub.KerasLayer` is the exception: qfix loads it itself (tensorflow_hub is a known
package) when the model is a tf_keras model and its handle is a local SavedModel folder
(relative to the model file's folder, then the current directory); a remote handle is never
downloaded, and hub.KerasLayer does not work with Keras 3 at all.

## Example
```json
{"class_name": "MyBlock", "registered_name": "my_pkg>MyBlock"}
```

## Use instead
Pass `--custom-objects my_pkg.layers` to let qfix load it, or rebuild the block from
built-in layers. For hub.KerasLayer, download the SavedModel and point the handle at its
folder; with `--mode qat`, QF507 inlines a Keras-saved backbone.

## Fix safety
Display-only.

## Targets
Every target: the rule reads no property of the target's profile.
"""

from __future__ import annotations

from qfix.model.cases import functional_config
from qfix.model.builtin_layers import is_builtin
from qfix.model.hub import HubError, is_hub_layer, resolve_handle
from qfix.types import Applicability
from qfix.rules.base import ModelCase, ModelRule


class UnknownLayerClass(ModelRule):
    """Model side of QF203 unknown-layer-class; documented once, in the module docstring
    (`qfix rule QF203`)."""

    code = "QF203"
    name = "unknown-layer-class"
    fix_applicability = Applicability.DISPLAY_ONLY
    blocks_loading = True
    opt_in = "custom_objects"
    refusal = "layer {layer!r} needs its class (--custom-objects MODULE)"

    def check(self, graph, ctx):
        allowed = ctx.custom_objects
        for _, layer in graph.walk():
            if is_builtin(layer):
                continue
            ident = layer.registered_name or f"{layer.module}.{layer.class_name}"
            if is_hub_layer(layer):
                try:  # a local SavedModel: qfix loads it (tf_keras), QF507 handles it in --mode qat
                    resolve_handle(layer.config.get("handle"), ctx.model_dir)
                    if graph.dialect == "tf_keras":
                        continue
                    why = "hub.KerasLayer is a tf_keras layer and does not work with Keras 3"
                except HubError as exc:
                    why = str(exc)
                msg = f"{layer.name!r} is a hub.KerasLayer ({ident}) that qfix cannot load: {why}"
                fix = "point the handle at a local SavedModel folder, in a tf_keras model"
            elif allowed:
                msg = f"{layer.name!r} is a custom class {ident!r}, loaded from --custom-objects {allowed}"
                fix = "give the layer a tfmot QuantizeConfig if you use --mode qat"
            else:
                msg = (f"{layer.name!r} is a custom class {ident!r}: the model cannot be loaded without "
                       "running its code; pass --custom-objects MODULE to allow it")
                fix = "pass --custom-objects MODULE, or rebuild the layer from built-in layers"
            yield self.violation(msg, layer.name, fix=fix, pointer=layer.pointer)

    CASES = [
        ModelCase(
            "registered-custom",
            functional_config(
                [("x", (None, 4), "float32")],
                [("blk", "MyBlock", {"__module": "my_pkg.layers", "__registered_name": "my_pkg>MyBlock"}, ["x"])],
                ["blk"],
            ),
            fires=True,
            count=1,
        ),
        ModelCase(
            "hub",
            functional_config(
                [("x", (None, 4), "float32")],
                [("hub", "KerasLayer", {"__module": "tensorflow_hub.keras_layer"}, ["x"])],
                ["hub"],
            ),
            fires=True,
            count=1,
        ),
        ModelCase(
            "builtin-dense",
            functional_config([("x", (None, 4), "float32")], [("d", "Dense", {"units": 2}, ["x"])], ["d"]),
            fires=False,
        ),
    ]
