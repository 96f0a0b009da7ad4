"""QF304 target-op-unsupported: the TFLite ops of the converted model the target does not run (verify).

## What it does
After conversion, names the TFLite ops the target does not run, with the Keras layer each
came from and the target's reason. For a single-cut target it reports the cut: the first
unsupported op, and how many ops run on the CPU from there.

## Why is this bad?
Those ops run on the CPU; on a single-cut target everything after the first one does too,
so one late hard_swish can leave most of the model on the CPU.

## Example
MobileNetV3's HARD_SWISH in the stem, converted for the Edge TPU: the graph is cut at op 2.

## Use instead
The fix of the static rule that predicted it (QF302, QF303, QF301, ...), or move the layer
to the end of the model.

## Fix safety
Display-only: fixes belong to the rules that find the cause.

## Targets
Every target, judged by the profile's op table and constraints, or by the real compiler where
it runs and its placement is the verdict (Vela for the Ethos-U targets: each op it leaves on the
CPU, with Vela's reason; a file it refuses whole). A profile with
`placement = "prefix"` (one cut: the Edge TPU) gets one finding at the cut; others get one per
layer (the ops of that layer that miss, each with its reason), saying where the ops go when the
profile names it (`statuses.fallback`, e.g. "falls back to the CPU" for the GPU delegate). With
`placement = "all_or_nothing"` (TFLite Micro) only the ops that fail on their own account get a
finding; the ops that do not run because the model does not are counted in the first one. A profile with `version_failure = "model"` (the Edge TPU compiler) gets one
finding when an op version is too new for its toolchain: the file is rejected whole ("Model
could not be parsed"), nothing maps, and the finding names the layer whose own settings need
that version (a grouped Conv2D: CONV_2D v6; a Conv2DTranspose with a fused activation:
TRANSPOSE_CONV v4), with the layer change that avoids it (QF306, QF307).
"""

from __future__ import annotations

from qfix.rules.base import VerifyRule


class TargetOpUnsupported(VerifyRule):
    """Converted-model side of QF304 target-op-unsupported; documented once, in the module docstring
    (`qfix rule QF304`)."""

    code = "QF304"
    name = "target-op-unsupported"

    def check(self, placement, profile):
        # local: source-side start-up (LSP, `qfix script.py`) never needs numpy (qfix.targets.check imports it)
        from qfix.targets.check import from_layer

        off = [o for o in placement.ops if not o.on_target and not o.boundary]
        if not off:
            return
        first = placement.first_unsupported or {}
        hint = f" — fix: {first['fix_hint']}" if first.get("fix_hint") else ""
        if placement.model_failure:
            yield self.violation(
                f"{first.get('op')} (op {first.get('index')}) {from_layer(first.get('layer'))}: "
                f"{first.get('reason')} — {placement.model_failure}{hint}",
                first.get("layer"), ops=(first.get("op"),),
            )
            return
        if profile.placement == "prefix":
            after = sum(1 for o in off) - 1
            yield self.violation(
                f"{first.get('op')} (op {first.get('index')}) {from_layer(first.get('layer'))}: "
                f"{first.get('reason')} — the graph is cut here and {after} later op(s) run on the CPU{hint}",
                first.get("layer"), ops=(first.get("op"),),
            )
            return
        # Where an op that misses goes, in the profile's words (the GPU delegate: "falls back
        # to the CPU"); a profile without it says nothing more.
        goes = f" — {profile.statuses['fallback']}" if profile.placement == "islands" and "fallback" in profile.statuses else ""
        # One finding per cause: the ops of one layer that miss on their own account (a Keras 3
        # LSTM's WHILE and the STRIDED_SLICEs inside it), in one row; ops off target only
        # because the whole model fails (all_or_nothing) are summarised in the first row.
        own = [o for o in off if not o.spread]
        spread = len(off) - len(own)
        by_layer: dict[object, list] = {}
        for o in own:
            by_layer.setdefault(o.layer if o.layer is not None else ("op", o.index), []).append(o)
        for n, ops in enumerate(by_layer.values()):
            kinds: dict[str, list] = {}
            for o in ops:
                kinds.setdefault(o.op, []).append(o)
            where = ", ".join(f"{k} (op {', '.join(str(o.index) for o in group)})" for k, group in kinds.items())
            reasons = "; ".join(group[0].reason if len(kinds) == 1 else f"{k}: {group[0].reason}"
                                for k, group in kinds.items())
            hints = list(dict.fromkeys(o.fix_hint for o in ops if o.fix_hint))
            fix = f" — fix: {'; '.join(hints)}" if hints else ""
            rest = (f" — so nothing runs: the other {spread} op(s) of the model do not run either"
                    if n == 0 and spread else "")
            yield self.violation(f"{where} {from_layer(ops[0].layer)}: {reasons}{goes}{rest}{fix}", ops[0].layer,
                                 ops=tuple(kinds))
