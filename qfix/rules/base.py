"""The shape of a model rule. Source rules live beside them (see qfix/source/rule.py).

A rule module holds one code, and its module docstring is that code's one document (both
sides; sections What it does / Why is this bad? / Example / Use instead / Fix safety /
Targets, see `qfix.rules.docs`). A model rule's `CASES` lists embedded model cases the test
suite runs: each a tiny functional config plus whether the rule must fire.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Iterable

from qfix.types import Applicability, Fix, Location, Severity, Violation

if TYPE_CHECKING:  # pragma: no cover
    from qfix.model.graph import Graph
    from qfix.targets import Profile


@dataclass
class ModelCase:
    """An embedded case: `layers` builds a config with qfix.model.cases.functional_config."""

    name: str
    config: dict[str, Any]
    fires: bool
    targets: tuple[str, ...] = ("edgetpu",)
    mode: str = "ptq"
    count: int | None = None  # exact number of findings expected when fires


@dataclass
class Context:
    """What a rule knows besides the graph."""

    target: "Profile"
    mode: str = "ptq"  # "ptq" or "qat"
    options: dict[str, Any] = field(default_factory=dict)


class ModelRule:
    SIDE: ClassVar[str] = "model"
    code: ClassVar[str]
    name: ClassVar[str]
    severity: ClassVar[Severity] = Severity.BLOCKER
    fix_applicability: ClassVar[Applicability | None] = None
    CASES: ClassVar[list[ModelCase]] = []

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
    ) -> Violation:
        app = applicability or self.fix_applicability
        return Violation(
            code=self.code,
            name=self.name,
            message=message,
            location=Location(layer=layer, pointer=pointer),
            severity=severity or self.severity,
            fix=Fix(app, fix) if (fix and app) else None,
        )


class VerifyRule:
    """A rule over the converted model's op-by-op placement (what static rules cannot predict)."""

    SIDE: ClassVar[str] = "verify"
    code: ClassVar[str]
    name: ClassVar[str]

    def check(self, placement: Any, profile: Any) -> Iterable[Violation]:  # pragma: no cover
        raise NotImplementedError

    def violation(self, message: str, layer: str | None, severity: Severity = Severity.BLOCKER) -> Violation:
        return Violation(self.code, self.name, message, Location(layer=layer), severity)
