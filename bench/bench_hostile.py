"""Size the file controls: peak memory and time of `--static` and `--diff` on the largest
keras.applications config (EfficientNetV2L, 1,000+ layers) and on a 20,000-layer chain.

Both models are config-only archives (config.json as Keras writes it, a weights file with one
empty group per layer): the two commands read the weights' structure, never their values. Each
command runs in a fresh process that reports its own peak RSS; TensorFlow is imported only
once, to build the EfficientNetV2L config (cached in bench/.cache).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from _common import CACHE, ROOT

# Runs qfix's CLI in this process and prints the peak RSS (KiB on Linux) on stderr's last line.
RUNNER = ("import resource, sys; from qfix.cli import main\n"
          "try:\n    main(sys.argv[1:])\n"
          "finally:\n    print('PEAK_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n")


def archive(path: Path, config: dict, keras_version: str) -> Path:
    from qfix.model.cases import empty_weights

    meta = {"keras_version": keras_version, "date_saved": "2026-11-30@00:00:00"}
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("metadata.json", json.dumps(meta))
        z.writestr("config.json", json.dumps(config))
        z.writestr("model.weights.h5", empty_weights(config))
    return path


def efficientnet_v2l() -> Path:
    path = CACHE / "EfficientNetV2L-config-only.keras"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        code = ("import json, keras; from keras.src.saving import serialization_lib as s; "
                "m = keras.applications.EfficientNetV2L(weights=None, input_shape=(32, 32, 3)); "
                f"json.dump(s.serialize_keras_object(m), open({str(path) + '.json'!r}, 'w'))")
        subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, stderr=subprocess.DEVNULL,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        cfg = json.loads(Path(str(path) + ".json").read_text())
        archive(path, cfg, "3.15.1")
    return path


def chain(n: int) -> Path:
    """`n` ReLU layers and a LeakyReLU (one fixable finding, so --diff has a rewrite to show)."""
    from qfix.model.cases import functional_config

    path = CACHE / f"chain-{n}.keras"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        layers, prev = [], "x"
        for i in range(n):
            layers.append((f"r{i}", "ReLU", {}, [prev]))
            prev = f"r{i}"
        layers.append(("leaky", "LeakyReLU", {"negative_slope": 0.1}, [prev]))
        archive(path, functional_config([("x", (1, 8), "float32")], layers, ["leaky"]), "3.15.1")
    return path


def measure(path: Path, flag: str) -> tuple[float, float, int]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", RUNNER, str(path), flag], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    seconds = time.perf_counter() - t0
    peak = next(int(l.split()[1]) for l in reversed(proc.stderr.splitlines()) if l.startswith("PEAK_KIB"))
    return seconds, peak / 1024, proc.returncode


def main() -> None:
    print(f"{'model':<34} {'layers':>7} {'command':<9} {'time':>8} {'peak RSS':>10} exit")
    for label, path in (("EfficientNetV2L (config only)", efficientnet_v2l()), ("ReLU chain", chain(20_000))):
        config = json.loads(zipfile.ZipFile(path).read("config.json"))
        n = len(config["config"]["layers"])
        for flag in ("--static", "--diff"):
            seconds, mib, code = measure(path, flag)
            print(f"{label:<34} {n:>7} {flag:<9} {seconds:>7.2f}s {mib:>8.0f} MiB {code}")


if __name__ == "__main__":
    main()
