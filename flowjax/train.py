"""The training loop: the only place with side effects.

Per-device train step under `jax.pmap` (axis ``"batch"``), gradients averaged with `lax.pmean`,
the coupling solved inside the step on each device's local minibatch. EMA parameters, optax
Adam with warm-up and clipping, orbax checkpoints (resumed automatically), clu writers.

Randomness is device-count invariant: the noise and the time of example j of a global batch
are drawn from ``fold_in(step_key, j)``, so the same global batch gives the same loss and
gradient on 1 or N devices (for couplings solved per device, up to how the batch is split:
``coupling.scope="global"`` and the pool couplings match the whole global batch).

The data of each step come from `data.stream`: fresh draws, or an epoch-wise shuffled batch of a
fixed training set (``data.num_train``, the digits, or an image data set read by index through
`data.images`), which LOOM-CFM's assignment state indexes. ``data.name = "pairs"`` trains on a teacher's
stored (x0, x1) pairs (`flowjax.rectify`): its batches carry the stored noise "x0" of each x1.
"""
from __future__ import annotations

import concurrent.futures
import functools
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

from flowjax import couplings, interpolants, losses, models, predictions
from flowjax.data import digits, images, pairs, stream, toy2d

AXIS = "batch"
# What the network predicts for each loss.name: a velocity (flow matching) or the noise (DDPM's epsilon loss).
PREDICTION = {"flow_matching": "velocity", "epsilon": "epsilon"}
# Config entries that define what a workdir's run is; the rest (num_steps, eval, logging) may change on resume.
RUN_IDENTITY = ("data", "model", "coupling", "loss", "optim", "training.seed", "training.batch_size", "training.ema_decay",
                "training.init_from")


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


def data_setup(cfg: ml_collections.ConfigDict) -> tuple[Callable | None, Callable, jax.Array | None]:
    """(data_fn(key, n) or None, source_one(key) -> one noise sample, fixed training set or None).

    2-D toys draw fresh samples (``data.num_train = 0``) or read a fixed set of ``num_train``
    points; ``digits`` is always the fixed training split (its first ``num_train`` images if > 0).
    """
    if cfg.name == "digits":
        if cfg.source != "normal":
            raise ValueError(f"data.source={cfg.source!r}: digits are generated from noise; set data.source='normal'.")
        if cfg.image_size not in (0, 8, 16):
            raise ValueError(f"data.image_size must be 8 (or 0, native) or 16 for digits, got {cfg.image_size}.")
        pixels, _ = digits.from_config(cfg, "train")
        if cfg.num_train > pixels.shape[0]:
            raise ValueError(f"data.num_train={cfg.num_train} exceeds the {pixels.shape[0]} digits of the training split.")
        train_x = jnp.asarray(pixels[: cfg.num_train or None])
        return None, lambda key: jax.random.normal(key, train_x.shape[1:]), train_x
    kwargs = toy2d.config_kwargs(cfg.name, cfg)
    data_fn = toy2d.get_sampler(cfg.name, **kwargs)
    train_x = toy2d.train_set(cfg.name, cfg.num_train, seed=cfg.train_seed, **kwargs) if cfg.num_train else None
    if cfg.source == "normal":
        shape = data_fn(jax.random.PRNGKey(0), 1).shape[1:]
        return data_fn, lambda key: jax.random.normal(key, shape), train_x
    source_fn = toy2d.get_sampler(cfg.source, **toy2d.config_kwargs(cfg.source, cfg))
    return data_fn, lambda key: source_fn(key, 1)[0], train_x


def pairs_setup(cfg: ml_collections.ConfigDict) -> tuple[Callable, pairs.PairsSource]:
    """(source_one, the stored pairs read by index) of ``data.name = "pairs"``.

    The pairs of ``data.data_dir`` (its first ``data.num_train`` if > 0) are the fixed training set;
    ``source_one`` draws the teacher's noise (its data.source: N(0, I) or a 2-D toy), used for evaluation.
    """
    source = pairs.open_pairs(cfg.data_dir, cfg.num_train)
    teacher = pairs.read_manifest(cfg.data_dir).get("data") or {}
    name = teacher.get("source", "normal")
    if name == "normal" or images.is_image_dataset(teacher.get("name", "")) or teacher.get("name") == "digits":
        return (lambda key: jax.random.normal(key, source.shape)), source
    source_fn = toy2d.get_sampler(name, **toy2d.config_kwargs(name, teacher))
    return (lambda key: source_fn(key, 1)[0]), source


def make_train_step(config: ml_collections.ConfigDict, apply_fn: Callable, tx: optax.GradientTransformation,
                    couple: Callable, source_one: Callable, match_only_steps: int = 0,
                    split: bool = False) -> Callable:
    """Per-device step ``(state, batch, key) -> (state, metrics)``; run it under pmap(axis 'batch').

    ``apply_fn(params, x, t, **kw)`` is called with ``train=True`` and a per-device dropout rng.

    ``batch``: {"x1": [b, ...] data, "index": [b] training-set indices (-1 for a fresh stream)}, and
    "x0" [b, ...] when the input stream has already paired the noise (pool couplings).
    ``couple(key, x1, x0, coupling_state, index)`` is `couplings.Coupling.couple`. During the first
    ``match_only_steps`` steps only the coupling state changes (LOOM's "train after convergence").

    With ``training.steps_per_call = K > 1`` the function takes K steps, ``(state, batches, keys)`` with
    the leaves of ``batches`` [K, b, ...] and ``keys`` [K], and returns the metrics of each step ([K]).
    Each step is the single step's computation on its own batch and key; a stateless coupling's K
    pairings are computed first, together (the K host assignments of exact OT run on all CPU cores).
    ``split=True`` returns the two parts of a stateless coupling's K steps: ``pairs(batches, keys)``
    and ``updates(state, paired, keys) -> (state, metrics)``.
    """
    interp = interpolants.get(config.loss.interpolant, config.loss.sigma_min)
    sched = interpolants.schedule(config.loss.interpolant, config.loss.sigma_min)
    sample_t = losses.get_time_sampler(config.loss.time_sampler, config.loss.time_mean, config.loss.time_std)
    sigma, decay = config.loss.sigma, config.training.ema_decay

    def per_example(key, b):
        position = lax.axis_index(AXIS) * b + jnp.arange(b)  # position in the global batch
        return jax.vmap(jax.random.fold_in, (None, 0))(key, position)

    def pair(coupling_state, batch: dict, key: jax.Array):
        x1 = batch["x1"]
        k_src, _, _, k_cpl = jax.random.split(key, 4)
        x0 = batch["x0"] if "x0" in batch else jax.vmap(source_one)(per_example(k_src, x1.shape[0]))
        return couple(k_cpl, x1, x0, coupling_state, batch["index"])

    def update(state: TrainState, paired: tuple, key: jax.Array):
        x0, x1, coupling_state, info = paired
        _, k_t, k_sig, _ = jax.random.split(key, 4)
        b = x1.shape[0]
        t = jax.vmap(lambda k: sample_t(k, 1)[0])(per_example(k_t, b))
        noise = jax.vmap(lambda k: jax.random.normal(k, x1.shape[1:]))(per_example(k_sig, b)) if sigma > 0 else None
        k_drop = jax.random.fold_in(jax.random.fold_in(key, 7), lax.axis_index(AXIS))
        net = lambda p, x, s: apply_fn(p, x, s, train=True, rngs={"dropout": k_drop})

        # the losses average over features; "sum" scales by their number (DDPM's code sums over pixels)
        scale = float(np.prod(x1.shape[1:])) if config.loss.feature_reduction == "sum" else 1.0

        def loss_fn(params):
            if config.loss.name == "epsilon":
                return scale * losses.epsilon_loss(net, params, x0, x1, t, schedule=sched)
            return scale * losses.flow_matching_loss(net, params, x0, x1, t, interpolant=interp, sigma=sigma,
                                                     noise=noise)

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        grads = lax.pmean(grads, AXIS)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        # EMA warm-up (as TF's ExponentialMovingAverage with num_updates): early averages forget the init.
        rate = jnp.minimum(decay, (1.0 + state.step) / (10.0 + state.step))
        ema = optax.incremental_update(params, state.ema_params, 1.0 - rate)
        if match_only_steps:
            keep = state.step < match_only_steps
            params, opt_state, ema = jax.tree.map(lambda old, new: jnp.where(keep, old, new),
                                                  (state.params, state.opt_state, state.ema_params),
                                                  (params, opt_state, ema))
        metrics = lax.pmean({"loss": loss, "grad_norm": optax.global_norm(grads), **info}, AXIS)
        new_state = TrainState(state.step + 1, params, ema, opt_state, coupling_state)
        return new_state, metrics

    def step(state: TrainState, batch: dict, key: jax.Array):
        return update(state, pair(state.coupling_state, batch, key), key)

    def pairs(batches: dict, keys: jax.Array):  # a stateless coupling's K pairings, [K, b, ...]
        return jax.vmap(lambda batch, key: pair(None, batch, key))(batches, keys)

    def updates(state: TrainState, paired: tuple, keys: jax.Array):
        return lax.scan(lambda st, xs: update(st, *xs), state, (paired, keys))

    def steps(state: TrainState, batches: dict, keys: jax.Array):
        if state.coupling_state is None:  # stateless: the K pairings do not depend on the parameters
            return updates(state, pairs(batches, keys), keys)
        return lax.scan(lambda st, xs: step(st, *xs), state, (batches, keys))

    if split:
        return pairs, updates
    return step if config.training.steps_per_call == 1 else steps


def make_batch_fn(config: ml_collections.ConfigDict, exp: "Experiment") -> Callable:
    """step -> (this process's share of the global batch as [local devices, b, ...] arrays, pool info).

    The global batch of a step is a pure function of (training.seed, step): fresh draws from the
    data sampler (data.num_train = 0) or an epoch-wise shuffled batch of the fixed training set.
    It is drawn whole and sliced, so the data order does not depend on the number of devices.
    An image data set is streamed by `images.batches` (`_image_stream_fn`), unless pools need the
    global batch of any step: then `images.step_reader` reads it by index, like the other fixed sets.
    """
    global_batch = config.training.batch_size
    if exp.images is not None and exp.coupling.pool_match is None:
        return _image_stream_fn(config, exp)
    key = jax.random.fold_in(jax.random.PRNGKey(config.training.seed), images.DATA_KEY)
    if exp.images is not None:
        read = images.step_reader(exp.images, global_batch, config.training.seed, flip=config.data.random_flip,
                                  flip_as_example=config.data.flip_as_example)

        @functools.lru_cache(maxsize=1)  # the step often re-reads the last batch its pools read
        def global_at(step):
            batch = read(step)
            return jnp.asarray(batch["x1"]), batch["index"]
    elif exp.pairs is not None:  # stored (x0, x1) pairs, read by index from their files
        # Kept as NumPy, like the training set below: the step's call moves the batch to the devices.
        indices_at = stream.host_batch_indices(key, exp.pairs.num_pairs, global_batch)

        def global_at(step):
            index = indices_at(step)
            x0, x1 = exp.pairs.read(index)
            return x1, index, x0
    elif exp.train_x is not None:
        # Gathered with NumPy on the host: microseconds, where each JAX dispatch cost a toy step ~0.1 ms
        # (the step's call moves the batch to the devices).
        train_x = np.asarray(exp.train_x)
        indices_at = stream.host_batch_indices(key, train_x.shape[0], global_batch)

        def global_at(step):
            index = indices_at(step)
            return train_x[index], index
    else:
        @jax.jit
        def global_at(step):
            return exp.data_fn(jax.random.fold_in(key, step), global_batch), jnp.full((global_batch,), -1, jnp.int32)

    pools = None
    if exp.coupling.pool_match is not None:
        pools = stream.PoolStream(lambda s: global_at(s)[0], global_batch, config.coupling.match_size or global_batch,
                                  exp.coupling.pool_match, exp.source_one,
                                  jax.random.fold_in(jax.random.PRNGKey(config.training.seed), 4))
    ndev, local = jax.local_device_count(), global_batch // jax.process_count()
    offset = jax.process_index() * local
    if local == global_batch:  # one process: no slice (each dispatch costs the toys' step ~0.1 ms)
        shard = lambda a: a.reshape((ndev, local // ndev) + a.shape[1:])
    else:
        shard = lambda a: a[offset:offset + local].reshape((ndev, local // ndev) + a.shape[1:])

    def batch_fn(step: int) -> tuple[dict, dict]:
        x1, index, *stored = global_at(step)
        batch, info = {"x1": x1, "index": index}, {}
        if stored:
            batch["x0"] = stored[0]
        if pools is not None:
            batch["x0"], info = pools(step)
        return jax.tree.map(shard, batch), info

    return batch_fn


def _image_stream_fn(config: ml_collections.ConfigDict, exp: "Experiment") -> Callable:
    """`make_batch_fn` for an image data set without pools: `images.batches` (grain, prefetched) read in
    step order; the iterator restarts at any step that is not the next one (resume)."""
    data, global_batch, seed = config.data, config.training.batch_size, config.training.seed
    current = {"step": None, "iterator": None}

    def batch_fn(step: int) -> tuple[dict, dict]:
        if current["step"] != step:
            current["iterator"] = images.batches(exp.images, global_batch, seed, flip=data.random_flip,
                                                 flip_as_example=data.flip_as_example,
                                                 local_devices=jax.local_device_count(), start_step=step)
        batch = next(current["iterator"])
        current["step"] = step + 1
        return {"x1": batch["x1"], "index": batch["index"]}, {}

    return batch_fn


def check_workdir(config: ml_collections.ConfigDict, workdir: str, record: bool = True) -> None:
    """Refuses a workdir that holds a run of another config; with ``record``, writes config.json."""
    path = os.path.join(workdir, "config.json")
    current = json.loads(config.to_json_best_effort())
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        diffs, added = [], []
        for key in RUN_IDENTITY:
            a, b, *parts = saved, current, *key.split(".")
            for part in parts[:-1]:
                a, b = a.get(part, {}), b.get(part, {})
            if parts[-1] not in a and parts[-1] in b:  # a field new in flowjax since the run started
                added.append(key)
                continue
            a, b = a.get(parts[-1]), b.get(parts[-1])
            if isinstance(a, dict) and isinstance(b, dict):
                # Fields new in flowjax since the run started are absent from its config.json: a new field's
                # default keeps the old behaviour, so they are not a difference (they are recorded below).
                added += [f"{key}.{k}" for k in b if k not in a]
                diffs += [f"{key}.{k}: {a[k]} in the workdir, {b.get(k, '(no such field)')} now"
                          for k in a if a[k] != b.get(k)]
            elif a != b:
                diffs.append(f"{key}: {a} in the workdir, {b} now")
        if added:
            logging.info("Workdir %s predates config fields %s; resuming with their current values.", workdir, added)
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
    per_call = config.training.steps_per_call
    if per_call < 1 or any(v % per_call for v in (config.training.num_steps, config.training.log_every,
                                                  config.training.checkpoint_every)):
        raise ValueError(
            f"training.steps_per_call={per_call} must be >= 1 and divide training.num_steps="
            f"{config.training.num_steps}, training.log_every={config.training.log_every} and "
            f"training.checkpoint_every={config.training.checkpoint_every} (steps are taken {per_call} per call).")
    if config.loss.name not in PREDICTION:
        raise ValueError(f"Unknown loss {config.loss.name!r}; choose one of {tuple(PREDICTION)} (config field loss.name).")
    interpolants.get(config.loss.interpolant)
    if config.loss.feature_reduction not in ("mean", "sum"):
        raise ValueError(f"Unknown loss.feature_reduction {config.loss.feature_reduction!r}; choose 'mean' or 'sum'.")
    if config.loss.name == "epsilon" and config.loss.sigma:
        raise ValueError("loss.sigma perturbs flow matching's x_t; set it to 0 with loss.name='epsilon'.")
    if config.data.num_train < 0:
        raise ValueError(f"data.num_train must be >= 0 (0: fresh samples every step), got {config.data.num_train}.")
    if config.data.flip_as_example and not (images.is_image_dataset(config.data.name) and config.data.random_flip):
        raise ValueError("data.flip_as_example makes flipped images examples of their own: it needs an image data "
                         "set and data.random_flip=True.")
    if config.data.num_classes and config.data.name != "digits":
        raise ValueError(f"data.num_classes={config.data.num_classes} keeps the first digits classes: it needs "
                         "data.name='digits'.")
    if images.is_image_dataset(config.data.name):
        return  # a fixed training set whose size is known once the data set is opened (images.batches checks it)
    if config.data.name == "pairs":
        if config.coupling.name != "independent":
            raise ValueError(
                f"data.name='pairs' trains on the stored (x0, x1) pairs as they are, but coupling.name="
                f"{config.coupling.name!r} would re-pair them. Set --config.coupling.name=independent (the pairs "
                "carry their teacher's coupling: for LOOM + reflow, train the teacher with LOOM and take its pairs).")
        pairs.require_dir(config.data.data_dir)
    num_train = training_set_size(config.data)
    if num_train:
        stream.steps_per_epoch(num_train, config.training.batch_size)
    elif config.coupling.name == "loom" and config.coupling.save_assignments:
        raise ValueError("coupling.name='loom' assigns noise to a fixed training set: set data.num_train "
                         "(e.g. --config.data.num_train=10000).")
    if config.coupling.match_only_epochs and not num_train:
        raise ValueError("coupling.match_only_epochs counts epochs of a fixed training set: set data.num_train.")


def match_only_steps(config: ml_collections.ConfigDict, source: images.ImageSource | None = None) -> int:
    """Steps at the start that update only the coupling (coupling.match_only_epochs whole epochs)."""
    if not config.coupling.match_only_epochs:
        return 0
    num_examples = source.num_examples if source is not None else training_set_size(config.data)
    return config.coupling.match_only_epochs * stream.steps_per_epoch(num_examples, config.training.batch_size)


def training_set_size(cfg: ml_collections.ConfigDict, source: images.ImageSource | None = None) -> int:
    """Indices of the fixed training set (0: fresh samples every step); for an image data set (its
    ``source``), twice its examples with ``data.flip_as_example``."""
    if source is not None:
        return source.num_examples * (2 if cfg.flip_as_example else 1)
    if cfg.name == "digits":
        return cfg.num_train or len(digits.from_config(cfg, "train")[1])
    if cfg.name == "pairs":
        stored = pairs.read_manifest(cfg.data_dir)["num_pairs"]
        if cfg.num_train > stored:
            raise ValueError(f"data.num_train={cfg.num_train} exceeds the {stored} pairs in {cfg.data_dir}.")
        return cfg.num_train or stored
    return cfg.num_train


def init_state(model, tx, example_x: jax.Array, key: jax.Array) -> TrainState:
    # One compiled program: initialised op by op, a small digits UNet took 12 s of its 13 s setup on CPU.
    @jax.jit
    def init(x, k):
        params = model.init(k, x, jnp.zeros((x.shape[0],)))["params"]
        return TrainState(jnp.zeros((), jnp.int32), params, params, tx.init(params), None)

    return init(example_x, key)


def checkpoint_manager(workdir: str, config: ml_collections.ConfigDict) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=config.training.keep_checkpoints, create=True)
    return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), "checkpoints"), options=options)


def init_from_run(state: TrainState, workdir: str) -> TrainState:
    """``state`` with its parameters and EMA parameters set to the EMA parameters of the latest checkpoint
    in another run's ``workdir`` (a reflow student starting from its teacher, as LOOM-CFM's and rectified
    flow's reflow runs do). The optimizer and coupling states stay fresh; the networks must match."""
    directory = os.path.join(os.path.abspath(workdir), "checkpoints")
    step = ocp.CheckpointManager(directory).latest_step() if os.path.isdir(directory) else None
    if step is None:
        raise FileNotFoundError(f"training.init_from={workdir!r} has no checkpoint in {directory}; train that run "
                                "first, or clear training.init_from.")
    raw = ocp.StandardCheckpointer().restore(os.path.join(directory, str(step), "default"))
    try:
        params = flax.serialization.from_state_dict(state.params, raw["ema_params"])
        mismatch = jax.tree.map(lambda a, b: a.shape != b.shape, state.params, params)
    except (KeyError, ValueError, TypeError) as err:
        raise ValueError(f"training.init_from={workdir!r}: its network differs from this config's model ({err}); "
                         "use the teacher's model settings.") from err
    if any(jax.tree.leaves(mismatch)):
        raise ValueError(f"training.init_from={workdir!r}: its parameter shapes differ from this config's model; "
                         "use the teacher's model settings.")
    params = jax.tree.map(jnp.asarray, params)
    logging.info("Initialised from the EMA parameters of %s at step %d.", workdir, step)
    return state.replace(params=params, ema_params=params)


def restore_latest(mngr: ocp.CheckpointManager, template: TrainState) -> TrainState | None:
    step = mngr.latest_step()
    if step is None:
        return None
    return mngr.restore(step, args=ocp.args.StandardRestore(template))


class Experiment(NamedTuple):
    """What a config builds: the pieces the train step closes over, and the initial state."""

    model: Any
    apply_fn: Callable  # the network: (params, x, t, **apply_kwargs) -> its output (a velocity or a noise prediction)
    velocity_fn: Callable  # (params, x, t) -> the velocity of the learned ODE, what samplers integrate
    tx: optax.GradientTransformation
    coupling: couplings.Coupling
    data_fn: Callable | None  # fresh 2-D toy samples (key, n) -> [n, ...]; None for datasets without a sampler
    source_one: Callable
    train_x: jax.Array | None  # the fixed training set [num_train, ...] in memory, or None
    state: TrainState
    images: images.ImageSource | None = None  # an image data set read by index (data.name in images.DATASETS/folder)
    pairs: pairs.PairsSource | None = None  # data.name="pairs": the stored (x0, x1) pairs, read by index


def setup(config: ml_collections.ConfigDict) -> Experiment:
    """Model, optimizer, coupling, samplers and the initial state of a config (no side effects)."""
    validate(config)
    source, stored = None, None
    if config.data.name == "pairs":
        data_fn, train_x = None, None
        source_one, stored = pairs_setup(config.data)
    elif images.is_image_dataset(config.data.name):
        source = images.source_from_config(config.data)
        data_fn, train_x, shape = None, None, source.shape
        source_one = lambda key: jax.random.normal(key, shape)
        stream.steps_per_epoch(source.num_examples, config.training.batch_size)  # batch <= data set
    else:
        data_fn, source_one, train_x = data_setup(config.data)
    model = models.make(config.model)
    tx = make_optimizer(config.optim, config.training.num_steps)
    coupling = couplings.make(config.coupling, axis_name=AXIS, source_one=source_one)
    key = jax.random.PRNGKey(config.training.seed)
    shape = source.shape if source is not None else stored.shape if stored is not None else None
    example = (jnp.zeros((1,) + shape) if shape is not None else
               train_x[:1] if train_x is not None else data_fn(key, 1))
    state = init_state(model, tx, example, jax.random.fold_in(key, 0))
    num_examples = train_x.shape[0] if train_x is not None else training_set_size(config.data, source)
    state = state.replace(coupling_state=coupling.init_state(jax.random.fold_in(key, 3), num_examples))
    apply_fn = lambda params, x, t, **kw: model.apply({"params": params}, x, t, **kw)
    sched = interpolants.schedule(config.loss.interpolant, config.loss.sigma_min)
    prediction = PREDICTION[config.loss.name]
    velocity_fn = lambda params, x, t: predictions.to_velocity(lambda y, s: apply_fn(params, y, s), prediction, sched)(x, t)
    return Experiment(model, apply_fn, velocity_fn, tx, coupling, data_fn, source_one, train_x, state, source, stored)


def pmapped_train_step(config: ml_collections.ConfigDict, exp: Experiment) -> Callable:
    """``(replicated state, batch of [devices, b, ...] arrays, key) -> (state, metrics)`` over the local devices
    (`jax.pmap`; with one local device, `jax.jit` of the step vmapped over a device axis of size 1).

    The state argument is donated: its buffers are reused for the returned state.
    """
    step = make_train_step(config, exp.apply_fn, exp.tx, exp.coupling.couple, exp.source_one,
                           match_only_steps(config, exp.images))
    return _per_device(step, (0, 0, None), donate=(0,))


def _per_device(fn: Callable, in_axes: tuple, donate: tuple = ()) -> Callable:
    """`jax.pmap` of ``fn`` over the local devices (axis 'batch'); with one device, `jax.jit` of its vmap."""
    if jax.local_device_count() == 1:
        # Same program over a device axis of size 1 (vmap supports the named-axis collectives); on
        # XLA:CPU a 1-device pmap ran a digits UNet step 9x slower than this jit.
        return jax.jit(jax.vmap(fn, axis_name=AXIS, in_axes=in_axes), donate_argnums=donate)
    return jax.pmap(fn, axis_name=AXIS, in_axes=in_axes, donate_argnums=donate)


def replicate(tree: Any, devices: list | None = None) -> Any:
    """One copy of every leaf per local device (leading axis), laid out as `pmapped_train_step` returns it.

    `flax.jax_utils.replicate` places the copies on a mesh of another axis name than pmap's outputs, so
    the step's second call saw new input shardings and compiled the whole step a second time.
    """
    devices = devices or jax.local_devices()
    sharding = jax.sharding.NamedSharding(jax.sharding.Mesh(np.array(devices), (AXIS,)),
                                          jax.sharding.PartitionSpec(AXIS))
    return jax.tree.map(lambda x: jax.device_put(jnp.broadcast_to(x, (len(devices),) + jnp.shape(x)), sharding), tree)


def make_advance_fn(config: ml_collections.ConfigDict, exp: Experiment, step_key: jax.Array | None = None) -> Callable:
    """``(replicated state, step) -> (state, metrics, pool info)``: takes steps ``step .. step + K - 1``
    (K = training.steps_per_call) on their batches and keys (step s: ``fold_in(step_key, s)``; by default
    the training loop's key); the metrics are the last step's.

    With K > 1 and a stateless coupling matched per device, a worker thread computes the next call's K
    pairings (batches, noise, coupling) while this call's K updates run: the same steps, with exact
    OT's host assignments overlapping the updates. Calls for consecutive steps use it; any other step
    is paired on the spot. (``coupling.scope="global"`` all-gathers in the pairing program; two programs
    with collectives dispatched from two threads could reach the devices in different orders, so it
    keeps the single program.)
    """
    batch_fn = make_batch_fn(config, exp)
    if step_key is None:
        step_key = jax.random.fold_in(jax.random.PRNGKey(config.training.seed), 2)
    per_call, num_steps = config.training.steps_per_call, config.training.num_steps
    fold_in_steps = jax.jit(jax.vmap(jax.random.fold_in, (None, 0)))  # K keys in one dispatch
    stack = lambda *a: np.stack(a, 1) if isinstance(a[0], np.ndarray) else jnp.stack(a, 1)  # host stays host

    def inputs(step: int):  # -> batches [devices, K, b, ...], keys [K], the last step's pool info
        batches = [batch_fn(s) for s in range(step, step + per_call)]
        batch = jax.tree.map(stack, *[b for b, _ in batches])
        return batch, fold_in_steps(step_key, np.arange(step, step + per_call)), batches[-1][1]

    last = lambda metrics: jax.tree.map(lambda a: a[:, -1], metrics)
    if per_call > 1 and exp.state.coupling_state is None and config.coupling.scope == "device":
        pairs, updates = make_train_step(config, exp.apply_fn, exp.tx, exp.coupling.couple, exp.source_one,
                                         match_only_steps(config, exp.images), split=True)
        p_pairs, p_updates = _per_device(pairs, (0, None)), _per_device(updates, (0, 0, None), donate=(0,))
        worker, ahead = concurrent.futures.ThreadPoolExecutor(1), {}

        def paired_at(step: int):
            batch, keys, pool_info = inputs(step)
            return jax.block_until_ready(p_pairs(batch, keys)), keys, pool_info

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
    from clu import metric_writers, periodic_actions  # imports TensorFlow; keep it out of pure modules

    exp = exp or setup(config)
    state = exp.state
    check_workdir(config, workdir)
    mngr = checkpoint_manager(workdir, config)
    restored = restore_latest(mngr, state)
    if restored is not None:
        state = restored
        logging.info("Resumed from %s at step %d.", workdir, int(state.step))
    elif config.training.init_from:
        state = init_from_run(state, config.training.init_from)
    start, num_steps = int(state.step), config.training.num_steps

    advance = make_advance_fn(config, exp)
    writer = metric_writers.create_default_writer(workdir, just_logging=jax.process_index() > 0)
    progress = periodic_actions.ReportProgress(num_train_steps=num_steps, writer=writer,
                                               every_steps=config.training.log_every)
    replicated = replicate(state)
    per_call = config.training.steps_per_call
    if start % per_call:
        raise ValueError(f"The run in {workdir} is at step {start}, not a multiple of training.steps_per_call="
                         f"{per_call}; resume it with --config.training.steps_per_call=1.")
    for step in range(start, num_steps, per_call):
        replicated, metrics, pool_info = advance(replicated, step)
        done = step + per_call
        progress(done)
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
