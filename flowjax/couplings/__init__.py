"""Data-noise couplings. Every one has the call shape
``couple(key, x0, x1, state) -> (x0_paired, x1, state, info)``, noise first; see `base.py`.

`make` builds, from the config section ``coupling``, a `Coupling`: what the training loop needs,
and how it runs, as named fields set here and nowhere else (the loop branches on them):

- ``route``: ``"step"``, solved inside the compiled per-device train step on the minibatch; or
  ``"pools"``, matched by the input stream over pools of ``coupling.match_size`` examples
  (DANSM, Immiscible Diffusion; `pools.PoolStream`), the step training on the pairs as given.
- ``"loss"``: learned (the curvature paper's encoder q_phi(z|x), `encoder.py`): the pairing is a differentiable
  function of the coupling's own parameters, computed inside the loss, whose penalty it adds; the parameters
  (``init_params``) are trained with the network's by the same optimizer and kept in the train state.
- ``stateful``: whether it keeps a state across steps (LOOM-CFM's assignment, checkpointed with
  the train state); a stateless coupling's pairings do not depend on the training state.
- ``scope``: ``"device"`` (each device matches its local minibatch) or ``"global"`` (the minibatch
  is all-gathered and matched once); pool couplings always match the whole global stream.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax

from flowjax.couplings import assignment, dansm, encoder, immiscible, loom, pools
from flowjax.couplings.base import Couple, independent, with_scope
from flowjax.couplings.minibatch_ot import exact_ot, sinkhorn

NAMES = ("independent", "exact_ot", "sinkhorn", "loom", "dansm", "immiscible", "encoder")
ROUTES = ("step", "pools", "loss")
SCOPES = ("device", "global")


class Coupling(NamedTuple):
    """A configured coupling for the training loop.

    ``couple(key, x0, x1, state, index)`` runs inside the pmapped step (``index``: training-set
    indices of the local minibatch) when ``route == "step"``; ``init_state(key, num_train)`` is its
    initial state (None unless ``stateful``); ``pool_match(x1, x0) -> perm`` is the matcher that
    the input stream runs on each pool when ``route == "pools"``. When ``route == "loss"``,
    ``init_params(key, example_x1)`` initialises the coupling's parameters, ``learned(params, x0, x1, rng) ->
    (x0_paired, penalty, info)`` pairs inside the loss (``rng``: the encoder's dropout key; the step adds
    ``penalty`` to the loss) and ``encode(params, x1) -> (mu, log sigma^2)`` is the deterministic encoder
    (evaluation: reconstructions, the aggregate q_phi(z)).
    """

    couple: Callable
    init_state: Callable[[jax.Array, int], Any]
    route: str = "step"
    stateful: bool = False
    scope: str = "device"
    pool_match: Callable | None = None
    init_params: Callable[[jax.Array, jax.Array], Any] | None = None
    learned: Callable | None = None
    encode: Callable | None = None

    @property
    def gathers(self) -> bool:
        """Whether the pairing in the step all-gathers the minibatch across devices (a collective)."""
        return self.route == "step" and self.scope == "global"


def _stateless(couple: Couple, scope: str) -> Coupling:
    return Coupling(lambda key, x0, x1, state, index: couple(key, x0, x1, state), lambda key, n: None, scope=scope)


def _pooled(match: Callable) -> Coupling:
    """A pool coupling: the input stream pairs the data, the step trains on the pairs as given."""
    return Coupling(
        _identity,
        lambda key, n: None,
        route="pools",
        scope="global",
        pool_match=match,
    )


def _identity(key, x0, x1, state, index):  # the step's pairing of a coupling that pairs elsewhere
    return x0, x1, state, {}


ENCODER_FIELDS = ("name", "hidden", "time_embed_dim", "activation", "preset")


def encoder_network_config(cfg, out_channels: int = 0):
    """The ``model``-like section of the encoder network that ``coupling.encoder_*`` describe, its last layer at
    zero (the encoder starts at its prior) and ``out_channels`` outputs."""
    import ml_collections

    net = ml_collections.ConfigDict({f: cfg[f"encoder_{f}"] for f in ENCODER_FIELDS})
    net.out_channels, net.zero_init_output = out_channels, True
    return net


def _learned_encoder(cfg, prior_std: Any) -> Coupling:
    """The curvature paper's encoder coupling (`encoder.py`) with the network ``coupling.encoder_*`` describe."""
    import jax.numpy as jnp

    from flowjax import models

    if not cfg.beta > 0:
        raise ValueError(
            f"coupling.beta must be > 0 (the weight of the KL term, Eq. 11), got {cfg.beta}; None is the "
            "independent coupling (beta -> infinity)."
        )

    # [mu, log sigma^2]: twice the input's channels, zero at init (the prior, as the paper's init_zero: training
    # starts from the independent coupling)
    @functools.cache
    def network(channels: int):
        return models.make(encoder_network_config(cfg, out_channels=2 * channels))

    def apply(params, x, **kw):  # the encoder reads x at its constant time, the noise end (flowjax's t = 0)
        return network(x.shape[-1]).apply({"params": params}, x, jnp.zeros((x.shape[0],), x.dtype), **kw)

    def init_params(key, x):
        return network(x.shape[-1]).init(key, x, jnp.zeros((x.shape[0],), x.dtype))["params"]

    def learned(params, x0, x1, rng):
        encode = lambda x: apply(params, x, train=True, rngs={"dropout": rng})
        return encoder.couple(encode, x0, x1, beta=cfg.beta, prior_std=prior_std)

    return Coupling(
        _identity,
        lambda key, n: None,
        route="loss",
        init_params=init_params,
        learned=learned,
        encode=lambda params, x: encoder.split(apply(params, x)),
    )


def make(cfg, *, axis_name: str | None = None, noise_one: Callable | None = None, prior_std: Any = None) -> Coupling:
    """The coupling the config section ``coupling`` names, with its options bound.

    ``axis_name``: the pmap axis of the train step (matching scope needs it); ``noise_one(key)``
    draws one noise sample (LOOM regenerates its noise from seeds with it); ``prior_std``: the noise's
    per-dimension standard deviation when it is a Gaussian N(0, diag s^2), else None (the encoder's KL needs it).
    """
    name = cfg.name
    if name not in NAMES:
        raise ValueError(f"Unknown coupling {name!r}; choose one of {NAMES} (config field coupling.name).")
    if cfg.scope not in SCOPES:
        raise ValueError(f"Unknown coupling.scope {cfg.scope!r}; choose one of {SCOPES}.")
    if cfg.cost not in assignment.COSTS:
        raise ValueError(f"Unknown coupling.cost {cfg.cost!r}; choose one of {assignment.COSTS}.")
    assignment.resolve_solver(cfg.solver)
    scoped = (lambda c: with_scope(c, cfg.scope, axis_name)) if axis_name is not None else (lambda c: c)
    if name == "independent" or (name == "encoder" and cfg.beta is None):  # beta -> infinity: independent
        return _stateless(independent, "device")  # nothing is matched, so nothing is gathered
    if name == "encoder":
        if prior_std is None:
            raise ValueError(
                "coupling.name='encoder' keeps q_phi(z) near a Gaussian prior (its KL term), but this data's noise "
                "(data.source) is not a Gaussian N(0, diag s^2); use data.source='normal' or 'wide_normal'."
            )
        return _learned_encoder(cfg, prior_std)
    if name == "exact_ot" or (name == "loom" and not cfg.save_assignments):  # LOOM w/o saving = BatchOT
        return _stateless(scoped(functools.partial(exact_ot, solver=cfg.solver, cost=cfg.cost)), cfg.scope)
    if name == "sinkhorn":
        if not cfg.epsilon > 0:
            raise ValueError(f"coupling.epsilon must be > 0 for sinkhorn, got {cfg.epsilon}.")
        if cfg.relative_epsilon not in (None, "mean", "std"):
            raise ValueError(f"coupling.relative_epsilon must be None, 'mean' or 'std', got {cfg.relative_epsilon!r}.")
        return _stateless(
            scoped(
                functools.partial(
                    sinkhorn,
                    epsilon=cfg.epsilon,
                    max_iterations=cfg.max_iterations,
                    relative_epsilon=cfg.relative_epsilon,
                )
            ),
            cfg.scope,
        )
    if name == "loom":
        if cfg.num_caches < 1:
            raise ValueError(f"coupling.num_caches must be >= 1, got {cfg.num_caches}.")
        if noise_one is None:
            raise ValueError("couplings.make: LOOM needs noise_one (the noise sampler) to regenerate noise from seeds.")
        step = functools.partial(
            loom.couple,
            noise_one=noise_one,
            cost=cfg.cost,
            solver=cfg.solver,
            reassign=cfg.reassign,
            scope=cfg.scope,
            axis_name=axis_name,
        )
        return Coupling(
            lambda key, x0, x1, state, index: step(key, x0, x1, state, index=index),
            lambda key, n: loom.init_state(key, n, cfg.num_caches),
            stateful=True,
            scope=cfg.scope,
        )
    if cfg.match_size < 0:
        raise ValueError(f"coupling.match_size must be >= 0 (0: the global batch), got {cfg.match_size}.")
    if name == "dansm":
        return _pooled(dansm.greedy_pairing)
    return _pooled(functools.partial(immiscible.pairing, cost=cfg.cost, solver=cfg.solver))


__all__ = [
    "Couple",
    "Coupling",
    "NAMES",
    "ROUTES",
    "SCOPES",
    "assignment",
    "dansm",
    "encoder",
    "exact_ot",
    "immiscible",
    "independent",
    "loom",
    "make",
    "pools",
    "sinkhorn",
    "with_scope",
]
