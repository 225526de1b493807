"""Stored (x0, x1) pairs of a teacher flow, for k-rectification (reflow) and one-step distillation.

A pairs directory holds

    manifest.json                    what the pairs are (written first; see `write_pairs`)
    pairs-00000-of-000NN.npz         shard s: pairs [s * shard_size, (s + 1) * shard_size), arrays x0, x1 (float32)
                                     and, from a class-conditional teacher, label (int32 [n])

A conditional teacher's manifest records ``num_classes`` (K > 0) and every shard its pairs' labels in
[0, K); an unconditional teacher's records neither, as pairs written before labels existed, which
still load (unlabelled).

Shards are written atomically (`flowjax.io.save_npz_atomic`: a temporary file in the same directory,
then `os.replace`), so an interrupted run leaves only whole shards; resuming writes exactly the missing
ones. The .npz files are written with fixed zip timestamps, so the same pairs give byte-identical files
whenever they are written. One writer per directory at a time (nothing locks it).

Pure helpers: what a shard holds is the caller's ``generate_shard(start, stop) -> (x0, x1[, label])``
(`flowjax.rectify.generate_pairs` integrates a trained model's ODE).
"""

from __future__ import annotations

import functools
import json
import os
import struct
import zipfile
from typing import Callable, Iterable, NamedTuple

import numpy as np

from flowjax import io

MANIFEST = "manifest.json"
FORMAT = 1


def num_shards(num_pairs: int, shard_size: int) -> int:
    return -(-num_pairs // shard_size)


def shard_name(shard: int, shards: int) -> str:
    return f"pairs-{shard:05d}-of-{shards:05d}.npz"


def shard_range(shard: int, num_pairs: int, shard_size: int) -> tuple[int, int]:
    """Pair indices [start, stop) of shard ``shard``."""
    return shard * shard_size, min(num_pairs, (shard + 1) * shard_size)


def require_dir(data_dir: str) -> None:
    """A run on pairs (``data.name = "pairs"``) names its pairs directory, or this says how to."""
    if not data_dir:
        raise ValueError(
            "data.name='pairs' needs the pairs directory: --config.data.data_dir=<teacher workdir>/pairs "
            "(written by `main.py --mode=pairs` on the teacher's workdir)."
        )


def read_manifest(directory: str) -> dict:
    """The manifest of a pairs directory; a clear error when there is none."""
    path = os.path.join(directory, MANIFEST)
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"Pairs directory {directory!r} does not exist. Generate pairs from a trained teacher with "
            "`python main.py --config=<teacher config> --workdir=<teacher workdir> --mode=pairs` "
            "(they go to <teacher workdir>/pairs unless --config.pairs.output_dir is set), then pass that "
            "directory as --config.data.data_dir."
        )
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{directory!r} has no {MANIFEST}: it is not a pairs directory written by `main.py --mode=pairs`."
        )
    with open(path) as f:
        return json.load(f)


def num_classes(manifest: dict) -> int:
    """The classes the pairs' labels index (0: unlabelled, as pairs of an unconditional teacher)."""
    return int(manifest.get("num_classes") or 0)


def missing_shards(directory: str, manifest: dict) -> list[int]:
    shards = num_shards(manifest["num_pairs"], manifest["shard_size"])
    return [s for s in range(shards) if not os.path.isfile(os.path.join(directory, shard_name(s, shards)))]


def _resume_hint(manifest: dict) -> str:
    teacher = manifest.get("teacher") or {}
    if teacher.get("workdir"):
        return (
            f"Finish them with `python main.py --config={teacher.get('config') or '<teacher config>'} "
            f"--workdir={teacher['workdir']} --mode=pairs` (the same pairs.* settings): it writes only the "
            "missing shards."
        )
    return "Rerun the generation that wrote this directory, with the same settings: it writes only the missing shards."


def write_pairs(
    directory: str,
    generate_shard: Callable[[int, int], tuple[np.ndarray, ...]],
    manifest: dict,
    *,
    progress: Callable[[int, int, int], None] | None = None,
) -> list[int]:
    """Writes the missing shards of ``manifest`` (needs num_pairs, shard_size, shape) to ``directory``.

    ``generate_shard(start, stop) -> (x0, x1)`` gives pairs [start, stop), and ``(x0, x1, label)`` when the
    manifest records ``num_classes`` > 0 (labels int [stop - start] in [0, num_classes)); it must depend on
    the pair indices only (e.g. noise of pair i from ``fold_in(key, i)``), so that resumed and uninterrupted
    runs write the same files. The manifest is written first; if the directory already holds one that
    differs, this raises and changes nothing. Shards that exist are kept as they are (atomic writes
    make every existing shard whole); temporary files a killed run left behind are removed.
    ``progress(shards_done, shards_total, shard)`` is called after each written shard. Returns the
    shards written by this call.
    """
    num_pairs, shard_size = int(manifest["num_pairs"]), int(manifest["shard_size"])
    if num_pairs < 1 or shard_size < 1:
        raise ValueError(f"pairs.num_pairs and pairs.shard_size must be >= 1, got {num_pairs} and {shard_size}.")
    manifest = json.loads(json.dumps({"format": FORMAT, **manifest}))  # as it reads back from JSON
    classes = manifest.get("num_classes") or 0
    if not isinstance(classes, int) or classes < 0:
        raise ValueError(f"The pairs' num_classes must be an integer >= 0, got {classes!r}.")
    shape = tuple(manifest["shape"])
    path = os.path.join(directory, MANIFEST)
    if os.path.isfile(path):
        with open(path) as f:
            saved = json.load(f)
        # Inside a recorded config (e.g. the teacher's ``data``), fields absent on disk are new in flowjax
        # since the pairs were written, not a difference: a new field's default keeps the old behaviour.
        diffs, _ = io.config_diff(saved, manifest, saved_as="on disk", whole_sections=True)
        if diffs:
            raise ValueError(
                f"{directory} holds pairs of other settings ({'; '.join(diffs)}). Nothing was changed. "
                "Use another output directory (--config.pairs.output_dir), or the settings of its manifest.json "
                "to finish it."
            )
    else:
        os.makedirs(directory, exist_ok=True)
        io.write_json_atomic(path, manifest)
    for name in os.listdir(directory):  # temporary files of a killed write (this is the directory's only writer)
        if name.startswith((".pairs-", f".{MANIFEST}.")) and name.endswith(".tmp"):
            os.remove(os.path.join(directory, name))
    shards = num_shards(num_pairs, shard_size)
    todo = missing_shards(directory, manifest)
    written = []
    for s in todo:
        start, stop = shard_range(s, num_pairs, shard_size)
        out = tuple(generate_shard(start, stop))
        if len(out) != 2 + bool(classes):
            raise ValueError(
                f"generate_shard({start}, {stop}) returned {len(out)} arrays; expected "
                + ("(x0, x1, label): the manifest records num_classes" if classes else "(x0, x1)")
                + "."
            )
        arrays = {"x0": np.asarray(out[0], np.float32), "x1": np.asarray(out[1], np.float32)}
        for name, a in arrays.items():
            if a.shape != (stop - start,) + shape:
                raise ValueError(
                    f"generate_shard({start}, {stop}) returned {name} of shape {a.shape}, "
                    f"expected {(stop - start,) + shape}."
                )
        if classes:
            label = np.asarray(out[2])
            if label.shape != (stop - start,) or not np.issubdtype(label.dtype, np.integer):
                raise ValueError(
                    f"generate_shard({start}, {stop}) returned labels {label.dtype}{label.shape}, "
                    f"expected integers of shape {(stop - start,)}."
                )
            _check_labels(label, classes, f"generate_shard({start}, {stop})", "nothing of this shard was written.")
            arrays["label"] = label.astype(np.int32)
        io.save_npz_atomic(os.path.join(directory, shard_name(s, shards)), arrays)
        written.append(s)
        if progress is not None:
            progress(shards - len(todo) + len(written), shards, s)
    return written


def _check_labels(label: np.ndarray, classes: int, where: str, fix: str) -> None:
    """A label outside [0, classes) would index past the class embedding: refuse it, naming its origin."""
    if label.size and (label.min() < 0 or label.max() >= classes):
        raise ValueError(
            f"{where}: labels {int(label.min())}..{int(label.max())} are outside [0, {classes}) "
            f"(the manifest's num_classes={classes}); {fix}"
        )


class PairsSource(NamedTuple):
    """Random access to a complete pairs directory: ``read(indices [n]) -> (x0 [n, ...], x1 [n, ...])`` float32
    and, for labelled pairs (``num_classes`` > 0), ``labels(indices [n]) -> int32 [n]`` (None when unlabelled).

    Shards are memory-mapped as they are first touched, so a training run holds only what its batches read
    (4M CIFAR-10 pairs are ~100 GB on disk).
    """

    num_pairs: int
    shape: tuple[int, ...]
    read: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
    num_classes: int = 0
    labels: Callable[[np.ndarray], np.ndarray] | None = None


def _member_memmap(path: str, name: str) -> np.ndarray:
    """Read-only memory map of array ``name`` of an uncompressed .npz written by `io.save_npz_atomic`."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(f"{name}.npy")
    if info.compress_type != zipfile.ZIP_STORED:
        raise ValueError(
            f"{path}: member {name}.npy is compressed; pairs shards are written uncompressed "
            "by `main.py --mode=pairs`; regenerate the directory."
        )
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)  # the member's local header: its own name and extra-field lengths
        if local[:4] != b"PK\x03\x04":
            raise ValueError(f"{path}: damaged zip member {name}.npy; the directory is corrupt, regenerate it.")
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        f.seek(info.header_offset + 30 + name_len + extra_len)
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        offset = f.tell()
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


def open_pairs(directory: str, num: int = 0) -> PairsSource:
    """The first ``num`` pairs (all if 0) of a complete pairs directory, read by index (`PairsSource`)."""
    manifest = read_manifest(directory)
    missing = missing_shards(directory, manifest)
    total, shard_size = manifest["num_pairs"], manifest["shard_size"]
    shards = num_shards(total, shard_size)
    if missing:
        names = ", ".join(shard_name(s, shards) for s in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise FileNotFoundError(
            f"Pairs directory {directory} is incomplete: {len(missing)} of {shards} shards missing ({names}). "
            + _resume_hint(manifest)
        )
    n = total if num <= 0 else num
    if n > total:
        raise ValueError(f"Asked for {n} pairs, but {directory} holds {total}.")
    shape, classes = tuple(manifest["shape"]), num_classes(manifest)

    def member(s: int, k: str, dtype: type, member_shape: tuple[int, ...]) -> np.ndarray:
        try:
            a = _member_memmap(os.path.join(directory, shard_name(s, shards)), k)
        except KeyError:  # no such member: a shard of unlabelled pairs under a manifest that records labels
            a = None
        if a is None or a.shape != member_shape or a.dtype != dtype:
            found = f"{a.dtype}{a.shape}" if a is not None else "missing"
            raise ValueError(
                f"{shard_name(s, shards)} in {directory}: {k} is {found}, expected "
                f"{np.dtype(dtype)}{member_shape}; the directory is corrupt, regenerate it."
            )
        return a

    @functools.lru_cache(maxsize=None)
    def shard(s: int) -> tuple[np.ndarray, np.ndarray]:
        start, stop = shard_range(s, total, shard_size)
        return tuple(member(s, k, np.float32, (stop - start,) + shape) for k in ("x0", "x1"))

    @functools.lru_cache(maxsize=None)
    def shard_labels(s: int) -> np.ndarray:
        start, stop = shard_range(s, total, shard_size)
        label = member(s, "label", np.int32, (stop - start,))
        path = os.path.join(directory, shard_name(s, shards))
        _check_labels(label, classes, path, "the directory is corrupt, regenerate it.")  # once per shard
        return label

    def gather(indices: np.ndarray, out: list[np.ndarray], arrays_of: Callable[[int], tuple]) -> None:
        if indices.size and (indices.min() < 0 or indices.max() >= n):
            raise IndexError(f"pair indices must be in [0, {n}), got {indices.min()}..{indices.max()}.")
        which, offset = np.divmod(indices, shard_size)
        for s in np.unique(which):
            rows = which == s
            for o, a in zip(out, arrays_of(int(s))):
                o[rows] = a[offset[rows]]

    def read(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        indices = np.asarray(indices, np.int64)
        x0, x1 = (np.empty((len(indices),) + shape, np.float32) for _ in range(2))
        gather(indices, [x0, x1], shard)
        return x0, x1

    def labels(indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices, np.int64)
        label = np.empty((len(indices),), np.int32)
        gather(indices, [label], lambda s: (shard_labels(s),))
        return label

    return PairsSource(n, shape, read, classes, labels if classes else None)


def load_pairs(directory: str, num: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(x0 [N, ...], x1 [N, ...]) float32 of a complete pairs directory (its first ``num`` pairs if > 0), in memory."""
    source = open_pairs(directory, num)
    return source.read(np.arange(source.num_pairs))


def shard_files(directory: str) -> Iterable[str]:
    """The shard file names present in ``directory`` (sorted)."""
    return sorted(f for f in os.listdir(directory) if f.startswith("pairs-") and f.endswith(".npz"))
