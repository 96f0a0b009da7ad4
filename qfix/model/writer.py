"""Write a `.keras` archive atomically: a temp file in the target folder, renamed into place.

The rename is atomic only within one filesystem, hence the temp file beside the target. On any
failure the temp file is removed and the target (if it existed) is left as it was. The input
model is never overwritten unless the caller says `in_place=True`.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

from qfix.atomic import write_bytes
from qfix.errors import error


# A fixed member timestamp (zip's own epoch): two runs on the same input write the same bytes.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def archive_bytes(config: dict[str, Any], metadata: dict[str, Any], weights_bytes: bytes) -> dict[str, bytes]:
    """The members of a `.keras` zip, in the order Keras writes them."""
    return {
        "metadata.json": json.dumps(metadata).encode("utf-8"),
        "config.json": json.dumps(config).encode("utf-8"),
        "model.weights.h5": weights_bytes,
    }


def write_archive(
    path: str | os.PathLike[str],
    config: dict[str, Any],
    metadata: dict[str, Any],
    weights_bytes: bytes,
    *,
    source: str | os.PathLike[str] | None = None,
    in_place: bool = False,
) -> Path:
    """Write `path` atomically and return it. `source` is the model it was derived from: writing
    over it (same file, also through a link) needs `in_place=True`. Raises QF913 on failure."""
    target = Path(path)
    if source is not None and not in_place and _same_file(target, Path(source)):
        raise error("QF913", f"{target}: refusing to overwrite the input model (use --in-place)")
    buf = io.BytesIO()
    try:
        # Stored, as Keras writes it: the reader then checks weights in place, without a copy.
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
            for name, data in archive_bytes(config, metadata, weights_bytes).items():
                zf.writestr(zipfile.ZipInfo(name, date_time=ZIP_EPOCH), data)
    except OSError as exc:
        raise error("QF913", f"{target}: cannot write ({exc.strerror or exc})") from None
    return write_bytes(target, buf.getvalue())


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()
