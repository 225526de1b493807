"""What a coupling does to the straight lines of flow matching, measured on held-out pairs ("Minimizing Trajectory
Curvature of ODE-based Generative Models", Lee, Kim & Ye 2023, Sec. 3.2 and 5).

- ``intersection_bound``: the flow-matching loss of a trained velocity on pairs (x0, x1) drawn from a coupling q,
  the right side of Prop. 1 (Eq. 8), which bounds the degree of intersection I(q) of Eq. 7 and equals it at the
  optimal velocity. The paper's Eq. 8 weighs the x-prediction error by 1/t^2, which is exactly the velocity error
  (App. A.1); per dimension, with ``num_t`` draws of t per pair, as the released code estimates it for Fig. 4.
- ``reconstruction_error``: the data x1 against the ODE's solution from the noise the coupling paired with it (the
  encoder's "reconstruction", Fig. 8's rFID, here as a per-dimension squared error).
- ``norm_stats``: mean and standard deviation of the whitened noise norms ||x0 / s||, for Fig. 8's histogram of
  ||z|| under q_phi(z) against the prior's (N(0, I_D): about sqrt(D)).

Pairs use flowjax's convention (x0 noise at t = 0, x1 data at t = 1); the paper's t runs the other way, which
changes neither quantity.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

VelocityFn = Callable[[jax.Array, jax.Array], jax.Array]


def intersection_bound(velocity_fn: VelocityFn, x0: jax.Array, x1: jax.Array, key: jax.Array, num_t: int = 10):
    """E_{t, (x0, x1)} mean_d (v(x_t, t) - (x1 - x0))^2 on the linear path x_t = (1 - t) x0 + t x1, t ~ U[0, 1)
    drawn ``num_t`` times per pair: Eq. 8's bound of I(q) per dimension (0 only for a coupling whose lines never
    cross, learned exactly)."""

    def one(k):
        t = jax.random.uniform(k, (x1.shape[0],), x1.dtype)
        tb = t.reshape((-1,) + (1,) * (x1.ndim - 1))
        err = velocity_fn((1.0 - tb) * x0 + tb * x1, t) - (x1 - x0)
        return jnp.mean(jnp.square(err))

    return jnp.mean(jax.lax.map(one, jax.random.split(key, num_t)))


def reconstruction_error(solve: Callable[[jax.Array], jax.Array], x0: jax.Array, x1: jax.Array) -> jax.Array:
    """mean_d (solve(x0) - x1)^2: how far the ODE takes the noise that the coupling paired with x1 from x1."""
    return jnp.mean(jnp.square(solve(x0) - x1))


def norm_stats(x0: jax.Array, prior_std: Any = 1.0) -> tuple[jax.Array, jax.Array]:
    """(mean, std) over the batch of ||x0 / s||, the norm in the prior's whitened coordinates (N(0, I_D): near
    sqrt(D - 1/2))."""
    norms = jnp.sqrt(jnp.sum(jnp.square(x0 / jnp.asarray(prior_std, x0.dtype)).reshape(x0.shape[0], -1), axis=1))
    return jnp.mean(norms), jnp.std(norms)
