"""Annotate a layer with one of qfix's QuantizeConfigs (QF502/QF504, changes no float value).

tfmot's `quantize_model` rejects a layer outside its registry unless the layer is wrapped in a
`QuantizeAnnotate` that names a QuantizeConfig; `quantize_model` then leaves the annotation as
it is and quantizes what the config says. The wrapper is written exactly as tf_keras saves one
(`quantize_annotate_layer(layer, OutputQuantizeConfig())`, then `model.save`): the layer's
entry moves, without its name, inbound nodes and build config, under `config.layer`; the
wrapper takes the layer's name (so every reference stays), inbound nodes and build config; the
config is serialized by its registered name, `qfix>OutputQuantizeConfig`. Its weights move
under the wrapper's group (`layers/quantize_annotate/layer/vars`, qfix.model.weights).

Which config a layer gets comes from `qfix.model.tfmot_registry`. Loading the result needs the
quantize scope with `qfix.convert.qat_configs.custom_objects()`. tf_keras only: tfmot does not
work with Keras 3 models (translate first).
"""

from __future__ import annotations

from qfix.model.config import activation_name
from qfix.model.edit import EditError, ModelEdit
from qfix.model import tfmot_registry as reg

MODULE = "tensorflow_model_optimization.python.core.quantization.keras.quantize_annotate"


def annotation(raw: dict, qconfig: str) -> dict:
    """The QuantizeAnnotate entry wrapping the layer entry `raw` with qfix's `qconfig`."""
    cfg = raw.get("config") or {}
    name = cfg.get("name") or raw.get("name")
    inner = {k: v for k, v in raw.items() if k not in ("name", "inbound_nodes")}
    out = {
        "module": MODULE, "class_name": "QuantizeAnnotate", "registered_name": "QuantizeAnnotate",
        "config": {"name": name, "trainable": cfg.get("trainable", True), "dtype": cfg.get("dtype", "float32"),
                   "layer": inner, "quantize_config": {"class_name": f"qfix>{qconfig}", "config": {}}},
    }
    if "build_config" in raw:
        out["build_config"] = raw["build_config"]
    if "name" in raw:
        out["name"] = raw["name"]
    if "inbound_nodes" in raw:
        out["inbound_nodes"] = raw["inbound_nodes"]
    return out


def qconfig_for(raw: dict) -> str:
    """The config the table gives the layer entry `raw` (an Activation: by its activation)."""
    cls = raw.get("class_name")
    if cls == "Activation":
        return reg.activation_qconfig(activation_name(raw))
    entry = reg.entry(str(cls))
    if entry.qconfig is None:
        raise EditError(f"{cls} has no QuantizeConfig in qfix's table ({entry.why})")
    return entry.qconfig


def wrap(edit: ModelEdit, scope: tuple[str, ...], name: str, qconfig: str) -> None:
    """Wrap layer `name` in a QuantizeAnnotate with `qconfig`, in place."""
    if edit.dialect != "tf_keras":
        raise EditError("a tfmot annotation is written for tf_keras configs (tfmot does not load Keras 3 models)")
    model = edit.model(scope)
    raw = edit.layer(name, scope)
    if raw.get("class_name") == "QuantizeAnnotate":
        raise EditError(f"{name!r} is annotated already")
    layers = model["config"]["layers"]
    layers[layers.index(raw)] = annotation(raw, qconfig)


def annotate_quantize(edit: ModelEdit, scope: tuple[str, ...], name: str) -> str:
    """`name` is a layer tfmot rejects and qfix's table gives a QuantizeConfig."""
    raw = edit.layer(name, scope)
    qconfig = qconfig_for(raw)
    wrap(edit, scope, name, qconfig)
    return f"{raw.get('class_name')} {name!r} annotated with qfix's {qconfig} (float outputs unchanged)"
