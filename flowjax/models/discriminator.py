"""The projected multi-scale discriminator of LMM's adversarial stage (Flax linen).

"Projected GANs Converge Faster" (Sauer et al. 2021, Sec. 3) discriminates in the feature space of a
frozen pretrained network: the features of several depths go through fixed random projections, cross-
channel mixing (CCM, Sec. 3.2: a random 1x1 convolution per scale) and cross-scale mixing (CSM, Sec. 3.2:
the deeper mixed features upsampled and added, U-Net-like), and one small trained discriminator head per
scale outputs a map of logits (Sec. 3.1, "multi-scale discriminators"). StyleGAN-XL (Sauer et al. 2022,
Sec. 3) and CTM (Kim et al. 2024, Sec. 4.2) use this discriminator, and so does LMM's second stage (Eq. 5).

This module takes the frozen network's feature maps (a list of NHWC arrays, computed outside, e.g. by
``flowjax.models.lpips.vgg_features``) and returns one logit map [B, h, w] per scale. Its parts:

- **Frozen projections.** The CCM and CSM kernels live in the variable collection ``"projection"``, not in
  ``"params"``. ``init`` draws them from the ``"params"`` key with PyTorch's default convolution init (the
  init of Projected GAN's ``nn.Conv2d`` layers: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for kernel and bias), and
  ``apply`` only reads them: a train step that differentiates ``variables["params"]`` and closes over
  ``variables["projection"]`` never changes them (Projected GAN freezes them with the feature network,
  ``D.feature_network.requires_grad_(False)``, its README). They are also wrapped in ``stop_gradient``, so
  even a gradient taken with respect to every collection is zero for them. Keep the collection with the
  discriminator's state (or re-create it with the same init key).
- **CCM**: scale i is projected to ``proj_channels[i]`` channels; an int c means Projected GAN's
  ``expand=True`` widths c * 2^i, capped at ``max_channels``.
- **CSM** (``cross_scale=True``): from the deepest scale up, mixed_i = ccm_i + conv1x1(resize(mixed_{i+1})),
  resized bilinearly to scale i's size. Projected GAN's ``FeatureFusionBlock`` instead adds, upsamples by 2
  and applies the 1x1 conv, so its outputs sit at twice each scale's resolution with half its channels; here
  each mixed map keeps its scale's size and width, so the heads see the same sizes with or without CSM, and
  any feature network's sizes work (not only factors of 2).
- **Heads**: Projected GAN's ``SingleDisc``: DownBlocks (4x4 conv, stride 2, padding 1, leaky ReLU 0.2;
  channels doubling, capped at ``max_channels``) while the map is larger than ``end_size``, then a 4x4
  "valid" conv without bias to one channel (its kernel shrinks to the map when the map is smaller). Chosen
  here for simplicity: no spectral norm and no BatchNorm (Projected GAN has both in its DownBlocks).
- **Conditioning** (``num_classes > 0``): the projection discriminator of "cGANs with Projection
  Discriminator" (Miyato & Koyama 2018, Eq. 3), logit(x, y) = psi(phi(x)) + <embed(y), phi(x)>, with phi the
  head's last hidden map mean-pooled over positions and the inner product scaled by 1/sqrt(channels) (the
  scale of Projected GAN's ``SingleDiscCond``); the class term is added to every position of the map.
  Projected GAN / StyleGAN-XL keep only a per-position class term; Miyato & Koyama's form keeps the
  unconditional term too. Labels y are int [B]; an unconditional discriminator ignores y.
"""

from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

PROJECTION = "projection"  # the variable collection of the frozen random projections


def _torch_uniform(key: jax.Array, shape: tuple[int, ...], fan_in: int) -> jax.Array:
    """PyTorch's default Conv2d init for weights and biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)
    return jax.random.uniform(key, shape, jnp.float32, -bound, bound)


class ProjectedDiscriminator(nn.Module):
    """Projected GAN's multi-scale discriminator on given frozen features; see the module docstring.

    ``__call__(features, y=None) -> [logits [B, h_i, w_i] for each scale i]``, features a list of NHWC maps
    (shallowest first, as the feature network returns them).
    """

    num_classes: int = 0
    proj_channels: int | Sequence[int] = 64  # Projected GAN's cout=64, expand=True
    cross_scale: bool = True  # Projected GAN's proj_type=2 (CCM + CSM); False: CCM only (proj_type=1)
    max_channels: int = 512  # Projected GAN's widest head layer (channel_dict)
    end_size: int = 8  # Projected GAN's end_sz: heads downsample while the map is larger
    negative_slope: float = 0.2

    def _widths(self, n: int) -> list[int]:
        if isinstance(self.proj_channels, int):
            return [min(self.proj_channels * 2**i, self.max_channels) for i in range(n)]
        widths = list(self.proj_channels)
        if len(widths) != n:
            raise ValueError(
                f"ProjectedDiscriminator: proj_channels={tuple(widths)} has {len(widths)} widths for {n} feature "
                "scales; give one per scale or an int."
            )
        return widths

    def _frozen_conv1x1(self, name: str, x: jax.Array, out: int) -> jax.Array:
        """A 1x1 conv whose kernel and bias are in the frozen "projection" collection."""
        cin = x.shape[-1]
        kernel = self.variable(
            PROJECTION, f"{name}_kernel", lambda: _torch_uniform(self.make_rng("params"), (cin, out), cin)
        )
        bias = self.variable(PROJECTION, f"{name}_bias", lambda: _torch_uniform(self.make_rng("params"), (out,), cin))
        k, b = jax.lax.stop_gradient(kernel.value), jax.lax.stop_gradient(bias.value)
        return jnp.einsum("bhwc,cd->bhwd", x, k.astype(x.dtype)) + b.astype(x.dtype)

    @nn.compact
    def __call__(self, features: Sequence[jax.Array], y: jax.Array | None = None) -> list[jax.Array]:
        features = list(features)
        if not features:
            raise ValueError("ProjectedDiscriminator: no feature maps were given.")
        batch = features[0].shape[0]
        for i, f in enumerate(features):
            if f.ndim != 4 or f.shape[0] != batch:
                raise ValueError(
                    f"ProjectedDiscriminator: feature map {i} has shape {f.shape}; every map must be NHWC with "
                    f"batch {batch}."
                )
        if self.end_size < 1:
            raise ValueError(f"ProjectedDiscriminator: end_size={self.end_size} must be >= 1.")
        if self.num_classes > 0:
            if y is None:
                raise ValueError(f"ProjectedDiscriminator: num_classes={self.num_classes} needs class labels y [B].")
            if y.shape != (batch,):
                raise ValueError(f"ProjectedDiscriminator: labels y have shape {y.shape}; expected ({batch},).")

        widths = self._widths(len(features))
        mixed = [self._frozen_conv1x1(f"ccm_{i}", f, c) for i, (f, c) in enumerate(zip(features, widths))]
        if self.cross_scale:
            for i in range(len(mixed) - 2, -1, -1):
                deeper = mixed[i + 1]
                b, h, w, _ = mixed[i].shape
                up = jax.image.resize(deeper, (b, h, w, deeper.shape[-1]), "bilinear", antialias=False)
                mixed[i] = mixed[i] + self._frozen_conv1x1(f"csm_{i}", up, widths[i])

        act = lambda v: nn.leaky_relu(v, self.negative_slope)
        logits = []
        for i, h in enumerate(mixed):
            block = 0
            while min(h.shape[1:3]) > self.end_size:
                channels = min(2 * h.shape[-1], self.max_channels)
                h = act(nn.Conv(channels, (4, 4), strides=2, padding=1, name=f"head_{i}_down_{block}")(h))
                block += 1
            k = min(4, h.shape[1], h.shape[2])
            out = nn.Conv(1, (k, k), padding="VALID", use_bias=False, name=f"head_{i}_out")(h)[..., 0]
            if self.num_classes > 0:
                pooled = jnp.mean(h, axis=(1, 2))  # phi(x) [B, C]
                embed = nn.Embed(self.num_classes, h.shape[-1], name=f"head_{i}_embed")(y)
                out = out + (jnp.sum(embed * pooled, axis=-1) / math.sqrt(h.shape[-1]))[:, None, None]
            logits.append(out)
        return logits
