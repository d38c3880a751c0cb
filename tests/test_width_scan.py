"""The width_scan experiment: |R_n - R_inf| of the pair correlation against width, drawn
in Gram space, beside the exact infinite-width correlation; its fit and verdicts."""

import dataclasses
import math
import os

import numpy as np
import pytest
from matplotlib.figure import Figure

from gradsim import experiments
from gradsim.experiments import width_scan as ws
from gradsim.experiments.base import Claim, resolve
from gradsim.experiments.reproduce import run_one
from gradsim.spec import NetSpec
from gradsim.theory import exact_gradient_covariance

JIT_OFF = os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0")

#: With the kernels interpreted (CI's NUMBA_DISABLE_JIT=1 pass) the quick setting takes
#: over 10 s; there the same widths run with fewer networks (about a second).
FEWER = {"max_nets": "40", "net_budget": "1024"} if JIT_OFF else {}


@pytest.fixture(scope="module")
def quick():
    return run_one("width_scan", quick=True, overrides=FEWER)


def test_quick_run_shapes_theory_and_figure(quick):
    prm = quick.params
    assert prm == resolve(ws, quick=True, overrides=FEWER) and prm["sampler"] == "gram"
    P, D, K = len(prm["x"]), len(prm["depths"]), len(prm["widths"])
    assert quick["corr"].shape == quick["corr_se"].shape == (P, D, K)
    assert quick["exact"].shape == (P, D)
    np.testing.assert_array_equal(quick["widths"], prm["widths"])
    np.testing.assert_array_equal(quick["nets"], [ws.nets_for(prm, w) for w in prm["widths"]])
    for arr in quick.arrays.values():
        assert np.all(np.isfinite(arr))
    assert np.all(np.abs(quick["corr"]) <= 1) and np.all(quick["corr_se"] > 0)
    for p, (x, y) in enumerate(zip(prm["x"], prm["y"])):
        for j, d in enumerate(prm["depths"]):
            c = exact_gradient_covariance(NetSpec(depth=d), np.array([[x], [y]]))[..., 0, 0]
            assert quick["exact"][p, j] == pytest.approx(c[0, 1] / math.sqrt(c[0, 0] * c[1, 1]),
                                                         rel=1e-12)
    assert isinstance(ws.plot(quick), Figure)
    claims = ws.claims(quick)
    assert [c.target for c in claims] == ["X7"] * D
    for c in claims:
        assert isinstance(c, Claim) and c.verdict in ("holds", "fails", "info")
        assert (c.passed is None) == c.criterion.startswith("informational")


def _with(res, corr, se):
    return dataclasses.replace(res, arrays=dict(res.arrays, corr=corr, corr_se=se))


def test_verdicts_come_from_the_numbers(quick):
    """Synthetic correlations: a 1/n approach holds, 1/sqrt(n) fails, noise is undecided."""
    n = quick["widths"].astype(float)
    exact = quick["exact"][..., None]
    se = np.broadcast_to(1e-4 / n, quick["corr"].shape)
    tail = quick.params["tail"]

    def verdicts(diff, s=se):
        return [c.verdict for c in ws.claims(_with(quick, exact + diff, s))]

    one_over_n = np.broadcast_to(-0.5 / n, quick["corr"].shape).copy()
    one_over_n[..., -tail:] = 0.0  # the differences at the largest widths are zero
    assert verdicts(one_over_n) == ["holds", "holds"]
    fit = ws.series_fit(n, one_over_n[0, 0], se[0, 0], 3.0)
    assert fit["count"] == len(n) - tail and fit["slope"] == pytest.approx(-1, abs=1e-12)
    slow = np.broadcast_to(-0.5 / np.sqrt(n), quick["corr"].shape).copy()
    slow[..., -tail:] = 0.0
    assert verdicts(slow) == ["fails", "fails"]  # slope -1/2
    off = one_over_n.copy()
    off[..., -1] = 0.1  # not 0 at the widest net
    assert verdicts(off) == ["fails", "fails"]
    assert verdicts(one_over_n, np.ones_like(se)) == ["info", "info"]  # nothing resolved
    # a chance excursion past the first unresolved width stays out of the fit
    gap = one_over_n.copy()
    gap[..., 2] = 0.0
    assert ws.series_fit(n, gap[0, 0], se[0, 0], 3.0)["count"] == 2
    assert verdicts(gap) == ["info", "info"]


def test_parameter_checks():
    for bad, match in (({"x": "-1,0.5,2", "y": "1,-0.5"}, "same length"),
                       ({"x": "1,0.5"}, "must differ"),
                       ({"widths": "16,8,32"}, "increasing"),
                       ({"sampler": "auto"}, "gram or explicit"),
                       ({"tail": "99"}, r"tail must be in"),
                       ({"max_nets": "4"}, r"max_nets must be in")):
        with pytest.raises(ValueError, match=match):
            resolve(ws, overrides=bad)
    assert "width_scan" in experiments.NAMES
    assert experiments.NAMES.index("width_scan") == experiments.NAMES.index("kurtosis") + 1
