"""The tfmot QuantizeConfigs qfix ships for `--mode qat` (registered, serializable), and the
objects a quantize scope needs to load a model annotated with them.

Imported only in the worker's child process and by the user's training script (the report's
snippet), never by the static side: it imports tf_keras and tfmot.
"""

from __future__ import annotations

from typing import Any


def custom_objects() -> dict[str, Any]:
    """The names `tfmot.quantization.keras.quantize_scope` needs for qfix's QuantizeConfigs,
    keyed as they appear in a saved config."""
    return {}
