"""What every coupling shares: the call shape, the independent coupling, and logging info.

A coupling is a pure function ``couple(key, x0, x1, state) -> (x0_paired, x1, state, info)``:
it pairs a minibatch of noise x0 [B, ...] with data x1 [B, ...]; noise comes first in and out,
as in the interpolants' ``(x0, x1, t)``. Stateless couplings take and
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


def independent(key: jax.Array, x0: jax.Array, x1: jax.Array, state: Any = None):
    """The independent coupling (I-CFM / rectified flow): pairs are left as drawn."""
    del key
    check_shapes(x1, x0)
    return x0, x1, state, pairing_info(x0, x1, x0, x1)


def with_scope(couple: Couple, scope: str, axis_name: str) -> Couple:
    """A stateless coupling run under `pmap` over ``axis_name`` with matching scope ``scope``.

    ``"device"``: each device couples its local minibatch (its key folded with the device index).
    ``"global"``: the minibatch is all-gathered, coupled once with the same key on every device
    (so every device computes the same pairing) and each device keeps its own slice.
    """
    if scope == "device":

        def local(key, x0, x1, state=None):
            return couple(jax.random.fold_in(key, jax.lax.axis_index(axis_name)), x0, x1, state)

        return local
    if scope == "global":

        def global_(key, x0, x1, state=None):
            b = x1.shape[0]
            gather = lambda a: jax.lax.all_gather(a, axis_name, tiled=True)
            x0_p, x1_p, state, info = couple(key, gather(x0), gather(x1), state)
            take = lambda a: jax.lax.dynamic_slice_in_dim(a, jax.lax.axis_index(axis_name) * b, b)
            return take(x0_p), take(x1_p), state, info

        return global_
    raise ValueError(f"Unknown coupling.scope {scope!r}; choose 'device' or 'global'.")
