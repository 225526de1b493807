"""Data-noise couplings. Every one has the call shape
``couple(key, x1, x0, state) -> (x0_paired, x1, state, info)``; see `base.py`.

`make` builds, from the config section ``coupling``, what the training loop needs: the per-device
coupling of the train step, its initial state, and for pool couplings (DANSM, Immiscible) the pool
matcher that the input stream runs on ``match_size`` examples at a time.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax

from flowjax.couplings import assignment, dansm, immiscible, loom
from flowjax.couplings.base import Couple, independent, with_scope
from flowjax.couplings.minibatch_ot import exact_ot, sinkhorn

NAMES = ("independent", "exact_ot", "sinkhorn", "loom", "dansm", "immiscible")
POOL_NAMES = ("dansm", "immiscible")
SCOPES = ("device", "global")


class Coupling(NamedTuple):
    """A configured coupling for the training loop.

    ``couple(key, x1, x0, state, index)`` runs inside the pmapped step (``index``: training-set
    indices of the local minibatch); ``init_state(key, num_train)`` is its initial state (None if
    stateless); ``pool_match(x1, x0) -> perm`` is set for pool couplings, whose pairs the input
    stream prepares (the step then trains on them as given).
    """

    couple: Callable
    init_state: Callable[[jax.Array, int], Any]
    pool_match: Callable | None = None


def _stateless(couple: Couple) -> Coupling:
    return Coupling(lambda key, x1, x0, state, index: couple(key, x1, x0, state), lambda key, n: None)


def _as_given(key, x1, x0, state, index):
    """Pairs prepared by the input stream (pool couplings): trained on as given."""
    return x0, x1, state, {}


def make(cfg, *, axis_name: str | None = None, source_one: Callable | None = None) -> Coupling:
    """The coupling the config section ``coupling`` names, with its options bound.

    ``axis_name``: the pmap axis of the train step (matching scope needs it); ``source_one(key)``
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
        return _stateless(independent)
    if name == "exact_ot" or (name == "loom" and not cfg.save_assignments):  # LOOM w/o saving = BatchOT
        return _stateless(scoped(functools.partial(exact_ot, solver=cfg.solver, cost=cfg.cost)))
    if name == "sinkhorn":
        if not cfg.epsilon > 0:
            raise ValueError(f"coupling.epsilon must be > 0 for sinkhorn, got {cfg.epsilon}.")
        if cfg.relative_epsilon not in (None, "mean", "std"):
            raise ValueError(f"coupling.relative_epsilon must be None, 'mean' or 'std', got {cfg.relative_epsilon!r}.")
        return _stateless(scoped(functools.partial(sinkhorn, epsilon=cfg.epsilon, max_iterations=cfg.max_iterations,
                                                   relative_epsilon=cfg.relative_epsilon)))
    if name == "loom":
        if cfg.num_caches < 1:
            raise ValueError(f"coupling.num_caches must be >= 1, got {cfg.num_caches}.")
        if source_one is None:
            raise ValueError("couplings.make: LOOM needs source_one (the noise sampler) to regenerate noise from seeds.")
        step = functools.partial(loom.couple, source_one=source_one, cost=cfg.cost, solver=cfg.solver,
                                 reassign=cfg.reassign, scope=cfg.scope, axis_name=axis_name)
        return Coupling(lambda key, x1, x0, state, index: step(key, x1, x0, state, index=index),
                        lambda key, n: loom.init_state(key, n, cfg.num_caches))
    if cfg.match_size < 0:
        raise ValueError(f"coupling.match_size must be >= 0 (0: the global batch), got {cfg.match_size}.")
    if name == "dansm":
        return Coupling(_as_given, lambda key, n: None, dansm.greedy_pairing)
    return Coupling(_as_given, lambda key, n: None,
                    functools.partial(immiscible.pairing, cost=cfg.cost, solver=cfg.solver))


__all__ = ["Couple", "Coupling", "NAMES", "assignment", "dansm", "exact_ot", "immiscible", "independent", "loom",
           "make", "sinkhorn", "with_scope"]
