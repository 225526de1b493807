"""Per-index random keys: the one way flowjax makes a draw independent of batching and devices."""

from __future__ import annotations

import jax


def per_index_keys(key: jax.Array, indices: jax.Array) -> jax.Array:
    """``fold_in(key, i)`` for every i of ``indices`` [n]: keys [n] whose draws depend on the index alone,
    so example i gets the same draw in any batch, on any number of devices, before or after a resume."""
    return jax.vmap(jax.random.fold_in, (None, 0))(key, indices)
