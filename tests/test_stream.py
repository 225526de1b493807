"""The input stream: epoch-wise index batches and pool-matched pairs against plain references."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax.couplings import dansm
from flowjax.data import stream

source_one = lambda key: jax.random.normal(key, (2,))


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


def _reference_pairs(x1_stream, noises, size):
    """Plain-Python Algorithm 1 of DANSM as its code streams it: each data point, in arrival order,
    takes the nearest unused noise of the current pool; a used-up pool is replaced by the next."""
    out, pool, used = [], None, None
    for p, x in enumerate(x1_stream):
        if p % size == 0:
            pool, used = noises[p // size], set()
        best = min((j for j in range(size) if j not in used), key=lambda j: (float(((x - pool[j]) ** 2).sum()), j))
        used.add(best)
        out.append(pool[best])
    return np.stack(out)


@pytest.mark.parametrize("batch, size", [(8, 8), (8, 20), (8, 3), (6, 12)])
def test_pool_stream_equals_streaming_greedy(batch, size):
    steps, key = 7, jax.random.PRNGKey(3)
    data = jax.random.normal(jax.random.PRNGKey(1), ((steps + size) * batch, 2)) * 3.0  # the stream goes on
    batch_at = lambda s: data[s * batch:(s + 1) * batch]
    pools = stream.PoolStream(batch_at, batch, size, dansm.greedy_pairing, source_one, key)
    x0 = np.concatenate([np.asarray(pools(s)[0]) for s in range(steps)])
    num_pools = -(-steps * batch // size)
    noises = [np.asarray(stream.pool_noise(key, g, size, source_one)) for g in range(num_pools)]
    # Greedy is online: a data point's noise depends only on the points before it in its pool.
    np.testing.assert_allclose(x0, _reference_pairs(np.asarray(data[:steps * batch]), noises, size), rtol=1e-6)
    # A stream restarted at step 4 serves the same pairs (resuming needs no saved state).
    again = stream.PoolStream(batch_at, batch, size, dansm.greedy_pairing, source_one, key)
    np.testing.assert_array_equal(again(4)[0], pools(4)[0])
    info = pools(0)[1]
    assert info["coupling/cost_after"] < info["coupling/cost_before"]


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
        np.testing.assert_array_equal(batch["x1"].reshape(32, 2), exp.train_x[index])
