"""float32 against float64 on the same networks: per-gradient errors and statistics.

Each network is drawn in float32 (``sample_network(..., dtype='float32')``) and evaluated
twice: in float32, and with the same parameters cast to float64.  So the two differ only
by rounding in the forward pass.  Reported per job: the median and 99th percentile of
the relative error of the gradient (``|g32 - g64| / max|g64|`` per network), the
fraction of networks whose gradient differs by more than 1e-3, and the lag-1
autocorrelation along the grid in both precisions with the z-score of their difference
(paired over networks).

Run ``python benchmarks/float32_accuracy.py [--nets 40]``; not collected by pytest.
"""

from __future__ import annotations

import argparse
import math

import numpy as np

import gradsim
from gradsim.montecarlo import network_rng
from gradsim.nets import input_gradient, sample_network
from gradsim.stats import acf_rows


def _as64(net):
    for layer in net.layers:
        for obj in [layer] + list(getattr(layer, "branch", [])):
            if hasattr(obj, "w"):
                obj.w = obj.w.astype(np.float64)
                obj.b = None if obj.b is None else obj.b.astype(np.float64)
    net.readout = net.readout.astype(np.float64)
    return net


def job(spec, nets, points=256, seed=0):
    x = gradsim.GridSpec(points=points).points_array()
    err, lag32, lag64 = [], [], []
    for i in range(nets):
        g32 = input_gradient(sample_network(spec, network_rng(seed, i), "float32"), x)
        g64 = input_gradient(_as64(sample_network(spec, network_rng(seed, i), "float32")), x)
        err.append(np.max(np.abs(g32 - g64)) / np.max(np.abs(g64)))
        lag32.append(acf_rows(g32[None].astype(np.float64), 1)[0, 1])
        lag64.append(acf_rows(g64[None], 1)[0, 1])
    err, d = np.array(err), np.array(lag32) - np.array(lag64)
    se = d.std(ddof=1) / math.sqrt(nets) if nets > 1 else math.nan
    return {"median_err": float(np.median(err)), "p99_err": float(np.quantile(err, 0.99)),
            "frac_gt_1e-3": float(np.mean(err > 1e-3)), "lag1_32": float(np.mean(lag32)),
            "lag1_64": float(np.mean(lag64)), "z": float(d.mean() / se) if se > 0 else 0.0}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", type=int, default=40)
    args = ap.parse_args(argv)
    jobs = {"FF w200 d50, no BN": gradsim.NetSpec(depth=50, width=200),
            "FF+BN w200 d50 (J1)": gradsim.NetSpec(depth=50, width=200, batchnorm=True),
            "BN resnet w200 d25 (J2)": gradsim.NetSpec(arch="resnet", depth=25, width=200,
                                                      batchnorm=True, branch_depth=2)}
    for name, spec in jobs.items():
        r = job(spec, args.nets)
        print(f"{name:26} rel. error median {r['median_err']:.1e}, p99 {r['p99_err']:.1e}, "
              f"> 1e-3 in {100 * r['frac_gt_1e-3']:.0f}% of nets; lag-1 float32 "
              f"{r['lag1_32']:.4f} vs float64 {r['lag1_64']:.4f} (paired z {r['z']:.2f})",
              flush=True)


if __name__ == "__main__":
    main()
