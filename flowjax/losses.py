"""Pure flow-matching and diffusion losses, and time samplers.

The model has the call shape ``apply_fn(params, x, t) -> output`` with t of shape [B]: a velocity
for `flow_matching_loss`, a noise prediction for `epsilon_loss` (DDPM's simple loss). `edm_loss`
instead takes EDM's preconditioned denoiser ``D(params, x, sigma)`` (`flowjax.edm.denoiser`).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from flowjax import edm, interpolants

TimeSampler = Callable[[jax.Array, int], jax.Array]


def uniform_time(key: jax.Array, n: int) -> jax.Array:
    """t ~ U[0, 1], shape [n]."""
    return jax.random.uniform(key, (n,))


def logit_normal_time(key: jax.Array, n: int, mean: float = 0.0, std: float = 1.0) -> jax.Array:
    """t = sigmoid(u), u ~ N(mean, std^2) (Esser et al. 2024), shape [n]."""
    return jax.nn.sigmoid(mean + std * jax.random.normal(key, (n,)))


def zero_time(key: jax.Array, n: int) -> jax.Array:
    """t = 0 for every example, shape [n]: trained on stored pairs (x0, x1) of a flow, the velocity at t = 0
    learns x1 - x0, so one Euler step from x0 reproduces x1. This is rectified flow's one-step distillation
    (Liu et al. 2023, Sec. 2.3) with the L2 loss; the paper's LPIPS loss is not implemented."""
    del key
    return jnp.zeros((n,))


TIME_SAMPLERS = ("uniform", "logit_normal", "zero")


def get_time_sampler(name: str, mean: float = 0.0, std: float = 1.0) -> TimeSampler:
    """The time sampler called ``name`` (config field ``loss.time_sampler``)."""
    if name == "uniform":
        return uniform_time
    if name == "logit_normal":
        return lambda key, n: logit_normal_time(key, n, mean, std)
    if name == "zero":
        return zero_time
    raise ValueError(f"Unknown time sampler {name!r}; choose one of {TIME_SAMPLERS} (config field loss.time_sampler).")


def flow_matching_loss(
    apply_fn: Callable[..., jax.Array],
    params: Any,
    x0: jax.Array,
    x1: jax.Array,
    t: jax.Array,
    *,
    interpolant: interpolants.Interpolant = interpolants.linear,
    sigma: float = 0.0,
    noise: jax.Array | None = None,
    weight_fn: Callable[[jax.Array], jax.Array] | None = None,
) -> jax.Array:
    """Conditional flow matching: E_t w(t) ||v_theta(x_t, t) - dx_t/dt||^2, mean over features.

    x0 (noise) and x1 (data) are already paired by a coupling. ``sigma > 0`` perturbs x_t by
    ``sigma * noise`` with the target unchanged (I-CFM of Tong et al. 2024, Eq. 15; LOOM-CFM uses
    sigma = 1e-7); ``noise`` must then be given, drawn by the caller from its key.
    ``weight_fn(t) -> [B]`` optionally reweights the time steps.
    """
    if x0.shape != x1.shape:
        raise ValueError(f"noise x0 {x0.shape} and data x1 {x1.shape} must have the same shape.")
    xt, target = interpolant(x0, x1, t)
    if sigma > 0.0:
        if noise is None:
            raise ValueError("flow_matching_loss with sigma > 0 needs `noise` (standard normal, shape of x0).")
        xt = xt + sigma * noise
    err = jnp.mean(jnp.square(apply_fn(params, xt, t) - target).reshape(x0.shape[0], -1), axis=1)
    if weight_fn is not None:
        err = err * weight_fn(t)
    return jnp.mean(err)


def epsilon_loss(
    apply_fn: Callable[..., jax.Array],
    params: Any,
    x0: jax.Array,
    x1: jax.Array,
    t: jax.Array,
    *,
    schedule: interpolants.Schedule,
    weight_fn: Callable[[jax.Array], jax.Array] | None = None,
) -> jax.Array:
    """DDPM's simple loss (Ho et al. 2020, Eq. 14): E_t w(t) ||eps_theta(x_t, t) - x0||^2, mean over features.

    x_t = alpha(t) x1 + sigma(t) x0 with (alpha, sigma) = ``schedule``; the noise x0 is the
    target and is already paired with the data x1 by a coupling, so every coupling applies to
    diffusion models too (DANSM, Sec. 5 Table 4). t is in flowjax's convention (t = 0 noise): with
    ``interpolants.schedule("vp_linear")`` DDPM's step k is t = (999 - k) / 1000.
    Per-example means over features are averaged over the batch, as in `flow_matching_loss`;
    ``weight_fn(t) -> [B]`` optionally reweights the time steps.
    """
    if x0.shape != x1.shape:
        raise ValueError(f"noise x0 {x0.shape} and data x1 {x1.shape} must have the same shape.")
    if t.shape != x0.shape[:1]:
        raise ValueError(f"t {t.shape} must have shape [B] = {x0.shape[:1]} (one time per example).")
    t = jnp.asarray(t, x0.dtype)
    bcast = lambda c: jnp.reshape(c, c.shape + (1,) * (x0.ndim - 1))
    xt = bcast(schedule.alpha(t)) * x1 + bcast(schedule.sigma(t)) * x0
    err = jnp.mean(jnp.square(apply_fn(params, xt, t) - x0).reshape(x0.shape[0], -1), axis=1)
    if weight_fn is not None:
        err = err * weight_fn(t)
    return jnp.mean(err)


def edm_loss(
    denoise_fn: Callable[..., jax.Array],
    params: Any,
    x0: jax.Array,
    x1: jax.Array,
    sigma: jax.Array,
    *,
    sigma_data: float,
    weight: bool = True,
) -> jax.Array:
    """EDM's denoising loss: E lambda(sigma) ||D(x1 + sigma x0, sigma) - x1||^2, mean over features.

    The loss of Karras et al. (2022), Eq. 2, weighted by lambda(sigma) over the noise levels (Eq. 8).

    ``denoise_fn(params, x, sigma [B]) -> x1_hat`` is the preconditioned denoiser of `edm.denoiser`
    (bind labels or rngs with a lambda). x0 is standard normal noise already paired with the data x1
    by a coupling, so the VE sample is x = x1 + sigma x0; sigma [B] comes from `edm.sample_sigma`.
    lambda = `edm.loss_weight` (sigma_data) with ``weight=True``, 1 otherwise. Per-example means over
    features are averaged over the batch, as in `flow_matching_loss`; EDM's code sums over features
    (training/loss.py, ``EDMLoss``), which a config gets with ``loss.feature_reduction = "sum"``.
    """
    if x0.shape != x1.shape:
        raise ValueError(f"noise x0 {x0.shape} and data x1 {x1.shape} must have the same shape.")
    sigma = jnp.asarray(sigma)
    if sigma.shape != x0.shape[:1]:
        raise ValueError(f"sigma {sigma.shape} must have shape [B] = {x0.shape[:1]} (one noise level per example).")
    sigma = sigma.astype(x1.dtype)
    x = x1 + jnp.reshape(sigma, sigma.shape + (1,) * (x1.ndim - 1)) * x0
    err = jnp.mean(jnp.square(denoise_fn(params, x, sigma) - x1).reshape(x1.shape[0], -1), axis=1)
    if weight:
        err = err * edm.loss_weight(sigma, sigma_data)
    return jnp.mean(err)
