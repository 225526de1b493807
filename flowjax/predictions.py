"""What a network predicts, converted to what samplers need, on a path x_t = alpha(t) x1 + sigma(t) x0.

``prediction`` names the network's output. A config decides it through ``loss.name``
(`flowjax.train.PREDICTION`: ``flow_matching`` -> ``"velocity"``, ``epsilon`` -> ``"epsilon"``):

- ``"velocity"``: dx_t/dt (flow matching; `losses.flow_matching_loss`).
- ``"epsilon"``: the noise x0 (DDPM, Ho et al. 2020, Eq. 14; `losses.epsilon_loss`). Then
  x1_hat = (x - sigma eps_hat) / alpha, the x_0-prediction inside DDIM's update (Song, Meng &
  Ermon 2021, Eq. 12), and the velocity of the path is v = alpha' x1_hat + sigma' eps_hat: the
  deterministic (probability-flow) ODE of the diffusion model in flowjax's time direction.

`denoise` inverts any velocity field back to (x1_hat, x0_hat), which is what `integrators.ddim`
steps with. Derivatives alpha', sigma' come from `interpolants.coefficients` (``jax.jvp``).
All functions are pure and jittable; t has shape [B] (or is a scalar) and x shape [B, ...].
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from flowjax import interpolants

ModelFn = Callable[[jax.Array, jax.Array], jax.Array]

PREDICTIONS = ("velocity", "epsilon")


def _coefficients(sched: interpolants.Schedule, t: jax.Array, x: jax.Array) -> tuple[jax.Array, ...]:
    """(alpha, sigma, alpha', sigma') at t, in x's dtype, shaped to broadcast against x [B, ...]."""
    t = jnp.asarray(t, x.dtype)
    return tuple(jnp.reshape(c, c.shape + (1,) * (x.ndim - c.ndim)) for c in interpolants.coefficients(sched, t))


def to_velocity(model_fn: ModelFn, prediction: str, schedule: interpolants.Schedule) -> ModelFn:
    """The velocity field ``(x, t) -> v`` of a network ``model_fn(x, t)`` that predicts ``prediction``.

    "velocity": ``model_fn`` itself. "epsilon": v = alpha'(t) x1_hat + sigma'(t) eps_hat with
    x1_hat = (x - sigma(t) eps_hat) / alpha(t); undefined where alpha(t) = 0 (t = 0 on linear,
    gaussian_cfm and vp_cosine: pure noise says nothing about x1), so sample those from t0 > 0;
    vp_linear has alpha(0) ~ 0.0066 > 0 and vp_linear's sigma'(1) is infinite (see `interpolants.vp_linear`).
    ValueError for an unknown ``prediction``.
    """
    if prediction == "velocity":
        return model_fn
    if prediction == "epsilon":

        def velocity(x: jax.Array, t: jax.Array) -> jax.Array:
            eps = model_fn(x, t)
            alpha, sigma, dalpha, dsigma = _coefficients(schedule, t, x)
            return dalpha * (x - sigma * eps) / alpha + dsigma * eps

        return velocity
    raise ValueError(
        f"Unknown prediction {prediction!r}; choose one of {PREDICTIONS} (a config chooses it through "
        "loss.name: flow_matching predicts the velocity, epsilon the noise)."
    )


def bind(velocity_fn: Callable, params, labels=None) -> ModelFn:
    """``(x, t) -> v`` of a model's ``velocity_fn(params, x, t[, labels])``, what the integrators take. The
    labels (class indices [B] of a conditional model) are passed only when given, so an unconditional
    ``velocity_fn(params, x, t)`` works unchanged."""
    if labels is None:
        return lambda x, t: velocity_fn(params, x, t)
    return lambda x, t: velocity_fn(params, x, t, labels)


def denoise(
    velocity_fn: ModelFn, schedule: interpolants.Schedule
) -> Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array]]:
    """``(x, t) -> (x1_hat, x0_hat)``: the data and noise predictions behind a velocity field.

    Solves x = alpha x1 + sigma x0, v = alpha' x1 + sigma' x0 (v = velocity_fn(x, t)) by Cramer's
    rule with determinant D = alpha sigma' - sigma alpha' = alpha^2 d(sigma / alpha)/dt:
    x1_hat = (sigma' x - sigma v) / D, x0_hat = (alpha v - alpha' x) / D. The system is singular
    where the noise-to-signal ratio sigma / alpha is stationary (D = 0) and where a coefficient
    derivative is infinite (vp_linear at t = 1). D = -1 for linear and gaussian_cfm, -pi/2 for
    vp_cosine and -beta(1 - t) alpha / (2 sigma) for vp_linear, so all are regular on t in [0, 1).
    """

    def fn(x: jax.Array, t: jax.Array) -> tuple[jax.Array, jax.Array]:
        v = velocity_fn(x, t)
        alpha, sigma, dalpha, dsigma = _coefficients(schedule, t, x)
        det = alpha * dsigma - sigma * dalpha
        return (dsigma * x - sigma * v) / det, (alpha * v - dalpha * x) / det

    return fn
