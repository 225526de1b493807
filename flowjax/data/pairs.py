"""Stored (x0, x1) pairs of a teacher flow, for k-rectification (reflow) and one-step distillation.

A pairs directory holds

    manifest.json                    what the pairs are (written first; see `write_pairs`)
    pairs-00000-of-000NN.npz         shard s: pairs [s * shard_size, (s + 1) * shard_size), arrays x0, x1
                                     (in the manifest's ``dtype``) and, from a class-conditional teacher,
                                     label (int32 [n]); no x0 when the manifest records ``"noise": "regenerated"``

Compact pairs. Pair i's noise is a pure function of i: ``noise_one(fold_in(PRNGKey(seed), i))`` (`pair_noise`),
``noise_one`` the noise of the teacher's data config that the manifest records (``data``: ``data.source``, a
2-D toy or N(0, I); `flowjax.data.dataset.noise_sampler`). A manifest with ``"noise": "regenerated"``
(``pairs.store_noise = False``) has shards without x0: the reader draws it again from the manifest's ``seed``
and ``data`` (`noise_regenerator`, jitted once, on JAX's default device). `write_pairs` refuses a shard whose x0
is not exactly that draw, and records ``noise_check``, the SHA-256 of the float32 x0 of the first
`NOISE_CHECK_PAIRS` pairs; `open_pairs` refuses to read when its own draw hashes otherwise (another JAX
version, PRNG setting or backend can change the bits), so a reader's x0 is bit for bit the x0 the teacher
integrated. ``"dtype": "float16"`` (``pairs.dtype``) stores x1 (and a stored x0) rounded to float16 (round
to nearest: relative error <= 2^-11 for |x| >= 2^-14, absolute <= 2^-25 below); the reader returns float32
always. A manifest without these keys (all pairs written before they existed) means float32 and stored noise,
and `write_pairs` adds none of them for those defaults, so such directories are written byte for byte as before
and still resume.

Sizes, from the shapes: an ImageNet-64 pair is 2 x 64 x 64 x 3 = 24,576 values. Lines Matching Models
("Generative Lines Matching Models", Matityahu & Fattal, App. A.4) train on 4M ImageNet-64 teacher pairs:
float32 x0 and x1 are 4e6 x 24,576 x 4 B = 393 GB (366 GiB); x0 regenerated and float16 x1 are
4e6 x 12,288 x 2 B = 98 GB (92 GiB), a quarter (labels add 16 MB). float16 with x0 stored, or float32 with
x0 regenerated, halve it (197 GB).

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
import hashlib
import json
import os
import struct
import zipfile
from typing import Callable, Iterable, NamedTuple

import jax
import numpy as np

from flowjax import io
from flowjax.keys import per_index_keys

MANIFEST = "manifest.json"
FORMAT = 1
DTYPES = ("float32", "float16")  # the manifest's "dtype" (absent: float32): how x1 and a stored x0 are written
REGENERATED = "regenerated"  # the manifest's "noise" when shards hold no x0 (absent: "stored")
NOISE_CHECK_PAIRS = 64  # pairs whose regenerated x0 the manifest's noise_check hashes


def pair_noise(seed: int, noise_one: Callable, indices: jax.Array) -> jax.Array:
    """The noise of the pairs ``indices`` [n]: pair i from ``fold_in(PRNGKey(seed), i)``."""
    return jax.vmap(noise_one)(per_index_keys(jax.random.PRNGKey(seed), indices))


def stored_dtype(manifest: dict) -> np.dtype:
    """The dtype of the shards' x1 (and x0): the manifest's ``dtype``, float32 when it records none."""
    name = manifest.get("dtype") or "float32"
    if name not in DTYPES:
        raise ValueError(f"The pairs' dtype must be one of {DTYPES} (pairs.dtype), got {name!r}.")
    return np.dtype(name)


def stores_noise(manifest: dict) -> bool:
    """Whether the shards hold x0 (manifest ``noise`` absent or ``"stored"``) or it is regenerated from the
    pair index (``"regenerated"``)."""
    noise = manifest.get("noise") or "stored"
    if noise not in ("stored", REGENERATED):
        raise ValueError(f"The pairs' noise must be 'stored' or {REGENERATED!r}, got {noise!r}.")
    return noise == "stored"


def noise_regenerator(manifest: dict) -> Callable[[np.ndarray], np.ndarray]:
    """``indices [n] -> x0 [n, *shape]`` float32: the noise of those pairs, drawn again as the teacher drew it,
    ``pair_noise(manifest seed, noise_one, indices)`` with ``noise_one`` the noise of the manifest's ``data``
    (`flowjax.data.dataset.noise_sampler`: ``data.source``, N(0, I) for images). Jitted once (per batch size),
    run on JAX's default device."""
    from flowjax.data.dataset import noise_sampler  # dataset imports this module

    shape, seed = tuple(int(d) for d in manifest["shape"]), int(manifest["seed"])
    noise_one = noise_sampler(manifest.get("data") or {}, shape)
    draw = jax.jit(lambda indices: pair_noise(seed, noise_one, indices))

    def regenerate(indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices, np.int64)
        if not indices.size:
            return np.empty((0,) + shape, np.float32)
        if indices.min() < 0 or indices.max() >= 2**31:
            raise IndexError(f"pair indices must be in [0, 2^31), got {indices.min()}..{indices.max()}.")
        return np.asarray(draw(indices.astype(np.int32)), np.float32)

    return regenerate


def noise_check(num_pairs: int, regenerate: Callable[[np.ndarray], np.ndarray]) -> dict:
    """What the manifest's ``noise_check`` records: the SHA-256 of the float32 (little-endian, C order) x0 of
    pairs [0, min(num_pairs, NOISE_CHECK_PAIRS))."""
    k = min(int(num_pairs), NOISE_CHECK_PAIRS)
    x0 = np.ascontiguousarray(regenerate(np.arange(k)), "<f4")
    return {"pairs": k, "sha256": hashlib.sha256(x0.tobytes()).hexdigest()}


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two arrays are equal bit for bit (shape, dtype and every byte: -0.0 is not 0.0, NaN is NaN)."""
    a, b = np.asarray(a), np.asarray(b)
    return (
        a.shape == b.shape
        and a.dtype == b.dtype
        and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()
    )


def _jax_setting() -> str:
    return f"JAX {jax.__version__} on {jax.default_backend()}"


def _narrow(a: np.ndarray, dtype: np.dtype, what: str) -> np.ndarray:
    """float32 ``a`` in the pairs' ``dtype``; float16 refuses values it cannot hold (|x| > 65504)."""
    if dtype == np.float32:
        return a
    with np.errstate(over="ignore"):  # refused just below, with the fix
        out = a.astype(dtype)
    if (np.isfinite(a) & ~np.isfinite(out)).any():
        raise ValueError(
            f"{what} has values beyond {dtype.name}'s range (|x| > {float(np.finfo(dtype).max):g}); "
            "nothing of this shard was written. Use --config.pairs.dtype=float32."
        )
    return out


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
    process_index: int = 0,
    process_count: int = 1,
    barrier: Callable[[str], None] = lambda name: None,
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

    Several processes (a multi-process run: ``process_index`` of ``process_count``, ``barrier(name)`` waiting for
    all of them, `flowjax.distributed.barrier`) share the missing shards round-robin, each writing its own; the
    first process writes the manifest, and every process returns once all shards are written. The files are
    those one process writes.

    The manifest's ``dtype`` (float32 if absent, or float16) is how x1 and x0 are written (from their float32
    values). With ``"noise": "regenerated"``, x0 must be exactly `noise_regenerator`'s draw (its shape,
    ``seed`` and ``data`` from the manifest); it is checked bit for bit and not written, and the manifest
    gains ``noise_check`` (`noise_check`). A directory begun where that draw hashed otherwise (another JAX
    version or backend) is refused like one of other settings.
    """
    num_pairs, shard_size = int(manifest["num_pairs"]), int(manifest["shard_size"])
    if num_pairs < 1 or shard_size < 1:
        raise ValueError(f"pairs.num_pairs and pairs.shard_size must be >= 1, got {num_pairs} and {shard_size}.")
    manifest = json.loads(json.dumps({"format": FORMAT, **manifest}))  # as it reads back from JSON
    classes = manifest.get("num_classes") or 0
    if not isinstance(classes, int) or classes < 0:
        raise ValueError(f"The pairs' num_classes must be an integer >= 0, got {classes!r}.")
    shape = tuple(manifest["shape"])
    dtype, regenerate = stored_dtype(manifest), None
    if not stores_noise(manifest):
        regenerate = noise_regenerator(manifest)
        manifest["noise_check"] = noise_check(num_pairs, regenerate)
    path = os.path.join(directory, MANIFEST)
    if os.path.isfile(path):
        with open(path) as f:
            saved = json.load(f)
        # Inside a recorded config (e.g. the teacher's ``data``), fields absent on disk are new in flowjax
        # since the pairs were written, not a difference: a new field's default keeps the old behaviour.
        diffs, _ = io.config_diff(saved, manifest, saved_as="on disk", whole_sections=True)
        if diffs:
            why = (
                f" The noise regenerated here ({_jax_setting()}) is not the noise the directory was begun with: "
                "finish it with the JAX version and backend that began it."
                if [d for d in diffs if d.startswith("noise_check:")] == diffs
                else ""
            )
            raise ValueError(
                f"{directory} holds pairs of other settings ({'; '.join(diffs)}). Nothing was changed.{why} "
                "Use another output directory (--config.pairs.output_dir), or the settings of its manifest.json "
                "to finish it."
            )
    elif process_index == 0:
        os.makedirs(directory, exist_ok=True)
        io.write_json_atomic(path, manifest)
    if process_index == 0:
        for name in os.listdir(directory):  # temporary files of a killed write (no process writes yet)
            if name.startswith((".pairs-", f".{MANIFEST}.")) and name.endswith(".tmp"):
                os.remove(os.path.join(directory, name))
    barrier("flowjax-pairs-manifest")  # the directory and its manifest exist
    shards = num_shards(num_pairs, shard_size)
    todo = missing_shards(directory, manifest)
    barrier("flowjax-pairs-todo")  # every process has the same list: none writes a shard before all have read it
    mine = todo[process_index::process_count]
    written = []
    for s in mine:
        start, stop = shard_range(s, num_pairs, shard_size)
        out = tuple(generate_shard(start, stop))
        if len(out) != 2 + bool(classes):
            raise ValueError(
                f"generate_shard({start}, {stop}) returned {len(out)} arrays; expected "
                + ("(x0, x1, label): the manifest records num_classes" if classes else "(x0, x1)")
                + "."
            )
        where = f"generate_shard({start}, {stop})"
        arrays = {"x0": np.asarray(out[0], np.float32), "x1": np.asarray(out[1], np.float32)}
        for name, a in arrays.items():
            if a.shape != (stop - start,) + shape:
                raise ValueError(f"{where} returned {name} of shape {a.shape}, expected {(stop - start,) + shape}.")
        if regenerate is not None:
            if not same_bits(arrays.pop("x0"), regenerate(np.arange(start, stop))):
                source = (manifest.get("data") or {}).get("source", "normal")
                raise ValueError(
                    f"{where} returned x0 other than the noise the reader regenerates (pair i: noise of the "
                    f"manifest's data.source {source!r} at fold_in(PRNGKey({manifest['seed']}), i)); "
                    "nothing of this shard was written. Store the noise "
                    "(--config.pairs.store_noise=True), or draw x0 as `pair_noise` with the manifest's data."
                )
        arrays = {name: _narrow(a, dtype, f"{where}'s {name}") for name, a in arrays.items()}
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
            progress(shards - len(todo) + len(written) * process_count, shards, s)
    barrier("flowjax-pairs-written")  # the directory is complete when any process returns
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
    ``read_x1(indices)`` gives x1 alone (no noise regenerated). ``stored_noise``: whether x0 is read from the
    shards, or regenerated from the pair indices (`noise_regenerator`).

    Shards are memory-mapped as they are first touched, so a training run holds only what its batches read
    (4M CIFAR-10 pairs are 4e6 x 2 x 3,072 x 4 B = 98 GB on disk in float32).
    """

    num_pairs: int
    shape: tuple[int, ...]
    read: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
    num_classes: int = 0
    labels: Callable[[np.ndarray], np.ndarray] | None = None
    read_x1: Callable[[np.ndarray], np.ndarray] | None = None
    stored_noise: bool = True


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
    """The first ``num`` pairs (all if 0) of a complete pairs directory, read by index (`PairsSource`).

    Pairs of ``"noise": "regenerated"`` draw x0 with `noise_regenerator`; opening them first checks that this
    draw hashes to the manifest's ``noise_check``, and refuses them otherwise."""
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
    dtype, stored = stored_dtype(manifest), stores_noise(manifest)
    regenerate = None if stored else noise_regenerator(manifest)
    if regenerate is not None:
        recorded, drawn = manifest.get("noise_check"), noise_check(total, regenerate)
        if recorded != drawn:
            raise ValueError(
                f"{os.path.join(directory, MANIFEST)}: the pairs' x0 is regenerated from the pair index, but "
                f"the noise drawn here ({_jax_setting()}) does not hash to the manifest's noise_check "
                f"({recorded!r}, here {drawn!r}): it is not the noise the teacher integrated. Read these pairs "
                "with the JAX version and backend that wrote them, or regenerate them with "
                "--config.pairs.store_noise=True."
            )

    def member(s: int, k: str, dtype: np.dtype, member_shape: tuple[int, ...]) -> np.ndarray:
        path = os.path.join(directory, shard_name(s, shards))
        try:
            a = _member_memmap(path, k)
        except KeyError:  # no such member: a shard of unlabelled pairs under a manifest that records labels
            a = None
        if a is not None and a.shape == member_shape and a.dtype != dtype and k in ("x0", "x1"):
            raise ValueError(
                f"{path}: {k} is stored as {a.dtype}, but the manifest records dtype {np.dtype(dtype).name!r} "
                "(pairs.dtype): this shard was not written with the directory's settings. Delete it and rerun "
                "`main.py --mode=pairs` with the manifest's settings to write it again."
            )
        if a is None or a.shape != member_shape or a.dtype != dtype:
            found = f"{a.dtype}{a.shape}" if a is not None else "missing"
            raise ValueError(
                f"{shard_name(s, shards)} in {directory}: {k} is {found}, expected "
                f"{np.dtype(dtype)}{member_shape}; the directory is corrupt, regenerate it."
            )
        return a

    @functools.lru_cache(maxsize=None)
    def shard(s: int) -> tuple[np.ndarray, ...]:
        """The memory maps (x0, x1) of shard s, or (x1,) when x0 is regenerated."""
        start, stop = shard_range(s, total, shard_size)
        return tuple(member(s, k, dtype, (stop - start,) + shape) for k in (("x0", "x1") if stored else ("x1",)))

    @functools.lru_cache(maxsize=None)
    def shard_labels(s: int) -> np.ndarray:
        start, stop = shard_range(s, total, shard_size)
        label = member(s, "label", np.int32, (stop - start,))
        path = os.path.join(directory, shard_name(s, shards))
        _check_labels(label, classes, path, "the directory is corrupt, regenerate it.")  # once per shard
        return label

    def gather(indices: np.ndarray, out: list[np.ndarray], arrays_of: Callable[[int], tuple]) -> None:
        """Rows ``indices`` of the shards' arrays into ``out`` (float16 widened to float32 exactly)."""
        if indices.size and (indices.min() < 0 or indices.max() >= n):
            raise IndexError(f"pair indices must be in [0, {n}), got {indices.min()}..{indices.max()}.")
        which, offset = np.divmod(indices, shard_size)
        for s in np.unique(which):
            rows = which == s
            for o, a in zip(out, arrays_of(int(s))):
                o[rows] = a[offset[rows]]

    def read_x1(indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices, np.int64)
        x1 = np.empty((len(indices),) + shape, np.float32)
        gather(indices, [x1], lambda s: shard(s)[-1:])
        return x1

    def read(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        indices = np.asarray(indices, np.int64)
        if regenerate is not None:
            x1 = read_x1(indices)  # checks the indices
            return regenerate(indices), x1
        x0, x1 = (np.empty((len(indices),) + shape, np.float32) for _ in range(2))
        gather(indices, [x0, x1], shard)
        return x0, x1

    def labels(indices: np.ndarray) -> np.ndarray:
        indices = np.asarray(indices, np.int64)
        label = np.empty((len(indices),), np.int32)
        gather(indices, [label], lambda s: (shard_labels(s),))
        return label

    return PairsSource(n, shape, read, classes, labels if classes else None, read_x1, stored)


def load_pairs(directory: str, num: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(x0 [N, ...], x1 [N, ...]) float32 of a complete pairs directory (its first ``num`` pairs if > 0), in memory."""
    source = open_pairs(directory, num)
    return source.read(np.arange(source.num_pairs))


def shard_files(directory: str) -> Iterable[str]:
    """The shard file names present in ``directory`` (sorted)."""
    return sorted(f for f in os.listdir(directory) if f.startswith("pairs-") and f.endswith(".npz"))
