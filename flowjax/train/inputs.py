"""The input pipeline: each step's batch, as this process's share of the global batch laid out per device.

The global batch of a step comes from the `data.dataset.Dataset` (a pure function of the seed and the
step); pool couplings (``coupling.route == "pools"``) pair it with noise here, over pools that may span
several steps (`couplings.pools.PoolStream`); then this process takes its rows, split over its local
devices. An image data set without pools is streamed instead, read ahead by background threads.
"""

from __future__ import annotations

from typing import Callable

import jax
import ml_collections

from flowjax.couplings.pools import PoolStream
from flowjax.data import stream
from flowjax.data.dataset import Dataset
from flowjax.train.experiment import Experiment

POOL_KEY = 4  # fold_in(PRNGKey(training.seed), POOL_KEY): the key of the pools' noise


def make_batch_fn(
    config: ml_collections.ConfigDict, exp: Experiment, real: Dataset | None = None
) -> Callable[[int], tuple[dict, dict]]:
    """``step -> (this process's share of the global batch as [local devices, b, ...] arrays, pool info)``.

    The data order does not depend on the number of devices or processes: the global batch is drawn
    whole and sliced (`stream.process_rows`, `stream.per_device`). ``real`` (LMM's adversarial stage) adds the
    step's global batch of real images, "real" (and "real_label" for a conditional model).
    """
    dataset, coupling, devices = exp.dataset, exp.coupling, jax.local_device_count()
    if coupling.route == "step" and dataset.stream is not None:
        return _streamed(dataset.stream)
    global_batch, size = dataset.global_batch, config.training.batch_size
    pools = None
    if coupling.route == "pools":
        pools = PoolStream(
            lambda s: global_batch(s)["x1"],
            size,
            config.coupling.match_size or size,
            coupling.pool_match,
            dataset.noise_one,
            jax.random.fold_in(jax.random.PRNGKey(config.training.seed), POOL_KEY),
        )
    rows = None if jax.process_count() == 1 else stream.process_rows(size)  # one process: no slice to take
    mine = lambda a: a if rows is None else a[rows]

    def share_of(data: Dataset, whole: bool = False) -> Callable[[int], dict]:
        """``step -> this process's rows of data's global batch``: read alone where the data are files (stored
        pairs, images), unless ``whole`` (the batch is read whole anyway)."""
        if rows is None or whole or data.rows_batch is None:
            return lambda step: jax.tree.map(mine, data.global_batch(step))
        return lambda step: data.rows_batch(step, rows)

    read_mine = share_of(dataset, whole=pools is not None)  # the pools read the global batch (cached)
    real_mine = None if real is None else share_of(real)

    def batch_fn(step: int) -> tuple[dict, dict]:
        batch, info = dict(read_mine(step)), {}
        if pools is not None:
            x0, info = pools(step)
            batch["x0"] = mine(x0)
        if real is not None:
            images = real_mine(step)
            batch["real"] = images["x1"]
            if "label" in images:
                batch["real_label"] = images["label"]
        return jax.tree.map(lambda a: stream.per_device(a, devices), batch), info

    return batch_fn


def _streamed(open_stream: Callable) -> Callable[[int], tuple[dict, dict]]:
    """`make_batch_fn` over a prefetched stream read in step order; it reopens at any step that is not the
    next one (a resume, or a test reading steps out of order)."""
    current = {"step": None, "iterator": None}

    def batch_fn(step: int) -> tuple[dict, dict]:
        if current["step"] != step:
            current["iterator"] = open_stream(step)
        current["step"] = step + 1
        return next(current["iterator"]), {}

    return batch_fn
