"""Class labels through the data layer: digits, image folders, TFDS, stored pairs; and the errors."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from configs import default
from flowjax import evaluate, io, rectify
from flowjax.data import dataset as datasets
from flowjax.data import digits, images, stream
from flowjax.data import pairs as pairs_io


def _config(name="digits", batch_size=16, model_classes=None, **data):
    config = default.get_config()
    config.data.name, config.training.batch_size = name, batch_size
    for field, value in data.items():
        config.data[field] = value
    config.model.num_classes = model_classes
    return config


def _indices_at(config, num_examples):
    """The data order every fixed training set follows (`stream.host_batch_indices` with the data key)."""
    key = jax.random.fold_in(jax.random.PRNGKey(config.training.seed), datasets.DATA_KEY)
    return stream.host_batch_indices(key, num_examples, config.training.batch_size)


def test_eval_labels_spread_evenly():
    for k, n in ((3, 10), (10, 10), (4, 3), (7, 1000)):
        labels = datasets.eval_labels(k, n)
        assert labels.dtype == np.int32 and labels.shape == (n,)
        counts = np.bincount(labels, minlength=k)
        assert len(counts) == k and counts.max() - counts.min() <= 1 and counts.sum() == n
    np.testing.assert_array_equal(datasets.eval_labels(3, 7), [0, 1, 2, 0, 1, 2, 0])
    assert datasets.eval_labels(0, 5) is None and datasets.eval_labels(None, 5) is None


# ---------------------------------------------------------------------------------------- digits


@pytest.mark.parametrize("kept", [0, 3])
def test_digits_batches_carry_the_digit_of_their_image(kept):
    config = _config(model_classes=kept or 10, num_classes=kept)
    ds = datasets.from_config(config)
    x, y = digits.from_config(config.data, "train")
    assert ds.num_classes == (kept or 10) and ds.num_examples == len(y)
    indices_at = _indices_at(config, len(y))
    for step in (0, 1, len(y) // 16 + 1):  # the last one in the second epoch
        batch = ds.global_batch(step)
        assert batch.keys() == {"x1", "index", "label"} and batch["label"].dtype == np.int32
        np.testing.assert_array_equal(batch["index"], indices_at(step))
        np.testing.assert_array_equal(batch["x1"], x[batch["index"]])
        np.testing.assert_array_equal(batch["label"], y[batch["index"]])
    raw_images, raw_labels = digits.load("all")  # each image's digit, independently of the split
    batch = ds.global_batch(0)
    for image, label in zip(batch["x1"], batch["label"]):
        matches = np.flatnonzero(np.all(raw_images == image, axis=(1, 2, 3)))
        assert label in raw_labels[matches] and label < (kept or 10)


def test_unconditional_batches_have_no_label_and_are_unchanged():
    for model_classes in (None, 0):
        config = _config(model_classes=model_classes)
        ds = datasets.from_config(config)
        x, _ = digits.from_config(config.data, "train")
        indices_at = _indices_at(config, len(x))
        for step in (0, 5):
            batch = ds.global_batch(step)
            assert batch.keys() == {"x1", "index"}
            np.testing.assert_array_equal(batch["index"], indices_at(step))
            np.testing.assert_array_equal(batch["x1"], x[indices_at(step)])
    toy = _config("moons", num_train=64)
    ds = datasets.from_config(toy)
    assert ds.num_classes == 0 and ds.global_batch(0).keys() == {"x1", "index"}
    conditional = datasets.from_config(_config(model_classes=10)).global_batch(3)
    unconditional = datasets.from_config(_config()).global_batch(3)
    for k in ("x1", "index"):  # labels only add a key
        np.testing.assert_array_equal(conditional[k], unconditional[k])


# ---------------------------------------------------------------------------------------- errors


def test_label_errors_name_the_fields(tmp_path):
    with pytest.raises(ValueError, match=r"model.num_classes=10 .*data.name='moons' has no labels.*num_classes=0"):
        datasets.from_config(_config("moons", model_classes=10))
    with pytest.raises(ValueError, match=r"model.num_classes=10 .*no labels"):
        datasets.validate(_config("moons").data, 16, 10)  # before any data are read
    with pytest.raises(ValueError, match=r"model.num_classes=10 does not match the 3 classes.*data.num_classes=3"):
        datasets.from_config(_config(model_classes=10, num_classes=3))
    with pytest.raises(ValueError, match=r"model.num_classes=5 does not match the 10 classes.*out of range.*=10\."):
        datasets.from_config(_config(model_classes=5))
    with pytest.raises(ValueError, match="model.num_classes must be"):
        datasets.from_config(_config(model_classes=-1))

    import main  # a config asking for labels on unlabelled data writes nothing

    config = _config("moons", model_classes=4)
    config.model.hidden, config.training.num_steps = (8,), 2
    config.training.log_every = config.training.checkpoint_every = 2
    workdir = tmp_path / "run"
    with pytest.raises(ValueError, match="model.num_classes"):
        main.run(config, str(workdir), "train", "configs/x.py")
    assert not workdir.exists() or not any(workdir.iterdir())


# ---------------------------------------------------------------------------------------- images


def _class_folder(root, per_class=4):
    """PNGs in class sub-folders a/ and b/ (one nested deeper), each a flat grey that tells its class."""
    for k, name in enumerate(("a", "b")):
        for j in range(per_class):
            path = root / name / ("deep" if j == per_class - 1 else "") / f"{j}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((6, 6, 3), 40 + 150 * k + j, np.uint8)).save(path)


def _label_of(image):
    return int(image.mean() > 0)  # class a is dark (< 127.5), class b bright


def test_folder_labels_by_class_sub_folder(tmp_path):
    _class_folder(tmp_path)
    source = images.folder_source(tmp_path, image_size=4)
    assert source.num_classes == 2
    x, labels = source.read(np.arange(source.num_examples))
    np.testing.assert_array_equal(labels, [_label_of(im) for im in x])
    np.testing.assert_array_equal(labels, [0] * 4 + [1] * 4)

    config = _config("folder", batch_size=4, model_classes=2, data_dir=str(tmp_path), image_size=4)
    ds = datasets.from_config(config)
    assert ds.num_classes == 2
    indices_at = _indices_at(config, 8)
    globals_ = [ds.global_batch(step) for step in range(3)]  # over an epoch boundary (2 steps per epoch)
    for step, batch in enumerate(globals_):
        assert batch.keys() == {"x1", "index", "label"}
        np.testing.assert_array_equal(batch["index"], indices_at(step))
        np.testing.assert_array_equal(batch["label"], [_label_of(im) for im in batch["x1"]])
    # the per-device stream (4 forced CPU devices) slices the labels exactly like x1 and index
    devices = jax.local_device_count()
    iterator = ds.stream(1)
    for step in (1, 2):
        per_device = next(iterator)
        assert per_device.keys() == {"x1", "index", "label"} and per_device["label"].shape[0] == devices
        for k, v in per_device.items():
            np.testing.assert_array_equal(v.reshape((-1,) + v.shape[2:]), globals_[step][k])

    unconditional = datasets.from_config(_config("folder", batch_size=4, data_dir=str(tmp_path), image_size=4))
    assert unconditional.global_batch(0).keys() == {"x1", "index"} and next(unconditional.stream(0)).keys() == {
        "x1",
        "index",
    }
    np.testing.assert_array_equal(unconditional.global_batch(2)["x1"], globals_[2]["x1"])

    with pytest.raises(ValueError, match="model.num_classes=3 does not match the 2 classes of the image folder"):
        datasets.from_config(_config("folder", batch_size=4, model_classes=3, data_dir=str(tmp_path), image_size=4))
    Image.fromarray(np.zeros((6, 6, 3), np.uint8)).save(tmp_path / "loose.png")  # an image outside the classes
    assert images.folder_source(tmp_path, image_size=4).num_classes == 0
    with pytest.raises(ValueError, match="model.num_classes=2 .*image folder.*has no labels.*one sub-folder per class"):
        datasets.from_config(config)


def test_tfds_labels_reach_the_batch(mock_tfds, tmp_path):
    config = _config("cifar10", batch_size=4, model_classes=10, data_dir=str(tmp_path))
    ds = datasets.from_config(config)
    assert ds.num_classes == 10
    source = images.tfds_source("cifar10", data_dir=str(tmp_path))
    for step in (0, 3):
        batch = ds.global_batch(step)
        assert batch.keys() == {"x1", "index", "label"}
        np.testing.assert_array_equal(batch["label"], source.read(batch["index"])[1])
    assert datasets.from_config(_config("cifar10", batch_size=4, data_dir=str(tmp_path))).num_classes == 10
    with pytest.raises(ValueError, match="model.num_classes=10 .*data.name='lsun_bedroom' has no labels"):
        datasets.from_config(_config("lsun_bedroom", batch_size=4, model_classes=10, image_size=16))


# ----------------------------------------------------------------------------------------- pairs


def _fake_sampler(velocity_fn, solver, nfe, *args, **kwargs):
    """The sampler's contract, ``(params, x0, labels=None) -> (x1, nfe)``, as one Euler step from t = 0."""

    def run(params, x0, labels=None):
        t = jnp.zeros((x0.shape[0],))
        return x0 + velocity_fn(params, x0, t, y=labels), nfe

    return run


def _velocity(params, x, t, y=None):
    """x1 = x0 + label: the label a pair was sampled with can be read off the pair."""
    return jnp.broadcast_to(y.astype(x.dtype).reshape((-1,) + (1,) * (x.ndim - 1)), x.shape)


def _teacher(num_pairs=23, shard_size=5, batch_size=4, classes=3):
    config = _config(model_classes=classes)
    p = config.pairs
    p.num_pairs, p.shard_size, p.batch_size, p.solver, p.nfe = num_pairs, shard_size, batch_size, "euler", 1
    return config


def _noise_one(key):
    return jax.random.normal(key, (3, 2))


def _snapshot(directory):
    return {f: open(os.path.join(directory, f), "rb").read() for f in sorted(os.listdir(directory))}


def test_pairs_with_labels_round_trip_resume_and_train(tmp_path, monkeypatch):
    monkeypatch.setattr(evaluate, "sampler", _fake_sampler)
    d, other = str(tmp_path / "pairs"), str(tmp_path / "other")
    rectify.generate_pairs(_teacher(), _velocity, None, _noise_one, d)
    manifest = pairs_io.read_manifest(d)
    assert manifest["num_classes"] == 3
    source = pairs_io.open_pairs(d)
    assert source.num_classes == 3
    index = np.arange(23)
    x0, x1 = source.read(index)
    labels = source.labels(index)
    np.testing.assert_array_equal(labels, index % 3)  # pair i: class i % K
    np.testing.assert_allclose(x1 - x0, np.broadcast_to(labels[:, None, None], x0.shape), atol=1e-6)
    with np.load(os.path.join(d, "pairs-00004-of-00005.npz")) as f:
        assert f["label"].dtype == np.int32 and f["label"].tolist() == [20 % 3, 21 % 3, 22 % 3]
    # the labels depend on the pair index only, not on how shards and batches cut the pairs
    rectify.generate_pairs(_teacher(shard_size=7, batch_size=3), _velocity, None, _noise_one, other)
    np.testing.assert_array_equal(pairs_io.open_pairs(other).labels(index), labels)

    before = _snapshot(d)  # resume: a lost shard comes back byte for byte
    os.remove(os.path.join(d, "pairs-00002-of-00005.npz"))
    rectify.generate_pairs(_teacher(), _velocity, None, _noise_one, d)
    assert _snapshot(d) == before
    with pytest.raises(ValueError, match="other settings.*num_classes"):  # an unconditional teacher's pairs differ
        rectify.generate_pairs(_teacher(classes=None), _velocity, None, _noise_one, d)
    assert _snapshot(d) == before

    student = _config("pairs", batch_size=8, model_classes=3, data_dir=d)
    ds = datasets.from_config(student)
    assert ds.num_classes == 3
    indices_at = _indices_at(student, 23)
    for step in (0, 1, 2):
        batch = ds.global_batch(step)
        assert batch.keys() == {"x0", "x1", "index", "label"}
        np.testing.assert_array_equal(batch["index"], indices_at(step))
        np.testing.assert_array_equal(batch["label"], batch["index"] % 3)
        np.testing.assert_array_equal(batch["x1"], x1[batch["index"]])
    unconditional = datasets.from_config(_config("pairs", batch_size=8, data_dir=d))
    assert unconditional.global_batch(0).keys() == {"x0", "x1", "index"}  # a student may ignore the labels
    with pytest.raises(ValueError, match="model.num_classes=4 does not match the 3 classes of the pairs in"):
        datasets.from_config(_config("pairs", batch_size=8, model_classes=4, data_dir=d))


def test_generate_pairs_conditions_the_real_sampler(tmp_path):
    """Through `evaluate.sampler`: Euler over [0, 1] of the constant velocity ``label`` gives x1 = x0 + label."""
    d = str(tmp_path / "pairs")
    config = _teacher(num_pairs=10, shard_size=4, classes=4)
    config.pairs.nfe = 2
    rectify.generate_pairs(config, _velocity, None, _noise_one, d)
    source = pairs_io.open_pairs(d)
    x0, x1 = source.read(np.arange(10))
    labels = source.labels(np.arange(10))
    np.testing.assert_array_equal(labels, np.arange(10) % 4)
    np.testing.assert_allclose(x1 - x0, np.broadcast_to(labels[:, None, None], x0.shape), atol=1e-5)


def test_unlabelled_and_corrupt_pairs(tmp_path):
    old = str(tmp_path / "old")  # pairs written before labels existed: no num_classes, no label arrays
    manifest = {"num_pairs": 12, "shard_size": 6, "shape": [2], "solver": "euler", "nfe": 1, "seed": 0, "teacher": {}}
    pairs_io.write_pairs(old, lambda a, b: (np.zeros((b - a, 2)), np.ones((b - a, 2))), manifest)
    source = pairs_io.open_pairs(old)
    assert source.num_classes == 0 and source.labels is None
    batch = datasets.from_config(_config("pairs", batch_size=4, data_dir=old)).global_batch(0)
    assert batch.keys() == {"x0", "x1", "index"}
    with pytest.raises(ValueError, match="model.num_classes=2 .*pairs in .*unconditional teacher.*num_classes=0"):
        datasets.from_config(_config("pairs", batch_size=4, model_classes=2, data_dir=old))

    labelled = {**manifest, "num_classes": 3}
    with pytest.raises(ValueError, match=r"expected \(x0, x1, label\)"):
        pairs_io.write_pairs(str(tmp_path / "a"), lambda a, b: (np.zeros((b - a, 2)), np.ones((b - a, 2))), labelled)
    out_of_range = lambda a, b: (np.zeros((b - a, 2)), np.ones((b - a, 2)), np.arange(a, b))
    with pytest.raises(ValueError, match=r"generate_shard\(0, 6\): labels 0..5 are outside \[0, 3\)"):
        pairs_io.write_pairs(str(tmp_path / "b"), out_of_range, labelled)
    assert pairs_io.shard_files(str(tmp_path / "b")) == []

    bad = str(tmp_path / "bad")  # a shard whose labels exceed the manifest's num_classes, written by hand
    pairs_io.write_pairs(bad, lambda a, b: (np.zeros((b - a, 2)), np.ones((b - a, 2)), np.arange(a, b) % 3), labelled)
    shard = os.path.join(bad, pairs_io.shard_name(1, 2))
    arrays = {"x0": np.zeros((6, 2), np.float32), "x1": np.ones((6, 2), np.float32), "label": np.full(6, 7, np.int32)}
    io.save_npz_atomic(shard, arrays)
    ds = datasets.from_config(_config("pairs", batch_size=12, model_classes=3, data_dir=bad))
    with pytest.raises(ValueError, match=rf"{shard}: labels 7..7 are outside \[0, 3\)"):
        ds.global_batch(0)
    io.save_npz_atomic(shard, {k: arrays[k] for k in ("x0", "x1")})
    with pytest.raises(ValueError, match="label is missing"):
        pairs_io.open_pairs(bad).labels(np.arange(12))
