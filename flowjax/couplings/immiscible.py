"""Immiscible Diffusion (Li et al., 2024) as the DANSM paper's baseline runs it (DANSM §4.3, A.4).

The same pool of data and noise as DANSM (`dansm.py`) is matched by the exact linear assignment
(the Hungarian step, `assignment.solve`) instead of greedily. Unlike the greedy matching, the
exact assignment depends on the cost: ``"sqeuclidean"`` minimises the total squared path length
(the quantity of DANSM's two-path lemma), ``"euclidean"`` the total path length (DANSM Eq. 11).
"""

from __future__ import annotations

from typing import Any

import jax

from flowjax.couplings import assignment
from flowjax.couplings.base import check_shapes, pairing_info

COSTS = assignment.COSTS


def pairing(x1: jax.Array, x0: jax.Array, *, cost: str = "sqeuclidean", solver: str = "auto") -> jax.Array:
    """``perm`` minimising the total cost of the pairs (x1[i], x0[perm[i]]) over permutations.

    ``cost``: ``"sqeuclidean"`` or ``"euclidean"`` (the square root of the clamped squared distance).
    """
    check_shapes(x1, x0)
    return assignment.solve(assignment.cost_matrix(x1, x0, cost), solver)


def couple(
    key: jax.Array, x0: jax.Array, x1: jax.Array, state: Any = None, *, cost: str = "sqeuclidean", solver: str = "auto"
):
    """Re-pairs the minibatch noise with the data by the exact assignment (pool = minibatch)."""
    del key
    x0_paired = x0[pairing(x1, x0, cost=cost, solver=solver)]
    return x0_paired, x1, state, pairing_info(x0, x1, x0_paired, x1)
