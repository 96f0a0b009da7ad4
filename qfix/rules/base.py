"""The shape of a model rule. Source rules live beside them (see qfix/source/rule.py).

A rule module holds one code, and its module docstring is that code's one document (both
sides; sections What it does / Why is this bad? / Example / Use instead / Fix safety /
Targets, see `qfix.rules.docs`). A model rule's `CASES` lists embedded model cases the test
suite runs: each a tiny config, whether the rule must fire, and what the rewrites its findings
carry make of it. A fixable finding carries its rewrite in `Fix.edits`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Iterable

from qfix.types import Applicability, Fix, Location, Severity, Violation

if TYPE_CHECKING:  # pragma: no cover
    from qfix.model.graph import Graph
    from qfix.model.rewrites import Rewrite
    from qfix.targets import Profile


@dataclass
class ModelCase:
    """An embedded case: `config` is built with qfix.model.cases.functional_config (or
    sequential_config).

    `expected` states the fix's result when the case fires: the layers (name, class), in
    order, after the rewrites its findings carry are applied; or a config fragment (a dict)
    that must be present in the rewritten config."""

    name: str
    config: dict[str, Any]
    fires: bool
    targets: tuple[str, ...] = ("edgetpu",)
    mode: str = "ptq"
    count: int | None = None  # exact number of findings expected when fires
    expected: list[tuple[str, str]] | dict[str, Any] | None = None
    dialect: str = "keras3"  # the graph's dialect ("tf_keras": the config read as tf_keras saved it)


@dataclass
class Context:
    """What a rule knows besides the graph."""

    target: "Profile"
    mode: str = "ptq"  # "ptq" or "qat"
    trust_lambdas: bool = False  # --trust-lambdas: Lambda bytecode may run when loading
    custom_objects: str | None = None  # --custom-objects MODULE: custom classes may be imported
    model_dir: str | None = None  # the model file's folder: relative paths in the model (hub handles) start there


# What an op the target lacks does to the model, by the profile's placement model
# (qfix.targets.PLACEMENTS): the Edge TPU cuts the graph once, Vela and the CPU make islands.
CONSEQUENCE = {
    "prefix": "the graph is cut there, and it and every op after it run on the CPU",
    "islands": "the op falls back to the CPU",
    "all_or_nothing": "the model will not run on the target at all",
}


def consequence(profile: "Profile") -> str:
    """The clause a finding about a missing op ends with, for `profile`'s placement."""
    return CONSEQUENCE.get(profile.placement, CONSEQUENCE["islands"])


class ModelRule:
    SIDE: ClassVar[str] = "model"
    code: ClassVar[str]
    name: ClassVar[str]
    severity: ClassVar[Severity] = Severity.BLOCKER
    fix_applicability: ClassVar[Applicability | None] = None
    CASES: ClassVar[list[ModelCase]] = []
    # A finding of a rule that blocks loading stops qfix from loading the model (that would run
    # code from the file) unless the Context field named by `opt_in` is set; `refusal` says why.
    blocks_loading: ClassVar[bool] = False
    # The converter refuses a model with this finding (not a crash: an error it raises). The
    # check reports "not converted" beside the finding instead of stopping on QF909.
    fails_conversion: ClassVar[bool] = False
    opt_in: ClassVar[str | None] = None
    refusal: ClassVar[str] = ""

    def check(self, graph: "Graph", ctx: Context) -> Iterable[Violation]:  # pragma: no cover
        raise NotImplementedError

    def violation(
        self,
        message: str,
        layer: str | None = None,
        *,
        fix: str | None = None,
        applicability: Applicability | None = None,
        severity: Severity | None = None,
        pointer: str | None = None,
        rewrite: "Rewrite | None" = None,
        ops: tuple[str, ...] = (),
        numeric: bool = False,
    ) -> Violation:
        """A finding; `rewrite` is the model rewrite that fixes it, bound to its layer (none for
        a display-only fix, or where another finding's rewrite covers this one)."""
        app = applicability or self.fix_applicability
        edits = [rewrite] if rewrite is not None and app is not Applicability.DISPLAY_ONLY else []
        return Violation(
            code=self.code,
            name=self.name,
            message=message,
            location=Location(layer=layer, pointer=pointer),
            severity=severity or self.severity,
            fix=Fix(app, fix, edits) if (fix and app) else None,
            ops=tuple(ops),
            numeric=numeric,
        )

    def refuses_loading(self, v: Violation, opts: Any) -> str | None:
        """Why qfix will not load the model for this finding, or None. `opts` has the opt-in
        as an attribute of the same name (a Context, or the jobs' Options)."""
        if not self.blocks_loading or (self.opt_in and getattr(opts, self.opt_in)):
            return None
        return "not converted: " + self.refusal.format(layer=v.location.layer)


class VerifyRule:
    """A rule over the converted model's op-by-op placement (what static rules cannot predict)."""

    SIDE: ClassVar[str] = "verify"
    code: ClassVar[str]
    name: ClassVar[str]

    def check(self, placement: Any, profile: Any) -> Iterable[Violation]:  # pragma: no cover
        raise NotImplementedError

    def violation(self, message: str, layer: str | None, severity: Severity = Severity.BLOCKER,
                  ops: tuple[str, ...] = ()) -> Violation:
        return Violation(self.code, self.name, message, Location(layer=layer), severity, ops=tuple(ops))
