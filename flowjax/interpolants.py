"""Probability paths between noise x0 (t = 0) and data x1 (t = 1).

Every interpolant is a pure function ``(x0, x1, t) -> (x_t, dx_t/dt)`` with x0, x1 of shape
[B, ...] and t of shape [B]. The returned velocity is the conditional target of flow matching.
"""
from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp

Interpolant = Callable[[jax.Array, jax.Array, jax.Array], tuple[jax.Array, jax.Array]]


def _bcast(t: jax.Array, x: jax.Array) -> jax.Array:
    """Reshapes t [B] to [B, 1, ..., 1] so it broadcasts against x [B, ...]."""
    return jnp.reshape(t, t.shape + (1,) * (x.ndim - t.ndim)).astype(x.dtype)


def linear(x0: jax.Array, x1: jax.Array, t: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Straight line x_t = (1 - t) x0 + t x1, dx_t/dt = x1 - x0 (rectified flow; CFM with sigma = 0)."""
    tb = _bcast(t, x0)
    return (1.0 - tb) * x0 + tb * x1, x1 - x0


def gaussian_cfm(
    x0: jax.Array, x1: jax.Array, t: jax.Array, sigma_min: float = 1e-4
) -> tuple[jax.Array, jax.Array]:
    """Gaussian CFM path of Lipman et al. (2023), Eq. 20-23, in the t = 0 noise convention.

    x_t = (1 - (1 - sigma_min) t) x0 + t x1, so p_1 = N(x1, sigma_min^2 I);
    dx_t/dt = x1 - (1 - sigma_min) x0. ``sigma_min = 0`` is `linear`.
    """
    tb = _bcast(t, x0)
    return (1.0 - (1.0 - sigma_min) * tb) * x0 + tb * x1, x1 - (1.0 - sigma_min) * x0


def vp_cosine(x0: jax.Array, x1: jax.Array, t: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Variance-preserving cosine path: x_t = sin(pi t / 2) x1 + cos(pi t / 2) x0.

    alpha_t^2 + sigma_t^2 = 1 for all t; dx_t/dt = (pi / 2) (cos(pi t / 2) x1 - sin(pi t / 2) x0).
    """
    a = 0.5 * jnp.pi * _bcast(t, x0)
    return jnp.sin(a) * x1 + jnp.cos(a) * x0, 0.5 * jnp.pi * (jnp.cos(a) * x1 - jnp.sin(a) * x0)


NAMES = ("linear", "gaussian_cfm", "vp_cosine")


def get(name: str, sigma_min: float = 1e-4) -> Interpolant:
    """The interpolant called ``name`` (config field ``loss.interpolant``)."""
    if name == "linear":
        return linear
    if name == "gaussian_cfm":
        return functools.partial(gaussian_cfm, sigma_min=sigma_min)
    if name == "vp_cosine":
        return vp_cosine
    raise ValueError(f"Unknown interpolant {name!r}; choose one of {NAMES} (config field loss.interpolant).")
