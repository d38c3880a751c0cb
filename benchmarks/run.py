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
* W: J1 (both precisions), J2 and J3 as whole processes, what a user runs: the
  ``gradsim simulate`` command with its default workers (all cores) against the PyTorch
  peer ``torch_peer.py`` (autograd on all cores), each started in turn, median wall time.

In process (J1-J3), gradsim's time is the median over ``--repeats`` runs in one
process; the first run also starts the worker pool (seconds: Python, NumPy, numba and
the cached kernels in each worker), later runs reuse it, as a session running several
simulations does.  The first run's time is printed beside the median.

The machine's limit for a job is the time of a GEMM of the job's flop count on all BLAS
threads plus the time to draw the job's Gaussians on all cores (one generator per core,
in spawned processes), both measured in this run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import gradsim
from gradsim import parallel
from gradsim.montecarlo import simulate
from gradsim.theory.exact import exact_gradient_covariance

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_peer import JOBS, torch_job  # noqa: E402 - beside this file

CORES = os.cpu_count() or 1


def job_specs():
    """name -> (NetSpec, points, networks), from the peer's :data:`torch_peer.JOBS`."""
    out = {}
    for name, (arch, depth, width, branch, bn, points, nets) in JOBS.items():
        spec = gradsim.NetSpec(arch=arch, depth=depth, width=width, batchnorm=bn,
                               **({"branch_depth": branch} if arch == "resnet" else {}))
        out[name] = (spec, points, nets)
    return out


def cli_args(spec, points, nets, dtype):
    """``gradsim simulate`` arguments of a job (default workers: all cores)."""
    args = ["simulate", "--arch", spec.arch, "--depth", str(spec.depth),
            "--width", str(spec.width), "--points", str(points), "--nets", str(nets),
            "--seed", "0", "--dtype", dtype, "--force", "--quiet"]
    if spec.batchnorm:
        args.append("--batchnorm")
    if spec.arch == "resnet":
        args += ["--branch-depth", str(spec.branch_depth)]
    return args


def _wall(cmd):
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def run_whole_jobs(jobs, scale, repeats, results, tmp):
    """Each job as whole processes, started alternately: the ``gradsim simulate`` command
    (its default workers) and the PyTorch peer (``torch_peer.py``, all cores); the
    median wall time of each over ``repeats`` runs."""
    peer = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_peer.py")
    for name, (spec, points, nets) in job_specs().items():
        if name not in jobs:
            continue
        n = max(2, int(round(nets * scale)))
        for dtype in (("float64", "float32") if name == "J1" else ("float64",)):
            gs_cmd = [sys.executable, "-m", "gradsim", *cli_args(spec, points, n, dtype),
                      "--out", os.path.join(tmp, "g.npz")]
            t_cmd = [sys.executable, peer, name, dtype, "--nets", str(n),
                     "--out", os.path.join(tmp, "t.npy")]
            t_gs, t_torch = [], []
            for _ in range(repeats):
                t_gs.append(_wall(gs_cmd))
                if have_torch():
                    t_torch.append(_wall(t_cmd))
            row = {"job": f"{name} {dtype} whole process", "nets": n,
                   "gradsim_s": statistics.median(t_gs)}
            if t_torch:
                row["torch_s"] = statistics.median(t_torch)
            results.append(row)
            print(_fmt(row), flush=True)


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
        row["torch_s"] = _median(lambda: torch_job(name, nets, dtype), repeats)
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
    ap.add_argument("--jobs", default="W,J1,J2,J3,J4,J5",
                    help="comma-separated subset; W runs J1-J3 as whole processes "
                         "(the gradsim simulate command against torch_peer.py)")
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
    if "W" in jobs:
        with tempfile.TemporaryDirectory() as tmp:
            run_whole_jobs({"J1", "J2", "J3"}, args.scale, args.repeats, results, tmp)
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
