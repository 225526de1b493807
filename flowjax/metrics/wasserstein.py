"""Exact 2-Wasserstein distances: between empirical point clouds and between Gaussians.

`w2` is the exact W2 of two equal-size empirical measures (uniform weights), computed with
the assignment solver of `flowjax.couplings.assignment` — the quantity the rectified-flow
theory paper (rf_straightness_wasserstein_theory, Sec. 5) plots against the number of Euler
steps; the authors approximated it with a Sinkhorn divergence, here it is exact.

`gaussian_w2` is the closed form (Bures–Wasserstein) distance between two Gaussians
(Dowson & Landau 1982; Givens & Shortt 1984), used to check Gaussian → Gaussian flows.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from flowjax.couplings import assignment


def w2(x: jax.Array, y: jax.Array, solver: str = "auto") -> jax.Array:
    """Exact 2-Wasserstein distance between two equal-size empirical point clouds.

    W2(x, y) = sqrt( min_perm (1/n) sum_i ||x_i - y_perm(i)||^2 ), with rows flattened.
    For uniform weights and equal sizes the optimal plan is a permutation (Birkhoff), so
    the linear assignment is exact. The assignment is solved on the squared distances
    between the mean-centred clouds: centring changes ||x_i - y_j||^2 only by a constant per
    row and per column, so the optimal permutation is the same, but scipy's solver is much
    faster on it when the clouds are offset from each other. The distances of the matched
    pairs are then recomputed from the original differences, so that e.g. ``w2(x, x) == 0``
    exactly.

    Args:
      x: [n, ...] points.
      y: [n, ...] points, same per-row shape as x.
      solver: assignment solver, "auto" | "ott" | "scipy" (see `assignment.solve`).

    Returns:
      A 0-d array (jittable with `solver` static); ``float()`` it for logging.
    """
    if x.ndim < 1 or y.ndim < 1 or x.shape[0] != y.shape[0]:
        raise ValueError(
            f"w2 needs two point clouds with the same number of points, got shapes {x.shape} "
            f"and {y.shape}; subsample the larger one to the size of the other."
        )
    if x.shape[1:] != y.shape[1:]:
        raise ValueError(f"w2 needs points of the same shape, got per-point shapes {x.shape[1:]} and {y.shape[1:]}.")
    x = x.reshape(x.shape[0], -1)
    y = y.reshape(y.shape[0], -1)
    centred_cost = assignment.pairwise_sqeuclidean(x - x.mean(0), y - y.mean(0))
    perm = assignment.solve(centred_cost, solver=solver)
    return jnp.sqrt(jnp.mean(jnp.sum((x - y[perm]) ** 2, axis=-1)))


def _sqrtm_psd(cov: jax.Array) -> jax.Array:
    """Symmetric square root of a symmetric PSD matrix (eigh, negative eigenvalues clipped)."""
    evals, evecs = jnp.linalg.eigh(0.5 * (cov + cov.T))
    return (evecs * jnp.sqrt(jnp.clip(evals, 0.0))) @ evecs.T


def gaussian_w2(m1: jax.Array, cov1: jax.Array, m2: jax.Array, cov2: jax.Array) -> jax.Array:
    """Closed-form W2 between N(m1, cov1) and N(m2, cov2) (Bures–Wasserstein).

    W2^2 = ||m1 - m2||^2 + tr(cov1 + cov2 - 2 (cov1^{1/2} cov2 cov1^{1/2})^{1/2}).

    Args:
      m1, m2: [d] means.
      cov1, cov2: [d, d] symmetric positive semi-definite covariances.

    Returns:
      A 0-d array (jittable).
    """
    d = m1.shape[-1] if m1.ndim == 1 else -1
    if m1.ndim != 1 or m2.shape != (d,) or cov1.shape != (d, d) or cov2.shape != (d, d):
        raise ValueError(
            "gaussian_w2 needs means of shape [d] and covariances of shape [d, d], got "
            f"{m1.shape}, {cov1.shape}, {m2.shape}, {cov2.shape}."
        )
    root1 = _sqrtm_psd(cov1)
    cross = _sqrtm_psd(root1 @ cov2 @ root1)
    w2_sq = jnp.sum((m1 - m2) ** 2) + jnp.trace(cov1) + jnp.trace(cov2) - 2.0 * jnp.trace(cross)
    return jnp.sqrt(jnp.maximum(w2_sq, 0.0))
