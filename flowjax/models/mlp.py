"""MLP velocity model for low-dimensional toys: v_theta(x, t) with a sinusoidal time embedding."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

ACTIVATIONS = {"silu": nn.silu, "selu": nn.selu, "relu": nn.relu, "gelu": nn.gelu, "tanh": jnp.tanh}


def sinusoidal_embedding(t: jax.Array, dim: int, max_freq: float = 100.0) -> jax.Array:
    """[B] times in [0, 1] -> [B, dim] sin/cos features at dim/2 frequencies from 1 to max_freq.

    Frequencies are kept low so that v(x, t) is smooth in t (adaptive solvers take few steps).
    """
    half = dim // 2
    freqs = jnp.exp(jnp.linspace(0.0, jnp.log(max_freq), half))
    angles = t[:, None] * freqs[None, :]
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


class MLP(nn.Module):
    """x [B, ...], t [B] -> v [B, ...]; x is flattened, concatenated with t's embedding."""

    hidden: Sequence[int] = (64, 64, 64)
    time_embed_dim: int = 32
    activation: str = "silu"
    out_channels: int = 0  # size of the output's last axis; 0: as the input's (a velocity)
    zero_init_output: bool = False  # the last layer starts at zero (an encoder that starts at its prior)

    @nn.compact
    def __call__(self, x: jax.Array, t: jax.Array, y: jax.Array | None = None, *, train: bool = False) -> jax.Array:
        """``y`` (labels) and ``train`` are accepted for the UNet's call shape; the MLP uses neither."""
        del y, train
        act = ACTIVATIONS[self.activation]
        h = jnp.concatenate([x.reshape(x.shape[0], -1), t[:, None], sinusoidal_embedding(t, self.time_embed_dim)], -1)
        for width in self.hidden:
            h = act(nn.Dense(width)(h))
        if not self.out_channels:
            return nn.Dense(x[0].size, kernel_init=self._out_init)(h).reshape(x.shape)
        out = nn.Dense(x[0].size // x.shape[-1] * self.out_channels, kernel_init=self._out_init)(h)
        return out.reshape(x.shape[:-1] + (self.out_channels,))

    @property
    def _out_init(self):
        return nn.initializers.zeros if self.zero_init_output else nn.initializers.lecun_normal()
