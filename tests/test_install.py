"""constraints.txt (the tested set `make` installs) agrees with pyproject.toml's ranges.

A dependency added to pyproject.toml without a pin, or a pin outside the declared range, would
make `make test` resolve something else than what was tested, or fail to resolve at all.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

requirements = pytest.importorskip("packaging.requirements")  # comes with the tested set
utils = pytest.importorskip("packaging.utils")

REPO = Path(__file__).resolve().parents[1]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, sep, ver = line.partition("==")
            assert sep and ver, f"constraints.txt: {line!r} is not an exact pin"
            pins[utils.canonicalize_name(name)] = ver
    return pins


def _declared() -> list:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = [requirements.Requirement(r) for r in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        reqs += [requirements.Requirement(r) for r in extra]
    return [r for r in reqs if utils.canonicalize_name(r.name) != "qfix"]  # `all` names the other extras


def test_every_declared_dependency_is_pinned_within_its_range():
    pins = _pins()
    declared = _declared()
    assert len(declared) >= 10  # core, convert and test were all read
    for req in declared:
        name = utils.canonicalize_name(req.name)
        assert name in pins, f"{req.name} is in pyproject.toml but not pinned in constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), f"constraints.txt pins {req.name}=={pins[name]}, outside {req}"

