"""flowjax.io: atomic JSON and .npz writes (whole file or the old one, never half) and config_diff."""

import json
import os
import zipfile

import numpy as np
import pytest

from flowjax import io


def test_write_json_atomic_writes_sorted_indented_json(tmp_path):
    path = str(tmp_path / "new_dir" / "manifest.json")  # the directory is created
    io.write_json_atomic(path, {"b": [1, 2], "a": {"y": None, "x": "é"}})
    with open(path) as f:
        text = f.read()
    assert text == json.dumps({"a": {"x": "é", "y": None}, "b": [1, 2]}, indent=2)
    assert os.listdir(tmp_path / "new_dir") == ["manifest.json"]


def test_failed_json_write_keeps_the_old_file(tmp_path):
    path = str(tmp_path / "config.json")
    io.write_json_atomic(path, {"step": 1})
    with pytest.raises(TypeError):
        io.write_json_atomic(path, {"step": object()})  # the serializer raises
    with open(path) as f:
        assert json.load(f) == {"step": 1}
    assert os.listdir(tmp_path) == ["config.json"]


def test_save_npz_atomic_round_trip_and_byte_identical(tmp_path):
    arrays = {
        "x0": np.arange(12, dtype=np.float32).reshape(3, 4),
        "params/conv/kernel": np.asfortranarray(np.ones((2, 3))),  # "/" in a name, Fortran-ordered input
        "scalar": np.float64(2.5),
        "labels": np.array([3, 1], np.int64),
    }
    a, b = str(tmp_path / "a.npz"), str(tmp_path / "b.npz")
    io.save_npz_atomic(a, arrays)
    io.save_npz_atomic(b, arrays)
    with open(a, "rb") as fa, open(b, "rb") as fb:
        assert fa.read() == fb.read()  # fixed zip timestamps: same arrays, same bytes
    with np.load(a, allow_pickle=False) as f:
        assert sorted(f.files) == sorted(arrays)
        for name, value in arrays.items():
            assert f[name].shape == np.shape(value) and f[name].dtype == np.asarray(value).dtype
            np.testing.assert_array_equal(f[name], value)
    with zipfile.ZipFile(a) as zf:  # uncompressed members: their data can be memory-mapped
        assert {info.compress_type for info in zf.infolist()} == {zipfile.ZIP_STORED}
    assert sorted(os.listdir(tmp_path)) == ["a.npz", "b.npz"]


def test_interrupted_npz_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = str(tmp_path / "stats.npz")
    io.save_npz_atomic(path, {"mu": np.zeros(3)})
    before = open(path, "rb").read()

    def half_write(f, array, **kwargs):  # the array serializer, interrupted after some bytes
        f.write(b"\x93NUMPY partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np.lib.format, "write_array", half_write)
    with pytest.raises(KeyboardInterrupt):
        io.save_npz_atomic(path, {"mu": np.ones(3)})
    monkeypatch.undo()
    assert open(path, "rb").read() == before
    assert os.listdir(tmp_path) == ["stats.npz"]
    with np.load(path) as f:
        np.testing.assert_array_equal(f["mu"], np.zeros(3))


def test_save_npz_atomic_overwrite_false_refuses_an_existing_file(tmp_path):
    path = str(tmp_path / "stats.npz")
    io.save_npz_atomic(path, {"mu": np.zeros(2)}, overwrite=False)  # absent: written
    with pytest.raises(FileExistsError, match="stats.npz exists; pass overwrite=True"):
        io.save_npz_atomic(path, {"mu": np.ones(2)}, overwrite=False)
    with np.load(path) as f:
        np.testing.assert_array_equal(f["mu"], np.zeros(2))
    io.save_npz_atomic(path, {"mu": np.ones(2)})  # overwrite=True is the default
    with np.load(path) as f:
        np.testing.assert_array_equal(f["mu"], np.ones(2))


SAVED = {
    "data": {"name": "moons", "num_train": 10, "old_field": 1},
    "model": {"hidden": [64, 64], "nested": {"a": 1}},
    "training": {"seed": 0},
    "nfe": 4,
    "gone": "x",
}
CURRENT = {
    "data": {"name": "moons", "num_train": 20, "num_squares": 8},  # changed, removed, added
    "model": {"hidden": [64, 64], "nested": {"a": 1, "b": 2}},  # a dict-valued field: compared whole
    "training": {"seed": 0, "init_from": ""},
    "nfe": 4,
    "solver": "rk4",  # top-level entries are the record's own layout: absence is a difference
}


def test_config_diff_field_by_field():
    differences, added = io.config_diff(SAVED, CURRENT)
    assert differences == [
        "data.num_train: 10 saved, 20 now",
        "data.old_field: 1 saved, (no such field) now",
        "gone: 'x' saved, (no such field) now",
        "model.nested: {'a': 1} saved, {'a': 1, 'b': 2} now",
        "solver: (no such field) saved, 'rk4' now",
    ]
    assert added == ["data.num_squares", "training.init_from"]
    assert io.config_diff(SAVED, SAVED) == ([], [])


def test_config_diff_named_keys_whole_sections_and_labels():
    keys = ("data", "training.seed", "training.init_from", "nfe")
    differences, added = io.config_diff(SAVED, CURRENT, keys, saved_as="in the workdir")
    assert differences == [
        "data.num_train: 10 in the workdir, 20 now",
        "data.old_field: 1 in the workdir, (no such field) now",
    ]
    assert added == ["data.num_squares", "training.init_from"]  # a dotted entry absent from saved's section
    differences, added = io.config_diff(SAVED, CURRENT, ["data", "model"], saved_as="on disk", whole_sections=True)
    assert differences == [
        "data: {'name': 'moons', 'num_train': 10, 'old_field': 1} on disk, {'name': 'moons', 'num_train': 20} now",
        "model: {'hidden': [64, 64], 'nested': {'a': 1}} on disk, {'hidden': [64, 64], 'nested': {'a': 1, 'b': 2}} now",
    ]
    assert added == ["data.num_squares"]
    # only added fields: no difference, in either mode
    old = {"data": {"name": "moons"}}
    new = {"data": {"name": "moons", "num_squares": 8}}
    for whole in (False, True):
        assert io.config_diff(old, new, whole_sections=whole) == ([], ["data.num_squares"])
