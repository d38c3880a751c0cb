"""The Gram-space sampler (``sampler='gram'``): its kernel, its law, its numbers, its refusals.

A layer ``z = W h + b`` with i.i.d. Gaussian ``W`` has, given its input state ``H``, i.i.d.
rows ``N(0, v H^T H)``; the sampler draws them as ``xi R`` with ``R^T R = H^T H``
(:func:`gradsim.families.layers.gram_product`, :func:`gradsim.kernels.gram.gram_root`).

* exact identities (the kernel's factor, the power-of-two scaling, the reproducibility of
  the numbers) are asserted exactly or to rounding;
* statements in law are asserted in standard errors with fixed seeds: gram against
  explicit as two-sample z-scores of independent runs (different seeds), and the finite-
  width kurtosis identity against :func:`gradsim.theory.kurtosis_identity`.  The rule for
  each is in the test's docstring.
"""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gradsim import (
    GridSpec,
    NetSpec,
    input_gradient,
    network_rng,
    parallel,
    sample_network,
    simulate,
)
from gradsim.compare import zscore
from gradsim.families.layers import Context, gram_product
from gradsim.families.sampling import SAMPLERS, gram_refusal, resolve_sampler, state_columns
from gradsim.kernels import backend
from gradsim.montecarlo import iter_chunks, simulate_depths
from gradsim.nets import forward, input_gradient_by_depth, preactivations
from gradsim.stats import correlation_matrix, covariance_matrix, estimate_rows, lag1, point_moments
from gradsim.theory import kurtosis_identity

kernels, reference = backend("numba"), backend("numpy")

#: Specs the Gram sampler draws exactly in law (i.i.d. Gaussian weights): every family,
#: batch norm frozen and through, ab-ReLU and CReLU.  Small, for exact identities.
SMALL = {
    "ff": NetSpec(depth=3, width=6),
    "ff-bn-through": NetSpec(depth=2, width=5, batchnorm=True, bn_grad="through"),
    "resnet-bn": NetSpec(arch="resnet", depth=3, width=6, batchnorm=True, branch_depth=2,
                         beta=0.5, bias_var=0.3),
    "highway": NetSpec(arch="highway", depth=3, width=6),
    "post-resnet-leaky": NetSpec(arch="post-resnet", depth=2, width=5, activation="leaky",
                                 slope_neg=0.2),
    "crelu-2d": NetSpec(depth=2, width=4, activation="crelu", input_dim=2),
}
REFUSED = {
    "orthogonal": (NetSpec(depth=2, width=8, init="orthogonal"), "forward"),
    "looks-linear": (NetSpec(depth=2, width=8, activation="crelu", init="looks-linear"),
                     "forward"),
    "reverse": (NetSpec(depth=2, width=8), "reverse"),
}


def _grid(spec, points):
    return GridSpec(points=points, dim=spec.input_dim,
                    kind="line" if spec.input_dim == 1 else "gaussian")


# --- the kernel: a square root of a Gram matrix ---------------------------------------

def _roots(gram):
    """``gram_root`` of numba and of its twin on copies of ``gram``: ``(r, root)`` each."""
    out = []
    for kern in (kernels, reference):
        m = gram.shape[0]
        root = np.full((m, m), np.nan)
        r = kern.gram_root(gram.copy(), np.empty((3, m)), root)
        out.append((r, root))
    return out


def _check_root(h, rank=None):
    """Both kernels agree to rounding, ``R^T R = h^T h`` to 1e-12 of ``sqrt(G_aa G_bb)``,
    rows from the rank zero, zero-variance columns zero; the rank is ``rank`` if given."""
    gram = h.T @ h
    (r, root), (r2, root2) = _roots(gram)
    assert r == r2
    d = np.sqrt(np.diag(gram))
    scale = np.outer(d, d)
    unit = np.where(d > 0, d, 1.0)
    np.testing.assert_allclose(root / unit, root2 / unit, rtol=0, atol=1e-12)
    for rt in (root, root2):
        assert np.all(rt[r:] == 0.0)
        assert np.all(rt[:, d == 0] == 0.0)
        err = np.abs(rt[:r].T @ rt[:r] - gram)
        assert np.all(err <= 1e-12 * scale + 1e-300), float((err / (scale + 1e-300)).max())
    if rank is not None:
        assert r == rank
    return r


@given(st.integers(1, 7), st.integers(1, 10), st.integers(1, 7), st.integers(0, 2**32),
       st.booleans(), st.booleans(), st.booleans())
def test_gram_root_reproduces_the_gram_matrix(n, m, r0, seed, zeros, scaled, proportional):
    """Full-rank and rank-deficient states (low rank, proportional columns, zero columns,
    fewer rows than columns), columns up to 1e6 apart in scale: numba = twin to rounding,
    ``R^T R = G`` to 1e-12 relative, and the rank is the true one (states whose
    equilibrated smallest singular value is below 1e-5 are not clear cases: skipped)."""
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((n, r0)) @ rng.standard_normal((r0, m))
    if proportional and m >= 2:
        h[:, -1] = -2.5 * h[:, 0]
    if zeros:
        h[:, rng.random(m) < 0.3] = 0.0
    if scaled:
        h *= np.where(rng.random(m) < 0.5, 1e6, 1.0)
    norms = np.linalg.norm(h, axis=0)
    live = h[:, norms > 0] / norms[norms > 0]
    sv = np.linalg.svd(live, compute_uv=False) if live.size else np.zeros(0)
    rank = int((sv > 1e-5).sum())
    assume(np.all((sv > 1e-5) | (sv < 1e-12 * max(1.0, sv.max(initial=0.0)))))
    _check_root(h, rank)


def test_gram_root_by_hand():
    """Clear cases: values with tangents proportional to them (rank 1), a zero column,
    fewer units than columns, columns 1e6 apart, the zero matrix."""
    v = np.array([[1.0, -2.0, 0.5]]).T                      # 3 units, 1 point
    assert _check_root(np.hstack([v, 2.0 * v]), 1) == 1
    assert _check_root(np.hstack([v, np.zeros((3, 1)), -v]), 1) == 1
    rng = np.random.default_rng(0)
    assert _check_root(rng.standard_normal((3, 8)), 3) == 3  # N < m
    h = rng.standard_normal((6, 4)) * np.array([1.0, 1e6, 1e-6, 1.0])
    assert _check_root(h, 4) == 4
    assert _check_root(np.zeros((4, 5)), 0) == 0
    # the rank is what is left above rounding: a column off the span by 1e-4 counts
    h = rng.standard_normal((5, 2))
    h = np.hstack([h, h[:, :1] + 1e-4 * rng.standard_normal((5, 1))])
    assert _check_root(h, 3) == 3


@pytest.mark.parametrize("kern", ["numba", "numpy"])
def test_gram_product_is_the_root_and_scales_exactly(kern):
    """``gram_product(I_k, s)`` is the factor ``R`` (``R^T R = s^T s``); scaling the state by
    ``2^600`` scales the product exactly (the Gram matrix is computed on the
    state scaled into range, so a state near the top of float range does not overflow it);
    a non-finite state gives nan everywhere, never zeros."""
    rng = np.random.default_rng(3)
    ctx = Context(4, backend(kern))
    for n, m in ((6, 8), (12, 8), (8, 8)):
        s = rng.standard_normal((n, m))
        s[:, 4:6] = 3.0 * s[:, :2]                  # tangents proportional to values
        k = min(n, m)
        root = gram_product(np.eye(k), s, ctx)
        g = s.T @ s
        d = np.sqrt(np.diag(g))
        np.testing.assert_allclose(root.T @ root, g, rtol=0, atol=1e-12 * np.outer(d, d).max())
        w = rng.standard_normal((5, k))
        z = gram_product(w, s, ctx)
        # (the unscaled Gram matrix of a state near the top of range is formed first and
        # overflows; the result does not)
        with np.errstate(over="ignore"):
            assert np.array_equal(gram_product(w, np.ldexp(s, 600), ctx), np.ldexp(z, 600))
            big = gram_product(w, s * 1e300, ctx)
        assert np.isfinite(big).all()
        np.testing.assert_allclose(big, z * 1e300, rtol=1e-12)
        for bad in (np.inf, np.nan):
            t = s.copy()
            t[1, 2] = bad
            with np.errstate(invalid="ignore", over="ignore"):
                out = gram_product(w, t, ctx)
            assert np.isnan(out).all()


@pytest.mark.parametrize("kern", ["numba", "numpy"])
def test_gram_product_of_a_tiny_state_is_not_zero(kern):
    """A state near the bottom of float range scales the product exactly too: ``W s`` of
    entries ~1e-181 is ~1e-181, not 0 (the explicit product gives it)."""
    rng = np.random.default_rng(3)
    s, w = rng.standard_normal((6, 8)), rng.standard_normal((5, 6))
    ctx = Context(4, backend(kern))
    with np.errstate(under="ignore"):
        tiny = gram_product(w, np.ldexp(s, -600), ctx)
    assert np.array_equal(tiny, np.ldexp(gram_product(w, s, ctx), -600))


# --- exact in law: gram against explicit, in standard errors -------------------------

def _statistics(grad):
    """Estimates of per-point means, second moments ``E[g_i g_j]``, pair correlations and
    the lag-1 autocorrelation along the grid."""
    iu = np.triu_indices(grad.shape[1])
    iu1 = np.triu_indices(grad.shape[1], 1)
    cov, corr = covariance_matrix(grad), correlation_matrix(grad)
    mean = estimate_rows(grad[..., 0])
    one = lag1(grad)
    return {"mean": (mean.value, mean.se),
            "second moment": (cov.value[iu], cov.se[iu]),
            "correlation": (corr.value[iu1], corr.se[iu1]),
            "lag-1": (np.atleast_1d(one.value), np.atleast_1d(one.se))}


def _two_sample(spec, points, nets, seed):
    """Two-sample z-scores of every statistic, explicit (seed) against gram (seed + 1)."""
    grid = GridSpec(points=points)
    a = simulate(spec, grid, nets=nets, seed=seed, sampler="explicit")
    b = simulate(spec, grid, nets=nets, seed=seed + 1, sampler="gram")
    assert (a.sampler, b.sampler) == ("explicit", "gram")
    sa, sb = _statistics(a.grad), _statistics(b.grad)
    return {k: zscore(sb[k][0], sa[k][0], sb[k][1], sa[k][1]) for k in sa}


def _assert_same_law(zs, bound, label):
    worst = {k: float(np.nanmax(np.abs(z))) for k, z in zs.items()}
    assert all(np.isfinite(z).all() for z in zs.values()), (label, zs)
    assert max(worst.values()) <= bound, (label, worst)
    return worst


#: Exact in law, every family; width 16-32, depth 3-5, 12 points, 4000 nets per sampler.
LAW = {
    "ff": NetSpec(depth=5, width=24),
    "ff-bn": NetSpec(depth=5, width=24, batchnorm=True),
    "ff-bn-through": NetSpec(depth=3, width=16, batchnorm=True, bn_grad="through"),
    "resnet": NetSpec(arch="resnet", depth=4, width=24, bias_var=0.2),
    "resnet-bn": NetSpec(arch="resnet", depth=5, width=24, batchnorm=True, beta=0.7),
    "resnet-2-bn-through": NetSpec(arch="resnet", depth=3, width=16, batchnorm=True,
                                   bn_grad="through", branch_depth=2),
    "highway": NetSpec(arch="highway", depth=4, width=24, gate_bias=-1.0),
    "highway-bn": NetSpec(arch="highway", depth=4, width=24, batchnorm=True),
    "post-resnet": NetSpec(arch="post-resnet", depth=3, width=24),
    "crelu": NetSpec(depth=4, width=16, activation="crelu"),
    "leaky": NetSpec(depth=4, width=24, activation="leaky", slope_pos=1.2, slope_neg=-0.3),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", LAW)
def test_gram_and_explicit_have_the_same_law(name):
    """Means and second moments ``E[g_i g_j]`` of df/dx at each of 12 points, pair
    correlations and the lag-1 autocorrelation, from 4000 nets per sampler with
    independent seeds: every two-sample z-score within 4 (about 100 z-scores per spec,
    1100 in all: under a Gaussian null about 0.07 of them would pass 4).  What this
    resolves: :func:`test_the_two_sample_comparison_has_power`."""
    zs = _two_sample(LAW[name], 12, 4000, 11)
    _assert_same_law(zs, 4.0, name)


@pytest.mark.slow
@pytest.mark.parametrize("name, change", [("ff", {"weight_var": 2.2}), ("ff-bn", {"depth": 4})])
def test_the_two_sample_comparison_has_power(name, change):
    """The same comparison flags a law that is off: explicit nets with weight_var 2.2
    instead of 2 (the variance at depth 5 up by 60 %), or a layer short (with batch norm:
    the shape of the law, not its scale), against gram nets give some |z| > 6.  (A 5 %
    change of weight_var gives |z| about 4.7, a first-layer bias variance of 0.8 against 1
    about 3.8: the comparison resolves changes of that order, not much finer.)"""
    grid = GridSpec(points=12)
    spec = LAW[name]
    a = simulate(spec.replace(**change), grid, nets=4000, seed=11, sampler="explicit")
    b = simulate(spec, grid, nets=4000, seed=12, sampler="gram")
    sa, sb = _statistics(a.grad), _statistics(b.grad)
    worst = max(float(np.abs(zscore(sb[k][0], sa[k][0], sb[k][1], sa[k][1])).max())
                for k in sa)
    assert worst > 6.0, worst


@pytest.mark.parametrize("name", ["ff-bn", "resnet"])
def test_gram_and_explicit_have_the_same_law_quick(name):
    """The quick version: 8 points, width 8, depth 3, 300 nets per sampler, |z| <= 4.5
    (about 80 z-scores per spec, heavier tails at 300 nets)."""
    spec = {"ff-bn": NetSpec(depth=3, width=8, batchnorm=True),
            "resnet": NetSpec(arch="resnet", depth=3, width=8)}[name]
    _assert_same_law(_two_sample(spec, 8, 300, 3), 4.5, name)


# --- the finite-width kurtosis identity --------------------------------------------

def _kurtosis_z(width, depth, nets, seed):
    spec = NetSpec(depth=depth, width=width, first_bias_var=0.0)
    grid = GridSpec(points=2, lo=-1.0, hi=1.0)
    g = simulate_depths(spec, grid, nets=nets, seed=seed, sampler="gram")
    est = [point_moments(g[:, d], 1)[1] for d in range(depth)]
    return zscore([e.value for e in est], kurtosis_identity(spec), [e.se for e in est])


@pytest.mark.slow
@pytest.mark.parametrize("width, depth, nets, checked, seed",
                         [(4, 2, 12000, 1, 1), (10, 4, 12000, 2, 2), (50, 10, 10000, 5, 3)])
def test_kurtosis_identity_in_gram_space(width, depth, nets, checked, seed):
    """``Kurt[df/dx] = 3 prod (1 + 5/n)`` (bias-free He ReLU) at x = 1 for every depth up to
    ``depth`` from one run of taps (:func:`simulate_depths`), with the delta-method s.e.
    of :func:`gradsim.stats.point_moments`.

    The rule, from a null study of the exact law (``|h_l|^2`` a product of scaled
    chi-squares with binomial degrees of freedom, 1000 replicates per setting): the
    z-score is skewed to the left (a sample short of the rare large gradients has a low
    kurtosis and a low s.e.), never above 3.5, and below -4 with probability under
    0.5 % per depth only up to ``checked`` depths at these net counts.  So: z <= 4 at
    every depth, |z| <= 4 up to ``checked``, z >= -6 beyond (about the 0.1 % quantile)."""
    z = _kurtosis_z(width, depth, nets, seed)
    assert np.all(z <= 4.0), z
    assert np.all(np.abs(z[:checked]) <= 4.0), z
    assert np.all(z[checked:] >= -6.0), z


def test_kurtosis_identity_in_gram_space_quick():
    """Width 50, depths 1-2, 2000 nets: |z| <= 4 (null rate of |z| > 4: 0.6 %)."""
    z = _kurtosis_z(50, 2, 2000, 0)
    assert np.all(np.abs(z) <= 4.0), z


# --- reproducibility within the sampler --------------------------------------------

@pytest.mark.parametrize("name", SMALL)
def test_gram_numbers_do_not_depend_on_chunks_and_taps_agree(name):
    """Within ``sampler='gram'``: chunk sizes 1, 3 and 16 give the same numbers bit for bit
    (simulate and simulate_depths); ``simulate_depths[:, -1]`` is ``simulate``; network i
    does not depend on the run's length."""
    spec = SMALL[name]
    grid = _grid(spec, 5)
    runs = [simulate(spec, grid, nets=7, seed=4, chunk=c, sampler="gram") for c in (1, 3, 16)]
    assert all(r.sampler == "gram" for r in runs)
    for r in runs[1:]:
        assert np.array_equal(r.grad, runs[0].grad)
    depths = [simulate_depths(spec, grid, nets=7, seed=4, chunk=c, sampler="gram")
              for c in (1, 3, 16)]
    for d in depths[1:]:
        assert np.array_equal(d, depths[0])
    assert np.array_equal(depths[0][:, -1], runs[0].grad)
    assert np.array_equal(simulate(spec, grid, nets=3, seed=4, sampler="gram").grad,
                          runs[0].grad[:3])
    chunks = np.concatenate([c.grad for c in iter_chunks(spec, grid, 7, 4, chunk=2,
                                                         sampler="gram")])
    assert np.array_equal(chunks, runs[0].grad)
    other = simulate(spec, grid, nets=7, seed=5, sampler="gram")
    assert not np.array_equal(other.grad, runs[0].grad)


@pytest.mark.parametrize("name", ["ff-bn", "resnet", "highway", "crelu"])
def test_numpy_twins_agree_with_numba_in_gram_space(name):
    """backend='numpy' = numba to rounding (simulate and simulate_depths), on nets wide
    enough that no two columns of a state tie as pivots (and the narrow nets below)."""
    spec = LAW[name].replace(depth=3)
    grid = GridSpec(points=5)
    a = simulate(spec, grid, nets=6, seed=4, sampler="gram")
    b = simulate(spec, grid, nets=6, seed=4, sampler="gram", backend="numpy")
    np.testing.assert_allclose(b.grad, a.grad, rtol=1e-10, atol=1e-12)
    da = simulate_depths(spec, grid, nets=3, seed=4, sampler="gram")
    db = simulate_depths(spec, grid, nets=3, seed=4, sampler="gram", backend="numpy")
    np.testing.assert_allclose(db, da, rtol=1e-10, atol=1e-12)


def test_numpy_twin_agrees_with_numba_on_narrow_gram_nets():
    """Narrow nets, where two columns of a state often tie in exact arithmetic (a value
    and its tangent where one unit is active): pivots within ``GRAM_TIE`` go to the first
    column, so rounding, which differs between numba and the twin, does not choose
    between two valid roots.  Network 6 of seed 4 (resnet, width 6, batch norm, 5
    points) tied at its third Gram matrix before the rule (an O(1) difference); every
    small spec, 40 nets, to 1e-6 (batch norm over 5 points at width 5 amplifies rounding
    to about 1e-9)."""
    for name, spec in SMALL.items():
        x = GridSpec(points=5, dim=spec.input_dim).points_array()
        for i in range(40):
            net = sample_network(spec, network_rng(4, i), sampler="gram", points=5)
            np.testing.assert_allclose(input_gradient(net, x, backend="numpy"),
                                       input_gradient(net, x), rtol=1e-6, atol=1e-12,
                                       err_msg=f"{name}, network {i}")


def test_gram_net_is_a_function_of_its_stream():
    """The same stream gives the same Gram-space network; its input gradient equals the
    run's, its readouts have ``min(F, columns)`` entries."""
    spec = SMALL["resnet-bn"]
    grid = GridSpec(points=5)
    want = simulate(spec, grid, nets=2, seed=8, sampler="gram").grad
    for i in range(2):
        net = sample_network(spec, network_rng(8, i), sampler="gram", points=5)
        assert net.sampler == "gram" and net.columns == state_columns(spec, 5) == 10
        assert net.readout.shape == (min(spec.features, 10),)
        assert np.array_equal(input_gradient(net, grid.points_array()), want[i])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ff-bn-through", "highway", "crelu-2d"])
def test_gram_workers_give_bit_identical_results(name):
    """Two spawned workers = one process, bit for bit, in Gram space (simulate and
    simulate_depths)."""
    spec = SMALL[name]
    grid = _grid(spec, 6)
    one = simulate(spec, grid, nets=10, seed=6, chunk=3, sampler="gram")
    two = simulate(spec, grid, nets=10, seed=6, chunk=3, sampler="gram", workers=2)
    assert two.sampler == "gram" and np.array_equal(one.grad, two.grad)
    a = simulate_depths(spec, grid, nets=6, seed=6, chunk=1, sampler="gram")
    b = simulate_depths(spec, grid, nets=6, seed=6, chunk=4, sampler="gram", workers=2)
    assert np.array_equal(a, b)
    parallel.shutdown()


# --- auto -------------------------------------------------------------------------

def test_auto_takes_explicit_for_the_paper_job_and_gram_for_wide_nets_on_few_points():
    paper = NetSpec(depth=50, width=200, batchnorm=True)
    assert resolve_sampler(paper, 256) == "explicit"
    assert sample_network(paper, network_rng(0, 0), sampler="auto", points=256).sampler == \
        "explicit"
    wide = NetSpec(depth=2, width=1024)
    assert resolve_sampler(wide, 2) == "gram"
    grid = GridSpec(points=2)
    run = simulate(wide, grid, nets=3, seed=1)  # sampler='auto' is the default
    assert run.sampler == "gram"
    assert np.array_equal(run.grad, simulate(wide, grid, nets=3, seed=1, sampler="gram").grad)
    assert simulate(wide, grid, nets=3, seed=1, sampler="explicit").sampler == "explicit"
    assert simulate_depths(wide, grid, nets=2, seed=1).shape == (2, 2, 2, 1)
    np.testing.assert_array_equal(simulate_depths(wide, grid, nets=2, seed=1)[:, -1],
                                  run.grad[:2])


@pytest.mark.parametrize("name", REFUSED)
def test_auto_never_takes_gram_where_it_does_not_apply(name):
    """Width 1024 on 2 points, where He nets take gram; and width 64, where they still do
    (the cost model: 2 points are 4 state columns) and the runs are cheap."""
    spec, mode = REFUSED[name]
    for width in (1024, 64):
        wide = spec.replace(width=width)
        assert gram_refusal(wide, mode) is not None
        assert resolve_sampler(wide.replace(init="he", activation="relu"), 2) == "gram"
        assert resolve_sampler(wide, 2, mode) == "explicit"
        assert resolve_sampler(wide, 2, mode, "auto") == "explicit"
    run = simulate(wide, GridSpec(points=2), nets=2, seed=0, mode=mode)
    assert run.sampler == "explicit"
    assert sample_network(wide, network_rng(0, 0), sampler="auto", points=2).sampler == (
        "gram" if mode == "reverse" else "explicit")  # a net is drawn for forward mode


# --- refusals ---------------------------------------------------------------------

@pytest.mark.parametrize("name", REFUSED)
def test_gram_refuses_what_it_cannot_draw(name):
    spec, mode = REFUSED[name]
    grid = GridSpec(points=4)
    with pytest.raises(ValueError, match="sampler"):
        simulate(spec, grid, nets=2, seed=0, mode=mode, sampler="gram")
    with pytest.raises(ValueError, match="sampler"):
        resolve_sampler(spec, 4, mode, "gram")
    if mode == "forward":
        with pytest.raises(ValueError, match="sampler"):
            sample_network(spec, network_rng(0, 0), sampler="gram", points=4)
        with pytest.raises(ValueError, match="sampler"):
            simulate_depths(spec, grid, nets=2, seed=0, sampler="gram")
        with pytest.raises(ValueError, match="sampler"):
            list(iter_chunks(spec, grid, 2, 0, sampler="gram"))


def test_unknown_sampler_lists_the_choices():
    spec, grid = NetSpec(depth=1, width=4), GridSpec(points=4)
    assert SAMPLERS == ("explicit", "gram", "auto")
    for call in (lambda: simulate(spec, grid, nets=2, seed=0, sampler="fast"),
                 lambda: simulate_depths(spec, grid, nets=2, seed=0, sampler="fast"),
                 lambda: sample_network(spec, network_rng(0, 0), sampler="fast", points=4),
                 lambda: resolve_sampler(spec, 4, "forward", "fast")):
        with pytest.raises(ValueError, match="sampler must be one of explicit, gram, auto; "
                                             "got 'fast'"):
            call()
    with pytest.raises(ValueError, match="points"):
        sample_network(spec, network_rng(0, 0), sampler="gram")


def test_gram_net_refuses_what_it_is_not():
    """A Gram-space net is a sample of the gradients at its grid points, not a function."""
    spec = NetSpec(depth=2, width=6, batchnorm=True)
    net = sample_network(spec, network_rng(0, 0), sampler="gram", points=4)
    x = GridSpec(points=4).points_array()
    assert np.isfinite(input_gradient(net, x)).all()
    with pytest.raises(ValueError, match="forward needs a network drawn explicitly"):
        forward(net, x)
    with pytest.raises(ValueError, match="preactivations needs a network drawn explicitly"):
        preactivations(net, x)
    with pytest.raises(ValueError, match="mode='reverse' needs a network drawn explicitly"):
        input_gradient(net, x, mode="reverse")
    with pytest.raises(ValueError, match="sampler='gram' needs mode='forward'"):
        net.layers[0].backward(np.ones((6, 4)), None, None)
    other = GridSpec(points=5).points_array()
    with pytest.raises(ValueError, match="drawn in Gram space for states of 8 columns.*got 10"):
        input_gradient(net, other)
    tapped = sample_network(spec, network_rng(0, 0), taps=True, sampler="gram", points=4)
    with pytest.raises(ValueError, match="Gram space"):
        input_gradient_by_depth(tapped, other)
    assert np.array_equal(input_gradient_by_depth(tapped, x)[-1], input_gradient(net, x))


# --- overflow ---------------------------------------------------------------------

def test_gram_overflow_is_not_finite_and_refused():
    """A state out of range gives non-finite gradients in Gram space, not zeros (nan states
    once went through as zero variance), and simulate refuses it as the explicit sampler
    does, at about the same depth (the growth, 200 per layer, is the same law)."""
    spec = NetSpec(depth=300, width=8, weight_var=400.0)
    grid = GridSpec(points=8)
    x = grid.points_array()
    for i in range(20):  # the first network alive at depth 300 (most die first)
        net = sample_network(spec, network_rng(0, i), taps=True, sampler="gram", points=8)
        with np.errstate(all="ignore"):
            g = input_gradient(net, x, backend="numpy")
            by_depth = input_gradient_by_depth(net, x)
        if not (g == 0.0).all():
            break
    assert not np.isfinite(g).any()
    bad = ~np.isfinite(by_depth).all(axis=(1, 2))
    first = int(np.argmax(bad))
    assert bad.any() and np.isfinite(by_depth[:first]).all() and bad[first:].all()
    assert not (by_depth[first:] == 0.0).any()
    depth = {}
    for sampler in ("explicit", "gram"):
        with pytest.raises(ValueError, match=r"gradients overflow float64 .* at depth (\d+) "
                                             r"of 300") as exc:
            simulate(spec, grid, nets=2, seed=0, sampler=sampler)
        depth[sampler] = int(str(exc.value).split("at depth ")[1].split(" ")[0])
    assert abs(depth["gram"] - depth["explicit"]) <= 30, depth
    with pytest.raises(ValueError, match=r"gradients overflow float64 .* at depth \d+ of 300"):
        simulate_depths(spec, grid, nets=2, seed=0, sampler="gram")


@pytest.mark.parametrize("kern", ["numba", "numpy"])
@pytest.mark.parametrize("spec, points", [
    (NetSpec(depth=10, width=32, first_bias_var=0.1, bias_var=0.1), 2),
    (NetSpec(depth=4, width=3, activation="leaky", slope_neg=0.2), 2),  # narrow: n <= m
    (NetSpec(depth=1, width=40), 3),
    (NetSpec(depth=6, width=100, weight_var=2.5), 4),
], ids=["ff-bias", "narrow-leaky", "depth-1", "wide"])
def test_gram_stack_kernel_equals_layer_by_layer(kern, spec, points):
    """A plain net on few columns runs as one kernel call (gram_stack, one root per layer
    for the next layer and the readout): the layer-by-layer numbers to rounding, at every
    depth and at the output."""
    from unittest import mock

    from gradsim.families import feedforward

    x = GridSpec(points=points).points_array()
    for i in range(5):
        net = sample_network(spec, network_rng(2, i), taps=True, sampler="gram", points=points)
        assert feedforward.gram_fused(net) is not None
        by_depth = input_gradient_by_depth(net, x, backend=kern)
        out = input_gradient(net, x, backend=kern)
        with mock.patch.object(feedforward, "GRAM_FUSED_MAX_COLUMNS", 0):
            assert feedforward.gram_fused(net) is None
            want_depth = input_gradient_by_depth(net, x, backend=kern)
            want = input_gradient(net, x, backend=kern)
        scale = np.abs(want_depth).max(axis=(1, 2), keepdims=True)
        np.testing.assert_allclose(by_depth, want_depth, rtol=0, atol=1e-12 * scale.max())
        np.testing.assert_allclose(out, want, rtol=0, atol=1e-12 * np.abs(want).max())
        assert np.array_equal(by_depth[-1], out)


def test_gram_stack_hands_back_what_needs_rescaling():
    """A Gram matrix out of the unscaled range: the kernel and its twin return its depth,
    and the net runs layer by layer (which rescales), so the numbers are those."""
    from unittest import mock

    from gradsim.families import feedforward

    spec = NetSpec(depth=60, width=8, weight_var=1e6)  # x 5e5 per layer: 2^900 by ~48
    x = GridSpec(points=2).points_array()
    net = sample_network(spec, network_rng(0, 1), taps=True, sampler="gram", points=2)
    ws, bs, act = feedforward.gram_fused(net)
    ctx = Context(2, kernels)
    h = net.layers[1].forward(net.layers[0].forward(
        np.array([[x[0, 0], x[1, 0], 1.0, 1.0]]), ctx)[0], ctx)[0]
    us = np.stack(net.taps + [net.readout])
    got = []
    for kern in (kernels, reference):
        out = np.empty((len(us), 4))
        got.append(kern.gram_stack(ws, bs, h, 2, 1.0, 0.0, us, np.empty((2, 8, 4)),
                                   np.empty((11, 4)), out))
    assert got[0] == got[1] and 0 < got[0] < spec.depth
    with np.errstate(all="ignore"):
        by_depth = input_gradient_by_depth(net, x)
        with mock.patch.object(feedforward, "GRAM_FUSED_MAX_COLUMNS", 0):
            want = input_gradient_by_depth(net, x)
    assert np.array_equal(by_depth, want, equal_nan=True)
    assert np.isfinite(by_depth[:got[0]]).all()
