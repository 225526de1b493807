"""Minibatch optimal-transport couplings (OT-CFM, Tong et al. 2024; Pooladian et al. 2023).

Both solve OT between the data and the noise of one minibatch (squared Euclidean cost by default):
- `exact_ot`: the optimal permutation (Hungarian; ott-jax in-graph or scipy on the host).
- `sinkhorn`: the entropic plan (ott-jax Sinkhorn), from which B pairs are drawn i.i.d., as in
  OT-CFM's Algorithm (pairs (i, j) ~ pi); rows of x1 and x0 may then repeat.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from flowjax.couplings import assignment
from flowjax.couplings.base import check_shapes, pairing_info


def exact_ot(
    key: jax.Array, x0: jax.Array, x1: jax.Array, state: Any = None, *, solver: str = "auto", cost: str = "sqeuclidean"
):
    """Re-pairs the noise with the data by the exact minibatch OT permutation (squared or plain distance)."""
    del key
    check_shapes(x1, x0)
    perm = assignment.solve(assignment.cost_matrix(x1, x0, cost), solver)
    x0_paired = x0[perm]
    return x0_paired, x1, state, pairing_info(x0, x1, x0_paired, x1)


def sinkhorn_plan(
    x1: jax.Array, x0: jax.Array, epsilon: float, max_iterations: int = 2000, relative_epsilon: str | None = None
) -> jax.Array:
    """Entropic OT plan [B, B] (rows: data, columns: noise), each marginal uniform.

    ``relative_epsilon="mean"`` makes epsilon a fraction of the mean cost (scale-free); ``None``
    takes it as an absolute value on squared distances.
    """
    # imported here, not at the top: importing ott costs about a second of start-up, which runs without Sinkhorn skip
    from ott.geometry import pointcloud
    from ott.problems.linear import linear_problem
    from ott.solvers.linear import sinkhorn as ott_sinkhorn

    geom = pointcloud.PointCloud(
        x1.reshape(x1.shape[0], -1), x0.reshape(x0.shape[0], -1), epsilon=epsilon, relative_epsilon=relative_epsilon
    )
    out = ott_sinkhorn.Sinkhorn(max_iterations=max_iterations)(linear_problem.LinearProblem(geom))
    return out.matrix


def draw_pairs(key: jax.Array, plan: jax.Array, num: int) -> tuple[jax.Array, jax.Array]:
    """``num`` i.i.d. index pairs (i, j) with probability plan[i, j] / plan.sum()."""
    m = plan.shape[1]
    cdf = jnp.cumsum(plan.reshape(-1))  # inverse-CDF sampling: O(n^2 + num log n^2), no [num, n^2] Gumbels
    flat = jnp.searchsorted(cdf, jax.random.uniform(key, (num,)) * cdf[-1], side="right")
    flat = jnp.minimum(flat, cdf.shape[0] - 1)
    return flat // m, flat % m


def sinkhorn(
    key: jax.Array,
    x0: jax.Array,
    x1: jax.Array,
    state: Any = None,
    *,
    epsilon: float = 0.05,
    max_iterations: int = 2000,
    relative_epsilon: str | None = "mean",
):
    """Draws B pairs (i, j) from the entropic plan and returns (x0[j], x1[i])."""
    check_shapes(x1, x0)
    i, j = draw_pairs(key, sinkhorn_plan(x1, x0, epsilon, max_iterations, relative_epsilon), x1.shape[0])
    return x0[j], x1[i], state, pairing_info(x0, x1, x0[j], x1[i])
