"""Monte Carlo of the exact pieces (kinks_mc) and the ``gradsim kinks`` command."""

import json

import numpy as np
import pytest

from gradsim import NetSpec
from gradsim.cli.main import main
from gradsim.kinks import breakpoints
from gradsim.kinks_mc import KinkStats, simulate_kinks
from gradsim.montecarlo import network_rng
from gradsim.nets import sample_network


def test_records_are_the_networks_own_and_do_not_depend_on_chunking():
    spec = NetSpec(depth=3, width=12)
    ks = simulate_kinks(spec, -1.5, 1.5, nets=5, seed=9, grid_points=32, chunk=2)
    again = simulate_kinks(spec, -1.5, 1.5, nets=5, seed=9, grid_points=32, chunk=5)
    for f in ("per_unit", "breakpoints", "jump_abs", "slope_rms", "jump_s11", "lag1_num",
              "several"):
        np.testing.assert_array_equal(getattr(ks, f), getattr(again, f))
    net = sample_network(spec, network_rng(9, 3), taps=True)
    k = breakpoints(net, -1.5, 1.5, grid=np.linspace(-1.5, 1.5, 32))
    np.testing.assert_array_equal(ks.per_unit[3], k.crossings_per_unit())
    assert ks.breakpoints[3, -1] == len(k.breakpoints)
    assert ks.breakpoints[3, 0] == len(k.tap_breakpoints[0])
    assert ks.per_unit.shape == (5, 3) and ks.breakpoints.shape == (5, 3)
    assert list(ks.units) == [12, 12, 12]


def test_ratio_estimator_and_its_error():
    rng = np.random.default_rng(0)
    den = rng.uniform(1, 2, size=(400, 1))
    num = 0.3 * den + 0.05 * rng.standard_normal((400, 1))
    r, se = KinkStats.ratio(num, den)
    assert abs(r[0] - 0.3) < 4 * se[0] and se[0] < 0.01


@pytest.mark.slow
def test_two_workers_give_the_same_numbers():
    spec = NetSpec(depth=2, width=8)
    one = simulate_kinks(spec, nets=4, seed=3, grid_points=16, workers=1)
    two = simulate_kinks(spec, nets=4, seed=3, grid_points=16, workers=2, chunk=1)
    np.testing.assert_array_equal(one.per_unit, two.per_unit)
    np.testing.assert_array_equal(one.jump_s2, two.jump_s2)


def test_kinks_command_writes_the_records_and_the_rice_prediction(tmp_path, capsys):
    out = tmp_path / "k.npz"
    code = main(["kinks", "--depth", "3", "--width", "16", "--nets", "4", "--seed", "1",
                 "--points", "32", "--workers", "1", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0 and "Rice formula, infinite width" in text
    with np.load(out) as data:
        assert data["per_unit"].shape == (4, 3)
        assert data["rice_per_unit"].shape == (3,)
        meta = json.loads(str(data["meta"]))
        assert meta["nets"] == 4 and meta["a"] == -2.0
    ks = simulate_kinks(NetSpec(depth=3, width=16), nets=4, seed=1, grid_points=32)
    with np.load(out) as data:
        np.testing.assert_array_equal(data["per_unit"], ks.per_unit)
    # batch norm: no Rice prediction, said so
    code = main(["kinks", "--depth", "2", "--width", "8", "--batchnorm", "--nets", "2",
                 "--seed", "1", "--points", "8", "--workers", "1", "--out",
                 str(tmp_path / "bn.npz")])
    assert code == 0 and "no Rice prediction" in capsys.readouterr().out


@pytest.mark.parametrize("argv, match", [
    (["--range", "1", "1"], "--range"),
    (["--range", "0", "nan"], "--range"),
    (["--nets", "1"], "--nets"),
    (["--arch", "highway"], "highway"),
    (["--input-dim", "2", "--direction", "0", "0"], "direction"),
    (["--input-dim", "2"], "--direction is required"),
    (["--input-dim", "2", "--direction", "1"], "direction"),
    (["--max-knots", "3"], "max_knots"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, match):
    out = tmp_path / "bad.npz"
    base = ["kinks", "--depth", "2", "--width", "8", "--nets", "3", "--seed", "0",
            "--points", "8", "--workers", "1", "--out", str(out)]
    # later options override earlier ones (argparse keeps the last)
    code = main(base + argv)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and match in err, err
    assert "Traceback" not in err and not out.exists()
