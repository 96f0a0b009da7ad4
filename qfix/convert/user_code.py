"""Import a module the user named on the command line (`--custom-objects MODULE`,
`--calibration module:function`): found as `python -m` finds it, the current folder first,
then PYTHONPATH and the installed packages. The only other place qfix runs code it did not
write is Keras itself, after the file was vetted (qfix.convert.keras.vet_before_load)."""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType


def import_user_module(name: str) -> ModuleType:
    """Import `name` with the current folder on `sys.path` (kept there for the run: the module
    may import its siblings later). Raises what the import raises; a module that is not found
    says where it was looked for."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name and name.startswith(e.name):
            raise ModuleNotFoundError(f"No module named {e.name!r} in {cwd} (the current folder) or on "
                                      "PYTHONPATH", name=e.name) from None
        raise
