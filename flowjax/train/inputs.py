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
    read_mine = lambda step: jax.tree.map(mine, global_batch(step))
    if rows is not None and pools is None and dataset.rows_batch is not None:  # files: this share only
        read_mine = lambda step: dataset.rows_batch(step, rows)
    real_mine = None if real is None else lambda step: jax.tree.map(mine, real.global_batch(step))
    if rows is not None and real is not None and real.rows_batch is not None:  # image files: this share only
        real_mine = lambda step: real.rows_batch(step, rows)

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
