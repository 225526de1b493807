"""Data-noise couplings. Every one has the call shape
``couple(key, x0, x1, state) -> (x0_paired, x1, state, info)``, noise first; see `base.py`.

`make` builds, from the config section ``coupling``, a `Coupling`: what the training loop needs,
and how it runs, as named fields set here and nowhere else (the loop branches on them):

- ``route``: ``"step"``, solved inside the compiled per-device train step on the minibatch; or
  ``"pools"``, matched by the input stream over pools of ``coupling.match_size`` examples
  (DANSM, Immiscible Diffusion; `pools.PoolStream`), the step training on the pairs as given.
- ``stateful``: whether it keeps a state across steps (LOOM-CFM's assignment, checkpointed with
  the train state); a stateless coupling's pairings do not depend on the training state.
- ``scope``: ``"device"`` (each device matches its local minibatch) or ``"global"`` (the minibatch
  is all-gathered and matched once); pool couplings always match the whole global stream.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax

from flowjax.couplings import assignment, dansm, immiscible, loom, pools
from flowjax.couplings.base import Couple, independent, with_scope
from flowjax.couplings.minibatch_ot import exact_ot, sinkhorn

NAMES = ("independent", "exact_ot", "sinkhorn", "loom", "dansm", "immiscible")
ROUTES = ("step", "pools")
SCOPES = ("device", "global")


class Coupling(NamedTuple):
    """A configured coupling for the training loop.

    ``couple(key, x0, x1, state, index)`` runs inside the pmapped step (``index``: training-set
    indices of the local minibatch) when ``route == "step"``; ``init_state(key, num_train)`` is its
    initial state (None unless ``stateful``); ``pool_match(x1, x0) -> perm`` is the matcher that
    the input stream runs on each pool when ``route == "pools"``.
    """

    couple: Callable
    init_state: Callable[[jax.Array, int], Any]
    route: str = "step"
    stateful: bool = False
    scope: str = "device"
    pool_match: Callable | None = None

    @property
    def gathers(self) -> bool:
        """Whether the pairing in the step all-gathers the minibatch across devices (a collective)."""
        return self.route == "step" and self.scope == "global"


def _stateless(couple: Couple, scope: str) -> Coupling:
    return Coupling(lambda key, x0, x1, state, index: couple(key, x0, x1, state), lambda key, n: None, scope=scope)


def _pooled(match: Callable) -> Coupling:
    """A pool coupling: the input stream pairs the data, the step trains on the pairs as given."""
    return Coupling(
        lambda key, x0, x1, state, index: (x0, x1, state, {}),
        lambda key, n: None,
        route="pools",
        scope="global",
        pool_match=match,
    )


def make(cfg, *, axis_name: str | None = None, noise_one: Callable | None = None) -> Coupling:
    """The coupling the config section ``coupling`` names, with its options bound.

    ``axis_name``: the pmap axis of the train step (matching scope needs it); ``noise_one(key)``
    draws one noise sample (LOOM regenerates its noise from seeds with it).
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
    if name == "independent":
        return _stateless(independent, "device")  # nothing is matched, so nothing is gathered
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
    "exact_ot",
    "immiscible",
    "independent",
    "loom",
    "make",
    "pools",
    "sinkhorn",
    "with_scope",
]
