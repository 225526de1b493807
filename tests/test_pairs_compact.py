"""Compact stored pairs: x0 regenerated from the pair index (pairs.store_noise=False) and float16 shards
(pairs.dtype), written through `rectify.generate_pairs` with a tiny teacher and read back by `open_pairs` and
the pairs `Dataset`; old directories, resumes and refusals.

References are computed independently of `flowjax.data.pairs`: pair i's noise by calling the noise sampler on
``fold_in(PRNGKey(pairs.seed), i)`` one pair at a time, x1 from the float32 directory of the same teacher (the
default settings, whose x0 is the array the teacher integrated), rounded to float16 by NumPy.
"""

import json
import os
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from flowjax import io, rectify
from flowjax.data import dataset as datasets
from flowjax.data import pairs as pairs_io
from flowjax.data import toy2d

SHAPE = (8, 8, 3)
SEED = 3  # pairs.seed's default
OLD_KEYS = {
    "format",
    "num_pairs",
    "shard_size",
    "shape",
    "seed",
    "solver",
    "nfe",
    "dopri5_tol",
    "t_end",
    "teacher",
    "data",
}


def _teacher(num_pairs=30, shard_size=8, batch_size=5, name="digits", source="normal", **pairs):
    """A teacher config (digits-like target: N(0, I) noise), pairs by 2 Euler steps; ``pairs`` overrides."""
    config = default.get_config()
    config.data.name, config.data.source = name, source
    p = config.pairs
    p.num_pairs, p.shard_size, p.batch_size, p.solver, p.nfe = num_pairs, shard_size, batch_size, "euler", 2
    for field, value in pairs.items():
        p[field] = value
    return config


def _velocity(params, x, t, y=None):
    """A nonlinear field, so that x1 spreads over magnitudes (float16's relative rounding is what is tested)."""
    return jnp.sin(3.0 * x) * (1.0 + t.reshape((-1,) + (1,) * (x.ndim - 1))) - 0.7 * x


def _normal(key):
    return jax.random.normal(key, SHAPE)


def _generate(config, directory, noise_one=_normal):
    return rectify.generate_pairs(config, _velocity, None, noise_one, directory, {"workdir": "/runs/t", "step": 1})


def _reference_noise(noise_one, n, seed=SEED):
    """Pair i's noise, one pair at a time (no vmap, no batch): noise_one(fold_in(PRNGKey(seed), i))."""
    return np.stack([np.asarray(noise_one(jax.random.fold_in(jax.random.PRNGKey(seed), i))) for i in range(n)])


def _bits(a):
    a = np.ascontiguousarray(a)
    return a.dtype, a.shape, a.tobytes()


def _members(path):
    with zipfile.ZipFile(path) as zf:
        names = sorted(zf.namelist())
    with np.load(path) as f:
        return {name: f[name[: -len(".npy")]].dtype for name in names}


def _snapshot(directory):
    return {f: open(os.path.join(directory, f), "rb").read() for f in sorted(os.listdir(directory))}


def _size(directory):
    return sum(os.path.getsize(os.path.join(directory, f)) for f in pairs_io.shard_files(directory))


def _within_float16_rounding(x16, x32):
    """|x16 - x32| <= 2^-11 |x32| (round to nearest, normal range) + 2^-25 (half the subnormal spacing)."""
    return np.all(np.abs(x16 - x32) <= 2.0**-11 * np.abs(x32) + 2.0**-25)


def test_regenerated_float16_pairs_give_the_teachers_noise_and_rounded_x1(tmp_path):
    n = 30
    full, compact = str(tmp_path / "full"), str(tmp_path / "compact")
    half, regen32 = str(tmp_path / "half"), str(tmp_path / "regen32")
    _generate(_teacher(), full)
    _generate(_teacher(store_noise=False, dtype="float16"), compact)
    _generate(_teacher(dtype="float16"), half)
    _generate(_teacher(store_noise=False), regen32)

    # what the files hold: the defaults write as before (float32 x0 and x1, no new manifest keys)
    assert set(pairs_io.read_manifest(full)) == OLD_KEYS
    manifest = pairs_io.read_manifest(compact)
    assert set(manifest) == OLD_KEYS | {"noise", "dtype", "noise_check"}
    assert manifest["noise"] == "regenerated" and manifest["dtype"] == "float16" and manifest["seed"] == SEED
    assert manifest["data"]["name"] == "digits" and manifest["data"]["source"] == "normal"
    assert manifest["noise_check"]["pairs"] == n and len(manifest["noise_check"]["sha256"]) == 64
    last = pairs_io.shard_name(3, 4)  # 30 pairs in shards of 8: the last holds 6
    assert _members(os.path.join(full, last)) == {"x0.npy": np.float32, "x1.npy": np.float32}
    assert _members(os.path.join(compact, last)) == {"x1.npy": np.float16}
    assert _members(os.path.join(half, last)) == {"x0.npy": np.float16, "x1.npy": np.float16}
    assert _members(os.path.join(regen32, last)) == {"x1.npy": np.float32}

    # sizes: float16 halves, dropping x0 halves again (pairs of 192 values; the rest is zip and .npy headers)
    sizes = {d: _size(os.path.join(tmp_path, d)) for d in ("full", "half", "regen32", "compact")}
    assert 0.48 < sizes["half"] / sizes["full"] < 0.53, sizes
    assert 0.48 < sizes["regen32"] / sizes["full"] < 0.53, sizes
    assert 0.23 < sizes["compact"] / sizes["full"] < 0.28, sizes

    ref_x0 = _reference_noise(_normal, n)
    with np.load(os.path.join(full, pairs_io.shard_name(0, 4))) as f:  # the x0 the teacher integrated
        assert _bits(f["x0"]) == _bits(ref_x0[:8])
    full_x0, full_x1 = pairs_io.load_pairs(full)
    assert _bits(full_x0) == _bits(ref_x0)
    rounded = full_x1.astype(np.float16).astype(np.float32)  # NumPy's round to nearest

    source = pairs_io.open_pairs(compact)
    assert not source.stored_noise and source.num_pairs == n and source.shape == SHAPE
    rng = np.random.default_rng(0)
    for index in (np.arange(n), rng.permutation(n)[:7], np.array([29]), np.array([4, 4, 17, 0])):
        x0, x1 = source.read(index)
        assert _bits(x0) == _bits(ref_x0[index])  # bit for bit, whatever the batch
        assert x1.dtype == np.float32 and _bits(x1) == _bits(rounded[index])
        assert _within_float16_rounding(x1, full_x1[index])
        assert _bits(source.read_x1(index)) == _bits(x1)
    x1 = source.read(np.arange(n))[1]
    assert not np.array_equal(x1, full_x1)  # really rounded
    assert np.abs(x1 - full_x1).max() > 2.0**-14 * np.abs(full_x1).max()

    x0, x1 = pairs_io.load_pairs(regen32)  # float32, x0 regenerated: exactly the full pairs
    assert _bits(x0) == _bits(ref_x0) and _bits(x1) == _bits(full_x1)
    x0, x1 = pairs_io.load_pairs(half)  # float16, x0 stored: both rounded
    assert _bits(x0) == _bits(ref_x0.astype(np.float16).astype(np.float32)) and _bits(x1) == _bits(rounded)

    # the pairs Dataset of a student serves the teacher's noise and the rounded x1
    student = default.get_config()
    student.data.name, student.data.data_dir, student.training.batch_size = "pairs", compact, 8
    ds = datasets.from_config(student)
    assert ds.kind == "pairs" and ds.stored_noise and ds.num_examples == n and ds.shape == SHAPE
    for step in (0, 1, 3, 4):  # over an epoch boundary (3 batches of 8 per epoch)
        batch = ds.global_batch(step)
        index = batch["index"]
        assert batch.keys() == {"x0", "x1", "index"} and len(index) == 8
        assert _bits(batch["x0"]) == _bits(ref_x0[index])
        assert _bits(batch["x1"]) == _bits(rounded[index])
        assert _bits(ds.read(index)) == _bits(rounded[index])


def test_regenerated_noise_follows_the_recorded_data_source(tmp_path):
    """A toy noise source (data.source = 8gaussians) is regenerated from the manifest's data config; a teacher
    whose noise is not what that config draws is refused before any pair is integrated."""
    config = _teacher(num_pairs=20, shard_size=6, batch_size=4, name="moons", source="8gaussians", store_noise=False)
    noise_one = datasets.noise_sampler(config.data, (2,))
    d = str(tmp_path / "toy")
    _generate(config, d, noise_one)
    assert pairs_io.read_manifest(d)["data"]["source"] == "8gaussians"
    x0, _ = pairs_io.load_pairs(d)
    gaussians = toy2d.get_sampler("8gaussians")
    ref = np.stack([np.asarray(gaussians(jax.random.fold_in(jax.random.PRNGKey(SEED), i), 1)[0]) for i in range(20)])
    assert _bits(x0) == _bits(ref)
    assert np.abs(x0).max() > 3.0  # the 8 Gaussians (radius 4), not N(0, I)

    other = str(tmp_path / "other")
    with pytest.raises(ValueError, match=r"data.source='8gaussians'.*teacher's noise differs.*store_noise=True"):
        _generate(config, other, lambda key: jax.random.normal(key, (2,)))
    assert not os.path.exists(other)  # refused before anything was written


def test_resume_after_deleting_a_shard_is_byte_identical_and_other_settings_are_refused(tmp_path):
    d, full = str(tmp_path / "compact"), str(tmp_path / "full")
    compact = _teacher(store_noise=False, dtype="float16")
    _generate(compact, d)
    before = _snapshot(d)
    os.remove(os.path.join(d, pairs_io.shard_name(2, 4)))
    with pytest.raises(FileNotFoundError, match="1 of 4 shards missing"):
        pairs_io.open_pairs(d)
    _generate(compact, d)
    assert _snapshot(d) == before  # byte for byte, the manifest included

    for settings, diff in (({"store_noise": False}, "dtype"), ({"dtype": "float16"}, "noise")):
        with pytest.raises(ValueError, match=f"other settings.*{diff}.*Nothing was changed"):
            _generate(_teacher(**settings), d)
        assert _snapshot(d) == before
    _generate(_teacher(), full)  # a directory of the defaults refuses compact settings
    full_before = _snapshot(full)
    for settings in ({"store_noise": False}, {"dtype": "float16"}):
        with pytest.raises(ValueError, match="other settings"):
            _generate(_teacher(**settings), full)
    assert _snapshot(full) == full_before
    with pytest.raises(ValueError, match="pairs.dtype must be one of"):
        _generate(_teacher(dtype="bfloat16"), str(tmp_path / "bad"))


def test_old_format_directories_load_and_the_defaults_write_the_same_bytes(tmp_path):
    # a directory as flowjax wrote it before these settings: no dtype/noise keys, float32 x0 and x1 (np.savez)
    old = str(tmp_path / "old")
    os.makedirs(old)
    rng = np.random.default_rng(1)
    x0, x1 = rng.standard_normal((2, 10) + SHAPE).astype(np.float32)
    manifest = {"format": 1, "num_pairs": 10, "shard_size": 6, "shape": list(SHAPE), "seed": 0, "solver": "euler"}
    manifest.update(nfe=1, teacher={}, data={"name": "digits", "source": "normal"})
    with open(os.path.join(old, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    for s, (a, b) in enumerate(((0, 6), (6, 10))):
        np.savez(os.path.join(old, pairs_io.shard_name(s, 2)), x0=x0[a:b], x1=x1[a:b])
    source = pairs_io.open_pairs(old)
    assert source.stored_noise
    index = np.array([9, 0, 5, 6, 6])
    got0, got1 = source.read(index)
    assert _bits(got0) == _bits(x0[index]) and _bits(got1) == _bits(x1[index])
    student = default.get_config()
    student.data.name, student.data.data_dir, student.training.batch_size = "pairs", old, 4
    batch = datasets.from_config(student).global_batch(0)
    assert _bits(batch["x0"]) == _bits(x0[batch["index"]]) and _bits(batch["x1"]) == _bits(x1[batch["index"]])
    # a writer of the same manifest resumes it as it is
    before = _snapshot(old)
    assert pairs_io.write_pairs(old, lambda a, b: (x0[a:b], x1[a:b]), manifest) == []
    assert _snapshot(old) == before

    # write_pairs with the defaults: shards exactly `io.save_npz_atomic` of float32 {x0, x1}, as before
    d = str(tmp_path / "new")
    pairs_io.write_pairs(d, lambda a, b: (x0[a:b].astype(np.float64), x1[a:b]), manifest)
    for s, (a, b) in enumerate(((0, 6), (6, 10))):
        ref = str(tmp_path / f"ref{s}.npz")
        io.save_npz_atomic(ref, {"x0": x0[a:b], "x1": x1[a:b]})
        assert open(os.path.join(d, pairs_io.shard_name(s, 2)), "rb").read() == open(ref, "rb").read()
    assert json.load(open(os.path.join(d, "manifest.json"))) == manifest


def test_damaged_or_mismatched_compact_pairs_are_refused(tmp_path):
    d = str(tmp_path / "compact")
    _generate(_teacher(store_noise=False, dtype="float16"), d)
    x1 = pairs_io.load_pairs(d)[1]
    shard = os.path.join(d, pairs_io.shard_name(1, 4))
    io.save_npz_atomic(shard, {"x1": x1[8:16]})  # float32 x1 under a float16 manifest
    source = pairs_io.open_pairs(d)
    source.read(np.arange(8))  # shard 0 is fine
    with pytest.raises(
        ValueError, match=rf"{shard}: x1 is stored as float32, but the manifest records dtype 'float16'"
    ):
        source.read(np.arange(30))
    student = default.get_config()
    student.data.name, student.data.data_dir, student.training.batch_size = "pairs", d, 30
    with pytest.raises(ValueError, match=rf"{shard}: x1 is stored as float32"):
        datasets.from_config(student).global_batch(0)

    full = str(tmp_path / "full")  # float16 x1 under a float32 manifest (e.g. copied from another directory)
    _generate(_teacher(), full)
    shard = os.path.join(full, pairs_io.shard_name(3, 4))
    io.save_npz_atomic(shard, {"x0": np.zeros((6,) + SHAPE, np.float16), "x1": np.zeros((6,) + SHAPE, np.float16)})
    with pytest.raises(
        ValueError, match=rf"{shard}: x0 is stored as float16, but the manifest records dtype 'float32'"
    ):
        pairs_io.open_pairs(full).read(np.array([29]))

    # noise that does not hash to the manifest's noise_check (another JAX, backend or PRNG setting) is refused
    path = os.path.join(d, "manifest.json")
    manifest = json.load(open(path))
    manifest["noise_check"]["sha256"] = "0" * 64
    io.write_json_atomic(path, manifest)
    with pytest.raises(ValueError, match=r"does not hash to the manifest's noise_check.*store_noise=True"):
        pairs_io.open_pairs(d)
    with pytest.raises(ValueError, match=r"other settings \(noise_check.*The noise regenerated here"):
        _generate(_teacher(store_noise=False, dtype="float16"), d)


def test_write_pairs_checks_regenerated_noise_and_float16_range(tmp_path):
    manifest = {"num_pairs": 10, "shard_size": 5, "shape": [2], "solver": "euler", "nfe": 1, "seed": 7, "teacher": {}}
    manifest["data"], manifest["noise"] = {"name": "moons", "source": "normal"}, "regenerated"
    noise = _reference_noise(lambda key: jax.random.normal(key, (2,)), 10, seed=7)

    def off_by_one_ulp(a, b):
        x0 = noise[a:b].copy()
        x0[-1, 0] = np.nextafter(x0[-1, 0], np.float32(np.inf))
        return x0, -x0

    d = str(tmp_path / "a")
    with pytest.raises(ValueError, match=r"generate_shard\(0, 5\) returned x0 other than the noise.*PRNGKey\(7\)"):
        pairs_io.write_pairs(d, off_by_one_ulp, manifest)
    assert pairs_io.shard_files(d) == []
    assert pairs_io.write_pairs(d, lambda a, b: (noise[a:b], -noise[a:b]), manifest) == [0, 1]
    x0, x1 = pairs_io.load_pairs(d)
    assert _bits(x0) == _bits(noise) and _bits(x1) == _bits(-noise)

    big = {**manifest, "dtype": "float16"}
    big.pop("noise")
    with pytest.raises(ValueError, match=r"generate_shard\(5, 10\)'s x1 has values beyond float16's range"):
        pairs_io.write_pairs(str(tmp_path / "b"), lambda a, b: (noise[a:b], np.full((b - a, 2), 7e4 * (a > 0))), big)
    assert pairs_io.shard_files(str(tmp_path / "b")) == [pairs_io.shard_name(0, 2)]
