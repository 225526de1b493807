"""Probability paths between noise x0 (t = 0) and data x1 (t = 1).

Every interpolant is a pure function ``(x0, x1, t) -> (x_t, dx_t/dt)`` with x0, x1 of shape
[B, ...] and t of shape [B]. The returned velocity is the conditional target of flow matching.

Every path here is x_t = alpha(t) x1 + sigma(t) x0; `schedule(name)` gives its coefficients as a
`Schedule`, which the epsilon loss, the prediction conversions and the DDIM sampler need.
`coefficients` differentiates a schedule with ``jax.jvp``, so no derivative is written by hand twice.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

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


def gaussian_cfm(x0: jax.Array, x1: jax.Array, t: jax.Array, sigma_min: float = 1e-4) -> tuple[jax.Array, jax.Array]:
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


class Schedule(NamedTuple):
    """Coefficients of a path x_t = alpha(t) x1 + sigma(t) x0, each an elementwise map of an array of t."""

    alpha: Callable[[jax.Array], jax.Array]
    sigma: Callable[[jax.Array], jax.Array]


def coefficients(sched: Schedule, t: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """(alpha(t), sigma(t), alpha'(t), sigma'(t)), each of t's shape; derivatives by ``jax.jvp``.

    An integer t is promoted to JAX's default float dtype.
    """
    t = jnp.asarray(t)
    if not jnp.issubdtype(t.dtype, jnp.floating):
        t = t.astype(jnp.result_type(float))
    ones = jnp.ones_like(t)
    alpha, dalpha = jax.jvp(sched.alpha, (t,), (ones,))
    sigma, dsigma = jax.jvp(sched.sigma, (t,), (ones,))
    return alpha, sigma, dalpha, dsigma


# Continuous VP SDE of Song et al. (2021, Eq. 11): beta(s) = BETA_MIN + (BETA_MAX - BETA_MIN) s on
# s in [0, 1], the limit of DDPM's betas linspace(1e-4, 0.02, 1000): beta_i = beta((i - 1) / 999) / 1000.
BETA_MIN = 0.1
BETA_MAX = 20.0


def _vp_linear_log_alpha_bar(t: jax.Array) -> jax.Array:
    """log alpha_bar(s) = -(BETA_MIN s + (BETA_MAX - BETA_MIN) s^2 / 2) with s = 1 - t."""
    s = 1.0 - t
    return -(BETA_MIN * s + 0.5 * (BETA_MAX - BETA_MIN) * jnp.square(s))


def _vp_linear_alpha(t: jax.Array) -> jax.Array:
    return jnp.exp(0.5 * _vp_linear_log_alpha_bar(t))


def _vp_linear_sigma(t: jax.Array) -> jax.Array:
    """sqrt(1 - alpha_bar), with expm1 for accuracy near t = 1.

    Clipped at 0: a grid time that rounding puts just above 1 (XLA may fuse the 1 - t of a
    computed time into an FMA) would otherwise give a tiny negative 1 - alpha_bar and a NaN.
    """
    return jnp.sqrt(jnp.maximum(-jnp.expm1(_vp_linear_log_alpha_bar(t)), 0.0))


VP_LINEAR = Schedule(_vp_linear_alpha, _vp_linear_sigma)


def vp_linear(x0: jax.Array, x1: jax.Array, t: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Variance-preserving path of DDPM's linear beta schedule (Ho et al. 2020) in continuous time.

    This is the VP SDE of Song et al. (2021, Eq. 11) with beta_min = 0.1, beta_max = 20, run from
    the data: with s = 1 - t the diffusion time, alpha_bar(s) = exp(-(beta_min s +
    (beta_max - beta_min) s^2 / 2)), x_t = sqrt(alpha_bar(s)) x1 + sqrt(1 - alpha_bar(s)) x0, so
    alpha^2 + sigma^2 = 1, x_1 = x1 and alpha(0) = exp(-5.025) ~ 0.0066 (t = 0 is nearly pure noise).
    dx_t/dt comes from ``jax.jvp`` of the coefficients.

    DDPM's discrete step k in [0, 999] (k = 999 noise; betas linspace(1e-4, 0.02, 1000),
    alpha_bar_k = prod_{i <= k} (1 - beta_i)) is diffusion time s = (k + 1) / 1000, that is
    t = (999 - k) / 1000 here (k = 999 -> t = 0, k = 0 -> t = 0.999; t = 1 is the clean data
    DDIM's last step lands on), and k = 999 - 1000 t back. The continuous alpha_bar keeps only the
    first-order term of log(1 - beta_i) = -beta_i - beta_i^2 / 2 - ..., so it exceeds DDPM's by about
    exp(sum_{i <= k} beta_i^2 / 2) - 1: at most 4 % where alpha_bar > 1e-3, 7 % at k = 999.

    sigma(t) ~ sqrt(beta_min (1 - t)) near t = 1, so sigma'(t) and the velocity are infinite at
    t = 1 exactly (t must be <= 1); uniform time samplers draw t in [0, 1) and the fixed-step
    solvers never evaluate at t1.
    """
    t = jnp.asarray(t, x0.dtype)
    alpha, sigma, dalpha, dsigma = (_bcast(c, x0) for c in coefficients(VP_LINEAR, t))
    return alpha * x1 + sigma * x0, dalpha * x1 + dsigma * x0


NAMES = ("linear", "gaussian_cfm", "vp_cosine", "vp_linear")


def _unknown(name: str) -> ValueError:
    return ValueError(f"Unknown interpolant {name!r}; choose one of {NAMES} (config field loss.interpolant).")


def get(name: str, sigma_min: float = 1e-4) -> Interpolant:
    """The interpolant called ``name`` (config field ``loss.interpolant``)."""
    if name == "linear":
        return linear
    if name == "gaussian_cfm":
        return functools.partial(gaussian_cfm, sigma_min=sigma_min)
    if name == "vp_cosine":
        return vp_cosine
    if name == "vp_linear":
        return vp_linear
    raise _unknown(name)


def schedule(name: str, sigma_min: float = 1e-4) -> Schedule:
    """The coefficients (alpha, sigma) of the interpolant ``get(name, sigma_min)`` (``loss.interpolant``).

    linear: (t, 1 - t); gaussian_cfm: (t, 1 - (1 - sigma_min) t); vp_cosine: (sin(pi t / 2),
    cos(pi t / 2)); vp_linear: `VP_LINEAR`.
    """
    if name == "linear":
        return Schedule(lambda t: t, lambda t: 1.0 - t)
    if name == "gaussian_cfm":
        return Schedule(lambda t: t, lambda t: 1.0 - (1.0 - sigma_min) * t)
    if name == "vp_cosine":
        return Schedule(lambda t: jnp.sin(0.5 * jnp.pi * t), lambda t: jnp.cos(0.5 * jnp.pi * t))
    if name == "vp_linear":
        return VP_LINEAR
    raise _unknown(name)
