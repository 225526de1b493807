"""The pure per-device train step: pairing (noise, coupling) and update (loss, Adam, EMA).

Run under `jax.pmap` (axis ``"batch"``), gradients averaged with `lax.pmean`; the coupling is solved
inside the step on each device's local minibatch (or, with ``coupling.scope = "global"``, on the
all-gathered one).

Randomness is device-count invariant: the noise and the time of example j of a global batch are drawn
from ``fold_in(step_key, j)`` (`keys.per_index_keys`), so the same global batch gives the same loss and
gradient on 1 or N devices (for couplings solved per device, up to how the batch is split).
"""

from __future__ import annotations

from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax import lax

from flowjax import couplings, edm, interpolants, lmm, losses
from flowjax.keys import per_index_keys
from flowjax.train import lmm_stages

AXIS = "batch"
# What the network predicts for each loss.name: a velocity (flow matching), the noise (DDPM's epsilon loss), or
# EDM's preconditioned denoiser output F (Karras et al. 2022, Eq. 7: D = c_skip x + c_out F(c_in x, c_noise)).
# Lines Matching Models' N_theta is an EDM denoiser too (`flowjax.lmm`).
PREDICTION = {"flow_matching": "velocity", "epsilon": "epsilon", "edm": "edm", "lines": "edm"}


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    ema_params: Any
    opt_state: Any
    coupling_state: Any = None
    disc: Any = None  # LMM's discriminator {"params", "projection", "opt_state"} (lmm_stages), else None
    # A learned coupling's parameters {"params", "ema_params"} (the curvature paper's encoder), else None. They are
    # trained with `params` by one optimizer: opt_state is then the state of (params, coupling_params["params"]).
    coupling_params: Any = None


def trainable(state: TrainState) -> Any:
    """What the optimizer updates: the network's parameters, and a learned coupling's with them."""
    if state.coupling_params is None:
        return state.params
    return state.params, state.coupling_params["params"]


def with_trainable(state: TrainState, new: Any, new_ema: Any) -> TrainState:
    """``state`` with `trainable`'s parameters and their EMA replaced."""
    if state.coupling_params is None:
        return state.replace(params=new, ema_params=new_ema)
    coupling_params = {"params": new[1], "ema_params": new_ema[1]}
    return state.replace(params=new[0], ema_params=new_ema[0], coupling_params=coupling_params)


def ema_of(state: TrainState) -> Any:
    """The EMA of `trainable`'s parameters."""
    if state.coupling_params is None:
        return state.ema_params
    return state.ema_params, state.coupling_params["ema_params"]


def make_optimizer(cfg: ml_collections.ConfigDict, num_steps: int) -> optax.GradientTransformation:
    """Adam(W) with linear warm-up, then constant or cosine decay; global-norm clipping first."""
    lr, warmup = cfg.learning_rate, cfg.warmup_steps
    if cfg.schedule == "constant":
        schedule = (
            optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), optax.constant_schedule(lr)], [warmup])
            if warmup > 0
            else optax.constant_schedule(lr)
        )
    elif cfg.schedule == "cosine":
        schedule = optax.warmup_cosine_decay_schedule(0.0, lr, warmup, max(num_steps, warmup + 1))
    else:
        raise ValueError(f"Unknown optim.schedule {cfg.schedule!r}; choose 'constant' or 'cosine'.")
    name = cfg.get("name", "adam")
    if name == "adam":
        adam = optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay)
    elif name == "radam":  # Rectified Adam (Liu et al. 2020), LMM's optimizer for G and D (Table 6)
        if cfg.weight_decay:
            raise ValueError("optim.name='radam' has no weight decay here; set optim.weight_decay=0.")
        adam = optax.radam(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps)
    else:
        raise ValueError(f"Unknown optim.name {name!r}; choose 'adam' or 'radam'.")
    return optax.chain(optax.clip_by_global_norm(cfg.grad_clip), adam) if cfg.grad_clip > 0 else adam


def lines_sigma_options(config: ml_collections.ConfigDict) -> dict:
    """`lmm.sample_sigma`'s options of a config: the lmm section's distribution on the teacher's Karras schedule
    (eval.sigma_min, eval.sigma_max, eval.rho: the levels the teacher's pairs and the LMM samplers use)."""
    return {
        "distribution": config.lmm.sigma,
        "num_steps": config.lmm.num_steps,
        "steps": tuple(config.lmm.sot_steps),
        "sigma_min": config.eval.sigma_min,
        "sigma_max": config.eval.sigma_max,
        "rho": config.eval.rho,
        "p_mean": config.loss.p_mean,
        "p_std": config.loss.p_std,
    }


def lines_distance(config: ml_collections.ConfigDict, frozen: Any = None, stage: int = 1) -> Callable:
    """The lines loss's per-example distance (lmm.norm); "lpips" reads the VGG16 of ``frozen`` (an argument of the
    step), at lmm.lpips_resize in stage 1 and lmm.adv_lpips_resize in stage 2 (LMM App. A.4: 64x64, then 224)."""
    if config.lmm.norm != "lpips":
        return lmm.distance(config.lmm.norm)
    if frozen is None:
        raise ValueError("lmm.norm='lpips' needs the VGG16 weights passed to the step (lmm_stages.frozen_params).")
    from flowjax.models import lpips

    size = (config.lmm.adv_lpips_resize if stage == 2 else config.lmm.lpips_resize) or None
    return lmm.distance("lpips", lambda p, x: lpips.lpips(frozen["vgg"], p, x, resize=size))


def make_train_step(
    config: ml_collections.ConfigDict,
    apply_fn: Callable,
    tx: optax.GradientTransformation,
    coupling: couplings.Coupling,
    noise_one: Callable,
    *,
    noise_in_batch: bool = False,
    match_only_steps: int = 0,
    split: bool = False,
    stage: int = 1,
) -> Callable:
    """Per-device step ``(state, batch, key, frozen=None) -> (state, metrics)``; run it under pmap(axis 'batch').

    ``apply_fn(params, x, t, **kw)`` is the network, called with ``train=True`` and a per-device dropout rng.
    With ``loss.name = "edm"`` its time input is EDM's c_noise(sigma) and the loss is `losses.edm_loss` on the
    VE path x1 + sigma x0, ln sigma ~ N(loss.p_mean, loss.p_std^2) (Karras et al. 2022, Sec. 5 and Table 1).

    ``batch``: {"x1": [b, ...] data, "index": [b] training-set indices (-1 for a fresh stream)}, with
    ``model.num_classes > 0`` "label" [b] (class indices the network is conditioned on, ``y=``), and with
    ``noise_in_batch`` the noise "x0" [b, ...] the input stream has already paired (pool couplings, stored
    pairs); otherwise the step draws it with ``noise_one(key)``. ``coupling.couple(key, x0, x1,
    coupling_state, index)`` pairs them (a pool coupling's keeps the pairs as given); a learned
    coupling (``coupling.route == "loss"``, the curvature paper's encoder) re-pairs them inside the loss with
    ``state.coupling_params``, adds its penalty (beta KL) to the loss, and is updated with the network by the same
    optimizer and EMA. During the first
    ``match_only_steps`` steps only the coupling state changes (LOOM-CFM's "train after convergence").

    With ``training.steps_per_call = K > 1`` the function takes K steps, ``(state, batches, keys)`` with
    the leaves of ``batches`` [K, b, ...] and ``keys`` [K], and returns the metrics of each step ([K]).
    Each step is the single step's computation on its own batch and key; a coupling that is not
    ``stateful`` has its K pairings computed first, together (the K host assignments of exact OT run on all CPU cores).
    ``split=True`` returns the two parts of a stateless coupling's K steps: ``pairings(batches, keys)``
    and ``updates(state, paired, keys, frozen=None) -> (state, metrics)``.

    Lines Matching Models (``loss.name = "lines"``, `flowjax.lmm`): the lines loss on stored pairs; ``frozen``
    holds the pretrained weights its perceptual loss and discriminator read (`lmm_stages.frozen_params`), passed
    as an argument, not closed over. ``stage=2`` is its adversarial stage (`lmm_stages`): the batch also
    carries "real" images of the teacher's data set (and "real_label"), and the state's discriminator is trained.
    """
    interp = interpolants.get(config.loss.interpolant, config.loss.sigma_min)
    sched = interpolants.schedule(config.loss.interpolant, config.loss.sigma_min)
    sample_t = losses.get_time_sampler(config.loss.time_sampler, config.loss.time_mean, config.loss.time_std)
    sigma, decay = config.loss.sigma, config.training.ema_decay
    ema_warmup, ema_start = config.training.get("ema_warmup", True), config.training.get("ema_start", 0)
    if config.loss.name == "lines":
        lines_sigma = lines_sigma_options(config)

    def per_example(key, b):
        return per_index_keys(key, lax.axis_index(AXIS) * b + jnp.arange(b))  # position in the global batch

    def pair(coupling_state, batch: dict, key: jax.Array):
        x1 = batch["x1"]
        k_src, _, _, k_cpl = jax.random.split(key, 4)
        x0 = batch["x0"] if noise_in_batch else jax.vmap(noise_one)(per_example(k_src, x1.shape[0]))
        # Labels stay with their x1: conditional runs use couplings that keep x1's order (`experiment.validate`).
        extra = {k: batch[k] for k in ("real", "real_label") if k in batch}  # LMM's second stage
        return (*coupling.couple(k_cpl, x0, x1, coupling_state, batch["index"]), batch.get("label"), extra)

    def update(state: TrainState, paired: tuple, key: jax.Array, frozen: Any = None):
        x0, x1, coupling_state, info, labels, extra = paired
        _, k_t, k_sig, _ = jax.random.split(key, 4)
        b = x1.shape[0]
        if config.loss.name == "edm":  # EDM's noise level sigma takes the place of the time t
            draw = lambda k: edm.sample_sigma(k, 1, config.loss.p_mean, config.loss.p_std)[0]
        elif config.loss.name == "lines":  # so it does for LMM's N_theta, on the teacher's Karras levels
            draw = lambda k: lmm.sample_sigma(k, 1, **lines_sigma)[0]
        else:
            draw = lambda k: sample_t(k, 1)[0]
        t = jax.vmap(draw)(per_example(k_t, b))
        noise = jax.vmap(lambda k: jax.random.normal(k, x1.shape[1:]))(per_example(k_sig, b)) if sigma > 0 else None
        k_drop = jax.random.fold_in(jax.random.fold_in(key, 7), lax.axis_index(AXIS))
        cond = {} if labels is None else {"y": labels}
        net = lambda p, x, s: apply_fn(p, x, s, train=True, rngs={"dropout": k_drop}, **cond)

        # the losses average over features; "sum" scales by their number (DDPM's code sums over pixels)
        scale = float(np.prod(x1.shape[1:])) if config.loss.feature_reduction == "sum" else 1.0

        def lines_fn(params):  # (lambda_lines L_lines, the predictions N_theta(x1 + sigma x0, sigma))
            denoise = edm.denoiser(net, config.loss.sigma_data)
            dist = lines_distance(config, frozen, stage)
            weight = (lambda s: edm.loss_weight(s, config.loss.sigma_data)) if config.lmm.weighting == "edm" else None
            lines, pred = lmm.lines_loss(denoise, params, x0, x1, t, distance_fn=dist, weight_fn=weight)
            return scale * config.lmm.lines_weight * lines, pred

        def loss_fn(trained):  # (the loss, a learned coupling's info)
            if coupling.route != "loss":
                return network_loss(trained, x0), {}
            params, phi = trained
            z, penalty, coupling_info = coupling.learned(phi, x0, x1, jax.random.fold_in(k_drop, 1))
            return network_loss(params, z) + scale * penalty, coupling_info

        def network_loss(params, x0):
            if config.loss.name == "lines":
                return lines_fn(params)[0]
            if config.loss.name == "edm":
                denoise = edm.denoiser(net, config.loss.sigma_data)
                return scale * losses.edm_loss(denoise, params, x0, x1, t, sigma_data=config.loss.sigma_data)
            if config.loss.name == "epsilon":
                return scale * losses.epsilon_loss(net, params, x0, x1, t, schedule=sched)
            return scale * losses.flow_matching_loss(
                net, params, x0, x1, t, interpolant=interp, sigma=sigma, noise=noise
            )

        disc, stage_metrics, old = state.disc, {}, trainable(state)
        if stage == 2:  # LMM's adversarial stage: gradients already averaged over the devices
            loss, grads, disc, stage_metrics = lmm_stages.generator_and_discriminator_step(
                config,
                lines_fn,
                state.params,
                state.disc,
                frozen,
                labels,
                extra["real"],
                extra.get("real_label"),
                key,
                AXIS,
            )
        else:
            (loss, coupling_info), grads = jax.value_and_grad(loss_fn, has_aux=True)(old)
            grads = lax.pmean(grads, AXIS)
            info = {**info, **coupling_info}
        updates, opt_state = tx.update(grads, state.opt_state, old)
        params = optax.apply_updates(old, updates)
        # EMA warm-up (as TF's ExponentialMovingAverage with num_updates): early averages forget the init; or a
        # constant decay (training.ema_warmup=False); the EMA equals the parameters before training.ema_start.
        rate = jnp.minimum(decay, (1.0 + state.step) / (10.0 + state.step)) if ema_warmup else jnp.asarray(decay)
        rate = jnp.where(state.step < ema_start, 0.0, rate)
        ema = optax.incremental_update(params, ema_of(state), 1.0 - rate)
        if match_only_steps:
            keep = state.step < match_only_steps
            params, opt_state, ema = jax.tree.map(
                lambda a, b: jnp.where(keep, a, b), (old, state.opt_state, ema_of(state)), (params, opt_state, ema)
            )
        metrics = lax.pmean({"loss": loss, "grad_norm": optax.global_norm(grads), **info, **stage_metrics}, AXIS)
        new_state = with_trainable(state, params, ema).replace(
            step=state.step + 1, opt_state=opt_state, coupling_state=coupling_state, disc=disc
        )
        return new_state, metrics

    def step(state: TrainState, batch: dict, key: jax.Array, frozen: Any = None):
        return update(state, pair(state.coupling_state, batch, key), key, frozen)

    def pairings(batches: dict, keys: jax.Array):  # a stateless coupling's K pairings, [K, b, ...]
        return jax.vmap(lambda batch, key: pair(None, batch, key))(batches, keys)

    def updates(state: TrainState, paired: tuple, keys: jax.Array, frozen: Any = None):
        return lax.scan(lambda st, xs: update(st, *xs, frozen), state, (paired, keys))

    def steps(state: TrainState, batches: dict, keys: jax.Array, frozen: Any = None):
        if coupling.stateful:  # each pairing reads the state the previous step wrote
            return lax.scan(lambda st, xs: step(st, *xs, frozen), state, (batches, keys))
        return updates(state, pairings(batches, keys), keys, frozen)  # the K pairings do not depend on the state

    if split:
        return pairings, updates
    return step if config.training.steps_per_call <= 1 else steps  # 0: chosen by the loop, which passes K
