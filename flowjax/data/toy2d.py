"""Toy 2-D (and low-dimensional) target distributions as pure samplers ``sampler(key, n) -> [n, d]``.

Scales follow the common FFJORD / torchcfm toys so results are comparable:

- ``eight_gaussians``: centres on a circle of radius 2√2 ≈ 2.83 at angles kπ/4, std 0.5/√2 ≈ 0.354
  (FFJORD's scale 4 and std 0.5, both divided by √2 as FFJORD does).
- ``two_moons``: sklearn ``make_moons`` geometry (unit half-circles), centred at its mean
  (0.5, 0.25) and scaled by 2 (FFJORD's factor), noise std 0.1 before scaling (FFJORD's).
- ``checkerboard``: unit-parity checkerboard of the rectified-flow theory paper (filled cells
  [i, i+1] × [j, j+1] with i + j even, 2b² squares), with cells of side 2: the 8-square board
  is FFJORD's/torchcfm's on [-4, 4]².
- ``concentric_circles``: two rings of radii 1.5 and 3, equal mass, isotropic Gaussian noise (std 0.05).
- ``gaussian_mixture``, ``standard_normal``: general mixtures / the N(0, I) source.
- ``two_gaussians_128``: the 128-D two-Gaussian toy of Lines Matching Models' Table 1 (`two_gaussians`).
- ``two_modes`` and its source ``wide_normal``: the 2-D toy of the curvature paper's released code (Figs. 1, 2
  and 4; the paper does not describe it): N((-8, 8), diag(3, 0.1)) and N((8, 8), diag(3, 0.1)) with equal
  weights, from the "wide prior" N(0, diag(36, 1)) (`WIDE_PRIOR_STD`).

Every draw takes an explicit ``jax.random`` key; the samplers are jitted (``n`` and shape
arguments static). `train_set` / `test_set` give fixed data sets from an integer seed, with
different keys for the two.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

Sampler = Callable[[jax.Array, int], jax.Array]


@functools.partial(jax.jit, static_argnames=("n", "dim"))
def standard_normal(key: jax.Array, n: int, dim: int = 2) -> jax.Array:
    """[n, dim] draws from N(0, I) (the noise source at t = 0)."""
    return jax.random.normal(key, (n, dim))


@functools.partial(jax.jit, static_argnames="n")
def gaussian_mixture(
    key: jax.Array,
    n: int,
    means: jax.Array,
    stds: jax.Array | float,
    weights: jax.Array | None = None,
) -> jax.Array:
    """[n, d] draws from Σ_k π_k N(means[k], stds[k]² I).

    Args:
      means: [K, d] component means.
      stds: [K] per-component isotropic stds, or a scalar shared by all components.
      weights: [K] mixture weights (normalised here); uniform when None.
    """
    means = jnp.asarray(means)
    num_components, dim = means.shape
    stds = jnp.broadcast_to(jnp.asarray(stds, dtype=means.dtype), (num_components,))
    logits = jnp.zeros(num_components) if weights is None else jnp.log(jnp.asarray(weights))
    key_comp, key_noise = jax.random.split(key)
    comp = jax.random.categorical(key_comp, logits, shape=(n,))
    return means[comp] + stds[comp, None] * jax.random.normal(key_noise, (n, dim))


@functools.partial(jax.jit, static_argnames="n")
def eight_gaussians(
    key: jax.Array, n: int, scale: float = 2.0 * math.sqrt(2.0), std: float = 0.5 / math.sqrt(2.0)
) -> jax.Array:
    """[n, 2] draws from 8 equal-weight Gaussians with centres scale·(cos kπ/4, sin kπ/4), std `std`."""
    angles = jnp.arange(8) * (jnp.pi / 4)
    means = scale * jnp.stack([jnp.cos(angles), jnp.sin(angles)], axis=-1)
    return gaussian_mixture(key, n, means, std)


@functools.partial(jax.jit, static_argnames="n")
def two_moons_with_labels(key: jax.Array, n: int, noise: float = 0.1) -> tuple[jax.Array, jax.Array]:
    """[n, 2] two-moons points and their [n] int32 moon labels (0 upper, 1 lower), each moon w.p. 1/2.

    Geometry of sklearn's ``make_moons``: upper moon (cos θ, sin θ), lower moon
    (1 − cos θ, 0.5 − sin θ), θ ~ U[0, π]; Gaussian noise of std `noise`; then centred at the
    mixture mean (0.5, 0.25) and scaled by 2.
    """
    key_label, key_theta, key_noise = jax.random.split(key, 3)
    labels = jax.random.bernoulli(key_label, 0.5, (n,)).astype(jnp.int32)
    theta = jax.random.uniform(key_theta, (n,), maxval=jnp.pi)
    upper = jnp.stack([jnp.cos(theta), jnp.sin(theta)], axis=-1)
    lower = jnp.stack([1.0 - jnp.cos(theta), 0.5 - jnp.sin(theta)], axis=-1)
    points = jnp.where(labels[:, None] == 0, upper, lower)
    points = points + noise * jax.random.normal(key_noise, (n, 2))
    return 2.0 * (points - jnp.array([0.5, 0.25])), labels


def two_moons(key: jax.Array, n: int, noise: float = 0.1) -> jax.Array:
    """[n, 2] two-moons points (see `two_moons_with_labels` for the geometry)."""
    return two_moons_with_labels(key, n, noise)[0]


@functools.partial(jax.jit, static_argnames=("n", "num_squares"))
def checkerboard(key: jax.Array, n: int, num_squares: int = 8, square_size: float = 2.0) -> jax.Array:
    """[n, 2] uniform draws on the filled squares of a k × k checkerboard centred at 0.

    The cells are [i s, (i + 1) s] × [j s, (j + 1) s] for i, j ∈ {−k/2, …, k/2 − 1} and side
    s = `square_size`; the filled ones have i + j even, half of the k² cells, each with equal
    mass. ``num_squares`` = k²/2 must be 2b² (2, 8, 18, ...: grids 2×2, 4×4, 6×6). With the
    default s = 2, 8 squares is FFJORD's/torchcfm's board on [-4, 4]²; s = 1 is the
    rectified-flow theory paper's board on [-b, b]².
    """
    half = math.isqrt(num_squares // 2)
    if num_squares < 2 or 2 * half * half != num_squares:
        raise ValueError(f"checkerboard num_squares must be 2 b^2 (2, 8, 18, 32, ...), got {num_squares}.")
    cells = np.arange(-half, half)
    ii, jj = np.meshgrid(cells, cells, indexing="ij")
    filled = np.stack([ii.ravel(), jj.ravel()], axis=-1)
    filled = jnp.asarray(filled[(filled.sum(axis=-1) % 2) == 0], dtype=jnp.float32)
    key_cell, key_offset = jax.random.split(key)
    cell = jax.random.randint(key_cell, (n,), 0, num_squares)
    offset = jax.random.uniform(key_offset, (n, 2))
    return square_size * (filled[cell] + offset)


@functools.partial(jax.jit, static_argnames="n")
def concentric_circles(key: jax.Array, n: int, radii: Sequence[float] = (1.5, 3.0), noise: float = 0.05) -> jax.Array:
    """[n, 2] points on concentric circles (equal mass per circle, uniform angle) plus N(0, noise²I)."""
    radii = jnp.asarray(radii, dtype=jnp.float32)
    key_ring, key_angle, key_noise = jax.random.split(key, 3)
    radius = radii[jax.random.randint(key_ring, (n,), 0, radii.shape[0])]
    angle = jax.random.uniform(key_angle, (n,), maxval=2.0 * jnp.pi)
    points = radius[:, None] * jnp.stack([jnp.cos(angle), jnp.sin(angle)], axis=-1)
    return points + noise * jax.random.normal(key_noise, (n, 2))


@functools.partial(jax.jit, static_argnames=("n", "dim"))
def two_gaussians(key: jax.Array, n: int, dim: int = 128) -> jax.Array:
    """[n, dim] draws of the toy of "Generative Lines Matching Models" (Table 1): two equally likely Gaussians with
    means (-1, -1, 0, ...) and (1, 1, 0, ...), std 0.1 in the first two dimensions and 1 in the other dim - 2 (the
    paper prints the stds as "(0,1,0.1,1)"; read as (0.1, 0.1, 1, ...))."""
    k_side, k_noise = jax.random.split(key)
    side = jnp.where(jax.random.bernoulli(k_side, 0.5, (n, 1)), 1.0, -1.0)
    std = jnp.concatenate([jnp.full((2,), 0.1), jnp.ones((dim - 2,))])
    mean = jnp.concatenate([jnp.ones((2,)), jnp.zeros((dim - 2,))])
    return side * mean + std * jax.random.normal(k_noise, (n, dim))


WIDE_PRIOR_STD = (6.0, 1.0)  # the curvature paper code's "wide prior" N(0, diag(36, 1)) (its default)


@functools.partial(jax.jit, static_argnames="n")
def wide_normal(key: jax.Array, n: int) -> jax.Array:
    """[n, 2] draws from N(0, diag(36, 1)), the curvature paper code's noise for its 2-D toy."""
    return jax.random.normal(key, (n, 2)) * jnp.asarray(WIDE_PRIOR_STD)


@functools.partial(jax.jit, static_argnames="n")
def two_modes(key: jax.Array, n: int) -> jax.Array:
    """[n, 2] draws of the curvature paper code's 2-D toy: N((-8, 8), diag(3, 0.1)) and N((8, 8), diag(3, 0.1)),
    equally likely (a mixed batch; the code alternates batches of one mode)."""
    k_side, k_noise = jax.random.split(key)
    side = jnp.where(jax.random.bernoulli(k_side, 0.5, (n,)), 8.0, -8.0)
    mean = jnp.stack([side, jnp.full((n,), 8.0)], axis=1)
    return mean + jnp.sqrt(jnp.asarray([3.0, 0.1])) * jax.random.normal(k_noise, (n, 2))


SAMPLERS: dict[str, Callable[..., jax.Array]] = {
    "two_gaussians_128": two_gaussians,
    "8gaussians": eight_gaussians,
    "moons": two_moons,
    "checkerboard": checkerboard,
    "gaussian_mixture": gaussian_mixture,
    "circles": concentric_circles,
    "normal": standard_normal,
    "two_modes": two_modes,
    "wide_normal": wide_normal,
}

# The toy sources that are Gaussians N(0, diag s^2): their per-dimension s (a learned coupling's prior needs it).
GAUSSIAN_SOURCES = {"normal": 1.0, "wide_normal": WIDE_PRIOR_STD}


def get_sampler(name: str, **kwargs) -> Sampler:
    """The sampler ``(key, n) -> [n, d]`` called `name`, with `kwargs` bound (e.g. num_squares=18)."""
    if name not in SAMPLERS:
        raise ValueError(f"Unknown toy data set {name!r}; valid names: {sorted(SAMPLERS)}.")
    return functools.partial(SAMPLERS[name], **kwargs)


def config_kwargs(name: str, data_cfg) -> dict:
    """The sampler options of toy `name` that the data config sets (checkerboard: num_squares, square_size)."""
    fields = ("num_squares", "square_size") if name == "checkerboard" else ()
    return {f: data_cfg[f] for f in fields if f in data_cfg}  # absent (an older recorded config): the defaults


def train_set(name: str, n: int, seed: int = 0, **kwargs) -> jax.Array:
    """A fixed [n, d] training set: `name` sampled with key ``fold_in(PRNGKey(seed), 0)``."""
    return get_sampler(name, **kwargs)(jax.random.fold_in(jax.random.PRNGKey(seed), 0), n)


def test_set(name: str, n: int, seed: int = 0, **kwargs) -> jax.Array:
    """A fixed [n, d] held-out set: key ``fold_in(PRNGKey(seed), 1)``, never the training key."""
    return get_sampler(name, **kwargs)(jax.random.fold_in(jax.random.PRNGKey(seed), 1), n)
