"""Flax velocity networks."""

from __future__ import annotations

import jax.numpy as jnp
from flax import linen as nn

from flowjax.models import mlp, unet

NAMES = ("mlp", "unet")


def _make_unet(cfg) -> unet.UNet:
    """``model.preset`` (a ``unet.PRESETS`` name, or empty) gives the starting kwargs; every config field named
    like a ``unet.UNet`` attribute and not None overrides it. Other fields of the section are ignored."""
    preset = cfg.get("preset") or ""
    if preset and preset not in unet.PRESETS:
        raise ValueError(f"Unknown model.preset {preset!r}; choose one of {sorted(unet.PRESETS)} or ''.")
    kwargs = unet.PRESETS[preset]() if preset else {}
    kwargs.update({f: cfg.get(f) for f in unet.FIELDS if cfg.get(f) is not None})
    for field in ("channel_mults", "attention_resolutions"):
        if isinstance(kwargs.get(field), list):
            kwargs[field] = tuple(kwargs[field])
    unet.check_fields(kwargs, prefix="model.")
    if "dtype" in kwargs:
        try:
            kwargs["dtype"] = jnp.dtype(kwargs["dtype"])
        except TypeError as e:
            raise ValueError(f"model.dtype={kwargs['dtype']!r} is not a dtype (e.g. 'float32', 'bfloat16').") from e
    return unet.UNet(**kwargs)


def make(cfg) -> nn.Module:
    """The Flax module the config section ``model`` names."""
    if cfg.name == "mlp":
        if cfg.activation not in mlp.ACTIVATIONS:
            raise ValueError(f"Unknown model.activation {cfg.activation!r}; choose one of {sorted(mlp.ACTIVATIONS)}.")
        return mlp.MLP(hidden=tuple(cfg.hidden), time_embed_dim=cfg.time_embed_dim, activation=cfg.activation)
    if cfg.name == "unet":
        return _make_unet(cfg)
    raise ValueError(f"Unknown model {cfg.name!r}; choose one of {NAMES} (config field model.name).")
