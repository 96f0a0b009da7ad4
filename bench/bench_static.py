"""Static findings alone (read + graph + all model rules) on NASNetMobile's config, in a process
that never imports TensorFlow. Target: <= 0.3 s."""

from __future__ import annotations

import statistics
import sys
import time

from _common import built_application


def main() -> None:
    path = built_application("NASNetMobile", "k3", 224)  # NASNetMobile needs 224x224 input
    from qfix.jobs.check import Options, load

    times = []
    for _ in range(7):
        t0 = time.perf_counter()
        _, graph, _, findings = load(path, Options(static_only=True))
        times.append(time.perf_counter() - t0)
    tf_loaded = any(m == "tensorflow" or m.startswith(("tensorflow.", "keras", "tf_keras")) for m in sys.modules)
    med = statistics.median(times)
    print(f"static findings on NASNetMobile ({len(list(graph.walk()))} layers, {len(findings)} findings): "
          f"median {med * 1000:.0f} ms, min {min(times) * 1000:.0f} ms over {len(times)} runs "
          f"(target <= 300 ms: {'OK' if med <= 0.3 else 'OVER TARGET'}); TensorFlow imported: {tf_loaded}")


if __name__ == "__main__":
    main()
