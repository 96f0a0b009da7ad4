"""The files a fix run writes (`model.qfix.keras`, `model.qfix.<target>.tflite`; with `--mode qat`
only `model.qfix.qat.keras`): where they go,
a check of those paths before the expensive conversion, and writing them as one transaction
(qfix.atomic): all of them or none, `--out-dir` made only when something is written.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from qfix.atomic import Transaction, destination
from qfix.errors import error
from qfix.model.writer import same_file


@dataclass(frozen=True)
class Outputs:
    source: Path  # the input model
    model: Path
    tflite: Path | None  # None: a QAT run writes no .tflite
    in_place: bool  # `model` is `source`, replaced at commit

    @property
    def paths(self) -> tuple[Path, ...]:
        return (self.model,) if self.tflite is None else (self.model, self.tflite)

    def compiled(self, suffix: str) -> Path:
        """Where a target compiler's file made from the .tflite goes: `m.qfix.ethos-u55.tflite`
        with Vela's suffix `_vela.tflite` -> `m.qfix.ethos-u55_vela.tflite` (Vela's own naming)."""
        assert self.tflite is not None
        return self.tflite.with_name(self.tflite.name.removesuffix(".tflite") + suffix)


def output_paths(path: Path, target: str, out_dir: Path | None, in_place: bool) -> Outputs:
    """`m.keras` -> `m.qfix.keras` (or `m.keras` itself with `in_place`) and
    `m.qfix.<target>.tflite`, beside the input or in `out_dir`."""
    folder = out_dir or path.parent
    stem = _stem(path)
    model = path if in_place else folder / f"{stem}.qfix.keras"
    return Outputs(path, model, folder / f"{stem}.qfix.{target}.tflite", in_place)


def qat_output_paths(path: Path, out_dir: Path | None) -> Outputs:
    """`--mode qat`: `m.keras` -> `m.qfix.qat.keras` (the tf_keras float model tfmot accepts),
    beside the input or in `out_dir`; no `.tflite` (a model trained one step is no deliverable)."""
    return Outputs(path, (out_dir or path.parent) / f"{_stem(path)}.qfix.qat.keras", None, False)


def _stem(path: Path) -> str:
    return path.name[:-len(".keras")] if path.name.endswith(".keras") else path.stem


def check_outputs(outputs: Outputs) -> None:
    """Fail early, with one QF913 line and nothing written, when an output cannot be written:
    its folder (or, for a folder still to be made, the nearest existing one) is not a writable
    folder, a folder or special file sits where the output goes, the output is the input
    (without `--in-place`), or its filesystem has less free space than the input's size (a
    fixed model is about as large as the input; the int8 `.tflite` is smaller)."""
    try:
        _check(outputs)
    except OSError as exc:  # a link loop, a folder that vanished meanwhile
        raise error("QF913", f"{exc.filename or outputs.model}: cannot check the output path "
                             f"({exc.strerror or exc})") from None


def _check(outputs: Outputs) -> None:
    need = os.stat(outputs.source).st_size
    free_checked: set[int] = set()
    for path in outputs.paths:
        dest = destination(path)
        _nothing_in_the_way(path, dest)
        if not (path == outputs.model and outputs.in_place) and same_file(dest, outputs.source):
            raise error("QF913", f"{path}: refusing to overwrite the input model (use --in-place)")
        folder = _existing_folder(path, dest.parent)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise error("QF913", f"{path}: the folder {folder} is not writable")
        fs = os.stat(folder)
        if fs.st_dev not in free_checked:
            free_checked.add(fs.st_dev)
            vfs = os.statvfs(folder)
            free = vfs.f_bavail * vfs.f_frsize
            if free < need:
                raise error("QF913", f"{path}: only {_kb(free)} free in {folder}; the outputs need about "
                                     f"{_kb(need)} (the input's size)")


def write_outputs(outputs: Outputs, model_zip: bytes | None, tflite: bytes | None,
                  compiled: dict[str, bytes] | None = None) -> dict[str, str]:
    """Write every output or none (QF913 otherwise); `model_zip` None (no rewrite kept)
    writes the `.tflite` alone, `tflite` None (a QAT run) the model alone; `compiled` (suffix ->
    bytes, Vela's `_vela.tflite`) goes beside the `.tflite`. The folder is made here, and removed
    again when the write fails; with `in_place` the input is replaced only at the commit and
    restored if the commit fails. Returns suffix -> path of the compiled files written."""
    made = _make_folder(outputs.model.parent)
    extra = {}
    if outputs.tflite is not None:
        made += _make_folder(outputs.tflite.parent)
        if tflite is not None:
            extra = {suffix: outputs.compiled(suffix) for suffix in (compiled or {})}
    for path in extra.values():  # checked like the others (check_outputs ran before the suffix was known)
        _nothing_in_the_way(path, destination(path))
    try:
        with Transaction() as tx:
            if model_zip is not None:
                tx.stage(outputs.model, model_zip)
            if tflite is not None and outputs.tflite is not None:
                tx.stage(outputs.tflite, tflite)
            for suffix, path in extra.items():
                tx.stage(path, compiled[suffix])
            tx.commit()
    except BaseException:
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty: never a folder with someone's files
        raise
    return {suffix: str(path) for suffix, path in extra.items()}


def _nothing_in_the_way(path: Path, dest: Path) -> None:
    """QF913 when a folder or special file sits at `dest` (where `path` is written)."""
    if os.path.lexists(dest) and not stat.S_ISREG(os.stat(dest).st_mode):
        what = "a folder" if dest.is_dir() else "a file that is not a regular file"
        raise error("QF913", f"{path}: {what} is in the way of the output")


def _existing_folder(path: Path, folder: Path) -> Path:
    """`folder`, or its nearest existing ancestor when `--out-dir` is still to be made; QF913
    when a file sits where a folder should be."""
    probe = folder
    while not os.path.lexists(probe):
        probe = probe.parent
    if not probe.is_dir():
        raise error("QF913", f"{path}: {probe} is not a folder")
    return probe


def _make_folder(folder: Path) -> list[Path]:
    """Make `folder` and its missing parents; return the ones made, outermost first."""
    missing = []
    probe = folder
    while not probe.exists():
        missing.append(probe)
        probe = probe.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        for made in missing:  # innermost first; an outer one is empty once the inner is gone
            with contextlib.suppress(OSError):
                made.rmdir()
        raise error("QF913", f"{folder}: cannot create the folder ({exc.strerror or exc})") from None
    return list(reversed(missing))


def _kb(n: int) -> str:
    return f"{n / 1024:.0f} KB"
