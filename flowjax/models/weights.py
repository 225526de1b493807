"""Flax variables dicts as ``.npz`` weight files (the FID Inception's, the digits classifier's).

File format: one array per leaf of the Flax variables dict, keyed by the leaf's path joined with
``/``, collection first, e.g. for `flowjax.models.inception.InceptionV3`

    params/Conv2d_1a_3x3/conv/kernel       [3, 3, 3, 32]  float32, HWIO
    params/Conv2d_1a_3x3/bn/bias           [32]           batch-norm beta
    batch_stats/Conv2d_1a_3x3/bn/mean      [32]           running mean
    batch_stats/Conv2d_1a_3x3/bn/var       [32]           running variance
"""

from __future__ import annotations

from typing import Any

import numpy as np
from flax import traverse_util

from flowjax import io

Variables = dict[str, Any]


def save_variables(path: str, variables: Variables, *, overwrite: bool = False) -> None:
    """Save a Flax variables dict as an .npz keyed by "/"-joined paths (see the module docstring)."""
    flat = traverse_util.flatten_dict(variables, sep="/")
    io.save_npz_atomic(path, {key: np.asarray(value) for key, value in flat.items()}, overwrite=overwrite)


def load_variables(path: str) -> Variables:
    """Load a Flax variables dict saved by `save_variables` (NumPy arrays as leaves)."""
    with np.load(path, allow_pickle=False) as f:
        flat = {key: np.asarray(f[key]) for key in f.files}
    return traverse_util.unflatten_dict(flat, sep="/")
