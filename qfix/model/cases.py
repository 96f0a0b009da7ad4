"""Write small Keras 3-style configs from a compact spec (for embedded rule cases).

    functional_config(
        inputs=[("x", (None, 8, 8, 3), "uint8")],
        layers=[("c", "Cast", {"dtype": "float32"}, ["x"]), ("conv", "Conv2D", {}, ["c"])],
        outputs=["conv"],
    )

A layer spec is (name, class_name, config, input names[, output dtype[, output shape]]).
Class names of keras.ops (Cast, Add, …) become op nodes of module keras.src.ops.
`sequential_config` writes a Sequential; `empty_weights` the weights file of a config whose
layers have no variables yet, so a case's rewrites can be applied as the fix job applies them.
"""

from __future__ import annotations

import io
from typing import Any, Sequence

OPS = {"Cast", "Add", "Multiply", "Subtract", "Concatenate", "Matmul", "Einsum", "Erf", "Exp",
       "Divide", "Argmax", "Cumsum", "Sqrt", "Power", "Mean", "Reshape", "Transpose"}


def _tensor(name: str, shape: Sequence[int | None] | None, dtype: str) -> dict[str, Any]:
    return {
        "class_name": "__keras_tensor__",
        "config": {"shape": list(shape) if shape is not None else None, "dtype": dtype, "keras_history": [name, 0, 0]},
    }


def functional_config(
    inputs: Sequence[tuple[str, Sequence[int | None], str]],
    layers: Sequence[tuple],
    outputs: Sequence[str],
    name: str = "model",
) -> dict[str, Any]:
    out_types: dict[str, tuple[Any, str]] = {}
    entries: list[dict[str, Any]] = []
    for iname, shape, dtype in inputs:
        out_types[iname] = (list(shape), dtype)
        entries.append({
            "module": "keras.layers", "class_name": "InputLayer", "registered_name": None, "name": iname,
            "config": {"batch_shape": list(shape), "dtype": dtype, "name": iname}, "inbound_nodes": [],
        })
    for spec in layers:
        lname, cls, cfg, ins = spec[:4]
        dtype = spec[4] if len(spec) > 4 else "float32"
        shape = spec[5] if len(spec) > 5 else out_types[ins[0]][0] if ins else None
        args = [_tensor(i, *out_types[i]) for i in ins]
        module = "keras.src.ops.core" if cls in OPS else "keras.layers"
        extra = {k: v for k, v in cfg.items() if k.startswith("__")}
        cfg = {k: v for k, v in cfg.items() if not k.startswith("__")}
        entries.append({
            "module": extra.get("__module", module),
            "class_name": cls,
            "registered_name": extra.get("__registered_name"),
            "name": lname,
            "config": {"name": lname, "dtype": "float32", **cfg},
            "inbound_nodes": [{"args": [args] if len(args) > 1 else args, "kwargs": {}}],
            **({"__subconfig": extra["__sub"]} if "__sub" in extra else {}),
        })
        if "__sub" in extra:  # nested model: the spec's config holds the inner model config
            entries[-1]["config"] = {**extra["__sub"]["config"], "name": lname}
            entries[-1].pop("__subconfig")
        out_types[lname] = (shape, dtype)
    return {
        "module": "keras.src.models.functional",
        "class_name": "Functional",
        "registered_name": "Functional",
        "config": {
            "name": name,
            "layers": entries,
            "input_layers": [[i[0], 0, 0] for i in inputs],
            "output_layers": [[o, 0, 0] for o in outputs],
        },
    }


def sequential_config(
    input: tuple[str, Sequence[int | None], str], layers: Sequence[tuple], name: str = "sequential"
) -> dict[str, Any]:
    """A Keras 3 Sequential: an InputLayer, then each layer spec (name, class_name, config[,
    build input shape]) in order, as Keras 3 saves them (no inbound nodes). A nested model's
    spec gives its model config as `{"__sub": config}`, as in `functional_config`."""
    iname, shape, dtype = input
    entries: list[dict[str, Any]] = [{
        "module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
        "config": {"batch_shape": list(shape), "dtype": dtype, "name": iname},
    }]
    for spec in layers:
        lname, cls, cfg = spec[:3]
        entry: dict[str, Any] = {"module": "keras.layers", "class_name": cls, "registered_name": None,
                                 "config": {"name": lname, "dtype": "float32", **cfg}}
        if "__sub" in cfg:
            entry["config"] = {**cfg["__sub"]["config"], "name": lname}
        if len(spec) > 3:
            entry["build_config"] = {"input_shape": list(spec[3])}
        entries.append(entry)
    return {"module": "keras", "class_name": "Sequential", "registered_name": None,
            "config": {"name": name, "layers": entries, "build_input_shape": list(shape)}}


def empty_weights(config: dict[str, Any], dialect: str = "keras3") -> bytes:
    """A `model.weights.h5` with an empty group per layer, as Keras writes for weightless layers."""
    import h5py

    from qfix.model.weights import group_keys

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_group("vars")
        for group in group_keys(config, dialect).values():
            f.create_group(group + "/vars")
    return buf.getvalue()
