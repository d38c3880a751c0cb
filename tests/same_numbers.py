"""Same seeds, same numbers: compare every array gradsim writes at two revisions, bit for bit.

Not collected by pytest (it runs for minutes and needs the git history).  Usage, from the
repository root::

    python tests/same_numbers.py --base REV          # REV against the working tree
    python tests/same_numbers.py record DIR           # run the job set with the gradsim
                                                      # on sys.path, into DIR
    python tests/same_numbers.py compare DIR_A DIR_B  # compare two recorded sets

``--base`` checks ``REV`` out into a temporary git worktree, records the job set there
and here (each in its own process, ``PYTHONPATH`` pointing at the tree), and compares.

The job set (:data:`SIMULATE`, :func:`_api_jobs`) uses only what both revisions have:
``gradsim simulate`` for every architecture family, both gradient modes and both
precisions; the same specs through the Python API on the NumPy backend; depth taps;
the exact theory (``gradsim theory --out`` and both backends in 1 and 2 dimensions),
the paper model and its Monte Carlo, gradient independence, GP statistics; convnets on
both backends; a small serial sweep; a short training run; and ``gradsim reproduce
--quick``.  Two files agree when they hold the same array names with equal dtypes,
shapes and bytes (NaN equal to NaN); JSON text is compared after dropping the keys that
hold wall times (``seconds``, and a checksum over them); arrays of wall times are skipped.
Exit code 0 if every file agrees, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

#: ``gradsim simulate`` runs: name -> options (each also runs in reverse mode and float32).
SIMULATE = {
    "ff_relu": "--depth 4 --width 12",
    "ff_fused": "--depth 5 --width 8",
    "ff_leaky_bias": "--depth 3 --width 20 --activation leaky --slope-neg -0.3 --bias-var 0.2",
    "ff_orth": "--depth 3 --width 20 --init orthogonal",
    "ff_crelu": "--depth 3 --width 10 --activation crelu",
    "ff_ll": "--depth 4 --width 10 --activation crelu --init looks-linear --mirror 0.5",
    "ff_bn": "--depth 4 --width 16 --batchnorm",
    "ff_bn_through": "--depth 3 --width 10 --batchnorm --bn-grad through --points 8",
    "ff_dim3": "--depth 3 --width 12 --input-dim 3 --grid gaussian --points 10",
    "res": "--arch resnet --depth 4 --width 12",
    "res_bn2": "--arch resnet --depth 3 --width 12 --batchnorm --branch-depth 2 --beta 0.5",
    "res_alpha_ll": "--arch resnet --depth 3 --width 10 --activation crelu --init looks-linear"
                    " --alpha 0.7",
    "highway": "--arch highway --depth 4 --width 12 --gate-bias -1",
    "highway_bn": "--arch highway --depth 3 --width 12 --batchnorm --activation leaky",
}
_COMMON = "--points 16 --nets 5 --seed 3 --activity"
_SWEEP = """\
nets = 6
chunk = 4
seed = 3
gp_nets = 40
figures = []
[spec]
width = 6
[grid]
points = 8
[axes]
arch = ["feedforward", "resnet"]
batchnorm = [false, true]
depth = [1, 3]
"""


def _gradsim(*args, cwd=None):
    subprocess.run([sys.executable, "-m", "gradsim", *args], check=True, cwd=cwd,
                   stdout=subprocess.DEVNULL)


def _cli_jobs(out):
    for name, opts in SIMULATE.items():
        points = [] if "--points" in opts else ["--points", "16"]
        base = opts.split() + points + _COMMON.split()[2:]
        for tag, extra in (("fwd", []), ("rev", ["--mode", "reverse"]),
                           ("f32", ["--dtype", "float32"])):
            _gradsim("simulate", *base, *extra, "--quiet", "--out",
                     os.path.join(out, f"simulate_{name}_{tag}.npz"))
    for model in ("paper", "independence", "exact"):
        for opts in ("--depth 6", "--arch resnet --depth 5 --beta 0.5 --bias-var 0.1"):
            path = os.path.join(out, f"theory_{model}_{len(opts)}.json")
            res = subprocess.run([sys.executable, "-m", "gradsim", "theory", *opts.split(),
                                  "--model", model, "--json"], check=True,
                                 capture_output=True, text=True)
            with open(path, "w") as fh:
                fh.write(res.stdout)
    _gradsim("theory", "--depth", "7", "--points", "32", "--out",
             os.path.join(out, "theory_cov.npz"))
    sweep = os.path.join(out, "sweep.toml")
    with open(sweep, "w") as fh:
        fh.write(_SWEEP)
    _gradsim("sweep", sweep, "--out", os.path.join(out, "sweep"), "--serial", "--quiet")
    _gradsim("reproduce", "--quick", "--out", os.path.join(out, "reproduce"), "--quiet")


def _api_jobs(out):
    import gradsim
    from gradsim import GridSpec, NetSpec

    arrays = {}
    for name, opts in SIMULATE.items():
        spec, grid = _spec_from_options(opts)
        for mode in ("forward", "reverse"):
            sim = gradsim.simulate(spec, grid, nets=5, seed=3, mode=mode, backend="numpy",
                                   activity=True)
            arrays[f"{name}_{mode}_grad"] = sim.grad
            arrays[f"{name}_{mode}_activity"] = sim.activity
    from gradsim.montecarlo import simulate_depths

    for name in ("ff_bn", "res_bn2", "highway", "ff_ll"):
        spec, grid = _spec_from_options(SIMULATE[name])
        for backend in ("numba", "numpy"):
            arrays[f"depths_{name}_{backend}"] = simulate_depths(spec, grid, nets=3, seed=5,
                                                                 backend=backend)
    _theory_arrays(arrays, gradsim, NetSpec, GridSpec)
    _conv_arrays(arrays)
    np.savez(os.path.join(out, "api.npz"), **arrays)
    _train(out)


def _theory_arrays(arrays, gradsim, NetSpec, GridSpec):
    from gradsim.exact import exact_gradient_covariance, nngp_kernel
    from gradsim.gp import gp_statistics

    from gradsim.theory import independence, kurtosis_identity, paper_model, paper_model_mc

    specs = {"ff": NetSpec(depth=6), "res2": NetSpec(arch="resnet", depth=4, branch_depth=2,
                                                     beta=0.5, bias_var=0.1),
             "leaky": NetSpec(depth=5, activation="leaky", slope_neg=-0.2),
             "ll": NetSpec(depth=5, activation="crelu", init="looks-linear", mirror=0.3),
             "crelu": NetSpec(depth=4, activation="crelu")}
    for key, spec in specs.items():
        for dim in (1, 2):
            s = spec.replace(input_dim=dim)
            x = GridSpec(points=12, dim=dim, kind="line" if dim == 1 else "gaussian",
                         seed=1).points_array()
            for backend in ("numba", "numpy"):
                arrays[f"exact_{key}_{dim}_{backend}"] = exact_gradient_covariance(
                    s, x, backend=backend)
                arrays[f"exact_xy_{key}_{dim}_{backend}"] = exact_gradient_covariance(
                    s, x[:5], x[3:], backend=backend)
            arrays[f"nngp_{key}_{dim}"] = nngp_kernel(s, x)
            th = independence(s, x[0], x[-1])
            arrays[f"indep_{key}_{dim}"] = np.stack([th.variance, th.covariance,
                                                     th.correlation])
        th = paper_model(spec)
        arrays[f"paper_{key}"] = np.stack([th.variance, th.covariance, th.correlation])
    for spec in (NetSpec(depth=4, width=8), NetSpec(arch="resnet", depth=3, width=8,
                                                    batchnorm=True)):
        th = paper_model_mc(spec, nets=50, seed=2)
        arrays[f"paper_mc_{spec.arch}"] = np.stack([th.variance, th.covariance,
                                                    th.correlation, th.variance_se,
                                                    th.covariance_se, th.correlation_se])
    arrays["paper_highway"] = paper_model(NetSpec(arch="highway", depth=4)).correlation
    arrays["kurtosis"] = kurtosis_identity(NetSpec(depth=4, width=10, first_bias_var=0.0))
    cov = exact_gradient_covariance(NetSpec(depth=3), GridSpec(points=20).points_array())
    st = gp_statistics(cov[..., 0, 0], nets=300, seed=4, max_lag=3)
    arrays["gp_acf"] = np.stack([st["acf"].value, st["acf"].se])
    arrays["gp_power"] = np.stack([st["power"].value, st["power"].se])


def _conv_arrays(arrays):
    from gradsim.conv import (
        ConvSpec,
        directional_derivative_by_depth,
        input_gradient_conv,
        sample_conv,
    )
    from gradsim.montecarlo import network_rng

    cases = {"plain": dict(), "bn": dict(batchnorm=True),
             "res_bn": dict(arch="resnet", batchnorm=True),
             "ll": dict(activation="crelu", init="looks-linear")}
    rng = np.random.default_rng(0)
    x0, d = rng.standard_normal((1, 6, 6)), rng.standard_normal((1, 6, 6))
    t = np.linspace(-1, 1, 9)
    for name, kw in cases.items():
        for dims, shape in ((2, (6, 6)), (1, (10,))):
            spec = ConvSpec(dims=dims, depth=3, channels=4, input_shape=shape, **kw)
            net = sample_conv(spec, network_rng(7, dims), taps=True)
            a0 = x0 if dims == 2 else rng.standard_normal((1, 10))
            a1 = d if dims == 2 else rng.standard_normal((1, 10))
            for backend in ("numba", "numpy"):
                arrays[f"conv_{name}_{dims}_{backend}_dd"] = directional_derivative_by_depth(
                    net, a0, a1, t, backend=backend)
                batch = np.stack([a0 + s * a1 for s in (0.1, 0.5, 0.9)])
                arrays[f"conv_{name}_{dims}_{backend}_grad"] = input_gradient_conv(
                    net, batch, backend=backend)


def _train(out):
    from gradsim.data import load_digits

    from gradsim.train import ModelSpec, TrainConfig, train

    data = load_digits(0.2, 0)
    arrays = {}
    for family in ("relu", "relu-bn", "resnet-bn", "crelu-ll"):
        cfg = TrainConfig(ModelSpec(family, depth=3, width=8), epochs=2, track_points=16,
                          track_lines=2, seed=1)
        model, hist = train(cfg, data)
        for k, v in hist.to_arrays().items():
            arrays[f"{family}_{k}"] = v
        for k, v in sorted(model.params.items()) if isinstance(model.params, dict) else ():
            arrays[f"{family}_param_{k}"] = v
    np.savez(os.path.join(out, "train.npz"), **arrays)


def _spec_from_options(opts):
    from gradsim.cli import build_parser, grid_from_args, spec_from_args

    args = build_parser().parse_args(["simulate", *opts.split(), "--nets", "1", "--seed", "0",
                                      "--out", "x.npz", *(["--points", "16"] if "--points"
                                                          not in opts else [])])
    spec = spec_from_args(args)
    return spec, grid_from_args(args, spec)


def record(out):
    """Run the job set with the importable gradsim, writing into ``out``."""
    os.makedirs(out, exist_ok=False)
    _cli_jobs(out)
    _api_jobs(out)


# --------------------------------------------------------------------------- compare


#: Keys (JSON) and array names that hold wall times, or a checksum (over a sweep cell with
#: its times, or of the package source in an experiment's results).
_TIMES = ("seconds", "checksum")


def _is_time(key):
    """A wall time or checksum: named by, starting or ending with, a :data:`_TIMES` word."""
    return key.startswith(_TIMES) or key.endswith(_TIMES)


def _drop_times(data):
    if isinstance(data, dict):
        return {k: _drop_times(v) for k, v in data.items() if not _is_time(k)}
    if isinstance(data, list):
        return [_drop_times(v) for v in data]
    return data


def _same_text(a, b):
    try:
        return _drop_times(json.loads(a)) == _drop_times(json.loads(b))
    except ValueError:
        return a == b


def _same_array(a, b):
    if a.dtype.kind == "U" == b.dtype.kind:
        return a.ndim == 0 == b.ndim and _same_text(str(a), str(b))
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.kind == "f":
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool(np.array_equal(a, b))


def _rel(a, b):
    """Largest relative difference of two float arrays of one shape (or None)."""
    if a.dtype.kind != "f" or b.dtype.kind != "f" or a.shape != b.shape:
        return None
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.abs(a - b) / np.maximum(np.abs(a), np.finfo(float).tiny)
    r = r[np.isfinite(r)]
    return float(r.max()) if r.size else None


def _json_paths(a, b, path=""):
    """Paths where two JSON values differ (wall times left out)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if not _is_time(k):
                out += _json_paths(a.get(k), b.get(k), f"{path}/{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [p for i, (u, v) in enumerate(zip(a, b)) for p in _json_paths(u, v, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} -> {b!r}"[:160]]


def _compare_file(pa, pb):
    if pa.endswith(".npz"):
        with np.load(pa, allow_pickle=False) as da, np.load(pb, allow_pickle=False) as db:
            if sorted(da.files) != sorted(db.files):
                return [f"array names differ: {sorted(set(da.files) ^ set(db.files))}"]
            out = []
            for k in da.files:
                if not _is_time(k) and not _same_array(da[k], db[k]):
                    rel = _rel(da[k], db[k])
                    out.append(k if rel is None else f"{k} (max rel {rel:.1e})")
            return out
    if pa.endswith(".json"):
        with open(pa) as fa, open(pb) as fb:
            text_a, text_b = fa.read(), fb.read()
        if _same_text(text_a, text_b):
            return []
        try:
            return _json_paths(json.loads(text_a), json.loads(text_b)) or ["content"]
        except ValueError:
            return ["content"]
    return []


def _files(root):
    out = []
    for dirpath, _, names in os.walk(root):
        for n in names:
            if n.endswith((".npz", ".json")):
                out.append(os.path.relpath(os.path.join(dirpath, n), root))
    return sorted(out)


def compare(a, b):
    """Compare two recorded sets; returns the number of files that differ."""
    fa, fb = _files(a), _files(b)
    bad = 0
    for name in sorted(set(fa) ^ set(fb)):
        print(f"only in one set: {name}")
        bad += 1
    arrays = 0
    for name in sorted(set(fa) & set(fb)):
        diff = _compare_file(os.path.join(a, name), os.path.join(b, name))
        if name.endswith(".npz"):
            with np.load(os.path.join(a, name)) as d:
                arrays += len(d.files)
        if diff:
            bad += 1
            more = f" (+{len(diff) - 6} more)" if len(diff) > 6 else ""
            print(f"DIFFERS {name}: {'; '.join(diff[:6])}{more}")
    print(f"{len(set(fa) & set(fb))} files ({arrays} arrays) compared: "
          f"{'all bit-identical' if not bad else f'{bad} differ'}")
    return bad


def _record_in(tree, out):
    env = dict(os.environ, PYTHONPATH=tree)
    subprocess.run([sys.executable, os.path.abspath(__file__), "record", out], check=True,
                   cwd=tree, env=env)


def against(base):
    """Record ``base`` (a git revision) and the working tree, then compare them."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    tmp = tempfile.mkdtemp(prefix="gradsim-same-")
    tree = os.path.join(tmp, "base")
    try:
        subprocess.run(["git", "worktree", "add", "--detach", tree, base], check=True, cwd=here,
                       stdout=subprocess.DEVNULL)
        _record_in(tree, os.path.join(tmp, "a"))
        _record_in(here, os.path.join(tmp, "b"))
        return compare(os.path.join(tmp, "a"), os.path.join(tmp, "b"))
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", tree], cwd=here,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--base", help="git revision to compare the working tree against")
    sub = p.add_subparsers(dest="cmd")
    r = sub.add_parser("record")
    r.add_argument("out")
    c = sub.add_parser("compare")
    c.add_argument("a")
    c.add_argument("b")
    args = p.parse_args(argv)
    if args.base:
        return 1 if against(args.base) else 0
    if args.cmd == "record":
        record(args.out)
        return 0
    if args.cmd == "compare":
        return 1 if compare(args.a, args.b) else 0
    p.error("give --base REV, record DIR or compare A B")


if __name__ == "__main__":
    sys.exit(main())
