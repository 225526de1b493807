"""Exact linear assignment (the Hungarian step of exact-OT couplings, LOOM-CFM and exact W2).

Two solvers, both callable inside `jit`/`pmap`/`vmap`:

- ``"ott"``: ott-jax's Hungarian (`ott.tools.unreg.hungarian`), in the XLA graph. No host
  round trip; the natural choice on TPU.
- ``"scipy"``: `scipy.optimize.linear_sum_assignment` on the host through `jax.pure_callback`.
  Faster than ``"ott"`` on CPU (`benchmarks/couplings.py` measures both).

``"auto"`` picks ``"ott"`` on TPU and ``"scipy"`` elsewhere.
"""

from __future__ import annotations

import concurrent.futures
import os

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

SOLVERS = ("auto", "ott", "scipy")


def resolve_solver(solver: str) -> str:
    """Maps ``"auto"`` to the faster solver for the current backend; validates the name."""
    if solver not in SOLVERS:
        raise ValueError(f"Unknown assignment solver {solver!r}; choose one of {SOLVERS}.")
    if solver == "auto":
        return "ott" if jax.default_backend() == "tpu" else "scipy"
    return solver


def _scipy_perm(cost: np.ndarray) -> np.ndarray:
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim == 2:
        if not np.isfinite(cost).all():  # a diverged run: keep the pairing, let the loss check report NaN
            return np.arange(cost.shape[0], dtype=np.int32)
        # Subtracting row then column minima keeps the optimal assignment and speeds scipy up ~1.5x.
        cost = cost - cost.min(1, keepdims=True)
        cost -= cost.min(0, keepdims=True)
        return scipy.optimize.linear_sum_assignment(cost)[1].astype(np.int32)
    # A batch of problems (vmap: K steps per call, or pools): scipy releases the GIL, so threads solve
    # them on all cores (two threads: 2x on this 2-core machine).
    costs = cost.reshape(-1, *cost.shape[-2:])
    if len(costs) == 1:  # one step on one device (its vmapped device axis): no pool on the hot path
        return _scipy_perm(costs[0]).reshape(cost.shape[:-1])
    with concurrent.futures.ThreadPoolExecutor(min(len(costs), os.cpu_count() or 1)) as pool:
        return np.stack(list(pool.map(_scipy_perm, costs))).reshape(cost.shape[:-1])


def column_order(cost: jax.Array) -> jax.Array:
    """The columns of ``cost`` [n, n] sorted (stably) by the row of their minimum after row reduction.

    Solving ``cost[:, order]`` and mapping the columns back gives the same assignment, which scipy's
    solver usually finds sooner (`benchmarks/assignment.py` measures it on the costs the couplings
    build). Computed in the graph, so that the host's share of each solve stays the solve itself.
    """
    return jnp.argsort(jnp.argmin(cost - cost.min(1, keepdims=True), axis=0), stable=True)


def solve(cost: jax.Array, solver: str = "auto") -> jax.Array:
    """Returns ``perm`` ([n] int32) minimising ``sum_i cost[i, perm[i]]`` for a square cost [n, n]."""
    if cost.ndim != 2 or cost.shape[0] != cost.shape[1]:
        raise ValueError(f"assignment needs a square [n, n] cost matrix, got shape {cost.shape}.")
    solver = resolve_solver(solver)
    n = cost.shape[0]
    if solver == "scipy":
        cols = column_order(cost)
        perm = jax.pure_callback(
            _scipy_perm, jax.ShapeDtypeStruct((n,), jnp.int32), cost[:, cols], vmap_method="expand_dims"
        )
        return cols[perm].astype(jnp.int32)
    # ott is imported where it is used: importing it costs about a second of every run's start-up, and the
    # scipy solver (the default off TPU) does not need it.
    from ott.geometry import geometry
    from ott.tools import unreg

    _, out = unreg.hungarian(geometry.Geometry(cost_matrix=cost))
    rows, cols = out.paired_indices
    return jnp.zeros((n,), jnp.int32).at[rows].set(cols.astype(jnp.int32))


def pairwise_sqeuclidean(x: jax.Array, y: jax.Array) -> jax.Array:
    """[n, m] squared Euclidean distances between flattened rows of x [n, ...] and y [m, ...]."""
    x = x.reshape(x.shape[0], -1)
    y = y.reshape(y.shape[0], -1)
    # One matmul of augmented rows [x, |x|^2, 1] . [-2y, 1, |y|^2]: XLA:CPU fuses the plain
    # |x|^2 + |y|^2 - 2 x y^T into a kernel much slower than the matmul alone.
    ones = lambda a: jnp.ones((a.shape[0], 1), a.dtype)
    xa = jnp.concatenate([x, jnp.sum(x**2, 1, keepdims=True), ones(x)], 1)
    ya = jnp.concatenate([-2.0 * y, ones(y), jnp.sum(y**2, 1, keepdims=True)], 1)
    return jnp.maximum(xa @ ya.T, 0.0)


COSTS = ("sqeuclidean", "euclidean")


def cost_matrix(x: jax.Array, y: jax.Array, cost: str = "sqeuclidean") -> jax.Array:
    """[n, m] assignment cost between rows: squared (``"sqeuclidean"``) or plain (``"euclidean"``) distance."""
    if cost not in COSTS:
        raise ValueError(f"Unknown coupling.cost {cost!r}; choose one of {COSTS}.")
    c = pairwise_sqeuclidean(x, y)
    return c if cost == "sqeuclidean" else jnp.sqrt(c)
