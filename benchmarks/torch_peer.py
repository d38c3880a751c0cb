"""The PyTorch peer of the benchmark jobs: the same networks' input gradients by autograd.

Run as a whole process, ``python benchmarks/torch_peer.py J1 float64 --out g.npy``: it
imports only NumPy and torch (not gradsim), runs the job on all cores (``torch`` threads)
and writes the gradients, so that its wall time compares with the whole ``gradsim
simulate`` command.  ``benchmarks/run.py`` also calls :func:`torch_job` in process.
Not collected by pytest; needs ``pip install torch==2.13.0``.

Weights are drawn in torch (He: ``N(0, 2 / fan_in)``; first-layer bias ``N(0, 1)``,
readout ``N(0, 1 / N)``, as gradsim's defaults), batch-norm statistics over the grid are
held fixed (detached: gradsim's ``bn_grad='frozen'``), and the gradient is that of
``sum_i f(x_i)`` with respect to every ``x_i`` on the line ``[-2, 2]``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

#: job -> (arch, depth, width, branch_depth, batchnorm, points, networks)
JOBS = {
    "J1": ("feedforward", 50, 200, 1, True, 256, 200),
    "J2": ("resnet", 25, 200, 2, True, 256, 200),
    "J3": ("feedforward", 200, 8, 1, False, 256, 2000),
}
WEIGHT_VAR, FIRST_BIAS_VAR, READOUT_VAR, BN_EPS, ALPHA, BETA = 2.0, 1.0, 1.0, 1e-5, 1.0, 1.0


def torch_job(job, nets, dtype, seed=0, threads=None):
    """Input gradients of ``nets`` networks of ``job`` (a key of :data:`JOBS`) in torch,
    shape ``(nets, points, 1)``, on ``threads`` threads (default all cores)."""
    import torch

    arch, depth, n, branch_depth, batchnorm, points, _ = JOBS[job]
    torch.set_num_threads(threads or os.cpu_count() or 1)
    dt = {"float64": torch.float64, "float32": torch.float32}[dtype]
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.linspace(-2, 2, points, dtype=dt).reshape(points, 1)

    def dense(fan_in, rows, var, bias_var=0.0):
        w = torch.randn(rows, fan_in, generator=gen, dtype=dt) * math.sqrt(var / fan_in)
        b = (torch.randn(rows, generator=gen, dtype=dt) * math.sqrt(bias_var)
             if bias_var else None)
        return w, b

    def bn(z):
        if not batchnorm:
            return z
        m = z.mean(0).detach()
        v = z.var(0, unbiased=False).detach()
        return (z - m) / torch.sqrt(v + BN_EPS)

    out = []
    for _ in range(nets):
        x = x0.clone().requires_grad_(True)
        w, b = dense(1, n, WEIGHT_VAR, FIRST_BIAS_VAR)
        h = x @ w.T + b
        if arch == "feedforward":
            h = torch.relu(bn(h))
            for _ in range(depth - 1):
                w, _ = dense(n, n, WEIGHT_VAR)
                h = torch.relu(bn(h @ w.T))
        else:
            for _ in range(depth):
                br = h
                for _ in range(branch_depth):
                    w, _ = dense(n, n, WEIGHT_VAR)
                    br = torch.relu(bn(br)) @ w.T
                h = ALPHA * (h + BETA * br)
        v, _ = dense(n, 1, READOUT_VAR)
        f = (h @ v.T).sum()
        (g,) = torch.autograd.grad(f, x)
        out.append(g)
    return torch.stack(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("job", choices=sorted(JOBS))
    ap.add_argument("dtype", choices=("float64", "float32"))
    ap.add_argument("--nets", type=int, help="networks (default: the job's)")
    ap.add_argument("--out", required=True, help="where to write the gradients (.npy)")
    args = ap.parse_args(argv)
    import numpy as np

    grads = torch_job(args.job, args.nets or JOBS[args.job][-1], args.dtype)
    np.save(args.out, grads.numpy())
    return 0


if __name__ == "__main__":
    sys.exit(main())
