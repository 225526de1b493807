"""Tests for flowjax.metrics: exact W2 against brute force / scipy, and trajectory measures
against closed forms of fields whose Euler trajectories are known exactly."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.linalg
import scipy.optimize

from flowjax import metrics
from flowjax.metrics import straightness as st

J = jnp.array([[0.0, -1.0], [1.0, 0.0]])


def _cloud(seed, n, d):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


# ----------------------------------------------------------------------------- w2


@pytest.mark.parametrize("n", [2, 5, 7])
def test_w2_matches_brute_force_over_permutations(n):
    x, y = _cloud(n, n, 3), _cloud(100 + n, n, 3)
    cost = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1).astype(np.float64)
    best = min(cost[np.arange(n), list(p)].mean() for p in itertools.permutations(range(n)))
    for solver in ("scipy", "ott") if n == 5 else ("scipy",):
        assert float(metrics.w2(jnp.asarray(x), jnp.asarray(y), solver=solver)) == pytest.approx(
            np.sqrt(best), rel=1e-5
        )


def test_w2_matches_scipy_assignment_n200_d5():
    x, y = _cloud(1, 200, 5), _cloud(2, 200, 5) + 0.5
    cost = ((x[:, None, :].astype(np.float64) - y[None, :, :]) ** 2).sum(-1)
    rows, cols = scipy.optimize.linear_sum_assignment(cost)
    expected = np.sqrt(cost[rows, cols].mean())
    assert float(metrics.w2(jnp.asarray(x), jnp.asarray(y))) == pytest.approx(expected, rel=1e-5)
    # The plan is not the identity: the matching matters.
    assert expected < np.sqrt(np.diag(cost).mean()) - 0.1


def test_w2_self_translation_and_image_shaped_points():
    x = jnp.asarray(_cloud(3, 64, 4))
    shift = jnp.array([0.3, -1.2, 2.0, 0.5])
    assert float(metrics.w2(x, x)) == 0.0
    assert float(metrics.w2(x, x + shift)) == pytest.approx(float(jnp.linalg.norm(shift)), rel=1e-5)
    # Per-point feature shapes are flattened.
    assert float(metrics.w2(x.reshape(64, 2, 2), (x + shift).reshape(64, 2, 2))) == pytest.approx(
        float(jnp.linalg.norm(shift)), rel=1e-5
    )


def test_w2_is_jittable():
    x, y = jnp.asarray(_cloud(4, 16, 2)), jnp.asarray(_cloud(5, 16, 2))
    jitted = jax.jit(metrics.w2, static_argnames="solver")
    assert float(jitted(x, y, solver="scipy")) == pytest.approx(float(metrics.w2(x, y)), rel=1e-6)


def test_w2_shape_errors():
    with pytest.raises(ValueError, match="same number of points"):
        metrics.w2(jnp.zeros((5, 2)), jnp.zeros((6, 2)))
    with pytest.raises(ValueError, match="same shape"):
        metrics.w2(jnp.zeros((5, 2)), jnp.zeros((5, 3)))


# ----------------------------------------------------------------------------- gaussian_w2


def test_gaussian_w2_one_dimensional():
    # W2^2 = (m1 - m2)^2 + (s1 - s2)^2 in 1-D.
    out = metrics.gaussian_w2(jnp.array([1.0]), jnp.array([[4.0]]), jnp.array([-2.0]), jnp.array([[0.25]]))
    assert float(out) == pytest.approx(np.sqrt(3.0**2 + (2.0 - 0.5) ** 2), rel=1e-6)


def test_gaussian_w2_commuting_diagonal():
    a, b = np.array([1.0, 9.0, 0.04]), np.array([4.0, 1.0, 0.01])
    m1, m2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, -1.0])
    expected = np.sqrt(((m1 - m2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum())
    out = metrics.gaussian_w2(jnp.asarray(m1), jnp.diag(jnp.asarray(a)), jnp.asarray(m2), jnp.diag(jnp.asarray(b)))
    assert float(out) == pytest.approx(expected, rel=1e-5)


def test_gaussian_w2_non_commuting_against_scipy_sqrtm():
    rng = np.random.default_rng(0)
    l1, l2 = rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    c1, c2 = l1 @ l1.T + 0.1 * np.eye(4), l2 @ l2.T
    m1, m2 = rng.normal(size=4), rng.normal(size=4)
    r1 = scipy.linalg.sqrtm(c1)
    expected = np.sqrt(((m1 - m2) ** 2).sum() + np.trace(c1 + c2 - 2 * np.real(scipy.linalg.sqrtm(r1 @ c2 @ r1))))
    out = metrics.gaussian_w2(*(jnp.asarray(a, jnp.float32) for a in (m1, c1, m2, c2)))
    assert float(out) == pytest.approx(expected, rel=1e-4)
    assert float(metrics.gaussian_w2(*(jnp.asarray(a, jnp.float32) for a in (m1, c1, m1, c1)))) < 2e-3


def _whitened(rng, n):
    """n standard-normal draws transformed to have exactly zero mean and identity covariance."""
    z = rng.normal(size=(n, 2))
    z = z - z.mean(0)
    return z @ np.linalg.inv(np.linalg.cholesky(z.T @ z / n)).T


def test_gaussian_w2_agrees_with_empirical_w2():
    # Samples whose empirical means/covariances equal the Gaussians' exactly: by Gelbrich's
    # bound the empirical W2 is then >= the Bures value, and its excess (non-Gaussianity of a
    # finite sample) was 0.003-0.005 across seeds at n = 1000; tolerance 0.02 on W2 ~ 3.26.
    m2 = np.array([3.0, -1.0])
    c2 = np.array([[2.0, 0.8], [0.8, 0.5]])
    rng = np.random.default_rng(0)
    x = _whitened(rng, 1000)
    y = _whitened(rng, 1000) @ np.linalg.cholesky(c2).T + m2
    f32 = lambda a: jnp.asarray(a, jnp.float32)
    exact = float(metrics.gaussian_w2(f32(np.zeros(2)), f32(np.eye(2)), f32(m2), f32(c2)))
    empirical = float(metrics.w2(f32(x), f32(y)))
    assert exact - 1e-4 <= empirical <= exact + 0.02


# ----------------------------------------------------------------------------- trajectories


def test_euler_trajectory_grid_and_velocities():
    n = 8
    path, vel = st.euler_trajectory(lambda x, t: jnp.broadcast_to(t[:, None], x.shape), jnp.zeros((3, 2)), n)
    assert path.shape == (n + 1, 3, 2) and vel.shape == (n, 3, 2)
    np.testing.assert_allclose(vel[:, 0, 0], np.arange(n) / n, atol=1e-7)
    # x_N = sum_k (k/N)(1/N) = (N - 1) / (2N).
    np.testing.assert_allclose(path[-1], (n - 1) / (2 * n), atol=1e-6)


def test_straight_fields_have_zero_measures():
    x0 = jax.random.normal(jax.random.PRNGKey(1), (32, 3))
    const = lambda x, t: jnp.broadcast_to(jnp.array([1.0, -2.0, 0.5]), x.shape)
    # Affine straight flow x_t = (I + t(A - I)) x0: v(x, t) = (A - I)(I + t(A - I))^{-1} x.
    a = jnp.array([0.5, 2.0, 3.0])
    affine = lambda x, t: (a - 1.0) * x / (1.0 + t[:, None] * (a - 1.0))
    for field in (const, affine):
        out = st.trajectory_metrics(field, x0, 50)
        assert float(out["straightness"]) < 1e-9
        assert float(out["curvature"]) < 1e-9
        assert float(out["loom_curvature"]) < 1e-6
    np.testing.assert_allclose(st.euler_trajectory(affine, x0, 50)[0][-1], a * x0, rtol=1e-5)


def _rotation(omega):
    return lambda x, t: omega * x @ J.T


def test_rotation_straightness_matches_discrete_closed_form():
    # Euler for v = w J x, in complex form z_{k+1} = (1 + i h w) z_k and v_k = i w z_k, so
    # S_N = E|z0|^2 (1/N) sum_k |(1 + i h w)^N - 1 - i w (1 + i h w)^k|^2 exactly.
    omega, n = 1.3, 40
    x0 = jax.random.normal(jax.random.PRNGKey(2), (64, 2))
    g = 1.0 + 1j * omega / n
    per_unit = np.mean([abs(g**n - 1.0 - 1j * omega * g**k) ** 2 for k in range(n)])
    expected = per_unit * float(jnp.mean(jnp.sum(x0**2, -1)))
    assert float(st.straightness(_rotation(omega), x0, n)) == pytest.approx(expected, rel=1e-5)


def test_rotation_straightness_converges_to_continuous_integral():
    # Exact circles: S = E|x0|^2 * int_0^1 |(e^{iw} - 1) - i w e^{iwt}|^2 dt (scipy quad). Euler
    # with N = 2000 is first order: relative error ~ w^2 / (2N) ~ 1e-3; tolerance 5e-3.
    omega, n = 2.0, 2000
    x0 = jax.random.normal(jax.random.PRNGKey(3), (16, 2))
    integrand = lambda t: abs(np.exp(1j * omega) - 1.0 - 1j * omega * np.exp(1j * omega * t)) ** 2
    expected = scipy.integrate.quad(integrand, 0.0, 1.0)[0] * float(jnp.mean(jnp.sum(x0**2, -1)))
    assert expected > 0.5
    assert float(st.straightness(_rotation(omega), x0, n)) == pytest.approx(expected, rel=5e-3)


def test_curvature_is_straightness_per_element():
    # A field on [B, 2, 3] features: rotation in each of 3 planes, D = 6.
    x0 = jax.random.normal(jax.random.PRNGKey(4), (16, 2, 3))
    field = lambda x, t: 1.5 * jnp.stack([-x[:, 1], x[:, 0]], axis=1) * (1.0 + t[:, None, None])
    s = float(st.straightness(field, x0, 128))
    assert s > 0.1
    assert float(st.curvature(field, x0, 128)) == pytest.approx(s / 6.0, rel=1e-5)


def test_loom_curvature_rotation():
    # Consecutive Euler velocities of v = w J x differ by the factor 1 + i h w: the angle
    # between them is arctan(h w) exactly, so every entry is 1 - 1/sqrt(1 + (h w)^2)
    # (-> 1 - cos(w h) as h -> 0).
    omega, n = 2.0, 20
    x0 = jax.random.normal(jax.random.PRNGKey(5), (32, 2))
    mean, profile = st.loom_curvature(_rotation(omega), x0, n)
    expected = 1.0 - 1.0 / np.sqrt(1.0 + (omega / n) ** 2)
    assert profile.shape == (n - 1,)
    np.testing.assert_allclose(profile, expected, atol=2e-6)
    assert float(mean) == pytest.approx(expected, abs=2e-6)
    assert expected == pytest.approx(1.0 - np.cos(omega / n), rel=1e-2)


def test_loom_curvature_constant_field_and_trajectory_metrics_consistency():
    x0 = jax.random.normal(jax.random.PRNGKey(6), (8, 2))
    mean, profile = st.loom_curvature(lambda x, t: jnp.ones_like(x), x0, 10)
    assert float(mean) == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(profile, 0.0, atol=1e-6)
    field = _rotation(0.7)
    out = st.trajectory_metrics(field, x0, 30)
    assert float(out["straightness"]) == pytest.approx(float(st.straightness(field, x0, 30)), rel=1e-6)
    assert float(out["curvature"]) == pytest.approx(float(st.curvature(field, x0, 30)), rel=1e-6)
    assert float(out["loom_curvature"]) == pytest.approx(float(st.loom_curvature(field, x0, 30)[0]), rel=1e-6)
