"""Architecture families: the protocol every family module keeps, the one activation table,
``covers``, the post-activation resnet end to end, and the old public names."""

import importlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gradsim import GridSpec, NetSpec, input_gradient, load, network_rng, sample_network
from gradsim.cli import main
from gradsim.compare import assert_agrees, compare_spec
from gradsim.families import ARCHS, FAMILIES, PROTOCOL, family
from gradsim.families.activation import activation_rule
from gradsim.families.hooks import MODELS
from gradsim.nets import input_gradient_by_depth, preactivations
from gradsim.stats import Estimate
from gradsim.strategies import net_specs
from gradsim.theory import covers, exact_gradient_covariance, independence, paper_model
from gradsim.theory.paper import paper_model_mc

FIELDS = set(NetSpec.__dataclass_fields__)


@pytest.mark.parametrize("name", ARCHS)
def test_every_family_module_keeps_the_protocol(name):
    mod = FAMILIES[name]
    missing = [p for p in PROTOCOL if not hasattr(mod, p)]
    assert not missing, f"{name} lacks {missing}"
    assert mod.NAME == name and family(name) is mod
    assert set(mod.FIELDS) <= FIELDS
    assert set(mod.ACTIVATIONS) <= {"relu", "leaky", "crelu"} and "relu" in mod.ACTIVATIONS
    assert set(mod.__all__) >= set(PROTOCOL) - {"NAME"}


def test_unknown_family_and_fields_of_another_family_are_refused():
    with pytest.raises(ValueError, match="arch must be one of feedforward, resnet"):
        family("densenet")
    with pytest.raises(ValueError, match="alpha applies only to arch='resnet' or "
                                         "arch='post-resnet'"):
        NetSpec(arch="highway", alpha=0.5)
    with pytest.raises(ValueError, match="gate_bias applies only to arch='highway'"):
        NetSpec(arch="post-resnet", gate_bias=0.0)
    with pytest.raises(ValueError, match="not supported for arch='post-resnet'"):
        NetSpec(arch="post-resnet", activation="crelu")


@pytest.mark.parametrize("spec, a, b, scale, readout, mirrored, features", [
    (NetSpec(), 1.0, 0.0, 2.0, 1.0, False, 1),
    (NetSpec(activation="leaky", slope_pos=0.7, slope_neg=-0.2), 0.7, -0.2, 2.0, 1.0, False, 1),
    (NetSpec(activation="crelu"), 1.0, 0.0, 2.0, 1.0, False, 2),
    (NetSpec(activation="crelu", init="looks-linear", mirror=0.3), 1.0, 0.3, 1.0, 0.5, True, 2),
])
def test_activation_table(spec, a, b, scale, readout, mirrored, features):
    rule = activation_rule(spec)
    assert (rule.a, rule.b, rule.weight_scale, rule.readout_scale) == (a, b, scale, readout)
    assert (rule.mirrored, rule.features, spec.features) == (mirrored, features,
                                                              features * spec.width)


def test_sampler_builds_the_tables_activation():
    """The layer the sampler puts in the net is the one the table names."""
    for spec in (NetSpec(depth=2, width=3, activation="leaky", slope_neg=-0.4),
                 NetSpec(arch="post-resnet", depth=2, width=3, activation="leaky")):
        net = sample_network(spec, np.random.default_rng(0))
        acts = [layer for layer in net.layers if type(layer).__name__ == "Activation"]
        assert acts and all(layer == spec.activation_rule.layer for layer in acts)


@given(net_specs(max_depth=3), st.sampled_from(MODELS))
def test_covers_is_none_or_a_reason_and_theories_raise_it(spec, model):
    reason = covers(spec, model)
    assert reason is None or (isinstance(reason, str) and reason)
    call = {"paper": lambda: paper_model(spec),
            "independence": lambda: independence(spec, np.ones(spec.input_dim),
                                                 -np.ones(spec.input_dim)),
            "exact": lambda: exact_gradient_covariance(spec, np.ones((2, spec.input_dim)))}
    if model in call and reason is not None:
        with pytest.raises(ValueError) as err:
            call[model]()
        assert str(err.value) == reason


def test_compare_skips_exactly_the_theories_that_do_not_cover():
    spec = NetSpec(arch="post-resnet", depth=2, width=8)
    g = np.random.default_rng(0).standard_normal((10, 2))
    rows = compare_spec(spec, g[:, 0], g[:, 1], np.array([-1.0]), np.array([1.0]))
    assert {r.label for r in rows} == {paper_model(spec).label}
    assert "not Gaussian" in covers(spec, "exact")


# --------------------------------------------------------------------- post-resnet


@pytest.mark.parametrize("branch_depth, corr", [(1, 0.5), (2, 1 / 3)])
def test_post_resnet_paper_model_closed_form(branch_depth, corr):
    """He ReLU, alpha = beta = 1: per block the variance is multiplied by
    (1/2)(1 + 2) = 3/2 and the covariance by (1/4)(1 + 2 (1/2)^(k-1)): correlation 2^-L
    for a one-layer branch, 3^-L for two."""
    th = paper_model(NetSpec(arch="post-resnet", depth=6, branch_depth=branch_depth))
    L = np.arange(1, 7)
    np.testing.assert_allclose(th.variance, 1.5**L, rtol=1e-14)
    np.testing.assert_allclose(th.correlation, corr**L, rtol=1e-14)


@pytest.mark.parametrize("spec", [
    NetSpec(arch="post-resnet", depth=5, width=16),
    NetSpec(arch="post-resnet", depth=4, width=16, branch_depth=2, beta=0.5),
    NetSpec(arch="highway", depth=5, width=16, gate_bias=-1.0),
], ids=["post1", "post2-beta", "highway"])
def test_paper_model_against_its_own_monte_carlo(spec):
    """The closed form and the Monte Carlo of the model read the same blocks."""
    th, mc = paper_model(spec), paper_model_mc(spec, nets=1500, seed=3)
    for q in ("variance", "correlation"):
        assert_agrees(getattr(th, q), Estimate(getattr(mc, q), getattr(mc, f"{q}_se"), 1500),
                      name=f"{spec.arch} {q}")


def test_post_resnet_layers_and_activity():
    spec = NetSpec(arch="post-resnet", depth=3, width=5, branch_depth=2, batchnorm=True,
                   bias_var=0.2)
    net = sample_network(spec, np.random.default_rng(1))
    assert spec.n_act_layers == 1 + 3 * 2
    assert len(net.dense_layers()) == 1 + 3 * 2
    x = GridSpec(points=7).points_array()
    assert len(preactivations(net, x)) == spec.n_act_layers
    _, act = input_gradient(net, x, activity=True)
    assert act.shape == (spec.n_act_layers, 2)


def test_post_resnet_block_by_hand():
    """x_0 = relu(W0 x + b0), x_l = relu(x + W_l x), f = u . x_L: values and df/dx."""
    spec = NetSpec(arch="post-resnet", depth=3, width=6)
    net = sample_network(spec, np.random.default_rng(2))
    x = np.linspace(-2, 2, 11)
    w0, *ws = net.dense_layers()
    h = np.maximum(w0.w @ x[None] + w0.b[:, None], 0)
    dh = (h > 0) * w0.w
    for layer in ws:
        z = h + layer.w @ h
        dh = (z > 0) * (dh + layer.w @ dh)
        h = np.maximum(z, 0)
    np.testing.assert_allclose(input_gradient(net, x)[:, 0], net.readout @ dh, rtol=1e-12)
    np.testing.assert_allclose(input_gradient(net, x, mode="reverse")[:, 0],
                               net.readout @ dh, rtol=1e-12)


def test_post_resnet_depth_taps_are_prefix_networks():
    spec = NetSpec(arch="post-resnet", depth=4, width=6, branch_depth=2, batchnorm=True)
    x = np.linspace(-2, 2, 9)
    net = sample_network(spec, network_rng(5, 0), taps=True)
    g = input_gradient_by_depth(net, x)
    for depth in range(1, 5):
        np.testing.assert_array_equal(input_gradient(net.prefix(depth), x), g[depth - 1])


def test_post_resnet_units_are_not_active_half_the_time():
    """Why the paper model misses real post-activation nets: the stream ``relu(x + F)`` is
    non-negative, so the units after each sum are active well above the model's 1/2
    (measured here at depth 8, width 32, 10 nets on the 256-point line, with batch norm,
    which normalises only the branch)."""
    from gradsim import simulate
    from gradsim.stats import activity_summary

    spec = NetSpec(arch="post-resnet", depth=8, width=32, batchnorm=True)
    active, _ = activity_summary(simulate(spec, GridSpec(points=256), nets=10, seed=1,
                                          keep=False, activity=True).activity)
    assert_agrees(0.5, Estimate(active.value[0], active.se[0], 10))  # the stem: 1/2
    last = Estimate(active.value[-1], active.se[-1], 10)
    assert float(last.value) > 0.5 + 10 * float(last.se)


def test_cli_simulate_and_theory_for_the_new_family(tmp_path, capsys):
    out = tmp_path / "post.npz"
    assert main(["simulate", "--arch", "post-resnet", "--depth", "3", "--width", "8",
                 "--branch-depth", "2", "--points", "16", "--nets", "3", "--seed", "0",
                 "--activity", "--out", str(out), "--quiet"]) == 0
    sim = load(out)
    assert sim.spec.arch == "post-resnet" and sim.activity.shape == (3, 7, 2)
    assert main(["theory", "--arch", "post-resnet", "--depth", "4", "--model", "paper",
                 "--json"]) == 0
    assert '"correlation": 0.0625' in capsys.readouterr().out
    assert main(["theory", "--arch", "post-resnet", "--depth", "4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not Gaussian" in err


# --------------------------------------------------------------------- old public names

#: ``__all__`` of every public module before the house redesign (revision a0f168b), the
#: modules of the API reference.  Each name must still be importable from its old module.
OLD_PUBLIC = {
    "gradsim": ["__version__", "NetSpec", "GridSpec", "make_grid", "Network",
                "sample_network", "forward", "input_gradient", "Simulation", "simulate",
                "iter_chunks", "network_rng", "Moments", "save", "load"],
    "gradsim.spec": ["NetSpec", "JsonData", "ARCHS", "ACTIVATIONS", "INITS", "BN_GRADS",
                     "MAX_SIZE"],
    "gradsim.grids": ["GridSpec", "GRIDS", "make_grid"],
    "gradsim.nets": ["Network", "sample_network", "forward", "preactivations",
                     "input_gradient", "input_gradient_by_depth", "looks_linear_product",
                     "GRAD_MODES"],
    "gradsim.montecarlo": ["Simulation", "Chunk", "network_rng", "iter_chunks", "simulate",
                           "simulate_depths", "MAX_NETS"],
    "gradsim.stats": ["Estimate", "Moments", "Stream", "acf_rows", "power_rows",
                      "autocorrelation", "lag1", "spectrum", "spectral_slope",
                      "point_moments", "white_noise", "brown_noise", "covariance_matrix",
                      "correlation_matrix", "offdiagonal_ratio", "activity_summary"],
    "gradsim.theory": ["Theory", "LABELS", "relu_moments", "ab_moments", "paper_model",
                       "paper_model_mc", "independence", "kurtosis_identity"],
    "gradsim.exact": ["exact_gradient_covariance", "nngp_kernel"],
    "gradsim.gp": ["shallow_diffusion", "gp_sample", "gp_statistics", "BLOCK"],
    "gradsim.compare": ["Comparison", "compare", "assert_agrees", "pair_statistics",
                        "predict", "MODELS", "compare_spec", "grid_rows"],
    "gradsim.io": ["save", "load", "check_output", "atomic_write"],
    "gradsim.strategies": ["net_specs", "grid_specs"],
    "gradsim.conv_spec": ["ConvSpec", "CONV_BACKENDS", "CONV_ARCHS", "CONV_ACTIVATIONS",
                          "CONV_INITS"],
    "gradsim.conv": ["ConvSpec", "ConvNet", "Conv", "CONV_BACKENDS", "CONV_ARCHS",
                     "CONV_ACTIVATIONS", "CONV_INITS", "sample_conv", "conv_forward",
                     "conv_preactivations", "line_inputs", "directional_derivative",
                     "directional_derivative_by_depth", "input_gradient_conv"],
    "gradsim.data": ["Digits", "load_digits", "digit_images", "split_digits"],
    "gradsim.train": ["TrainConfig", "History", "Diverged", "train", "evaluate", "track_lag1",
                      "load_checkpoint", "FAMILIES", "ModelSpec", "Model", "init_model",
                      "softmax_cross_entropy", "OPTIMIZERS", "SGD", "Adam",
                      "make_optimizer"],
    "gradsim.train.model": ["FAMILIES", "ModelSpec", "Model", "init_model",
                            "softmax_cross_entropy"],
    "gradsim.train.optim": ["OPTIMIZERS", "SGD", "Adam", "make_optimizer"],
    "gradsim.train.loop": ["TrainConfig", "History", "Diverged", "train", "evaluate",
                           "track_lag1", "load_checkpoint"],
    "gradsim.experiments": ["NAMES", "get", "describe", "missing_requirements"],
    "gradsim.experiments.base": ["Results", "Claim", "resolve", "parse_overrides",
                                 "save_results", "load_results", "versions"],
    "gradsim.reproduce": ["reproduce", "run_one", "TqdmProgress", "Interrupted"],
    "gradsim.report": ["write_report", "claim_rows", "sort_key", "format_run",
                       "format_claims"],
    "gradsim.figures": ["new_figure", "save_figure", "plot_signals", "plot_image",
                        "plot_curves", "plot_errorbars"],
    "gradsim.parallel": ["check_workers", "ordered_map", "shutdown"],
    "gradsim.sweep": ["Sweep", "Cell", "SweepResult", "STATISTICS", "load_sweep",
                      "parse_sweep", "cell_seed", "compute_cell", "run_sweep", "sweep_status",
                      "MAX_CELLS", "MAX_ENTRIES"],
    "gradsim.cli": ["main", "build_parser", "add_spec_options", "spec_from_args"],
}


@pytest.mark.parametrize("module", sorted(OLD_PUBLIC))
def test_old_public_names_still_import(module):
    mod = importlib.import_module(module)
    missing = [n for n in OLD_PUBLIC[module] if not hasattr(mod, n)]
    assert not missing, f"{module} lost {missing}"


def test_moved_modules_are_the_new_modules():
    from gradsim._moved import MOVED

    for old, new in MOVED.items():
        assert importlib.import_module(old) is importlib.import_module(new)
        assert importlib.import_module(new).__spec__.name == new  # the alias left it alone
