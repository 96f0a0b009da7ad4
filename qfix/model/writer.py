"""Build a `.keras` archive (`archive_zip`) and write one all-or-nothing (`write_archive`,
through qfix.atomic: a temp file beside the target, renamed into place). On any failure the
target (if it existed) is left as it was. The input model is never overwritten unless the
caller says `in_place=True`.
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
    if source is not None and not in_place and same_file(target, Path(source)):
        raise error("QF913", f"{target}: refusing to overwrite the input model (use --in-place)")
    try:
        data = archive_zip(config, metadata, weights_bytes)
    except OSError as exc:
        raise error("QF913", f"{target}: cannot write ({exc.strerror or exc})") from None
    return write_bytes(target, data)


def archive_zip(config: dict[str, Any], metadata: dict[str, Any], weights_bytes: bytes) -> bytes:
    """The bytes of a `.keras` zip, members stored (as Keras writes them: the reader then checks
    the weights in place, without a copy) with a fixed timestamp."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in archive_bytes(config, metadata, weights_bytes).items():
            zf.writestr(zipfile.ZipInfo(name, date_time=ZIP_EPOCH), data)
    return buf.getvalue()


def same_file(a: Path, b: Path) -> bool:
    """`a` and `b` are the same file (also through links); by resolved path when either is missing."""
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()
