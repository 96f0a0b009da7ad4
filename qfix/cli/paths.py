"""What the paths on the command line are: `.keras` models, Python sources, or a QF9xx error.

* a file whose suffix is `.keras` in any case (`model.KERAS` too) is a model;
* a `.py`/`.pyi` file is source;
* a folder holding Python files is source (the source run walks it; `.keras` models in it are
  not checked, and the CLI says so on stderr: `qfix .` in a project that saves its model beside
  the training script stays a source run); a folder holding no Python but `.keras` files is that
  many models (found recursively like the sources, sorted; qfix's own outputs `*.qfix.keras` and
  `*.qfix.qat.keras` are left out so that a second run does not fix the fixed models);
* the formats qfix does not read (legacy `.h5`, SavedModel, `.tflite`) get QF906 with the way
  out; a missing path gets QF907; anything else (a `.txt`, an empty folder) gets QF914.

Models and sources do not mix in one run (their reports differ): that is QF914 too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from qfix.errors import error

COMMANDS = ("rules", "rule", "targets", "lsp")
SOURCE_SUFFIXES = (".py", ".pyi")
QFIX_OUTPUTS = (".qfix.keras", ".qfix.qat.keras")  # what the main job and --mode qat write


@dataclass
class Inputs:
    models: list[Path] = field(default_factory=list)
    sources: list[Path] = field(default_factory=list)
    unchecked: list[Path] = field(default_factory=list)  # models inside source folders

    def unchecked_note(self) -> str | None:
        """Why the models inside source folders are not checked, and how to check them."""
        if not self.unchecked:
            return None
        n = len(self.unchecked)
        return (f"{n} .keras model{'s' * (n != 1)} in the Python folders {'are' if n != 1 else 'is'} not "
                f"checked in a source run; name {'them' if n != 1 else 'it'} to check, e.g. qfix {self.unchecked[0]}")


def classify(paths: list[Path]) -> Inputs:
    """Sort `paths` into models and sources. Raises QfixError (QF906/QF907/QF914)."""
    found = Inputs()
    for p in paths:
        if not p.exists():
            _missing(p)
        if p.is_dir():
            _folder(p, found)
        elif _is_model(p):
            found.models.append(p)
        elif p.suffix.lower() in SOURCE_SUFFIXES:
            if not p.is_file():  # a FIFO would block the read; a device or socket has no source
                raise error("QF914", f"{p} is not a regular file (a pipe, socket or device)")
            found.sources.append(p)
        else:
            _not_readable(p)
    found.models = list(dict.fromkeys(found.models))  # a model named twice runs once
    if found.models and found.sources:
        raise error("QF914", f"{found.models[0]} is a model and {found.sources[0]} is Python source: "
                             "check models and sources in separate runs")
    return found


def _is_model(p: Path) -> bool:
    return p.suffix.lower() == ".keras"


def _missing(p: Path) -> None:
    if not p.suffix and os.sep not in str(p) and "/" not in str(p):  # a bare word: a mistyped command?
        raise error("QF914", f"{p!s} is neither a file, a folder nor a command "
                             f"(commands: rules, rule CODE, targets, lsp; see qfix --help)")
    raise error("QF907", f"{p}: no such file or folder")


def _folder(p: Path, found: Inputs) -> None:
    if (p / "saved_model.pb").exists():
        raise error("QF906", f"{p} is a SavedModel folder; qfix reads .keras files "
                             "(load it in Keras and save it with model.save('model.keras'))")
    from qfix.source.runner import collect_files  # imports libcst: only when a folder is given

    models = sorted(f for f in _walk(p) if _is_model(f) and not f.name.lower().endswith(QFIX_OUTPUTS))
    if collect_files([p]):
        found.sources.append(p)
        found.unchecked.extend(models)
        return
    if not models:
        raise error("QF914", f"{p}: no .keras models and no Python files in this folder")
    found.models.extend(models)


def _walk(root: Path):
    """Files under `root`, skipping the folders the source run skips (VCS, venvs, caches, builds)."""
    from qfix.source.runner import SKIP_DIRS

    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS
                         and not d.endswith(".egg-info") and not (Path(folder) / d / "pyvenv.cfg").exists())
        for name in files:
            yield Path(folder) / name


def _keras_name(p: Path) -> str:
    """The .keras name to re-save `p` as: `model.h5` → `model.keras`, `fake.keras.h5` → `fake.keras`."""
    return p.stem if p.stem.lower().endswith(".keras") else f"{p.stem}.keras"


def _not_readable(p: Path) -> None:
    suffix = p.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        raise error("QF906", f"{p} is a legacy HDF5 (.h5) model; qfix reads .keras files: re-save it as "
                             f".keras (keras.models.load_model({p.name!r}).save('{_keras_name(p)}'))")
    if suffix == ".tflite":
        raise error("QF906", f"{p} is an already converted TFLite model; qfix reads the Keras model the "
                             ".tflite was converted from: give its .keras file")
    if p.name == "saved_model.pb" or suffix == ".pb":
        raise error("QF906", f"{p} is part of a SavedModel; qfix reads .keras files "
                             "(load it in Keras and save it with model.save('model.keras'))")
    raise error("QF914", f"{p}: not a .keras model, a Python file or a folder of them")
