"""Interpolants' velocities against jax.jvp; the loss against a hand computation; time samplers."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax import interpolants, losses

PATHS = [interpolants.linear, functools.partial(interpolants.gaussian_cfm, sigma_min=0.1), interpolants.vp_cosine]


@pytest.mark.parametrize("path", PATHS)
def test_velocity_is_time_derivative(path):
    k0, k1, kt = jax.random.split(jax.random.PRNGKey(0), 3)
    x0, x1 = jax.random.normal(k0, (5, 3, 2)), jax.random.normal(k1, (5, 3, 2))
    t = jax.random.uniform(kt, (5,))
    (xt, v), (dxt, _) = jax.jvp(lambda s: path(x0, x1, s), (t,), (jnp.ones_like(t),))
    np.testing.assert_allclose(v, dxt, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("path", PATHS)
def test_endpoints(path):
    x0, x1 = jnp.full((2, 3), -1.0), jnp.full((2, 3), 2.0)
    np.testing.assert_allclose(path(x0, x1, jnp.zeros(2))[0], x0, atol=1e-6)
    sigma_min = 0.1 if path is PATHS[1] else 0.0  # Lipman's path ends at N(x1, sigma_min^2): mean x1 + sigma_min x0
    np.testing.assert_allclose(path(x0, x1, jnp.ones(2))[0], x1 + sigma_min * x0, atol=1e-6)


def test_vp_cosine_preserves_variance():
    t = jnp.linspace(0, 1, 7)
    a, _ = interpolants.vp_cosine(jnp.zeros((7, 1)), jnp.ones((7, 1)), t)  # alpha_t
    s, _ = interpolants.vp_cosine(jnp.ones((7, 1)), jnp.zeros((7, 1)), t)  # sigma_t
    np.testing.assert_allclose(a**2 + s**2, 1.0, atol=1e-6)


def test_unknown_interpolant():
    with pytest.raises(ValueError, match="loss.interpolant"):
        interpolants.get("cosine_vp")


def test_flow_matching_loss_by_hand():
    x0, x1 = jnp.array([[0.0, 0.0], [1.0, 1.0]]), jnp.array([[2.0, 0.0], [1.0, 3.0]])
    t = jnp.array([0.5, 0.25])
    apply_fn = lambda p, x, t: p * x  # v = p x
    # x_t = [[1, 0], [1, 1.5]], targets [[2, 0], [0, 2]]; with p = 1 errors [[-1, 0], [1, -0.5]]
    expected = np.mean([(1 + 0) / 2, (1 + 0.25) / 2])  # per-example means over features
    np.testing.assert_allclose(losses.flow_matching_loss(apply_fn, 1.0, x0, x1, t), expected, rtol=1e-6)
    weighted = losses.flow_matching_loss(apply_fn, 1.0, x0, x1, t, weight_fn=lambda t: 1 / t)
    np.testing.assert_allclose(weighted, np.mean([0.5 / 0.5, 0.625 / 0.25]), rtol=1e-6)
    noisy = losses.flow_matching_loss(apply_fn, 1.0, x0, x1, t, sigma=1.0, noise=jnp.ones_like(x0))
    # x_t + noise = [[2, 1], [2, 2.5]] -> errors [[0, 1], [2, 0.5]]
    np.testing.assert_allclose(noisy, np.mean([(0 + 1) / 2, (4 + 0.25) / 2]), rtol=1e-6)
    with pytest.raises(ValueError, match="noise"):
        losses.flow_matching_loss(apply_fn, 1.0, x0, x1, t, sigma=1.0)
    with pytest.raises(ValueError, match="same shape"):
        losses.flow_matching_loss(apply_fn, 1.0, x0, x1[:1], t)


def test_time_samplers_moments():
    key = jax.random.PRNGKey(3)
    u = losses.uniform_time(key, 50_000)
    assert float(u.min()) >= 0 and float(u.max()) <= 1
    np.testing.assert_allclose(u.mean(), 0.5, atol=0.01)
    ln = losses.get_time_sampler("logit_normal", mean=1.0, std=0.5)(key, 50_000)
    logit = jnp.log(ln) - jnp.log1p(-ln)
    np.testing.assert_allclose([logit.mean(), logit.std()], [1.0, 0.5], atol=0.01)
    with pytest.raises(ValueError, match="loss.time_sampler"):
        losses.get_time_sampler("beta")
