"""All-or-nothing file output. A `Transaction` stages every output of a run as a hidden temp
file in its destination folder (a rename is atomic only within one filesystem), then renames
them all into place at `commit()`; if any step fails, the staged files are removed and the
files already replaced are restored from hard-link backups. No temp file survives a failure,
an exception or a signal (qfix.cli.main turns SIGINT/SIGTERM into KeyboardInterrupt).

Destinations are written through symlinks (the link stays a link; its target changes), an
existing file keeps its mode, and a new file gets the mode `open()` would give it (umask).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
from pathlib import Path
from typing import Iterator

from qfix.errors import error

TMP_SUFFIX = ".qfix-tmp"  # staged outputs and backups: `.<name>.<random>.qfix-tmp`
_DEFERRED = {signal.SIGINT, signal.SIGTERM}


def destination(path: str | os.PathLike[str]) -> Path:
    """Where writing `path` really lands: the file a symlink points to (through every link in
    the chain), else `path` itself. Absolute."""
    return Path(os.path.realpath(path))


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT/SIGTERM for a short critical section (creating + recording a temp file, the
    renames of a commit): they are delivered when it ends, so no file escapes the books."""
    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - not on Linux/macOS
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _DEFERRED)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _hidden_name(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.{secrets.token_hex(4)}{TMP_SUFFIX}")


def _unlink(path: Path | None) -> None:
    if path is not None:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _fail(path: Path, exc: OSError):
    return error("QF913", f"{path}: cannot write ({exc.strerror or exc})")


class Transaction:
    """The outputs of one run: `stage()` each, then `commit()`; leaving the `with` block
    without a commit (an error, a signal) removes everything staged. Raises QF913 (QfixError)
    when staging or committing fails, having restored every destination as it was."""

    def __init__(self) -> None:
        self._staged: list[tuple[Path, Path, Path]] = []  # (path as given, destination, temp file)
        self.committed = False

    def __enter__(self) -> "Transaction":
        return self

    def __exit__(self, *exc_info) -> None:
        self.rollback()

    def stage(self, path: str | os.PathLike[str], data: bytes) -> Path:
        """Write `data` to a temp file beside `path`'s destination (fsynced, with the mode the
        destination will have). Nothing is visible under `path` until `commit()`."""
        given = Path(path)
        dest = destination(given)
        if any(d == dest for _, d, _ in self._staged):
            raise error("QF913", f"{given}: written twice in one run")
        tmp = _hidden_name(dest)
        try:
            with deferred_signals():
                # 0o666 through the umask: the mode any new file would get.
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
                self._staged.append((given, dest, tmp))
            with os.fdopen(fd, "wb") as fh:
                _keep_mode(fh.fileno(), dest)
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise _fail(given, exc) from None
        return given

    def commit(self) -> list[Path]:
        """Rename every staged file into place, all or none; return the paths as given."""
        done: list[tuple[Path, Path | None]] = []  # (destination, backup of what it replaced)
        with deferred_signals():
            try:
                for given, dest, tmp in self._staged:
                    backup = _backup(dest)
                    done.append((dest, backup))
                    try:
                        os.replace(tmp, dest)
                    except OSError as exc:
                        raise _fail(given, exc) from None
                self.committed = True
            except BaseException:
                for dest, backup in reversed(done):
                    _restore(dest, backup)
                raise
            finally:
                for _, backup in done:
                    _unlink(backup)
                self.rollback()
        return [given for given, _, _ in self._staged]

    def rollback(self) -> None:
        """Remove every staged temp file that was not renamed into place."""
        for _, _, tmp in self._staged:
            _unlink(tmp)


def _keep_mode(fd: int, dest: Path) -> None:
    """An existing destination's mode (and, when allowed, its owner) carries over."""
    try:
        st = os.stat(dest)
    except FileNotFoundError:
        return
    os.fchmod(fd, st.st_mode & 0o7777)
    if (st.st_uid, st.st_gid) != (os.getuid(), os.getgid()):
        with contextlib.suppress(OSError):  # only root may give a file away
            os.fchown(fd, st.st_uid, st.st_gid)


def _backup(dest: Path) -> Path | None:
    """A hard link to the file `dest` holds now (a copy where links are not supported), so a
    later failure can put it back; None when there is no file."""
    if not os.path.lexists(dest):
        return None
    backup = _hidden_name(dest)
    try:
        os.link(dest, backup)
    except OSError:
        try:
            shutil.copy2(dest, backup)
        except OSError as exc:
            _unlink(backup)
            raise _fail(dest, exc) from None
    return backup


def _restore(dest: Path, backup: Path | None) -> None:
    with contextlib.suppress(OSError):
        if backup is None:
            os.unlink(dest)
        else:
            os.replace(backup, dest)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write one file all-or-nothing (a transaction of one); raises QF913."""
    with Transaction() as tx:
        tx.stage(path, data)
        tx.commit()
    return Path(path)
