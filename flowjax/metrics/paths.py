"""Inter-path distance of straight noise-data paths (DANSM, Xu et al., ICLR 2025, §3.1 and §3.3).

Time convention: this codebase runs t = 0 at the noise x0 and t = 1 at the data x1, so a path is
``p(t) = (1 - t) x0 + t x1``. The paper runs the other way (t = 0 data, t = 1 noise); every ``t*``
returned here is the paper's ``1 - t*``. Distances do not depend on the direction.

For two paths a, b let U = x0_b - x0_a (their offset at the noise end, t = 0), V = x1_b - x1_a
(at the data end, t = 1) and W = U - V. Their distance at a common time t is
``f(t) = ||(1 - t) U + t V||`` and (paper Eq. 4, converted)

    t_hat = U^T W / ||W||^2 = (||U||^2 - ||V||^2 + ||W||^2) / (2 ||W||^2),  t* = clip(t_hat, 0, 1),
    dist  = f(t*) = min_{t in [0, 1]} f(t)                                  (paper Eq. 5),

with f(t)^2 = (1 - t) ||U||^2 + t ||V||^2 - t (1 - t) ||W||^2. Equal directions (W = 0) make f
constant; t_hat is then 0 / 0 in the paper's form, taken as the paper's t = 0, i.e. t* = 1 here.

`path_stats` gives the statistics of paper Table 2 and 3 for n paired paths: mean path length,
``d_avg`` (mean distance over pairs, which is the DANSM objective Eq. 8 of the pairing), ``d_min``
(mean distance to the nearest other path) and the mean t* over the same pairs. It needs only the
Gram matrices of the noise, the data and the path vectors P = x1 - x0, since ||W_ij||^2 =
||P_i - P_j||^2, and computes them in blocks of rows: memory O(block_size * n), time O(n^2 d).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np


def _clipped_time(u2: jax.Array, v2: jax.Array, w2: jax.Array) -> jax.Array:
    """t* of paper Eq. 4 in this codebase's direction from ||U||^2, ||V||^2, ||W||^2."""
    positive = w2 > 0
    t_hat = (u2 - v2 + w2) / (2.0 * jnp.where(positive, w2, 1.0))
    return jnp.where(positive, jnp.clip(t_hat, 0.0, 1.0), 1.0)


def interpath_distance(
    x0_a: jax.Array, x1_a: jax.Array, x0_b: jax.Array, x1_b: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Closed-form distance between the straight paths a and b (paper Eq. 4-5) and its time t*.

    Args:
      x0_a, x1_a: noise and data ends of path a, [..., d].
      x0_b, x1_b: noise and data ends of path b, [..., d]; leading dims broadcast against a's.

    Returns:
      ``(dist, t_star)``, each of the broadcast leading shape: ``min_t ||p_a(t) - p_b(t)||`` over
      t in [0, 1] and the minimising t (t = 0 noise, t = 1 data).
    """
    shapes = [jnp.shape(a) for a in (x0_a, x1_a, x0_b, x1_b)]
    if any(len(s) == 0 for s in shapes) or len({s[-1] for s in shapes}) != 1:
        raise ValueError(f"interpath_distance needs arrays [..., d] with one common d, got shapes {shapes}.")
    u = jnp.asarray(x0_b) - jnp.asarray(x0_a)
    v = jnp.asarray(x1_b) - jnp.asarray(x1_a)
    w = u - v
    t = _clipped_time(jnp.sum(u * u, -1), jnp.sum(v * v, -1), jnp.sum(w * w, -1))
    gap = (1.0 - t)[..., None] * u + t[..., None] * v
    return jnp.sqrt(jnp.sum(gap * gap, -1)), t


@functools.partial(jax.jit, static_argnames="block_size")
def _row_stats(x0: jax.Array, x1: jax.Array, block_size: int) -> dict[str, jax.Array]:
    """Per-path sums and nearest-path values over all other paths, [n] each, block by block."""
    n = x0.shape[0]
    # Distances are translation invariant; centring keeps the float32 Gram differences accurate.
    x0 = x0 - jnp.mean(x0, 0)
    x1 = x1 - jnp.mean(x1, 0)
    ends = jnp.stack([x0, x1, x1 - x0])  # [3, n, d]: noise, data, path vector
    sq = jnp.sum(ends * ends, -1)  # [3, n]
    cols = jnp.arange(n)

    def block(k):
        # The last block is shifted back to end at row n; its repeated rows get identical values.
        start = jnp.minimum(k * block_size, n - block_size)
        rows = jax.lax.dynamic_slice_in_dim(ends, start, block_size, axis=1)  # [3, b, d]
        sq_rows = jax.lax.dynamic_slice_in_dim(sq, start, block_size, axis=1)  # [3, b]
        gram = jnp.einsum("kbd,knd->kbn", rows, ends)
        u2, v2, w2 = jnp.maximum(sq_rows[:, :, None] + sq[:, None, :] - 2.0 * gram, 0.0)
        t = _clipped_time(u2, v2, w2)
        dist = jnp.sqrt(jnp.maximum((1.0 - t) * u2 + t * v2 - t * (1.0 - t) * w2, 0.0))
        ids = start + jnp.arange(block_size)
        other = ids[:, None] != cols[None, :]  # [b, n]
        nearest = jnp.argmin(jnp.where(other, dist, jnp.inf), axis=1)
        take = lambda a: jnp.take_along_axis(a, nearest[:, None], axis=1)[:, 0]  # noqa: E731
        return ids, {
            "dist_sum": jnp.sum(jnp.where(other, dist, 0.0), 1),
            "t_sum": jnp.sum(jnp.where(other, t, 0.0), 1),
            "dist_min": take(dist),
            "t_min": take(t),
        }

    ids, out = jax.lax.map(block, jnp.arange(-(-n // block_size)))
    ids = ids.reshape(-1)
    return {name: jnp.zeros(n, value.dtype).at[ids].set(value.reshape(-1)) for name, value in out.items()}


def path_stats(x0: jax.Array, x1: jax.Array, block_size: int = 1024) -> dict[str, float]:
    """Path length and inter-path statistics of the n paired paths x0[i] -> x1[i] (paper Table 2-3).

    Args:
      x0: noise [n, ...]; x1: data [n, ...] (rows are flattened), n >= 2.
      block_size: rows per block; memory is about 5 copies of the inputs plus 10 * block_size * n
        floats (n = 10,000, d = 3,072: 1.2 GB in all).

    Returns:
      ``length`` mean ||x1_i - x0_i||; ``d_avg`` mean inter-path distance over pairs i != j;
      ``d_min`` mean over i of the distance to i's nearest other path; ``t_avg`` mean t* over pairs
      i != j; ``t_min`` mean over i of t* at i's nearest path (t* in this codebase's direction).
    """
    if x0.shape != x1.shape or x0.ndim < 2 or x0.shape[0] < 2:
        raise ValueError(
            f"path_stats needs noise x0 and data x1 of one shape [n >= 2, d, ...], got {x0.shape} and {x1.shape}."
        )
    if block_size < 1:
        raise ValueError(f"path_stats needs block_size >= 1, got {block_size}.")
    n = x0.shape[0]
    x0 = jnp.asarray(x0, jnp.float32).reshape(n, -1)
    x1 = jnp.asarray(x1, jnp.float32).reshape(n, -1)
    rows = {k: np.asarray(v, np.float64) for k, v in _row_stats(x0, x1, min(block_size, n)).items()}
    length = np.asarray(jnp.linalg.norm(x1 - x0, axis=1), np.float64)
    return {
        "length": float(length.mean()),
        "d_avg": float(rows["dist_sum"].sum() / (n * (n - 1))),
        "d_min": float(rows["dist_min"].mean()),
        "t_avg": float(rows["t_sum"].sum() / (n * (n - 1))),
        "t_min": float(rows["t_min"].mean()),
    }


def dansm_objective(x0: jax.Array, x1: jax.Array, block_size: int = 1024) -> float:
    """The DANSM objective of a pairing (paper Eq. 8): mean inter-path distance over all pairs."""
    return path_stats(x0, x1, block_size)["d_avg"]
