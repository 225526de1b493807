"""Stored (x0, x1) pairs of a teacher flow, for k-rectification (reflow) and one-step distillation.

A pairs directory holds

    manifest.json                    what the pairs are (written first; see `write_pairs`)
    pairs-00000-of-000NN.npz         shard s: pairs [s * shard_size, (s + 1) * shard_size), arrays x0, x1 (float32)

Shards are written atomically (a temporary file in the same directory, then `os.replace`), so an
interrupted run leaves only whole shards; resuming writes exactly the missing ones. The .npz files
are written with fixed zip timestamps, so the same pairs give byte-identical files whenever they are
written. One writer per directory at a time (nothing locks it).

Pure helpers: what a shard holds is the caller's ``generate_shard(start, stop) -> (x0, x1)``
(`flowjax.rectify.generate_pairs` integrates a trained model's ODE).
"""
from __future__ import annotations

import json
import os
import zipfile
from typing import Callable, Iterable

import numpy as np

MANIFEST = "manifest.json"
FORMAT = 1
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed zip member timestamps: byte-identical files for identical arrays


def num_shards(num_pairs: int, shard_size: int) -> int:
    return -(-num_pairs // shard_size)


def shard_name(shard: int, shards: int) -> str:
    return f"pairs-{shard:05d}-of-{shards:05d}.npz"


def shard_range(shard: int, num_pairs: int, shard_size: int) -> tuple[int, int]:
    """Pair indices [start, stop) of shard ``shard``."""
    return shard * shard_size, min(num_pairs, (shard + 1) * shard_size)


def _write_json_atomic(path: str, obj: dict) -> None:
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_npz_atomic(path: str, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez``-compatible file (uncompressed, read by `np.load`), deterministic and written atomically."""
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.ascontiguousarray(array), allow_pickle=False)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def require_dir(data_dir: str) -> None:
    """A run on pairs (``data.name = "pairs"``) names its pairs directory, or this says how to."""
    if not data_dir:
        raise ValueError("data.name='pairs' needs the pairs directory: --config.data.data_dir=<teacher workdir>/pairs "
                         "(written by `main.py --mode=pairs` on the teacher's workdir).")


def read_manifest(directory: str) -> dict:
    """The manifest of a pairs directory; a clear error when there is none."""
    path = os.path.join(directory, MANIFEST)
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"Pairs directory {directory!r} does not exist. Generate pairs from a trained teacher with "
            "`python main.py --config=<teacher config> --workdir=<teacher workdir> --mode=pairs` "
            "(they go to <teacher workdir>/pairs unless --config.pairs.output_dir is set), then pass that "
            "directory as --config.data.data_dir.")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{directory!r} has no {MANIFEST}: it is not a pairs directory written by `main.py --mode=pairs`.")
    with open(path) as f:
        return json.load(f)


def _diff(saved: dict, current: dict) -> list[str]:
    keys = sorted(set(saved) | set(current))
    return [f"{k}: {saved.get(k)!r} on disk, {current.get(k)!r} now" for k in keys if saved.get(k) != current.get(k)]


def missing_shards(directory: str, manifest: dict) -> list[int]:
    shards = num_shards(manifest["num_pairs"], manifest["shard_size"])
    return [s for s in range(shards) if not os.path.isfile(os.path.join(directory, shard_name(s, shards)))]


def _resume_hint(manifest: dict) -> str:
    teacher = manifest.get("teacher") or {}
    if teacher.get("workdir"):
        return (f"Finish them with `python main.py --config={teacher.get('config') or '<teacher config>'} "
                f"--workdir={teacher['workdir']} --mode=pairs` (the same pairs.* settings): it writes only the "
                "missing shards.")
    return "Rerun the generation that wrote this directory, with the same settings: it writes only the missing shards."


def write_pairs(directory: str, generate_shard: Callable[[int, int], tuple[np.ndarray, np.ndarray]],
                manifest: dict, *, progress: Callable[[int, int, int], None] | None = None) -> list[int]:
    """Writes the missing shards of ``manifest`` (needs num_pairs, shard_size, shape) to ``directory``.

    ``generate_shard(start, stop) -> (x0, x1)`` gives pairs [start, stop); it must depend on the pair
    indices only (e.g. noise of pair i from ``fold_in(key, i)``), so that resumed and uninterrupted runs
    write the same files. The manifest is written first; if the directory already holds one that
    differs, this raises and changes nothing. Shards that exist are kept as they are (atomic writes
    make every existing shard whole); leftover temporary files of an interrupted run are overwritten.
    ``progress(shards_done, shards_total, shard)`` is called after each written shard. Returns the
    shards written by this call.
    """
    num_pairs, shard_size = int(manifest["num_pairs"]), int(manifest["shard_size"])
    if num_pairs < 1 or shard_size < 1:
        raise ValueError(f"pairs.num_pairs and pairs.shard_size must be >= 1, got {num_pairs} and {shard_size}.")
    manifest = json.loads(json.dumps({"format": FORMAT, **manifest}))  # as it reads back from JSON
    shape = tuple(manifest["shape"])
    path = os.path.join(directory, MANIFEST)
    if os.path.isfile(path):
        with open(path) as f:
            saved = json.load(f)
        diffs = _diff(saved, manifest)
        if diffs:
            raise ValueError(
                f"{directory} holds pairs of other settings ({'; '.join(diffs)}). Nothing was changed. "
                "Use another output directory (--config.pairs.output_dir), or the settings of its manifest.json "
                "to finish it.")
    else:
        os.makedirs(directory, exist_ok=True)
        _write_json_atomic(path, manifest)
    shards = num_shards(num_pairs, shard_size)
    todo = missing_shards(directory, manifest)
    written = []
    for s in todo:
        start, stop = shard_range(s, num_pairs, shard_size)
        x0, x1 = (np.asarray(a, np.float32) for a in generate_shard(start, stop))
        for name, a in (("x0", x0), ("x1", x1)):
            if a.shape != (stop - start,) + shape:
                raise ValueError(f"generate_shard({start}, {stop}) returned {name} of shape {a.shape}, "
                                 f"expected {(stop - start,) + shape}.")
        save_npz_atomic(os.path.join(directory, shard_name(s, shards)), {"x0": x0, "x1": x1})
        written.append(s)
        if progress is not None:
            progress(shards - len(todo) + len(written), shards, s)
    return written


def load_pairs(directory: str, num: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(x0 [N, ...], x1 [N, ...]) float32 of a complete pairs directory (its first ``num`` pairs if > 0)."""
    manifest = read_manifest(directory)
    missing = missing_shards(directory, manifest)
    shards = num_shards(manifest["num_pairs"], manifest["shard_size"])
    if missing:
        names = ", ".join(shard_name(s, shards) for s in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise FileNotFoundError(
            f"Pairs directory {directory} is incomplete: {len(missing)} of {shards} shards missing ({names}). "
            + _resume_hint(manifest))
    n = manifest["num_pairs"] if num <= 0 else num
    if n > manifest["num_pairs"]:
        raise ValueError(f"Asked for {n} pairs, but {directory} holds {manifest['num_pairs']}.")
    shape = tuple(manifest["shape"])
    parts: dict[str, list[np.ndarray]] = {"x0": [], "x1": []}
    for s in range(num_shards(n, manifest["shard_size"])):
        start, stop = shard_range(s, manifest["num_pairs"], manifest["shard_size"])
        with np.load(os.path.join(directory, shard_name(s, shards))) as f:
            for k in parts:
                a = f[k]
                if a.shape != (stop - start,) + shape or a.dtype != np.float32:
                    raise ValueError(f"{shard_name(s, shards)} in {directory}: {k} is {a.dtype}{a.shape}, expected "
                                     f"float32{(stop - start,) + shape}; the directory is corrupt, regenerate it.")
                parts[k].append(a)
    x0, x1 = (np.concatenate(parts[k])[:n] for k in ("x0", "x1"))
    return x0, x1


def shard_files(directory: str) -> Iterable[str]:
    """The shard file names present in ``directory`` (sorted)."""
    return sorted(f for f in os.listdir(directory) if f.startswith("pairs-") and f.endswith(".npz"))
