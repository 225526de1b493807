"""Image data sets for GPU/TPU runs, read by example index, and the per-device batch stream.

One file: the sources and the batch readers share one convention for example indices, flips and
preprocessing, which LOOM-CFM's assignment state and DANSM's pools index.

**Sources.** An `ImageSource` gives random access by example index — what LOOM-CFM's assignment
state and DANSM's pools need — as ``get(indices) -> [n, H, W, C]`` float32 in [-1, 1] (NHWC,
``x = uint8 / 127.5 - 1``). Three kinds:

- `tfds_source`: a *prepared* TFDS data set in ArrayRecord format, read through
  ``tfds.data_source`` (no TensorFlow at read time). Nothing is ever downloaded or written: an
  unprepared data set raises FileNotFoundError with the ``tfds build`` command that prepares it.
- `folder_source`: PNG/JPEG files under a folder (AFHQ, FFHQ), in sorted path order, labelled by
  their sub-folder when there is one sub-folder per class.
- `array_source`: arrays already in memory (e.g. `flowjax.data.digits`).

Images whose size differs from ``image_size`` (LSUN, CelebA-HQ at another resolution, AFHQ at
512) are centre-cropped to a square and resized with PIL's bicubic filter on the uint8 image, the
usual preprocessing of these data sets; PIL widens the filter when shrinking, so it antialiases,
and it runs on the host in the loader threads rather than on the accelerator.

**Batches.** `batches` yields, for every step, this process's share of the global batch as
per-device arrays; the global batch is a pure function of (seed, step):

- indices: `flowjax.data.stream.batch_indices` with key ``fold_in(PRNGKey(seed), 1)``, the data
  key of every fixed training set (`flowjax.data.dataset`), so streamed and in-memory data sets read the same examples
  (epoch-wise permutations, the remainder of each epoch dropped);
- horizontal flips: `flip_mask` draws one bit per example from
  ``fold_in(fold_in(PRNGKey(seed), 5), step)``, so a flipped image can be treated as a data point
  of its own (LOOM-CFM does) by anyone who recomputes the bit;
- process p of P takes the contiguous slice p of the global batch, split over its local devices.

The pipeline is grain's ``MapDataset.range(...).map(batch_at).to_iter_dataset(...)``: since a
step's batch is a pure function of the step, a MapDataset over step numbers is all that is needed,
and grain supplies the ordered multi-threaded prefetch and a checkpointable iterator state
(``get_state() == {"next_index": next step}``). grain's own shuffle, batch and shard are not used:
the order must be `stream.batch_indices`'s (LOOM-CFM's state is indexed by it) and a batch is
drawn globally, then sliced per process, so the data do not depend on the number of hosts.
tensorflow-datasets and grain come with ``pip install -e '.[data]'`` and are imported where used.
"""

from __future__ import annotations

import contextlib
import importlib
import pathlib
import sys
from typing import Any, Callable, Iterator, NamedTuple

import jax
import numpy as np
from PIL import Image

from flowjax.data import stream

# Native image size of each supported TFDS data set (LSUN images vary; 256 is the usual crop).
TFDS_IMAGE_SIZES = {
    "cifar10": 32,
    "imagenet_resized/32x32": 32,
    "imagenet_resized/64x64": 64,
    "celeb_a_hq/256": 256,
    "lsun/bedroom": 256,
}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
DATA_KEY, FLIP_KEY = 1, 5  # fold_in(PRNGKey(seed), ·) of the batch indices and of the flips


class ImageSource(NamedTuple):
    """Random access to a fixed image data set by example index.

    ``read(indices) -> (images [n, H, W, C] float32 in [-1, 1], labels [n] int32 or None)``.
    """

    num_examples: int
    shape: tuple[int, int, int]
    read: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]
    num_classes: int = 0  # 0: no labels

    def get(self, indices: np.ndarray) -> np.ndarray:
        """Images [n, H, W, C] float32 in [-1, 1] of the examples ``indices`` [n]."""
        return self.read(indices)[0]


def _require(module: str) -> Any:
    """Import an optional dependency, saying which extra provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"{module} is needed here; install it with pip install -e '.[data]'.") from err


@contextlib.contextmanager
def mock_tfds(num_examples: int = 12) -> Iterator[None]:
    """Within it, every TFDS data set opened reads TFDS's own mock examples (``num_examples`` generated from the
    builder's features, no files): a config's real input pipeline runs where its data are not prepared (tests,
    `benchmarks/throughput.py`). tfds 4.9.10's mock binds its ``__getitems__`` without ``self``: it is given the
    intended signature meanwhile."""
    tfds = _require("tensorflow_datasets")
    from tensorflow_datasets.testing import mocking

    original = mocking._getitems
    mocking._getitems = lambda keys, generator, serialized=False: [generator[k] for k in keys]
    try:
        with tfds.testing.mock_data(num_examples=num_examples, policy=tfds.testing.MockPolicy.USE_CODE):
            yield
    finally:
        mocking._getitems = original


def to_unit_range(images: np.ndarray) -> np.ndarray:
    """uint8 images -> float32 in [-1, 1] (x / 127.5 - 1)."""
    return images.astype(np.float32) / 127.5 - 1.0


def fit_image(image: np.ndarray, size: int) -> np.ndarray:
    """A uint8 [H, W, C] image centre-cropped to a square and resized (bicubic) to [size, size, C]."""
    height, width = image.shape[:2]
    if height == width == size:
        return image
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    crop = image[top : top + side, left : left + side]
    resized = Image.fromarray(crop.squeeze(-1) if crop.shape[-1] == 1 else crop).resize(
        (size, size), Image.Resampling.BICUBIC
    )
    return np.asarray(resized).reshape(size, size, image.shape[-1])


def array_source(images: np.ndarray, labels: np.ndarray | None = None, num_classes: int = 0) -> ImageSource:
    """An `ImageSource` over in-memory images [n, H, W, C] (already in [-1, 1]) and optional labels [n]."""
    images = np.asarray(images, dtype=np.float32)
    labels = None if labels is None else np.asarray(labels, dtype=np.int32)
    if num_classes == 0 and labels is not None:
        num_classes = int(labels.max()) + 1
    read = lambda i: (images[i], None if labels is None else labels[i])
    return ImageSource(images.shape[0], tuple(images.shape[1:]), read, num_classes)


def _unprepared_message(builder: Any, name: str, data_dir: str, prepared: bool) -> str:
    """What is missing and the `tfds build` command that prepares it."""
    manual = bool(getattr(builder, "MANUAL_DOWNLOAD_INSTRUCTIONS", None))
    command = f"tfds build {name} --file_format=array_record --data_dir={data_dir}"
    command += " --manual_dir=MANUAL_DIR" if manual else ""
    if prepared:
        what = (
            f"TFDS dataset {name!r} is prepared in {builder.data_dir} as {builder.info.file_format}, "
            "which has no random access. Rebuild it as ArrayRecord (into another data_dir, or after "
            "deleting that folder) with"
        )
    else:
        what = (
            f"TFDS dataset {name!r} is not prepared in {data_dir} (no {builder.data_dir}). flowjax reads "
            "prepared ArrayRecord files and never downloads; prepare them once with"
        )
    hint = (
        (f"{name} cannot be downloaded automatically: first put the files its TFDS catalog page lists in MANUAL_DIR. ")
        if manual
        else ""
    )
    return f"{what}\n  {command}\n{hint}Building needs tensorflow-datasets and TensorFlow: pip install -e '.[data]'."


def _open_tfds(name: str, split: str, data_dir: str | None) -> Any:
    """``tfds.data_source`` of a prepared data set; FileNotFoundError (with the fix) when not prepared."""
    tfds = _require("tensorflow_datasets")
    try:
        return tfds.data_source(name, split=split, data_dir=data_dir, download=False)
    except Exception as err:  # tfds's error type depends on what is missing; the builder tells
        builder = tfds.builder(name, data_dir=data_dir)
        prepared = builder.is_prepared()
        if prepared and not isinstance(err, NotImplementedError):  # prepared: a genuine error
            raise
        root = (
            str(data_dir)
            if data_dir is not None
            else _require("tensorflow_datasets.core.constants").get_default_data_dir()
        )
        raise FileNotFoundError(_unprepared_message(builder, name, root, prepared)) from err


def tfds_source(
    name: str, split: str = "train", data_dir: str | None = None, image_size: int | None = None
) -> ImageSource:
    """An `ImageSource` over a prepared TFDS image data set (ArrayRecord, random access).

    Args:
      name: one of `TFDS_IMAGE_SIZES` ("cifar10", "imagenet_resized/32x32", "imagenet_resized/64x64",
        "celeb_a_hq/256", "lsun/bedroom").
      split: a TFDS split, e.g. "train", "test", "train[:90%]".
      data_dir: the TFDS data directory; None for TFDS's default (``$TFDS_DATA_DIR`` or
        ``~/tensorflow_datasets``).
      image_size: output side; None for the data set's native size (256 for LSUN).

    Raises:
      FileNotFoundError: the data set is not prepared as ArrayRecord in ``data_dir``; the message
        gives the ``tfds build`` command that prepares it.
    """
    if name not in TFDS_IMAGE_SIZES:
        raise ValueError(f"Unsupported TFDS image data set {name!r}; supported: {sorted(TFDS_IMAGE_SIZES)}.")
    size = image_size or TFDS_IMAGE_SIZES[name]
    data = _open_tfds(name, split, data_dir)
    features = data.dataset_info.features
    channels = features["image"].shape[-1]
    num_classes = features["label"].num_classes if "label" in features else 0

    def read(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        records = data.__getitems__([int(i) for i in np.asarray(indices).reshape(-1)])
        images = np.array([fit_image(np.asarray(r["image"]), size) for r in records], np.uint8)
        labels = np.array([r["label"] for r in records], np.int32) if num_classes else None
        return to_unit_range(images.reshape((-1, size, size, channels))), labels

    return ImageSource(len(data), (size, size, channels), read, num_classes)


def folder_source(path: str | pathlib.Path, image_size: int) -> ImageSource:
    """An `ImageSource` over the PNG/JPEG files under ``path`` (recursively), as RGB, sorted by path.

    For AFHQ (``afhq/train/{cat,dog,wild}/*.jpg``) or FFHQ (``ffhq/00000/00000.png``, ...): example
    i is the i-th file in sorted relative-path order. Images are centre-cropped and resized to
    ``image_size`` when their size differs.

    Labels: when every image lies below a sub-folder of ``path`` (one sub-folder per class, as
    torchvision's ``ImageFolder`` reads them), the sub-folders that hold images, sorted by name, are
    the classes 0..K-1 and an image's label is that of the sub-folder it is under (AFHQ's
    ``afhq/train``: cat 0, dog 1, wild 2). Any image directly in ``path`` makes the folder unlabelled
    (``num_classes`` 0). The labels change neither the examples nor their order. FFHQ's numbered
    sub-folders read as classes too; they mean nothing, so FFHQ is trained unconditionally (the default).
    """
    root = pathlib.Path(path)
    files = (
        sorted(
            (f for f in root.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()),
            key=lambda f: f.relative_to(root).as_posix(),
        )
        if root.is_dir()
        else []
    )
    if not files:
        raise FileNotFoundError(
            f"No images (*.png, *.jpg, *.jpeg) under {root}{'' if root.is_dir() else ' (no such folder)'}. "
            f"Expected layout: image files anywhere below {root}, e.g. AFHQ as "
            f"{root}/train/cat/flickr_cat_000002.jpg or FFHQ as {root}/00000/00000.png; "
            "download and unpack the data set there first."
        )

    parts = [f.relative_to(root).parts for f in files]
    labels, classes = None, {}
    if all(len(p) > 1 for p in parts):  # no image directly in the folder: its sub-folders are the classes
        classes = {name: k for k, name in enumerate(sorted({p[0] for p in parts}))}
        labels = np.array([classes[p[0]] for p in parts], np.int32)

    def load(file: pathlib.Path) -> np.ndarray:
        with Image.open(file) as image:
            return fit_image(np.asarray(image.convert("RGB")), image_size)

    def read(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        indices = np.asarray(indices).reshape(-1)
        images = np.array([load(files[int(i)]) for i in indices], np.uint8).reshape((-1, image_size, image_size, 3))
        return to_unit_range(images), None if labels is None else labels[indices]

    return ImageSource(len(files), (image_size, image_size, 3), read, len(classes))


def flip_mask(seed: int, step: int, batch_size: int) -> np.ndarray:
    """[batch_size] bool: which examples of the global batch of ``step`` are flipped left-right."""
    key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(seed), FLIP_KEY), step)
    return np.asarray(jax.random.bernoulli(key, 0.5, (batch_size,)))


def step_reader(
    source: ImageSource,
    batch_size: int,
    seed: int,
    *,
    flip: bool = True,
    flip_as_example: bool = False,
    rows: slice = slice(None),
) -> Callable[[int], dict[str, np.ndarray]]:
    """``step -> rows [rows] of the global batch of that step``, read from ``source`` (random access); the
    reader's second argument reads other rows of the step (``reader(step, rows)``).

    Returns a dict of ``"x1"`` images [n, H, W, C] (flipped where ``"flip"`` is set), ``"index"``
    int32 example indices, ``"flip"`` bool and ``"label"`` int32 when the source has labels.
    With ``flip_as_example`` a flipped image counts as an example of its own, index ``i + num_examples``
    (LOOM-CFM's released code gives each flip variant its own noise cache; the training set then has
    ``2 * num_examples`` indices). Indices follow `stream.batch_indices` with the data key
    ``fold_in(PRNGKey(seed), DATA_KEY)``; flips are `flip_mask`.
    """
    key = jax.random.fold_in(jax.random.PRNGKey(seed), DATA_KEY)
    indices_at = stream.host_batch_indices(key, source.num_examples, batch_size)  # checks batch_size <= examples

    def batch_at(step: int, rows: slice = rows) -> dict[str, np.ndarray]:
        index = indices_at(step)[rows]
        flips = flip_mask(seed, step, batch_size)[rows] if flip else np.zeros(len(index), bool)
        images, labels = source.read(index)
        images = np.where(flips[:, None, None, None], images[:, :, ::-1], images)
        if flip_as_example:
            index = index + source.num_examples * flips
        batch = {"x1": images, "index": index.astype(np.int32), "flip": flips}
        if labels is not None:
            batch["label"] = labels
        return batch

    return batch_at


def batches(
    source: ImageSource,
    batch_size: int,
    seed: int,
    *,
    flip: bool = True,
    flip_as_example: bool = False,
    process_index: int | None = None,
    process_count: int | None = None,
    local_devices: int = 1,
    prefetch: int = 2,
    start_step: int = 0,
) -> Iterator[dict[str, np.ndarray]]:
    """An infinite iterator over steps ``start_step, start_step + 1, ...`` of per-device batches.

    Each element is a dict of this process's share of the global batch of ``batch_size`` (see
    `step_reader` for the entries), shaped [local_devices, per_device, ...]. Resuming at step s
    (``start_step=s``, or grain's ``set_state({"next_index": s})``) yields exactly what an
    uninterrupted iterator yields at step s.

    Args:
      flip: draw random horizontal flips (`flip_mask`); all False when off.
      flip_as_example: a flipped image has index ``i + num_examples`` (see `step_reader`).
      process_index, process_count: this host's slice of the global batch; default
        ``jax.process_index()``, ``jax.process_count()``.
      local_devices: devices of this process (the leading axis, for pmap).
      prefetch: batches prepared ahead by as many background threads; 0 reads in the caller.
    """
    grain = _require("grain")
    process_count = jax.process_count() if process_count is None else process_count
    if batch_size % (process_count * local_devices):
        raise ValueError(
            f"training.batch_size={batch_size} must be divisible by processes × local devices "
            f"= {process_count} × {local_devices}."
        )
    read = step_reader(
        source,
        batch_size,
        seed,
        flip=flip,
        flip_as_example=flip_as_example,
        rows=stream.process_rows(batch_size, process_index, process_count),
    )

    def batch_at(step: int) -> dict[str, np.ndarray]:
        return {k: stream.per_device(v, local_devices) for k, v in read(step).items()}

    steps = grain.MapDataset.range(0, sys.maxsize).map(batch_at)
    iterator = iter(steps.to_iter_dataset(grain.ReadOptions(num_threads=prefetch, prefetch_buffer_size=prefetch)))
    iterator.set_state({"next_index": start_step})
    return iterator


# data.name of the image data sets -> TFDS name ("folder": `folder_source` at data.data_dir).
DATASETS = {
    "cifar10": "cifar10",
    "imagenet32": "imagenet_resized/32x32",
    "imagenet64": "imagenet_resized/64x64",
    "celeba_hq256": "celeb_a_hq/256",
    "lsun_bedroom": "lsun/bedroom",
}


def is_image_dataset(name: str) -> bool:
    """Whether ``data.name`` is read through an `ImageSource` (a TFDS data set or an image folder)."""
    return name in DATASETS or name == "folder"


def subset(source: ImageSource, num_examples: int) -> ImageSource:
    """The first ``num_examples`` examples of ``source``."""
    if not 0 < num_examples <= source.num_examples:
        raise ValueError(f"data.num_train={num_examples} must be in [1, {source.num_examples}] for this data set.")

    def read(indices: np.ndarray):
        indices = np.asarray(indices)
        if indices.size and (indices.min() < 0 or indices.max() >= num_examples):
            raise IndexError(f"index outside the first {num_examples} examples")
        return source.read(indices)

    return source._replace(num_examples=num_examples, read=read)


def source_from_config(data: Any, split: str | None = None) -> ImageSource:
    """The `ImageSource` of a config's ``data`` block (``data.split`` unless ``split`` is given).

    ``data.name`` is a key of `DATASETS` (TFDS, prepared under ``data.data_dir`` or TFDS's
    default) or ``"folder"`` (images under ``data.data_dir``, ``data.image_size`` required);
    ``data.image_size`` 0 keeps the native size; ``data.num_train`` > 0 keeps the first examples
    (training split only).
    """
    split = split or data.split
    if data.name == "folder":
        if not data.data_dir or not data.image_size:
            raise ValueError(
                "data.name='folder' reads the images under data.data_dir: set --config.data.data_dir=DIR "
                "and --config.data.image_size (e.g. 64)."
            )
        source = folder_source(data.data_dir, data.image_size)
    elif data.name in DATASETS:
        source = tfds_source(DATASETS[data.name], split, data.data_dir or None, data.image_size or None)
    else:
        raise ValueError(f"{data.name!r} is not an image data set; choose one of {sorted(DATASETS) + ['folder']}.")
    if data.num_train and split == data.split:
        source = subset(source, data.num_train)
    return source
