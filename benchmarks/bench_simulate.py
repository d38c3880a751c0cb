"""Time the simulator on the paper's job shape: seconds per network, by mode and backend.

Run as ``python benchmarks/bench_simulate.py [--nets M] [--depth L] [--width N]``.  Not
collected by pytest (the file name does not start with ``test_``).  Prints one row per
(mode, backend): median seconds per network over ``--repeats`` runs, and the achieved
GEMM rate (2 * N * N * columns flops per layer).
"""

from __future__ import annotations

import argparse
import statistics
import time

import gradsim


def _flops(spec, points, mode):
    """Matrix-product flops per network (forward-mode tangents share the product)."""
    n, f, layers = spec.width, spec.features, spec.depth
    cols = points * (2 if mode == "forward" else 1) * spec.input_dim
    per = 2 * n * f * cols * (layers - 1)
    return per * (2 if mode == "reverse" else 1)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", type=int, default=10)
    ap.add_argument("--depth", type=int, default=50)
    ap.add_argument("--width", type=int, default=200)
    ap.add_argument("--points", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    spec = gradsim.NetSpec(depth=args.depth, width=args.width, batchnorm=True)
    grid = gradsim.GridSpec(points=args.points)
    gradsim.simulate(spec.replace(depth=2), grid, nets=1, seed=0)  # compile kernels
    print(f"feedforward+BN width {args.width} depth {args.depth}, {args.points} points, "
          f"{args.nets} nets, median of {args.repeats}")
    print(f"{'mode':8} {'backend':8} {'s/net':>8} {'GFLOP/s':>8}")
    for mode in ("forward", "reverse"):
        for backend in ("numba", "numpy"):
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                gradsim.simulate(spec, grid, nets=args.nets, seed=0, mode=mode,
                                 backend=backend, keep=False)
                times.append((time.perf_counter() - t0) / args.nets)
            t = statistics.median(times)
            rate = _flops(spec, args.points, mode) / t / 1e9
            print(f"{mode:8} {backend:8} {t:8.4f} {rate:8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
