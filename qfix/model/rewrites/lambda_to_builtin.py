"""Replace a Lambda layer whose body qfix reads by the built-in layer(s) computing the same
thing (QF202 lambda-layer, exact).

The body is read from the stored bytecode in a child process and evaluated symbolically
(`qfix.model.bytecode`, never executed), then matched against `qfix.model.lambda_table`
(`qfix.model.lambda_plan`): scale/offset → Rescaling, relu/relu6/clip from 0 → ReLU,
resize → Resizing, spatial slices → Cropping1D/2D/3D, channel slices → a 1×1 Conv2D / Dense
with a 0/1 selection kernel and no bias (written into model.weights.h5), and a few more. Every
row is the same function in float (Rescaling's `x * (1/c)` for `x / c` differs by at most one
float32 ulp). The first layer takes the Lambda's name and place; a second one (a cropping then
a selection) follows it and takes over a model output name.
"""

from __future__ import annotations

from typing import Any

from qfix.model.bytecode import Expr, Unreadable, read_lambda, render
from qfix.model.config import policy_name, tfk_entries
from qfix.model.edit import EditError, ModelEdit, make_layer
from qfix.model.lambda_plan import Plan, plan


def input_shape_of(edit: ModelEdit, scope: tuple[str, ...], name: str) -> Any:
    """The recorded input shape of layer `name` (its build_config, else the tensor it reads)."""
    raw = edit.layer(name, scope)
    shape = (raw.get("build_config") or {}).get("input_shape")
    if isinstance(shape, list) and all(d is None or isinstance(d, int) for d in shape):
        return shape
    ins = edit.inputs_of(name, scope)
    return edit.tensor_meta(ins[0], scope)[0] if len(ins) == 1 else None


def _plain_call(raw: dict[str, Any], dialect: str) -> None:
    """The layer's one call reads its input and nothing else (a Lambda's `mask`, a TFOpLambda's
    constant kwargs are arguments of the replaced function, not of a built-in layer)."""
    nodes = raw.get("inbound_nodes")
    if not nodes:  # a Sequential: no call nodes
        return
    if len(nodes) != 1:
        raise EditError(f"{raw.get('name')!r} is called {len(nodes)} times; only a single call can be rewritten")
    node = nodes[0]
    if dialect == "tf_keras":
        first = tfk_entries(node)[0]
        raw["inbound_nodes"] = [[[first[0], first[1], first[2], {}]]]
    else:
        raw["inbound_nodes"] = [{"args": [node["args"][0]], "kwargs": {}}]


def apply_plan(edit: ModelEdit, scope: tuple[str, ...], name: str, p: Plan) -> None:
    """Put the plan's layers in the place of layer `name` (one call, one input)."""
    raw = edit.layer(name, scope)
    dtype = policy_name((raw.get("config") or {}).get("dtype")) or "float32"
    shape = input_shape_of(edit, scope, name)
    first, *rest = p.steps
    edit.replace(name, make_layer(first.class_name, dict(first.config), edit.dialect, name, dtype=dtype,
                                  input_shape=shape), scope, weights=list(first.weights))
    _plain_call(edit.layer(name, scope), edit.dialect)
    prev = name
    for step in rest:
        layer = make_layer(step.class_name, dict(step.config), edit.dialect, f"{name}_{step.class_name.lower()}",
                           dtype=dtype)
        new = edit.insert_after((prev, 0, 0), layer, scope, weights=list(step.weights))
        prev = edit.take_output_name(new, prev, scope)


def read_plan(body: Expr | Unreadable, shape: Any, dialect: str) -> Plan | str:
    return body.reason if isinstance(body, Unreadable) else plan(body, shape, dialect)


def lambda_to_builtin(edit: ModelEdit, scope: tuple[str, ...], name: str) -> str:
    """`name` is a Lambda layer whose body `qfix.model.lambda_plan` maps to built-in layers."""
    raw = edit.layer(name, scope)
    if raw.get("class_name") != "Lambda":
        raise EditError(f"{name!r} is not a Lambda layer")
    body = read_lambda(raw.get("config") or {})
    p = read_plan(body, input_shape_of(edit, scope, name), edit.dialect)
    if isinstance(p, str):
        raise EditError(f"Lambda {name!r}: {p}")
    apply_plan(edit, scope, name, p)
    return f"Lambda {name!r} (`{render(body)}`) → {p.spelled()}: the same function, no bytecode"
