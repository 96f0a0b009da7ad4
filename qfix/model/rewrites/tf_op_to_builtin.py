"""Replace a tf_keras TFOpLambda / SlicingOpLambda layer by the built-in layer(s) computing the
same thing (QF508 tf-op-layer, exact).

tf_keras records a raw TensorFlow call on a Keras tensor (`x * 2.0`, `tf.nn.relu6(x)`,
`x[:, :, :, 0:2]`) as a layer whose config holds the function's name (`"math.multiply"`,
`"nn.relu6"`, `"__operators__.getitem"`) and whose inbound node holds the call's constant
arguments (`{"y": 2.0, "name": null}`, `{"slice_spec": [...]}`). `qfix.model.lambda_plan`
reads that call as the same expression a Lambda body would be and matches it against
`qfix.model.lambda_table`; the rewrite is `lambda_to_builtin`'s (see there for exactness).
Ops reading two tensors (`x * y`) are not rewritten.
"""

from __future__ import annotations

from qfix.model.bytecode import render
from qfix.model.edit import EditError, ModelEdit
from qfix.model.lambda_plan import op_expr
from qfix.model.rewrites.lambda_to_builtin import apply_plan, input_shape_of, read_plan

OP_CLASSES = ("TFOpLambda", "SlicingOpLambda")


def tf_op_to_builtin(edit: ModelEdit, scope: tuple[str, ...], name: str) -> str:
    """`name` is a TFOpLambda / SlicingOpLambda of one tensor that maps to built-in layers."""
    raw = edit.layer(name, scope)
    if raw.get("class_name") not in OP_CLASSES:
        raise EditError(f"{name!r} is not a tf_keras TFOpLambda / SlicingOpLambda")
    call = op_expr(raw)
    p = read_plan(call, input_shape_of(edit, scope, name), edit.dialect)
    if isinstance(p, str):
        raise EditError(f"{raw['class_name']} {name!r}: {p}")
    apply_plan(edit, scope, name, p)
    return f"{raw['class_name']} {name!r} (`{render(call)}`) → {p.spelled()}: the same function, tfmot quantizes it"
