"""gradsim benchmark harness: jobs J1-J5 against the machine's limit, the NumPy reference
and PyTorch, all measured in one run and printed as ratios.

Run ``python benchmarks/run.py`` (``--help`` for options; ``--scale 0.25`` runs a
quarter of the networks).  Not collected by pytest.  PyTorch is optional
(``pip install torch==2.13.0``); without it the PyTorch column says so.

Jobs (float64 unless stated):

* J1: feedforward + BN, width 200, depth 50, 256 points, 200 networks (and float32).
* J2: the same with a BN resnet, two-layer branch.
* J3: width 8, depth 200, 256 points, 2000 networks.
* J4: exact infinite-width covariance on 256 x 256 pairs at depth 1000.
* J5: streaming statistics (moments, ACF, spectrum; nothing kept) over J1's shape: peak
  RSS (``VmHWM``) at two network counts, each in a fresh process; the workers' figure is
  ``ru_maxrss`` of the children, an upper bound.

gradsim's time is the median over ``--repeats`` runs in one process; the first run also
starts the worker pool (seconds: Python, NumPy, numba and the cached kernels in each
worker), later runs reuse it, as a session running several simulations does.  The first
run's time is printed beside the median.

The machine's limit for a job is the time of a GEMM of the job's flop count on all BLAS
threads plus the time to draw the job's Gaussians on all cores (one generator per core,
in spawned processes), both measured in this run.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import statistics
import subprocess
import sys
import time

import numpy as np

import gradsim
from gradsim import parallel
from gradsim.montecarlo import simulate
from gradsim.theory.exact import exact_gradient_covariance

CORES = os.cpu_count() or 1


def job_specs():
    """name -> (NetSpec, points, networks)."""
    ff = gradsim.NetSpec(depth=50, width=200, batchnorm=True)
    res = gradsim.NetSpec(arch="resnet", depth=25, width=200, batchnorm=True, branch_depth=2)
    small = gradsim.NetSpec(depth=200, width=8)
    return {"J1": (ff, 256, 200), "J2": (res, 256, 200), "J3": (small, 256, 2000)}


def job_flops(spec, points):
    """Matrix-product flops of one network in forward mode (values + one tangent)."""
    n, f = spec.width, spec.features
    dense = (spec.depth - 1 if spec.arch == "feedforward"
             else spec.depth * spec.branch_depth)
    return 2 * n * f * 2 * points * dense


def job_gaussians(spec):
    """Gaussians drawn per network (weights, biases, readout)."""
    n, f = spec.width, spec.features
    dense = (spec.depth - 1 if spec.arch == "feedforward"
             else spec.depth * spec.branch_depth)
    return n * f * dense + n * spec.input_dim + 2 * n + f


def _times(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def _median(fn, repeats):
    return statistics.median(_times(fn, repeats))


def gemm_rate(n, cols, dtype):
    """Flops per second of ``(n x n) @ (n x cols)`` on all BLAS threads."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(dtype)
    b = np.random.default_rng(1).standard_normal((n, cols)).astype(dtype)
    a @ b
    reps = max(1, int(2e9 / (2 * n * n * cols)))
    t = _median(lambda: [a @ b for _ in range(reps)], 3)
    return 2 * n * n * cols * reps / t


def _draw(count, dtype):
    rng = np.random.default_rng(123)
    t0 = time.perf_counter()
    left = count
    while left > 0:
        k = min(left, 1 << 20)
        rng.standard_normal(k, dtype=dtype)
        left -= k
    return time.perf_counter() - t0


def gauss_rate(dtype, seconds_hint=1e7):
    """Gaussians per second with one generator per core in spawned processes (median of 3)."""
    count = int(seconds_hint)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(CORES) as pool:
        pool.starmap(_draw, [(1000, dtype)] * CORES)  # start-up
        wall = _median(lambda: pool.starmap(_draw, [(count, dtype)] * CORES), 3)
    return CORES * count / wall


def torch_job(spec, points, nets, dtype, seed=0):
    """PyTorch CPU autograd on the same job: weights drawn in torch, BN statistics over
    the grid held fixed (detached), input gradient of sum_i f(x_i)."""
    import torch

    torch.set_num_threads(CORES)
    dt = {"float64": torch.float64, "float32": torch.float32}[dtype]
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.linspace(-2, 2, points, dtype=dt).reshape(points, 1)
    n = spec.width

    def dense(fan_in, rows, var, bias_var=0.0):
        w = torch.randn(rows, fan_in, generator=gen, dtype=dt) * math.sqrt(var / fan_in)
        b = (torch.randn(rows, generator=gen, dtype=dt) * math.sqrt(bias_var)
             if bias_var else None)
        return w, b

    def bn(z):
        m = z.mean(0).detach()
        v = z.var(0, unbiased=False).detach()
        return (z - m) / torch.sqrt(v + spec.bn_eps)

    out = []
    for _ in range(nets):
        x = x0.clone().requires_grad_(True)
        w, b = dense(1, n, spec.weight_var, spec.first_bias_var)
        h = x @ w.T + b
        if spec.arch == "feedforward":
            h = torch.relu(bn(h))
            for _ in range(spec.depth - 1):
                w, _ = dense(n, n, spec.weight_var)
                h = torch.relu(bn(h @ w.T))
        else:
            for _ in range(spec.depth):
                br = h
                for _ in range(spec.branch_depth):
                    w, _ = dense(n, n, spec.weight_var)
                    br = torch.relu(bn(br)) @ w.T
                h = spec.alpha * (h + spec.beta * br)
        v, _ = dense(n, 1, spec.readout_var)
        f = (h @ v.T).sum()
        (g,) = torch.autograd.grad(f, x)
        out.append(g)
    return torch.stack(out)


def have_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def run_net_job(name, spec, points, nets, dtype, repeats, workers, results, numpy_ref):
    grid = gradsim.GridSpec(points=points)
    parallel.shutdown()  # the first run starts the worker pool; later runs reuse it
    times = _times(lambda: simulate(spec, grid, nets=nets, seed=0, dtype=dtype,
                                    workers=workers), repeats)
    t_gs = statistics.median(times)
    flops = job_flops(spec, points) * nets
    gauss = job_gaussians(spec) * nets
    np_dt = np.float64 if dtype == "float64" else np.float32
    t_limit = (flops / gemm_rate(spec.width, 2 * points, np_dt)
               + gauss / gauss_rate(np_dt))
    row = {"job": f"{name} {dtype}", "nets": nets, "gradsim_s": t_gs,
           "gradsim_first_s": times[0], "limit_s": t_limit,
           "gflop": flops / 1e9, "gaussians_M": gauss / 1e6}
    if numpy_ref:
        row["numpy_ref_s"] = _median(lambda: simulate(spec, grid, nets=nets, seed=0,
                                                      dtype=dtype, backend="numpy"), 1)
    if have_torch():
        row["torch_s"] = _median(lambda: torch_job(spec, points, nets, dtype), repeats)
    results.append(row)
    print(_fmt(row), flush=True)


def run_exact_job(repeats, results):
    spec = gradsim.NetSpec(depth=1000)
    x = gradsim.GridSpec(points=256).points_array()
    exact_gradient_covariance(spec, x[:3])
    t = _median(lambda: exact_gradient_covariance(spec, x), repeats)
    row = {"job": "J4 exact 256x256 depth 1000", "gradsim_s": t}
    results.append(row)
    print(_fmt(row), flush=True)


_RSS = """
import resource, sys
from gradsim import NetSpec, GridSpec, simulate
spec = NetSpec(depth=50, width=200, batchnorm=True)
sim = simulate(spec, GridSpec(points=256), nets=int(sys.argv[1]), seed=0, keep=False,
               moments=True, acf=True, spectrum=True, workers=int(sys.argv[2]))
from gradsim import parallel
parallel.shutdown()  # reap the pool's workers so that RUSAGE_CHILDREN counts them
# VmHWM is this process's own high-water mark; ru_maxrss would also count the parent's
# memory copied by fork before exec (Linux keeps it across exec)
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM")][0]
print(int(hwm.split()[1]) / 1024, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
"""


def run_rss_job(counts, workers, results):
    for nets in counts:
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", _RSS, str(nets), str(workers)],
                             capture_output=True, text=True, check=True).stdout.split()
        row = {"job": f"J5 streaming {nets} nets", "gradsim_s": time.perf_counter() - t0,
               "peak_rss_MiB": float(out[0]), "worker_peak_rss_MiB": float(out[1])}
        results.append(row)
        print(_fmt(row), flush=True)


def _fmt(row):
    parts = [f"{row['job']:32}", f"gradsim {row['gradsim_s']:8.2f} s"]
    if "gradsim_first_s" in row:
        parts.append(f"(first {row['gradsim_first_s']:.2f} s)")
    if "limit_s" in row:
        parts.append(f"limit {row['limit_s']:7.2f} s ({row['gradsim_s'] / row['limit_s']:.2f}x)")
    if "numpy_ref_s" in row:
        parts.append(f"numpy ref {row['numpy_ref_s']:7.2f} s "
                     f"({row['numpy_ref_s'] / row['gradsim_s']:.2f}x slower)")
    if "torch_s" in row:
        parts.append(f"torch {row['torch_s']:7.2f} s "
                     f"({row['torch_s'] / row['gradsim_s']:.2f}x slower)")
    elif "limit_s" in row:
        parts.append("torch: not installed (pip install torch==2.13.0)")
    if "peak_rss_MiB" in row:
        parts.append(f"peak RSS {row['peak_rss_MiB']:.0f} MiB (workers "
                     f"{row['worker_peak_rss_MiB']:.0f} MiB)")
    return "  ".join(parts)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0,
                    help="fraction of each job's networks (default 1: the full jobs)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per timing (median)")
    ap.add_argument("--jobs", default="J1,J2,J3,J4,J5", help="comma-separated subset")
    ap.add_argument("--workers", type=int, default=CORES, help="gradsim worker processes")
    ap.add_argument("--rss-nets", default="100,400", help="J5 network counts")
    ap.add_argument("--no-numpy-ref", action="store_true", help="skip the NumPy reference")
    ap.add_argument("--json", help="also write the rows to this JSON file")
    args = ap.parse_args(argv)
    if not 0 < args.scale <= 1 or args.repeats < 1 or args.workers < 1:
        ap.error("--scale must be in (0, 1], --repeats and --workers >= 1")
    jobs = set(args.jobs.split(","))
    print(f"gradsim {gradsim.__version__}, numpy {np.__version__}, {CORES} cores, "
          f"workers {args.workers}, scale {args.scale:g}, median of {args.repeats}")
    results = []
    for name, (spec, points, nets) in job_specs().items():
        if name not in jobs:
            continue
        n = max(2, int(round(nets * args.scale)))
        for dtype in (("float64", "float32") if name == "J1" else ("float64",)):
            run_net_job(name, spec, points, n, dtype, args.repeats, args.workers, results,
                        not args.no_numpy_ref and dtype == "float64")
    if "J4" in jobs:
        run_exact_job(args.repeats, results)
    if "J5" in jobs:
        run_rss_job([int(v) for v in args.rss_nets.split(",")], args.workers, results)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
