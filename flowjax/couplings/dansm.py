"""DANSM greedy noise-data matching (Xu et al., ICLR 2025, §3.3: surrogate Eq. 11, Algorithm 1).

DANSM would maximise the mean inter-path distance of a pairing (Eq. 8, see `metrics.paths`); its
two-path lemma (§4.1) says that shorter paths lie further apart, so it minimises the mean path
length instead (Eq. 11), greedily: data points in their order each take the nearest noise not yet
taken. A row's argmin is the same for ||x - z||^2, ||x - z|| and the per-element MSE (monotone
maps of one another), so the greedy pairing is the same for all three; `greedy_pairing` uses the
squared distance. (An exact solver can differ between them; see `immiscible.py`.)

`couple` matches within the minibatch (pool = batch). The paper's pool of ``match_size`` noises
spanning several minibatches is `pools.PoolStream`'s, in the input pipeline; it calls `greedy_pairing` on each pool.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from flowjax.couplings import assignment
from flowjax.couplings.base import check_shapes, pairing_info


@jax.jit
def greedy_match(cost: jax.Array) -> jax.Array:
    """Greedy assignment of Algorithm 1: ``perm`` [n] int32, row i paired with column perm[i].

    Rows (data) are served in order 0..n-1; row i takes the untaken column (noise) of smallest
    cost, the lowest index among ties. O(n^2): a `lax.scan` over the rows of ``cost`` [n, n] with
    the taken-mask as carry, one masked argmin per row. NaN costs count as +inf.
    """
    if cost.ndim != 2 or cost.shape[0] != cost.shape[1]:
        raise ValueError(f"greedy_match needs a square [n, n] cost matrix, got shape {cost.shape}.")

    def step(taken, row):
        j = jnp.argmin(jnp.where(taken | jnp.isnan(row), jnp.inf, row))
        j = jnp.where(taken[j], jnp.argmin(taken), j)  # every untaken cost is +inf: first untaken
        return taken.at[j].set(True), j.astype(jnp.int32)

    _, perm = jax.lax.scan(step, jnp.zeros(cost.shape[0], bool), cost)
    return perm


def greedy_pairing(x1: jax.Array, x0: jax.Array) -> jax.Array:
    """``perm`` such that data x1[i] is paired with noise x0[perm[i]], greedily in the order of x1."""
    check_shapes(x1, x0)
    return greedy_match(assignment.pairwise_sqeuclidean(x1, x0))


def couple(key: jax.Array, x0: jax.Array, x1: jax.Array, state: Any = None):
    """Re-pairs the minibatch noise with the data by DANSM's greedy matching (pool = minibatch)."""
    del key
    x0_paired = x0[greedy_pairing(x1, x0)]
    return x0_paired, x1, state, pairing_info(x0, x1, x0_paired, x1)
