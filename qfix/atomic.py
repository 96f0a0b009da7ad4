"""Atomic file output: write a temp file in the target folder, fsync, rename. A failed run
leaves no partial file behind."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from qfix.errors import error


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    tmp_name = None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp_name, 0o644)  # mkstemp makes 0600; outputs are ordinary data files
        os.replace(tmp_name, target)
        tmp_name = None
    except OSError as exc:
        raise error("QF913", f"{target}: cannot write ({exc.strerror or exc})") from None
    finally:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass
    return target
