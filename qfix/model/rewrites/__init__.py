"""Exact graph rewrites of a `.keras` config, one module per rewrite, named for what it does.

A rewrite is a function `(edit: ModelEdit, scope, name) -> note`: it edits the layer `name` of
the model at `scope` (the names of the nested models above it, `()` for the top level) in
`edit`, and returns one line saying what changed. It raises EditError when it does not apply
(the finding stays, reported as not fixed). It never re-keys the weights: whoever applies it
calls `edit.weights(...)` once afterwards.

A model rule binds a rewrite to the layer of its finding (`Rewrite`, carried in `Fix.edits`);
any other pass (a QAT mode) can call the functions directly, e.g.
`rewrites.flatten_nested(edit, (), "backbone")`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from qfix.types import QfixError
from qfix.model.edit import EditError, ModelEdit

Scope = tuple[str, ...]
RewriteFn = Callable[[ModelEdit, Scope, str], str]


@dataclass(frozen=True)
class Rewrite:
    """A rewrite bound to one layer: what a model finding's `Fix.edits` holds."""

    run: RewriteFn
    scope: Scope
    layer: str

    @property
    def recipe_neutral(self) -> bool:
        """True when qfix's conversion recipe already does what the rewrite does, so the
        converted model is the same and no "before" conversion is needed to prove it."""
        return getattr(self.run, "recipe_neutral", False)

    def apply(self, edit: ModelEdit) -> str:
        """Run the rewrite on `edit`. A rewrite meets configs no fixture has: an unexpected
        structure is an EditError, never a traceback."""
        try:
            return self.run(edit, self.scope, self.layer)
        except EditError:
            raise
        except (KeyError, IndexError, TypeError, AttributeError, StopIteration, ValueError, OverflowError,
                QfixError) as exc:
            raise EditError(f"{self.run.__name__}: unexpected config structure "
                            f"({type(exc).__name__}: {exc})") from exc


# The rewrites, each importable as `rewrites.<name>`.
from qfix.model.rewrites.annotate_quantize import annotate_pass_through, annotate_quantize  # noqa: E402
from qfix.model.rewrites.batchnorm_as_depthwise import batchnorm_as_depthwise  # noqa: E402
from qfix.model.rewrites.conv1d_as_conv2d import conv1d_as_conv2d  # noqa: E402
from qfix.model.rewrites.dense_as_conv import dense_as_conv  # noqa: E402
from qfix.model.rewrites.densify_grouped_conv import densify_grouped_conv  # noqa: E402
from qfix.model.rewrites.depthwise_grouped_conv import depthwise_grouped_conv  # noqa: E402
from qfix.model.rewrites.drop_noop_cast import drop_noop_cast  # noqa: E402
from qfix.model.rewrites.flatten_nested import flatten_nested  # noqa: E402
from qfix.model.rewrites.float_kernel_cast import float_kernel_cast  # noqa: E402
from qfix.model.rewrites.float_merge_cast import float_merge_cast  # noqa: E402
from qfix.model.rewrites.fold_input_cast import fold_input_cast  # noqa: E402
from qfix.model.rewrites.gelu_tanh import gelu_tanh  # noqa: E402
from qfix.model.rewrites.hard_sigmoid_tf_keras import hard_sigmoid_tf_keras  # noqa: E402
from qfix.model.rewrites.hard_swish import hard_swish  # noqa: E402
from qfix.model.rewrites.hard_swish_spelled import hard_swish_spelled  # noqa: E402
from qfix.model.rewrites.inline_hub import inline_hub  # noqa: E402
from qfix.model.rewrites.lambda_to_builtin import lambda_to_builtin  # noqa: E402
from qfix.model.rewrites.layernorm_decomposed import layernorm_decomposed  # noqa: E402
from qfix.model.rewrites.leaky_relu_to_prelu import leaky_relu_to_prelu  # noqa: E402
from qfix.model.rewrites.mixed_merge_cast import mixed_merge_cast  # noqa: E402
from qfix.model.rewrites.narrow_64bit import narrow_64bit  # noqa: E402
from qfix.model.rewrites.normalization_as_depthwise import normalization_as_depthwise  # noqa: E402
from qfix.model.rewrites.pool1d_as_pool2d import pool1d_as_pool2d  # noqa: E402
from qfix.model.rewrites.repeat_vector_to_resizing import repeat_vector_to_resizing  # noqa: E402
from qfix.model.rewrites.split_activation import split_activation  # noqa: E402
from qfix.model.rewrites.split_grouped_conv import split_grouped_conv  # noqa: E402
from qfix.model.rewrites.static_batch import static_batch  # noqa: E402
from qfix.model.rewrites.tf_op_to_builtin import tf_op_to_builtin  # noqa: E402
from qfix.model.rewrites.unfuse_transpose_conv import unfuse_transpose_conv  # noqa: E402
from qfix.model.rewrites.unroll_rnn import unroll_rnn  # noqa: E402
from qfix.model.rewrites.upsampling1d_to_resizing import upsampling1d_to_resizing  # noqa: E402
from qfix.model.rewrites.upsampling_to_resizing import upsampling_to_resizing  # noqa: E402

__all__ = ["EditError", "Rewrite", "RewriteFn", "Scope", "annotate_pass_through", "annotate_quantize", "batchnorm_as_depthwise",
           "conv1d_as_conv2d", "dense_as_conv", "densify_grouped_conv", "depthwise_grouped_conv", "drop_noop_cast", "flatten_nested", "float_kernel_cast", "float_merge_cast", "fold_input_cast", "gelu_tanh", "hard_sigmoid_tf_keras", "hard_swish",
           "hard_swish_spelled", "inline_hub", "lambda_to_builtin", "layernorm_decomposed", "leaky_relu_to_prelu", "mixed_merge_cast",
           "narrow_64bit", "normalization_as_depthwise", "pool1d_as_pool2d", "repeat_vector_to_resizing", "split_activation", "split_grouped_conv",
           "static_batch", "tf_op_to_builtin", "unfuse_transpose_conv", "unroll_rnn", "upsampling1d_to_resizing",
           "upsampling_to_resizing"]
