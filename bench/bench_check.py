"""qfix vs the bare converter with the same recipe and number of calibration samples:
`qfix --check` (static rules + conversion + op-by-op check + numbers) and the main job
`qfix MODEL.keras` (rewrite + convert + verify + float equivalence + outputs).
Target: qfix <= 1.3x the converter alone, for both.

Both run as fresh processes (Python + TensorFlow start-up included on both sides), best of
REPEAT runs. Usage: python bench/bench_check.py [SIZE] [SAMPLES]
"""

from __future__ import annotations

import sys

from _common import built_application, timed

REPEAT = 2
BARE = """
import sys
from qfix.convert.calibration import InputSpec, synthetic_calibration
from qfix.convert.converter import bare_convert, recipe_for
size, samples = int(sys.argv[2]), int(sys.argv[3])
spec = InputSpec("{name}", (None, size, size, 3), "float32", None)
calib = synthetic_calibration([spec], n=samples)
bare_convert(sys.argv[1], recipe_for("edgetpu"), calib)
"""


def main() -> None:
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 96
    samples = int(sys.argv[2]) if len(sys.argv) > 2 else 32
    print(f"qfix --check vs bare converter (edgetpu recipe, {samples} samples, {size}x{size}, best of {REPEAT})")
    for arch in ("MobileNetV2", "EfficientNetB0"):
        path = built_application(arch, "k3", size)
        import zipfile, json

        cfg = json.loads(zipfile.ZipFile(path).read("config.json"))
        input_name = cfg["config"]["input_layers"][0][0]
        bare_code = BARE.replace("{name}", input_name)
        bare = min(timed([sys.executable, "-c", bare_code, str(path), str(size), str(samples)])[0] for _ in range(REPEAT))
        print(f"  {arch:<15} bare converter {bare:6.1f}s")
        for label, extra in (("qfix --check", ["--check"]), ("qfix (main job)", ["--out-dir", str(path.parent)])):
            runs = [timed([sys.executable, "-m", "qfix", str(path), *extra, "--samples", str(samples),
                           "--format", "json"]) for _ in range(REPEAT)]
            best = min(r[0] for r in runs)
            peak = max(r[1] for r in runs)
            ratio = best / bare
            verdict = "OK" if ratio <= 1.3 else "OVER TARGET"
            print(f"  {'':<15} {label:<16} {best:6.1f}s  ratio {ratio:4.2f}x (target <= 1.3x: {verdict})  "
                  f"peak RSS {peak} MiB")


if __name__ == "__main__":
    main()
