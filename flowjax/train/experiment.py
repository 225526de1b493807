"""What a config builds, with no side effects: data, model, optimizer, coupling and the initial state."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax

from flowjax import couplings, edm, interpolants, models, predictions
from flowjax.data import dataset as datasets
from flowjax.data import stream
from flowjax.models import weights
from flowjax.train.step import AXIS, PREDICTION, TrainState, make_optimizer


class Experiment(NamedTuple):
    """What a config builds: the pieces the train step closes over, and the initial state."""

    model: Any
    apply_fn: Callable  # the network: (params, x, t, **apply_kwargs) -> its output (a velocity, noise or EDM's F)
    velocity_fn: Callable  # (params, x, t, y=None) -> the velocity of the learned ODE (y: class labels [B])
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
    if per_call < 0 or (
        per_call
        and any(
            v % per_call
            for v in (config.training.num_steps, config.training.log_every, config.training.checkpoint_every)
        )
    ):
        raise ValueError(
            f"training.steps_per_call={per_call} must be 0 (chosen automatically) or >= 1 and divide "
            f"training.num_steps={config.training.num_steps}, training.log_every={config.training.log_every} and "
            f"training.checkpoint_every={config.training.checkpoint_every} (steps are taken {per_call} per call)."
        )
    if config.loss.name not in PREDICTION:
        raise ValueError(
            f"Unknown loss {config.loss.name!r}; choose one of {tuple(PREDICTION)} (config field loss.name)."
        )
    interpolants.get(config.loss.interpolant)
    if config.loss.feature_reduction not in ("mean", "sum"):
        raise ValueError(f"Unknown loss.feature_reduction {config.loss.feature_reduction!r}; choose 'mean' or 'sum'.")
    if config.loss.name != "flow_matching" and config.loss.sigma:
        raise ValueError(f"loss.sigma perturbs flow matching's x_t; set it to 0 with loss.name={config.loss.name!r}.")
    if config.loss.name == "edm" and not config.loss.sigma_data > 0:
        raise ValueError(f"loss.sigma_data must be > 0 (the data's standard deviation), got {config.loss.sigma_data}.")
    classes = datasets.model_classes(config)
    if classes and config.coupling.name != "independent":
        raise ValueError(
            f"model.num_classes={classes} (class-conditional) with coupling.name={config.coupling.name!r}: "
            "a coupling that matches noise across classes would leave each class's noise non-Gaussian, so the "
            "conditional model could not be sampled from N(0, I). Use coupling.name='independent' (or stored pairs)."
        )
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


def init_state(model, tx, example_x: jax.Array, key: jax.Array, conditional: bool = False) -> TrainState:
    # One compiled program: initialised op by op, a small UNet spends most of its setup dispatching ops.
    @jax.jit
    def init(x, k):
        cond = {"y": jnp.zeros((x.shape[0],), jnp.int32)} if conditional else {}
        params = model.init(k, x, jnp.zeros((x.shape[0],)), **cond)["params"]
        return TrainState(jnp.zeros((), jnp.int32), params, params, tx.init(params), None)

    return init(example_x, key)


def from_converted(config: ml_collections.ConfigDict, model, tx, state: TrainState, input_shape) -> TrainState:
    """``state`` with the parameters (and EMA parameters) of the converted network ``model.weights``, checked
    against the model (every shape), its record (hash) and the config's EDM settings (`weights.load_converted`)."""
    path = config.model.weights
    params, record = weights.load_converted(path, model, input_shape, field="model.weights")
    if config.loss.name != "edm":
        raise ValueError(
            f"model.weights={path!r} is an EDM denoiser network, which needs EDM's preconditioning: set "
            f"--config.loss.name=edm (it is {config.loss.name!r})."
        )
    if "sigma_data" in record and float(record["sigma_data"]) != float(config.loss.sigma_data):
        raise ValueError(
            f"model.weights={path!r} was trained with sigma_data={record['sigma_data']}, but loss.sigma_data="
            f"{config.loss.sigma_data}; set --config.loss.sigma_data={record['sigma_data']}."
        )
    params = jax.tree.map(jnp.asarray, params)
    return state.replace(params=params, ema_params=params, opt_state=tx.init(params))


def make_velocity_fn(config: ml_collections.ConfigDict, apply_fn: Callable) -> Callable:
    """``(params, x, t, y=None) -> v``: the network as the velocity field samplers integrate (t = 0 noise).

    An EDM denoiser is read on flowjax's time axis through `edm.velocity` (t = 1 / (1 + sigma), x / (1 + sigma):
    VE lines become the linear interpolant's straight lines), with sigma clipped to [eval.sigma_min,
    eval.sigma_max], the range of EDM's sampling schedule.
    """
    sched = interpolants.schedule(config.loss.interpolant, config.loss.sigma_min)
    prediction = PREDICTION[config.loss.name]

    def velocity_fn(params, x, t, y=None):
        cond = {} if y is None else {"y": y}
        net = lambda p, z, s: apply_fn(p, z, s, **cond)
        if prediction == "edm":
            denoise = edm.denoiser(net, config.loss.sigma_data)
            field = edm.velocity(lambda z, s: denoise(params, z, s), config.eval.sigma_min, config.eval.sigma_max)
            return field(x, t)
        return predictions.to_velocity(lambda z, s: net(params, z, s), prediction, sched)(x, t)

    return velocity_fn


def setup(config: ml_collections.ConfigDict) -> Experiment:
    """Model, optimizer, coupling, data and the initial state of a config (no side effects)."""
    validate(config)
    dataset = datasets.from_config(config)
    model = models.make(config.model)
    tx = make_optimizer(config.optim, config.training.num_steps)
    coupling = couplings.make(config.coupling, axis_name=AXIS, noise_one=dataset.noise_one)
    key = jax.random.PRNGKey(config.training.seed)
    conditional = datasets.model_classes(config) > 0
    state = init_state(model, tx, jnp.zeros((1,) + dataset.shape), jax.random.fold_in(key, 0), conditional)
    if config.model.get("weights"):
        state = from_converted(config, model, tx, state, (1,) + dataset.shape)
    state = state.replace(coupling_state=coupling.init_state(jax.random.fold_in(key, 3), dataset.num_examples))
    apply_fn = lambda params, x, t, **kw: model.apply({"params": params}, x, t, **kw)
    velocity_fn = make_velocity_fn(config, apply_fn)
    match_only = 0
    if config.coupling.match_only_epochs:  # whole epochs in which only the coupling moves
        match_only = config.coupling.match_only_epochs * stream.steps_per_epoch(
            dataset.examples_per_epoch, config.training.batch_size
        )
    return Experiment(model, apply_fn, velocity_fn, tx, coupling, dataset, state, match_only)
