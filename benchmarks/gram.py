"""gradsim Gram-space sampler benchmark: seconds per network of sampler='gram' against
sampler='explicit' and PyTorch, and 'auto' against 'explicit' where auto must not take
gram; every ratio measured in one run and printed.

Run ``python benchmarks/gram.py`` (``--help`` for options; ``--quick`` runs tiny versions
in seconds as a smoke check; ``--scale 0.5`` runs half the networks; ``--json out.json``
also writes the rows).  Not collected by pytest.  PyTorch is optional
(``pip install torch==2.13.0``); without it the PyTorch rows say so.

Jobs (float64, feedforward He ReLU, forward-mode gradients df/dx, ``workers=1``: every
network is computed in this process, after a warm-up call, so neither the worker pool's
nor numba's start-up is in the times):

* G1, pair statistics: ``NetSpec(depth=4, width=1024)``, P = 2 points on [-1, 1], d = 1.
  Seconds per network of gram (2000 nets), explicit (30) and PyTorch autograd (30: the
  input gradient at the 2 points, weights drawn in torch for each network).  The three
  are run in turn ``--repeats`` times and each gets its best (least disturbed) run.
  Target: gram >= 100x less time per network than both.
* G2, wide: ``NetSpec(depth=20, width=16384)``, P = 8 on [-1, 1].  Gram: 30 networks for
  the rate, then one run of 200 networks (wall time).  Explicit: a network stores 19
  hidden 16384 x 16384 float64 weights (2 GiB each, 38 GiB in all; ``simulate`` refuses
  it for memory: its own check is shown in the output), so the explicit time is
  **extrapolated** from a measured per-hidden-layer time, ``t(depth=2) - t(depth=1)``
  of ``simulate`` with ``sampler='explicit'`` (one network each: one 16384^2 Gaussian
  draw plus its product), as ``t(1) + 19 * layer``.  PyTorch: reverse-mode autograd
  keeps every hidden weight for the backward pass (the same 38 GiB), so it is
  extrapolated the same way from torch's depth 2 minus depth 1 (weights drawn layer by
  layer).  Target: gram >= 300x less time per network than explicit.
* G3, the paper job: ``NetSpec(depth=50, width=200, batchnorm=True)``, P = 256 on [-2, 2]
  (the GridSpec defaults), 40 networks: ``sampler='auto'`` against ``'explicit'``,
  alternating, ``--repeats`` runs each (default 5), best of each.  ``resolve_sampler`` must give
  ``'explicit'`` for auto here (asserted).  Target: auto within 5% of explicit.

Threads: gradsim with ``workers=1`` runs in this process with the BLAS (OpenBLAS) thread
count it starts with (printed; all cores by default) and torch is set to all cores
(``torch.set_num_threads(cores)``, as ``benchmarks/run.py`` does), so both use the same
cores; ``--threads 1`` limits both to one thread (``threadpoolctl``), as gradsim's worker
processes are.  G3 also prints each run's CPU time (this process, all threads).

The "Gauss s/net" column (the Gaussian floor) is the network's Gaussian count over the
rate of one NumPy generator measured in this run (one core): the time the draws alone
take.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time

import numpy as np

import gradsim
from gradsim.families.sampling import resolve_sampler, state_columns
from gradsim.montecarlo import network_bytes
from gradsim.util import check_memory

CORES = os.cpu_count() or 1
#: Threads for BLAS (gradsim, in process) and torch; ``--threads`` changes it.
THREADS = CORES


# --------------------------------------------------------------------------- helpers

def _wall(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _wall_cpu(fn):
    """Wall and CPU (this process, all threads) seconds of ``fn()``."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def gauss_rate(count=1 << 23, repeats=3):
    """Standard normals per second from one NumPy generator in this process (median)."""
    rng = np.random.default_rng(0)
    rng.standard_normal(1000)
    return count / statistics.median(_wall(lambda: rng.standard_normal(count))
                                     for _ in range(repeats))


def gaussians_per_net(spec, points, sampler):
    """Gaussians one plain feedforward network draws (weights, biases, readout)."""
    n, d, L = spec.width, spec.input_dim, spec.depth
    m = state_columns(spec, points) if sampler == "gram" else None
    used = (lambda cols: cols) if m is None else (lambda cols: min(cols, m))
    count = n * used(d) + (n if spec.first_bias_var > 0 else 0)
    count += (L - 1) * (n * used(n) + (n if spec.bias_var > 0 else 0))
    return count + used(n)


def have_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def blas_threads():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown"
    info = threadpool_info()
    return ", ".join(f"{i['internal_api']} {i['num_threads']}" for i in info
                     if i.get("user_api") == "blas") or "unknown"


def _simulate(spec, grid, nets, sampler, seed=0):
    return gradsim.simulate(spec, grid, nets=nets, seed=seed, sampler=sampler, workers=1,
                            keep=True)


def sim_seconds(spec, grid, nets, sampler, seed=0):
    """Wall seconds of ``simulate`` (workers=1, gradients kept)."""
    return _wall(lambda: _simulate(spec, grid, nets, sampler, seed))


def torch_grad(spec, x, nets, seed=0):
    """PyTorch CPU autograd on a plain feedforward He ReLU net: for each network draw the
    weights in torch (layer by layer), run the points, and take the input gradient of
    ``sum_i f(x_i)`` (``torch.autograd.grad``).  Returns ``(nets, P, d)``."""
    import torch

    torch.set_num_threads(THREADS)
    dt = torch.float64
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.as_tensor(x, dtype=dt)
    n, d = spec.width, spec.input_dim

    def randn(*shape, var):
        return torch.randn(*shape, generator=gen, dtype=dt).mul_(math.sqrt(var))

    out = []
    for _ in range(nets):
        xx = x0.clone().requires_grad_(True)
        h = xx @ randn(n, d, var=spec.weight_var / d).T
        if spec.first_bias_var:
            h = h + randn(n, var=spec.first_bias_var)
        h = torch.relu(h)
        for _ in range(spec.depth - 1):
            h = h @ randn(n, n, var=spec.weight_var / n).T
            if spec.bias_var:
                h = h + randn(n, var=spec.bias_var)
            h = torch.relu(h)
        f = (h @ randn(n, var=spec.readout_var / n)).sum()
        (g,) = torch.autograd.grad(f, xx)
        out.append(g)
    return torch.stack(out)


def torch_seconds(spec, x, nets):
    return _wall(lambda: torch_grad(spec, x, nets))


# --------------------------------------------------------------------------- jobs

def row(job, method, nets, seconds, note="", floor=None, **extra):
    r = {"job": job, "method": method, "nets": nets, "seconds": seconds,
         "s_per_net": None if seconds is None else seconds / nets, "note": note}
    if floor is not None:
        r["gauss_floor_s_per_net"] = floor
    r.update(extra)
    return r


def job_pair(cfg, rate, rows, targets):
    spec = gradsim.NetSpec(depth=cfg["g1_depth"], width=cfg["g1_width"])
    grid = gradsim.GridSpec(points=2, lo=-1.0, hi=1.0)
    x = grid.points_array()
    job = f"G1 pair w{spec.width} d{spec.depth} P2"
    print(f"\n{job}: auto resolves to {resolve_sampler(spec, 2, 'forward', 'auto')!r}",
          flush=True)
    sim_seconds(spec, grid, 3, "gram")  # warm-up (numba kernels, first calls)
    sim_seconds(spec, grid, 1, "explicit")
    torch_ok = have_torch()
    if torch_ok:
        torch_seconds(spec, x, 1)
    ng, ne, nt = cfg["g1_gram"], cfg["g1_explicit"], cfg["g1_torch"]
    tg, te, tt = [], [], []
    for _ in range(cfg["repeats"]):  # in turn, so that load drifts hit all three alike
        tg.append(sim_seconds(spec, grid, ng, "gram"))
        te.append(sim_seconds(spec, grid, ne, "explicit"))
        if torch_ok:
            tt.append(torch_seconds(spec, x, nt))
    med = min  # best of N: the least disturbed run of the same work
    rg = row(job, "gram", ng, med(tg), f"best of {len(tg)}",
             gaussians_per_net(spec, 2, "gram") / rate)
    re_ = row(job, "explicit", ne, med(te), f"best of {len(te)}",
              gaussians_per_net(spec, 2, "explicit") / rate)
    rows += [rg, re_]
    print(_fmt(rg), _fmt(re_), sep="\n", flush=True)
    targets.append(("G1 explicit / gram >= 100", re_["s_per_net"] / rg["s_per_net"], 100))
    if torch_ok:
        rt = row(job, "torch autograd", nt, med(tt),
                 f"best of {len(tt)}, {_torch_threads()} threads",
                 gaussians_per_net(spec, 2, "explicit") / rate)
        rows.append(rt)
        print(_fmt(rt), flush=True)
        targets.append(("G1 torch / gram >= 100", rt["s_per_net"] / rg["s_per_net"], 100))
    else:
        rows.append(row(job, "torch autograd", nt, None, "not installed"))


def _torch_threads():
    import torch

    return torch.get_num_threads()


def job_wide(cfg, rate, rows, targets):
    n, L, P = cfg["g2_width"], cfg["g2_depth"], 8
    spec = gradsim.NetSpec(depth=L, width=n)
    grid = gradsim.GridSpec(points=P, lo=-1.0, hi=1.0)
    x = grid.points_array()
    job = f"G2 wide w{n} d{L} P{P}"
    print(f"\n{job}: auto resolves to {resolve_sampler(spec, P, 'forward', 'auto')!r}",
          flush=True)
    sim_seconds(spec.replace(depth=2), grid, 1, "gram")  # warm-up
    ng = cfg["g2_gram"]
    t = sim_seconds(spec, grid, ng, "gram")
    rg = row(job, "gram", ng, t, "", gaussians_per_net(spec, P, "gram") / rate)
    rows.append(rg)
    print(_fmt(rg), flush=True)
    nb = cfg["g2_batch"]
    t = sim_seconds(spec, grid, nb, "gram")
    rb = row(job, "gram", nb, t, f"{nb} networks: {t / 60:.2f} min wall",
             gaussians_per_net(spec, P, "gram") / rate)
    rows.append(rb)
    print(_fmt(rb), flush=True)
    # explicit: does not fit; per-layer time measured at depth 2 minus depth 1
    need = network_bytes(spec, P, "forward", 8, "explicit")
    try:  # the memory check simulate makes before any work (not run: it may fit)
        check_memory(need, "one network (width, depth)")
        fits = True
        refusal = f"fits in memory here ({need / 2**30:.0f} GiB); extrapolated anyway"
    except ValueError as exc:
        fits = False
        refusal = str(exc).splitlines()[0]
    print(f"  explicit depth {L}: {refusal}", flush=True)
    one, two = spec.replace(depth=1), spec.replace(depth=2)
    sim_seconds(one, grid, 1, "explicit")  # warm-up
    reps = cfg["g2_layer_repeats"]
    t1 = statistics.median(sim_seconds(one, grid, 1, "explicit") for _ in range(reps))
    t2 = statistics.median(sim_seconds(two, grid, 1, "explicit") for _ in range(reps))
    layer = max(t2 - t1, 0.0)
    te = t1 + (L - 1) * layer
    note = (f"EXTRAPOLATED: t(d1) {t1:.3f} s + {L - 1} x measured layer "
            f"[t(d2) - t(d1) = {layer:.3f} s]; {L - 1} weights of {n}^2 float64 = "
            f"{(L - 1) * n * n * 8 / 2**30:.0f} GiB "
            + ("do not fit" if fits is False else "(fit here)"))
    re_ = row(job, "explicit", 1, te, note, gaussians_per_net(spec, P, "explicit") / rate,
              extrapolated=True, layer_s=layer, depth1_s=t1, refusal=refusal)
    rows.append(re_)
    print(_fmt(re_), flush=True)
    targets.append(("G2 explicit (extrapolated) / gram >= 300",
                    re_["s_per_net"] / rg["s_per_net"], 300))
    if have_torch():
        torch_seconds(one, x, 1)  # warm-up
        u1 = statistics.median(torch_seconds(one, x, 1) for _ in range(reps))
        u2 = statistics.median(torch_seconds(two, x, 1) for _ in range(reps))
        tlayer = max(u2 - u1, 0.0)
        tt = u1 + (L - 1) * tlayer
        note = (f"EXTRAPOLATED: t(d1) {u1:.3f} s + {L - 1} x measured layer "
                f"[{tlayer:.3f} s]; autograd keeps all {L - 1} weights for backward; "
                f"{_torch_threads()} threads")
        rt = row(job, "torch autograd", 1, tt, note,
                 gaussians_per_net(spec, P, "explicit") / rate, extrapolated=True,
                 layer_s=tlayer, depth1_s=u1)
        rows.append(rt)
        print(_fmt(rt), flush=True)
        targets.append(("G2 torch (extrapolated) / gram (no target)",
                        rt["s_per_net"] / rg["s_per_net"], None))
    else:
        rows.append(row(job, "torch autograd", 1, None, "not installed"))


def job_paper(cfg, rows, targets):
    spec = gradsim.NetSpec(depth=cfg["g3_depth"], width=cfg["g3_width"], batchnorm=True)
    grid = gradsim.GridSpec(points=cfg["g3_points"])
    job = f"G3 paper w{spec.width} d{spec.depth} BN P{grid.points}"
    used = resolve_sampler(spec, grid.points, "forward", "auto")
    print(f"\n{job}: auto resolves to {used!r}", flush=True)
    assert used == "explicit", f"auto resolved to {used!r} on the paper job"
    nets = cfg["g3_nets"]
    sim_seconds(spec, grid, 1, "explicit")  # warm-up
    ta, te = [], []
    for i in range(cfg["g3_repeats"]):  # alternating, the order swapped each round
        order = (("auto", ta), ("explicit", te)) if i % 2 == 0 else (("explicit", te),
                                                                     ("auto", ta))
        for sampler, times in order:
            times.append(_wall_cpu(lambda s=sampler: _simulate(spec, grid, nets, s)))
    med = min  # best of N, as for G1
    out = []
    for name, times in (("auto (-> explicit)", ta), ("explicit", te)):
        wall, cpu = [t[0] for t in times], [t[1] for t in times]
        out.append(row(job, name, nets, med(wall),
                       "wall " + ", ".join(f"{t:.3g}" for t in wall) + " s; CPU "
                       + ", ".join(f"{t:.3g}" for t in cpu) + " s",
                       cpu_s=med(cpu), wall_runs=wall, cpu_runs=cpu))
    ra, re_ = out
    rows += out
    print(_fmt(ra), _fmt(re_), sep="\n", flush=True)
    targets.append(("G3 auto / explicit <= 1.05 (wall)", ra["seconds"] / re_["seconds"], 1.05))
    targets.append(("G3 auto / explicit (CPU time, no target)", ra["cpu_s"] / re_["cpu_s"],
                    None))


# --------------------------------------------------------------------------- output

def _fmt(r):
    s = "      --" if r["s_per_net"] is None else f"{r['s_per_net']:10.4g}"
    tot = "      --" if r["seconds"] is None else f"{r['seconds']:9.2f}"
    floor = r.get("gauss_floor_s_per_net")
    fl = f"{floor:10.3g}" if floor is not None else "        --"
    return f"  {r['method']:20} {r['nets']:5d} {tot} {s} {fl}  {r['note']}"


HEADER = (f"  {'method':20} {'nets':>5} {'total s':>9} {'s/net':>10} {'Gauss s/net':>10}"
          "  note")


def print_table(rows):
    job = None
    for r in rows:
        if r["job"] != job:
            job = r["job"]
            print(f"\n{job}\n{HEADER}")
        print(_fmt(r))


def print_targets(targets):
    print("\nRatios (time per network; all measured in this run)")
    for name, value, target in targets:
        if target is None:
            verdict = ""
        elif name.startswith("G3"):
            verdict = "MET" if value <= target else "MISSED"
        else:
            verdict = "MET" if value >= target else "MISSED"
        print(f"  {name:44} {value:10.3f}  {verdict}")


FULL = dict(repeats=3, g1_depth=4, g1_width=1024, g1_gram=2000, g1_explicit=30,
            g1_torch=30, g2_depth=20, g2_width=16384, g2_gram=30, g2_batch=200,
            g2_layer_repeats=1, g3_depth=50, g3_width=200, g3_points=256, g3_nets=40,
            g3_repeats=5)
QUICK = dict(repeats=1, g1_depth=3, g1_width=256, g1_gram=100, g1_explicit=5,
             g1_torch=5, g2_depth=4, g2_width=1024, g2_gram=5, g2_batch=20,
             g2_layer_repeats=3, g3_depth=5, g3_width=64, g3_points=64, g3_nets=4,
             g3_repeats=2)


def main(argv=None):
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()),
                                 epilog="Jobs: see the module docstring.")
    ap.add_argument("--quick", action="store_true",
                    help="tiny versions of every job (seconds): a smoke check")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="fraction of each job's networks (default 1)")
    ap.add_argument("--repeats", type=int, default=None,
                    help="runs per G1/G3 timing (best of them; default 3 and 5, 1 and 2 "
                         "with --quick)")
    ap.add_argument("--jobs", default="G1,G2,G3", help="comma-separated subset")
    ap.add_argument("--threads", type=int, default=CORES,
                    help=f"BLAS threads for gradsim (threadpoolctl) and torch threads "
                         f"(default: all {CORES} cores)")
    ap.add_argument("--json", help="also write the rows and ratios to this JSON file")
    args = ap.parse_args(argv)
    if (not 0 < args.scale <= 1 or (args.repeats is not None and args.repeats < 1)
            or args.threads < 1):
        ap.error("--scale must be in (0, 1], --repeats and --threads >= 1")
    global THREADS
    THREADS = args.threads
    if THREADS != CORES:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(limits=THREADS, user_api="blas")  # noqa: F841 - kept
    cfg = dict(QUICK if args.quick else FULL)
    for key in ("g1_gram", "g1_explicit", "g1_torch", "g2_gram", "g2_batch", "g3_nets"):
        cfg[key] = max(2, int(round(cfg[key] * args.scale)))
    if args.repeats is not None:
        cfg["repeats"] = cfg["g3_repeats"] = args.repeats
    jobs = set(args.jobs.split(","))
    torch_v = "not installed"
    if have_torch():
        import torch

        torch.set_num_threads(THREADS)
        torch_v = f"{torch.__version__} ({torch.get_num_threads()} threads)"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rate = gauss_rate()
    print(f"gradsim {gradsim.__version__}, numpy {np.__version__}, torch {torch_v}, "
          f"{CORES} cores, gradsim workers=1 (in process, BLAS threads: {blas_threads()}), "
          f"{'quick' if args.quick else 'full'}, scale {args.scale:g}, "
          f"load average {load:.2f} at start")
    print(f"NumPy Gaussians, one generator: {rate / 1e6:.1f} M/s", flush=True)
    rows, targets = [], []
    t0 = time.perf_counter()
    if "G1" in jobs:
        job_pair(cfg, rate, rows, targets)
    if "G2" in jobs:
        job_wide(cfg, rate, rows, targets)
    if "G3" in jobs:
        job_paper(cfg, rows, targets)
    total = time.perf_counter() - t0
    print_table(rows)
    print_targets(targets)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nbenchmark wall time {total:.0f} s; load average {load:.2f} at end")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"config": cfg, "gauss_rate": rate, "rows": rows,
                       "ratios": [{"name": a, "value": b, "target": c}
                                  for a, b, c in targets], "wall_s": total}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
