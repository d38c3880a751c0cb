"""Training deep nets without skips, to a stated criterion: test accuracy against depth on
the digits for plain ReLU, ReLU + BN, a BN resnet and looks-linear CReLU, each at its best
learning rate (chosen on a validation split carved from the training set), over several
seeds, every run trained until its loss curve is flat (the plateau rule of
:func:`gradsim.train.plateaued`); and what batch norm does at depth: training beside test
accuracy, running beside batch statistics, and the input gradient's growth with depth at
initialisation against ``pi / (pi - 1)`` per layer (:mod:`gradsim.train.diagnostics`).
Needs the ``digits`` extra.  ``study=full`` runs the full study (depths to 200, four
learning rates, five seeds); the default is a smaller one, converged in the same sense.
"""

from __future__ import annotations

import math
import time

import numpy as np

from .. import work
from ..figures import COLORS, new_figure
from ..parallel import ordered_map
from ..train import Diverged, ModelSpec, TrainConfig, evaluate, plateaued, train
from ..train.data import carve_validation, load_digits
from ..train.diagnostics import BN_RELU_RATE, growth_rate, input_gradient_norms
from ..train.model import CONV_FAMILIES, DENSE_FAMILIES
from .base import Claim, Results, check_range
from .common import NULL_PROGRESS, run_workers

NAME = "training"
TITLE = "Training on the digits to a plateau: accuracy against depth, plain vs BN vs resnet vs LL"
DEFAULTS = {"families": "relu,relu-bn,resnet-bn,crelu-ll", "depths": [10, 50], "width": 32,
            "lrs": [0.001, 0.003, 0.01], "seeds": 3, "max_epochs": 60, "plateau_window": 4,
            "plateau_tol": 0.02, "loss_floor": 0.01, "batch": 64, "val_fraction": 0.2,
            "grad_depths": [2, 5, 10, 20, 30, 40, 50], "grad_widths": [32, 128],
            "grad_seeds": 8, "track_points": 64, "track_lines": 2, "workers": 2,
            "seed": 0, "study": "default", "conv_families": "", "conv_depths": [10, 30],
            "conv_width": 8, "conv_lrs": [0.001, 0.003, 0.01], "conv_seeds": 3}
#: What ``study=full`` sets (it replaces these keys, whatever else is set): the dense
#: families to depth 200, and the convnets to the depth that fits (``docs/training.md``).
FULL = {"depths": [10, 50, 100, 200], "lrs": [0.0001, 0.0003, 0.001, 0.003, 0.01],
        "seeds": 5, "max_epochs": 150,
        "conv_families": "conv-relu,conv-relu-bn,conv-resnet-bn,conv-crelu-ll",
        "conv_depths": [10, 50, 100], "conv_lrs": [0.0003, 0.001, 0.003], "conv_seeds": 3}
QUICK = {"depths": [2, 8], "width": 16, "lrs": [0.003, 0.01], "seeds": 2, "max_epochs": 6,
         "plateau_window": 2, "grad_depths": [1, 2, 4, 8], "grad_widths": [16],
         "grad_seeds": 2, "track_points": 32, "track_lines": 2, "workers": 1}
#: Optional modules this experiment needs -> the extra that installs them.
REQUIRES = {"sklearn": "digits"}
#: Parameters that say how to run, never what is computed: a finished results file is
#: reused whatever their values (``gradsim.experiments.reproduce``).
RUN_SETTINGS = ("workers",)
#: Accuracy margin of the claims (absolute).
MARGIN = 0.05
#: Standard errors a difference must clear for a verdict (else the row says "info").
Z = 2.0
BN_FAMILIES = ("relu-bn", "resnet-bn", "conv-relu-bn", "conv-resnet-bn")
#: Families whose input-gradient growth at init is measured.
GRAD_FAMILIES = ("relu", "relu-bn")


def _families(params, key="families"):
    """The families named by ``params[key]``: dense ones for ``families``, ``conv-`` ones
    for ``conv_families`` (which may be empty: no convnet study)."""
    allowed = DENSE_FAMILIES if key == "families" else CONV_FAMILIES
    fams = [f.strip() for f in str(params[key]).split(",") if f.strip()]
    bad = [f for f in fams if f not in allowed]
    if (key == "families" and not fams) or bad or len(set(fams)) != len(fams):
        raise ValueError(f"{NAME}.{key} must be a comma-separated subset of "
                         f"{','.join(allowed)}; got {params[key]!r}")
    return fams


def sizes(params):
    """``params`` with :data:`FULL` applied when ``study`` is ``'full'``."""
    if params["study"] not in ("default", "full"):
        raise ValueError(f"{NAME}: parameter study must be 'default' or 'full', "
                         f"got {params['study']!r}")
    return dict(params, **FULL) if params["study"] == "full" else dict(params)


def check(params):
    """Range checks."""
    p = sizes(params)
    _families(p)
    _families(p, "conv_families")
    for key, lo, hi in (("depths", 1, 2000), ("width", 1, 4096), ("lrs", 1e-8, 10.0),
                        ("seeds", 1, 1000), ("conv_depths", 1, 2000),
                        ("conv_width", 1, 4096), ("conv_lrs", 1e-8, 10.0),
                        ("conv_seeds", 1, 1000), ("max_epochs", 1, 10**4),
                        ("plateau_window", 1, 1000), ("plateau_tol", 0.0, 1.0),
                        ("loss_floor", 0.0, 10.0), ("batch", 2, 10**5),
                        ("val_fraction", 0.01, 0.9), ("grad_depths", 1, 2000),
                        ("grad_widths", 1, 4096), ("grad_seeds", 2, 10**4),
                        ("track_points", 3, 10**5), ("track_lines", 1, 100),
                        ("workers", 1, 256), ("seed", 0, 2**62)):
        check_range(NAME, p, key, lo, hi)
    if len(set(p["grad_depths"])) < 2:
        raise ValueError(f"{NAME}: parameter grad_depths needs at least two depths")


def _pad(a, n):
    a = np.asarray(a, float)
    return np.concatenate([a, np.full((n - len(a),) + a.shape[1:], np.nan)])


def _train_one(family, depth, width, lr, index, p, fit, test):
    """One run on ``fit`` (validation as its test set) -> its numbers; NaN if it diverged."""
    cfg = TrainConfig(ModelSpec(family, depth=depth, width=width), lr=lr,
                      batch=p["batch"], epochs=p["max_epochs"], seed=p["seed"] + index,
                      track_points=p["track_points"], track_lines=p["track_lines"],
                      plateau_window=p["plateau_window"], plateau_tol=p["plateau_tol"],
                      loss_floor=p["loss_floor"])
    t0 = time.perf_counter()
    try:
        model, h = train(cfg, fit)
    except Diverged as err:
        model, h = None, err.history
    e = p["max_epochs"]
    out = {"train_loss": _pad(h.train_loss, e), "epochs": h.epochs,
           "converged": model is not None and plateaued(h.train_loss, cfg.plateau_window,
                                                        cfg.plateau_tol, cfg.loss_floor),
           "lag1": _pad(np.nanmean(np.where(np.isnan(h.lag1), 1.0, h.lag1), axis=1), e + 1),
           "val_acc": math.nan, "train_acc": math.nan, "test_acc": math.nan,
           "test_acc_batch": math.nan}
    if model is not None:
        out["val_acc"], out["train_acc"] = float(h.test_acc[-1]), float(h.train_acc[-1])
        out["test_acc"] = evaluate(model, test.x_test, test.y_test)[1]
        out["test_acc_batch"] = (evaluate(model, test.x_test, test.y_test, batch=p["batch"],
                                          batch_statistics=True)[1]
                                 if family in BN_FAMILIES else out["test_acc"])
    out["seconds"] = time.perf_counter() - t0
    return out


def _gradient_norms(p, data):
    """``||dL/dx||^2`` at init: (families, widths, depths, seeds), one batch of images."""
    x, y = data.x_train[:p["batch"]], data.y_train[:p["batch"]]
    return np.array([[input_gradient_norms(f, p["grad_depths"], w, x, y, p["grad_seeds"],
                                           p["seed"]) for w in p["grad_widths"]]
                     for f in GRAD_FAMILIES])


def _study(fams, depths, width, lrs, seeds, p, fit, data, progress, label):
    """Seed 0 of every (family, depth) at every learning rate; the rate with the best
    validation accuracy (the first on ties); seeds 1 .. seeds - 1 at it.  Returns the
    arrays (families, depths, seeds, ...) and the two stages' times."""
    t0 = time.perf_counter()
    workers = min(p["workers"], run_workers(default=p["workers"]))
    cells = [(f, d) for f in fams for d in depths]
    first = [(f, d, width, lr, 0, p, fit, data) for f, d in cells for lr in lrs]
    tick = progress.stage(f"{NAME}: {len(first)} {label}runs choosing learning rates",
                          len(first))
    sel = []
    for i, row in enumerate(ordered_map(_train_one, first, workers)):
        sel.append(row)
        tick(i + 1)
    t_choose = time.perf_counter() - t0
    val = np.array([r["val_acc"] for r in sel]).reshape(len(cells), len(lrs))
    best = np.argmax(np.nan_to_num(val, nan=-1.0), axis=1)  # first best on ties
    more = [(f, d, width, lrs[best[c]], s, p, fit, data) for c, (f, d) in enumerate(cells)
            for s in range(1, seeds)]
    tick = progress.stage(f"{NAME}: {len(more)} {label}runs of the other seeds", len(more))
    rest = []
    for i, row in enumerate(ordered_map(_train_one, more, workers)):
        rest.append(row)
        tick(i + 1)
    t_seeds = time.perf_counter() - t0 - t_choose
    runs = [[sel[c * len(lrs) + best[c]]] + rest[c * (seeds - 1):(c + 1) * (seeds - 1)]
            for c in range(len(cells))]
    work.record(len(first) + len(more))  # networks trained (steps are not counted)
    shape = (len(fams), len(depths), seeds)
    cube = (len(fams), len(depths), len(lrs))

    def stack(key):
        return np.array([r[key] for cell in runs for r in cell]).reshape(
            shape + np.shape(runs[0][0][key]))

    arrays = {k: stack(k) for k in ("train_loss", "lag1", "val_acc", "train_acc", "test_acc",
                                    "test_acc_batch", "converged", "epochs", "seconds")}
    arrays.update(depths=np.array(depths), lrs=np.array(lrs, float),
                  lr_index=best.reshape(cube[:2]), sel_val_acc=val.reshape(cube),
                  sel_converged=np.array([r["converged"] for r in sel]).reshape(cube),
                  sel_train_loss=np.array([r["train_loss"] for r in sel]).reshape(
                      cube + (-1,)),
                  sel_seconds=np.array([r["seconds"] for r in sel]).reshape(cube))
    return arrays, t_choose, t_seeds


def run(params, progress=NULL_PROGRESS):
    """Choose each family's learning rate at each depth, train the seeds, measure BN; the
    same for the convnets when ``conv_families`` names any (keys prefixed ``conv_``)."""
    t0 = time.perf_counter()
    p = sizes(params)
    data = load_digits()
    fit = carve_validation(data, p["val_fraction"], p["seed"])
    fams, conv_fams = _families(p), _families(p, "conv_families")
    arrays, t_choose, t_seeds = _study(fams, list(p["depths"]), p["width"], list(p["lrs"]),
                                       p["seeds"], p, fit, data, progress, "")
    meta = {"families": fams, "conv_families": conv_fams,
            "grad_families": list(GRAD_FAMILIES), "test_size": len(data.y_test),
            "seconds_choosing": t_choose, "seconds_seeds": t_seeds}
    if conv_fams:
        t1 = time.perf_counter()
        conv, _, _ = _study(conv_fams, list(p["conv_depths"]), p["conv_width"],
                            list(p["conv_lrs"]), p["conv_seeds"], p, fit, data, progress,
                            "convnet ")
        arrays.update({f"conv_{k}": v for k, v in conv.items()})
        meta["seconds_conv"] = time.perf_counter() - t1
    arrays.update(grad_depths=np.array(p["grad_depths"]),
                  grad_widths=np.array(p["grad_widths"]), grad_norm2=_gradient_norms(p, data))
    meta["seconds"] = time.perf_counter() - t0
    return Results(NAME, params, arrays, meta)


def accuracy_summary(acc, n_test):
    """Mean over seeds (last axis) and its standard error: the spread across seeds and
    the test set's binomial error ``sqrt(a (1 - a) / n_test)``, added in quadrature."""
    acc = np.asarray(acc, float)
    m = acc.mean(axis=-1)
    s = acc.shape[-1]
    spread = acc.var(axis=-1, ddof=1) / s if s > 1 else np.zeros_like(m)
    return m, np.sqrt(spread + m * (1.0 - m) / n_test)


def plot(results):
    """Accuracy against depth; loss curves and lag-1 at the largest depth; gradient growth."""
    r = results
    fams, depths = r.meta["families"], r["depths"]
    m, se = accuracy_summary(r["test_acc"], r.meta["test_size"])
    convs = r.meta.get("conv_families", [])
    fig, ax = new_figure(1, 5 if convs else 4, size=(20.0 if convs else 16.0, 3.8))
    a, b, c, g = ax[0][:4]
    for k, fam in enumerate(fams):
        col = COLORS[k % len(COLORS)]
        a.errorbar(depths, m[k], yerr=se[k], fmt="o-", color=col, capsize=3, label=fam)
        for s in range(r["train_loss"].shape[2]):
            b.plot(np.arange(1, r["train_loss"].shape[-1] + 1), r["train_loss"][k, -1, s],
                   "-", color=col, lw=1, label=fam if s == 0 else None)
        c.plot(np.arange(r["lag1"].shape[-1]), r["lag1"][k, -1, 0], "o-", color=col, ms=3,
               label=fam)
    a.set_xscale("log")
    a.set_xlabel("depth")
    a.set_ylabel("test accuracy (mean ± s.e. over seeds)")
    a.set_ylim(0, 1)
    a.legend(fontsize=7)
    b.set_yscale("log")
    b.set_xlabel("epoch (each run stops at its plateau)")
    b.set_ylabel(f"training loss, depth {depths[-1]}")
    c.set_xlabel("epoch (0 = init)")
    c.set_ylabel(f"lag-1 of d logit / dt, depth {depths[-1]}")
    c.set_ylim(-0.2, 1.05)
    gd = r["grad_depths"]
    for k, fam in enumerate(r.meta["grad_families"]):
        for j, w in enumerate(r["grad_widths"]):
            logs = np.log(r["grad_norm2"][k, j]).mean(axis=-1)
            g.plot(gd, logs, "os"[j % 2] + "-", color=COLORS[k], ms=4,
                   label=f"{fam}, width {w}")
    base = np.log(r["grad_norm2"][0, 0]).mean(axis=-1)[0]
    g.plot(gd, base + (gd - gd[0]) * math.log(BN_RELU_RATE), "k--", lw=1,
           label="slope log(pi / (pi - 1))")
    g.set_xlabel("depth")
    g.set_ylabel("mean log ||dL/dx||^2 at init")
    g.legend(fontsize=7)
    if convs:
        cm, cse = accuracy_summary(r["conv_test_acc"], r.meta["test_size"])
        for k, fam in enumerate(convs):
            ax[0][4].errorbar(r["conv_depths"], cm[k], yerr=cse[k], fmt="o-",
                              color=COLORS[k % len(COLORS)], capsize=3, label=fam)
        ax[0][4].set_xscale("log")
        ax[0][4].set_xlabel("depth")
        ax[0][4].set_ylabel(f"convnet test accuracy, {r.params['conv_width']} channels")
        ax[0][4].set_ylim(0, 1)
        ax[0][4].legend(fontsize=7)
    fig.suptitle("digits, Adam at each family's best learning rate (validation split); "
                 "lag-1 along lines between validation images (1 = constant)", fontsize=9)
    return fig


def _z_verdict(diff, se, converged, rule):
    """``(passed, criterion)``: True / False when ``diff`` clears zero by :data:`Z`
    standard errors and every run behind it converged; else None, the criterion saying
    why it is undecided."""
    if not converged:
        return None, f"informational: undecided, a run behind it did not converge ({rule})"
    if not np.isfinite(diff) or not np.isfinite(se) or se <= 0:
        return None, f"informational: undecided, no error bar ({rule})"
    z = diff / se
    if abs(z) < Z:
        return None, f"informational: undecided, |z| < {Z:g} ({rule})"
    return bool(z >= Z), rule


def _study_claims(r, pre, fams, width):
    """Rows of one study (dense: ``pre = ''``; convnets: ``pre = 'conv_'``): the table by
    family and depth, convergence, LL against the resnet at the largest depth, plain ReLU
    from the smallest to the largest depth, relu-bn's training and test accuracy."""
    out = []
    depths = [int(d) for d in r[pre + "depths"]]
    acc, n_test = r[pre + "test_acc"], r.meta["test_size"]
    m, se = accuracy_summary(acc, n_test)
    conv = r[pre + "converged"].astype(bool)
    lrs, p = r[pre + "lrs"], r.params
    tag = " (convnets)" if pre else ""
    shape = f"convnets of {width} channels" if pre else f"width {width}"
    setting = (f"digits, {shape}, Adam, batch {p['batch']}, {acc.shape[2]} seeds, "
               f"lr from {', '.join(f'{x:g}' for x in lrs)} on a validation split; "
               f"plateau rule window {p['plateau_window']}, tol {p['plateau_tol']:g}, "
               f"cap {int(r[pre + 'train_loss'].shape[-1])} epochs")
    for k, f in enumerate(fams):
        cells = "; ".join(
            f"{d}: {m[k, i]:.3f} ± {se[k, i]:.3f} (lr {lrs[r[pre + 'lr_index'][k, i]]:g}, "
            f"train {np.nanmean(r[pre + 'train_acc'][k, i]):.3f})" for i, d in enumerate(depths))
        out.append(Claim("X6", f"test accuracy by depth, {f} (depth: mean ± s.e.)", setting,
                         "—", cells, "—", None, "measurement"))
    out.append(Claim("X6", f"every reported accuracy comes from a loss curve that "
                           f"flattened{tag}", setting, "—",
                     f"{int(conv.sum())} of {conv.size} runs", "—", bool(conv.all()),
                     "the plateau rule held before the epoch cap"))
    idx = {f.removeprefix("conv-"): k for k, f in enumerate(fams)}
    if "crelu-ll" in idx and "resnet-bn" in idx:
        a, b = idx["crelu-ll"], idx["resnet-bn"]
        diff = m[a, -1] - m[b, -1]
        s = math.hypot(se[a, -1], se[b, -1])
        ok, why = _z_verdict(diff + MARGIN, s, conv[[a, b], -1].all(),
                             f"(LL - resnet + {MARGIN:g}) / s.e. >= {Z:g} holds, "
                             f"<= -{Z:g} fails")
        out.append(Claim("X6", f"LL at depth {depths[-1]} trains close to the resnet "
                               f"(within {MARGIN:g}){tag}", setting,
                         f"resnet {m[b, -1]:.3f} ± {se[b, -1]:.3f}",
                         f"LL {m[a, -1]:.3f} ± {se[a, -1]:.3f}",
                         f"z = {(diff + MARGIN) / s:+.1f}", ok, why))
    if "relu" in idx and len(depths) > 1:
        k = idx["relu"]
        drop = m[k, 0] - m[k, -1]
        s = math.hypot(se[k, 0], se[k, -1])
        ok, why = _z_verdict(drop - MARGIN, s, conv[k, [0, -1]].all(),
                             f"(drop - {MARGIN:g}) / s.e. >= {Z:g} holds, <= -{Z:g} fails")
        out.append(Claim("X6", f"plain ReLU degrades from depth {depths[0]} to "
                               f"{depths[-1]} (by more than {MARGIN:g}){tag}", setting,
                         f"{m[k, 0]:.3f} ± {se[k, 0]:.3f}", f"{m[k, -1]:.3f} ± {se[k, -1]:.3f}",
                         f"z = {(drop - MARGIN) / s:+.1f}", ok, why))
    if "relu-bn" in idx:
        k = idx["relu-bn"]
        cells = "; ".join(
            f"{d}: train {np.nanmean(r[pre + 'train_acc'][k, i]):.3f}, test {m[k, i]:.3f} "
            f"(batch statistics {np.nanmean(r[pre + 'test_acc_batch'][k, i]):.3f})"
            for i, d in enumerate(depths))
        out.append(Claim("X6", f"{fams[k]} by depth: training and test accuracy, running "
                               "against batch statistics", setting, "—", cells, "—", None,
                         "measurement"))
    return out


def claims(results):
    """The dense study's rows, the convnets' (when run), then batch norm's gradient
    growth at init."""
    r = results
    p = r.params
    out = _study_claims(r, "", r.meta["families"], p["width"])
    if r.meta.get("conv_families"):
        out += _study_claims(r, "conv_", r.meta["conv_families"], p["conv_width"])
    gd = r["grad_depths"]
    for j, w in enumerate(r["grad_widths"]):
        bn = growth_rate(gd, r["grad_norm2"][1, j])
        plain = growth_rate(gd, r["grad_norm2"][0, j])
        grad_setting = (f"at init, width {int(w)}, one training batch of {p['batch']}, "
                        f"depths {int(gd[0])}-{int(gd[-1])}, {r['grad_norm2'].shape[-1]} "
                        "nets per depth")
        out.append(Claim("X6", "batch norm makes the input gradient explode with depth: "
                               "per-layer growth of ||dL/dx||^2, relu-bn", grad_setting,
                         f"{BN_RELU_RATE:.3f} (wide, large batch)",
                         f"{bn[0]:.3f} ± {bn[1]:.3f} (plain ReLU {plain[0]:.3f} ± "
                         f"{plain[1]:.3f}, theory 1)", f"z = {(bn[0] - 1) / bn[1]:+.1f}",
                         *_z_verdict(bn[0] - 1.0, bn[1], True,
                                     f"(rate - 1) / s.e. >= {Z:g}: explodes; the geometric-"
                                     "mean rate nears pi / (pi - 1) as width grows")))
    return out
