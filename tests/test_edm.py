"""Tests of flowjax.edm, losses.edm_loss and integrators.edm_heun / edm_euler against independent references.

References: EDM's published noise levels, the identities of its preconditioning (Karras et al. 2022,
Table 1 and Appendix B.6), a NumPy float64 transcription of its Algorithm 1, and the closed forms of the
Gaussian case. For data q = N(0, I) the exact denoiser is D(x, s) = E[x1 | x1 + s x0 = x] = x / (1 + s^2),
the probability-flow ODE dx/ds = (x - D) / s = x s / (1 + s^2) has the solutions x(s) = c sqrt(1 + s^2),
and on flowjax's time axis (y = x / (1 + s), t = 1 / (1 + s)) these are y(t) = c sqrt(t^2 + (1 - t)^2).

Tolerances are float round-off bounds: EPS32 = 2^-23 and EPS64 = 2^-52 are the spacing of floats at 1
(a correctly rounded operation errs by at most half of it, relative).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax import edm, integrators, interpolants, losses, predictions

EPS32 = float(np.finfo(np.float32).eps)
EPS64 = float(np.finfo(np.float64).eps)
SMIN, SMAX, RHO = 0.002, 80.0, 7.0  # EDM Sec. 3 and Table 1, written out: the references do not read flowjax.edm


@pytest.fixture
def x64():
    """Runs the test with 64-bit floats enabled, restoring the previous setting afterwards."""
    with jax.enable_x64(True):
        yield


def _b(c, x):
    """c [B] reshaped to broadcast against x [B, ...] (NumPy or JAX)."""
    return c.reshape(c.shape + (1,) * (x.ndim - 1))


def gaussian_denoiser(x, sigma):
    """Exact denoiser of q = N(0, I): D(x, s) = x / (1 + s^2)."""
    return x / (1.0 + _b(sigma, x) ** 2)


def np_sigmas(n, smin=SMIN, smax=SMAX, rho=RHO):
    """EDM Eq. 5 in NumPy float64, written out independently of flowjax.edm."""
    i = np.arange(n, dtype=np.float64)
    s = (smax ** (1 / rho) + i / max(n - 1, 1) * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho
    return np.append(s, 0.0)


def np_edm_sampler(denoise, z, n, second_order=True):
    """EDM's generate.py ``edm_sampler`` with S_churn = 0, transcribed in NumPy float64."""
    t_steps = np_sigmas(n)
    x_next = z.astype(np.float64) * t_steps[0]
    for i, (t_cur, t_next) in enumerate(zip(t_steps[:-1], t_steps[1:])):
        x_cur = x_next
        d_cur = (x_cur - denoise(x_cur, np.full(len(z), t_cur))) / t_cur
        x_next = x_cur + (t_next - t_cur) * d_cur
        if second_order and i < n - 1:
            d_prime = (x_next - denoise(x_next, np.full(len(z), t_next))) / t_next
            x_next = x_cur + (t_next - t_cur) * (0.5 * d_cur + 0.5 * d_prime)
    return x_next


def nonlinear_denoiser(x, sigma):
    """A smooth denoiser that is not linear in x and depends on sigma beyond a scale (NumPy or JAX)."""
    xp = jnp if isinstance(x, jax.Array) else np
    s = _b(sigma, x)
    return (x + 0.3 * s * xp.tanh(x)) / (1.0 + s**2)


def within(actual, desired, bound):
    """|actual - desired| ≤ bound elementwise (bound may be an array: a per-element round-off bound)."""
    actual, desired = np.asarray(actual, np.float64), np.asarray(desired, np.float64)
    excess = np.abs(actual - desired) - np.broadcast_to(bound, np.broadcast_shapes(actual.shape, desired.shape))
    assert np.all(excess <= 0), (
        f"max |error| over its bound by {excess.max():.3g}; max |error| {np.abs(actual - desired).max():.3g}"
    )


def _z(shape=(3, 2), dtype=jnp.float32):
    return jax.random.normal(jax.random.PRNGKey(0), shape, dtype)


# 1. noise levels and preconditioning ---------------------------------------------------------


def test_karras_sigmas_match_edm_values_and_eq5():
    """EDM's 18-step grid starts 80, 57.586, 40.7856 (as printed by its code) and ends sigma_min, 0."""
    assert (edm.SIGMA_MIN, edm.SIGMA_MAX, edm.RHO) == (SMIN, SMAX, RHO)
    s = np.asarray(edm.karras_sigmas(18))
    assert s.shape == (19,) and s.dtype == np.float32
    # The published values carry 5-6 significant digits: half a unit in their last place.
    assert np.all(np.abs(s[:3] - [80.0, 57.586, 40.7856]) <= [0.0, 5e-4, 5e-5])
    # Computed in float64 and rounded once to float32: within half an ulp of the float64 formula.
    np.testing.assert_allclose(s, np_sigmas(18), rtol=EPS32 / 2, atol=0)
    assert s[-2] == np.float32(0.002) and s[-1] == 0.0
    assert np.all(np.diff(s) < 0)
    assert np.asarray(edm.karras_sigmas(1)).tolist() == [80.0, 0.0]
    # rho = 1 would be a uniform grid: the middle level is halfway.
    np.testing.assert_allclose(edm.karras_sigmas(3, rho=1.0), [80.0, 40.001, 0.002, 0.0], rtol=EPS32)


def test_karras_sigmas_traced_arguments_and_validation():
    """Traced sigma_max goes through jnp in float32: rho = 7 amplifies the base's few-ulp error 7 times."""
    s = jax.jit(lambda smax: edm.karras_sigmas(18, sigma_max=smax))(80.0)
    np.testing.assert_allclose(s, np_sigmas(18), rtol=7 * 8 * EPS32, atol=0)
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="num_steps"):
            edm.karras_sigmas(bad)


def test_precondition_identities():
    """The properties EDM's Appendix B.6 derives the coefficients from, at sigma from 1e-3 to 1e2."""
    sd = 0.5
    s = jnp.asarray(np.logspace(-3, 2, 11), jnp.float32)
    c_skip, c_out, c_in, c_noise = (np.asarray(c, np.float64) for c in edm.precondition(s, sd))
    s = np.asarray(s, np.float64)
    # Each coefficient is ≤ 4 float32 operations (≤ 2 EPS32 relative); each identity below adds ≤ 3 more.
    tol = 8 * EPS32
    np.testing.assert_allclose(c_in**2 * (s**2 + sd**2), 1.0, rtol=tol)  # unit-variance network input
    # Unit-variance training target F = (x1 - c_skip x) / c_out for x1 of variance sd^2, x = x1 + s x0:
    np.testing.assert_allclose(((1 - c_skip) ** 2 * sd**2 + c_skip**2 * s**2) / c_out**2, 1.0, rtol=tol)
    # c_skip minimises c_out: d/dc [((1 - c)^2 sd^2 + c^2 s^2)] = 0 at c = c_skip.
    within((c_skip - 1) * sd**2 + c_skip * s**2, 0.0, tol * (sd**2 + s**2))
    np.testing.assert_allclose(np.asarray(edm.loss_weight(s, sd)) * c_out**2, 1.0, rtol=tol)  # lambda = 1/c_out^2
    within(c_noise, np.log(s) / 4, EPS32 * np.abs(np.log(s)))
    # sigma -> 0: D -> x (c_skip -> 1, c_out ~ sigma -> 0); sigma -> inf: c_skip -> 0, c_out -> sd.
    c_skip0, c_out0, _, _ = edm.precondition(jnp.float32(1e-6), sd)
    assert abs(float(c_skip0) - 1.0) <= EPS32 and abs(float(c_out0) / 1e-6 - 1.0) <= 4 * EPS32
    c_skip_inf, c_out_inf, _, _ = edm.precondition(jnp.float32(1e6), sd)
    assert float(c_skip_inf) < 1e-12 and abs(float(c_out_inf) - sd) <= 4 * EPS32


def test_denoiser_with_exact_network_output_is_the_exact_denoiser():
    """net_fn returning the ideal F* = (D* - c_skip x) / c_out makes `denoiser` the exact D*.

    q = N(0, v I) with v = 4, sigma_data = 0.5 (mismatched on purpose: with sigma_data^2 = v, F* = 0):
    D*(x, s) = v x / (v + s^2). F* is written from Table 1's formulas here, not from edm.precondition.
    """
    v, sd = 4.0, 0.5
    batch = 3
    labels = jnp.arange(batch)

    def net_fn(params, x_in, c_noise, *, y, train):
        assert c_noise.shape == (batch,) and x_in.shape == (batch, 2, 3, 3)
        assert params == "p" and train is False
        np.testing.assert_array_equal(y, labels)
        s = _b(jnp.exp(4.0 * c_noise), x_in)
        x = x_in * jnp.sqrt(s**2 + sd**2)  # undo c_in = 1 / sqrt(s^2 + sd^2)
        c_skip, c_out = sd**2 / (s**2 + sd**2), s * sd / jnp.sqrt(s**2 + sd**2)
        return (v * x / (v + s**2) - c_skip * x) / c_out

    x = _z((batch, 2, 3, 3)) * 3.0
    sigma = jnp.asarray([0.01, 1.0, 50.0])
    out = edm.denoiser(net_fn, sd)("p", x, sigma, y=labels, train=False)
    xs, ss = np.asarray(x, np.float64), np.asarray(sigma, np.float64)
    expected = v * xs / (v + _b(ss, xs) ** 2)
    # exp(4 ln(s) / 4) round-trips s to ~4 EPS32 relative and D* depends on s with relative sensitivity ≤ 2;
    # the rest is ~10 float32 operations, on terms up to |x| in size.
    within(out, expected, 32 * EPS32 * np.abs(xs))
    assert out.dtype == jnp.float32
    # A scalar sigma is broadcast to [B].
    out_scalar = edm.denoiser(net_fn, sd)("p", x, 1.0, y=labels, train=False)
    within(out_scalar[1], out[1], 4 * EPS32 * np.abs(xs[1]))


def test_sample_sigma_is_lognormal():
    n = 4096
    s = np.asarray(edm.sample_sigma(jax.random.PRNGKey(3), n), np.float64)
    assert s.shape == (n,) and np.all(s > 0)
    ln = np.log(s)
    # Standard errors of the mean and the standard deviation of n normal draws: std / sqrt(n), std / sqrt(2 n).
    assert abs(ln.mean() - (-1.2)) < 5 * 1.2 / np.sqrt(n)
    assert abs(ln.std() - 1.2) < 5 * 1.2 / np.sqrt(2 * n)
    ln2 = np.log(np.asarray(edm.sample_sigma(jax.random.PRNGKey(3), n, p_mean=0.5, p_std=0.1)))
    assert abs(ln2.mean() - 0.5) < 5 * 0.1 / np.sqrt(n) and abs(ln2.std() - 0.1) < 5 * 0.1 / np.sqrt(2 * n)


# 2. samplers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("second_order", [True, False])
def test_samplers_match_numpy_transcription_of_edm(second_order, x64):
    """edm.heun / edm.euler equal EDM's own loop (NumPy, float64) on a nonlinear denoiser, to round-off.

    2N - 1 = 35 evaluations of a denoiser with Lipschitz constant ≤ 1.3, each step a few float64
    operations on values ≤ sigma_max |z|: 1e-12 relative to sigma_max |z| is ~50 x 35 EPS64.
    """
    z = np.asarray(_z((4, 3), jnp.float64))
    sampler = edm.heun if second_order else edm.euler
    x = sampler(nonlinear_denoiser, jnp.asarray(z), 18)
    assert x.dtype == jnp.float64
    ref = np_edm_sampler(nonlinear_denoiser, z, 18, second_order)
    within(x, ref, 1e-12 * SMAX * np.abs(z).max())


def test_heun_gaussian_closed_form_second_order(x64):
    """Heun from sigma_max z tends to the exact ODE solution z sigma_max / sqrt(1 + sigma_max^2) at order 2.

    Doubling N halves every step in sigma^(1/rho) (Eq. 5), so the error of a 2nd-order method falls ~4x;
    dropping the corrector (or a wrong grid) gives ~2x. The last (Euler) step from sigma_min to 0 errs by
    ~ sigma_min^2 / 2 = 2e-6 relative, below the errors compared here (≥ 2e-3).
    """
    z = _z((8, 2), jnp.float64)
    exact = np.asarray(z) * SMAX / np.sqrt(1 + SMAX**2)
    err = {
        n: np.max(np.abs(np.asarray(edm.heun(gaussian_denoiser, z, n)) - exact) / np.abs(exact)) for n in (18, 36, 72)
    }
    assert 3.5 < err[18] / err[36] < 5.0 and 3.5 < err[36] / err[72] < 5.0, err
    assert err[72] < 3e-3
    err_euler = {n: np.max(np.abs(np.asarray(edm.euler(gaussian_denoiser, z, n)) - exact)) for n in (36, 72)}
    assert 1.7 < err_euler[36] / err_euler[72] < 2.3, err_euler


def test_heun_float32_agrees_with_float64():
    """In float32 the sampler adds round-off only: x(s) = c sqrt(1 + s^2) keeps relative errors, and each of
    the 2N - 1 evaluations adds ≤ ~8 EPS32 relative (≤ 8 float32 operations)."""
    z = _z((8, 2))
    x32 = np.asarray(edm.heun(gaussian_denoiser, z, 18))
    ref = np_edm_sampler(lambda x, s: x / (1 + _b(s, x) ** 2), np.asarray(z, np.float64), 18)
    within(x32, ref, 8 * 35 * EPS32 * np.abs(ref))


def test_euler_one_step_is_the_denoiser():
    """N = 1: x = sigma_max z + (0 - sigma_max)(x - D) / sigma_max = D(sigma_max z, sigma_max)."""
    z = _z()
    x = edm.euler(nonlinear_denoiser, z, 1)
    d = nonlinear_denoiser(SMAX * z, jnp.full((3,), SMAX))
    within(x, d, 4 * EPS32 * SMAX * np.abs(np.asarray(z)))
    # Heun's last step is Euler too, so N = 1 is the same single evaluation.
    within(edm.heun(nonlinear_denoiser, z, 1), x, 4 * EPS32 * SMAX * np.abs(np.asarray(z)))


def test_sampler_evaluations_path_and_jit():
    """heun spends 2N - 1 evaluations at the Eq. 5 levels (the corrector at sigma_{i+1}, none at 0)."""
    n, batch = 5, 3
    times = []

    def counting(x, s):
        assert s.shape == (batch,) and s.dtype == x.dtype == jnp.float32
        jax.debug.callback(lambda ss: times.append(float(ss[0])), s)
        return nonlinear_denoiser(x, s)

    z = _z((batch, 2, 2))
    x, path = jax.jit(lambda z: edm.heun(counting, z, n, return_path=True))(z)
    jax.effects_barrier()
    s = np_sigmas(n)
    np.testing.assert_allclose(np.sort(times), np.sort(np.concatenate([s[:n], s[1:n]])), rtol=EPS32)
    assert path.shape == (n + 1, batch, 2, 2)
    np.testing.assert_allclose(path[0], SMAX * z, rtol=EPS32)
    np.testing.assert_array_equal(path[-1], x)
    times.clear()
    x_e, path_e = edm.euler(counting, z, n, return_path=True)
    jax.effects_barrier()
    np.testing.assert_allclose(np.sort(times), np.sort(s[:n]), rtol=EPS32)
    assert path_e.shape == (n + 1, batch, 2, 2)
    np.testing.assert_array_equal(path_e[-1], x_e)


def test_float64_sampler_calls_the_network_in_the_input_dtype():
    z = _z((4, 2))
    with pytest.raises(ValueError, match="jax_enable_x64"):
        edm.heun(gaussian_denoiser, z, 4, dtype=jnp.float64)
    with jax.enable_x64(True):
        seen = []

        def denoise(x, s):
            seen.append((x.dtype, s.dtype))
            return gaussian_denoiser(x, s)

        x = edm.heun(denoise, z, 18, dtype=jnp.float64)
        assert x.dtype == jnp.float64
        assert set(seen) == {(np.dtype(np.float32), np.dtype(np.float32))}
        # The network's float32 output limits the accuracy: ~8 EPS32 per evaluation, as in float32 throughout.
        ref = np_edm_sampler(lambda x, s: x / (1 + _b(s, x) ** 2), np.asarray(z, np.float64), 18)
        within(x, ref, 8 * 35 * EPS32 * np.abs(ref))


# 3. flowjax's time axis ----------------------------------------------------------------------


def test_to_flow_maps_the_ve_state_to_the_linear_interpolant():
    x1, x0 = _z((3, 2)), jax.random.normal(jax.random.PRNGKey(1), (3, 2))
    sigma = jnp.asarray([0.01, 1.0, 80.0])
    y, t = edm.to_flow(x1 + _b(sigma, x1) * x0, sigma)
    y_lin, _ = interpolants.linear(x0, x1, t)
    assert t.shape == (3,)
    np.testing.assert_allclose(t, 1 / (1 + np.asarray(sigma)), rtol=EPS32)
    within(y, y_lin, 4 * EPS32 * (np.abs(x1) + np.abs(x0)))


def test_velocity_recovers_the_denoiser_through_predictions_denoise():
    """x1_hat = y + (1 - t) v of the linear path is D(y (1 + s), s) with s = (1 - t) / t, on [t(smax), t(smin)].

    Reference in float64 at the float32 t. The float32 s = (1 - t) / t errs by ≤ 2 EPS32 relative and D
    reacts to it with a relative sensitivity ≤ 1; with the ~10 further operations, each within EPS32 of
    terms of size ≤ |D| + |y|, 32 EPS32 (|D| + |y|) bounds the error.
    """
    t = jnp.asarray(np.linspace(1 / (1 + SMAX), 1 / (1 + SMIN), 9), jnp.float32)
    y = jax.random.normal(jax.random.PRNGKey(2), (9, 3))
    x1_hat, _ = predictions.denoise(edm.velocity(nonlinear_denoiser), interpolants.schedule("linear"))(y, t)
    tt, yy = np.asarray(t, np.float64), np.asarray(y, np.float64)
    s = (1 - tt) / tt
    d = nonlinear_denoiser(yy * _b(1 + s, yy), s)
    within(x1_hat, d, 32 * EPS32 * (np.abs(d) + np.abs(yy)))


def test_velocity_clips_sigma_outside_its_range():
    """t ≤ 1 / (1 + sigma_max) reads as sigma_max, t ≥ 1 / (1 + sigma_min) as sigma_min: finite, the field there.

    v = (D - y)(1 + s) / s: D and y carry a few EPS32 of their size, and the factor (1 + s) / s (500 at
    sigma_min) multiplies that absolute error, so the bound is 8 EPS32 (|D| + |y|)(1 + s) / s.
    """
    v = edm.velocity(gaussian_denoiser)
    y = np.asarray(_z((2, 2)), np.float64)
    for t, s in ((0.0, SMAX), (-0.1, SMAX), (1.0, SMIN), (1.1, SMIN)):
        got = v(jnp.asarray(y, jnp.float32), jnp.full((2,), t))
        d = y * (1 + s) / (1 + s**2)  # D(y (1 + s), s) = y (1 + s) / (1 + s^2)
        assert np.all(np.isfinite(got))
        within(got, (d - y) * (1 + s) / s, 8 * EPS32 * (np.abs(d) + np.abs(y)) * (1 + s) / s)


def test_velocity_integrates_to_the_closed_form(x64):
    """dopri5 on t of `edm.velocity` of the exact Gaussian denoiser follows y(t) = c sqrt(t^2 + (1 - t)^2).

    Between t(smax) and t(smin) the field is exact and the tolerance is dopri5's (rtol = atol = 1e-10,
    errors ≤ ~1e-9). Outside it the clipped sigma changes v / y by ≤ 2 / (1 + smax^2) on [0, t(smax)] and by
    ≤ 2 smin^2 on [t(smin), 1]; the ODE is linear in y, so the relative error of y is ≤ the integral of that.
    """
    c = _z((4, 2), jnp.float64)
    cn = np.asarray(c)
    y_of = lambda t: cn * np.sqrt(t**2 + (1 - t) ** 2)
    v = edm.velocity(gaussian_denoiser)
    t_lo, t_hi = 1 / (1 + SMAX), 1 / (1 + SMIN)
    solve = lambda y, t0, t1: integrators.dopri5(v, y, t0=t0, t1=t1, rtol=1e-10, atol=1e-10)[0]
    within(solve(jnp.asarray(y_of(t_lo)), t_lo, t_hi), y_of(t_hi), 1e-8)
    within(solve(jnp.asarray(y_of(t_lo)), t_lo, 0.5), y_of(0.5), 1e-8)
    clip = 2 / (1 + SMAX**2) * t_lo + 2 * SMIN**2 * (1 - t_hi)
    y_half = solve(c, 0.0, 0.5)  # noise at t = 0 read as the VE state at sigma_max
    within(y_half, y_of(0.5), (clip + 1e-8) * np.abs(cn))
    within(solve(y_half, 0.5, 1.0), cn, (clip + 2e-8) * np.abs(cn))
    # rk4 in float32 sees the same field: 64 evaluations on a smooth solution, error well under 1e-4.
    y_rk4 = integrators.rk4(v, jnp.asarray(cn, jnp.float32), 64, t1=0.5)
    within(y_rk4, y_of(0.5), 1e-4 * np.abs(cn))


# 4. integrators.edm_heun / edm_euler ----------------------------------------------------------


def test_edm_heun_on_edm_velocity_is_edm_heun():
    """Two routes to the same sampler: integrators.edm_heun(edm.velocity(D)) and edm.heun(D).

    The route through t adds the round trips x -> (y, t) -> (x, s) and x1_hat = y + (1 - t) v: a few EPS32
    per evaluation relative to |x| (the sigma it recovers from t near 1 is off by ≤ EPS32 (1 + s) / s
    relative, to which x / (1 + s^2) is insensitive at small s). 2N - 1 = 35 evaluations: 16 x 35 EPS32.
    """
    z = _z((8, 2))
    direct = np.asarray(edm.heun(gaussian_denoiser, z, 18))
    x1, path = integrators.edm_heun(edm.velocity(gaussian_denoiser), z, 35, return_path=True)
    within(x1, direct, 16 * 35 * EPS32 * np.abs(direct))
    assert path.shape == (19, 8, 2)
    np.testing.assert_allclose(path[0], SMAX / (1 + SMAX) * np.asarray(z), rtol=2 * EPS32)
    np.testing.assert_array_equal(path[-1], x1)
    x1_e = integrators.edm_euler(edm.velocity(nonlinear_denoiser), z, 18)
    direct_e = np.asarray(edm.euler(nonlinear_denoiser, z, 18))
    within(x1_e, direct_e, 16 * 18 * EPS32 * SMAX * np.abs(np.asarray(z)).max())


def test_edm_heun_evaluates_the_velocity_nfe_times_on_the_karras_grid():
    times, nfe, batch = [], 9, 2

    def field(y, t):
        assert t.shape == (batch,) and t.dtype == jnp.float32
        jax.debug.callback(lambda tt: times.append(float(tt[0])), t)
        return -y + jnp.sin(3.0 * _b(t, y))

    integrators.edm_heun(field, _z((batch, 2)), nfe)
    jax.effects_barrier()
    n = (nfe + 1) // 2
    t_grid = 1 / (1 + np_sigmas(n))
    assert len(times) == nfe
    np.testing.assert_allclose(np.sort(times), np.sort(np.concatenate([t_grid[:n], t_grid[1:n]])), rtol=4 * EPS32)


def test_edm_euler_is_euler_in_t_on_the_karras_grid():
    """An Euler step in sigma of the VE state is an Euler step in t of y = x / (1 + sigma), for any field.

    Reference: y_{i+1} = y_i + (t_{i+1} - t_i) v(y_i, t_i) in float64 from y_0 = sigma_max / (1 + sigma_max) z.
    Each of the 6 steps adds a few EPS32 of |y| ≤ 2 through the route's ~10 operations.
    """
    omega = 3.0
    field_np = lambda y, t: -y + np.sin(omega * t)
    z = _z((4, 2))
    n = 6
    t_grid = 1 / (1 + np_sigmas(n))
    y = SMAX / (1 + SMAX) * np.asarray(z, np.float64)
    ref = [y]
    for i in range(n):
        y = y + (t_grid[i + 1] - t_grid[i]) * field_np(y, t_grid[i])
        ref.append(y)
    x1, path = integrators.edm_euler(lambda y, t: -y + jnp.sin(omega * _b(t, y)), z, n, return_path=True)
    within(path, np.stack(ref), 32 * n * EPS32 * 2)
    np.testing.assert_array_equal(path[-1], x1)


def test_edm_euler_one_evaluation_is_the_denoiser_at_sigma_max():
    z = _z()
    x1 = integrators.edm_euler(edm.velocity(nonlinear_denoiser), z, 1)
    d = np.asarray(nonlinear_denoiser(SMAX * z, jnp.full((3,), SMAX)))
    within(x1, d, 16 * EPS32 * SMAX * np.abs(np.asarray(z)))


def test_edm_solver_registry_and_errors():
    linear = interpolants.schedule("linear")
    assert integrators.EDM_SOLVERS == ("edm_euler", "edm_heun")
    assert integrators.get("edm_heun", schedule=linear) is integrators.edm_heun
    assert integrators.get("edm_euler") is integrators.edm_euler
    assert [n for n in range(1, 8) if integrators.valid_nfe("edm_heun", n)] == [1, 3, 5, 7]
    assert [n for n in range(0, 4) if integrators.valid_nfe("edm_euler", n)] == [1, 2, 3]
    assert not integrators.valid_nfe("edm_heun", 3.0)
    assert integrators.stages("edm_euler") == 1 and integrators.stages("edm_heun") == 2
    # The sweep's call shape (flowjax.evaluate): t1=t_end is passed, and must be 1.
    v = edm.velocity(gaussian_denoiser)
    z = _z()
    x = jax.jit(lambda x: integrators.get("edm_heun", schedule=linear)(v, x, 5, t1=1.0))(z)
    # jit may fuse differently from op-by-op execution: 5 evaluations, a few EPS32 each.
    within(x, integrators.edm_heun(v, z, 5), 16 * 5 * EPS32 * np.abs(np.asarray(z)))
    with pytest.raises(ValueError, match="eval.t_end"):
        integrators.edm_heun(v, z, 5, t1=0.99)
    with pytest.raises(ValueError, match="t0 = 0"):
        integrators.edm_euler(v, z, 5, t0=0.1)
    with pytest.raises(ValueError, match="edm_heun needs an odd nfe ≥ 1 .* got 4"):
        integrators.edm_heun(v, z, 4)
    with pytest.raises(ValueError, match="edm_euler needs nfe ≥ 1 .*got 0"):
        integrators.edm_euler(v, z, 0)
    with pytest.raises(ValueError, match="linear path"):
        integrators.get("edm_heun", schedule=interpolants.schedule("vp_cosine"))
    with pytest.raises(ValueError, match="edm_heun"):
        integrators.get("edm_heum")


# 5. edm_loss ---------------------------------------------------------------------------------


def _toy_denoiser(params, x, sigma):
    """D = w x / (1 + s) + b: depends on params, x and sigma."""
    return params["w"] * x / (1.0 + _b(sigma, x)) + params["b"]


def test_edm_loss_matches_numpy():
    k0, k1, k2 = jax.random.split(jax.random.PRNGKey(4), 3)
    x0, x1 = jax.random.normal(k0, (5, 2, 3)), jax.random.normal(k1, (5, 2, 3))
    sigma = edm.sample_sigma(k2, 5)
    params = {"w": jnp.float32(0.7), "b": jnp.float32(0.1)}
    sd = 0.5
    a0, a1, s = (np.asarray(a, np.float64) for a in (x0, x1, sigma))
    x = a1 + _b(s, a1) * a0
    err = ((0.7 * x / (1 + _b(s, x)) + 0.1 - a1) ** 2).reshape(5, -1).mean(axis=1)
    lam = (s**2 + sd**2) / (s * sd) ** 2
    # ~10 float32 operations per element and 6-term means: the result is within ~16 EPS32 relative (a sum
    # of non-negative terms keeps the elementwise relative error).
    got = losses.edm_loss(_toy_denoiser, params, x0, x1, sigma, sigma_data=sd)
    np.testing.assert_allclose(got, (lam * err).mean(), rtol=16 * EPS32)
    got_unweighted = losses.edm_loss(_toy_denoiser, params, x0, x1, sigma, sigma_data=sd, weight=False)
    np.testing.assert_allclose(got_unweighted, err.mean(), rtol=16 * EPS32)
    g = jax.grad(lambda p: losses.edm_loss(_toy_denoiser, p, x0, x1, sigma, sigma_data=sd))(params)
    assert set(g) == {"w", "b"} and all(np.isfinite(float(v)) for v in g.values())


def test_edm_loss_of_the_exact_gaussian_denoiser_is_the_mmse():
    """q = N(0, I): D - x1 = (s x0 - s^2 x1) / (1 + s^2) ~ N(0, m), m = s^2 / (1 + s^2) per feature.

    Each squared error is m chi^2_1 (variance 2 m^2), so the mean of n = B F independent ones has standard
    error m sqrt(2 / n); the test allows 5 standard errors. With the weight lambda = (1 + s^2) / s^2 of
    sigma_data = 1 every term is chi^2_1 at any sigma: expectation 1, standard error sqrt(2 / n).
    """
    b, f = 4096, 4
    k0, k1, k2 = jax.random.split(jax.random.PRNGKey(5), 3)
    x0, x1 = jax.random.normal(k0, (b, f)), jax.random.normal(k1, (b, f))
    exact = lambda params, x, sigma: gaussian_denoiser(x, sigma)
    se = np.sqrt(2 / (b * f))
    for s in (0.2, 1.0, 5.0):
        m = s**2 / (1 + s**2)
        got = float(losses.edm_loss(exact, None, x0, x1, jnp.full((b,), s), sigma_data=1.0, weight=False))
        assert abs(got - m) < 5 * m * se, (s, got, m)
    got = float(losses.edm_loss(exact, None, x0, x1, edm.sample_sigma(k2, b), sigma_data=1.0))
    assert abs(got - 1.0) < 5 * se, got


def test_edm_loss_shape_errors():
    x = jnp.zeros((3, 2))
    d = lambda p, x, s: x
    with pytest.raises(ValueError, match="same shape"):
        losses.edm_loss(d, None, x, jnp.zeros((3, 3)), jnp.ones(3), sigma_data=0.5)
    with pytest.raises(ValueError, match=r"sigma \(3, 1\) must have shape \[B\]"):
        losses.edm_loss(d, None, x, x, jnp.ones((3, 1)), sigma_data=0.5)
