"""Diffusion models in flowjax: the vp_linear path, schedules, epsilon loss, prediction conversions, DDIM.

Independent references: DDPM's discrete alpha_bar product, jax.jvp of x_t, hand-computed losses,
the closed-form posterior and marginal velocity of a Gaussian -> Gaussian path, and `euler`.
Float64 tests use the ``x64`` fixture (the ``jax.enable_x64`` context), as in test_integrators.py.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax import integrators, interpolants, losses, predictions

SIGMA_MIN = 0.1  # for gaussian_cfm, large enough that a wrong sigma_min shows


@pytest.fixture
def x64():
    """Runs the test with 64-bit floats enabled, restoring the previous setting afterwards."""
    with jax.enable_x64(True):
        yield


def _bcast(c, x):
    return jnp.reshape(c, jnp.shape(c) + (1,) * (x.ndim - jnp.ndim(c)))


def _pair(shape=(5, 3, 2), seed=0):
    k0, k1, kt = jax.random.split(jax.random.PRNGKey(seed), 3)
    return jax.random.normal(k0, shape), jax.random.normal(k1, shape), jax.random.uniform(kt, shape[:1], maxval=0.99)


def _hand_derivatives(name: str, t: np.ndarray) -> tuple[np.ndarray, ...]:
    """(alpha, sigma, alpha', sigma') of each named path, derived on paper (not with jax)."""
    t = np.asarray(t, np.float64)
    if name == "linear":
        return t, 1 - t, np.ones_like(t), -np.ones_like(t)
    if name == "gaussian_cfm":
        return t, 1 - (1 - SIGMA_MIN) * t, np.ones_like(t), -(1 - SIGMA_MIN) * np.ones_like(t)
    if name == "vp_cosine":
        a = 0.5 * np.pi * t
        return np.sin(a), np.cos(a), 0.5 * np.pi * np.cos(a), -0.5 * np.pi * np.sin(a)
    s = 1 - t  # vp_linear: d alpha_bar / ds = -beta(s) alpha_bar, ds/dt = -1
    beta = 0.1 + 19.9 * s
    alpha = np.exp(-0.5 * (0.1 * s + 9.95 * s**2))
    sigma = np.sqrt(1 - alpha**2)
    return alpha, sigma, 0.5 * beta * alpha, -0.5 * beta * alpha**2 / sigma


# 1. vp_linear and schedules -----------------------------------------------------------------


def test_vp_linear_is_variance_preserving_and_ends_at_data():
    t = jnp.linspace(0.0, 1.0, 101)
    sched = interpolants.schedule("vp_linear")
    np.testing.assert_allclose(sched.alpha(t) ** 2 + sched.sigma(t) ** 2, 1.0, atol=1e-6)
    assert float(sched.alpha(jnp.float32(1.0))) == 1.0 and float(sched.sigma(jnp.float32(1.0))) == 0.0
    x0, x1 = jnp.full((2, 3), -1.0), jnp.full((2, 3), 2.0)
    np.testing.assert_array_equal(interpolants.vp_linear(x0, x1, jnp.ones(2))[0], x1)
    assert interpolants.get("vp_linear") is interpolants.vp_linear and "vp_linear" in interpolants.NAMES


def test_vp_linear_matches_ddpm_linear_betas():
    """alpha_bar(t = (999 - k) / 1000) against DDPM's prod_{i <= k} (1 - beta_i), betas linspace(1e-4, 0.02, 1000).

    The continuous VP SDE keeps only the first-order term of log(1 - beta) = -beta - beta^2 / 2 - ...,
    so it overestimates DDPM's alpha_bar by exp(sum_{i <= k} beta_i^2 / 2) - 1, up to 3.7 % where
    alpha_bar > 1e-3 (sum beta_i^2 / 2 ~ 0.04 there) and 7 % at k = 999: a 1 % bound would be wrong.
    Put that second-order term back and what is left (beta^3 terms, Riemann sum) is below 0.3 %.
    """
    betas = np.linspace(1e-4, 0.02, 1000)
    ddpm = np.cumprod(1.0 - betas)
    k = np.arange(1000)
    alpha_bar = np.asarray(interpolants.schedule("vp_linear").alpha(jnp.asarray((999 - k) / 1000, jnp.float32))) ** 2
    rel = alpha_bar / ddpm - 1.0
    assert np.max(rel[ddpm > 1e-3]) < 0.04
    assert np.max(rel) < 0.075 and np.max(np.abs(alpha_bar - ddpm)) < 1e-3
    second_order = np.cumsum(betas**2 / 2)
    np.testing.assert_allclose(alpha_bar * np.exp(-second_order), ddpm, rtol=3e-3)


def test_vp_linear_velocity_is_time_derivative():
    x0, x1, t = _pair()
    (_, v), (dxt, _) = jax.jvp(lambda s: interpolants.vp_linear(x0, x1, s), (t,), (jnp.ones_like(t),))
    np.testing.assert_allclose(v, dxt, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", interpolants.NAMES)
def test_schedule_reproduces_interpolant(name):
    """x_t = alpha x1 + sigma x0 and dx_t/dt = alpha' x1 + sigma' x0 (coefficients by hand) for every path."""
    x0, x1, t = _pair()
    xt, v = interpolants.get(name, SIGMA_MIN)(x0, x1, t)
    sched = interpolants.schedule(name, SIGMA_MIN)
    a, s = _bcast(sched.alpha(t), x0), _bcast(sched.sigma(t), x0)
    np.testing.assert_allclose(xt, a * x1 + s * x0, rtol=1e-6, atol=1e-6)
    ha, hs, hda, hds = (_bcast(jnp.asarray(c, jnp.float32), x0) for c in _hand_derivatives(name, t))
    np.testing.assert_allclose(xt, ha * x1 + hs * x0, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(v, hda * x1 + hds * x0, rtol=1e-4, atol=1e-4)
    jax_coeffs = interpolants.coefficients(sched, t)
    for got, want in zip(jax_coeffs, _hand_derivatives(name, t)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_unknown_schedule():
    with pytest.raises(ValueError, match="loss.interpolant.*vp_linear|vp_linear.*loss.interpolant"):
        interpolants.schedule("ddpm")


# 2. epsilon loss ----------------------------------------------------------------------------


def test_epsilon_loss_by_hand():
    x0, x1 = jnp.array([[1.0, 0.0], [0.0, 2.0]]), jnp.array([[3.0, 1.0], [1.0, 1.0]])
    t = jnp.array([0.5, 0.25])
    apply_fn = lambda p, x, t: p * x  # eps_hat = p x_t
    sched = interpolants.schedule("linear")
    # x_t = t x1 + (1 - t) x0 = [[2, 0.5], [0.25, 1.75]]; with p = 1 errors [[1, 0.5], [0.25, -0.25]]
    per_example = np.array([(1 + 0.25) / 2, (0.0625 + 0.0625) / 2])
    loss = losses.epsilon_loss(apply_fn, 1.0, x0, x1, t, schedule=sched)
    np.testing.assert_allclose(loss, per_example.mean(), rtol=1e-6)
    weighted = losses.epsilon_loss(apply_fn, 1.0, x0, x1, t, schedule=sched, weight_fn=lambda t: 1 / t)
    np.testing.assert_allclose(weighted, np.mean(per_example / np.array([0.5, 0.25])), rtol=1e-6)
    jitted = jax.jit(functools.partial(losses.epsilon_loss, apply_fn, schedule=sched))
    np.testing.assert_allclose(jitted(1.0, x0, x1, t), per_example.mean(), rtol=1e-6)
    with pytest.raises(ValueError, match="same shape"):
        losses.epsilon_loss(apply_fn, 1.0, x0, x1[:1], t, schedule=sched)
    with pytest.raises(ValueError, match=r"shape \[B\]"):
        losses.epsilon_loss(apply_fn, 1.0, x0, x1, t[:1], schedule=sched)


def test_epsilon_loss_is_zero_for_the_true_noise():
    """An oracle that knows x1 recovers eps = (x_t - alpha x1) / sigma: loss 0, so x_t is built as documented."""
    x0, x1, t = _pair()
    t = 0.9 * t
    sched = interpolants.schedule("vp_linear")
    oracle = lambda p, x, t: (x - _bcast(sched.alpha(t), x) * x1) / _bcast(sched.sigma(t), x)
    assert float(losses.epsilon_loss(oracle, None, x0, x1, t, schedule=sched)) < 1e-10
    loss, grad = jax.value_and_grad(lambda p: losses.epsilon_loss(lambda p, x, t: p * x, p, x0, x1, t, schedule=sched))(
        0.5
    )
    assert np.isfinite(loss) and np.isfinite(grad) and loss > 0


# 3. predictions on a Gaussian -> Gaussian path ----------------------------------------------

MU = np.array([2.0, -1.0, 0.5])
STD = 0.5  # data x1 ~ N(MU, STD^2 I), noise x0 ~ N(0, I) independent


def _gaussian_eps(sched: interpolants.Schedule):
    """Exact E[x0 | x_t] = sigma / V (x - alpha mu), V = alpha^2 s^2 + sigma^2 (Gaussian conditioning)."""

    def eps(x, t):
        a, s = _bcast(sched.alpha(t), x), _bcast(sched.sigma(t), x)
        return s / (a**2 * STD**2 + s**2) * (x - a * MU)

    return eps


@pytest.mark.parametrize("name", interpolants.NAMES)
def test_epsilon_to_velocity_is_the_marginal_velocity(name, x64):
    """p_t = N(alpha mu, V I) moves by the affine field v = m' + V' / (2 V) (x - m), m = alpha mu."""
    sched = interpolants.schedule(name, SIGMA_MIN)
    t = np.linspace(0.05, 0.95, 7)
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(1), (7, 3), jnp.float64)) * 2.0
    v = predictions.to_velocity(_gaussian_eps(sched), "epsilon", sched)(jnp.asarray(x), jnp.asarray(t))
    a, s, da, ds = (c[:, None] for c in _hand_derivatives(name, t))
    var, dvar = a**2 * STD**2 + s**2, 2 * a * da * STD**2 + 2 * s * ds
    np.testing.assert_allclose(v, da * MU + dvar / (2 * var) * (x - a * MU), rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("name", interpolants.NAMES)
def test_denoise_round_trips(name, x64):
    sched = interpolants.schedule(name, SIGMA_MIN)
    t = jnp.linspace(0.05, 0.95, 7)
    x = jax.random.normal(jax.random.PRNGKey(2), (7, 3), jnp.float64)
    eps_fn = _gaussian_eps(sched)
    x1_hat, x0_hat = predictions.denoise(predictions.to_velocity(eps_fn, "epsilon", sched), sched)(x, t)
    a, s = _bcast(sched.alpha(t), x), _bcast(sched.sigma(t), x)
    np.testing.assert_allclose(x0_hat, eps_fn(x, t), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(x1_hat, (x - s * eps_fn(x, t)) / a, rtol=1e-9, atol=1e-9)
    # any velocity field: (x1_hat, x0_hat) reproduce x and v on the path
    field = lambda x, t: jnp.sin(3 * x) + _bcast(t, x)
    x1_hat, x0_hat = predictions.denoise(field, sched)(x, t)
    ha, hs, hda, hds = (jnp.asarray(c)[:, None] for c in _hand_derivatives(name, np.asarray(t)))
    np.testing.assert_allclose(ha * x1_hat + hs * x0_hat, x, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(hda * x1_hat + hds * x0_hat, field(x, t), rtol=1e-9, atol=1e-9)


def test_prediction_names():
    model = lambda x, t: x
    assert predictions.to_velocity(model, "velocity", interpolants.schedule("linear")) is model
    assert predictions.PREDICTIONS == ("velocity", "epsilon")
    with pytest.raises(ValueError, match="Unknown prediction 'x1'.*'velocity', 'epsilon'.*loss.name"):
        predictions.to_velocity(model, "x1", interpolants.schedule("linear"))


# 4. DDIM ------------------------------------------------------------------------------------


def _field(x, t):
    """A state- and time-dependent velocity."""
    return -x + jnp.sin(2 * jnp.pi * _bcast(t, x))


@pytest.mark.parametrize("t0, t1", [(0.0, 1.0), (0.25, 0.75)])
def test_ddim_on_linear_path_is_euler(t0, t1):
    x0 = jax.random.normal(jax.random.PRNGKey(3), (4, 2, 3))
    sched = interpolants.schedule("linear")
    got, path = integrators.ddim(_field, x0, 8, schedule=sched, t0=t0, t1=t1, return_path=True)
    want, want_path = integrators.euler(_field, x0, 8, t0=t0, t1=t1, return_path=True)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(path, want_path, rtol=1e-6, atol=1e-6)
    assert path.shape == (9,) + x0.shape


def test_ddim_maps_noise_to_gaussian_data():
    """Exact epsilon of N(0, I) -> N(MU, STD^2) on vp_linear; DDIM against the exact ODE flow map.

    The flow carries x at t = 0 to MU + STD (x - alpha_0 MU) / sqrt(V_0) at t = 1. DDIM is first
    order: its RMS error against that map falls like 1 / nfe (measured 0.069, 0.029, 0.0074 at
    nfe = 20, 50, 200). On the uniform t grid most of it comes from the last steps, where sigma
    drops from 0.32 to 0, and it shrinks the spread: std 0.47 at nfe = 50, 0.49 at nfe = 200.
    Sample moments: 8,000 draws give standard errors 0.006 (mean) and 0.004 (std), and N(0, I)
    differs from the exact p_0 = N(alpha_0 MU, V_0 I), alpha_0 = 0.0066, which moves the mean by
    STD alpha_0 MU <= 0.007. Tolerances: mean 0.03, std 0.05 at nfe = 50 and 0.02 at nfe = 200.
    """
    sched = interpolants.schedule("vp_linear")
    velocity = predictions.to_velocity(_gaussian_eps(sched), "epsilon", sched)
    x0 = jax.random.normal(jax.random.PRNGKey(4), (8000, 3))
    a0, s0 = float(sched.alpha(jnp.float32(0.0))), float(sched.sigma(jnp.float32(0.0)))
    exact = MU + STD * (np.asarray(x0) - a0 * MU) / np.sqrt(a0**2 * STD**2 + s0**2)
    nfes, errors, samples = (20, 50, 200), [], []
    for nfe in nfes:
        x1 = np.asarray(jax.jit(lambda x: integrators.ddim(velocity, x, nfe, schedule=sched))(x0))
        errors.append(float(np.sqrt(np.mean((x1 - exact) ** 2))))
        samples.append(x1)
    assert errors[0] > errors[1] > errors[2], errors
    slope = np.polyfit(np.log(nfes), np.log(errors), 1)[0]
    assert -1.2 < slope < -0.8, (slope, errors)  # first order
    for x1, std_tol in zip(samples[1:], (0.05, 0.02)):
        np.testing.assert_allclose(np.mean(x1, axis=0), MU, atol=0.03)
        np.testing.assert_allclose(np.std(x1, axis=0), STD, atol=std_tol)


def test_ddim_uses_exactly_nfe_evaluations():
    nfe, times, traces = 7, [], []

    def counting(x, t):
        traces.append(1)
        jax.debug.callback(lambda tt: times.append(float(tt[0])), t)
        return _field(x, t)

    x0 = jax.random.normal(jax.random.PRNGKey(5), (3, 2))
    sched = interpolants.schedule("vp_linear")
    x1, path = integrators.ddim(counting, x0, nfe, schedule=sched, return_path=True)
    jax.effects_barrier()
    assert len(times) == nfe and len(traces) == 1
    np.testing.assert_allclose(np.sort(times), np.arange(nfe) / nfe, atol=1e-6)  # t = 1 never evaluated
    assert path.shape == (nfe + 1,) + x0.shape and np.all(np.isfinite(path))
    np.testing.assert_array_equal(path[0], x0)
    np.testing.assert_array_equal(path[-1], x1)


def test_get_ddim_needs_a_schedule():
    sched = interpolants.schedule("vp_linear")
    with pytest.raises(ValueError, match="schedule"):
        integrators.get("ddim")
    solver = integrators.get("ddim", schedule=sched)
    x0 = jax.random.normal(jax.random.PRNGKey(6), (3, 2))
    np.testing.assert_array_equal(solver(_field, x0, 5), integrators.ddim(_field, x0, 5, schedule=sched))
    assert integrators.get("euler", schedule=sched) is integrators.euler  # other solvers ignore it
    assert "ddim" in integrators.SCHEDULE_SOLVERS and integrators.stages("ddim") == 1
    assert integrators.valid_nfe("ddim", 3) and not integrators.valid_nfe("ddim", 0)
    with pytest.raises(ValueError, match="ddim needs nfe ≥ 1"):
        solver(_field, x0, 0)
    with pytest.raises(ValueError, match="eval.solvers"):
        integrators.get("ddpm")
