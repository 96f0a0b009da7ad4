"""A stage that runs out of memory in a worker that has grown over earlier stages is tried once
more in a fresh worker (fleet, Keras 3 ConvNeXtXLarge on int8: the plain converter and qfix's
check convert it, the main job's second conversion ran out of 23.5 GiB).

Measured here on a Dense model of 512 MiB of weights, with RLIMIT_DATA as the limit: loading it
alone needs 2.4 GiB, loading four copies of it into one worker 3.8 GiB. Under a 3.1 GiB limit
the four loads succeed only because the worker that holds two copies is replaced by a fresh one
for the third; a later stage that reads a model the fresh worker never loaded loads it again."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = [pytest.mark.tf, pytest.mark.slow]

LIMIT = "3100M"


@pytest.fixture(scope="module")
def big_copies(tmp_path_factory) -> list[Path]:
    """Four names of one .keras file: a Dense(8192) pair with zero weights (512 MiB)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    folder = tmp_path_factory.mktemp("big")
    i = keras.Input((8192,))
    x = keras.layers.Dense(8192, kernel_initializer="zeros")(i)
    keras.Model(i, keras.layers.Dense(8192, kernel_initializer="zeros")(x)).save(folder / "big.keras")
    for n in range(1, 4):
        (folder / f"copy{n}.keras").symlink_to(folder / "big.keras")
    return [folder / "big.keras", *(folder / f"copy{n}.keras" for n in range(1, 4))]


def test_a_stage_out_of_memory_in_a_grown_worker_is_retried_in_a_fresh_one(big_copies, monkeypatch):
    from qfix.convert.calibration import load_calibration
    from qfix.convert.worker import session
    from qfix.model.archive import read_archive
    from qfix.model.graph import build_graph
    from qfix.model.inputs import input_specs

    monkeypatch.setenv("QFIX_MEMORY_LIMIT", LIMIT)
    archive = read_archive(big_copies[0])
    calib = load_calibration(None, input_specs(build_graph(archive.config, archive.dialect)), n=2)
    with session() as worker:
        pids = []
        keys = []
        for path in big_copies:
            keys.append(worker.load(path, "keras3", None, False))
            pids.append(worker._proc.pid)
        assert len(set(pids)) > 1  # a fresh worker took over...
        outputs = worker.float_outputs(keys[0], calib, "reading the float outputs")  # ...and loads the first again
        assert list(outputs) and outputs[next(iter(outputs))].shape == (2, 8192)


def test_the_first_stage_of_a_fresh_worker_is_not_retried(big_copies, monkeypatch):
    """Nothing to shed: a model too big for the limit on its own is one QF909 line, at once."""
    from qfix.convert.worker import WorkerFailure, session

    monkeypatch.setenv("QFIX_MEMORY_LIMIT", "1500M")
    with session() as worker, pytest.raises(WorkerFailure, match="ran out of memory") as exc:
        worker.load(big_copies[0], "keras3", None, False)
    assert exc.value.kind == "memory"
