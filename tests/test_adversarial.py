"""The adversarial stage (flowjax/adversarial.py, flowjax/models/discriminator.py): DiffAugment against NumPy
recomputations from its draws, the GAN losses against hand values and NumPy formulas, the adaptive weight
against closed-form last-layer gradients, the frozen projections, conditioning, and a discriminator that
learns to separate two image distributions."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from flowjax import adversarial as adv
from flowjax.models.discriminator import ProjectedDiscriminator

TINY_D = dict(proj_channels=4, max_channels=8, end_size=2)

# Jitted once per shape: eager dispatch compiles every small op of the draws separately, which is slower.
_augment = jax.jit(adv.diff_augment, static_argnames=("policy", "translation", "cutout"))
_draws = jax.jit(adv.diff_augment_draws, static_argnums=(1, 2, 3, 4, 5))
_apply = jax.jit(adv.diff_augment_apply, static_argnames=("policy", "cutout"))


def _images(shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).uniform(-1, 1, shape), jnp.float32)


def _conv(x, k):
    return jax.lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _pool(x):
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def _tiny_features(seed=0):
    """A frozen random conv net: NHWC [B, 16, 16, 3] -> maps at 16, 8 and 4 pixels (4, 8, 8 channels)."""
    rng = np.random.default_rng(seed)
    ks = [jnp.asarray(rng.standard_normal(s) / np.sqrt(9 * s[2]), jnp.float32) for s in [(3, 3, 3, 4), (3, 3, 4, 8)]]
    ks.append(jnp.asarray(rng.standard_normal((3, 3, 8, 8)) / np.sqrt(72), jnp.float32))

    def features(x):
        h1 = jax.nn.leaky_relu(_conv(x, ks[0]), 0.2)
        h2 = jax.nn.leaky_relu(_conv(_pool(h1), ks[1]), 0.2)
        h3 = jax.nn.leaky_relu(_conv(_pool(h2), ks[2]), 0.2)
        return [h1, h2, h3]

    return features


# ---------------------------------------------------------------------------------------------------------------
# DiffAugment
# ---------------------------------------------------------------------------------------------------------------


def test_diff_augment_identity_cases():
    x = _images((3, 16, 16, 3))
    key = jax.random.key(0)
    np.testing.assert_array_equal(_augment(key, x, policy=()), x)
    np.testing.assert_array_equal(_augment(key, x, policy=""), x)
    # Zero ratios: no shift, an empty cut-out square, whatever the draws.
    out = _augment(key, x, policy=("translation", "cutout"), translation=0.0, cutout=0.0)
    np.testing.assert_array_equal(out, x)
    # The identity draws of color (brightness 0, saturation 1, contrast 1) and of translation (shift 0).
    ident = {
        "brightness": jnp.zeros(3),
        "saturation": jnp.ones(3),
        "contrast": jnp.ones(3),
        "shift": jnp.zeros((3, 2), jnp.int32),
        "cutout": jnp.zeros((3, 2), jnp.int32),
    }
    out = _apply(x, ident, policy=("color", "translation", "cutout"), cutout=0.0)
    np.testing.assert_allclose(out, x, atol=1e-6)


def test_translation_is_a_zero_filled_roll():
    x = _images((8, 16, 12, 2), seed=1)
    draws = _draws(jax.random.key(3), 8, 16, 12, translation=0.125, cutout=0.2)
    out = np.asarray(_apply(x, draws, policy=("translation",)))
    shift = np.asarray(draws["shift"])
    # int(16 * 0.125 + 0.5) = 2 rows, int(12 * 0.125 + 0.5) = 2 columns (DiffAugment's rounding).
    assert np.all(np.abs(shift) <= 2) and np.any(shift != 0)
    xn = np.asarray(x)
    for b, (dr, dc) in enumerate(shift):
        expected = np.roll(xn[b], (dr, dc), axis=(0, 1))
        if dr > 0:
            expected[:dr] = 0
        elif dr < 0:
            expected[dr:] = 0
        if dc > 0:
            expected[:, :dc] = 0
        elif dc < 0:
            expected[:, dc:] = 0
        np.testing.assert_array_equal(out[b], expected)


def test_cutout_zeroes_the_drawn_square():
    b, side = 32, 32
    x = jnp.ones((b, side, side, 3))
    draws = _draws(jax.random.key(5), b, side, side, cutout=0.2)
    out = np.asarray(_apply(x, draws, policy=("cutout",), cutout=0.2))
    c = int(side * 0.2 + 0.5)  # 6
    corners = np.asarray(draws["cutout"])
    inside = 0
    for i, (r0, c0) in enumerate(corners):
        # DiffAugment's offsets: centre in {0, ..., side - c mod 2}, corner = centre - c // 2.
        assert -(c // 2) <= r0 <= side - c % 2 - c // 2 and -(c // 2) <= c0 <= side - c % 2 - c // 2
        expected = np.ones((side, side))
        expected[max(r0, 0) : max(r0 + c, 0), max(c0, 0) : max(c0 + c, 0)] = 0
        np.testing.assert_array_equal(out[i], np.repeat(expected[..., None], 3, axis=-1))
        zeros = int(np.sum(out[i, ..., 0] == 0))
        assert 0 < zeros <= c * c
        if 0 <= r0 <= side - c and 0 <= c0 <= side - c:
            assert zeros == c * c
            inside += 1
    assert inside >= b // 2  # most squares are not clipped, so the exact count was checked


def test_color_matches_numpy_formulas():
    x = _images((4, 8, 8, 3), seed=2)
    draws = _draws(jax.random.key(7), 4, 8, 8)
    out = np.asarray(_apply(x, draws, policy=("color",)))
    xn = np.asarray(x, np.float64)
    d = {k: np.asarray(v, np.float64) for k, v in draws.items()}
    assert np.all((-0.5 <= d["brightness"]) & (d["brightness"] < 0.5))
    assert np.all((0 <= d["saturation"]) & (d["saturation"] < 2))
    assert np.all((0.5 <= d["contrast"]) & (d["contrast"] < 1.5))
    for b in range(4):
        y = xn[b] + d["brightness"][b]
        gray = y.mean(axis=-1, keepdims=True)
        y = (y - gray) * d["saturation"][b] + gray
        y = (y - y.mean()) * d["contrast"][b] + y.mean()
        np.testing.assert_allclose(out[b], y, atol=1e-5)


def test_diff_augment_gradient_matches_finite_difference():
    x = _images((2, 16, 16, 3), seed=3)
    w = np.asarray(_images((2, 16, 16, 3), seed=4), np.float64)
    key = jax.random.key(11)
    aug = jax.jit(lambda v: adv.diff_augment(key, v))
    grad = np.asarray(jax.grad(lambda v: jnp.sum(jnp.asarray(w, jnp.float32) * aug(v)))(x))
    assert np.all(np.isfinite(grad))
    flat = np.abs(grad).ravel()
    nonzero = np.flatnonzero(flat)
    picks = [int(np.argmax(flat)), int(nonzero[len(nonzero) // 2])]
    # For fixed draws the augmentation is affine in x, so a central difference is exact; the weighted sum of
    # the output difference is taken in float64 to keep float32 rounding out of it.
    eps = 0.25
    for i in picks:
        e = np.zeros(x.size, np.float32)
        e[i] = eps
        e = jnp.asarray(e.reshape(x.shape))
        diff = np.asarray(aug(x + e), np.float64) - np.asarray(aug(x - e), np.float64)
        fd = np.sum(w * diff) / (2 * eps)
        assert grad.ravel()[i] != 0
        np.testing.assert_allclose(grad.ravel()[i], fd, rtol=1e-4, atol=1e-6)


def test_diff_augment_draws_are_per_example_and_keyed():
    x = jnp.broadcast_to(_images((1, 16, 16, 3), seed=5), (4, 16, 16, 3))
    key = jax.random.key(2)
    out = np.asarray(_augment(key, x))
    for i in range(4):
        for j in range(i + 1, 4):
            assert not np.allclose(out[i], out[j])
    np.testing.assert_array_equal(_augment(key, x), out)
    assert not np.allclose(_augment(jax.random.key(3), x), out)
    # Example j draws from fold_in(key, j): the same in a batch of 2 as in a batch of 4.
    np.testing.assert_array_equal(_augment(key, x[:2]), out[:2])


def test_diff_augment_rejects_bad_input():
    x = _images((2, 8, 8, 3))
    with pytest.raises(ValueError, match="policy"):
        adv.diff_augment(jax.random.key(0), x, policy=("color", "rotate"))
    with pytest.raises(ValueError, match="NHWC"):
        adv.diff_augment(jax.random.key(0), x[0])


def test_resize_bilinear_half_pixel():
    # Half-pixel centres (PyTorch align_corners=False): 2 -> 4 samples at -0.25, 0.25, 0.75, 1.25 (edges clamped).
    x = jnp.asarray([[0.0, 1.0]]).reshape(1, 1, 2, 1)
    np.testing.assert_allclose(adv.resize(x, (1, 4))[0, 0, :, 0], [0.0, 0.25, 0.75, 1.0], atol=1e-6)
    # 4 -> 2 without antialiasing samples at 0.5 and 2.5: the means of pixel pairs.
    x = jnp.asarray([0.0, 2.0, 4.0, 10.0]).reshape(1, 1, 4, 1)
    np.testing.assert_allclose(adv.resize(x, (1, 2))[0, 0, :, 0], [1.0, 7.0], atol=1e-6)
    x = _images((2, 5, 5, 3))
    assert adv.resize(x, 7).shape == (2, 7, 7, 3)
    assert adv.resize(x, 5) is x


# ---------------------------------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------------------------------


def test_hinge_losses_by_hand():
    real = [jnp.asarray([2.0, 0.5, -1.0]), jnp.asarray([[0.0, 3.0]])]
    fake = [jnp.asarray([-2.0, 0.0, 1.0]), jnp.asarray([[0.5, -0.5]])]
    # real: relu(1 - r) = [0, 0.5, 2] (mean 5/6) and [1, 0] (mean 1/2); fake: relu(1 + f) = [0, 1, 2] and
    # [1.5, 0.5], both means 1. Heads averaged: (5/6 + 1/2) / 2 + 1 = 5/3.
    np.testing.assert_allclose(adv.d_hinge_loss(real, fake), 5 / 3, rtol=1e-6)
    # G: -mean(fake) per head = [1/3, 0] -> 1/6.
    np.testing.assert_allclose(adv.g_hinge_loss(fake), 1 / 6, rtol=1e-6)
    # One array is one head.
    np.testing.assert_allclose(adv.d_hinge_loss(real[0], fake[0]), 5 / 6 + 1, rtol=1e-6)
    assert adv.D_LOSSES["hinge"] is adv.d_hinge_loss and adv.G_LOSSES["log"] is adv.g_log_loss


def test_log_losses_match_numpy_and_stay_finite():
    r = np.array([-3.0, -0.5, 0.0, 0.7, 4.0])
    f = np.array([2.0, -1.0, 0.3, -4.0, 0.0])
    sig = lambda v: 1 / (1 + np.exp(-v))
    d_expected = np.mean(-np.log(sig(r))) + np.mean(-np.log(1 - sig(f)))
    np.testing.assert_allclose(adv.d_log_loss(jnp.asarray(r), jnp.asarray(f)), d_expected, rtol=1e-5)
    np.testing.assert_allclose(adv.g_log_loss(jnp.asarray(f)), np.mean(np.log(1 - sig(f))), rtol=1e-5)
    np.testing.assert_allclose(adv.g_log_loss(jnp.asarray(f), non_saturating=True), np.mean(-np.log(sig(f))), rtol=1e-5)
    # Two heads are averaged.
    np.testing.assert_allclose(
        adv.d_log_loss([jnp.asarray(r), jnp.asarray(r[:2])], [jnp.asarray(f), jnp.asarray(f[:2])]),
        (np.mean(-np.log(sig(r))) + np.mean(-np.log(sig(r[:2])))) / 2
        + (np.mean(-np.log(1 - sig(f))) + np.mean(-np.log(1 - sig(f[:2])))) / 2,
        rtol=1e-5,
    )
    # Large logits: -log sigmoid(-1e4) = 1e4 and -log(1 - sigmoid(1e4)) = 1e4 (to float precision); the
    # confident-correct terms vanish. The direct formulas would give inf.
    big_r, big_f = jnp.asarray([-1e4, 1e4]), jnp.asarray([1e4, -1e4])
    d = adv.d_log_loss(big_r, big_f)
    np.testing.assert_allclose(d, 1e4, rtol=1e-6)
    np.testing.assert_allclose(adv.g_log_loss(big_f), -5e3, rtol=1e-6)
    np.testing.assert_allclose(adv.g_log_loss(big_f, non_saturating=True), 5e3, rtol=1e-6)
    grads = jax.grad(lambda a, b: adv.d_log_loss(a, b) + adv.g_log_loss(b), argnums=(0, 1))(big_r, big_f)
    assert all(np.all(np.isfinite(g)) for g in grads)


# ---------------------------------------------------------------------------------------------------------------
# Adaptive weight
# ---------------------------------------------------------------------------------------------------------------


def _linear_generator_case(adv_scale):
    """G(z) = z W1 W2, L_lines = mean((G - target)^2), L_adv = -adv_scale * mean_n(G_n . a) (a linear D)."""
    rng = np.random.default_rng(0)
    n, dz, dh, dx = 6, 3, 4, 5
    z, target, a = rng.standard_normal((n, dz)), rng.standard_normal((n, dx)), rng.standard_normal(dx)
    params = {"hidden": {"kernel": rng.standard_normal((dz, dh))}, "out": {"kernel": rng.standard_normal((dh, dx))}}
    as32 = lambda v: jnp.asarray(v, jnp.float32)
    jparams = jax.tree.map(as32, params)
    gen = lambda p: as32(z) @ p["hidden"]["kernel"] @ p["out"]["kernel"]
    lines = lambda p: jnp.mean((gen(p) - as32(target)) ** 2)
    adv_loss = lambda p: -adv_scale * jnp.mean(gen(p) @ as32(a))
    # Closed forms for dL/dW2 with h = z W1: 2 h^T (G - target) / (n dx) and -adv_scale * h^T 1 a^T / n.
    h = z @ params["hidden"]["kernel"]
    g = h @ params["out"]["kernel"]
    g_lines = 2 * h.T @ (g - target) / (n * dx)
    g_adv = -adv_scale * np.outer(h.sum(axis=0), a) / n
    expected = np.linalg.norm(g_lines) / (np.linalg.norm(g_adv) + 1e-4)
    return jparams, lines, adv_loss, g_lines, g_adv, expected


def test_adaptive_weight_closed_form():
    params, lines, adv_loss, g_lines, g_adv, expected = _linear_generator_case(adv_scale=1.0)
    path = ("out", "kernel")
    gl = adv.last_layer_grads(lines, params, path)
    ga = adv.last_layer_grads(adv_loss, params, path)
    np.testing.assert_allclose(gl, g_lines, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ga, g_adv, rtol=1e-4, atol=1e-6)
    assert 0.01 < expected < 10  # inside the clip: the ratio itself is checked
    np.testing.assert_allclose(adv.adaptive_weight(gl, ga), expected, rtol=1e-4)
    # The slice of full gradients gives the same.
    full_l, full_a = jax.grad(lines)(params), jax.grad(adv_loss)(params)
    np.testing.assert_allclose(
        adv.adaptive_weight(adv.get_path(full_l, path), adv.get_path(full_a, path)), expected, rtol=1e-4
    )
    # Gradient stopped: lambda is a constant for the optimiser.
    assert float(jax.grad(lambda s: adv.adaptive_weight(s * gl, ga))(1.0)) == 0.0
    with pytest.raises(ValueError, match="path"):
        adv.get_path(params, ("out", "bias"))


@pytest.mark.parametrize("adv_scale, bound", [(1e5, 0.01), (1e-5, 10.0)])
def test_adaptive_weight_clips(adv_scale, bound):
    params, lines, adv_loss, _, _, expected = _linear_generator_case(adv_scale)
    assert not 0.01 <= expected <= 10
    path = ("out", "kernel")
    lam = adv.adaptive_weight(adv.last_layer_grads(lines, params, path), adv.last_layer_grads(adv_loss, params, path))
    assert float(lam) == pytest.approx(bound)
    wide = adv.adaptive_weight(
        adv.last_layer_grads(lines, params, path), adv.last_layer_grads(adv_loss, params, path), lo=0.0, hi=1e4
    )
    np.testing.assert_allclose(wide, min(expected, 1e4), rtol=1e-3)


# ---------------------------------------------------------------------------------------------------------------
# Discriminator
# ---------------------------------------------------------------------------------------------------------------


def _features_batch(b=4, seed=0):
    return _tiny_features()(_images((b, 16, 16, 3), seed=seed))


@pytest.mark.parametrize("cross_scale", [True, False])
def test_discriminator_one_logit_map_per_scale(cross_scale):
    feats = _features_batch()
    d = ProjectedDiscriminator(cross_scale=cross_scale, **TINY_D)
    variables = d.init(jax.random.key(0), feats)
    logits = d.apply(variables, feats)
    assert len(logits) == len(feats) == 3
    # 16 -> 8 -> 4 -> 2 (end_size 2), 8 -> 4 -> 2, 4 -> 2; then a 2x2 valid conv: 1x1 maps.
    assert [lg.shape for lg in logits] == [(4, 1, 1)] * 3
    assert all(np.all(np.isfinite(lg)) for lg in logits)
    names = set(variables["projection"])
    assert {"ccm_0_kernel", "ccm_2_kernel"} <= names
    assert ("csm_0_kernel" in names) == cross_scale
    # Wider end maps: end_size 4 leaves 4x4 maps and the 4x4 valid conv gives 1x1; end_size 8 gives 5x5 on the
    # first scale (Projected GAN's 8 -> 5).
    d8 = ProjectedDiscriminator(proj_channels=4, max_channels=8, end_size=8)
    shapes = jax.eval_shape(lambda: d8.apply(d8.init(jax.random.key(0), feats), feats))
    assert [s.shape for s in shapes] == [(4, 5, 5), (4, 5, 5), (4, 1, 1)]


def test_projection_is_frozen_and_gradients_reach_the_input():
    feats = _features_batch()
    d = ProjectedDiscriminator(**TINY_D)
    init = jax.jit(d.init)
    variables = init(jax.random.key(1), feats)
    params, proj = variables["params"], variables["projection"]
    assert not any("ccm" in k or "csm" in k for k in params)
    proj_before = jax.tree.map(np.array, proj)

    apply = jax.jit(lambda p, pr, fs: d.apply({"params": p, "projection": pr}, fs))
    fake = [f * 0.5 for f in feats]
    loss = lambda p, pr: adv.d_hinge_loss(
        d.apply({"params": p, "projection": pr}, feats), d.apply({"params": p, "projection": pr}, fake)
    )
    # Differentiating both collections: the projections' gradient is zero (stop_gradient inside), so even a
    # step that updated every collection would leave them alone.
    grads, proj_grads = jax.jit(jax.grad(loss, argnums=(0, 1)))(params, proj)
    assert all(np.all(g == 0) for g in jax.tree.leaves(proj_grads))
    opt = optax.adam(1e-2)
    state = opt.init(params)
    updates, state = opt.update(grads, state, params)
    new_params = optax.apply_updates(params, updates)
    jax.tree.map(np.testing.assert_array_equal, proj, proj_before)
    assert any(np.any(a != b) for a, b in zip(jax.tree.leaves(new_params), jax.tree.leaves(params)))
    before = apply(params, proj, feats)[0]
    assert not np.allclose(apply(new_params, proj, feats)[0], before)

    # The projections are used: other projections give other logits...
    assert not np.allclose(apply(params, jax.tree.map(lambda v: -v, proj), feats)[0], before)
    # ...and the gradient flows through them to the features (the generator's path).
    g_feats = jax.jit(jax.grad(lambda fs: adv.g_hinge_loss(apply(params, proj, fs))))(feats)
    assert all(np.any(g != 0) for g in g_feats)
    # The same init key gives the same projections.
    jax.tree.map(np.testing.assert_array_equal, init(jax.random.key(1), feats)["projection"], proj_before)


def test_conditioning_on_labels():
    feats = [jnp.concatenate([f[:1], f[:1]]) for f in _features_batch()]  # two copies of one example
    y = jnp.asarray([0, 1])
    cond = ProjectedDiscriminator(num_classes=3, **TINY_D)
    variables = cond.init(jax.random.key(2), feats, y)
    logits = cond.apply(variables, feats, y)
    assert len(logits) == 3
    for lg in logits:
        assert not np.allclose(lg[0], lg[1])  # same features, different labels
    same = cond.apply(variables, feats, jnp.asarray([2, 2]))
    for lg in same:
        np.testing.assert_allclose(lg[0], lg[1], rtol=1e-6)
    with pytest.raises(ValueError, match="labels"):
        cond.apply(variables, feats)

    uncond = ProjectedDiscriminator(**TINY_D)
    uvars = uncond.init(jax.random.key(2), feats)
    a, b = uncond.apply(uvars, feats, y), uncond.apply(uvars, feats, jnp.asarray([1, 0]))
    for la, lb, ln in zip(a, b, uncond.apply(uvars, feats)):
        np.testing.assert_array_equal(la, lb)
        np.testing.assert_array_equal(la, ln)
        np.testing.assert_allclose(la[0], la[1], rtol=1e-6)


def test_discriminator_rejects_bad_features():
    d = ProjectedDiscriminator(proj_channels=(4, 4), **{k: v for k, v in TINY_D.items() if k != "proj_channels"})
    with pytest.raises(ValueError, match="proj_channels"):
        d.init(jax.random.key(0), _features_batch())
    with pytest.raises(ValueError, match="NHWC"):
        ProjectedDiscriminator(**TINY_D).init(jax.random.key(0), [jnp.ones((2, 4, 4))])


def test_discriminator_learns_to_separate_two_distributions():
    """Hinge-trained D on DiffAugmented images of mean +0.5 (real) and -0.5 (fake) ranks held-out reals higher."""
    features = _tiny_features()
    d = ProjectedDiscriminator(**TINY_D)
    rng = np.random.default_rng(0)

    def sample(n, mean):
        return jnp.asarray(np.clip(mean + 0.2 * rng.standard_normal((n, 16, 16, 3)), -1, 1), jnp.float32)

    variables = d.init(jax.random.key(0), features(sample(2, 0.0)))
    params, proj = variables["params"], variables["projection"]
    disc = lambda p: lambda f, y: d.apply({"params": p, "projection": proj}, f, y)
    opt = optax.adam(2e-3, b1=0.0, b2=0.99)
    state = opt.init(params)

    @jax.jit
    def step(params, state, key, real, fake):
        def loss(p):
            # One batch, so real and fake examples get different augmentations (per-index draws).
            logits = adv.discriminator_logits(key, jnp.concatenate([real, fake]), features, disc(p), size=20)
            n = real.shape[0]
            return adv.d_hinge_loss([lg[:n] for lg in logits], [lg[n:] for lg in logits])

        value, grads = jax.value_and_grad(loss)(params)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, value

    for i in range(40):
        params, state, value = step(params, state, jax.random.key(100 + i), sample(16, 0.5), sample(16, -0.5))
    assert float(value) < 1.0  # below the loss of an uninformative D (2 at logits 0)

    score = lambda x: np.mean(
        [np.asarray(lg).reshape(x.shape[0], -1).mean(axis=1) for lg in disc(params)(features(adv.resize(x, 20)), None)],
        axis=0,
    )
    real_scores, fake_scores = score(sample(32, 0.5)), score(sample(32, -0.5))
    assert real_scores.mean() > fake_scores.mean()
    assert np.mean(real_scores[:, None] > fake_scores[None, :]) > 0.95  # pairs ranked right
