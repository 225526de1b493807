"""The training data of a config: its kind decided once, here, and one `Dataset` for the rest of the code.

Kinds (`kind`, from ``data.name``):

- ``"toy"``: a 2-D toy of `toy2d`, drawn fresh every step (``data.num_train = 0``) or a fixed set of
  ``data.num_train`` points;
- ``"digits"``: a small offline labelled image set held in memory (`SMALL_IMAGE_SETS`): the 8 x 8 digits of
  `digits`, or the 28 x 28 MNIST subset of `mnist5k` (training split; its first ``num_train`` if > 0);
- ``"images"``: a TFDS data set or an image folder, read by example index (`images.ImageSource`);
- ``"pairs"``: a teacher's stored (x0, x1) pairs (`flowjax.rectify`), read by index from memory-mapped
  shards; its batches carry the stored noise ``"x0"`` of each x1.

The global batch of a step is a pure function of (``training.seed``, step): fresh draws with key
``fold_in(fold_in(PRNGKey(seed), DATA_KEY), step)``, or an epoch-wise shuffled batch of the fixed
training set (`stream.batch_indices` with key ``fold_in(PRNGKey(seed), DATA_KEY)``), which LOOM-CFM's
assignment state indexes. It is drawn whole and sliced per process and device by the input pipeline,
so the data do not depend on the number of hosts or devices.

Labels: the digits (their digit), TFDS data sets with a ``label`` feature, image folders with one
sub-folder per class (`images.folder_source`) and pairs of a class-conditional teacher have labels;
``Dataset.num_classes`` is how many classes they index (0: none). A class-conditional model
(``model.num_classes`` > 0, `model_classes`) gets the label of each example in its batches, ``"label"``
int32 [B], drawn and sliced with the rest of the batch; it must have exactly the data's classes
(`check_labels`). Unconditional runs (the default) read the same batches as before labels existed,
with no ``"label"``.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Iterator, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from flowjax.data import digits, images, mnist5k, pairs, stream, toy2d

KINDS = ("toy", "digits", "images", "pairs")
# The small offline labelled image sets held in memory (kind "digits"): name -> its module (`from_config`).
SMALL_IMAGE_SETS = {"digits": digits, "mnist5k": mnist5k}
DATA_KEY = images.DATA_KEY  # fold_in(PRNGKey(training.seed), DATA_KEY): the key of every data order


def kind(data: ml_collections.ConfigDict | dict) -> str:
    """The kind of data a config's ``data`` section names (one of `KINDS`)."""
    name = data.get("name", "")  # a pairs manifest may not record its teacher's data: then a 2-D toy's rules
    if name == "pairs":
        return "pairs"
    if images.is_image_dataset(name):
        return "images"
    return "digits" if name in SMALL_IMAGE_SETS else "toy"


class Dataset(NamedTuple):
    """What training, evaluation and rectification need of the data, whatever its kind.

    ``global_batch(step)`` is the whole global batch of ``step`` as host or device arrays: ``"x1"``
    [B, ...], ``"index"`` [B] training-set indices (-1 for fresh draws), for stored pairs ``"x0"``, and
    for a class-conditional model (``model.num_classes`` > 0) ``"label"`` int32 [B] in [0, num_classes).
    ``read(indices)`` gives the examples x1 of a fixed training set (None for fresh draws); for images whose
    flips are examples of their own, the unflipped image of each index below ``examples_per_epoch``.
    ``stream(start_step)``, for image data sets, iterates this process's per-device batches from
    ``start_step`` on, read ahead by background threads (`images.batches`), with the same entries.
    ``num_classes``: how many classes the data's labels index (0: the data have none), whether or not the
    model is conditioned on them. ``rows_batch(step, rows)``, for stored pairs and images, is ``global_batch(step)``'s
    ``rows`` (a slice) read alone: a process of a multi-process run reads only its share from disk.
    """

    kind: str
    shape: tuple[int, ...]  # of one example
    num_examples: int  # indices of the fixed training set; 0: fresh draws every step
    noise_one: Callable[[jax.Array], jax.Array]  # key -> one noise sample x0 of the source distribution
    global_batch: Callable[[int], dict]
    read: Callable[[np.ndarray], Any] | None = None
    stream: Callable[[int], Iterator[dict]] | None = None
    epoch_size: int = 0  # examples an epoch reads, if not num_examples (images whose flips are examples of their own)
    num_classes: int = 0  # classes of the data's labels; 0: unlabelled
    rows_batch: Callable[[int, slice], dict] | None = None

    @property
    def examples_per_epoch(self) -> int:
        """Distinct examples an epoch of the fixed training set reads (`stream.batch_indices`'s range)."""
        return self.epoch_size or self.num_examples

    @property
    def stored_noise(self) -> bool:
        """Whether the batches carry their noise (stored pairs); otherwise the train step draws it."""
        return self.kind == "pairs"


def noise_sampler(data: ml_collections.ConfigDict | dict, shape: tuple[int, ...]) -> Callable:
    """``key -> one noise sample``: N(0, I) of ``shape`` (``data.source = "normal"``; always for images and
    digits), or one draw of the 2-D toy named by ``data.source``."""
    source = data.get("source", "normal")
    if source == "normal" or kind(data) in ("digits", "images"):
        return lambda key: jax.random.normal(key, shape)
    sampler = toy2d.get_sampler(source, **toy2d.config_kwargs(source, data))
    return lambda key: sampler(key, 1)[0]


def prior_std(data: ml_collections.ConfigDict) -> float | tuple | None:
    """The noise's per-dimension standard deviation s when it is a Gaussian N(0, diag s^2) (N(0, I): 1.0; images
    and digits always), else None (a toy source)."""
    if kind(data) in ("digits", "images"):
        return 1.0
    return toy2d.GAUSSIAN_SOURCES.get(data.get("source", "normal"))


def num_examples(data: ml_collections.ConfigDict) -> int:
    """Indices of the fixed training set of a toy, the digits or stored pairs (0: fresh toy samples), read
    without loading the data; an image data set's size is known once it is opened (`from_config`)."""
    if kind(data) == "digits":
        return data.num_train or len(SMALL_IMAGE_SETS[data.name].from_config(data, "train")[1])
    if data.name == "pairs":
        stored = pairs.read_manifest(data.data_dir)["num_pairs"]
        if data.num_train > stored:
            raise ValueError(f"data.num_train={data.num_train} exceeds the {stored} pairs in {data.data_dir}.")
        return data.num_train or stored
    return data.num_train


def model_classes(config: ml_collections.ConfigDict) -> int:
    """The classes a config's model is conditioned on: ``model.num_classes``, where None (unset) and 0 both
    mean unconditional."""
    value = config.model.get("num_classes") or 0
    if not isinstance(value, int) or value < 0:
        raise ValueError(
            f"model.num_classes must be 0 or None (unconditional) or the number of classes, got {value!r}."
        )
    return value


def class_labels(num_classes: int, indices: np.ndarray) -> np.ndarray | None:
    """The class ``i % num_classes`` [n] int32 of each sample or pair number i in ``indices`` [n]: a function of i
    alone (pairs are resumable shard by shard), and as even over the classes as any run of consecutive numbers
    allows. None for an unconditional model (``num_classes`` 0 or None)."""
    if not num_classes:
        return None
    return (np.asarray(indices) % num_classes).astype(np.int32)


def eval_labels(num_classes: int, n: int) -> np.ndarray | None:
    """The labels [n] int32 of ``n`` conditional samples spread evenly over the classes: sample i has class
    ``i % num_classes`` (`class_labels`), so every class gets n // K or n // K + 1 of them, and any first m
    samples are as even as m allows. None for an unconditional model (``num_classes`` 0 or None)."""
    return class_labels(num_classes, np.arange(n))


def data_classes(data: ml_collections.ConfigDict | dict) -> int | None:
    """How many classes the labels of ``data`` index, read without loading the data: the digits kept (10,
    or data.num_classes), what a pairs manifest records, 0 for the 2-D toys (no labels); None for an image
    data set, whose labels are known once it is opened (`from_config`)."""
    what = kind(data)
    if what == "digits":
        return data.get("num_classes", 0) or 10
    if what == "pairs":
        return pairs.num_classes(pairs.read_manifest(data["data_dir"]))
    return None if what == "images" else 0


def _describe(data: ml_collections.ConfigDict | dict) -> str:
    """The data a label error is about, in the config's words."""
    name = data.get("name", "")
    if name == "pairs":
        return f"the pairs in {data['data_dir']}"
    if name == "folder":
        return f"the image folder data.data_dir={data['data_dir']!r}"
    if name == "digits" and data.get("num_classes"):
        return f"data.name='digits' with data.num_classes={data['num_classes']} (its first digits)"
    return f"data.name={name!r}"


def check_labels(data: ml_collections.ConfigDict | dict, model_classes: int, num_classes: int) -> None:
    """A class-conditional model (``model_classes`` > 0) needs data whose labels index exactly its classes
    (``num_classes``, `data_classes`); an unconditional one takes any data.

    Fewer model classes than the data's would give labels past the class embedding. More would leave
    classes that no example trains, and conditional evaluation (`eval_labels`) spreads its samples over
    all of the model's classes, so those would be drawn from untrained embeddings: both are refused.
    """
    if not model_classes:
        return
    if not num_classes:
        what = {
            "pairs": "were written by an unconditional teacher and hold no labels",
            "folder": "has no labels (some images lie directly in it, not in a class sub-folder)",
        }.get(data.get("name"), "has no labels")
        raise ValueError(
            f"model.num_classes={model_classes} asks for class-conditional training, but {_describe(data)} "
            f"{what}. Set --config.model.num_classes=0 (unconditional, the default), or train on labelled "
            "data: digits, a TFDS data set with labels (cifar10, imagenet32, imagenet64), an image folder "
            "with one sub-folder per class, or pairs of a conditional teacher."
        )
    if model_classes != num_classes:
        why = (
            f"labels up to {num_classes - 1} would be out of range"
            if model_classes < num_classes
            else f"classes {num_classes}..{model_classes - 1} would have no training data"
        )
        raise ValueError(
            f"model.num_classes={model_classes} does not match the {num_classes} classes of {_describe(data)}: "
            f"{why}. Set --config.model.num_classes={num_classes}."
        )


def validate(data: ml_collections.ConfigDict, batch_size: int, model_classes: int = 0) -> int:
    """Checks the ``data`` section before any data are read, and its labels against ``model_classes`` (the
    model's `model_classes`; an image data set's once `from_config` opens it); returns `num_examples` (0 for
    image data sets and fresh toy draws)."""
    if data.num_train < 0:
        raise ValueError(f"data.num_train must be >= 0 (0: fresh samples every step), got {data.num_train}.")
    if data.flip_as_example and not (kind(data) == "images" and data.random_flip):
        raise ValueError(
            "data.flip_as_example makes flipped images examples of their own: it needs an image data "
            "set and data.random_flip=True."
        )
    if data.num_classes and kind(data) != "digits":
        raise ValueError(
            f"data.num_classes={data.num_classes} keeps the first digits classes: it needs data.name='digits' or "
            "'mnist5k'."
        )
    if kind(data) == "images":
        return 0
    if kind(data) == "pairs":
        pairs.require_dir(data.data_dir)
    check_labels(data, model_classes, data_classes(data))
    n = num_examples(data)
    if n:
        stream.steps_per_epoch(n, batch_size)
    return n


def _fixed(x1: np.ndarray, key: jax.Array, batch_size: int, labels: np.ndarray | None = None) -> Callable[[int], dict]:
    """Global batches of a training set in memory, gathered with NumPy on the host (a JAX dispatch per
    step would cost more than the gather; the step's call moves the batch to the devices); with
    ``labels`` [n], each batch's ``"label"`` too."""
    indices_at = stream.host_batch_indices(key, x1.shape[0], batch_size)

    def global_batch(step: int) -> dict:
        index = indices_at(step)
        batch = {"x1": x1[index], "index": index}
        if labels is not None:
            batch["label"] = labels[index]
        return batch

    return global_batch


def from_config(config: ml_collections.ConfigDict) -> Dataset:
    """The `Dataset` of ``config.data`` with the global batch ``config.training.batch_size`` and data order
    of ``config.training.seed`` (checks as `validate`, labels included). Its batches carry ``"label"`` when
    ``model.num_classes`` > 0."""
    data, batch_size, seed = config.data, config.training.batch_size, config.training.seed
    classes = model_classes(config)
    validate(data, batch_size, classes)
    key = jax.random.fold_in(jax.random.PRNGKey(seed), DATA_KEY)
    what = kind(data)
    if what == "images":
        source = images.source_from_config(data)
        check_labels(data, classes, source.num_classes)  # opening lists the files: no image read yet
        stream.steps_per_epoch(source.num_examples, batch_size)  # batch <= data set
        keep = ("x1", "index", "label") if classes else ("x1", "index")  # not "flip": the step has no use for it
        read_step = images.step_reader(
            source, batch_size, seed, flip=data.random_flip, flip_as_example=data.flip_as_example
        )

        def image_rows(step: int, rows: slice = slice(None)) -> dict:
            batch = read_step(step, rows)
            return {k: batch[k] for k in keep}

        @functools.lru_cache(maxsize=1)  # the input pipeline often re-reads the batch its pools just read
        def image_batch(step: int) -> dict:
            return image_rows(step)

        def image_stream(start_step: int) -> Iterator[dict]:
            for batch in images.batches(
                source,
                batch_size,
                seed,
                flip=data.random_flip,
                flip_as_example=data.flip_as_example,
                local_devices=jax.local_device_count(),
                start_step=start_step,
            ):
                yield {k: batch[k] for k in keep}

        size = source.num_examples * (2 if data.flip_as_example else 1)
        return Dataset(
            what,
            source.shape,
            size,
            noise_sampler(data, source.shape),
            image_batch,
            source.get,
            image_stream,
            source.num_examples,
            source.num_classes,
            rows_batch=image_rows,
        )
    if what == "pairs":
        stored = pairs.open_pairs(data.data_dir, data.num_train)
        teacher = pairs.read_manifest(data.data_dir).get("data") or {}
        indices_at = stream.host_batch_indices(key, stored.num_pairs, batch_size)

        def pairs_batch(step: int, rows: slice = slice(None)) -> dict:  # NumPy, like the training sets in memory
            index = indices_at(step)[rows]
            x0, x1 = stored.read(index)  # float32; x0 stored, or regenerated as the teacher drew it
            batch = {"x1": x1, "index": index, "x0": x0}
            if classes:
                batch["label"] = stored.labels(index)  # range-checked against the manifest as each shard opens
            return batch

        return Dataset(
            what,
            stored.shape,
            stored.num_pairs,
            noise_sampler(teacher, stored.shape),
            pairs_batch,
            stored.read_x1,  # x1 alone: no noise regenerated for it
            num_classes=stored.num_classes,
            rows_batch=pairs_batch,
        )
    if what == "digits":
        if data.source != "normal":
            raise ValueError(
                f"data.source={data.source!r}: {data.name} images are generated from noise; set data.source='normal'."
            )
        if data.name == "digits" and data.image_size not in (0, 8, 16):
            raise ValueError(f"data.image_size must be 8 (or 0, native) or 16 for digits, got {data.image_size}.")
        x1, labels = SMALL_IMAGE_SETS[data.name].from_config(data, "train")
        if data.num_train > x1.shape[0]:
            raise ValueError(
                f"data.num_train={data.num_train} exceeds the {x1.shape[0]} images of the {data.name} training split."
            )
        x1, labels = x1[: data.num_train or None], labels[: data.num_train or None]
        return Dataset(
            what,
            x1.shape[1:],
            x1.shape[0],
            noise_sampler(data, x1.shape[1:]),
            _fixed(x1, key, batch_size, labels if classes else None),
            lambda index: x1[index],
            num_classes=data.get("num_classes", 0) or 10,
        )
    draw = toy2d.get_sampler(data.name, **toy2d.config_kwargs(data.name, data))
    shape = tuple(jax.eval_shape(lambda k: draw(k, 1), jax.random.PRNGKey(0)).shape[1:])
    noise_one = noise_sampler(data, shape)
    if data.num_train:
        x1 = np.asarray(
            toy2d.train_set(data.name, data.num_train, seed=data.train_seed, **toy2d.config_kwargs(data.name, data))
        )
        return Dataset(what, shape, x1.shape[0], noise_one, _fixed(x1, key, batch_size), lambda index: x1[index])

    @jax.jit
    def fresh_batch(step):
        return {"x1": draw(jax.random.fold_in(key, step), batch_size), "index": jnp.full((batch_size,), -1, jnp.int32)}

    return Dataset(what, shape, 0, noise_one, fresh_batch)


def held_out(config: ml_collections.ConfigDict) -> Any:
    """The held-out set samples are compared with: a toy's test set of ``eval.num_samples`` points, the
    digits test split (then ``eval.num_samples`` must equal its size: exact W2 pairs them one to one), or
    for an image data set the `images.ImageSource` of ``eval.fid_split``. Runs on stored pairs are
    evaluated against their teacher's data (`flowjax.rectify.evaluation_config`)."""
    data, n = config.data, config.eval.num_samples
    what = kind(data)
    if what == "images":
        return images.source_from_config(data, split=config.eval.fid_split)
    if what == "digits":
        test, _ = SMALL_IMAGE_SETS[data.name].from_config(data, "test")
        if n != test.shape[0]:
            raise ValueError(
                f"eval.num_samples={n}: W2 against the {data.name} test split needs exactly its "
                f"{test.shape[0]} images; set --config.eval.num_samples={test.shape[0]}."
            )
        return jnp.asarray(test)
    if what == "pairs":
        raise ValueError(
            "A run on stored pairs is evaluated against its teacher's data: pass the config through "
            "flowjax.rectify.evaluation_config first."
        )
    return toy2d.test_set(data.name, n, seed=data.test_seed, **toy2d.config_kwargs(data.name, data))
