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

from qfix.model.config import activation_name, policy_name
from qfix.model.edit import EditError, ModelEdit, make_layer
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
    split = _split_rescaling(edit, scope, name, raw)
    wrap(edit, scope, name, qconfig)
    note = f"{raw.get('class_name')} {name!r} annotated with qfix's {qconfig} (float outputs unchanged)"
    if split:
        wrap(edit, scope, split, qconfig)
        note += f"; its offset split off as Rescaling {split!r}, annotated alike"
    return note


def _split_rescaling(edit: ModelEdit, scope: tuple[str, ...], name: str, raw: dict) -> str | None:
    """A Rescaling with a scale and an offset computes x·scale + offset as MUL then ADD; with
    one output quantizer after both, the converter leaves both float (MobileNetV3's input
    Rescaling: DEQUANTIZE first, the Edge TPU gets 1 op of 158). As Rescaling(scale) then
    Rescaling(1, offset), each quantized, both convert to integer, and the float values are
    the same operations in the same order. Returns the new layer's name, or None."""
    cfg = raw.get("config") or {}
    if raw.get("class_name") != "Rescaling" or not cfg.get("offset") or cfg.get("scale", 1.0) == 1.0:
        return None
    shape = edit.tensor_meta((name, 0, 0), scope)[0]
    layer = make_layer("Rescaling", {"scale": 1.0, "offset": cfg["offset"]}, edit.dialect, f"{name}_offset",
                       dtype=policy_name(cfg.get("dtype")) or "float32",
                       input_shape=shape if isinstance(shape, list) else None)
    cfg["offset"] = 0.0
    new = edit.insert_after((name, 0, 0), layer, scope)
    return edit.take_output_name(new, name, scope)


def annotate_pass_through(edit: ModelEdit, scope: tuple[str, ...], name: str) -> str:
    """`name` is a layer whose output tfmot quantizes on its own although TFLite needs its input's
    scale there (AveragePooling2D, QF509): annotated with qfix's NoOpQuantizeConfig, the converter
    carries the input's scale through, as for MaxPooling2D."""
    raw = edit.layer(name, scope)
    wrap(edit, scope, name, "NoOpQuantizeConfig")
    return f"{raw.get('class_name')} {name!r} annotated with qfix's NoOpQuantizeConfig (it keeps its input's scale)"
