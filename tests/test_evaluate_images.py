"""FID in the evaluation sweep for image data sets (flowjax.evaluate_fid.evaluate_images), on a folder of 24 tiny
PNG images, an analytic velocity field and a cheap stand-in for the FID Inception.

Every expected value is computed here independently: the noise from the eval keys all at once, samples with
`integrators.euler` on the whole batch, reference images read with PIL, statistics with `fid.statistics`.
"""

import glob
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from configs import default
from flowjax import evaluate, evaluate_fid, integrators, metrics
from flowjax.metrics import fid

N_IMAGES, SIDE, N_SAMPLES, N_PATH, PATH_NFE = 24, 8, 20, 10, 4
PARAMS = {
    "a": jnp.float32(-0.4),
    "b": jnp.float32(0.7),
    "c": jnp.asarray(np.random.default_rng(1).uniform(-0.5, 0.5, (SIDE, SIDE, 3)), jnp.float32),
}


def make_apply(traced=None):
    """v(x, t) = a x + b cos(3t) + c (curved paths); ``traced`` records the batch size of every trace."""

    def apply_fn(params, x, t):
        if traced is not None:
            traced.append(x.shape[0])
        return params["a"] * x + params["b"] * jnp.cos(3.0 * t)[:, None, None, None] + params["c"]

    return apply_fn


def noise_one(key):
    return jax.random.normal(key, (SIDE, SIDE, 3))


def make_features(seed):
    """A cheap deterministic stand-in for the Inception: tanh of a fixed random projection to 6 dims."""
    w = jnp.asarray(np.random.default_rng(seed).normal(size=(SIDE * SIDE * 3, 6)) / 8.0, jnp.float32)
    return jax.jit(lambda x: jnp.tanh(x.reshape(x.shape[0], -1) @ w))


def write_folder(path):
    pixels = np.random.default_rng(0).integers(0, 256, (N_IMAGES, SIDE, SIDE, 3), dtype=np.uint8)
    os.makedirs(path)
    for i, image in enumerate(pixels):
        Image.fromarray(image).save(os.path.join(path, f"img_{i:03d}.png"))


def read_folder(path):
    """All images of the folder in file-name order, in [-1, 1], read with PIL."""
    files = sorted(glob.glob(os.path.join(path, "*.png")))
    return np.stack([np.asarray(Image.open(f).convert("RGB"), np.float32) / 127.5 - 1.0 for f in files])


def make_config(root, batch_size=7):
    config = default.get_config()
    config.data.name, config.data.data_dir, config.data.image_size = "folder", str(root / "imgs"), SIDE
    ev = config.eval
    ev.batch_size, ev.num_samples, ev.solvers, ev.nfe = batch_size, N_SAMPLES, ("euler",), (1, 2)
    ev.num_path_samples, ev.path_nfe = N_PATH, PATH_NFE
    ev.inception_weights = str(root / "weights.npz")  # a stand-in: the file check is replaced below
    return config


@pytest.fixture(scope="module", autouse=True)
def stand_in_weights():
    """These tests replace the Inception (`fid_feature_fn`); its weight file's check is tested in test_fid.py."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(evaluate_fid.inception, "check_inception_file", lambda path: None)
        yield


def make_root(tmp):
    write_folder(str(tmp / "imgs"))
    (tmp / "weights.npz").write_bytes(b"not read: fid_feature_fn is replaced")
    return tmp


def run(config, workdir, feature_fn, traced=None):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(evaluate_fid, "fid_feature_fn", lambda cfg: feature_fn)
        return evaluate.evaluate(config, str(workdir), make_apply(traced), PARAMS, 3, noise_one, "test_cfg")


def eval_x0(config, n):
    return jax.vmap(noise_one)(jax.random.split(jax.random.PRNGKey(config.eval.seed), n))


def sample_stats(config, nfe, feature_fn):
    """Statistics of the features of all samples at once: Euler from the eval noise, saved as 8-bit images."""
    x1 = np.asarray(integrators.euler(lambda y, t: make_apply()(PARAMS, y, t), eval_x0(config, N_SAMPLES), nfe))
    x1 = np.round((np.clip(x1, -1, 1) + 1) * 127.5) / 127.5 - 1
    return fid.statistics(np.asarray(feature_fn(jnp.asarray(x1))))


def reference_stats(config, feature_fn, n=N_IMAGES):
    return fid.statistics(np.asarray(feature_fn(jnp.asarray(read_folder(config.data.data_dir)[:n]))))


@pytest.fixture(scope="module")
def run7(tmp_path_factory):
    """One evaluation with batches of 7 (20 samples: 7, 7, 6; 10 path samples: 7, 3)."""
    root = make_root(tmp_path_factory.mktemp("fid"))
    config, traced = make_config(root), []
    rows = run(config, root / "work", make_features(0), traced)
    return config, root / "work", rows, traced


def test_fid_rows_equal_fid_of_all_samples_at_once(run7):
    config, workdir, rows, _ = run7
    assert [(r["solver"], r["nfe"]) for r in rows] == [("euler", 1), ("euler", 2), ("euler", PATH_NFE)]
    ref = reference_stats(config, make_features(0))
    for row in rows[:2]:
        expected = fid.frechet_distance(*sample_stats(config, row["nfe"], make_features(0)), *ref)
        assert set(row) == {"solver", "nfe", "fid"}
        assert row["fid"] == pytest.approx(expected, rel=1e-5, abs=1e-9)
    assert abs(rows[0]["fid"] - rows[1]["fid"]) > 1e-3 * rows[0]["fid"]  # the rows tell the NFE apart
    with open(workdir / "eval" / "metrics.json") as f:
        assert json.load(f) == {"config": "test_cfg", "step": 3, "results": rows}
    assert "fid" in evaluate.format_table(rows).splitlines()[0]
    assert (workdir / "eval" / "samples.png").stat().st_size > 0


def test_reference_statistics_are_cached_in_the_workdir(run7):
    config, workdir, _, _ = run7
    files = glob.glob(str(workdir / "eval" / f"fid_reference_folder-imgs-*_{SIDE}px_{N_IMAGES}.npz"))
    assert len(files) == 1
    for got, want in zip(fid.load_stats(files[0]), reference_stats(config, make_features(0))):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-8)


def test_path_row_equals_trajectory_metrics_of_all_path_samples_at_once(run7):
    config, _, rows, _ = run7
    want = metrics.trajectory_metrics(lambda y, t: make_apply()(PARAMS, y, t), eval_x0(config, N_PATH), PATH_NFE)
    got = rows[-1]
    assert set(got) == {"solver", "nfe", "straightness", "curvature", "loom_curvature"}
    for k, v in want.items():
        assert got[k] == pytest.approx(float(v), rel=1e-5)


def test_each_sampler_compiles_once_per_batch_shape(run7):
    # euler NFE 1 and 2 on batches of 7 and 6, the path metrics on 7 and 3; one more trace per batch
    # would mean a recompilation per batch.
    assert sorted(run7[3]) == sorted([7, 6, 7, 6, 7, 3])


def test_noise_and_fid_do_not_depend_on_batch_size(run7, tmp_path):
    config, _, rows7, _ = run7
    config = make_config(make_root(tmp_path), batch_size=N_SAMPLES)
    rows = run(config, tmp_path / "work", make_features(0))
    for a, b in zip(rows, rows7):
        assert a.keys() == b.keys()
        for k in a.keys() - {"solver", "nfe"}:
            assert a[k] == pytest.approx(b[k], rel=1e-5)


def test_second_evaluation_reuses_the_cached_reference(run7, tmp_path):
    config, workdir, _, _ = run7
    shutil.copytree(workdir, tmp_path / "work")
    (cache,) = glob.glob(str(tmp_path / "work" / "eval" / "fid_reference_*.npz"))
    before = open(cache, "rb").read()
    rows = run(config, tmp_path / "work", make_features(1))  # other features: a recomputed reference would differ
    old_ref, new_ref = reference_stats(config, make_features(0)), reference_stats(config, make_features(1))
    samples = sample_stats(config, 1, make_features(1))
    assert rows[0]["fid"] == pytest.approx(fid.frechet_distance(*samples, *old_ref), rel=1e-5)
    assert abs(rows[0]["fid"] - fid.frechet_distance(*samples, *new_ref)) > 1e-2 * rows[0]["fid"]
    assert open(cache, "rb").read() == before


def test_fid_num_reference_and_explicit_stats_path(tmp_path):
    config = make_config(make_root(tmp_path))
    config.eval.nfe, config.eval.fid_num_reference = (1,), 10
    config.eval.fid_stats = str(tmp_path / "ref" / "stats.npz")
    rows = run(config, tmp_path / "work", make_features(0))
    ref = reference_stats(config, make_features(0), n=10)
    for got, want in zip(fid.load_stats(config.eval.fid_stats), ref):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-8)
    assert rows[0]["fid"] == pytest.approx(
        fid.frechet_distance(*sample_stats(config, 1, make_features(0)), *ref), rel=1e-5
    )
    assert not glob.glob(str(tmp_path / "work" / "eval" / "fid_reference_*"))
    config.eval.fid_stats, config.eval.fid_num_reference = "", N_IMAGES + 1
    with pytest.raises(ValueError, match="fid_num_reference"):
        run(config, tmp_path / "work", make_features(0))


def test_validate_requires_the_inception_weights(tmp_path):
    config = make_config(make_root(tmp_path))
    evaluate.validate(config)  # the file exists
    for weights in ("", str(tmp_path / "missing.npz")):
        config.eval.inception_weights = weights
        with pytest.raises((ValueError, FileNotFoundError), match="convert_inception_weights.py") as err:
            evaluate.validate(config)
        assert "--config.eval.inception_weights=" in str(err.value) and weights in str(err.value)
    config.data.name = "moons"  # toys and digits need no Inception
    evaluate.validate(config)
