"""Pool couplings in the input stream: DANSM's greedy matching and Immiscible Diffusion's assignment
over pools of ``coupling.match_size`` examples, larger than (and not aligned with) the minibatch.

DANSM (§3.3, Algorithm 1) matches a pool of ``match_size`` data points with as many fresh noises and
then trains on the matched pairs batch by batch; Immiscible Diffusion, as DANSM's §4.3 runs it, does
the same with the exact assignment. Stream positions ``[g * match_size, (g + 1) * match_size)`` form
pool g. The pairs are made on the host before the compiled step, which trains on them as given
(`couplings.Coupling.route == "pools"`).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from flowjax.couplings.base import mean_sq_path_length
from flowjax.keys import per_index_keys


def pool_noise(key: jax.Array, pool: int, size: int, noise_one: Callable) -> jax.Array:
    """The ``size`` fresh noises of pool number ``pool``: noise j from ``fold_in(fold_in(key, pool), j)``."""
    return jax.vmap(noise_one)(per_index_keys(jax.random.fold_in(key, pool), jnp.arange(size)))


class PoolStream:
    """The noise x0 of each global batch, taken from the matched pool covering each stream position.

    ``batch_at(step) -> x1 [B, ...]`` is the pure data stream; ``match(x1_pool, x0_pool) -> perm``
    pairs data row i with noise ``perm[i]`` (greedy or exact). Pool g's noise is drawn from
    ``fold_in(key, g)``. Only the pools of the current step are kept, so any step can be served
    after a restart by recomputing its pools: resuming needs no saved state.
    """

    def __init__(
        self, batch_at: Callable, batch_size: int, match_size: int, match: Callable, noise_one: Callable, key: jax.Array
    ):
        if match_size < 1:
            raise ValueError(f"coupling.match_size must be >= 1, got {match_size}.")
        self.batch_at, self.batch, self.size = batch_at, batch_size, match_size
        self._match = jax.jit(lambda x1, x0: x0[match(x1, x0)])
        self._noise = jax.jit(lambda g: pool_noise(key, g, match_size, noise_one))
        self._pools: dict[int, tuple[jax.Array, dict]] = {}

    def _pool(self, g: int) -> tuple[jax.Array, dict]:
        """(matched noise [match_size, ...], info) of pool g."""
        if g not in self._pools:
            first, last = g * self.size, (g + 1) * self.size  # stream positions
            steps = range(first // self.batch, (last - 1) // self.batch + 1)
            x1 = jnp.concatenate([self.batch_at(s) for s in steps])
            x1 = x1[first - steps[0] * self.batch :][: self.size]
            x0 = self._noise(g)
            x0_matched = self._match(x1, x0)
            info = {
                "coupling/cost_before": float(mean_sq_path_length(x0, x1)),
                "coupling/cost_after": float(mean_sq_path_length(x0_matched, x1)),
            }
            self._pools[g] = (x0_matched, info)
        return self._pools[g]

    def __call__(self, step: int) -> tuple[jax.Array, dict]:
        """(x0 [B, ...] paired with the rows of ``batch_at(step)``, info of the step's last pool)."""
        first, last = step * self.batch, (step + 1) * self.batch
        pools = range(first // self.size, (last - 1) // self.size + 1)
        self._pools = {g: v for g, v in self._pools.items() if g in pools}
        parts = []
        for g in pools:
            lo, hi = max(first, g * self.size), min(last, (g + 1) * self.size)
            parts.append(self._pool(g)[0][lo - g * self.size : hi - g * self.size])
        return jnp.concatenate(parts), self._pool(pools[-1])[1]
