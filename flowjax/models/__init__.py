"""Flax velocity networks."""
from __future__ import annotations

from flax import linen as nn

from flowjax.models import mlp

NAMES = ("mlp",)


def make(cfg) -> nn.Module:
    """The Flax module the config section ``model`` names."""
    if cfg.name == "mlp":
        if cfg.activation not in mlp.ACTIVATIONS:
            raise ValueError(f"Unknown model.activation {cfg.activation!r}; choose one of {sorted(mlp.ACTIVATIONS)}.")
        return mlp.MLP(hidden=tuple(cfg.hidden), time_embed_dim=cfg.time_embed_dim, activation=cfg.activation)
    raise ValueError(f"Unknown model {cfg.name!r}; choose one of {NAMES} (config field model.name).")
