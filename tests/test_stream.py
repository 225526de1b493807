"""The data order: epoch-wise index batches, and the training loop's batches following it."""

import jax
import numpy as np
import pytest

from flowjax.data import stream


def test_batches_are_distinct_and_cover_each_epoch_once():
    key, n, b = jax.random.PRNGKey(0), 50, 8
    spe = stream.steps_per_epoch(n, b)
    assert spe == 6  # 48 of 50 examples per epoch; the remainder is dropped
    for epoch in range(3):
        seen = np.concatenate([np.asarray(stream.batch_indices(key, n, b, epoch * spe + k)) for k in range(spe)])
        assert len(set(seen.tolist())) == len(seen) == 48 and seen.min() >= 0 and seen.max() < n
    first = [np.asarray(stream.batch_indices(key, n, b, k)) for k in (0, spe)]
    assert not np.array_equal(first[0], first[1])  # a new permutation every epoch
    with pytest.raises(ValueError, match="between 1 and data.num_train"):
        stream.steps_per_epoch(5, 8)


def test_train_batches_follow_the_stream():
    """The training loop's batches (epoch permutations cached) are stream.batch_indices exactly."""
    from configs import quickstart
    from flowjax import train

    config = quickstart.get_config()
    config.data.num_train, config.training.batch_size, config.model.hidden = 100, 32, (8,)
    exp = train.setup(config)
    batch_fn = train.make_batch_fn(config, exp)
    key = jax.random.fold_in(jax.random.PRNGKey(config.training.seed), 1)
    for step in (0, 2, 3, 7, 1):  # epochs of 3 steps, visited out of order
        batch, _ = batch_fn(step)
        index = stream.batch_indices(key, 100, 32, step)
        np.testing.assert_array_equal(batch["index"].reshape(-1), index)
        np.testing.assert_array_equal(batch["x1"].reshape(32, 2), exp.dataset.read(index))


def test_process_rows_split_the_global_batch_in_order():
    """Each of P processes takes a contiguous, equal share; together, in process order, they are the batch."""
    batch = np.arange(24 * 3).reshape(24, 3)
    for count in (1, 2, 3, 4):
        parts = [batch[stream.process_rows(24, p, count)] for p in range(count)]
        assert all(len(part) == 24 // count for part in parts)
        np.testing.assert_array_equal(np.concatenate(parts), batch)
        local = stream.per_device(parts[-1], 2)  # [devices, per device, ...], device-major
        np.testing.assert_array_equal(local.reshape(parts[-1].shape), parts[-1])
        assert local.shape == (2, 24 // count // 2, 3)
