"""Base of the rules that read the converted model's op-by-op placement."""

from __future__ import annotations

from typing import Any, ClassVar, Iterable

from ..types import Location, Severity, Violation


class VerifyRule:
    SIDE: ClassVar[str] = "verify"
    code: ClassVar[str]
    name: ClassVar[str]

    def check(self, placement: Any, profile: Any) -> Iterable[Violation]:  # pragma: no cover
        raise NotImplementedError

    def violation(self, message: str, layer: str | None, severity: Severity = Severity.BLOCKER) -> Violation:
        return Violation(self.code, self.name, message, Location(layer=layer), severity)
