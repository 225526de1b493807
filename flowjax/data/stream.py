"""Which training examples each step sees, as pure functions of the step number.

A finite training set of ``num_train`` examples is read in epochs: each epoch is a fresh random
permutation (key ``fold_in(key, epoch)``) cut into ``num_train // batch_size`` global batches; the
remainder of each epoch is dropped, so the indices of one batch are always distinct (LOOM-CFM's
write-back relies on it). Because the batch of step s depends only on (key, s), a resumed run reads
exactly what an uninterrupted one reads, on any number of devices.

A global batch is drawn whole; process p of P takes the contiguous rows `process_rows` of it, split
evenly over its local devices (`per_device`).
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
    compiled = jax.jit(lambda epoch: epoch_permutation(key, num_train, epoch))  # one dispatch, not one per op

    @functools.lru_cache(maxsize=2)
    def permutation(epoch: int) -> np.ndarray:
        return np.asarray(compiled(epoch))

    def indices(step: int) -> np.ndarray:
        start = (step % spe) * batch_size
        return permutation(step // spe)[start : start + batch_size]

    return indices


def process_rows(batch_size: int, process_index: int | None = None, process_count: int | None = None) -> slice:
    """The rows of a global batch of ``batch_size`` that process ``process_index`` of ``process_count`` reads
    (default: this process of `jax.process_count()`): the contiguous slice of ``batch_size // process_count``."""
    index = jax.process_index() if process_index is None else process_index
    count = jax.process_count() if process_count is None else process_count
    local = batch_size // count
    return slice(index * local, (index + 1) * local)


def per_device(a, devices: int):
    """``a`` [n, ...] as [devices, n // devices, ...], the leading axis of `jax.pmap`."""
    return a.reshape((devices, a.shape[0] // devices) + a.shape[1:])
