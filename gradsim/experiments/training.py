"""Training deep nets without skips: test accuracy against depth on the digits for plain
ReLU, ReLU + BN, a BN resnet and looks-linear CReLU, with loss curves and the input
gradient's lag-1 autocorrelation tracked during training (the paper's last claim, on a
data set that ships offline; needs the ``digits`` extra)."""

from __future__ import annotations

import time

import numpy as np

from .. import work
from ..figures import COLORS, new_figure
from ..parallel import ordered_map
from ..train import FAMILIES, Diverged, ModelSpec, TrainConfig, train
from ..train.data import load_digits
from .base import Claim, Results, check_range
from .common import NULL_PROGRESS, run_workers

NAME = "training"
TITLE = "Training on the digits: accuracy against depth, plain vs BN vs resnet vs LL"
DEFAULTS = {"families": "relu,relu-bn,resnet-bn,crelu-ll", "depths": [10, 50, 100, 200],
            "width": 32, "epochs": 10, "lr": 0.0003, "batch": 64, "track_points": 128,
            "track_lines": 4, "workers": 2, "seed": 0}
QUICK = {"depths": [2, 8], "width": 16, "epochs": 2, "track_points": 32, "track_lines": 2,
         "workers": 1}
#: Optional modules this experiment needs -> the extra that installs them.
REQUIRES = {"sklearn": "digits"}
#: Parameters that say how to run, never what is computed: a finished results file is
#: reused whatever their values (``gradsim.experiments.reproduce``).
RUN_SETTINGS = ("workers",)
#: Accuracy margin of the claims (absolute).
MARGIN = 0.05


def _families(params):
    fams = [f.strip() for f in str(params["families"]).split(",") if f.strip()]
    bad = [f for f in fams if f not in FAMILIES]
    if not fams or bad:
        raise ValueError(f"{NAME}.families must be a comma-separated subset of "
                         f"{','.join(FAMILIES)}; got {params['families']!r}")
    return fams


def check(params):
    """Range checks."""
    _families(params)
    for key, lo, hi in (("depths", 1, 2000), ("width", 1, 4096), ("epochs", 1, 10**4),
                        ("lr", 1e-8, 10.0), ("batch", 1, 10**5), ("track_points", 3, 10**5),
                        ("track_lines", 1, 100), ("workers", 1, 256), ("seed", 0, 2**63 - 1)):
        check_range(NAME, params, key, lo, hi)


def _train_one(family, depth, p, data):
    """One training run -> per-epoch arrays (NaN after a divergence)."""
    cfg = TrainConfig(ModelSpec(family, depth=depth, width=p["width"]), lr=p["lr"],
                      batch=p["batch"], epochs=p["epochs"], seed=p["seed"],
                      track_points=p["track_points"], track_lines=p["track_lines"])
    t0 = time.perf_counter()
    try:
        _, h = train(cfg, data)
    except Diverged as err:
        h = err.history
    e = p["epochs"]

    def pad(a, n):
        a = np.asarray(a, float)
        return np.concatenate([a, np.full((n - len(a),) + a.shape[1:], np.nan)])

    return {"train_loss": pad(h.train_loss, e), "test_acc": pad(h.test_acc, e + 1),
            "train_acc": pad(h.train_acc, e + 1), "test_loss": pad(h.test_loss, e + 1),
            "lag1": pad(np.nanmean(np.where(np.isnan(h.lag1), 1.0, h.lag1), axis=1)
                        if len(h.lag1) else np.zeros(0), e + 1),
            "seconds": time.perf_counter() - t0}


def run(params, progress=NULL_PROGRESS):
    """Train every family at every depth."""
    t0 = time.perf_counter()
    data = load_digits()
    fams, depths = _families(params), list(params["depths"])
    tasks = [(f, d, params, data) for f in fams for d in depths]
    tick = progress.stage(f"{NAME}: {len(tasks)} runs", len(tasks))
    # the run's worker setting caps the parameter (each run trains alone, so neither
    # changes a number)
    workers = min(params["workers"], run_workers(default=params["workers"]))
    work.record(len(tasks))  # networks trained (their training steps are not counted)
    rows = []
    for i, row in enumerate(ordered_map(_train_one, tasks, workers)):
        rows.append(row)
        tick(i + 1)
    shape = (len(fams), len(depths))

    def stack(key):
        return np.array([r[key] for r in rows]).reshape(shape + np.shape(rows[0][key]))

    arrays = {k: stack(k) for k in ("train_loss", "test_acc", "train_acc", "test_loss",
                                    "lag1", "seconds")}
    arrays["depths"] = np.array(depths)
    return Results(NAME, params, arrays, {"families": fams,
                                          "seconds": time.perf_counter() - t0})


def plot(results):
    """Final test accuracy against depth; loss curves and lag-1 at the largest depth."""
    r = results
    fams, depths = r.meta["families"], r["depths"]
    fig, ax = new_figure(1, 3, size=(12.0, 3.8))
    a, b, c = ax[0]
    for k, fam in enumerate(fams):
        col = COLORS[k % len(COLORS)]
        a.plot(depths, r["test_acc"][k, :, -1], "o-", color=col, label=fam)
        epochs = np.arange(1, r["train_loss"].shape[-1] + 1)
        b.plot(epochs, r["train_loss"][k, -1], "-", color=col, label=fam)
        c.plot(np.arange(r["lag1"].shape[-1]), r["lag1"][k, -1], "o-", color=col, ms=3,
               label=fam)
    a.set_xscale("log")
    a.set_xlabel("depth")
    a.set_ylabel("test accuracy after training")
    a.set_ylim(0, 1)
    a.legend(fontsize=7)
    b.set_yscale("log")
    b.set_xlabel("epoch")
    b.set_ylabel(f"training loss, depth {depths[-1]}")
    c.set_xlabel("epoch (0 = init)")
    c.set_ylabel(f"lag-1 of d logit / dt, depth {depths[-1]}")
    c.set_ylim(-0.2, 1.05)
    fig.suptitle("digits, Adam; lag-1 along lines between test images (1 = constant)",
                 fontsize=9)
    return fig


def claims(results):
    """LL near the resnet at the largest depth; plain ReLU degrading with depth; the table."""
    r = results
    fams, depths = r.meta["families"], [int(d) for d in r["depths"]]
    acc = {f: r["test_acc"][k, :, -1] for k, f in enumerate(fams)}
    out = []
    setting = (f"digits, width {r.params['width']}, {r.params['epochs']} epochs, Adam lr "
               f"{r.params['lr']:g}")
    for f in fams:
        cells = ", ".join(f"{d}: {a:.3f}" for d, a in zip(depths, acc[f]))
        out.append(Claim("X6", f"test accuracy against depth (depth: accuracy), {f}",
                         setting, "—", cells, "—", None, "measurement"))
    if "crelu-ll" in acc and "resnet-bn" in acc:
        ll, res = acc["crelu-ll"][-1], acc["resnet-bn"][-1]
        out.append(Claim("X6", f"LL at depth {depths[-1]} trains close to the resnet "
                               f"(within {MARGIN:g})", setting, f"resnet {res:.3f}",
                         f"LL {ll:.3f}", f"{ll - res:+.3f}", bool(ll >= res - MARGIN),
                         f"LL accuracy >= resnet accuracy - {MARGIN:g}"))
    if "relu" in acc and len(depths) > 1:
        lo, hi = acc["relu"][0], acc["relu"][-1]
        out.append(Claim("X6", f"plain ReLU degrades from depth {depths[0]} to {depths[-1]} "
                               f"(by more than {MARGIN:g})", setting, f"{lo:.3f}",
                         f"{hi:.3f}", f"{hi - lo:+.3f}", bool(hi < lo - MARGIN),
                         f"accuracy at the largest depth < accuracy at the smallest - "
                         f"{MARGIN:g}"))
    return out
