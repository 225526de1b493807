"""Lines Matching Models' pure pieces (flowjax/lmm.py) and their solvers, against closed forms and hand values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax import edm, integrators, lmm

# The Karras levels LMM's sampler uses (rho = 7, sigma in [0.002, 80]), computed by hand from EDM's Eq. 5:
# N = 18 (CIFAR-10) and N = 40 (ImageNet-64, AFHQ-64), the table of SOT's noise levels (LMM Sec. 3.6).
KARRAS_18 = {0: 80.0, 1: 57.586, 2: 40.7856, 3: 28.3746, 4: 19.3525, 5: 12.9101, 6: 8.4009, 7: 5.3152}
KARRAS_40 = {0: 80.0, 1: 69.4509, 2: 60.1174, 3: 51.8803, 5: 38.2665, 7: 27.8371}


def test_step_sigmas_hand_values():
    s18 = lmm.step_sigmas(tuple(KARRAS_18), 18)
    s40 = lmm.step_sigmas(tuple(KARRAS_40), 40)
    np.testing.assert_allclose(s18[:-1], list(KARRAS_18.values()), rtol=2e-5)
    np.testing.assert_allclose(s40[:-1], list(KARRAS_40.values()), rtol=2e-5)
    assert s18[-1] == 0.0 and s40[-1] == 0.0
    # the last index is sigma_min, as EDM's schedule
    assert lmm.step_sigmas((17,), 18)[0] == pytest.approx(0.002, rel=1e-12)


@pytest.mark.parametrize("bad", [(), (1, 1), (3, 2), (-1,), (18,), (0.5,)])
def test_check_steps_refuses(bad):
    with pytest.raises(ValueError, match="lmm.sot_steps"):
        lmm.check_steps(bad, 18, "lmm.sot_steps")


def test_sample_sigma_distributions():
    key = jax.random.PRNGKey(0)
    n = 36_000
    levels = lmm.step_sigmas(tuple(range(18)), 18)[:-1]
    s = np.asarray(lmm.sample_sigma(key, n, "karras", num_steps=18))
    idx = np.argmin(np.abs(s[:, None] - levels[None]), axis=1)
    np.testing.assert_allclose(s, levels[idx], rtol=1e-6)  # only the schedule's levels
    counts = np.bincount(idx, minlength=18)
    # uniform: each count is Binomial(n, 1/18), sd = sqrt(n p (1 - p)) ~ 43; 6 sd is never reached by chance
    assert np.all(np.abs(counts - n / 18) < 6 * np.sqrt(n / 18 * 17 / 18))
    sot = np.asarray(lmm.sample_sigma(key, 1000, "karras", num_steps=40, steps=(0, 1)))
    np.testing.assert_allclose(np.unique(sot), [69.4509, 80.0], rtol=2e-6)  # SOT at NFE 2 on ImageNet (Sec. 3.6)
    lu = np.log(np.asarray(lmm.sample_sigma(key, n, "loguniform")))
    lo, hi = np.log(0.002), np.log(80.0)
    assert lu.min() >= lo - 1e-5 and lu.max() <= hi + 1e-5
    # mean and variance of U(lo, hi): tolerances of 6 standard errors
    assert abs(lu.mean() - (lo + hi) / 2) < 6 * (hi - lo) / np.sqrt(12 * n)
    ln = np.log(np.asarray(lmm.sample_sigma(key, n, "lognormal", p_mean=-1.2, p_std=1.2)))
    assert abs(ln.mean() + 1.2) < 6 * 1.2 / np.sqrt(n) and abs(ln.std() - 1.2) < 6 * 1.2 / np.sqrt(2 * n)
    with pytest.raises(ValueError, match="karras"):
        lmm.sample_sigma(key, 4, "lognormal", steps=(0,))
    with pytest.raises(ValueError, match="lmm.sigma"):
        lmm.sample_sigma(key, 4, "uniform")


def line_denoiser(a):
    """The exact lines-matching denoiser of the teacher x1 = a x0 (a scalar map): on x = x1 + sigma x0 =
    (a + sigma) x0, N(x, sigma) = a x / (a + sigma)."""
    return lambda x, s: a * x / (a + s.reshape((-1,) + (1,) * (x.ndim - 1)))


def test_lines_loss_zero_for_the_line_denoiser_and_hand_value_otherwise():
    a = 0.6
    x0 = jax.random.normal(jax.random.PRNGKey(1), (6, 5))
    x1 = a * x0
    sigma = jnp.asarray([80.0, 10.0, 1.0, 0.1, 0.002, 3.0])
    exact = line_denoiser(a)
    loss, pred = lmm.lines_loss(lambda p, x, s: exact(x, s), None, x0, x1, sigma, distance_fn=lmm.distance("l2sq"))
    assert float(loss) < 1e-12
    np.testing.assert_allclose(pred, x1, rtol=1e-5, atol=1e-6)
    # the identity "denoiser" N(x) = x misses x1 by sigma x0: mean over features of sigma^2 x0^2, then the batch
    ident = lambda p, x, s: x
    want_sq = np.mean(np.asarray(sigma)[:, None] ** 2 * np.asarray(x0) ** 2, axis=1)
    for norm, want in (("l2sq", want_sq.mean()), ("l2", np.sqrt(want_sq).mean())):
        got, _ = lmm.lines_loss(ident, None, x0, x1, sigma, distance_fn=lmm.distance(norm))
        np.testing.assert_allclose(got, want, rtol=1e-5)
    with pytest.raises(ValueError, match="lpips_fn"):
        lmm.distance("lpips")
    with pytest.raises(ValueError, match="shape"):
        lmm.lines_loss(ident, None, x0, x1, sigma[:3], distance_fn=lmm.distance("l2"))


def test_euler_on_lines_is_one_step_for_a_line_consistent_denoiser():
    """LMM Sec. 3.2: on a perfectly line-consistent N the deterministic step along the line gives the one-step
    result whatever the steps."""
    z = jax.random.normal(jax.random.PRNGKey(2), (4, 3))
    den = line_denoiser(0.7)
    one = lmm.euler(den, z, lmm.step_sigmas((0,), 18))
    np.testing.assert_allclose(one, 0.7 * 80.0 * z / 80.7, rtol=1e-6)
    for steps in lmm.PAPER_STEPS[1:]:
        np.testing.assert_allclose(lmm.euler(den, z, lmm.step_sigmas(steps, 18)), one, rtol=1e-5, atol=1e-6)


def gaussian_denoiser(s2):
    """The exact denoiser of data N(0, s2 I): D(x, sigma) = s2 x / (s2 + sigma^2)."""
    return lambda x, s: s2 * x / (s2 + jnp.square(s).reshape((-1,) + (1,) * (x.ndim - 1)))


def test_sampler_by_hand_and_batch_invariant():
    s2 = 0.25
    b, d = 5, 3
    z = jax.random.normal(jax.random.PRNGKey(3), (b, d))
    keys = jax.random.split(jax.random.PRNGKey(4), b)
    sig = lmm.step_sigmas((0, 3, 5), 18)
    out = lmm.sample(gaussian_denoiser(s2), z, sig, keys)
    # by hand: x = sigma_0 z; x1 = D(x); x = x1 + sigma_1 eta_0; x1 = D(x); x = x1 + sigma_2 eta_1; out = D(x)
    eta = [np.stack([np.asarray(jax.random.normal(jax.random.fold_in(k, j + 1), (d,))) for k in keys]) for j in (0, 1)]
    x = sig[0] * np.asarray(z, np.float64)
    for j in range(3):
        x1 = s2 * x / (s2 + sig[j] ** 2)
        x = x1 + (sig[j + 1] * eta[j] if j < 2 else 0.0)
    np.testing.assert_allclose(out, x, rtol=1e-5, atol=1e-6)
    # a sample depends on its own key: the same example in another batch gives the same output
    part = lmm.sample(gaussian_denoiser(s2), z[2:4], sig, keys[2:4])
    np.testing.assert_allclose(part, out[2:4], rtol=1e-6)
    with pytest.raises(ValueError, match="one key per example"):
        lmm.sample(gaussian_denoiser(s2), z, sig, keys[:2])


def test_sampler_distribution_on_gaussian_data():
    """For data N(0, s2) and its exact denoiser, the two-step sampler's output is Gaussian with variance
    c1^2 (c0^2 sigma_0^2 + sigma_1^2), c_k = s2 / (s2 + sigma_k^2): checked on 20,000 samples (6 standard errors)."""
    s2, n = 0.25, 20_000
    z = jax.random.normal(jax.random.PRNGKey(5), (n, 1))
    keys = jax.random.split(jax.random.PRNGKey(6), n)
    sig = lmm.step_sigmas((0, 1), 18)
    out = np.asarray(lmm.sample(gaussian_denoiser(s2), z, sig, keys))[:, 0]
    c0, c1 = s2 / (s2 + sig[0] ** 2), s2 / (s2 + sig[1] ** 2)
    var = c1**2 * (c0**2 * sig[0] ** 2 + sig[1] ** 2)
    assert abs(out.var() / var - 1) < 6 * np.sqrt(2 / n)
    assert abs(out.mean()) < 6 * np.sqrt(var / n)


def test_solvers_run_the_lmm_samplers_on_a_velocity_field():
    """integrators' lmm:<indices> / lmm_euler:<indices> on edm.velocity(D) recover D (round trip through
    t = 1 / (1 + sigma)) and equal lmm.sample / lmm.euler on D itself."""
    z = jax.random.normal(jax.random.PRNGKey(7), (4, 2))
    keys = jax.random.split(jax.random.PRNGKey(8), 4)
    den = gaussian_denoiser(0.3)
    v = edm.velocity(den)
    got = integrators.get("lmm:0,3,5")(v, z, 3, keys=keys, num_steps=18)
    want = lmm.sample(den, z, lmm.step_sigmas((0, 3, 5), 18), keys)
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-5)
    got = integrators.get("lmm_euler:0,1")(v, z, 2, num_steps=40)
    np.testing.assert_allclose(got, lmm.euler(den, z, lmm.step_sigmas((0, 1), 40)), rtol=2e-4, atol=1e-5)
    assert integrators.valid_nfe("lmm:0,1", 2) and not integrators.valid_nfe("lmm:0,1", 1)
    with pytest.raises(ValueError, match="keys"):
        integrators.get("lmm:0")(v, z, 1)
    for bad in ("lmm", "lmm:", "lmm:1,0", "lmm:a"):
        with pytest.raises(ValueError, match="step indices"):
            integrators.get(bad)
