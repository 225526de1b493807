"""The training loop, the only place with side effects: device placement, pairing ahead, logging,
checkpoints (resumed automatically) and the NaN check."""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from flowjax.keys import per_index_keys
from flowjax.train import workdir as workdirs
from flowjax.train.experiment import Experiment, setup
from flowjax.train.inputs import make_batch_fn
from flowjax.train.step import AXIS, TrainState, make_train_step
from flowjax.train.writer import MetricWriter

STEP_KEY = 2  # fold_in(PRNGKey(training.seed), STEP_KEY): the key of the steps' draws


def _per_device(fn: Callable, in_axes: tuple, donate: tuple = ()) -> Callable:
    """`jax.pmap` of ``fn`` over the local devices (axis 'batch'); with one device, `jax.jit` of its vmap."""
    if jax.local_device_count() == 1:
        # Same program over a device axis of size 1 (vmap supports the named-axis collectives); XLA:CPU
        # runs a 1-device pmap of a UNet step much slower than this jit.
        return jax.jit(jax.vmap(fn, axis_name=AXIS, in_axes=in_axes), donate_argnums=donate)
    return jax.pmap(fn, axis_name=AXIS, in_axes=in_axes, donate_argnums=donate)


def _step_fn(config: ml_collections.ConfigDict, exp: Experiment, split: bool = False):
    return make_train_step(
        config,
        exp.apply_fn,
        exp.tx,
        exp.coupling,
        exp.noise_one,
        noise_in_batch=exp.noise_in_batch,
        match_only_steps=exp.match_only_steps,
        split=split,
    )


def pmapped_train_step(config: ml_collections.ConfigDict, exp: Experiment) -> Callable:
    """``(replicated state, batch of [devices, b, ...] arrays, key) -> (state, metrics)`` over the local devices
    (`jax.pmap`; with one local device, `jax.jit` of the step vmapped over a device axis of size 1).

    The state argument is donated: its buffers are reused for the returned state.
    """
    return _per_device(_step_fn(config, exp), (0, 0, None), donate=(0,))


def replicate(tree: Any, devices: list | None = None) -> Any:
    """One copy of every leaf per local device (leading axis), laid out as `pmapped_train_step` returns it.

    `flax.jax_utils.replicate` places the copies on a mesh of another axis name than pmap's outputs, so
    the step's second call saw new input shardings and compiled the whole step a second time.
    """
    devices = devices or jax.local_devices()
    sharding = jax.sharding.NamedSharding(
        jax.sharding.Mesh(np.array(devices), (AXIS,)), jax.sharding.PartitionSpec(AXIS)
    )
    return jax.tree.map(lambda x: jax.device_put(jnp.broadcast_to(x, (len(devices),) + jnp.shape(x)), sharding), tree)


def make_advance_fn(config: ml_collections.ConfigDict, exp: Experiment, step_key: jax.Array | None = None) -> Callable:
    """``(replicated state, step) -> (state, metrics, pool info)``: takes steps ``step .. step + K - 1``
    (K = training.steps_per_call) on their batches and keys (step s: ``fold_in(step_key, s)``; by default
    the training loop's key); the metrics are the last step's.

    With K > 1 and a coupling that is neither ``stateful`` nor all-gathering in the step, a worker thread
    computes the next call's K pairings (batches, noise, coupling) while this call's K updates run: the
    same steps, with exact OT's host assignments overlapping the updates. Calls for consecutive steps use
    it; any other step is paired on the spot. (A pairing that all-gathers would run collectives from two
    threads, which could reach the devices in different orders, so it keeps the single program.)
    """
    batch_fn = make_batch_fn(config, exp)
    if step_key is None:
        step_key = jax.random.fold_in(jax.random.PRNGKey(config.training.seed), STEP_KEY)
    per_call, num_steps = config.training.steps_per_call, config.training.num_steps
    fold_in_steps = jax.jit(per_index_keys)  # K keys in one dispatch
    stack = lambda *a: np.stack(a, 1) if isinstance(a[0], np.ndarray) else jnp.stack(a, 1)  # host stays host

    def inputs(step: int):  # -> batches [devices, K, b, ...], keys [K], the last step's pool info
        batches = [batch_fn(s) for s in range(step, step + per_call)]
        batch = jax.tree.map(stack, *[b for b, _ in batches])
        return batch, fold_in_steps(step_key, np.arange(step, step + per_call)), batches[-1][1]

    last = lambda metrics: jax.tree.map(lambda a: a[:, -1], metrics)
    if per_call > 1 and not exp.coupling.stateful and not exp.coupling.gathers:
        pairings, updates = _step_fn(config, exp, split=True)
        p_pairings, p_updates = _per_device(pairings, (0, None)), _per_device(updates, (0, 0, None), donate=(0,))
        worker, ahead = concurrent.futures.ThreadPoolExecutor(1), {}

        def paired_at(step: int):
            batch, keys, pool_info = inputs(step)
            return jax.block_until_ready(p_pairings(batch, keys)), keys, pool_info

        def advance_paired_ahead(replicated, step: int):
            paired, keys, pool_info = (ahead.pop(step, None) or worker.submit(paired_at, step)).result()
            ahead.clear()
            if step + per_call < num_steps:
                ahead[step + per_call] = worker.submit(paired_at, step + per_call)
            replicated, metrics = p_updates(replicated, paired, keys)
            return replicated, last(metrics), pool_info

        return advance_paired_ahead

    p_step = pmapped_train_step(config, exp)

    def advance(replicated, step: int):
        if per_call == 1:
            batch, pool_info = batch_fn(step)
            replicated, metrics = p_step(replicated, batch, jax.random.fold_in(step_key, step))
            return replicated, metrics, pool_info
        batch, keys, pool_info = inputs(step)
        replicated, metrics = p_step(replicated, batch, keys)
        return replicated, last(metrics), pool_info

    return advance


def train(config: ml_collections.ConfigDict, workdir: str, exp: Experiment | None = None) -> TrainState:
    """Trains to training.num_steps, resuming from the workdir's latest checkpoint. Returns the state."""
    exp = exp or setup(config)
    state = exp.state
    workdirs.check_workdir(config, workdir)
    mngr = workdirs.checkpoint_manager(workdir, config)
    restored = workdirs.restore_latest(mngr, state)
    if restored is not None:
        state = restored
        logging.info("Resumed from %s at step %d.", workdir, int(state.step))
    elif config.training.init_from:
        state = workdirs.init_from_run(state, config.training.init_from)
    start, num_steps = int(state.step), config.training.num_steps

    advance = make_advance_fn(config, exp)
    writer = MetricWriter(workdir, just_logging=jax.process_index() > 0)
    replicated = replicate(state)
    per_call = config.training.steps_per_call
    if start % per_call:
        raise ValueError(
            f"The run in {workdir} is at step {start}, not a multiple of training.steps_per_call="
            f"{per_call}; resume it with --config.training.steps_per_call=1."
        )
    last_log = (start, time.perf_counter())
    for step in range(start, num_steps, per_call):
        replicated, metrics, pool_info = advance(replicated, step)
        done = step + per_call
        log_now = done % config.training.log_every == 0
        save_now = done % config.training.checkpoint_every == 0 or done == num_steps
        if log_now or save_now:
            scalars = {k: float(v) for k, v in jax.device_get(flax.jax_utils.unreplicate(metrics)).items()}
            scalars.update(pool_info)
            if not np.isfinite(scalars["loss"]):
                raise FloatingPointError(
                    f"Loss is {scalars['loss']} at step {done}; not saved. The last good checkpoint "
                    f"(step {mngr.latest_step()}) in {workdir} is kept. Lower optim.learning_rate, "
                    "add warm-up (optim.warmup_steps) or clipping (optim.grad_clip), then rerun to resume."
                )
            if log_now:
                now = time.perf_counter()
                scalars["steps_per_sec"] = (done - last_log[0]) / max(now - last_log[1], 1e-9)
                last_log = (done, now)
                logging.info(
                    "Step %d of %d: %.1f steps/s, ETA %.0f s.",
                    done,
                    num_steps,
                    scalars["steps_per_sec"],
                    (num_steps - done) / max(scalars["steps_per_sec"], 1e-9),
                )
            writer.write_scalars(done, scalars)
        if save_now:
            mngr.save(done, args=ocp.args.StandardSave(flax.jax_utils.unreplicate(replicated)))
    mngr.wait_until_finished()
    writer.close()
    return flax.jax_utils.unreplicate(replicated)
