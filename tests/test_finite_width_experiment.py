"""The finite_width experiment: the 1/n coefficient of the pair correlation against the
first-order finite-width theory; shapes, theory values, figure and verdicts."""

import dataclasses

import numpy as np
import pytest
from matplotlib.figure import Figure

from gradsim import experiments
from gradsim.experiments import finite_width as fw
from gradsim.experiments.base import Claim, resolve
from gradsim.experiments.reproduce import run_one
from gradsim.spec import NetSpec
from gradsim.theory.finite_width import finite_width_gradient_covariance

#: Small enough for about a second even with NUMBA_DISABLE_JIT=1; widths 8 and 16 at
#: depths 2 and 4 give cells on both sides of L / n = 1/4.
SMALL = {"widths": "8,16", "depths": "2,4", "nets": "60"}


@pytest.fixture(scope="module")
def small():
    return run_one("finite_width", overrides=SMALL, workers=1)


def _corr(c):
    return c[0, 1] / np.sqrt(c[0, 0] * c[1, 1])


def test_run_shapes_theory_and_figure(small):
    prm = small.params
    assert prm == resolve(fw, overrides=SMALL) and prm["sampler"] == "gram"
    P, D, K = len(prm["x"]), len(prm["depths"]), len(prm["widths"])
    lmax = prm["depths"][-1]
    assert small["corr"].shape == small["corr_se"].shape == small["first_order"].shape \
        == (P, D, K)
    assert small["exact"].shape == (P, D)
    for key in ("profile", "profile_se", "profile_first_order", "profile_exact"):
        assert small[key].shape == (P, lmax)
    for arr in small.arrays.values():
        assert np.all(np.isfinite(arr))
    assert np.all(np.abs(small["corr"]) <= 1) and np.all(small["corr_se"] > 0)
    for p, (x, y) in enumerate(zip(prm["x"], prm["y"])):
        for k, w in enumerate(prm["widths"]):
            spec = NetSpec(depth=lmax, width=w, first_bias_var=prm["bias_var"],
                           bias_var=prm["bias_var"])
            t = finite_width_gradient_covariance(spec, [x, y])
            for j, d in enumerate(prm["depths"]):
                assert small["first_order"][p, j, k] == pytest.approx(
                    _corr(t["cov_by_depth"][d - 1]), rel=1e-12)
                assert small["exact"][p, j] == pytest.approx(
                    _corr(t["cov_inf_by_depth"][d - 1]), rel=1e-12)
            if k == 0:
                np.testing.assert_allclose(small["profile_first_order"][p],
                                           [_corr(c) for c in t["cov_by_depth"]], rtol=1e-12)
        # the depth profile is the narrowest width's run at every depth
        np.testing.assert_array_equal(small["profile"][p, np.array(prm["depths"]) - 1],
                                      small["corr"][p, :, 0])
    # the theory at the last depth is the function's own "cov"
    t = finite_width_gradient_covariance(NetSpec(depth=4, width=8, first_bias_var=0.1,
                                                 bias_var=0.1), [-1.0, 1.0])
    assert small["first_order"][0, -1, 0] == pytest.approx(_corr(t["cov"]), rel=1e-12)
    co = fw.coefficients(small)
    n = small["widths"].astype(float)
    np.testing.assert_allclose(co["z"] * co["c_mc_se"], co["c_mc"] - co["c_theory"],
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(co["c_mc_se"], n * small["corr_se"])
    assert isinstance(fw.plot(small), Figure)
    claims = fw.claims(small)
    assert [c.target for c in claims] == ["X8a", "X8b"]
    for c in claims:
        assert isinstance(c, Claim) and c.verdict in ("holds", "fails", "info")
        assert (c.passed is None) == c.criterion.startswith("informational")
    assert "not expected to hold" in claims[0].score  # L=4, n=8 lies beyond 1/4
    assert claims[1].verdict == "info" and "fewer than" in claims[1].criterion


def _with(res, corr, se, nets=None):
    params = res.params if nets is None else dict(res.params, nets=nets)
    return dataclasses.replace(res, params=params,
                               arrays=dict(res.arrays, corr=corr, corr_se=se))


def test_verdicts_come_from_the_numbers(small):
    fo, exact = small["first_order"], small["exact"][..., None]
    se = np.full(fo.shape, 1e-3)
    inside = fw.coefficients(small)["ratio"] <= small.params["max_ratio"]

    def verdicts(corr, s=se, nets=None):
        return [c.verdict for c in fw.claims(_with(small, corr, s, nets))]

    assert verdicts(fo + 2e-3) == ["holds", "info"]  # X8b: too few nets
    assert verdicts(fo + 2e-3, nets=10**5) == ["holds", "holds"]
    assert verdicts(fo + 4e-3, nets=10**5) == ["fails", "fails"]
    # off by 4 s.e. beyond L/n = 1/4 only: X8a holds, X8b (every cell) fails
    beyond = np.where(inside, fo, fo + 4e-3)
    assert verdicts(beyond, nets=10**5) == ["holds", "fails"]
    assert "z = 4.00" in fw.claims(_with(small, beyond, se))[0].score
    # twice the first-order correction: off both theories where the correction is large
    assert (np.abs(fo - exact) > 5e-3).any()
    assert verdicts(exact + 2 * (fo - exact), nets=10**5)[1] == "fails"
    # nothing off the infinite-width theory: X8b undecided
    assert verdicts(fo, np.ones_like(se), nets=10**5) == ["holds", "info"]


def test_parameter_checks():
    for bad, match in (({"x": "-1,0.5,2", "y": "1,-0.5"}, "same length"),
                       ({"x": "1,0.5"}, "must differ"),
                       ({"widths": "16,8,32"}, "increasing"),
                       ({"sampler": "auto"}, "gram or explicit"),
                       ({"bias_var": "0"}, r"bias_var must be in"),
                       ({"plot_pair": "2"}, r"plot_pair must be in")):
        with pytest.raises(ValueError, match=match):
            resolve(fw, overrides=bad)
    assert experiments.NAMES.index("finite_width") == experiments.NAMES.index("width_scan") + 1
