"""How the cost of ``simulate`` grows with width, depth, points and networks.

Run ``python benchmarks/scaling.py``: varies one factor at a time around a base job
(feedforward + BN, width 100, depth 20, 128 points, 4 networks, one process) and fits
the log-log slope of wall time against each factor.  Not collected by pytest.
"""

from __future__ import annotations

import statistics
import sys
import time

import numpy as np

from gradsim import GridSpec, NetSpec, simulate

BASE = {"width": 100, "depth": 20, "points": 128, "nets": 4}
SWEEPS = {"width": [50, 100, 200, 400], "depth": [10, 20, 40, 80],
          "points": [64, 128, 256, 512], "nets": [4, 8, 16, 32]}


def seconds(width, depth, points, nets, repeats=2):
    spec = NetSpec(depth=depth, width=width, batchnorm=True)
    grid = GridSpec(points=points)
    simulate(spec, grid, nets=1, seed=0)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        simulate(spec, grid, nets=nets, seed=0)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    print("factor  values -> seconds  (fitted exponent)")
    for key, values in SWEEPS.items():
        ts = [seconds(**(BASE | {key: v})) for v in values]
        slope = np.polyfit(np.log(values), np.log(ts), 1)[0]
        pairs = ", ".join(f"{v}: {t:.2f}" for v, t in zip(values, ts))
        print(f"{key:7} {pairs}  (exponent {slope:.2f})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
