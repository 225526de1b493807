"""Flax velocity networks."""

from __future__ import annotations

import jax.numpy as jnp
from flax import linen as nn

from flowjax.models import edm_unet, mlp, unet

NAMES = ("mlp", "unet")


def _dtype(kwargs: dict) -> None:
    if "dtype" in kwargs:
        try:
            kwargs["dtype"] = jnp.dtype(kwargs["dtype"])
        except TypeError as e:
            raise ValueError(f"model.dtype={kwargs['dtype']!r} is not a dtype (e.g. 'float32', 'bfloat16').") from e


def _config_fields(cfg) -> dict:
    """The config's UNet fields that are set (not None), tuples as tuples."""
    kwargs = {f: cfg.get(f) for f in unet.FIELDS if cfg.get(f) is not None}
    for field in ("channel_mults", "attention_resolutions"):
        if isinstance(kwargs.get(field), list):
            kwargs[field] = tuple(kwargs[field])
    return kwargs


def _make_unet(cfg) -> nn.Module:
    """``model.preset`` (a ``unet.PRESETS`` or ``edm_unet.PRESETS`` name, or empty) gives the starting kwargs;
    every config field named like a ``unet.UNet`` attribute and not None overrides it. Other fields of the
    section are ignored. An EDM preset builds ``edm_unet.EDMUNet``, whose fields are a subset of the UNet's
    (a set field it lacks is refused: it would be silently ignored otherwise)."""
    preset = cfg.get("preset") or ""
    if preset in edm_unet.PRESETS:
        kwargs = edm_unet.PRESETS[preset]()
        fields = _config_fields(cfg)
        foreign = sorted(set(fields) - set(edm_unet.FIELDS))
        if foreign:
            raise ValueError(
                f"model.{foreign[0]}={fields[foreign[0]]!r} does not apply to EDM's network (model.preset={preset!r}, "
                f"flowjax/models/edm_unet.py); clear it. Of the UNet fields it takes "
                f"{sorted(set(unet.FIELDS) & set(edm_unet.FIELDS))}."
            )
        kwargs.update(fields)
        edm_unet.check_fields(kwargs, prefix="model.")
        _dtype(kwargs)
        return edm_unet.EDMUNet(**kwargs)
    if preset and preset not in unet.PRESETS:
        raise ValueError(
            f"Unknown model.preset {preset!r}; choose one of {sorted(unet.PRESETS) + sorted(edm_unet.PRESETS)} or ''."
        )
    kwargs = unet.PRESETS[preset]() if preset else {}
    kwargs.update(_config_fields(cfg))
    unet.check_fields(kwargs, prefix="model.")
    _dtype(kwargs)
    return unet.UNet(**kwargs)


def make(cfg) -> nn.Module:
    """The Flax module the config section ``model`` names."""
    if cfg.name == "mlp":
        if cfg.activation not in mlp.ACTIVATIONS:
            raise ValueError(f"Unknown model.activation {cfg.activation!r}; choose one of {sorted(mlp.ACTIVATIONS)}.")
        return mlp.MLP(
            hidden=tuple(cfg.hidden),
            time_embed_dim=cfg.time_embed_dim,
            activation=cfg.activation,
            out_channels=cfg.get("out_channels") or 0,
            zero_init_output=bool(cfg.get("zero_init_output")),
        )
    if cfg.name == "unet":
        return _make_unet(cfg)
    raise ValueError(f"Unknown model {cfg.name!r}; choose one of {NAMES} (config field model.name).")
