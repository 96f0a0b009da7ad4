"""Translation notes that describe the model qfix writes, not the one it translated.

The translation runs before the rewrites: a Lambda it carries over (its bytecode kept) may then
be replaced by built-in layers (QF202). `written_notes` restates such a note once the final
config is known.
"""

from __future__ import annotations

from typing import Any, Iterator

from qfix.model.config import is_model, layer_name

LAMBDA_CARRIED = "Lambda bytecode carried as is (tf_keras runs it only with --trust-lambdas)"
LAMBDA_REPLACED = "Lambda translated, then replaced by built-in layers (QF202): no bytecode written"


def lambda_carried(name: str) -> str:
    return f"{name}: {LAMBDA_CARRIED}"


def _lambdas(config: dict[str, Any]) -> Iterator[str]:
    """Names of the Lambda layers of a model config, nested models included."""
    for l in (config.get("config") or {}).get("layers") or []:
        if is_model(l):
            yield from _lambdas(l)
        elif l.get("class_name") == "Lambda":
            yield layer_name(l)


def written_notes(notes: list[str], config: dict[str, Any]) -> list[str]:
    """`notes` with each carried-Lambda note restated when `config` (the model written) no
    longer has that Lambda."""
    kept = set(_lambdas(config))
    out = []
    for note in notes:
        name, _, what = note.partition(": ")
        out.append(f"{name}: {LAMBDA_REPLACED}" if what == LAMBDA_CARRIED and name not in kept else note)
    return out
