"""Monte Carlo driver: per-network streams, chunk independence, bounded memory."""

import tracemalloc

import numpy as np
import pytest

from gradsim import (
    GridSpec,
    NetSpec,
    input_gradient,
    iter_chunks,
    network_rng,
    sample_network,
    simulate,
)
from gradsim.montecarlo import network_bytes
from gradsim.stats import Moments

SPEC = NetSpec(depth=3, width=8, batchnorm=True)
GRID = GridSpec(points=16)


def test_network_stream_is_the_spawned_child():
    children = np.random.SeedSequence(42).spawn(5)
    for i, child in enumerate(children):
        a = network_rng(42, i).standard_normal(4)
        b = np.random.default_rng(child).standard_normal(4)
        assert np.array_equal(a, b)


@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_chunk_size_never_changes_results(mode):
    runs = [simulate(SPEC, GRID, nets=7, seed=5, chunk=c, mode=mode, activity=True,
                     moments=True) for c in (1, 3, 7, 100)]
    for r in runs[1:]:
        assert np.array_equal(r.grad, runs[0].grad)
        assert np.array_equal(r.activity, runs[0].activity)
        assert np.array_equal(r.moments.outer, runs[0].moments.outer)
        assert np.array_equal(r.moments.total, runs[0].moments.total)


def test_same_seed_same_numbers_other_seed_other_numbers():
    a = simulate(SPEC, GRID, nets=3, seed=1)
    b = simulate(SPEC, GRID, nets=3, seed=1)
    c = simulate(SPEC, GRID, nets=3, seed=2)
    assert np.array_equal(a.grad, b.grad)
    assert not np.array_equal(a.grad, c.grad)
    # network i does not depend on how many networks the run has
    d = simulate(SPEC, GRID, nets=5, seed=1)
    assert np.array_equal(d.grad[:3], a.grad)


def test_numpy_backend_agrees_with_numba():
    a = simulate(SPEC, GRID, nets=3, seed=9)
    b = simulate(SPEC, GRID, nets=3, seed=9, backend="numpy")
    np.testing.assert_allclose(a.grad, b.grad, rtol=1e-10, atol=1e-12)


def test_moments_match_kept_gradients():
    r = simulate(SPEC, GRID, nets=6, seed=3, moments=True)
    g = r.grad.reshape(6, -1)
    np.testing.assert_allclose(r.moments.mean, g.mean(axis=0), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(r.moments.second_moment, g.T @ g / 6, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(r.moments.covariance, np.cov(g.T), rtol=1e-10, atol=1e-12)
    corr = r.moments.correlation
    np.testing.assert_allclose(np.diag(corr), 1.0, rtol=1e-12)


def test_iter_chunks_covers_every_network_once():
    starts = [(c.start, len(c.grad)) for c in iter_chunks(SPEC, GRID, 10, 0, chunk=4)]
    assert starts == [(0, 4), (4, 4), (8, 2)]


def _peak(nets, keep=False):
    tracemalloc.start()
    simulate(NetSpec(depth=2, width=8), GridSpec(points=16), nets=nets, seed=0, chunk=4,
             keep=keep, moments=True)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def test_memory_is_bounded_by_the_chunk_not_the_number_of_networks():
    small, large = _peak(8), _peak(120)
    assert large < 1.25 * small
    # whereas keeping the gradients grows with the number of networks: 112 more networks
    # hold 112 * 16 * 8 bytes more; half of that, as transient peaks vary by a few %
    assert _peak(120, keep=True) > _peak(8, keep=True) + 0.5 * 112 * 16 * 8


def test_float32_run_agrees_with_its_networks_in_float64():
    """Network i of a float32 run is sample_network(spec, network_rng(seed, i), 'float32');
    the same parameters in float64 give the gradients to float32 rounding."""
    spec = NetSpec(depth=3, width=8)  # no batch norm: its 1/sigma amplifies rounding
    r = simulate(spec, GRID, nets=3, seed=0, dtype="float32")
    assert r.grad.dtype == np.float32 and r.dtype == "float32"
    x = GRID.points_array()
    want = np.stack([input_gradient(sample_network(spec, network_rng(0, i), "float32")
                                    .astype("float64"), x) for i in range(3)])
    assert want.dtype == np.float64
    np.testing.assert_allclose(r.grad, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize("kwargs, match", [
    (dict(nets=0), "nets"),
    (dict(nets=-3), "nets"),
    (dict(nets=2.5), "nets"),
    (dict(seed=-1), "seed"),
    (dict(chunk=0), "chunk"),
    (dict(mode="adjoint"), "mode"),
    (dict(dtype="float16"), "dtype"),
    (dict(nets=10**9), "memory"),
    (dict(workers=0), "workers"),  # refused before any process starts
])
def test_bad_run_arguments(kwargs, match):
    args = dict(nets=2, seed=0) | kwargs
    with pytest.raises(ValueError, match=match):
        simulate(SPEC, GRID, **args)


def test_absurd_network_is_refused_before_allocating():
    spec = NetSpec(depth=10**5, width=10**5)
    assert network_bytes(spec, 256, "forward") > 2**40
    with pytest.raises(ValueError, match="memory"):
        simulate(spec, GridSpec(points=256), nets=1, seed=0, keep=False)


def test_grid_must_match_input_dim():
    with pytest.raises(ValueError, match="input_dim"):
        simulate(NetSpec(input_dim=2), GridSpec(dim=3, kind="gaussian"), nets=1, seed=0)


def test_moments_shape_checked():
    with pytest.raises(ValueError, match="shape"):
        Moments(3).update(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="2 networks"):
        _ = Moments(3).update(np.zeros((1, 3))).covariance


@pytest.mark.slow
def test_worker_processes_give_bit_identical_results():
    """Two spawned workers with one BLAS thread each = one process, bit for bit: every
    network draws from its own stream and results are assembled in network order."""
    from gradsim.montecarlo import simulate_depths

    spec = NetSpec(depth=4, width=24, batchnorm=True)
    grid = GridSpec(points=32)
    one = simulate(spec, grid, nets=12, seed=5, chunk=2, moments=True, activity=True)
    two = simulate(spec, grid, nets=12, seed=5, chunk=2, moments=True, activity=True,
                   workers=2)
    assert np.array_equal(one.grad, two.grad) and np.array_equal(one.activity, two.activity)
    assert np.array_equal(one.moments.outer, two.moments.outer)
    a = simulate_depths(spec, grid, nets=6, seed=5, chunk=2)
    b = simulate_depths(spec, grid, nets=6, seed=5, chunk=4, workers=2)
    assert np.array_equal(a, b)


@pytest.mark.slow
def test_worker_pool_is_kept_and_replaced_after_a_worker_dies():
    """The pool survives between calls; a killed worker breaks that call with an error,
    and the next call starts a fresh pool and gives the same numbers."""
    import os
    import signal

    from gradsim import parallel

    spec, grid = NetSpec(depth=3, width=6), GridSpec(points=16)
    want = simulate(spec, grid, nets=8, seed=2, chunk=1).grad
    assert np.array_equal(simulate(spec, grid, nets=8, seed=2, chunk=1, workers=2).grad, want)
    pool = parallel.current_pool()
    assert np.array_equal(simulate(spec, grid, nets=8, seed=2, chunk=3, workers=2).grad, want)
    assert parallel.current_pool() is pool
    for pid in list(pool._processes):
        os.kill(pid, signal.SIGKILL)
    with pytest.raises(Exception, match="terminated abruptly|process"):
        simulate(spec, grid, nets=8, seed=2, workers=2)
    assert parallel.current_pool() is None
    assert np.array_equal(simulate(spec, grid, nets=8, seed=2, workers=2).grad, want)
    assert parallel.current_pool() is not pool
    parallel.shutdown()
    assert parallel.current_pool() is None


def test_default_chunk_gives_every_worker_about_eight_chunks_within_its_caps():
    """One process: 16.  Workers: ceil(nets / (8 workers)), at most MAX_CHUNK networks
    and CHUNK_BYTES of results, never held below 16 by the caps; a chunk never changes
    a number (the tests above), so this is only about speed and memory."""
    from gradsim.montecarlo import CHUNK_BYTES, MAX_CHUNK, default_chunk

    assert default_chunk(10**6, 1) == 16
    assert default_chunk(6, 2) == 1 and default_chunk(200, 2) == 13
    assert default_chunk(10**6, 2) == MAX_CHUNK
    assert default_chunk(10**6, 2, result_bytes=CHUNK_BYTES // 100) == 100
    assert default_chunk(10**6, 2, result_bytes=CHUNK_BYTES) == 16
