"""Flax variables dicts as ``.npz`` weight files (the FID Inception's, the digits classifier's).

File format: one array per leaf of the Flax variables dict, keyed by the leaf's path joined with
``/``, collection first, e.g. for `flowjax.models.inception.InceptionV3`

    params/Conv2d_1a_3x3/conv/kernel       [3, 3, 3, 32]  float32, HWIO
    params/Conv2d_1a_3x3/bn/bias           [32]           batch-norm beta
    batch_stats/Conv2d_1a_3x3/bn/mean      [32]           running mean
    batch_stats/Conv2d_1a_3x3/bn/var       [32]           running variance
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from typing import Any, Sequence

import jax
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


# Converted networks: a weight file plus a JSON record of what it holds (scripts/convert_edm_weights.py).


def sha256_file(path: str) -> str:
    """The SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def converted_info_path(path: str) -> str:
    """The JSON record beside a converted weight file: ``edm.npz`` -> ``edm.json``."""
    return os.path.splitext(path)[0] + ".json"


def load_converted(
    path: str, model: Any, input_shape: Sequence[int], *, field: str = "model.weights"
) -> tuple[Variables, dict[str, Any]]:
    """(params, record) of a converted network, checked against the file's record and ``model``.

    ``input_shape`` is the [B, H, W, C] of the model's inputs. Checks, before loading any array: the file and
    its record exist, the file's SHA-256 is the one recorded when it was written, and every parameter of
    ``model`` is there with its shape and nothing else is. Each failure raises (FileNotFoundError or
    ValueError) with a message naming ``field``, the config field that gave ``path``, and what to do.
    """
    convert = f"python scripts/convert_edm_weights.py --state_dict=<EDM network>.pt --out={path}"
    if not os.path.exists(path):
        raise FileNotFoundError(f"{field}={path!r} does not exist; convert the network first ({convert}).")
    info_path = converted_info_path(path)
    if not os.path.exists(info_path):
        raise ValueError(f"{field}={path!r} has no record {info_path} beside it; convert it again ({convert}).")
    with open(info_path) as f:
        info = json.load(f)
    digest = sha256_file(path)
    if digest != info.get("sha256"):
        raise ValueError(
            f"{field}={path!r}: its SHA-256 {digest[:16]}... is not the {str(info.get('sha256'))[:16]}... recorded in "
            f"{info_path} when it was written; the file was changed or is incomplete. Convert it again ({convert})."
        )
    x = jax.ShapeDtypeStruct(tuple(input_shape), np.float32)
    t = jax.ShapeDtypeStruct((input_shape[0],), np.float32)
    expected = {
        f"params/{'/'.join(str(k.key) for k in key)}": tuple(leaf.shape)
        for key, leaf in jax.tree_util.tree_flatten_with_path(
            jax.eval_shape(model.init, jax.random.PRNGKey(0), x, t)["params"]
        )[0]
    }
    stored = array_shapes(path)
    problems = [f"missing {k} {list(s)}" for k, s in expected.items() if k not in stored]
    problems += [f"unexpected {k}" for k in stored if k not in expected]
    problems += [f"{k} is {list(stored[k])}, not {list(s)}" for k, s in expected.items() if stored.get(k, s) != s]
    if problems:
        preset = info.get("preset", "?")
        raise ValueError(
            f"{field}={path!r} holds the network of model.preset={preset!r} ({info.get('edm_network', '?')}), which "
            f"does not fit this config's model ({len(problems)} differences, e.g. {'; '.join(problems[:3])}). Set "
            f"model.preset={preset!r} and leave the fields it sets alone, or set {field} to the weights of this model."
        )
    return load_variables(path)["params"], info
