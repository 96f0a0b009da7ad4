"""The one error of the translation."""

from __future__ import annotations


class Untranslatable(Exception):
    """A layer or construct of the Keras 3 model that tf_keras has no equivalent for.
    `layer` names it (as the config does), `reason` says what has no equivalent."""

    def __init__(self, layer: str, reason: str):
        super().__init__(f"{layer}: {reason}")
        self.layer, self.reason = layer, reason
