"""The training loop: the only place with side effects.

Per-device train step under `jax.pmap` (axis ``"batch"``), gradients averaged with `lax.pmean`,
the coupling solved inside the step on each device's local minibatch. EMA parameters, optax
Adam with warm-up and clipping, orbax checkpoints (resumed automatically), clu writers.

Randomness is device-count invariant: the noise and the time of example j of a global batch
are drawn from ``fold_in(step_key, j)``, so the same global batch gives the same loss and
gradient on 1 or N devices (for couplings that do not mix examples across devices).
"""
from __future__ import annotations

import json
import os
from typing import Any, Callable, NamedTuple

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp
from absl import logging
from jax import lax

from flowjax import couplings, interpolants, losses, models
from flowjax.data import toy2d

AXIS = "batch"
# Config entries that define what a workdir's run is; the rest (num_steps, eval, logging) may change on resume.
RUN_IDENTITY = ("data", "model", "coupling", "loss", "optim", "training.seed", "training.batch_size", "training.ema_decay")


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    ema_params: Any
    opt_state: Any
    coupling_state: Any = None


def make_optimizer(cfg: ml_collections.ConfigDict, num_steps: int) -> optax.GradientTransformation:
    """Adam(W) with linear warm-up, then constant or cosine decay; global-norm clipping first."""
    lr, warmup = cfg.learning_rate, cfg.warmup_steps
    if cfg.schedule == "constant":
        schedule = optax.join_schedules(
            [optax.linear_schedule(0.0, lr, warmup), optax.constant_schedule(lr)], [warmup]
        ) if warmup > 0 else optax.constant_schedule(lr)
    elif cfg.schedule == "cosine":
        schedule = optax.warmup_cosine_decay_schedule(0.0, lr, warmup, max(num_steps, warmup + 1))
    else:
        raise ValueError(f"Unknown optim.schedule {cfg.schedule!r}; choose 'constant' or 'cosine'.")
    adam = optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay)
    return optax.chain(optax.clip_by_global_norm(cfg.grad_clip), adam) if cfg.grad_clip > 0 else adam


def toy_samplers(cfg: ml_collections.ConfigDict) -> tuple[Callable, Callable]:
    """(data_fn(key, n) -> [n, ...], source_one(key) -> one noise sample) for a 2-D toy config."""
    data_fn = toy2d.get_sampler(cfg.name)
    if cfg.source == "normal":
        shape = data_fn(jax.random.PRNGKey(0), 1).shape[1:]
        return data_fn, lambda key: jax.random.normal(key, shape)
    source_fn = toy2d.get_sampler(cfg.source)
    return data_fn, lambda key: source_fn(key, 1)[0]


def make_train_step(config: ml_collections.ConfigDict, apply_fn: Callable, tx: optax.GradientTransformation,
                    couple: couplings.Couple, source_one: Callable) -> Callable:
    """Per-device step ``(state, x1 [b, ...], key) -> (state, metrics)``; run it under pmap(axis 'batch')."""
    interp = interpolants.get(config.loss.interpolant, config.loss.sigma_min)
    sample_t = losses.get_time_sampler(config.loss.time_sampler, config.loss.time_mean, config.loss.time_std)
    sigma, decay = config.loss.sigma, config.training.ema_decay

    def step(state: TrainState, x1: jax.Array, key: jax.Array):
        b = x1.shape[0]
        device = lax.axis_index(AXIS)
        index = device * b + jnp.arange(b)  # position in the global batch
        k_src, k_t, k_sig, k_cpl = jax.random.split(key, 4)
        per_example = lambda k: jax.vmap(jax.random.fold_in, (None, 0))(k, index)
        x0 = jax.vmap(source_one)(per_example(k_src))
        t = jax.vmap(lambda k: sample_t(k, 1)[0])(per_example(k_t))
        noise = jax.vmap(lambda k: jax.random.normal(k, x1.shape[1:]))(per_example(k_sig)) if sigma > 0 else None
        x0, x1, coupling_state, info = couple(jax.random.fold_in(k_cpl, device), x1, x0, state.coupling_state)

        def loss_fn(params):
            return losses.flow_matching_loss(apply_fn, params, x0, x1, t, interpolant=interp, sigma=sigma, noise=noise)

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        grads = lax.pmean(grads, AXIS)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        # EMA warm-up (as TF's ExponentialMovingAverage with num_updates): early averages forget the init.
        rate = jnp.minimum(decay, (1.0 + state.step) / (10.0 + state.step))
        ema = optax.incremental_update(params, state.ema_params, 1.0 - rate)
        metrics = lax.pmean({"loss": loss, "grad_norm": optax.global_norm(grads), **info}, AXIS)
        new_state = TrainState(state.step + 1, params, ema, opt_state, coupling_state)
        return new_state, metrics

    return step


def make_batch_fn(data_fn: Callable, global_batch: int) -> Callable:
    """key -> this process's share of the global batch, shaped [local devices, per-device batch, ...].

    The whole global batch is drawn from the key and sliced, so the data order does not depend on
    the number of processes or devices.
    """
    ndev, local = jax.local_device_count(), global_batch // jax.process_count()
    offset = jax.process_index() * local

    @jax.jit
    def batch_fn(key):
        x1 = data_fn(key, global_batch)[offset:offset + local]
        return x1.reshape((ndev, local // ndev) + x1.shape[1:])

    return batch_fn


def check_workdir(config: ml_collections.ConfigDict, workdir: str, record: bool = True) -> None:
    """Refuses a workdir that holds a run of another config; with ``record``, writes config.json."""
    path = os.path.join(workdir, "config.json")
    current = json.loads(config.to_json_best_effort())
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        diffs = []
        for key in RUN_IDENTITY:
            a, b = saved, current
            for part in key.split("."):
                a, b = a.get(part), b.get(part)
            if a != b:
                diffs.append(f"{key}: {a} in the workdir, {b} now")
        if diffs:
            raise ValueError(
                f"Workdir {workdir} holds a run of another config ({'; '.join(diffs)}). Nothing was changed. "
                "Use a new --workdir, or the workdir's own config (its config.json) to resume it."
            )
    if record:
        os.makedirs(workdir, exist_ok=True)
        with open(path, "w") as f:
            json.dump(current, f, indent=2)


def validate(config: ml_collections.ConfigDict) -> None:
    """Fails fast on config values that would only fail deep inside a compiled step."""
    n = jax.device_count()
    if config.training.batch_size <= 0 or config.training.batch_size % n:
        raise ValueError(
            f"training.batch_size={config.training.batch_size} must be a positive multiple of the "
            f"{n} devices (it is the global batch); e.g. --config.training.batch_size={max(n, config.training.batch_size // n * n)}."
        )
    if config.training.num_steps < 0:
        raise ValueError(f"training.num_steps must be >= 0, got {config.training.num_steps}.")
    if config.loss.name != "flow_matching":
        raise ValueError(f"Unknown loss {config.loss.name!r}; choose 'flow_matching' (config field loss.name).")


def init_state(model, tx, example_x: jax.Array, key: jax.Array) -> TrainState:
    params = model.init(key, example_x, jnp.zeros((example_x.shape[0],)))["params"]
    return TrainState(jnp.zeros((), jnp.int32), params, params, tx.init(params), None)


def checkpoint_manager(workdir: str, config: ml_collections.ConfigDict) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=config.training.keep_checkpoints, create=True)
    return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), "checkpoints"), options=options)


def restore_latest(mngr: ocp.CheckpointManager, template: TrainState) -> TrainState | None:
    step = mngr.latest_step()
    if step is None:
        return None
    return mngr.restore(step, args=ocp.args.StandardRestore(template))


class Experiment(NamedTuple):
    """What a config builds: the pieces the train step closes over, and the initial state."""

    model: Any
    apply_fn: Callable
    tx: optax.GradientTransformation
    couple: couplings.Couple
    data_fn: Callable
    source_one: Callable
    state: TrainState


def setup(config: ml_collections.ConfigDict) -> Experiment:
    """Model, optimizer, coupling, samplers and the initial state of a config (no side effects)."""
    validate(config)
    model = models.make(config.model)
    couple = couplings.make(config.coupling)
    tx = make_optimizer(config.optim, config.training.num_steps)
    data_fn, source_one = toy_samplers(config.data)
    key = jax.random.PRNGKey(config.training.seed)
    state = init_state(model, tx, data_fn(key, 1), jax.random.fold_in(key, 0))
    apply_fn = lambda params, x, t: model.apply({"params": params}, x, t)
    return Experiment(model, apply_fn, tx, couple, data_fn, source_one, state)


def pmapped_train_step(config: ml_collections.ConfigDict, exp: Experiment) -> Callable:
    """``(replicated state, x1 [devices, b, ...], key) -> (state, metrics)`` over the local devices.

    The state argument is donated: its buffers are reused for the returned state.
    """
    step = make_train_step(config, exp.apply_fn, exp.tx, exp.couple, exp.source_one)
    return jax.pmap(step, axis_name=AXIS, in_axes=(0, 0, None), donate_argnums=(0,))


def train(config: ml_collections.ConfigDict, workdir: str, exp: Experiment | None = None) -> TrainState:
    """Trains to training.num_steps, resuming from the workdir's latest checkpoint. Returns the state."""
    from clu import metric_writers, periodic_actions  # imports TensorFlow; keep it out of pure modules

    exp = exp or setup(config)
    data_fn, state = exp.data_fn, exp.state
    check_workdir(config, workdir)
    mngr = checkpoint_manager(workdir, config)
    restored = restore_latest(mngr, state)
    if restored is not None:
        state = restored
        logging.info("Resumed from %s at step %d.", workdir, int(state.step))
    start, num_steps = int(state.step), config.training.num_steps

    p_step = pmapped_train_step(config, exp)
    key = jax.random.PRNGKey(config.training.seed)
    data_key, step_key = jax.random.fold_in(key, 1), jax.random.fold_in(key, 2)
    batch_fn = make_batch_fn(data_fn, config.training.batch_size)
    writer = metric_writers.create_default_writer(workdir, just_logging=jax.process_index() > 0)
    progress = periodic_actions.ReportProgress(num_train_steps=num_steps, writer=writer,
                                               every_steps=config.training.log_every)
    replicated = flax.jax_utils.replicate(state)
    for step in range(start, num_steps):
        x1 = batch_fn(jax.random.fold_in(data_key, step))
        replicated, metrics = p_step(replicated, x1, jax.random.fold_in(step_key, step))
        done = step + 1
        progress(done)
        log_now = done % config.training.log_every == 0
        save_now = done % config.training.checkpoint_every == 0 or done == num_steps
        if log_now or save_now:
            scalars = {k: float(v) for k, v in jax.device_get(flax.jax_utils.unreplicate(metrics)).items()}
            if not np.isfinite(scalars["loss"]):
                raise FloatingPointError(
                    f"Loss is {scalars['loss']} at step {done}; not saved. The last good checkpoint "
                    f"(step {mngr.latest_step()}) in {workdir} is kept. Lower optim.learning_rate, "
                    "add warm-up (optim.warmup_steps) or clipping (optim.grad_clip), then rerun to resume."
                )
            writer.write_scalars(done, scalars)
        if save_now:
            mngr.save(done, args=ocp.args.StandardSave(flax.jax_utils.unreplicate(replicated)))
    mngr.wait_until_finished()
    writer.flush()
    return flax.jax_utils.unreplicate(replicated)


def load_checkpoint(config: ml_collections.ConfigDict, workdir: str, exp: Experiment) -> TrainState:
    """The workdir's latest checkpoint, refusing a workdir of another config."""
    if not os.path.isdir(os.path.join(workdir, "checkpoints")):
        raise FileNotFoundError(f"No checkpoints in {workdir}; train first with --mode=train.")
    check_workdir(config, workdir, record=False)
    state = restore_latest(checkpoint_manager(workdir, config), exp.state)
    if state is None:
        raise FileNotFoundError(f"No checkpoint saved in {workdir}/checkpoints; train first with --mode=train.")
    return state
