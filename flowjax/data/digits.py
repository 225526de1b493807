"""scikit-learn's bundled handwritten digits as a small offline image data set (no download).

`load_digits` ships 1,797 grey 8×8 images with integer values 0..16 and labels 0..9. They are
scaled to the data convention x1 ∈ [-1, 1] with ``x / 8 - 1`` (0 → -1, 16 → 1) and laid out
NHWC, ``[n, 8, 8, 1]`` float32.

``size=16`` upsamples bilinearly (``jax.image.resize(..., "linear")``) rather than by nearest
neighbour: nearest would only repeat every pixel 2×2, giving the same 17-level blocky data at a
higher dimension, whereas bilinear gives the smooth strokes a convolutional UNet is built for.
Bilinear weights are convex, so the images stay in [-1, 1]; with half-pixel centres and edge
clamping every input pixel gets total weight 4 in the 2× output, so each image keeps its mean.

The train/test split is fixed by ``seed``: ``num_test`` images (300 by default, leaving 1,497 for
training) are held out, stratified by class (scikit-learn's ``train_test_split``). Class filters
are applied after the split, so an image is in the same split whichever classes are kept; labels
keep their original digit values. ``num_classes=k`` keeps the first k digits (labels < k), as the
rectified-flow theory paper's 3-, 7- and 10-class experiments do; ``classes`` keeps a given set.
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

NUM_EXAMPLES = 1797
NUM_TEST = 300


@functools.lru_cache(maxsize=1)
def _raw() -> tuple[np.ndarray, np.ndarray]:
    """The bundled (images [1797, 8, 8] uint8 in 0..16, labels [1797] int32), read-only."""
    from sklearn.datasets import load_digits  # here: scikit-learn's import is ~0.4 s of every run's start-up

    digits = load_digits()
    images, labels = digits.images.astype(np.uint8), digits.target.astype(np.int32)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def split_indices(seed: int = 0, num_test: int = NUM_TEST) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, test) indices into the 1,797 digits: a class-stratified split fixed by ``seed``."""
    labels = _raw()[1]
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(np.arange(labels.shape[0]), test_size=num_test, random_state=seed, stratify=labels)
    return np.sort(train), np.sort(test)


def load(
    split: str = "train",
    *,
    size: int = 8,
    num_classes: int | None = None,
    classes: Sequence[int] | None = None,
    seed: int = 0,
    num_test: int = NUM_TEST,
) -> tuple[np.ndarray, np.ndarray]:
    """(images [n, size, size, 1] float32 in [-1, 1], labels [n] int32) of one split.

    Args:
      split: "train", "test" or "all" (the 1,797 images in their bundled order).
      size: 8 (native) or 16 (bilinear 2× upsampling).
      num_classes: keep the first k digits (labels < k); None keeps all ten.
      classes: keep exactly these digits, e.g. (3, 7); not together with ``num_classes``.
      seed: the seed of the train/test split.
      num_test: held-out images (stratified by class).
    """
    if size not in (8, 16):
        raise ValueError(f"digits size must be 8 (native) or 16 (bilinear upsampling), got {size}.")
    if num_classes is not None and classes is not None:
        raise ValueError("Give digits num_classes (the first k digits) or classes (a set), not both.")
    if num_classes is not None and not 1 <= num_classes <= 10:
        raise ValueError(f"digits num_classes must be between 1 and 10, got {num_classes}.")
    images, labels = _raw()
    if split == "all":
        index = np.arange(labels.shape[0])
    elif split in ("train", "test"):
        index = split_indices(seed, num_test)[split == "test"]
    else:
        raise ValueError(f"digits split must be 'train', 'test' or 'all', got {split!r}.")
    keep = np.arange(10 if num_classes is None else num_classes) if classes is None else np.asarray(classes)
    if not np.all((keep >= 0) & (keep <= 9)):
        raise ValueError(f"digits classes must be digits 0..9, got {classes}.")
    index = index[np.isin(labels[index], keep)]
    x = images[index].astype(np.float32)[..., None] / 8.0 - 1.0
    if size == 16:
        x = np.asarray(jax.image.resize(jnp.asarray(x), (x.shape[0], 16, 16, 1), "linear"))
    return x, labels[index].copy()


def from_config(data_cfg, split: str) -> tuple[np.ndarray, np.ndarray]:
    """`load` of ``split`` at data.image_size (0: native 8) with data.num_classes (first k digits; 0: all)."""
    num_classes = data_cfg.get("num_classes", 0)
    if not 0 <= num_classes <= 10:
        raise ValueError(f"data.num_classes must be 0 (all ten digits) or 1..10, got {num_classes}.")
    return load(split, size=data_cfg.image_size or 8, num_classes=num_classes or None)
