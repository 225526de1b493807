"""Image data: offline digits, TFDS sources on mocked data, image folders, and the batch stream."""

import re

import jax
import numpy as np
import pytest
from PIL import Image

from flowjax.data import digits, images, stream

# ---------------------------------------------------------------------------------------- digits


def test_digits_split_sizes_disjoint_and_range():
    x_all, y_all = digits.load("all")
    assert x_all.shape == (1797, 8, 8, 1) and x_all.dtype == np.float32 and y_all.shape == (1797,)
    assert x_all.min() == -1.0 and x_all.max() == 1.0
    train, test = digits.split_indices()
    assert len(train) == 1497 and len(test) == 300
    assert not set(train) & set(test) and len(set(train) | set(test)) == 1797
    x_train, y_train = digits.load("train")
    x_test, y_test = digits.load("test")
    assert x_train.shape == (1497, 8, 8, 1) and x_test.shape == (300, 8, 8, 1)
    np.testing.assert_array_equal(x_train, x_all[train])
    np.testing.assert_array_equal(y_test, y_all[test])
    assert x_train.min() == -1.0 and x_train.max() == 1.0
    assert np.all(np.abs(np.bincount(y_test, minlength=10) - 30) <= 1)  # stratified
    assert not np.array_equal(digits.split_indices(seed=1)[1], test)  # the seed fixes the split


def test_digits_upsampled_to_16():
    x8, y8 = digits.load("train")
    x16, y16 = digits.load("train", size=16)
    assert x16.shape == (1497, 16, 16, 1) and x16.dtype == np.float32
    np.testing.assert_array_equal(y16, y8)
    assert x16.min() >= -1.0 and x16.max() <= 1.0
    np.testing.assert_allclose(x16.mean(axis=(1, 2, 3)), x8.mean(axis=(1, 2, 3)), atol=1e-5)
    with pytest.raises(ValueError, match="size must be 8"):
        digits.load(size=32)


def test_digits_class_filters():
    x, y = digits.load("train")
    for k in (3, 7):
        xk, yk = digits.load("train", num_classes=k)
        assert set(yk.tolist()) == set(range(k))
        np.testing.assert_array_equal(xk, x[y < k])  # all of them, same split
    x37, y37 = digits.load("test", classes=(3, 7))
    assert set(y37.tolist()) == {3, 7} and len(y37) == np.isin(digits.load("test")[1], (3, 7)).sum()
    with pytest.raises(ValueError, match="not both"):
        digits.load(num_classes=3, classes=(3, 7))


# ------------------------------------------------------------------------------------------ tfds


def test_tfds_cifar10_source(mock_tfds, tmp_path):
    source = images.tfds_source("cifar10", data_dir=str(tmp_path))
    assert source.num_examples == 12 and source.shape == (32, 32, 3) and source.num_classes == 10
    x, labels = source.read(np.array([3, 0, 3]))
    assert x.shape == (3, 32, 32, 3) and x.dtype == np.float32 and labels.dtype == np.int32
    assert x.min() >= -1.0 and x.max() <= 1.0 and np.all((labels >= 0) & (labels < 10))
    np.testing.assert_allclose((x + 1) * 127.5, np.round((x + 1) * 127.5), atol=1e-4)  # uint8 levels
    np.testing.assert_array_equal(x[0], x[2])
    np.testing.assert_array_equal(source.get(np.array([0])), x[1:2])
    small = images.tfds_source("cifar10", data_dir=str(tmp_path), image_size=16)
    assert small.shape == (16, 16, 3) and small.get(np.arange(2)).shape == (2, 16, 16, 3)


def test_tfds_variable_size_images_are_cropped_and_resized(mock_tfds):
    source = images.tfds_source("lsun/bedroom", image_size=16)  # mocked LSUN images vary in size
    x, labels = source.read(np.arange(4))
    assert labels is None and source.num_classes == 0
    assert x.shape == (4, 16, 16, 3) and x.min() >= -1.0 and x.max() <= 1.0


def test_tfds_unprepared_raises_with_build_command(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=re.escape(f"tfds build cifar10 --file_format=array_record --data_dir={tmp_path}\n")
    ) as err:
        images.tfds_source("cifar10", data_dir=str(tmp_path))
    assert "pip install -e '.[data]'" in str(err.value)
    with pytest.raises(FileNotFoundError, match="--manual_dir=MANUAL_DIR"):
        images.tfds_source("celeb_a_hq/256", data_dir=str(tmp_path))
    assert not any(tmp_path.iterdir())  # nothing downloaded or written
    with pytest.raises(ValueError, match="Unsupported TFDS image data set"):
        images.tfds_source("mnist", data_dir=str(tmp_path))


# ---------------------------------------------------------------------------------------- folder


def test_folder_source_round_trip_and_order(tmp_path):
    rng = np.random.default_rng(0)
    names = ["b/1.png", "a/2.png", "a/10.png", "c/d/0.png"]
    pixels = {}
    for name in names:
        pixels[name] = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels[name]).save(tmp_path / name)
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    source = images.folder_source(tmp_path, image_size=8)
    assert source.num_examples == 4 and source.shape == (8, 8, 3)
    expected = np.stack([pixels[n] for n in sorted(names)]) / 127.5 - 1.0  # a/10, a/2, b/1, c/d/0
    np.testing.assert_allclose(source.get(np.arange(4)), expected, atol=1e-6)
    np.testing.assert_allclose(source.get(np.array([2])), expected[2:3], atol=1e-6)


def test_folder_source_centre_crops_non_square(tmp_path):
    tall = np.random.default_rng(1).integers(0, 256, (12, 8, 3), dtype=np.uint8)
    Image.fromarray(tall).save(tmp_path / "tall.PNG")
    x = images.folder_source(tmp_path, image_size=8).get(np.array([0]))
    np.testing.assert_allclose(x[0], tall[2:10] / 127.5 - 1.0, atol=1e-6)
    assert images.folder_source(tmp_path, image_size=4).get(np.array([0])).shape == (1, 4, 4, 3)


def test_folder_source_missing_or_empty(tmp_path):
    for path in (tmp_path / "absent", tmp_path):
        with pytest.raises(FileNotFoundError, match="Expected layout"):
            images.folder_source(path, image_size=8)


# --------------------------------------------------------------------------------------- batches

N, B = 20, 8


@pytest.fixture(scope="module")
def source():
    rng = np.random.default_rng(0)
    return images.array_source(rng.uniform(-1, 1, (N, 4, 4, 1)).astype(np.float32), np.arange(N) % 3)


def _take(iterator, k):
    return [next(iterator) for _ in range(k)]


def _key(seed):
    return jax.random.fold_in(jax.random.PRNGKey(seed), images.DATA_KEY)


def test_batches_deterministic_and_follow_stream_indices(source):
    first, again = (_take(images.batches(source, B, seed=3), 4) for _ in range(2))
    other = _take(images.batches(source, B, seed=4), 1)
    for step, (a, b) in enumerate(zip(first, again)):
        assert a.keys() == {"x1", "index", "flip", "label"} and a["x1"].shape == (1, B, 4, 4, 1)
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
        np.testing.assert_array_equal(a["index"][0], stream.batch_indices(_key(3), N, B, step))
        np.testing.assert_array_equal(a["label"][0], a["index"][0] % 3)
    assert not np.array_equal(first[0]["index"], other[0]["index"])


def test_batches_epoch_reads_each_example_at_most_once(source):
    spe = stream.steps_per_epoch(N, B)
    epochs = _take(images.batches(source, B, seed=0, prefetch=0), 2 * spe)
    for e in range(2):
        seen = np.concatenate([b["index"].ravel() for b in epochs[e * spe : (e + 1) * spe]])
        assert len(set(seen.tolist())) == len(seen) == spe * B


def test_batches_process_shares(source):
    whole = _take(images.batches(source, B, seed=1, process_index=0, process_count=1), 3)
    shares = [
        _take(images.batches(source, B, seed=1, process_index=p, process_count=2, local_devices=2), 3) for p in (0, 1)
    ]
    for step in range(3):
        parts = [s[step] for s in shares]
        assert parts[0]["x1"].shape == (2, 2, 4, 4, 1)
        assert not set(parts[0]["index"].ravel()) & set(parts[1]["index"].ravel())
        for k in whole[step]:
            glued = np.concatenate([p[k].reshape((-1,) + p[k].shape[2:]) for p in parts])
            np.testing.assert_array_equal(glued, whole[step][k][0])
    with pytest.raises(ValueError, match="divisible"):
        images.batches(source, B, seed=1, process_index=0, process_count=3)


def test_batches_resume_equals_uninterrupted(source):
    full = _take(images.batches(source, B, seed=2), 6)
    resumed = _take(images.batches(source, B, seed=2, start_step=4), 2)
    restored = images.batches(source, B, seed=2)
    restored.set_state({"next_index": 5})
    for a, b in zip(full[4:], resumed):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    np.testing.assert_array_equal(next(restored)["x1"], full[5]["x1"])
    assert restored.get_state() == {"next_index": 6}


def test_flips_where_flip_mask_says(source):
    seen = []
    for step, batch in enumerate(_take(images.batches(source, B, seed=5), 3)):
        mask = images.flip_mask(5, step, B)
        np.testing.assert_array_equal(batch["flip"][0], mask)
        originals = source.get(batch["index"][0])
        for j in range(B):
            want = np.flip(originals[j], axis=1) if mask[j] else originals[j]  # W axis of [H, W, C]
            np.testing.assert_array_equal(batch["x1"][0, j], want)
        seen += mask.tolist()
    assert 0 < sum(seen) < len(seen)
    plain = next(images.batches(source, B, seed=5, flip=False))
    assert not plain["flip"].any()
    np.testing.assert_array_equal(plain["x1"][0], source.get(plain["index"][0]))


def test_flip_as_example_indices(source):
    read = images.step_reader(source, B, seed=5, flip_as_example=True)
    plain = images.step_reader(source, B, seed=5)
    for step in range(3):
        a, b = read(step), plain(step)
        np.testing.assert_array_equal(a["x1"], b["x1"])
        np.testing.assert_array_equal(a["index"], b["index"] + N * b["flip"])  # flipped: index + N
        assert a["index"].max() < 2 * N


def test_source_from_config(mock_tfds, tmp_path):
    from configs import default

    data = default.get_config().data
    data.name, data.data_dir = "cifar10", str(tmp_path)
    whole = images.source_from_config(data)
    assert whole.num_examples == 12
    data.num_train = 5
    five = images.source_from_config(data)
    assert five.num_examples == 5
    np.testing.assert_array_equal(five.get(np.arange(5)), whole.get(np.arange(5)))  # the first five
    with pytest.raises(IndexError):
        five.get(np.array([5]))
    assert images.source_from_config(data, split="test").num_examples == 12  # num_train limits training only
    data.name = "folder"
    with pytest.raises(ValueError, match="data_dir"):
        images.source_from_config(data)
    data.name = "mnist"
    with pytest.raises(ValueError, match="not an image data set"):
        images.source_from_config(data)
