"""Rice formula for the pre-activation zero crossings along a line, at infinite width:
the depth-1 closed form (Cauchy), the arctan closed form of every site, the kernels
against the exact theory, convergence, invariances, refusals, and wide-network Monte
Carlo of the exact crossing counts."""

import math

import numpy as np
import pytest

from gradsim import NetSpec
from gradsim.conv.spec import ConvSpec
from gradsim.nets import preactivations, sample_network
from gradsim.theory.exact import exact_gradient_covariance, nngp_kernel
from gradsim.theory.rice import DEFAULT_NODES, LABEL, line_kernels, rice_crossings


def _cauchy(a, b, center, scale):
    """P(a <= X <= b) for X Cauchy(center, scale)."""
    return (math.atan((b - center) / scale) - math.atan((a - center) / scale)) / math.pi


@pytest.mark.parametrize("weight_var, first_bias_var, a, b", [
    (2.0, 1.0, -2.0, 2.0), (1.0, 0.3, -1.0, 3.0), (5.0, 2.0, 0.5, 4.0), (0.7, 0.05, -3.0, -0.1)])
@pytest.mark.parametrize("activation", ["relu", "leaky"])
def test_depth_one_is_the_cauchy_probability(weight_var, first_bias_var, a, b, activation):
    # z(t) = w t + b0: one zero at -b0/w, Cauchy of scale sqrt(first_bias_var / weight_var)
    spec = NetSpec(depth=1, weight_var=weight_var, first_bias_var=first_bias_var,
                   activation=activation)
    r = rice_crossings(spec, a, b)
    want = _cauchy(a, b, 0.0, math.sqrt(first_bias_var / weight_var))
    assert r["per_unit"].shape == (1,)
    assert abs(r["per_unit"][0] - want) <= 1e-10 * want
    assert r["units"].tolist() == [spec.width]
    np.testing.assert_allclose(r["per_layer"], spec.width * r["per_unit"], rtol=1e-15)
    assert r["breakpoints"] == pytest.approx(spec.width * want, rel=1e-10)
    np.testing.assert_allclose(r["density"] @ r["weights"], r["per_unit"], rtol=1e-14)
    assert r["label"] == LABEL == "Rice formula, infinite width"
    assert r["linear"] is None


SPECS = [
    NetSpec(depth=5, bias_var=0.3),
    NetSpec(depth=4, activation="leaky", slope_pos=1.3, slope_neg=-0.2, bias_var=0.5),
    NetSpec(depth=3, activation="crelu", bias_var=0.2, first_bias_var=0.4),
    NetSpec(depth=3, activation="crelu", init="looks-linear", mirror=0.4, bias_var=0.2),
    NetSpec(depth=3, init="orthogonal", input_dim=3, bias_var=0.1, first_bias_var=0.02),
    NetSpec(arch="resnet", depth=4, bias_var=0.2, alpha=0.8, beta=0.6),
    NetSpec(arch="resnet", depth=3, branch_depth=2, activation="leaky", slope_neg=0.3,
            bias_var=0.4, input_dim=2),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.arch}-{s.activation}-{s.init}")
def test_every_site_is_a_cauchy_probability(spec):
    # on the diagonal the program is affine, so each site's K is a quadratic in t with its
    # minimum at the point t* nearest the origin: E[N] is a Cauchy probability of scale
    # sqrt(K(t*) / C); the quadrature does not know that
    x0 = np.linspace(0.3, -0.5, spec.input_dim)
    u = np.linspace(1.0, 2.0, spec.input_dim)
    a, b = -2.5, 1.5
    r = rice_crossings(spec, a, b, x0=x0, direction=u)
    ts = -float(x0 @ u) / float(u @ u)
    kern = line_kernels(spec, [ts, a, b], x0, u)
    k, c = kern["K"], kern["C"]
    np.testing.assert_allclose(c, c[:, :1] * np.ones(3), rtol=1e-12)  # C constant
    for site in range(len(r["per_unit"])):
        want = _cauchy(a, b, ts, math.sqrt(k[site, 0] / c[site, 0]))
        assert abs(r["per_unit"][site] - want) <= 1e-12, site
    # hidden biases widen the Cauchy scale: fewer crossings, site after site (feedforward)
    if spec.arch == "feedforward":
        assert np.all(np.diff(r["per_unit"]) < 0)


@pytest.mark.parametrize("spec", SPECS[:1] + SPECS[4:], ids=lambda s: s.arch)
def test_converged_in_nodes(spec):
    fine = rice_crossings(spec, -2.0, 2.0, nodes=64)["per_unit"]
    for nodes in (16, DEFAULT_NODES):
        got = rice_crossings(spec, -2.0, 2.0, nodes=nodes)["per_unit"]
        np.testing.assert_allclose(got, fine, rtol=1e-12, atol=0)
    coarse = rice_crossings(spec, -2.0, 2.0, nodes=3)["per_unit"]
    assert np.abs(coarse - fine).max() > 1e-8  # the comparison can tell


def test_narrow_first_layer_kernel_is_resolved():
    # first_bias_var tiny: the density is a Cauchy peak of width ~1e-4 at t = 0; the
    # graded panels resolve it (a single Gauss-Legendre panel would not)
    spec = NetSpec(depth=3, first_bias_var=2e-8, bias_var=0.1)
    r = rice_crossings(spec, -2.0, 2.0)
    assert r["per_unit"][0] == pytest.approx(_cauchy(-2, 2, 0, 1e-4), rel=1e-12)
    np.testing.assert_allclose(r["per_unit"], rice_crossings(spec, -2.0, 2.0, nodes=64)
                               ["per_unit"], rtol=1e-11)


@pytest.mark.parametrize("arch", ["feedforward", "resnet"])
def test_scale_invariance(arch):
    # without biases the kernels scale with weight_var (per layer), and the Rice formula
    # is invariant to z -> c z; the line must miss the origin
    spec = NetSpec(arch=arch, depth=4, input_dim=2, first_bias_var=0.0, bias_var=0.0,
                   activation="leaky", slope_neg=0.1)
    x0, u = np.array([0.2, 1.0]), np.array([1.0, -0.3])
    base = rice_crossings(spec, -2.0, 2.0, x0=x0, direction=u)["per_unit"]
    assert np.all(base > 0.1)
    for factor in (0.25, 3.0, 40.0):
        other = spec.replace(weight_var=spec.weight_var * factor)
        got = rice_crossings(other, -2.0, 2.0, x0=x0, direction=u)["per_unit"]
        np.testing.assert_allclose(got, base, rtol=1e-12)
    # and so is scaling the direction with the segment (the same set of inputs)
    got = rice_crossings(spec, -1.0, 1.0, x0=x0, direction=2 * u)["per_unit"]
    np.testing.assert_allclose(got, base, rtol=1e-12)


def test_default_line_is_the_grid_line():
    spec = NetSpec(depth=3, input_dim=4, bias_var=0.2)
    got = rice_crossings(spec, -2.0, 2.0)["per_unit"]
    want = rice_crossings(spec, -2.0, 2.0, x0=np.zeros(4), direction=np.full(4, 0.5))
    np.testing.assert_allclose(got, want["per_unit"], rtol=1e-15)
    one = NetSpec(depth=2)
    np.testing.assert_allclose(rice_crossings(one, -1, 2)["per_unit"],
                               rice_crossings(one, -1, 2, x0=[0.0], direction=[1.0])
                               ["per_unit"], rtol=1e-15)


@pytest.mark.parametrize("arch, branch_depth", [("feedforward", 1), ("resnet", 1)])
def test_kernels_match_the_exact_theory(arch, branch_depth):
    spec = NetSpec(arch=arch, depth=4, input_dim=2, bias_var=0.3, first_bias_var=0.5,
                   activation="leaky", slope_neg=0.2, branch_depth=branch_depth,
                   weight_var=2.5)
    x0, u = np.array([0.4, -0.2]), np.array([0.6, 1.1])
    t = np.array([-1.7, -0.3, 0.8, 2.2])
    x = x0 + t[:, None] * u
    kern = line_kernels(spec, t, x0, u)
    scale = np.exp(kern["log_scale"])[:, None]
    k, kt, c = kern["K"] * scale, kern["K_t"] * scale, kern["C"] * scale
    s0 = spec.weight_var / spec.input_dim
    # site 1: the first pre-activations W x + b
    np.testing.assert_allclose(k[0], s0 * (x * x).sum(1) + spec.first_bias_var, rtol=1e-14)
    np.testing.assert_allclose(c[0], s0 * (u @ u), rtol=1e-14)
    for site in range(1, spec.n_act_layers):
        if arch == "feedforward":
            # z_{l+1} = W h_l + b: the depth-l net with readout_var = weight_var, plus b
            prefix = spec.replace(depth=site, readout_var=spec.weight_var)
            add = spec.bias_var
        else:
            # the stream x_l entering block l + 1: the depth-l resnet's output
            prefix = spec.replace(depth=site, readout_var=1.0)
            add = 0.0
        want_k = np.diag(nngp_kernel(prefix, x, backend="numpy")) + add
        cov = exact_gradient_covariance(prefix, x, backend="numpy")
        want_c = np.einsum("a,kab,b->k", u, cov[np.arange(len(t)), np.arange(len(t))], u)
        np.testing.assert_allclose(k[site], want_k, rtol=1e-12)
        np.testing.assert_allclose(c[site], want_c, rtol=1e-12)
    # K_t = K'(t) / 2, by a central difference of K along the line
    h = 1e-5
    up = line_kernels(spec, t + h, x0, u)
    down = line_kernels(spec, t - h, x0, u)
    fd = (up["K"] - down["K"]) / (4 * h) * scale
    np.testing.assert_allclose(kt, fd, rtol=1e-7, atol=1e-9 * np.abs(k).max())


@pytest.mark.parametrize("spec", [
    NetSpec(depth=3, width=7),
    NetSpec(depth=2, width=5, activation="leaky", slope_neg=0.3),
    NetSpec(depth=2, width=6, activation="crelu"),
    NetSpec(depth=3, width=6, activation="crelu", init="looks-linear"),
    NetSpec(arch="resnet", depth=3, width=5),
    NetSpec(arch="resnet", depth=2, width=4, branch_depth=2),
    NetSpec(arch="resnet", depth=2, width=4, branch_depth=2, activation="crelu",
            init="looks-linear", mirror=0.5),
], ids=lambda s: f"{s.arch}-{s.branch_depth}-{s.activation}-{s.init}")
def test_sites_align_with_preactivations(spec):
    r = rice_crossings(spec, -1.0, 1.0)
    net = sample_network(spec, np.random.default_rng(3))
    z = preactivations(net, np.linspace(-1, 1, 5), backend="numpy")
    assert len(r["per_unit"]) == len(z) == spec.n_act_layers
    assert r["units"].tolist() == [zl.shape[0] for zl in z]
    assert np.all(r["per_unit"] > 0)


def test_looks_linear_has_no_breakpoints():
    spec = NetSpec(depth=3, activation="crelu", init="looks-linear", bias_var=0.1)
    r = rice_crossings(spec, -2.0, 2.0)
    assert np.all(r["per_layer"] > 0) and r["breakpoints"] == 0.0
    assert "looks-linear" in r["linear"]
    partial = rice_crossings(spec.replace(mirror=0.5), -2.0, 2.0)
    assert partial["linear"] is None
    assert partial["breakpoints"] == pytest.approx(partial["per_layer"].sum(), rel=1e-15)
    for other in (NetSpec(depth=2, activation="leaky", slope_pos=0.5, slope_neg=0.5),
                  NetSpec(arch="resnet", depth=2, beta=0.0)):
        assert rice_crossings(other, -2.0, 2.0)["breakpoints"] == 0.0


@pytest.mark.parametrize("spec, a, b, kwargs, match", [
    (NetSpec(batchnorm=True), -2, 2, {}, "batch norm"),
    (NetSpec(arch="highway"), -2, 2, {}, "highway"),
    (NetSpec(arch="post-resnet"), -2, 2, {}, "post-activation"),
    (ConvSpec(), -2, 2, {}, "conv"),
    ("feedforward", -2, 2, {}, "NetSpec"),
    (NetSpec(), 1.0, 1.0, {}, "a < b"),
    (NetSpec(), 2.0, -2.0, {}, "a < b"),
    (NetSpec(), -math.inf, 2.0, {}, "finite"),
    (NetSpec(), -2.0, math.nan, {}, "finite"),
    (NetSpec(), -2.0, 2.0, {"nodes": 1}, "nodes"),
    (NetSpec(input_dim=2), -2, 2, {"direction": [0.0, 0.0]}, "nonzero"),
    (NetSpec(input_dim=2), -2, 2, {"direction": [1.0, math.inf]}, "finite"),
    (NetSpec(input_dim=2), -2, 2, {"direction": [1.0, 1.0, 1.0]}, "length"),
    (NetSpec(input_dim=2), -2, 2, {"x0": [0.0, math.nan]}, "finite"),
    (NetSpec(input_dim=2), -2, 2, {"x0": [0.0]}, "length"),
    (NetSpec(first_bias_var=0.0, depth=3), -1.0, 1.0, {}, "through the origin"),
    (NetSpec(first_bias_var=0.0, input_dim=2), -2, 2,
     {"x0": [0.3, 0.3], "direction": [1.0, 1.0]}, "through the origin"),
    (NetSpec(arch="resnet", depth=2, alpha=0.0), -2, 2, {}, "K is 0 at activation site 2"),
])
def test_refusals(spec, a, b, kwargs, match):
    with pytest.raises(ValueError, match=match) as err:
        rice_crossings(spec, a, b, **kwargs)
    assert str(err.value).startswith("rice:")


def test_line_missing_the_origin_without_bias_is_fine():
    # no bias, the origin off the segment: first-layer units z = w t do not cross there
    spec = NetSpec(depth=3, first_bias_var=0.0, bias_var=0.3)
    r = rice_crossings(spec, 0.5, 2.0)
    assert r["per_unit"][0] == 0.0
    assert np.all(r["per_unit"][1:] > 0)  # hidden biases move the deeper zeros
    np.testing.assert_allclose(r["per_unit"], rice_crossings(spec, 0.5, 2.0, nodes=64)
                               ["per_unit"], rtol=1e-12)


# --- Monte Carlo: exact crossing counts of wide sampled networks -----------------------

def _crossings(spec, nets, seed):
    """Exact zero crossings per unit per site on ``t`` in [-2, 2] of the default line
    (:func:`gradsim.kinks.breakpoints`), averaged over units; the mean over networks and
    its standard error."""
    from gradsim.kinks import breakpoints

    rows = [breakpoints(sample_network(spec, np.random.default_rng([seed, i])), -2.0, 2.0,
                        backend="numpy").crossings_per_unit() for i in range(nets)]
    rows = np.array(rows)
    return rows.mean(0), rows.std(0, ddof=1) / math.sqrt(nets)


def _check_mc(spec, nets, seed):
    theory = rice_crossings(spec, -2.0, 2.0)["per_unit"]
    mean, se = _crossings(spec, nets, seed)
    z = (mean - theory) / se
    assert np.all(np.abs(z) <= 4), (theory, mean, z)
    return theory, mean, z


MC_FAST = [
    NetSpec(depth=4, width=256, bias_var=0.4),
    NetSpec(arch="resnet", depth=2, width=256, branch_depth=2, activation="leaky",
            slope_neg=0.2, bias_var=0.4),
]


@pytest.mark.parametrize("spec", MC_FAST, ids=lambda s: s.arch)
def test_monte_carlo_crossings(spec):
    theory, _, _ = _check_mc(spec, nets=16, seed=20)
    # the biases lower the crossings site after site by more than the noise can: a theory
    # with the first layer's count everywhere would fail
    assert theory[0] - theory[-1] > 0.04


MC_SLOW = [
    NetSpec(depth=5, width=256, bias_var=0.3, first_bias_var=0.5, weight_var=2.5),
    NetSpec(depth=4, width=256, activation="crelu", bias_var=0.3),
    NetSpec(depth=4, width=256, activation="crelu", init="looks-linear", mirror=0.5,
            bias_var=0.3),
    NetSpec(arch="resnet", depth=5, width=256, bias_var=0.3, alpha=0.9, beta=0.7),
    NetSpec(arch="resnet", depth=3, width=256, input_dim=2, branch_depth=2, bias_var=0.3),
]


@pytest.mark.slow
@pytest.mark.parametrize("spec", MC_SLOW, ids=lambda s: f"{s.arch}-{s.activation}-{s.init}")
def test_monte_carlo_crossings_slow(spec):
    _check_mc(spec, nets=24, seed=21)  # d > 1: the line x = t (1, ..., 1) / sqrt(d)
