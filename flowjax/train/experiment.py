"""What a config builds, with no side effects: data, model, optimizer, coupling and the initial state."""

from __future__ import annotations

import os
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax

from flowjax import couplings, edm, interpolants, lmm, models, predictions
from flowjax.data import dataset as datasets
from flowjax.data import pairs, stream
from flowjax.models import weights
from flowjax.train import lmm_stages
from flowjax.train.step import AXIS, PREDICTION, TrainState, make_optimizer, trainable


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
    frozen: Any = None  # pretrained weights the step reads but never trains (LMM's VGG16), passed as an argument
    real: datasets.Dataset | None = None  # LMM's adversarial stage: real images of the teacher's data set

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
    if config.loss.name == "lines":
        validate_lines(config, check_teacher=False)  # a resumed run or an evaluation does not read the teacher
    classes = datasets.model_classes(config)
    if classes and config.coupling.name != "independent":
        raise ValueError(
            f"model.num_classes={classes} (class-conditional) with coupling.name={config.coupling.name!r}: "
            "a coupling that matches noise across classes would leave each class's noise non-Gaussian, so the "
            "conditional model could not be sampled from N(0, I). Use coupling.name='independent' (or stored pairs)."
        )
    if config.coupling.name == "encoder" and config.coupling.beta is not None:
        validate_encoder(config)
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


def validate_encoder(config: ml_collections.ConfigDict) -> None:
    """The curvature paper's learned encoder coupling (coupling.name = "encoder", a finite coupling.beta)."""
    if config.loss.name != "flow_matching":
        raise ValueError(
            f"coupling.name='encoder' learns its coupling through the flow-matching loss (the curvature paper, "
            f"Eq. 11); set loss.name='flow_matching' (it is {config.loss.name!r})."
        )
    if datasets.prior_std(config.data) is None:
        raise ValueError(
            f"coupling.name='encoder' keeps q_phi(z) near a Gaussian prior, but data.source={config.data.source!r} "
            "is not one; use data.source='normal' (or 'wide_normal', the curvature paper's 2-D toy prior)."
        )
    if config.coupling.encoder_name not in models.NAMES:
        raise ValueError(
            f"Unknown coupling.encoder_name {config.coupling.encoder_name!r}; choose one of {models.NAMES}."
        )


def lines_commands(config: ml_collections.ConfigDict, workdir: str = "runs/lmm") -> str:
    """The teacher -> pairs -> LMM commands of an LMM config (lmm.teacher names the teacher's config)."""
    name, _, variant = config.lmm.teacher.partition(":")  # e.g. "edm_cifar10:uncond"
    variant = f":{variant}" if variant else ""
    teacher = f"configs/{name}.py{variant}" if name else "<EDM teacher config>"
    lmm_config = f"configs/lmm_{name[4:]}.py{variant}" if name.startswith("edm_") else "<LMM config>"
    return (
        f"  1. the EDM teacher: python main.py --config={teacher} --workdir={workdir}/teacher\n"
        "     (or convert NVlabs' released network: python scripts/convert_edm_weights.py --state_dict=<exported "
        f'state dict> --out={workdir}/teacher.npz; README, "EDM teachers")\n'
        f"  2. its Heun pairs: python main.py --config={teacher} --workdir={workdir}/teacher --mode=pairs\n"
        f"     (from a converted network: add --config.model.weights={workdir}/teacher.npz)\n"
        f"  3. LMM: python main.py --config={lmm_config} --workdir={workdir}/student "
        f"--config.data.data_dir={workdir}/teacher/pairs --config.training.init_from={workdir}/teacher\n"
        f"     (from a converted network: --config.model.weights={workdir}/teacher.npz instead of init_from)"
    )


def validate_lines(config: ml_collections.ConfigDict, check_teacher: bool = True) -> None:
    """A Lines Matching Models run (loss.name = "lines"): its lmm section, and its inputs (the teacher's pairs and,
    with lmm.from_teacher and ``check_teacher``, the teacher's weights, which only a run's start reads) checked to
    exist before anything is written; what is missing is named together with the commands that provide it."""
    if datasets.kind(config.data) != "pairs":
        raise ValueError(
            f"loss.name='lines' (Lines Matching Models) trains on a teacher's (x0, x1) pairs, but data.name="
            f"{config.data.name!r}: set --config.data.name=pairs and --config.data.data_dir=<pairs directory>. "
            "The commands:\n" + lines_commands(config)
        )
    missing, data_dir = [], config.data.data_dir
    if not data_dir:
        missing.append("the teacher's pairs (config field data.data_dir is empty)")
    elif not os.path.isfile(os.path.join(data_dir, pairs.MANIFEST)):
        missing.append(f"the teacher's pairs (data.data_dir={data_dir!r} holds no pairs manifest)")
    init_from, weights = config.training.init_from, config.model.get("weights")
    if check_teacher and config.lmm.from_teacher and not init_from and not weights:
        missing.append(
            "the teacher's weights (training.init_from or model.weights; lmm.from_teacher=False trains from scratch)"
        )
    elif check_teacher and init_from and not os.path.isdir(os.path.join(init_from, "checkpoints")):
        missing.append(f"the teacher's weights (training.init_from={init_from!r} has no checkpoints)")
    if missing:
        raise ValueError(
            "Lines Matching Models needs " + " and ".join(missing) + ". Nothing was written. The commands that "
            "provide them:\n" + lines_commands(config)
        )
    lm = config.lmm
    if lm.sigma not in lmm.SIGMA_DISTRIBUTIONS:
        raise ValueError(f"Unknown lmm.sigma {lm.sigma!r}; choose one of {lmm.SIGMA_DISTRIBUTIONS}.")
    if lm.weighting not in lmm.WEIGHTINGS:
        raise ValueError(f"Unknown lmm.weighting {lm.weighting!r}; choose one of {lmm.WEIGHTINGS}.")
    if lm.norm not in lmm.NORMS:
        raise ValueError(f"Unknown lmm.norm {lm.norm!r}; choose one of {lmm.NORMS}.")
    if not isinstance(lm.num_steps, int) or lm.num_steps < 1:
        raise ValueError(f"lmm.num_steps must be a positive integer (the teacher's N), got {lm.num_steps!r}.")
    if lm.sot_steps:
        if lm.sigma != "karras":
            raise ValueError(
                f"lmm.sot_steps={tuple(lm.sot_steps)} restricts training to those levels of the Karras schedule; "
                f"set lmm.sigma='karras' (it is {lm.sigma!r})."
            )
        lmm.check_steps(lm.sot_steps, lm.num_steps, "lmm.sot_steps")
    if not lm.lines_weight > 0:
        raise ValueError(f"lmm.lines_weight must be > 0, got {lm.lines_weight}.")
    if not config.loss.sigma_data > 0:
        raise ValueError(
            f"loss.sigma_data must be > 0 (EDM's preconditioning of N_theta), got {config.loss.sigma_data}."
        )
    lmm_stages.check(config)


def init_state(model, tx, example_x: jax.Array, key: jax.Array, conditional: bool = False) -> TrainState:
    # One compiled program: initialised op by op, a small UNet spends most of its setup dispatching ops.
    @jax.jit
    def init(x, k):
        cond = {"y": jnp.zeros((x.shape[0],), jnp.int32)} if conditional else {}
        params = model.init(k, x, jnp.zeros((x.shape[0],)), **cond)["params"]
        return TrainState(jnp.zeros((), jnp.int32), params, params, tx.init(params), None)

    return init(example_x, key)


def init_coupling_params(coupling, tx, state: TrainState, example_x: jax.Array, key: jax.Array) -> TrainState:
    """``state`` with a learned coupling's initial parameters (and their EMA), and the one optimizer's state of
    the network's and the coupling's parameters together; one compiled program, as `init_state`."""

    @jax.jit
    def init(state, x, k):
        phi = coupling.init_params(k, x)
        state = state.replace(coupling_params={"params": phi, "ema_params": phi})
        return state.replace(opt_state=tx.init(trainable(state)))

    return init(state, example_x, key)


def from_converted(config: ml_collections.ConfigDict, model, tx, state: TrainState, input_shape) -> TrainState:
    """``state`` with the parameters (and EMA parameters) of the converted network ``model.weights``, checked
    against the model (every shape), its record (hash) and the config's EDM settings (`weights.load_converted`)."""
    path = config.model.weights
    params, record = weights.load_converted(path, model, input_shape, field="model.weights")
    if PREDICTION[config.loss.name] != "edm":
        raise ValueError(
            f"model.weights={path!r} is an EDM denoiser network, which needs EDM's preconditioning: set "
            f"--config.loss.name=edm, or lines for Lines Matching Models (it is {config.loss.name!r})."
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
    coupling = couplings.make(
        config.coupling, axis_name=AXIS, noise_one=dataset.noise_one, prior_std=datasets.prior_std(config.data)
    )
    key = jax.random.PRNGKey(config.training.seed)
    conditional = datasets.model_classes(config) > 0
    state = init_state(model, tx, jnp.zeros((1,) + dataset.shape), jax.random.fold_in(key, 0), conditional)
    if config.model.get("weights"):
        state = from_converted(config, model, tx, state, (1,) + dataset.shape)
    state = state.replace(coupling_state=coupling.init_state(jax.random.fold_in(key, 3), dataset.num_examples))
    if coupling.init_params is not None:  # a learned coupling: trained with the network by the one optimizer
        state = init_coupling_params(coupling, tx, state, jnp.zeros((1,) + dataset.shape), jax.random.fold_in(key, 6))
    apply_fn = lambda params, x, t, **kw: model.apply({"params": params}, x, t, **kw)
    velocity_fn = make_velocity_fn(config, apply_fn)
    frozen, real = lmm_stages.frozen_params(config), None
    if lmm_stages.adversarial_stage(config):  # the discriminator is part of the state (and of checkpoints)
        disc = lmm_stages.init_discriminator(
            config, jax.random.fold_in(key, 5), jnp.zeros((1,) + dataset.shape), frozen
        )
        state = state.replace(disc=disc)
        real = datasets.from_config(real_data_config(config))
    match_only = 0
    if config.coupling.match_only_epochs:  # whole epochs in which only the coupling moves
        match_only = config.coupling.match_only_epochs * stream.steps_per_epoch(
            dataset.examples_per_epoch, config.training.batch_size
        )
    return Experiment(model, apply_fn, velocity_fn, tx, coupling, dataset, state, match_only, frozen, real)


def real_data_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """``config`` with the teacher's data (from the pairs' manifest) in place of the pairs: the real images of
    LMM's adversarial stage (Eq. 5: real data, not the teacher's samples), read in an order of their own
    (training.seed + 1)."""
    from flowjax import rectify  # rectify imports the training package

    config = rectify.evaluation_config(config)
    with config.unlocked():
        config.training.seed = config.training.seed + 1
    return config
