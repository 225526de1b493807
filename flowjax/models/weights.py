"""Flax variables dicts as ``.npz`` weight files (the FID Inception's, the digits classifier's).

File format: one array per leaf of the Flax variables dict, keyed by the leaf's path joined with
``/``, collection first, e.g. for `flowjax.models.inception.InceptionV3`

    params/Conv2d_1a_3x3/conv/kernel       [3, 3, 3, 32]  float32, HWIO
    params/Conv2d_1a_3x3/bn/bias           [32]           batch-norm beta
    batch_stats/Conv2d_1a_3x3/bn/mean      [32]           running mean
    batch_stats/Conv2d_1a_3x3/bn/var       [32]           running variance
"""

from __future__ import annotations

import zipfile
from typing import Any

import numpy as np
from flax import traverse_util

from flowjax import io

Variables = dict[str, Any]


def save_variables(path: str, variables: Variables, *, overwrite: bool = False) -> None:
    """Save a Flax variables dict as an .npz keyed by "/"-joined paths (see the module docstring)."""
    flat = traverse_util.flatten_dict(variables, sep="/")
    io.save_npz_atomic(path, {key: np.asarray(value) for key, value in flat.items()}, overwrite=overwrite)


def array_shapes(path: str) -> dict[str, tuple[int, ...]]:
    """The shape of every array of a weight file, read from the .npy headers without loading the data.

    Checks that each member is whole (its size is its header plus shape x itemsize bytes), so an empty,
    truncated or partly written file raises ValueError before anything is computed with it.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            shapes = {}
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with zf.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)  # fmt: skip
                    shape, _, dtype = read_header(f)
                    header = f.tell()
                if info.file_size != header + int(np.prod(shape)) * dtype.itemsize:
                    raise ValueError(
                        f"array {info.filename[:-4]} holds {info.file_size - header} bytes of data, not "
                        f"{int(np.prod(shape)) * dtype.itemsize}: the file is incomplete"
                    )
                shapes[info.filename[:-4]] = tuple(shape)
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path} is not a readable weight file ({err})") from err
    return shapes


def load_variables(path: str) -> Variables:
    """Load a Flax variables dict saved by `save_variables` (NumPy arrays as leaves)."""
    with np.load(path, allow_pickle=False) as f:
        flat = {key: np.asarray(f[key]) for key in f.files}
    return traverse_util.unflatten_dict(flat, sep="/")
