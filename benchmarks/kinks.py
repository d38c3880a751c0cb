"""gradsim exact-kinks benchmark: seconds per network of ``gradsim.kinks.breakpoints``
with the numba kernels of ``gradsim.kernels.pwl`` against their NumPy twins, and the
ratio of the two; every ratio measured in one run and printed.

Run ``python benchmarks/kinks.py`` (``--quick`` for a smoke check in seconds, ``--repeats
N``).  Not collected by pytest.

Jobs (float64, one process, after a warm-up call so numba's compilation is not timed;
the two backends alternate, ``--repeats`` runs each, best of each):

* K1: ``NetSpec(depth=20, width=256)`` on ``[-2, 2]`` with a 256-point grid (the kinks
  experiment's feedforward family, about 4700 knots).
* K2: the same resnet with batch norm (about 14000 knots).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from gradsim import NetSpec
from gradsim.kinks import breakpoints
from gradsim.montecarlo import network_rng
from gradsim.nets import sample_network


def _best(fn, repeats):
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return min(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a smoke check)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    depth, width = (4, 32) if args.quick else (20, 256)
    jobs = {"K1 feedforward": NetSpec(depth=depth, width=width),
            "K2 resnet + BN": NetSpec(arch="resnet", depth=depth, width=width,
                                      batchnorm=True)}
    grid = np.linspace(-2.0, 2.0, 256)
    print(f"{'job':16} {'knots':>7} {'numba s':>9} {'numpy s':>9} {'numpy/numba':>12}")
    for name, spec in jobs.items():
        net = sample_network(spec, network_rng(0, 0))
        k = breakpoints(net, -2.0, 2.0, grid=grid)  # warm-up (compiles the kernels)
        times = {}
        for _ in range(args.repeats):
            for be in ("numba", "numpy"):
                t = _best(lambda be=be, net=net: breakpoints(net, -2.0, 2.0, grid=grid,
                                                             backend=be), 1)
                times[be] = min(times.get(be, np.inf), t)
        print(f"{name:16} {len(k.knots):7d} {times['numba']:9.3f} {times['numpy']:9.3f} "
              f"{times['numpy'] / times['numba']:12.2f}")


if __name__ == "__main__":
    main()
