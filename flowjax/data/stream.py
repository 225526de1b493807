"""Which training examples each step sees, as pure functions of the step number.

A finite training set of ``num_train`` examples is read in epochs: each epoch is a fresh random
permutation (key ``fold_in(key, epoch)``) cut into ``num_train // batch_size`` global batches; the
remainder of each epoch is dropped, so the indices of one batch are always distinct (LOOM-CFM's
write-back relies on it). Because the batch of step s depends only on (key, s), a resumed run reads
exactly what an uninterrupted one reads, on any number of devices.

`PoolStream` serves pool-matched pairs (DANSM, Immiscible Diffusion): stream positions
``[g * match_size, (g + 1) * match_size)`` form pool g, matched as a whole against ``match_size``
fresh noises, then served batch by batch; pools need not align with batches.
"""
from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np


def steps_per_epoch(num_train: int, batch_size: int) -> int:
    """Global batches per epoch (the incomplete last batch of each epoch is dropped)."""
    if not 0 < batch_size <= num_train:
        raise ValueError(
            f"training.batch_size={batch_size} must be between 1 and data.num_train={num_train} "
            "(a batch never holds the same training example twice)."
        )
    return num_train // batch_size


def epoch_permutation(key: jax.Array, num_train: int, epoch: jax.Array) -> jax.Array:
    """The order [num_train] int32 in which epoch ``epoch`` reads the training set."""
    return jax.random.permutation(jax.random.fold_in(key, epoch), num_train).astype(jnp.int32)


def batch_indices(key: jax.Array, num_train: int, batch_size: int, step: jax.Array) -> jax.Array:
    """Training-set indices [batch_size] of the global batch of ``step`` (distinct; epoch-wise shuffled)."""
    spe = steps_per_epoch(num_train, batch_size)
    perm = epoch_permutation(key, num_train, step // spe)
    return jax.lax.dynamic_slice(perm, ((step % spe) * batch_size,), (batch_size,))


def host_batch_indices(key: jax.Array, num_train: int, batch_size: int) -> Callable[[int], np.ndarray]:
    """``step -> batch_indices(key, num_train, batch_size, step)`` as NumPy int32, for readers on the host
    (image and pairs files read by index); each epoch's permutation is computed once."""
    spe = steps_per_epoch(num_train, batch_size)
    compiled = jax.jit(lambda epoch: epoch_permutation(key, num_train, epoch))  # eager: 49 ms an epoch of 10,000

    @functools.lru_cache(maxsize=2)
    def permutation(epoch: int) -> np.ndarray:
        return np.asarray(compiled(epoch))

    def indices(step: int) -> np.ndarray:
        start = (step % spe) * batch_size
        return permutation(step // spe)[start:start + batch_size]

    return indices


def pool_noise(key: jax.Array, pool: int, size: int, source_one: Callable) -> jax.Array:
    """The ``size`` fresh noises of pool number ``pool``: noise j from ``fold_in(fold_in(key, pool), j)``."""
    keys = jax.vmap(jax.random.fold_in, (None, 0))(jax.random.fold_in(key, pool), jnp.arange(size))
    return jax.vmap(source_one)(keys)


class PoolStream:
    """The noise x0 of each global batch, taken from the matched pool covering each stream position.

    ``batch_at(step) -> x1 [B, ...]`` is the pure data stream; ``match(x1_pool, x0_pool) -> perm``
    pairs data row i with noise ``perm[i]`` (greedy or exact). Pool g's noise is drawn from
    ``fold_in(key, g)``. Only the pools of the current step are kept, so any step can be served
    after a restart by recomputing its pools: resuming needs no saved state.
    """

    def __init__(self, batch_at: Callable, batch_size: int, match_size: int, match: Callable,
                 noise_fn: Callable, key: jax.Array):
        if match_size < 1:
            raise ValueError(f"coupling.match_size must be >= 1, got {match_size}.")
        self.batch_at, self.batch, self.size = batch_at, batch_size, match_size
        self._match = jax.jit(lambda x1, x0: x0[match(x1, x0)])
        self._noise = jax.jit(lambda g: pool_noise(key, g, match_size, noise_fn))
        self._pools: dict[int, tuple[jax.Array, dict]] = {}

    def _pool(self, g: int) -> tuple[jax.Array, dict]:
        """(matched noise [match_size, ...], info) of pool g."""
        if g not in self._pools:
            first, last = g * self.size, (g + 1) * self.size  # stream positions
            steps = range(first // self.batch, (last - 1) // self.batch + 1)
            x1 = jnp.concatenate([self.batch_at(s) for s in steps])
            x1 = x1[first - steps[0] * self.batch:][: self.size]
            x0 = self._noise(g)
            x0_matched = self._match(x1, x0)
            cost = lambda a: float(jnp.mean(jnp.sum(jnp.square(x1 - a).reshape(self.size, -1), 1)))
            self._pools[g] = (x0_matched, {"coupling/cost_before": cost(x0), "coupling/cost_after": cost(x0_matched)})
        return self._pools[g]

    def __call__(self, step: int) -> tuple[jax.Array, dict]:
        """(x0 [B, ...] paired with the rows of ``batch_at(step)``, info of the step's last pool)."""
        first, last = step * self.batch, (step + 1) * self.batch
        pools = range(first // self.size, (last - 1) // self.size + 1)
        self._pools = {g: v for g, v in self._pools.items() if g in pools}
        parts = []
        for g in pools:
            lo, hi = max(first, g * self.size), min(last, (g + 1) * self.size)
            parts.append(self._pool(g)[0][lo - g * self.size: hi - g * self.size])
        return jnp.concatenate(parts), self._pool(pools[-1])[1]

