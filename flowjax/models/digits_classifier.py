"""A small CNN digit classifier whose penultimate features give a Fréchet distance on digits.

FID's Inception features mean little on 8 x 8 digits, so "FD-digits" (`flowjax.metrics.fd_digits`)
uses this classifier instead, trained by ``scripts/train_digits_classifier.py`` on the training
split of `flowjax.data.digits`: the Fréchet distance between Gaussian fits of its 64-d
penultimate (post-ReLU) features of samples and of the held-out test images.

Inputs are NHWC in [-1, 1], 8 x 8 x 1 or S x S x 1 with S > 8 (the 16 x 16 digits). Larger
images are mapped to 8 x 8 by the least-squares inverse of the bilinear upsampling that
`flowjax.data.digits` uses (``jax.image.resize(..., "linear")``): upsampled digits come back
exactly, and a generated S x S sample is scored through its best-fitting 8 x 8 image.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Variables = dict[str, Any]

SIZE = 8
FEATURE_DIM = 64
NUM_CLASSES = 10


def _downsample_matrix(size: int) -> np.ndarray:
    """[8, size] pseudo-inverse of 1-D bilinear upsampling 8 -> size (exact on its range)."""
    with jax.ensure_compile_time_eval():
        up = np.asarray(jax.image.resize(jnp.eye(SIZE), (size, SIZE), "linear"), np.float64)
    return np.linalg.pinv(up).astype(np.float32)


def to_8x8(images: jax.Array) -> jax.Array:
    """[B, S, S, 1] -> [B, 8, 8, 1]: unchanged for S = 8, else inverse bilinear upsampling."""
    square = images.ndim == 4 and images.shape[1] == images.shape[2] >= SIZE
    if not square or images.shape[-1] != 1:
        raise ValueError(
            f"The digits classifier needs grey square images [B, S, S, 1] with S >= 8, got {images.shape}."
        )
    if images.shape[1] == SIZE:
        return images
    down = jnp.asarray(_downsample_matrix(images.shape[1]))
    return jnp.einsum("ih,bhwc,jw->bijc", down, images, down)


class DigitsClassifier(nn.Module):
    """images [B, S, S, 1] in [-1, 1] -> (logits [B, 10], features [B, 64]); 22,954 parameters."""

    feature_dim: int = FEATURE_DIM
    num_classes: int = NUM_CLASSES

    @nn.compact
    def __call__(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = to_8x8(images.astype(jnp.float32))
        x = nn.relu(nn.Conv(16, (3, 3), name="conv1")(x))
        x = nn.relu(nn.Conv(32, (3, 3), name="conv2")(x))
        x = nn.avg_pool(x, (2, 2), strides=(2, 2))  # 4 x 4
        x = nn.relu(nn.Conv(32, (3, 3), name="conv3")(x))
        x = nn.avg_pool(x, (2, 2), strides=(2, 2))  # 2 x 2
        h = nn.relu(nn.Dense(self.feature_dim, name="features")(x.reshape(x.shape[0], -1)))
        return nn.Dense(self.num_classes, name="head")(h), h


def init(key: jax.Array) -> Variables:
    """Random variables ``{"params": ...}`` of the default `DigitsClassifier`."""
    return DigitsClassifier().init(key, jnp.zeros((1, SIZE, SIZE, 1), jnp.float32))


@jax.jit
def logits(variables: Variables, images: jax.Array) -> jax.Array:
    """[B, S, S, 1] in [-1, 1] -> class logits [B, 10]."""
    return DigitsClassifier().apply(variables, images)[0]


@jax.jit
def features(variables: Variables, images: jax.Array) -> jax.Array:
    """[B, S, S, 1] in [-1, 1] -> penultimate features [B, 64] (the FD-digits features)."""
    return DigitsClassifier().apply(variables, images)[1]
