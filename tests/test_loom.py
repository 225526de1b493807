"""LOOM-CFM against independent references: scipy on the whole set, the seed multiset, Theorem 1."""

import functools
import itertools

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

from flowjax.couplings import loom
from flowjax.data import stream

D = 3
noise_one = lambda key: jax.random.normal(key, (D,))


def _data(n, seed=0):
    return jax.random.normal(jax.random.PRNGKey(seed), (n, D)) * 2.0 + jnp.array([1.0, -1.0, 0.5])


@functools.lru_cache(maxsize=None)
def _step_fn(cost="sqeuclidean", reassign=True):
    """A jitted single-device LOOM step on (x1_all, state, step): batch indices from the stream."""

    def run(x1_all, state, key, index):
        x1 = x1_all[index]
        return loom.couple(
            key,
            jnp.zeros_like(x1),
            x1,
            state,
            index=index,
            noise_one=noise_one,
            cost=cost,
            solver="scipy",
            reassign=reassign,
        )

    return jax.jit(run)


def _cell_costs(x1_all, seeds, cost="sqeuclidean"):
    """Per-cell cost in float64 numpy, an independent computation of the Theorem 1 objective."""
    n, k = seeds.shape
    z = np.asarray(loom.noise_from_seeds(jnp.asarray(seeds).reshape(-1), noise_one), np.float64).reshape(n, k, D)
    d2 = ((np.asarray(x1_all, np.float64)[:, None] - z) ** 2).sum(-1)
    return d2 if cost == "sqeuclidean" else np.sqrt(d2)


def _run(x1_all, num_caches, batch, epochs, cost="sqeuclidean", seed=0):
    """Seeds and per-step (total cost, reassigned fraction) of LOOM over a few epochs."""
    n = x1_all.shape[0]
    state = loom.init_state(jax.random.PRNGKey(seed), n, num_caches)
    step_fn, key = _step_fn(cost), jax.random.PRNGKey(seed + 1)
    history = [(_cell_costs(x1_all, state["seeds"], cost).sum(), 1.0)]
    for step in range(epochs * stream.steps_per_epoch(n, batch)):
        index = stream.batch_indices(key, n, batch, step)
        _, _, state, info = step_fn(x1_all, state, jax.random.fold_in(key, step), index)
        history.append((_cell_costs(x1_all, state["seeds"], cost).sum(), float(info["coupling/reassigned"])))
    return state, history


def test_seed_table_is_4_bytes_per_noise():
    state = loom.init_state(jax.random.PRNGKey(0), 1_000_000, 1)
    assert state["seeds"].dtype == jnp.uint32
    assert state["seeds"].nbytes < 4 * 2**20  # 1M examples x 1 cache < 4 MiB (paper Sec. 3.3)


def test_noise_is_a_pure_function_of_the_seed():
    seeds = jnp.array([7, 123456789, 7], jnp.uint32)
    z = loom.noise_from_seeds(seeds, noise_one)
    np.testing.assert_array_equal(z[0], z[2])
    np.testing.assert_array_equal(z[1], noise_one(jax.random.PRNGKey(123456789)))


@pytest.mark.parametrize("num_caches", [1, 3])
def test_seeds_stay_a_permutation_and_cost_never_increases(num_caches):
    x1_all = _data(48)
    init = np.asarray(loom.init_state(jax.random.PRNGKey(0), 48, num_caches)["seeds"])
    state, history = _run(x1_all, num_caches, batch=12, epochs=6)
    seeds = np.asarray(state["seeds"])
    # Sec. 3.2: LOOM on the K-fold duplicated set permutes the seeds over all cells.
    np.testing.assert_array_equal(np.sort(seeds.reshape(-1)), np.sort(init.reshape(-1)))
    assert not np.array_equal(seeds, init)
    costs = np.array([c for c, _ in history])
    assert np.all(np.diff(costs) <= 1e-9 * costs[0]), np.diff(costs).max()  # Theorem 1
    assert costs[-1] < 0.8 * costs[0]


@pytest.mark.parametrize("cost", ["sqeuclidean", "euclidean"])
def test_reaches_a_fixed_point(cost):
    n, batch = 24, 8
    x1_all = _data(n, seed=2)
    state, history = _run(x1_all, 1, batch=batch, epochs=60, cost=cost)
    reassigned = np.array([r for _, r in history[1:]]).reshape(60, n // batch).sum(1)
    assert reassigned[0] > 0 and np.all(reassigned[-15:] == 0)  # the assignment stopped changing
    costs = np.array([c for c, _ in history])
    assert np.all(np.diff(costs) <= 1e-9 * costs[0])
    # Independent check of stationarity: no improving alternating cycle through 2 or 3 examples,
    # any of which a batch of 8 could contain (Theorem 1).
    z = np.asarray(loom.noise_from_seeds(state["seeds"][:, 0], noise_one), np.float64)
    c = np.sqrt(((np.asarray(x1_all, np.float64)[:, None] - z[None]) ** 2).sum(-1))
    c = c**2 if cost == "sqeuclidean" else c
    own = np.diag(c)
    assert np.all(own[:, None] + own[None, :] <= c + c.T + 1e-9)
    for i, j, k in itertools.combinations(range(n), 3):
        for a, b, d in ((i, j, k), (i, k, j)):
            assert own[a] + own[b] + own[d] <= c[a, b] + c[b, d] + c[d, a] + 1e-9


@pytest.mark.parametrize("cost", ["sqeuclidean", "euclidean"])
def test_batch_equal_to_dataset_gives_the_global_optimum(cost):
    n = 32
    x1_all = _data(n, seed=3)
    state = loom.init_state(jax.random.PRNGKey(4), n, 1)
    c = _cell_costs(x1_all, state["seeds"], cost)[:, 0]
    z = np.asarray(loom.noise_from_seeds(state["seeds"][:, 0], noise_one), np.float64)
    full = np.sqrt(((np.asarray(x1_all, np.float64)[:, None] - z[None]) ** 2).sum(-1))
    full = full**2 if cost == "sqeuclidean" else full
    rows, cols = scipy.optimize.linear_sum_assignment(full)
    optimum = full[rows, cols].sum()
    index = jnp.asarray(np.random.default_rng(0).permutation(n), jnp.int32)
    x0, x1, state, _ = _step_fn(cost)(x1_all, state, jax.random.PRNGKey(5), index)
    after = _cell_costs(x1_all, state["seeds"], cost)[:, 0].sum()
    assert after < c.sum()
    np.testing.assert_allclose(after, optimum, rtol=1e-6)
    # The returned pairs are the updated ones, regenerated from the written-back seeds.
    np.testing.assert_array_equal(x1, x1_all[index])
    np.testing.assert_allclose(x0, loom.noise_from_seeds(state["seeds"][index, 0], noise_one), rtol=1e-6)


def test_fixed_source_ablation_keeps_the_pairing():
    x1_all = _data(16)
    state = loom.init_state(jax.random.PRNGKey(0), 16, 2)
    index = jnp.arange(8, dtype=jnp.int32)
    x0, _, new, info = _step_fn(reassign=False)(x1_all, state, jax.random.PRNGKey(1), index)
    np.testing.assert_array_equal(new["seeds"], state["seeds"])
    assert float(info["coupling/reassigned"]) == 0.0
    cells = np.asarray(state["seeds"])[:8]
    x0_seeds = [
        np.where(
            np.all(
                np.isclose(np.asarray(loom.noise_from_seeds(jnp.asarray(cells[i]), noise_one)), np.asarray(x0[i])),
                axis=1,
            )
        )[0]
        for i in range(8)
    ]
    assert all(len(s) >= 1 for s in x0_seeds)  # each example trains on one of its own cached noises


def _pmapped(scope, ndev, **kw):
    def run(x1, state, key, index):
        return loom.couple(
            key,
            jnp.zeros_like(x1),
            x1,
            state,
            index=index,
            noise_one=noise_one,
            solver="scipy",
            scope=scope,
            axis_name="batch",
            **kw,
        )

    return jax.pmap(run, axis_name="batch", in_axes=(0, 0, None, 0), devices=jax.devices()[:ndev])


def test_global_scope_on_4_devices_equals_one_solve_on_the_whole_batch():
    n, b = 64, 32
    x1_all = _data(n, seed=6)
    state = loom.init_state(jax.random.PRNGKey(7), n, 2)
    index = jnp.asarray(np.random.default_rng(1).permutation(n)[:b], jnp.int32)
    key = jax.random.PRNGKey(8)
    x0_1, _, s1, _ = _step_fn()(x1_all, state, key, index)
    x0_4, _, s4, info = _pmapped("global", 4)(
        x1_all[index].reshape(4, 8, D), flax.jax_utils.replicate(state, jax.devices()[:4]), key, index.reshape(4, 8)
    )
    np.testing.assert_allclose(x0_4.reshape(b, D), x0_1, rtol=1e-6)
    for d in range(4):  # every device holds the same, fully updated table
        np.testing.assert_array_equal(s4["seeds"][d], s1["seeds"])
    assert float(info["coupling/reassigned"][0]) > 0


def test_device_scope_solves_each_shard_and_every_device_applies_every_write():
    n, b = 64, 32
    x1_all = _data(n, seed=9)
    state = loom.init_state(jax.random.PRNGKey(10), n, 1)
    index = jnp.asarray(np.random.default_rng(2).permutation(n)[:b], jnp.int32)
    key = jax.random.PRNGKey(11)
    x0_4, _, s4, _ = _pmapped("device", 4)(
        x1_all[index].reshape(4, 8, D), flax.jax_utils.replicate(state, jax.devices()[:4]), key, index.reshape(4, 8)
    )
    expected, x0_ref = state, []
    for d in range(4):  # four separate single-device solves, applied one after the other
        shard = index[8 * d : 8 * (d + 1)]
        x0_d, _, expected, _ = _step_fn()(x1_all, expected, key, shard)
        x0_ref.append(x0_d)
    np.testing.assert_allclose(x0_4.reshape(b, D), jnp.concatenate(x0_ref), rtol=1e-6)
    for d in range(4):
        np.testing.assert_array_equal(s4["seeds"][d], expected["seeds"])
