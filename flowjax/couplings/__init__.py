"""Data-noise couplings. Every one has the call shape
``couple(key, x1, x0, state) -> (x0_paired, x1, state, info)``; see `base.py`."""
from __future__ import annotations

import functools

from flowjax.couplings import assignment
from flowjax.couplings.base import Couple, independent
from flowjax.couplings.minibatch_ot import exact_ot, sinkhorn

NAMES = ("independent", "exact_ot", "sinkhorn")


def make(cfg) -> Couple:
    """The coupling the config section ``coupling`` names, with its options bound."""
    if cfg.name == "independent":
        return independent
    if cfg.name == "exact_ot":
        assignment.resolve_solver(cfg.solver)
        return functools.partial(exact_ot, solver=cfg.solver)
    if cfg.name == "sinkhorn":
        if not cfg.epsilon > 0:
            raise ValueError(f"coupling.epsilon must be > 0 for sinkhorn, got {cfg.epsilon}.")
        if cfg.relative_epsilon not in (None, "mean", "std"):
            raise ValueError(f"coupling.relative_epsilon must be None, 'mean' or 'std', got {cfg.relative_epsilon!r}.")
        return functools.partial(sinkhorn, epsilon=cfg.epsilon, max_iterations=cfg.max_iterations,
                                 relative_epsilon=cfg.relative_epsilon)
    raise ValueError(f"Unknown coupling {cfg.name!r}; choose one of {NAMES} (config field coupling.name).")


__all__ = ["Couple", "NAMES", "assignment", "exact_ot", "independent", "make", "sinkhorn"]
