"""flowjax: flow-based generative models whose trajectories are straight.

Pure pieces (no configs, no train state) compose in a notebook::

    from flowjax import interpolants, losses, couplings, integrators, metrics, predictions

Time convention everywhere: t = 0 is noise (x0 ~ N(0, I)), t = 1 is data (x1).
"""

from flowjax import couplings, integrators, interpolants, losses, metrics, predictions

__all__ = ["couplings", "integrators", "interpolants", "losses", "metrics", "predictions"]
