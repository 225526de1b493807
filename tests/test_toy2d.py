"""Tests for flowjax.data.toy2d: determinism, analytic moments and support of each sampler."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax.data import toy2d

KEY = jax.random.PRNGKey(0)
N = 16_000  # one sample size everywhere: each jitted sampler compiles once per size
NAMES = ["8gaussians", "moons", "checkerboard", "circles", "normal"]


@pytest.mark.parametrize("name", NAMES)
def test_samplers_deterministic_per_key_and_differ_across_keys(name):
    sampler = toy2d.get_sampler(name)
    a, b = sampler(KEY, N), sampler(KEY, N)
    c = sampler(jax.random.PRNGKey(1), N)
    assert a.shape == (N, 2)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_eight_gaussians_moments_and_components():
    r, s = 2.0 * math.sqrt(2.0), 0.5 / math.sqrt(2.0)
    x = np.asarray(toy2d.eight_gaussians(KEY, N))
    # Standard error of each mean coordinate ~ sqrt(r^2/2 / n) = 0.016; of E||x||^2 ~ 0.016.
    np.testing.assert_allclose(x.mean(0), 0.0, atol=0.06)
    assert np.mean(np.sum(x**2, -1)) == pytest.approx(r**2 + 2 * s**2, abs=0.06)
    angles = np.arange(8) * np.pi / 4
    centres = r * np.stack([np.cos(angles), np.sin(angles)], -1)
    dist = np.linalg.norm(x[:, None] - centres[None], axis=-1)
    assert dist.min(1).max() < 6 * s  # every point belongs to some component
    counts = np.bincount(dist.argmin(1), minlength=8)
    np.testing.assert_allclose(counts / len(x), 1 / 8, atol=0.015)
    # Within-component spread matches std.
    assert np.sqrt(np.mean(dist.min(1) ** 2) / 2) == pytest.approx(s, rel=0.03)


def _parity_filled(x, side):
    cells = np.floor(np.asarray(x) / side).astype(int)
    return (cells.sum(-1) % 2) == 0


@pytest.mark.parametrize("num_squares,extent", [(2, 2.0), (8, 4.0), (18, 6.0)])
def test_checkerboard_support_and_equal_mass(num_squares, extent):
    n = N
    x = np.asarray(toy2d.checkerboard(KEY, n, num_squares=num_squares))
    assert np.all(np.abs(x) <= extent)
    assert np.all(_parity_filled(x, 2.0))
    cells = np.floor(x / 2.0).astype(int)
    _, counts = np.unique(cells, axis=0, return_counts=True)
    assert len(counts) == num_squares
    # Binomial std of each count is below sqrt(n / num_squares); allow 5 of them.
    np.testing.assert_allclose(counts, n / num_squares, atol=5 * np.sqrt(n / num_squares))
    # Uniform on a centred symmetric set: mean 0.
    np.testing.assert_allclose(x.mean(0), 0.0, atol=0.1)


def test_checkerboard_matches_ffjord_board_and_rejects_bad_sizes():
    x = np.asarray(toy2d.checkerboard(KEY, N))
    # FFJORD/torchcfm: x1 ~ U[-4, 4], and the filled cells are exactly where floor(x/2) sums even.
    assert x[:, 0].min() < -3.9 and x[:, 0].max() > 3.9
    assert not np.any(_parity_filled(x + np.array([2.0, 0.0]), 2.0))
    unit = np.asarray(toy2d.checkerboard(KEY, N, num_squares=8, square_size=1.0))
    assert np.all(np.abs(unit) <= 2.0) and np.all(_parity_filled(unit, 1.0))
    with pytest.raises(ValueError, match="2 b\\^2"):
        toy2d.checkerboard(KEY, 10, num_squares=5)


def test_two_moons_geometry_labels_and_mean():
    x, labels = toy2d.two_moons_with_labels(KEY, N, noise=0.0)
    x, labels = np.asarray(x), np.asarray(labels)
    assert set(np.unique(labels)) == {0, 1}
    assert labels.mean() == pytest.approx(0.5, abs=0.02)
    raw = x / 2.0 + np.array([0.5, 0.25])  # undo centring and scaling: sklearn coordinates
    upper, lower = raw[labels == 0], raw[labels == 1]
    np.testing.assert_allclose(np.linalg.norm(upper, axis=-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(lower - np.array([1.0, 0.5]), axis=-1), 1.0, atol=1e-5)
    assert np.all(upper[:, 1] >= -1e-6) and np.all(lower[:, 1] <= 0.5 + 1e-6)
    # Moon means in sklearn coordinates: (0, 2/pi) and (1, 1/2 - 2/pi).
    np.testing.assert_allclose(upper.mean(0), [0.0, 2 / np.pi], atol=0.03)
    np.testing.assert_allclose(lower.mean(0), [1.0, 0.5 - 2 / np.pi], atol=0.03)
    noisy = np.asarray(toy2d.two_moons(KEY, N))
    np.testing.assert_allclose(noisy.mean(0), 0.0, atol=0.04)
    # Same key, same labels and angles: the difference is the N(0, 0.1^2) noise scaled by 2.
    np.testing.assert_allclose((noisy - x).std(0), 0.2, rtol=0.03)


def test_gaussian_mixture_weights_means_and_stds():
    means = jnp.array([[-5.0, 0.0, 0.0], [5.0, 0.0, 0.0], [0.0, 10.0, 0.0]])
    stds = jnp.array([0.5, 1.0, 2.0])
    weights = jnp.array([0.2, 0.3, 0.5])
    x = np.asarray(toy2d.gaussian_mixture(KEY, N, means, stds, weights))
    assert x.shape == (N, 3)
    comp = np.argmin(np.linalg.norm(x[:, None] - np.asarray(means)[None], axis=-1), axis=1)
    np.testing.assert_allclose(np.bincount(comp) / len(x), weights, atol=0.015)
    for k in range(3):
        np.testing.assert_allclose(x[comp == k].mean(0), means[k], atol=0.1)
        np.testing.assert_allclose(x[comp == k][:, 2].std(), stds[k], rtol=0.05)
    scalar = np.asarray(toy2d.gaussian_mixture(KEY, N, means[:2], 0.5))
    np.testing.assert_allclose(np.abs(scalar[:, 0]).mean(), 5.0, atol=0.05)
    np.testing.assert_allclose(scalar[:, 1].std(), 0.5, rtol=0.05)


def test_circles_and_normal():
    x = np.asarray(toy2d.concentric_circles(KEY, N, radii=(1.0, 3.0), noise=0.0))
    radius = np.linalg.norm(x, axis=-1)
    inner = np.isclose(radius, 1.0, atol=1e-5)
    assert np.all(inner | np.isclose(radius, 3.0, atol=1e-5))
    assert inner.mean() == pytest.approx(0.5, abs=0.03)
    np.testing.assert_allclose(x.mean(0), 0.0, atol=0.06)
    z = np.asarray(toy2d.standard_normal(KEY, N, dim=3))
    np.testing.assert_allclose(np.cov(z.T), np.eye(3), atol=0.04)


def test_get_sampler_forwards_kwargs_and_rejects_unknown_names():
    a = toy2d.get_sampler("checkerboard", num_squares=18)(KEY, N)
    np.testing.assert_array_equal(a, toy2d.checkerboard(KEY, N, num_squares=18))
    assert toy2d.get_sampler("normal", dim=3)(KEY, N).shape == (N, 3)
    with pytest.raises(ValueError, match="valid names.*8gaussians"):
        toy2d.get_sampler("swissroll")


def test_train_and_test_sets_fixed_and_disjoint_draws():
    train = np.asarray(toy2d.train_set("8gaussians", N, seed=3))
    held_out = np.asarray(toy2d.test_set("8gaussians", N, seed=3))
    np.testing.assert_array_equal(held_out, toy2d.test_set("8gaussians", N, seed=3))
    np.testing.assert_array_equal(train, toy2d.train_set("8gaussians", N, seed=3))
    assert not set(map(tuple, train)) & set(map(tuple, held_out))  # no shared point
    assert not np.allclose(held_out, toy2d.test_set("8gaussians", N, seed=4))
    board = toy2d.test_set("checkerboard", N, seed=0, num_squares=2)
    assert np.all(np.abs(np.asarray(board)) <= 2.0)
