"""Couplings against independent references: brute force over permutations, scipy, marginals."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

from configs import default
from flowjax import couplings
from flowjax.couplings import assignment

plan_fn = jax.jit(couplings.minibatch_ot.sinkhorn_plan, static_argnames=("epsilon", "relative_epsilon"))


def _cost(x1, x0):
    return ((np.asarray(x1)[:, None] - np.asarray(x0)[None]) ** 2).sum(-1)


@pytest.mark.parametrize("solver", ["ott", "scipy"])
def test_assignment_equals_brute_force(solver):
    rng = np.random.default_rng(0)
    solve = jax.jit(lambda c: assignment.solve(c, solver))
    for n in range(2, 8):
        cost = rng.normal(size=(n, n)) ** 2
        best = min(sum(cost[i, p[i]] for i in range(n)) for p in itertools.permutations(range(n)))
        perm = np.asarray(solve(jnp.asarray(cost, jnp.float32)))
        assert sorted(perm) == list(range(n))
        np.testing.assert_allclose(cost[np.arange(n), perm].sum(), best, rtol=1e-5)


@pytest.mark.parametrize("solver", ["ott", "scipy"])
@pytest.mark.parametrize("d", [2, 50])
def test_exact_ot_matches_scipy(solver, d):
    k1, k0 = jax.random.split(jax.random.PRNGKey(d))
    x1, x0 = jax.random.normal(k1, (64, d)) + 1.0, jax.random.normal(k0, (64, d))
    x0p, x1p, state, info = jax.jit(lambda a, b: couplings.exact_ot(None, b, a, None, solver=solver))(x1, x0)
    assert state is None
    np.testing.assert_array_equal(x1p, x1)
    # x0p is a permutation of x0: same multiset of rows
    np.testing.assert_allclose(np.sort(np.asarray(x0p), 0), np.sort(np.asarray(x0), 0))
    c = _cost(x1, x0)
    r, col = scipy.optimize.linear_sum_assignment(c)
    np.testing.assert_allclose(((np.asarray(x1p) - np.asarray(x0p)) ** 2).sum(-1).mean(), c[r, col].mean(), rtol=1e-4)
    np.testing.assert_allclose(info["coupling/cost_after"], c[r, col].mean(), rtol=1e-4)
    np.testing.assert_allclose(info["coupling/cost_before"], np.trace(c) / 64, rtol=1e-4)


def test_exact_ot_under_vmap_and_images():
    k1, k0 = jax.random.split(jax.random.PRNGKey(1))
    x1, x0 = jax.random.normal(k1, (3, 6, 2, 2, 1)), jax.random.normal(k0, (3, 6, 2, 2, 1))
    x0p = jax.vmap(lambda a, b: couplings.exact_ot(None, b, a, solver="scipy")[0])(x1, x0)
    for b in range(3):
        c = _cost(x1[b].reshape(6, -1), x0[b].reshape(6, -1))
        r, col = scipy.optimize.linear_sum_assignment(c)
        np.testing.assert_allclose(x0p[b], np.asarray(x0[b])[col])


def test_sinkhorn_plan_marginals_and_limit():
    k1, k0, ks = jax.random.split(jax.random.PRNGKey(2), 3)
    x1, x0 = jax.random.normal(k1, (32, 2)) * 2, jax.random.normal(k0, (32, 2))
    plan = plan_fn(x1, x0, epsilon=0.05)
    np.testing.assert_allclose(plan.sum(0), 1 / 32, atol=1e-4)
    np.testing.assert_allclose(plan.sum(1), 1 / 32, atol=1e-4)
    # entropic bound: OT <= <P_eps, C> <= OT + eps * log(n) (the plan's entropy exceeds log n)
    c = _cost(x1, x0)
    r, col = scipy.optimize.linear_sum_assignment(c)
    ot, cost = c[r, col].mean(), float((np.asarray(plan) * c).sum())
    assert ot - 1e-4 <= cost <= ot + 0.05 * np.log(32)
    # large epsilon: the plan tends to the independent coupling 1/n^2
    wide = plan_fn(x1, x0, epsilon=1e4)
    np.testing.assert_allclose(wide, 1 / 32**2, rtol=1e-2)


def test_sinkhorn_relative_epsilon_is_a_fraction_of_the_mean_cost():
    k1, k0 = jax.random.split(jax.random.PRNGKey(6))
    x1, x0 = jax.random.normal(k1, (16, 2)) * 3, jax.random.normal(k0, (16, 2))
    relative = plan_fn(x1, x0, epsilon=0.1, relative_epsilon="mean")
    absolute = plan_fn(x1, x0, epsilon=0.1 * float(_cost(x1, x0).mean()))
    np.testing.assert_allclose(relative, absolute, atol=1e-5)


def test_sinkhorn_pairs_drawn_from_plan():
    k1, k0 = jax.random.split(jax.random.PRNGKey(3))
    x1, x0 = jax.random.normal(k1, (8, 2)) * 3, jax.random.normal(k0, (8, 2))
    plan = plan_fn(x1, x0, epsilon=2.0)
    i, j = couplings.minibatch_ot.draw_pairs(jax.random.PRNGKey(4), plan, 40_000)
    freq = np.zeros((8, 8))
    np.add.at(freq, (np.asarray(i), np.asarray(j)), 1)
    np.testing.assert_allclose(freq / freq.sum(), plan, atol=0.004)
    # the coupling returns exactly the drawn rows
    x0p, x1p, _, _ = jax.jit(lambda k: couplings.sinkhorn(k, x0, x1, epsilon=2.0, relative_epsilon=None))(
        jax.random.PRNGKey(5)
    )
    i, j = couplings.minibatch_ot.draw_pairs(jax.random.PRNGKey(5), plan, 8)
    np.testing.assert_allclose(x1p, x1[i])
    np.testing.assert_allclose(x0p, x0[j])


def test_independent_is_identity():
    x1, x0 = jnp.ones((4, 2)), jnp.zeros((4, 2))
    x0p, x1p, state, info = couplings.independent(None, x0, x1, None)
    np.testing.assert_array_equal(x0p, x0)
    np.testing.assert_allclose(info["coupling/cost_after"], 2.0)


def test_bad_inputs():
    cfg = default.get_config().coupling
    cfg.name, cfg.epsilon = "hungarian", 0.1
    with pytest.raises(ValueError, match="coupling.name"):
        couplings.make(cfg)
    cfg.name, cfg.solver = "exact_ot", "lapjv"
    with pytest.raises(ValueError, match="assignment solver"):
        couplings.make(cfg)
    cfg.name, cfg.solver, cfg.epsilon = "sinkhorn", "auto", 0.0
    with pytest.raises(ValueError, match="epsilon"):
        couplings.make(cfg)
    cfg.name = "loom"
    with pytest.raises(ValueError, match="noise_one"):
        couplings.make(cfg)
    cfg.num_caches = 0
    with pytest.raises(ValueError, match="num_caches"):
        couplings.make(cfg, noise_one=lambda k: k)
    with pytest.raises(ValueError, match="same shape"):
        couplings.exact_ot(None, jnp.ones((4, 2)), jnp.ones((5, 2)))
    with pytest.raises(ValueError, match="square"):
        assignment.solve(jnp.ones((3, 4)))


@pytest.mark.parametrize("name", ["exact_ot", "sinkhorn"])
def test_global_scope_on_4_devices_equals_one_coupling_of_the_whole_batch(name):
    couple = {
        "exact_ot": lambda k, a, b, s: couplings.exact_ot(k, a, b, s, solver="scipy"),
        "sinkhorn": couplings.sinkhorn,
    }[name]
    k1, k0, key = jax.random.split(jax.random.PRNGKey(3), 3)
    x1, x0 = jax.random.normal(k1, (32, 2)) + 2.0, jax.random.normal(k0, (32, 2))
    x0_ref, x1_ref, _, _ = jax.jit(couple)(key, x0, x1, None)
    scoped = couplings.with_scope(couple, "global", "batch")
    run = jax.pmap(lambda a, b, k: scoped(k, b, a, None)[:2], axis_name="batch", in_axes=(0, 0, None))
    x0_4, x1_4 = run(x1.reshape(4, 8, 2), x0.reshape(4, 8, 2), key)
    np.testing.assert_allclose(x0_4.reshape(32, 2), x0_ref, rtol=1e-6)
    np.testing.assert_allclose(x1_4.reshape(32, 2), x1_ref, rtol=1e-6)
    # The device scope solves 4 separate problems: a costlier pairing than the global optimum.
    local = jax.pmap(
        lambda a, b, k: couplings.with_scope(couple, "device", "batch")(k, b, a, None)[0],
        axis_name="batch",
        in_axes=(0, 0, None),
    )(x1.reshape(4, 8, 2), x0.reshape(4, 8, 2), key)
    if name == "exact_ot":
        cost = lambda a: float(jnp.sum((x1 - a.reshape(32, 2)) ** 2))
        assert cost(x0_4) < cost(local)
