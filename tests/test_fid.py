"""Tests for flowjax.metrics.fid (Fréchet distance, statistics files), flowjax.models.inception (FID Inception,
weight conversion) and FD-digits (the committed classifier and reference statistics)."""

import importlib.util
import os
import sys
import zipfile

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import scipy.stats

from flowjax.data import digits
from flowjax.metrics import fd_digits, fid
from flowjax.models import digits_classifier, inception, weights

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# torchvision's inception_v3 has 27,161,264 parameters (its documented num_params) with the aux
# classifier (768->128 1x1 conv + BN: 98,560; 128->768 5x5 conv + BN: 2,459,136; fc 768->1000:
# 769,000) and the 2048->1000 fc (2,049,000). Without both: the trunk the FID graph shares.
TORCHVISION_TRUNK_PARAMS = 27_161_264 - (98_560 + 2_459_136 + 769_000) - 2_049_000  # 21,785,568
FID_FC_PARAMS = 2048 * 1008 + 1008  # pytorch-fid's 1008-way classifier, dropped by the converter


def _script(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "scripts", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _spd(rng, k, floor=0.1):
    a = rng.normal(size=(k, k))
    return a @ a.T / k + floor * np.eye(k)


def _fd_reference(mu1, s1, mu2, s2):
    """The textbook formula with scipy's general (non-symmetric) matrix square root."""
    return float(
        np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(scipy.linalg.sqrtm(s1 @ s2).real)
    )


# ----------------------------------------------------------------------------- distance


def test_frechet_distance_matches_w2_closed_form_for_commuting_covariances():
    rng = np.random.default_rng(0)
    k = 16
    a, b = rng.uniform(0.1, 3.0, k), rng.uniform(0.1, 3.0, k)
    mu1, mu2 = rng.normal(size=k), rng.normal(size=k)
    expected = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2) + np.sum((mu1 - mu2) ** 2)
    assert fid.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)
    q = scipy.stats.ortho_group.rvs(k, random_state=1)  # same eigenvectors: commuting, not diagonal
    s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
    assert fid.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_frechet_distance_matches_general_formula_k64(seed):
    rng = np.random.default_rng(seed)
    s1, s2 = _spd(rng, 64), _spd(rng, 64)
    mu1, mu2 = rng.normal(size=64), rng.normal(size=64)
    fd = fid.frechet_distance(mu1, s1, mu2, s2)
    assert fd == pytest.approx(_fd_reference(mu1, s1, mu2, s2), rel=1e-9)
    assert fd == pytest.approx(fid.frechet_distance(mu2, s2, mu1, s1), rel=1e-10)  # symmetric
    assert fid.frechet_distance(mu1, s1, mu1, s1) < 1e-10 * np.trace(s1)


def _rank_deficient_roundoff(s1, s2):
    """How far float64 round-off can move FD(S1, S2) when S1 and S2 are singular (a first-order bound).

    A symmetric eigensolver returns each zero eigenvalue of a k x k matrix A as a value of size up to
    k·eps·||A||, and FD takes square roots of eigenvalues twice: sqrt(S1) is off by up to sqrt(k·eps·||S1||)
    in its null space, so M = sqrt(S1) S2 sqrt(S1) is off by up to delta = k·eps·||S1|| ||S2|| +
    2·sqrt(k·eps·||S1||)·sqrt(||S1||)·||S2||; each of M's k eigenvalues then moves by up to delta, its square
    root by up to sqrt(delta), and tr sqrt(M) enters FD twice. The bound depends on the matrices and the
    precision only, not on the machine's BLAS or eigensolver.
    """
    k, eps = s1.shape[0], np.finfo(np.float64).eps
    n1, n2 = np.linalg.norm(s1, 2), np.linalg.norm(s2, 2)
    delta = k * eps * n1 * n2 + 2 * np.sqrt(k * eps * n1) * np.sqrt(n1) * n2
    return 2 * k * np.sqrt(delta)


def test_frechet_distance_stable_for_rank_deficient_covariances():
    """n = 10 < k = 64 samples: singular covariances, where sqrtm(S1 S2) is ill-posed. FD is finite, >= 0,
    zero between a Gaussian and itself, symmetric, and sqrt(FD) obeys the triangle inequality, each up to
    the round-off bound of `_rank_deficient_roundoff` (far below the distances themselves)."""
    rng = np.random.default_rng(3)
    stats = [fid.statistics(rng.normal(size=(10, 64)) * rng.uniform(0.5, 2.0, 64)) for _ in range(3)]
    assert np.linalg.matrix_rank(stats[0][1]) == 9
    d = {(i, j): fid.frechet_distance(*stats[i], *stats[j]) for i in range(3) for j in range(3)}
    err = {(i, j): _rank_deficient_roundoff(stats[i][1], stats[j][1]) for i in range(3) for j in range(3)}
    assert all(np.isfinite(v) and v >= 0.0 for v in d.values())
    assert all(err[i, j] < 0.01 * d[i, j] for i in range(3) for j in range(3) if i != j)  # the check has teeth
    for i in range(3):
        assert d[i, i] <= err[i, i]
    assert abs(d[0, 1] - d[1, 0]) <= err[0, 1] + err[1, 0]
    # sqrt(FD) is the 2-Wasserstein metric between the Gaussians: the triangle inequality holds.
    assert np.sqrt(d[0, 2]) <= np.sqrt(d[0, 1]) + np.sqrt(d[1, 2]) + np.sqrt(err[0, 2] + err[0, 1] + err[1, 2])


def test_frechet_distance_rejects_bad_shapes_and_nans():
    with pytest.raises(ValueError, match="covariances"):
        fid.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="non-finite"):
        fid.frechet_distance(np.zeros(2), np.eye(2), np.array([0.0, np.nan]), np.eye(2))


def test_statistics_converge_to_the_gaussian():
    """n = 200,000 draws of N(m, C), k = 5: every entry within 5 standard errors, where
    se(mu_i) = sqrt(C_ii / n) and se(sigma_ij) = sqrt((C_ii C_jj + C_ij^2) / n) (Gaussian 4th moments)."""
    rng = np.random.default_rng(4)
    k, n = 5, 200_000
    m, c = rng.normal(size=k), _spd(rng, k)
    mu, sigma = fid.statistics(rng.multivariate_normal(m, c, size=n).astype(np.float32))
    assert mu.dtype == sigma.dtype == np.float64 and sigma.shape == (k, k)
    d = np.diag(c)
    assert np.all(np.abs(mu - m) < 5 * np.sqrt(d / n))
    assert np.all(np.abs(sigma - c) < 5 * np.sqrt((np.outer(d, d) + c**2) / n))
    small = rng.normal(size=(7, 3))
    np.testing.assert_allclose(fid.statistics(small)[1], np.cov(small, rowvar=False), rtol=1e-12)


# ----------------------------------------------------------------------------- files


def test_cached_stats_computes_once_and_reloads_identical_values(tmp_path):
    path = str(tmp_path / "stats.npz")
    features = np.random.default_rng(5).normal(size=(50, 8))
    calls = []

    def compute():
        calls.append(1)
        return fid.statistics(features)

    first, second = fid.cached_stats(path, compute), fid.cached_stats(path, compute)
    assert len(calls) == 1
    mu, sigma = fid.statistics(features)
    for got in (first, second):
        np.testing.assert_array_equal(got[0], mu)
        np.testing.assert_array_equal(got[1], sigma)
    assert os.listdir(tmp_path) == ["stats.npz"]


def test_cached_stats_leaves_no_file_when_interrupted(tmp_path, monkeypatch):
    path = str(tmp_path / "stats.npz")

    def failing_compute():
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        fid.cached_stats(path, failing_compute)
    assert os.listdir(tmp_path) == []

    def half_write(f, array, **kwargs):  # the array serializer, interrupted after some bytes
        f.write(b"\x93NUMPY truncated")
        raise KeyboardInterrupt

    monkeypatch.setattr(np.lib.format, "write_array", half_write)
    with pytest.raises(KeyboardInterrupt):
        fid.cached_stats(path, lambda: (np.zeros(2), np.eye(2)))
    assert os.listdir(tmp_path) == []  # neither the cache nor the temporary file
    monkeypatch.undo()
    mu, _ = fid.cached_stats(path, lambda: (np.ones(2), np.eye(2)))
    np.testing.assert_array_equal(mu, np.ones(2))


def test_save_stats_never_overwrites_silently(tmp_path):
    path = str(tmp_path / "stats.npz")
    fid.save_stats(path, np.zeros(2), np.eye(2))
    with pytest.raises(FileExistsError):
        fid.save_stats(path, np.ones(2), np.eye(2))
    np.testing.assert_array_equal(fid.load_stats(path)[0], np.zeros(2))
    # cached_stats with a different compute_fn loads the existing file instead
    np.testing.assert_array_equal(fid.cached_stats(path, lambda: (np.ones(2), np.eye(2)))[0], np.zeros(2))
    fid.save_stats(path, np.ones(2), np.eye(2), overwrite=True)
    np.testing.assert_array_equal(fid.load_stats(path)[0], np.ones(2))


# ----------------------------------------------------------------------------- Inception


def _torch_fid_inception_layers():
    """(name, out, in, kh, kw) of each BasicConv2d of torchvision's Inception3 with pytorch-fid's
    FID blocks, written from torchvision's definitions (independently of flowjax's module)."""
    layers = [
        ("Conv2d_1a_3x3", 32, 3, 3, 3),
        ("Conv2d_2a_3x3", 32, 32, 3, 3),
        ("Conv2d_2b_3x3", 64, 32, 3, 3),
        ("Conv2d_3b_1x1", 80, 64, 1, 1),
        ("Conv2d_4a_3x3", 192, 80, 3, 3),
    ]

    def block_a(n, cin, pool):
        return [
            (f"{n}.branch1x1", 64, cin, 1, 1),
            (f"{n}.branch5x5_1", 48, cin, 1, 1),
            (f"{n}.branch5x5_2", 64, 48, 5, 5),
            (f"{n}.branch3x3dbl_1", 64, cin, 1, 1),
            (f"{n}.branch3x3dbl_2", 96, 64, 3, 3),
            (f"{n}.branch3x3dbl_3", 96, 96, 3, 3),
            (f"{n}.branch_pool", pool, cin, 1, 1),
        ]

    def block_c(n, c7):
        return [
            (f"{n}.branch1x1", 192, 768, 1, 1),
            (f"{n}.branch7x7_1", c7, 768, 1, 1),
            (f"{n}.branch7x7_2", c7, c7, 1, 7),
            (f"{n}.branch7x7_3", 192, c7, 7, 1),
            (f"{n}.branch7x7dbl_1", c7, 768, 1, 1),
            (f"{n}.branch7x7dbl_2", c7, c7, 7, 1),
            (f"{n}.branch7x7dbl_3", c7, c7, 1, 7),
            (f"{n}.branch7x7dbl_4", c7, c7, 7, 1),
            (f"{n}.branch7x7dbl_5", 192, c7, 1, 7),
            (f"{n}.branch_pool", 192, 768, 1, 1),
        ]

    def block_e(n, cin):
        return [
            (f"{n}.branch1x1", 320, cin, 1, 1),
            (f"{n}.branch3x3_1", 384, cin, 1, 1),
            (f"{n}.branch3x3_2a", 384, 384, 1, 3),
            (f"{n}.branch3x3_2b", 384, 384, 3, 1),
            (f"{n}.branch3x3dbl_1", 448, cin, 1, 1),
            (f"{n}.branch3x3dbl_2", 384, 448, 3, 3),
            (f"{n}.branch3x3dbl_3a", 384, 384, 1, 3),
            (f"{n}.branch3x3dbl_3b", 384, 384, 3, 1),
            (f"{n}.branch_pool", 192, cin, 1, 1),
        ]

    layers += block_a("Mixed_5b", 192, 32) + block_a("Mixed_5c", 256, 64) + block_a("Mixed_5d", 288, 64)
    layers += [
        ("Mixed_6a.branch3x3", 384, 288, 3, 3),
        ("Mixed_6a.branch3x3dbl_1", 64, 288, 1, 1),
        ("Mixed_6a.branch3x3dbl_2", 96, 64, 3, 3),
        ("Mixed_6a.branch3x3dbl_3", 96, 96, 3, 3),
    ]
    for n, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
        layers += block_c(n, c7)
    layers += [
        ("Mixed_7a.branch3x3_1", 192, 768, 1, 1),
        ("Mixed_7a.branch3x3_2", 320, 192, 3, 3),
        ("Mixed_7a.branch7x7x3_1", 192, 768, 1, 1),
        ("Mixed_7a.branch7x7x3_2", 192, 192, 1, 7),
        ("Mixed_7a.branch7x7x3_3", 192, 192, 7, 1),
        ("Mixed_7a.branch7x7x3_4", 192, 192, 3, 3),
    ]
    return layers + block_e("Mixed_7b", 1280) + block_e("Mixed_7c", 2048)


def _torch_state_dict(seed, gamma_one=True):
    """A pytorch-fid-style state dict (names, shapes, dtypes) with random values."""
    rng = np.random.default_rng(seed)
    sd = {}
    for name, o, i, kh, kw in _torch_fid_inception_layers():
        he_std = np.sqrt(2.0 / (i * kh * kw))
        sd[f"{name}.conv.weight"] = (rng.normal(size=(o, i, kh, kw)) * he_std).astype(np.float32)
        sd[f"{name}.bn.weight"] = (np.ones(o) if gamma_one else rng.uniform(0.5, 2.0, o)).astype(np.float32)
        sd[f"{name}.bn.bias"] = rng.normal(size=o).astype(np.float32) * 0.1
        sd[f"{name}.bn.running_mean"] = rng.normal(size=o).astype(np.float32) * 0.1
        sd[f"{name}.bn.running_var"] = rng.uniform(0.5, 1.5, o).astype(np.float32)
        sd[f"{name}.bn.num_batches_tracked"] = np.array(0, np.int64)
    sd["fc.weight"] = np.zeros((1008, 2048), np.float32)
    sd["fc.bias"] = np.zeros(1008, np.float32)
    return sd


@pytest.fixture(scope="module")
def torch_state_dict():
    return _torch_state_dict(0)


@pytest.fixture(scope="module")
def inception_variables(torch_state_dict):
    """Random FID Inception variables (He-scaled kernels, random batch-norm statistics).

    Built through the converter rather than ``InceptionV3().init``: initialising the 22M parameters
    (jitted or eagerly) is slow on a CPU, and the converter needs no compilation."""
    return inception.inception_variables_from_torch(torch_state_dict)


def test_inception_parameter_count():
    shapes = inception.inception_variable_shapes()
    n_params = sum(int(np.prod(s)) for k, s in shapes.items() if k.startswith("params/"))
    n_bn = sum(s[0] for k, s in shapes.items() if k.endswith("/bn/mean"))
    layers = _torch_fid_inception_layers()
    by_hand = sum(o * i * kh * kw + o for _, o, i, kh, kw in layers)  # kernels + beta
    print(
        f"FID Inception: {n_params:,} Flax params (no BN scale), {n_bn:,} BN channels, "
        f"{n_params + n_bn:,} torch-style trunk, {n_params + n_bn + FID_FC_PARAMS:,} with fc"
    )
    assert len(layers) == 94 and len(shapes) == 4 * 94
    assert n_params == by_hand == 21_768_352
    assert n_params + n_bn == TORCHVISION_TRUNK_PARAMS == 21_785_568
    assert n_params + n_bn + FID_FC_PARAMS == 23_850_960


def test_inception_weights_roundtrip_and_features(tmp_path, inception_variables):
    path = str(tmp_path / "inception.npz")
    weights.save_variables(path, inception_variables)
    loaded = inception.load_inception_params(path)
    flat_a = jax.tree_util.tree_flatten_with_path(inception_variables)[0]
    flat_b = jax.tree_util.tree_flatten_with_path(loaded)[0]
    assert [p for p, _ in flat_a] == [p for p, _ in flat_b]
    assert all(np.array_equal(a, b) and b.dtype == np.float32 for (_, a), (_, b) in zip(flat_a, flat_b))

    images = jax.random.uniform(jax.random.key(0), (2, 32, 32, 3), minval=-1.0, maxval=1.0)
    feats = inception.inception_feature_fn(inception_variables)(images)
    assert feats.shape == (2, 2048) and np.all(np.isfinite(feats)) and np.all(feats >= 0)
    assert float(jnp.std(feats)) > 0 and not np.allclose(feats[0], feats[1])
    np.testing.assert_array_equal(inception.inception_feature_fn(loaded)(images), feats)

    grey = jax.random.uniform(jax.random.key(1), (2, 8, 8, 1), minval=-1.0, maxval=1.0)
    feature_fn = inception.inception_feature_fn(loaded)
    grey_feats = feature_fn(grey)
    assert grey_feats.shape == (2, 2048)
    np.testing.assert_array_equal(grey_feats, feature_fn(jnp.repeat(grey, 3, axis=-1)))

    # the batch-norm statistics are used: a changed running variance changes the features
    changed = jax.tree_util.tree_map(lambda x: x, loaded)
    bn_stats = changed["batch_stats"]["Mixed_7c"]["branch_pool"]["bn"]
    bn_stats["var"] = 4.0 * bn_stats["var"]
    assert not np.allclose(inception.inception_feature_fn(changed)(images), feats)


def test_damaged_inception_weights_are_refused_before_training(tmp_path, inception_variables):
    """evaluate.validate (run before training) opens the weights file and checks every array's shape and data
    length without loading it: a whole file passes; empty, truncated and wrong-shape files are refused, the
    message naming eval.inception_weights."""
    from configs import default
    from flowjax import evaluate

    good = str(tmp_path / "good.npz")
    weights.save_variables(good, inception_variables)
    config = default.get_config()
    config.data.name = "cifar10"
    config.eval.inception_weights = good
    evaluate.validate(config)
    data = open(good, "rb").read()
    bad = {"empty": b"", "truncated": data[: len(data) // 2]}
    # a whole zip whose last array lost its tail: member sizes no longer match the .npy headers
    with zipfile.ZipFile(good) as zf, zipfile.ZipFile(tmp_path / "short.npz", "w") as out:
        names = zf.namelist()
        for name in names:
            content = zf.read(name)
            out.writestr(name, content[:-4] if name == names[-1] else content)
    bad["short array"] = (tmp_path / "short.npz").read_bytes()
    changed = {"params": dict(inception_variables["params"]), "batch_stats": inception_variables["batch_stats"]}
    changed["params"]["Mixed_7c"] = jax.tree.map(lambda a: a[..., :1], changed["params"]["Mixed_7c"])
    weights.save_variables(str(tmp_path / "shapes.npz"), changed)
    bad["wrong shapes"] = (tmp_path / "shapes.npz").read_bytes()
    for what, content in bad.items():
        path = tmp_path / f"{what}.npz"
        path.write_bytes(content)
        config.eval.inception_weights = str(path)
        with pytest.raises(ValueError, match="eval.inception_weights") as err:
            evaluate.validate(config)
        assert str(path) in str(err.value), what


def test_load_inception_params_rejects_missing_and_wrong_files(tmp_path, inception_variables):
    with pytest.raises(FileNotFoundError, match="convert_inception_weights"):
        inception.load_inception_params(str(tmp_path / "absent.npz"))
    partial = {"params": dict(inception_variables["params"]), "batch_stats": inception_variables["batch_stats"]}
    del partial["params"]["Mixed_7c"]
    weights.save_variables(str(tmp_path / "partial.npz"), partial)
    with pytest.raises(ValueError, match="missing"):
        inception.load_inception_params(str(tmp_path / "partial.npz"))


def _torch_bilinear_1d(n_in, n_out):
    """[n_out, n_in] weights of torch's F.interpolate(mode="bilinear", align_corners=False)."""
    scale = n_in / n_out
    weights = np.zeros((n_out, n_in))
    for dst in range(n_out):
        src = max((dst + 0.5) * scale - 0.5, 0.0)
        lo = int(np.floor(src))
        hi, frac = min(lo + 1, n_in - 1), src - lo
        weights[dst, lo] += 1.0 - frac
        weights[dst, hi] += frac
    return weights


@pytest.mark.parametrize("size", [8, 32, 400])
def test_inception_resize_matches_pytorch_fid_bilinear(size):
    x = np.asarray(jax.random.uniform(jax.random.key(size), (1, size, size, 3), minval=-1.0, maxval=1.0))
    w = _torch_bilinear_1d(size, 299)
    expected = np.einsum("ih,bhwc,jw->bijc", w, x, w, optimize=True)
    # jax computes the sample positions in float32: weights differ by up to ~2e-5 at 400 px
    np.testing.assert_allclose(inception._to_inception_input(jnp.asarray(x)), expected, atol=1e-4)


@pytest.mark.parametrize(
    "kernel, strides, padding, torch_pad",
    [((1, 7), 1, "SAME", (0, 3)), ((3, 3), 2, "VALID", (0, 0)), ((5, 5), 1, "SAME", (2, 2))],
)
def test_basic_conv_matches_torch_semantics(kernel, strides, padding, torch_pad):
    """A converted torch conv (OIHW, zero padding) + BN (eps 1e-3) + ReLU, against a direct loop."""
    rng = np.random.default_rng(6)
    cin, cout, kh, kw = 3, 4, *kernel
    x = rng.normal(size=(9, 10, cin))
    weight = rng.normal(size=(cout, cin, kh, kw))
    beta, mean, var = rng.normal(size=cout), rng.normal(size=cout), rng.uniform(0.5, 2.0, cout)
    xp = np.pad(x, ((torch_pad[0],) * 2, (torch_pad[1],) * 2, (0, 0)))
    h_out, w_out = (xp.shape[0] - kh) // strides + 1, (xp.shape[1] - kw) // strides + 1
    conv = np.zeros((h_out, w_out, cout))
    for h in range(h_out):
        for w in range(w_out):
            patch = xp[h * strides : h * strides + kh, w * strides : w * strides + kw]  # [kh, kw, in]
            conv[h, w] = np.einsum("oiab,abi->o", weight, patch)
    expected = np.maximum((conv - mean) / np.sqrt(var + 1e-3) + beta, 0.0)
    layer = inception.BasicConv2d(cout, kernel, strides=strides, padding=padding)
    variables = {
        "params": {"conv": {"kernel": np.transpose(weight, (2, 3, 1, 0))}, "bn": {"bias": beta}},
        "batch_stats": {"bn": {"mean": mean, "var": var}},
    }
    variables = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), variables)
    out = layer.apply(variables, jnp.asarray(x[None], jnp.float32))[0]
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_inception_average_pool_ignores_padding():
    """TF's average pool (FIDInceptionA/C/E_1 patch): border windows average real pixels only."""
    pooled = inception._avg_pool_3x3(jnp.ones((1, 5, 5, 2)))
    np.testing.assert_array_equal(pooled, np.ones((1, 5, 5, 2)))


# ----------------------------------------------------------------------------- conversion


def test_converter_maps_names_shapes_and_values(torch_state_dict, inception_variables):
    params, stats = inception_variables["params"], inception_variables["batch_stats"]
    for name, o, i, kh, kw in _torch_fid_inception_layers():
        p, s = params, stats
        for part in name.split("."):
            p, s = p[part], s[part]
        weight = torch_state_dict[f"{name}.conv.weight"]
        assert p["conv"]["kernel"].shape == (kh, kw, i, o)
        np.testing.assert_array_equal(p["conv"]["kernel"], np.transpose(weight, (2, 3, 1, 0)))
        np.testing.assert_array_equal(p["bn"]["bias"], torch_state_dict[f"{name}.bn.bias"])
        np.testing.assert_array_equal(s["bn"]["mean"], torch_state_dict[f"{name}.bn.running_mean"])
        np.testing.assert_array_equal(s["bn"]["var"], torch_state_dict[f"{name}.bn.running_var"])
    # one element of a non-square kernel, by hand: torch [out, in, kh, kw] -> flax [kh, kw, in, out]
    kernel = params["Mixed_6b"]["branch7x7_2"]["conv"]["kernel"]
    assert kernel.shape == (1, 7, 128, 128)
    assert kernel[0, 5, 3, 17] == torch_state_dict["Mixed_6b.branch7x7_2.conv.weight"][17, 3, 0, 5]


def test_converter_folds_batchnorm_scale_exactly():
    sd = _torch_state_dict(1, gamma_one=False)
    variables = inception.inception_variables_from_torch(sd)
    name = "Mixed_5b.branch5x5_2"
    gamma, beta = sd[f"{name}.bn.weight"].astype(np.float64), sd[f"{name}.bn.bias"]
    mean, var = sd[f"{name}.bn.running_mean"], sd[f"{name}.bn.running_var"].astype(np.float64)
    z = np.random.default_rng(2).normal(size=(4, 64))
    torch_bn = gamma * (z - mean) / np.sqrt(var + 1e-3) + beta
    folded = variables["batch_stats"]["Mixed_5b"]["branch5x5_2"]["bn"]
    bn = nn.BatchNorm(use_running_average=True, use_scale=False, epsilon=inception.BN_EPSILON)
    out = bn.apply({"params": {"bias": jnp.asarray(beta)}, "batch_stats": folded}, jnp.asarray(z, jnp.float32))
    np.testing.assert_allclose(out, torch_bn, rtol=1e-5, atol=1e-5)


def test_converter_rejects_incomplete_or_foreign_state_dicts(torch_state_dict):
    extra = dict(torch_state_dict, **{"AuxLogits.fc.weight": np.zeros((1008, 768), np.float32)})
    with pytest.raises(ValueError, match="AuxLogits"):
        inception.inception_variables_from_torch(extra)
    missing = {k: v for k, v in torch_state_dict.items() if k != "Mixed_6c.branch_pool.bn.running_var"}
    with pytest.raises(ValueError, match="Mixed_6c.branch_pool.bn.running_var"):
        inception.inception_variables_from_torch(missing)
    no_layer = {k: v for k, v in torch_state_dict.items() if not k.startswith("Mixed_7c.branch_pool.")}
    with pytest.raises(ValueError, match="missing"):
        inception.inception_variables_from_torch(no_layer)
    wrong = dict(torch_state_dict)
    wrong["Conv2d_1a_3x3.conv.weight"] = np.zeros((32, 1, 3, 3), np.float32)
    with pytest.raises(ValueError, match="wrong shapes"):
        inception.inception_variables_from_torch(wrong)


def test_convert_script_end_to_end(tmp_path, monkeypatch, torch_state_dict, inception_variables):
    import hashlib

    script = _script("convert_inception_weights")
    payload = b"stand-in for the .pth bytes"
    digest = hashlib.sha256(payload).hexdigest()[:8]
    pth = tmp_path / f"pt_inception-2015-12-05-{digest}.pth"
    pth.write_bytes(payload)
    monkeypatch.setattr(script, "read_torch_state_dict", lambda path: torch_state_dict)
    out = str(tmp_path / "fid_inception.npz")
    monkeypatch.setattr(sys, "argv", ["convert", str(pth), out])
    script.main()
    loaded = inception.load_inception_params(out)
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(np.array_equal, loaded, inception_variables))
    with pytest.raises(FileExistsError):
        script.main()
    bad = tmp_path / "pt_inception-2015-12-05-00000000.pth"
    bad.write_bytes(payload)
    with pytest.raises(ValueError, match="SHA-256"):
        script.check_hash_suffix(str(bad))


# ----------------------------------------------------------------------------- FD-digits


@pytest.fixture(scope="module")
def digit_splits():
    return digits.load("train"), digits.load("test")


def test_digits_classifier_assets_are_small_and_accurate(digit_splits):
    for path in (fd_digits.WEIGHTS_PATH, fd_digits.STATS_PATH):
        assert os.path.getsize(path) < 200_000
    variables = fd_digits.load_classifier()
    n_params = sum(int(np.size(x)) for x in jax.tree_util.tree_leaves(variables))
    assert n_params == 22_954
    (_, _), (x_test, y_test) = digit_splits
    accuracy = float(np.mean(np.argmax(digits_classifier.logits(variables, x_test), -1) == y_test))
    print(f"digits classifier test accuracy {accuracy:.4f}")
    assert accuracy > 0.95


def test_fd_digits_separates_digits_from_noise_and_shuffled_pixels(digit_splits):
    (x_train, _), (x_test, _) = digit_splits
    n = x_test.shape[0]
    noise_key, shuffle_key = jax.random.split(jax.random.key(0))
    noise = np.asarray(jnp.clip(jax.random.normal(noise_key, x_test.shape), -1.0, 1.0))
    flat = jax.random.permutation(shuffle_key, jnp.asarray(x_test).reshape(n, -1), axis=1, independent=True)
    shuffled = np.asarray(flat).reshape(x_test.shape)
    scores = {
        "test": fd_digits.fd_digits(x_test),
        "train": fd_digits.fd_digits(x_train),
        "train_300": fd_digits.fd_digits(x_train[:n]),
        "noise": fd_digits.fd_digits(noise),
        "shuffled": fd_digits.fd_digits(shuffled),
    }
    print({k: round(v, 4) for k, v in scores.items()})
    assert scores["test"] < 1e-6
    assert 0 < scores["train"] < 5.0
    assert min(scores["noise"], scores["shuffled"]) > 10 * scores["train_300"] > 10 * scores["train"]


def test_fd_digits_inverts_the_16x16_upsampling(digit_splits):
    (_, _), (x_test, _) = digit_splits
    x16, _ = digits.load("test", size=16)
    np.testing.assert_allclose(digits_classifier.to_8x8(jnp.asarray(x16)), x_test, atol=1e-5)
    assert fd_digits.fd_digits(x16) < 1e-6


def test_fd_digits_says_how_to_make_missing_assets(tmp_path, monkeypatch):
    monkeypatch.setattr(fd_digits, "WEIGHTS_PATH", str(tmp_path / "digits_classifier.npz"))
    with pytest.raises(FileNotFoundError, match="scripts/train_digits_classifier.py"):
        fd_digits.fd_digits(np.zeros((4, 8, 8, 1), np.float32))


def test_digits_classifier_training_is_deterministic(digit_splits):
    (x_train, y_train), _ = digit_splits
    train = _script("train_digits_classifier").train
    runs = [train(jax.random.key(0), x_train[:128], y_train[:128], epochs=1, batch_size=64, lr=1e-3) for _ in range(2)]
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(np.array_equal, *runs))
