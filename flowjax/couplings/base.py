"""What every coupling shares: the call shape, the independent coupling, and logging info.

A coupling is a pure function ``couple(key, x1, x0, state) -> (x0_paired, x1, state, info)``:
it pairs a minibatch of data x1 [B, ...] with noise x0 [B, ...]. Stateless couplings take and
return ``state=None``. ``info`` is a dict of scalars for logging.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

Couple = Callable[[jax.Array, jax.Array, jax.Array, Any], tuple[jax.Array, jax.Array, Any, dict]]


def mean_sq_path_length(x0: jax.Array, x1: jax.Array) -> jax.Array:
    """Mean over pairs of ||x1 - x0||^2: the transport cost of the pairing."""
    return jnp.mean(jnp.sum(jnp.square(x1 - x0).reshape(x0.shape[0], -1), axis=1))


def pairing_info(x0: jax.Array, x1: jax.Array, x0_paired: jax.Array, x1_paired: jax.Array) -> dict:
    """Transport cost of the minibatch before and after the coupling re-paired it."""
    return {
        "coupling/cost_before": mean_sq_path_length(x0, x1),
        "coupling/cost_after": mean_sq_path_length(x0_paired, x1_paired),
    }


def check_shapes(x1: jax.Array, x0: jax.Array) -> None:
    if x1.shape != x0.shape:
        raise ValueError(f"coupling needs data x1 and noise x0 of the same shape, got {x1.shape} and {x0.shape}.")


def independent(key: jax.Array, x1: jax.Array, x0: jax.Array, state: Any = None):
    """The independent coupling (I-CFM / rectified flow): pairs are left as drawn."""
    del key
    check_shapes(x1, x0)
    return x0, x1, state, pairing_info(x0, x1, x0, x1)
