"""DANSM greedy matching, the Immiscible baseline and inter-path distances, against independent references:
plain-Python Algorithm 1, grid minimisation over t, brute-force pair loops, scipy's assignment."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from sklearn.datasets import load_digits

from flowjax.couplings import dansm, immiscible
from flowjax.metrics import paths

interpath = jax.jit(paths.interpath_distance)
GRID = np.linspace(0.0, 1.0, 20_001)


def _greedy_reference(cost):
    """Algorithm 1 in plain Python: each row in order takes the cheapest free column (lowest on ties)."""
    n = len(cost)
    free = list(range(n))
    perm = []
    for i in range(n):
        best = free[0]
        for j in free:
            if cost[i][j] < cost[i][best]:
                best = j
        perm.append(best)
        free.remove(best)
    return perm


def _grid_min(x0_a, x1_a, x0_b, x1_b):
    """min over a dense t grid of ||p_a(t) - p_b(t)||, p(t) = (1 - t) x0 + t x1, in float64."""
    gap = (1 - GRID)[:, None] * (x0_b - x0_a) + GRID[:, None] * (x1_b - x1_a)
    f = np.linalg.norm(gap, axis=1)
    return f.min(), GRID[f.argmin()]


def _sq_cost(x1, x0):
    return ((np.asarray(x1, np.float64)[:, None] - np.asarray(x0, np.float64)[None]) ** 2).sum(-1)


# ---------------------------------------------------------------------------------------------
# greedy matching (Algorithm 1)


def test_greedy_match_equals_plain_python_algorithm():
    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 5, 8, 13, 30):
        for trial in range(4):
            # integer costs in a small range force ties; the last trials are continuous
            cost = rng.integers(0, 4, size=(n, n)) if trial < 2 else rng.normal(size=(n, n))
            perm = np.asarray(dansm.greedy_match(jnp.asarray(cost, jnp.float32)))
            assert perm.dtype == np.int32
            assert sorted(perm.tolist()) == list(range(n))
            assert perm.tolist() == _greedy_reference(cost.tolist()), (n, trial)


def test_greedy_match_stays_a_permutation_with_infinite_and_nan_costs():
    cost = jnp.array([[0.0, np.inf, np.inf], [np.nan, np.inf, np.inf], [np.inf, np.inf, np.inf]])
    perm = np.asarray(dansm.greedy_match(cost))
    assert perm.tolist() == [0, 1, 2]


def test_greedy_pairing_and_couple():
    k1, k0 = jax.random.split(jax.random.PRNGKey(3))
    x1, x0 = jax.random.normal(k1, (20, 2, 3)) + 1.0, jax.random.normal(k0, (20, 2, 3))
    cost = _sq_cost(x1.reshape(20, -1), x0.reshape(20, -1))
    perm = np.asarray(dansm.greedy_pairing(x1, x0))
    assert perm.tolist() == _greedy_reference(cost.tolist())
    # the unsquared distance gives the same greedy pairing
    assert _greedy_reference(np.sqrt(cost).tolist()) == perm.tolist()
    x0p, x1p, state, info = dansm.couple(None, x0, x1)
    assert state is None
    np.testing.assert_array_equal(x1p, x1)
    np.testing.assert_array_equal(x0p, np.asarray(x0)[perm])
    np.testing.assert_allclose(info["coupling/cost_before"], np.trace(cost) / 20, rtol=1e-5)
    np.testing.assert_allclose(info["coupling/cost_after"], cost[np.arange(20), perm].mean(), rtol=1e-5)


def test_bad_input_raises():
    with pytest.raises(ValueError, match="square"):
        dansm.greedy_match(jnp.zeros((3, 4)))
    with pytest.raises(ValueError, match="same shape"):
        dansm.greedy_pairing(jnp.zeros((3, 2)), jnp.zeros((4, 2)))
    with pytest.raises(ValueError, match="cost"):
        immiscible.pairing(jnp.zeros((3, 2)), jnp.zeros((3, 2)), cost="l1")
    with pytest.raises(ValueError, match="same shape"):
        immiscible.couple(None, jnp.zeros((3, 3)), jnp.zeros((3, 2)))
    with pytest.raises(ValueError, match="one shape"):
        paths.path_stats(jnp.zeros((5, 2)), jnp.zeros((5, 3)))
    with pytest.raises(ValueError, match="common d"):
        paths.interpath_distance(jnp.zeros(2), jnp.zeros(2), jnp.zeros(3), jnp.zeros(3))


# ---------------------------------------------------------------------------------------------
# inter-path distance (Eq. 4-5) and statistics


@pytest.mark.parametrize("d", [2, 50])
def test_interpath_distance_equals_grid_minimum(d):
    rng = np.random.default_rng(d)
    ends = rng.normal(size=(4, 25, d))
    ends[3, :5] = ends[1, :5] + ends[2, :5] - ends[0, :5]  # parallel paths up to float32 rounding
    dist, t = map(np.asarray, interpath(*jnp.asarray(ends, jnp.float32)))
    for k in range(25):
        grid_dist, grid_t = _grid_min(*ends[:, k])
        np.testing.assert_allclose(dist[k], grid_dist, rtol=1e-5, atol=1e-5)
        if k >= 5:  # a unique minimiser (parallel paths have a constant f, any t is a minimiser)
            assert abs(t[k] - grid_t) < 1e-3, (k, t[k], grid_t)
    assert np.isfinite(dist).all() and np.isfinite(t).all()


def test_interpath_distance_exactly_parallel_and_broadcast():
    x0 = jnp.array([[0.0, 1.0], [2.0, -1.0]])
    x1 = jnp.array([[1.0, 1.0], [3.0, 0.0]])
    shift = jnp.array([3.0, 4.0])
    dist, t = interpath(x0, x1, x0 + shift, x1 + shift)  # same direction: f(t) = 5 for all t
    np.testing.assert_allclose(dist, [5.0, 5.0], rtol=1e-6)
    np.testing.assert_array_equal(t, [1.0, 1.0])
    dist, t = paths.interpath_distance(x0, x1, jnp.zeros(2), jnp.zeros(2))  # [2, d] against [d]
    assert dist.shape == t.shape == (2,)


def test_time_convention_on_hand_made_paths():
    # a stays at 0; b goes from noise 1 (t = 0) to data -3 (t = 1): they cross where 1 - 4 t = 0,
    # at t = 0.25 here, which is the paper's t = 0.75 (its t = 0 is the data end).
    dist, t = paths.interpath_distance(jnp.zeros(1), jnp.zeros(1), jnp.ones(1), -3.0 * jnp.ones(1))
    np.testing.assert_allclose([dist, t], [0.0, 0.25], atol=1e-6)
    # b goes from 2 to 1 and never reaches 0: the closest point is the data end, t* = 1 (paper: 0).
    dist, t = paths.interpath_distance(jnp.zeros(1), jnp.zeros(1), 2.0 * jnp.ones(1), jnp.ones(1))
    np.testing.assert_allclose([dist, t], [1.0, 1.0], atol=1e-6)
    # b goes from 1 to 3: the closest point is the noise end, t* = 0 (paper: 1).
    dist, t = paths.interpath_distance(jnp.zeros(1), jnp.zeros(1), jnp.ones(1), 3.0 * jnp.ones(1))
    np.testing.assert_allclose([dist, t], [1.0, 0.0], atol=1e-6)


def _pair_reference(x0, x1):
    """All-pairs distance and t* by a double loop, minimising the quadratic f^2 directly in float64."""
    n = len(x0)
    dist, tt = np.full((n, n), np.inf), np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i != j:
                a, b = x0[j] - x0[i], (x1[j] - x1[i]) - (x0[j] - x0[i])  # f(t)^2 = ||a + t b||^2
                t = np.clip(-(a @ b) / (b @ b), 0.0, 1.0)
                dist[i, j], tt[i, j] = np.linalg.norm(a + t * b), t
    return dist, tt


def test_path_stats_equals_double_loop():
    rng = np.random.default_rng(1)
    n = 41
    x0 = rng.normal(size=(n, 2, 3))
    x1 = 0.5 * rng.normal(size=(n, 2, 3)) + 3.0
    dist, tt = _pair_reference(x0.reshape(n, -1), x1.reshape(n, -1))
    off = ~np.eye(n, dtype=bool)
    nearest = dist.argmin(1)
    expected = {
        "length": np.linalg.norm((x1 - x0).reshape(n, -1), axis=1).mean(),
        "d_avg": dist[off].mean(),
        "d_min": dist.min(1).mean(),
        "t_avg": tt[off].mean(),
        "t_min": tt[np.arange(n), nearest].mean(),
    }
    for block_size in (1, 16, 41, 100):
        stats = paths.path_stats(jnp.asarray(x0, jnp.float32), jnp.asarray(x1, jnp.float32), block_size=block_size)
        assert set(stats) == set(expected)
        for key, value in expected.items():
            np.testing.assert_allclose(stats[key], value, rtol=2e-5, err_msg=f"{key}, block {block_size}")
    objective = paths.dansm_objective(jnp.asarray(x0), jnp.asarray(x1), block_size=16)
    np.testing.assert_allclose(objective, expected["d_avg"], rtol=2e-5)


def test_two_path_lemma_shorter_pairing_is_further_apart():
    """§4.1: of the two pairings of 2 samples and 2 noises, the one with the smaller total squared
    length has the larger inter-path distance."""
    rng = np.random.default_rng(2)
    for d in (2, 3, 16):
        x = rng.normal(size=(2, 1000, d)) * rng.uniform(0.2, 2.0, size=(1, 1000, 1))  # samples
        z = rng.normal(size=(2, 1000, d))  # noises
        x, z = jnp.asarray(x, jnp.float32), jnp.asarray(z, jnp.float32)
        dist_p, _ = interpath(z[0], x[0], z[1], x[1])  # (z1 -> x1), (z2 -> x2)
        dist_q, _ = interpath(z[0], x[1], z[1], x[0])  # (z1 -> x2), (z2 -> x1)
        len_p = np.sum((x[0] - z[0]) ** 2, -1) + np.sum((x[1] - z[1]) ** 2, -1)
        len_q = np.sum((x[1] - z[0]) ** 2, -1) + np.sum((x[0] - z[1]) ** 2, -1)
        shorter_p = len_p < len_q
        assert 0.1 < shorter_p.mean() < 0.9
        margin = 1e-4 * (1 + np.maximum(dist_p, dist_q))
        assert np.all(np.where(shorter_p, dist_p >= dist_q - margin, dist_q >= dist_p - margin)), d
        assert np.mean(np.abs(dist_p - dist_q) > margin) > 0.9


# ---------------------------------------------------------------------------------------------
# Immiscible baseline and the Table 2 direction


@pytest.mark.parametrize("solver", ["scipy", "ott"])
@pytest.mark.parametrize("cost", ["sqeuclidean", "euclidean"])
def test_immiscible_pairing_is_the_optimal_assignment(cost, solver):
    k1, k0 = jax.random.split(jax.random.PRNGKey(5))
    x1, x0 = jax.random.normal(k1, (40, 6)) + 0.5, jax.random.normal(k0, (40, 6))
    matrix = _sq_cost(x1, x0)
    if cost == "euclidean":
        matrix = np.sqrt(matrix)
    rows, cols = scipy.optimize.linear_sum_assignment(matrix)
    perm = np.asarray(jax.jit(lambda a, b: immiscible.pairing(a, b, cost=cost, solver=solver))(x1, x0))
    assert sorted(perm.tolist()) == list(range(40))
    np.testing.assert_allclose(matrix[np.arange(40), perm].sum(), matrix[rows, cols].sum(), rtol=1e-6)
    if solver == "scipy":
        x0p, x1p, state, info = immiscible.couple(None, x0, x1, cost=cost, solver=solver)
        assert state is None
        np.testing.assert_array_equal(x1p, x1)
        np.testing.assert_array_equal(x0p, np.asarray(x0)[perm])
        np.testing.assert_allclose(info["coupling/cost_after"], _sq_cost(x1, x0)[np.arange(40), perm].mean(), rtol=1e-5)


def test_immiscible_costs_equal_brute_force_and_can_differ():
    rng = np.random.default_rng(4)
    differ = 0
    for _ in range(20):
        x1, x0 = rng.normal(size=(5, 2)), rng.normal(size=(5, 2))
        perms = {}
        for cost in immiscible.COSTS:
            matrix = _sq_cost(x1, x0) if cost == "sqeuclidean" else np.sqrt(_sq_cost(x1, x0))
            best = min(sum(matrix[i, p[i]] for i in range(5)) for p in itertools.permutations(range(5)))
            perms[cost] = np.asarray(immiscible.pairing(jnp.asarray(x1), jnp.asarray(x0), cost=cost, solver="scipy"))
            np.testing.assert_allclose(matrix[np.arange(5), perms[cost]].sum(), best, rtol=1e-5)
        differ += not np.array_equal(perms["sqeuclidean"], perms["euclidean"])
    assert differ > 0  # the exact assignment depends on the cost, unlike the greedy one


def test_digits_table2_direction():
    """Random -> greedy -> Hungarian: paths get shorter and further apart (DANSM Table 2)."""
    images = load_digits().data[:1000].astype(np.float32) / 8.0 - 1.0
    x1 = jnp.asarray(images)
    x0 = jax.random.normal(jax.random.PRNGKey(0), x1.shape)
    greedy = dansm.greedy_pairing(x1, x0)
    hungarian = immiscible.pairing(x1, x0, solver="scipy")
    rows = [paths.path_stats(x0[perm], x1, block_size=256) for perm in (jnp.arange(1000), greedy, hungarian)]
    lengths = [r["length"] for r in rows]
    d_avg = [r["d_avg"] for r in rows]
    assert lengths[0] > lengths[1] > lengths[2], lengths
    assert d_avg[0] < d_avg[1] < d_avg[2], d_avg
