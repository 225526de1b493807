"""What a config builds, with no side effects: data, model, optimizer, coupling and the initial state."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax

from flowjax import couplings, interpolants, models, predictions
from flowjax.data import dataset as datasets
from flowjax.data import stream
from flowjax.train.step import AXIS, PREDICTION, TrainState, make_optimizer


class Experiment(NamedTuple):
    """What a config builds: the pieces the train step closes over, and the initial state."""

    model: Any
    apply_fn: Callable  # the network: (params, x, t, **apply_kwargs) -> its output (a velocity or a noise prediction)
    velocity_fn: Callable  # (params, x, t) -> the velocity of the learned ODE, what samplers integrate
    tx: optax.GradientTransformation
    coupling: couplings.Coupling
    dataset: datasets.Dataset
    state: TrainState
    match_only_steps: int = 0  # first steps that update only the coupling (coupling.match_only_epochs)

    @property
    def noise_one(self) -> Callable:
        """``key -> one noise sample`` of the source distribution (the data set's)."""
        return self.dataset.noise_one

    @property
    def noise_in_batch(self) -> bool:
        """Whether the input pipeline pairs the noise (pool couplings, stored pairs) instead of the step."""
        return self.coupling.route == "pools" or self.dataset.stored_noise


def validate(config: ml_collections.ConfigDict) -> None:
    """Fails fast on config values that would only fail deep inside a compiled step."""
    n = jax.device_count()
    if config.training.batch_size <= 0 or config.training.batch_size % n:
        raise ValueError(
            f"training.batch_size={config.training.batch_size} must be a positive multiple of the {n} devices (it is "
            f"the global batch); e.g. --config.training.batch_size={max(n, config.training.batch_size // n * n)}."
        )
    if config.training.num_steps < 0:
        raise ValueError(f"training.num_steps must be >= 0, got {config.training.num_steps}.")
    per_call = config.training.steps_per_call
    if per_call < 1 or any(
        v % per_call for v in (config.training.num_steps, config.training.log_every, config.training.checkpoint_every)
    ):
        raise ValueError(
            f"training.steps_per_call={per_call} must be >= 1 and divide training.num_steps="
            f"{config.training.num_steps}, training.log_every={config.training.log_every} and "
            f"training.checkpoint_every={config.training.checkpoint_every} (steps are taken {per_call} per call)."
        )
    if config.loss.name not in PREDICTION:
        raise ValueError(
            f"Unknown loss {config.loss.name!r}; choose one of {tuple(PREDICTION)} (config field loss.name)."
        )
    interpolants.get(config.loss.interpolant)
    if config.loss.feature_reduction not in ("mean", "sum"):
        raise ValueError(f"Unknown loss.feature_reduction {config.loss.feature_reduction!r}; choose 'mean' or 'sum'.")
    if config.loss.name == "epsilon" and config.loss.sigma:
        raise ValueError("loss.sigma perturbs flow matching's x_t; set it to 0 with loss.name='epsilon'.")
    if datasets.kind(config.data) == "pairs" and config.coupling.name != "independent":
        raise ValueError(
            f"data.name='pairs' trains on the stored (x0, x1) pairs as they are, but coupling.name="
            f"{config.coupling.name!r} would re-pair them. Set --config.coupling.name=independent (the pairs "
            "carry their teacher's coupling: for LOOM + reflow, train the teacher with LOOM and take its pairs)."
        )
    num_train = datasets.validate(config.data, config.training.batch_size)
    if datasets.kind(config.data) == "images":
        return  # a fixed training set whose size is known once the data set is opened
    if not num_train and config.coupling.name == "loom" and config.coupling.save_assignments:
        raise ValueError(
            "coupling.name='loom' assigns noise to a fixed training set: set data.num_train "
            "(e.g. --config.data.num_train=10000)."
        )
    if config.coupling.match_only_epochs and not num_train:
        raise ValueError("coupling.match_only_epochs counts epochs of a fixed training set: set data.num_train.")


def init_state(model, tx, example_x: jax.Array, key: jax.Array) -> TrainState:
    # One compiled program: initialised op by op, a small UNet spends most of its setup dispatching ops.
    @jax.jit
    def init(x, k):
        params = model.init(k, x, jnp.zeros((x.shape[0],)))["params"]
        return TrainState(jnp.zeros((), jnp.int32), params, params, tx.init(params), None)

    return init(example_x, key)


def setup(config: ml_collections.ConfigDict) -> Experiment:
    """Model, optimizer, coupling, data and the initial state of a config (no side effects)."""
    validate(config)
    dataset = datasets.from_config(config)
    model = models.make(config.model)
    tx = make_optimizer(config.optim, config.training.num_steps)
    coupling = couplings.make(config.coupling, axis_name=AXIS, noise_one=dataset.noise_one)
    key = jax.random.PRNGKey(config.training.seed)
    state = init_state(model, tx, jnp.zeros((1,) + dataset.shape), jax.random.fold_in(key, 0))
    state = state.replace(coupling_state=coupling.init_state(jax.random.fold_in(key, 3), dataset.num_examples))
    apply_fn = lambda params, x, t, **kw: model.apply({"params": params}, x, t, **kw)
    sched = interpolants.schedule(config.loss.interpolant, config.loss.sigma_min)
    prediction = PREDICTION[config.loss.name]
    velocity_fn = lambda params, x, t: predictions.to_velocity(lambda y, s: apply_fn(params, y, s), prediction, sched)(
        x, t
    )
    match_only = 0
    if config.coupling.match_only_epochs:  # whole epochs in which only the coupling moves
        match_only = config.coupling.match_only_epochs * stream.steps_per_epoch(
            dataset.examples_per_epoch, config.training.batch_size
        )
    return Experiment(model, apply_fn, velocity_fn, tx, coupling, dataset, state, match_only)
