"""The image UNet (flowjax/models/unet.py): shapes, dropout, zero init, conditioning, fitting, bad input,
parameter counts (hand-counted, and the curvature paper's stated counts), and models.make."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from flowjax import models
from flowjax.models import unet

TINY = dict(base_channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_resolutions=(), num_heads=2)


def _key(seed):
    """A cheap-to-compile PRNG key (threefry's bit generation makes even a tiny UNet's init slow to compile)."""
    return jax.random.key(seed, impl="unsafe_rbg")


def _inputs(shape, seed=0):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.standard_normal(shape), jnp.float32), jnp.asarray(rng.uniform(size=shape[0]), jnp.float32)


def _random_params(model, x, t, y=None, seed=1, scale=0.3):
    """Random values for every parameter (so the zero-initialised convs no longer hide the inputs), no init compile."""
    rng = np.random.default_rng(seed)
    shapes = jax.eval_shape(model.init, _key(0), x, t, y)["params"]
    return jax.tree.map(lambda s: jnp.asarray(scale * rng.standard_normal(s.shape), jnp.float32), shapes)


@pytest.mark.parametrize(
    "shape, overrides",
    [
        ((2, 8, 8, 1), {}),
        ((2, 8, 8, 3), dict(attention_resolutions=(4,), layout="ddpmpp", resblock_updown=True, skip_rescale=True)),
        ((2, 16, 16, 3), dict(attention_resolutions=(16,), num_classes=3, scale_shift_norm=True, head_channels=4)),
        (
            (2, 16, 16, 1),
            dict(
                attention_resolutions=(16, 8),
                out_channels=2,
                time_embed="fourier",
                time_scale=1.0,
                num_classes=2,
                resblock_updown=True,
            ),
        ),
    ],
)
def test_output_shape(shape, overrides):
    """Traced (jax.eval_shape), not run: the numerical tests below run the network."""
    model = unet.UNet(**{**TINY, **overrides})
    x, t = _inputs(shape)
    y = jnp.array([0, 1]) if overrides.get("num_classes") else None
    out = jax.eval_shape(lambda k: model.apply(model.init(k, x, t, y), x, t, y), _key(0))
    assert out.shape == shape[:3] + (overrides.get("out_channels") or shape[3],)
    assert out.dtype == x.dtype


def test_every_option_runs_finite():
    """Both layouts with resampling blocks, attention, classes, both time embeddings, scale-shift norm."""
    x, t = _inputs((2, 16, 16, 3))
    y = jnp.array([0, 1])
    common = dict(TINY, attention_resolutions=(16, 8), num_classes=2, resblock_updown=True)
    nets = [
        unet.UNet(**common, layout="ddpmpp", skip_rescale=True, time_embed="fourier", time_scale=1.0, out_channels=2),
        unet.UNet(**common, layout="adm", scale_shift_norm=True, head_channels=4),
    ]
    params = [_random_params(net, x, t, y) for net in nets]
    outs = jax.jit(lambda ps: [net.apply({"params": p}, x, t, y) for net, p in zip(nets, ps)])(params)
    for out, channels in zip(outs, (2, 3)):
        assert out.shape == (2, 16, 16, channels)
        assert np.all(np.isfinite(out)) and np.any(out != 0)


def test_dropout_only_in_training():
    x, t = _inputs((2, 8, 8, 1))
    model, no_dropout = unet.UNet(**TINY, dropout=0.5), unet.UNet(**TINY, dropout=0.0)
    params = _random_params(model, x, t)

    @jax.jit
    def outputs(params):
        run = lambda m, seed, train: m.apply({"params": params}, x, t, train=train, rngs={"dropout": _key(seed)})
        return (
            run(model, 0, True),
            run(model, 1, True),
            run(model, 0, False),
            run(model, 1, False),
            run(no_dropout, 0, True),
        )

    train_a, train_b, eval_a, eval_b, train_no_dropout = outputs(params)
    assert not np.allclose(train_a, train_b)
    np.testing.assert_array_equal(eval_a, eval_b)
    np.testing.assert_allclose(eval_a, train_no_dropout, rtol=1e-6, atol=1e-6)


def test_time_and_class_conditioning_matter():
    x, t = _inputs((2, 8, 8, 1))
    model = unet.UNet(**TINY, num_classes=3)
    params = _random_params(model, x, t)

    @jax.jit
    def outputs(params):
        apply = lambda t, y: model.apply({"params": params}, x, jnp.full((2,), t), y)
        return (
            apply(0.2, None),
            apply(0.7, None),
            apply(0.5, jnp.array([0, 0])),
            apply(0.5, jnp.array([1, 1])),
            apply(0.5, None),
            apply(0.5, jnp.array([3, 3])),
        )

    t_02, t_07, y_0, y_1, y_none, y_null = outputs(params)
    assert not np.allclose(t_02, t_07, atol=1e-4)
    assert not np.allclose(y_0, y_1, atol=1e-4)
    np.testing.assert_array_equal(y_none, y_null)  # y=None is the null class num_classes


@pytest.fixture(scope="module")
def fresh_tiny():
    """A freshly initialised tiny net (real init), with a batch and time."""
    x, t = _inputs((8, 8, 8, 1))
    model = unet.UNet(**TINY, time_scale=1.0)
    return model, jax.jit(model.init)(_key(0), x, t)["params"], x, t


def test_fresh_net_outputs_exactly_zero(fresh_tiny):
    model, params, x, t = fresh_tiny
    assert not np.any(np.asarray(params["conv_out"]["kernel"]))
    assert np.any(np.asarray(params["conv_in"]["kernel"]))
    assert np.all(np.asarray(jax.jit(model.apply)({"params": params}, x, t)) == 0.0)


def test_fits_a_simple_velocity_field(fresh_tiny):
    model, params, x, t = fresh_tiny
    target = x * t[:, None, None, None]
    tx = optax.adam(3e-3)

    def loss_fn(p):
        return jnp.mean((model.apply({"params": p}, x, t) - target) ** 2)

    @jax.jit  # one step per call: XLA:CPU runs a UNet step many times slower inside a lax.scan
    def step(p, opt):
        loss, grads = jax.value_and_grad(loss_fn)(p)
        updates, opt = tx.update(grads, opt, p)
        return optax.apply_updates(p, updates), opt, loss

    p, opt, first = step(params, tx.init(params))
    for _ in range(149):
        p, opt, _ = step(p, opt)
    final = loss_fn(p)
    assert final < first / 10, (float(first), float(final))


def test_bad_inputs():
    model = unet.UNet(**{**TINY, "channel_mults": (1, 2, 2)})
    x, t = _inputs((1, 10, 10, 1))
    with pytest.raises(ValueError, match="not divisible by 4"):
        jax.eval_shape(model.init, _key(0), x, t)
    x, t = _inputs((1, 8, 8, 1))
    with pytest.raises(ValueError, match=r"attention_resolutions \[16\]"):
        jax.eval_shape(unet.UNet(**{**TINY, "attention_resolutions": (16,)}).init, _key(0), x, t)
    with pytest.raises(ValueError, match="head_channels=3"):
        jax.eval_shape(unet.UNet(**{**TINY, "head_channels": 3}).init, _key(0), x, t)
    with pytest.raises(ValueError, match="unconditional"):
        jax.eval_shape(unet.UNet(**TINY).init, _key(0), x, t, jnp.zeros(1, jnp.int32))
    with pytest.raises(ValueError, match="UNet.time_embed"):
        unet.UNet(**TINY, time_embed="learned")


def test_param_count_by_hand():
    c, cin, emb = 8, 3, 32  # one level: conv_in, 1 down block, middle, 2 up blocks, out
    conv = lambda k, i, o: k * k * i * o + o
    dense = lambda i, o: i * o + o
    norm = lambda ch: 2 * ch

    def block(i, o):
        return norm(i) + conv(3, i, o) + dense(emb, o) + norm(o) + conv(3, o, o) + (conv(1, i, o) if i != o else 0)

    attention = norm(c) + dense(c, 3 * c) + dense(c, c)
    expected = (
        dense(c, emb)
        + dense(emb, emb)
        + conv(3, cin, c)
        + block(c, c)  # encoder
        + 2 * block(c, c)
        + attention  # middle
        + 2 * block(2 * c, c)  # decoder: every block sees [h, skip]
        + norm(c)
        + conv(3, c, cin)
    )
    model = unet.UNet(base_channels=c, channel_mults=(1,), num_res_blocks=1, attention_resolutions=(8,))
    # attention at the only level adds one layer in the encoder and one per decoder block ("adm" layout)
    assert unet.num_params(model, (1, 8, 8, cin)) == expected + 3 * attention
    model = model.clone(attention_resolutions=(), num_classes=5)
    assert unet.num_params(model, (1, 8, 8, cin)) == expected + 6 * emb  # 5 classes + the null class


@pytest.mark.parametrize(
    "preset, shape, count",
    [
        (unet.ddpmpp_edm_mnist, (1, 28, 28, 1), 2_155_201),
        (unet.ddpmpp_edm_cifar10, (1, 32, 32, 3), 55_732_739),
    ],
)
def test_preset_count_matches_the_curvature_paper(preset, shape, count):
    """Curvature paper Table 4 states 2.15M (MNIST) and 55.73M (CIFAR-10) for its DDPM++ (EDM SongUNet);
    the exact counts are those of its released configs (mnist_de.json, cifar10_de.json)."""
    assert unet.num_params(unet.UNet(**preset()), shape) == count


def _unet_config(**fields):
    return ml_collections.ConfigDict({"name": "unet", "hidden": (64,), **fields})  # mlp fields are ignored


def test_make_builds_presets_and_rejects_bad_fields():
    model = models.make(_unet_config(preset="adm_cifar10", dropout=0.0, attention_resolutions=[8]))
    assert isinstance(model, unet.UNet)
    assert (model.base_channels, model.head_channels, model.dropout) == (128, 64, 0.0)
    assert model.attention_resolutions == (8,)
    tiny = models.make(_unet_config(**TINY, dtype="float32", num_classes=None))
    assert (tiny.base_channels, tiny.num_classes, tiny.dtype) == (8, 0, jnp.float32)
    x, t = _inputs((1, 8, 8, 1))
    out = jax.eval_shape(lambda k: tiny.apply(tiny.init(k, x, t), x, t), _key(0))
    assert out.shape == x.shape  # called like the MLP: model.apply({"params": p}, x, t)
    with pytest.raises(ValueError, match="model.preset"):
        models.make(_unet_config(preset="adm_cifar11"))
    with pytest.raises(ValueError, match="model.time_embed"):
        models.make(_unet_config(time_embed="sinusoid"))
    with pytest.raises(ValueError, match="model.channel_mults"):
        models.make(_unet_config(channel_mults=()))
    with pytest.raises(ValueError, match="model.dtype"):
        models.make(_unet_config(dtype="float33"))
    mlp = models.make(
        ml_collections.ConfigDict({"name": "mlp", "hidden": (4,), "time_embed_dim": 4, "activation": "silu"})
    )
    assert isinstance(mlp, models.mlp.MLP) and mlp.hidden == (4,)
