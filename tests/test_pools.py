"""Pool couplings in the input stream (DANSM, Immiscible Diffusion) against a plain-Python reference."""

import jax
import numpy as np
import pytest

from flowjax.couplings import dansm, pools

noise_one = lambda key: jax.random.normal(key, (2,))


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
    batch_at = lambda s: data[s * batch : (s + 1) * batch]
    served = pools.PoolStream(batch_at, batch, size, dansm.greedy_pairing, noise_one, key)
    x0 = np.concatenate([np.asarray(served(s)[0]) for s in range(steps)])
    num_pools = -(-steps * batch // size)
    noises = [np.asarray(pools.pool_noise(key, g, size, noise_one)) for g in range(num_pools)]
    # Greedy is online: a data point's noise depends only on the points before it in its pool.
    np.testing.assert_allclose(x0, _reference_pairs(np.asarray(data[: steps * batch]), noises, size), rtol=1e-6)
    # A stream restarted at step 4 serves the same pairs (resuming needs no saved state).
    again = pools.PoolStream(batch_at, batch, size, dansm.greedy_pairing, noise_one, key)
    np.testing.assert_array_equal(again(4)[0], served(4)[0])
    info = served(0)[1]
    assert info["coupling/cost_after"] < info["coupling/cost_before"]
