"""EDM's networks (flowjax/models/edm_unet.py) and the conversion of its released weights
(scripts/convert_edm_weights.py, weights.load_converted).

The fixtures (tests/fixtures/edm_*, written by scripts/make_edm_fixtures.py from EDM's own PyTorch code,
NVlabs/edm training/networks.py) give EDM's state-dict key names and shapes for the released networks and
for two tiny ones, and the tiny ones' outputs on fixed inputs. The tests build state dicts with those names
and shapes (no PyTorch), convert them, and check flowjax's forward pass against an independent NumPy
implementation of EDM's blocks written here from the math, and against EDM's own outputs.
"""

import importlib.util
import json
import math
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from flowjax import models
from flowjax.models import edm_unet, unet, weights

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")


def _script(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "scripts", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fixtures = _script("make_edm_fixtures")  # seeded_state_dict: the tiny reference nets' weights
converter = _script("convert_edm_weights")


def _fixture(name):
    with open(os.path.join(FIXTURES, f"edm_{name}_keys.json")) as f:
        return json.load(f)


# The tiny networks of the fixtures as EDMUNet kwargs (their EDM kwargs are in the fixture; checked below).
TINY = {
    "tiny_ddpmpp": dict(arch="ddpmpp", base_channels=16, augment_dim=9),
    "tiny_adm": dict(arch="adm", base_channels=64, augment_dim=9),
}
TINY_COMMON = dict(channel_mults=(1, 2), num_res_blocks=1, attention_resolutions=(4,), dropout=0.0, num_classes=3)


def _tiny(name):
    return edm_unet.EDMUNet(**TINY[name], **TINY_COMMON)


# An independent NumPy forward pass of EDM's networks, written from the math of EDM's blocks (NVlabs/edm
# training/networks.py), on EDM's own parameter names and layouts (NCHW, OIHW, Linear [out, in]).


def _silu(x):
    return x / (1 + np.exp(-x))


def _gn(x, w, b, eps):
    n, c, h, wd = x.shape
    g = min(32, c // 4)
    xg = x.reshape(n, g, c // g, h, wd)
    xg = (xg - xg.mean(axis=(2, 3, 4), keepdims=True)) / np.sqrt(xg.var(axis=(2, 3, 4), keepdims=True) + eps)
    return xg.reshape(x.shape) * w[None, :, None, None] + b[None, :, None, None]


def _conv(x, w, b=None):
    k = w.shape[-1]
    h, wd = x.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (k // 2, k // 2), (k // 2, k // 2)))
    out = sum(
        np.tensordot(w[:, :, i, j], xp[:, :, i : i + h, j : j + wd], axes=([1], [1]))
        for i in range(k)
        for j in range(k)
    ).transpose(1, 0, 2, 3)
    return out if b is None else out + b[None, :, None, None]


def _resample(x, how):
    if how == "down":  # EDM's [1, 1] FIR filter, stride 2: the mean of each 2x2 patch
        n, c, h, w = x.shape
        return x.reshape(n, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5))
    if how == "up":  # its transpose (filter x 4): each pixel copied into a 2x2 patch
        return x.repeat(2, axis=2).repeat(2, axis=3)
    return x


def _np_block(p, name, x, emb, song):
    """EDM UNetBlock: p(key) reads the state dict under this block."""
    eps, skip_scale = (1e-6, np.sqrt(0.5)) if song else (1e-5, 1.0)
    how = "down" if name.endswith("_down") else "up" if name.endswith("_up") else "none"
    h = _conv(
        _resample(_silu(_gn(x, p("norm0.weight"), p("norm0.bias"), eps)), how), p("conv0.weight"), p("conv0.bias")
    )
    e = (emb @ p("affine.weight").T + p("affine.bias"))[:, :, None, None]
    if song:
        h = _silu(_gn(h + e, p("norm1.weight"), p("norm1.bias"), eps))
    else:
        scale, shift = np.split(e, 2, axis=1)
        h = _silu(shift + _gn(h, p("norm1.weight"), p("norm1.bias"), eps) * (scale + 1))
    h = _conv(h, p("conv1.weight"), p("conv1.bias"))
    skip = _resample(x, how)
    if p("skip.weight") is not None:
        skip = _conv(skip, p("skip.weight"), p("skip.bias"))
    x = (h + skip) * skip_scale
    if p("qkv.weight") is None:
        return x
    n, c, hh, ww = x.shape
    heads = 1 if song else c // 64
    qkv = _conv(_gn(x, p("norm2.weight"), p("norm2.bias"), eps), p("qkv.weight"), p("qkv.bias"))
    # qkv output channel 3 (head * ch + c) + j: component j of channel c of head `head`.
    q, k, v = np.moveaxis(qkv.reshape(n, heads, c // heads, 3, hh * ww), 3, 0)
    logits = np.einsum("nhcq,nhck->nhqk", q, k) / np.sqrt(c // heads)
    w = np.exp(logits - logits.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    a = np.einsum("nhqk,nhck->nhcq", w, v).reshape(x.shape)
    return (_conv(a, p("proj.weight"), p("proj.bias")) + x) * skip_scale


def np_edm_forward(sd, kw, x, noise, onehot, augment):
    """EDM SongUNet / DhariwalUNet forward (NCHW) from a state dict keyed like EDMPrecond.state_dict()."""
    sd = {k: np.asarray(v, np.float64) for k, v in sd.items()}
    song, c0, res = kw["model_type"] == "SongUNet", kw["model_channels"], kw["img_resolution"]
    get = lambda key: sd.get(f"model.{key}")
    dense = lambda name, h: (
        h @ get(f"{name}.weight").T + (get(f"{name}.bias") if get(f"{name}.bias") is not None else 0)
    )
    half = c0 // 2
    freqs = (1 / 10_000) ** (np.arange(half) / (half - (1 if song else 0)))
    emb = np.concatenate([np.cos(np.outer(noise, freqs)), np.sin(np.outer(noise, freqs))], axis=1)
    if song:
        emb = np.concatenate([emb[:, half:], emb[:, :half]], axis=1)  # [sin, cos]
        emb = emb + dense("map_label", onehot * np.sqrt(onehot.shape[1])) + dense("map_augment", augment)
        emb = _silu(dense("map_layer1", _silu(dense("map_layer0", emb))))
    else:
        emb = dense("map_layer1", _silu(dense("map_layer0", emb + dense("map_augment", augment))))
        emb = _silu(emb + dense("map_label", onehot))
    levels, blocks = kw["channel_mult"], kw["num_blocks"]
    skips, h = [], x.astype(np.float64)
    for level in range(len(levels)):
        r = f"{res >> level}x{res >> level}"
        names = [f"{r}_conv" if level == 0 else f"{r}_down"] + [f"{r}_block{i}" for i in range(blocks)]
        for name in names:
            if name.endswith("_conv"):
                h = _conv(h, get(f"enc.{name}.weight"), get(f"enc.{name}.bias"))
            else:
                h = _np_block(lambda key, n=name: get(f"enc.{n}.{key}"), name, h, emb, song)
            skips.append(h)
    for level in reversed(range(len(levels))):
        r = f"{res >> level}x{res >> level}"
        first = [f"{r}_in0", f"{r}_in1"] if level == len(levels) - 1 else [f"{r}_up"]
        for name in first + [f"{r}_block{i}" for i in range(blocks + 1)]:
            if "_block" in name:
                h = np.concatenate([h, skips.pop()], axis=1)
            h = _np_block(lambda key, n=name: get(f"dec.{n}.{key}"), name, h, emb, song)
    norm, conv = (f"dec.{res}x{res}_aux_norm", f"dec.{res}x{res}_aux_conv") if song else ("out_norm", "out_conv")
    h = _silu(_gn(h, get(f"{norm}.weight"), get(f"{norm}.bias"), 1e-6 if song else 1e-5))
    return _conv(h, get(f"{conv}.weight"), get(f"{conv}.bias"))


# (a) The mapping is right: converted tiny networks compute EDM's function.


@pytest.mark.parametrize("name", ["tiny_ddpmpp", "tiny_adm"])
def test_converted_tiny_net_computes_edms_function(name):
    fx = _fixture(name)
    kw = fx["edm_kwargs"]
    model = _tiny(name)
    assert (kw["model_channels"], kw["channel_mult"], kw["num_blocks"], kw["attn_resolutions"], kw["label_dim"]) == (
        model.base_channels,
        list(model.channel_mults),
        model.num_res_blocks,
        list(model.attention_resolutions),
        model.num_classes,
    )
    state = fixtures.seeded_state_dict(fx["state_dict"])  # random arrays with EDM's names and shapes
    params = edm_unet.params_from_edm(state, model, (8, 8, 3))
    assert edm_unet.param_shapes(model, (8, 8, 3)).keys() == {p for p, _ in _flat(params)}, (
        "every parameter converted, none extra"
    )
    ref = np.load(os.path.join(FIXTURES, "edm_tiny_reference.npz"))
    x, noise, labels, augment = (ref[f"{name}_{k}"] for k in ("x", "noise", "labels", "augment"))
    for y, out_key in ((labels, "out"), (None, "out_nolabel")):
        onehot = np.eye(3)[labels] if y is not None else np.zeros((2, 3))
        expected = np_edm_forward(state, kw, x, noise, onehot, augment)
        np.testing.assert_allclose(expected, ref[f"{name}_{out_key}"], atol=1e-5)  # NumPy == EDM's PyTorch code
        nhwc = jnp.asarray(x.transpose(0, 2, 3, 1))
        got = model.apply({"params": params}, nhwc, jnp.asarray(noise), None if y is None else jnp.asarray(y),
                          augment_labels=jnp.asarray(augment))  # fmt: skip
        np.testing.assert_allclose(np.asarray(got).transpose(0, 3, 1, 2), expected, atol=2e-5)
    # Augment labels default to zeros, i.e. EDM's sampling call (augment_labels=None).
    got = model.apply({"params": params}, nhwc, jnp.asarray(noise), jnp.asarray(labels))
    expected = np_edm_forward(state, kw, x, noise, np.eye(3)[labels], np.zeros_like(augment))
    np.testing.assert_allclose(np.asarray(got).transpose(0, 3, 1, 2), expected, atol=2e-5)


def _flat(tree, prefix=()):
    for k, v in tree.items():
        yield from (_flat(v, prefix + (k,)) if isinstance(v, dict) else [(prefix + (k,), v)])


# (b) + (d) The released networks: keys, shapes, buffers and parameter counts equal EDM's.


@pytest.mark.parametrize("preset", sorted(edm_unet.PRESETS))
def test_preset_is_the_released_network(preset):
    fx = _fixture(preset.removeprefix("edm_"))
    kw, fields = fx["edm_kwargs"], edm_unet.PRESETS[preset]()
    assert fx["released_pickle"] == edm_unet.RELEASED[preset][0]
    assert kw["img_resolution"] == edm_unet.RELEASED[preset][1][0]
    assert (kw["label_dim"], kw.get("augment_dim", 0), kw["dropout"]) == (
        fields["num_classes"],
        fields["augment_dim"],
        fields["dropout"],
    )
    model = edm_unet.EDMUNet(**fields)
    params, buffers = edm_unet.edm_state_dict_shapes(model, edm_unet.RELEASED[preset][1])
    stated = {k: tuple(s) for k, s in fx["state_dict"].items()}
    assert {**params, **buffers} == stated, "the converter expects exactly EDM's keys and shapes"
    assert sorted(buffers) == fx["buffers"]
    count = unet.num_params(model, (1, *edm_unet.RELEASED[preset][1]))
    assert count == sum(math.prod(s) for k, s in stated.items() if k not in buffers) == fx["num_parameters"]


# (c) Refusals: a wrong network is refused with the preset to use, and nothing is written.


def _zeros_like_fixture(name):
    """A state dict with a released network's names and shapes, without the memory (zero-stride arrays)."""
    shapes = _fixture(name)["state_dict"]
    return {
        k: edm_unet.RESAMPLE_FILTER if k.endswith("resample_filter") else np.broadcast_to(np.float32(0), s)
        for k, s in shapes.items()
    }


def test_wrong_released_network_is_refused_and_nothing_written(tmp_path, monkeypatch):
    cifar = _zeros_like_fixture("ddpmpp_cifar10")
    source = tmp_path / "edm-cifar10-32x32-cond-vp.npz"
    source.write_bytes(b"stands for the exported file")
    monkeypatch.setattr(converter, "read_state_dict", lambda path: cifar)
    out = tmp_path / "imagenet.npz"
    with pytest.raises(ValueError) as err:
        converter.convert(str(source), str(out), "edm_adm_imagenet64")
    message = str(err.value)
    assert "--preset=edm_adm_imagenet64" in message and "edm-imagenet-64x64-cond-adm.pkl" in message
    assert "--preset=edm_ddpmpp_cifar10" in message, "names the preset that fits"
    assert "Nothing was written" in message
    assert sorted(os.listdir(tmp_path)) == [source.name]
    # Without --preset, the one that fits is found.
    assert converter.choose_preset(cifar, "", "x") == "edm_ddpmpp_cifar10"
    # A network that fits no preset (an NCSN++ filter, a dropped key) is refused, naming the differences.
    broken = {k: v for k, v in cifar.items() if k != "model.map_label.bias"}
    broken["model.enc.16x16_down.conv0.resample_filter"] = np.full((1, 1, 4, 4), 1 / 16, np.float32)
    with pytest.raises(ValueError, match="missing model.map_label.bias.*16x16_down.conv0.resample_filter has shape"):
        converter.choose_preset(broken, "", "x")


@pytest.fixture
def tiny_presets(monkeypatch):
    """The tiny fixture networks as converter presets."""
    for name in TINY:
        monkeypatch.setitem(edm_unet.PRESETS, name, lambda name=name: {**TINY[name], **TINY_COMMON})
        monkeypatch.setitem(edm_unet.RELEASED, name, (f"{name}.pkl", (8, 8, 3)))


def test_convert_writes_checked_weights_that_load(tmp_path, tiny_presets):
    state = fixtures.seeded_state_dict(_fixture("tiny_adm")["state_dict"])
    source = tmp_path / "tiny_adm.npz"
    np.savez(source, **{k.removeprefix("model."): v for k, v in state.items()})  # net.model.state_dict() also works
    out = tmp_path / "out" / "adm.npz"
    converter.main([f"--state_dict={source}", f"--out={out}"])  # the preset is inferred
    info = json.loads((tmp_path / "out" / "adm.json").read_text())
    assert (info["preset"], info["model"], info["num_classes"], info["sigma_data"]) == (
        "tiny_adm",
        {"name": "unet", "preset": "tiny_adm"},
        3,
        0.5,
    )
    assert info["sha256"] == weights.sha256_file(str(out)) and info["source"]["sha256"] == weights.sha256_file(
        str(source)
    )
    params, loaded_info = weights.load_converted(str(out), _tiny("tiny_adm"), (1, 8, 8, 3))
    assert loaded_info == info
    expected = edm_unet.params_from_edm(state, _tiny("tiny_adm"), (8, 8, 3))
    assert jax.tree.all(jax.tree.map(np.array_equal, params, expected))

    # Refusals before anything is written or loaded.
    with pytest.raises(FileExistsError, match="--overwrite"):
        converter.convert(str(source), str(out))
    with pytest.raises(ValueError, match="--sha256"):
        converter.convert(str(source), str(tmp_path / "b.npz"), sha256="0" * 64)
    with pytest.raises(ValueError, match=r"--preset=tiny_ddpmpp.*It is the network of --preset=tiny_adm"):
        converter.convert(str(source), str(tmp_path / "c.npz"), "tiny_ddpmpp")
    assert sorted(os.listdir(tmp_path)) == ["out", "tiny_adm.npz"]
    with pytest.raises(ValueError, match=r"model.weights=.*model.preset='tiny_adm'"):
        weights.load_converted(str(out), _tiny("tiny_ddpmpp"), (1, 8, 8, 3))
    with pytest.raises(FileNotFoundError, match="training.init_from=.*convert_edm_weights"):
        weights.load_converted(str(tmp_path / "none.npz"), _tiny("tiny_adm"), (1, 8, 8, 3), field="training.init_from")
    data = bytearray(out.read_bytes())
    data[-1] ^= 1
    out.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="SHA-256.*changed or is incomplete"):
        weights.load_converted(str(out), _tiny("tiny_adm"), (1, 8, 8, 3))


# The module on its own: fresh init, dropout, labels, and the config.


def test_fresh_net_and_call_conventions():
    model = edm_unet.EDMUNet(arch="ddpmpp", base_channels=16, channel_mults=(1,), num_res_blocks=1,
                             attention_resolutions=(8,), dropout=0.5, num_classes=3, augment_dim=9)  # fmt: skip
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 8, 8, 3)), jnp.float32)
    sigma = jnp.array([0.5, 3.0])
    variables = model.init(jax.random.PRNGKey(0), x, jnp.log(sigma) / 4, jnp.array([0, 2]))
    params = variables["params"]
    # EDM's init_zero scales the output conv by 1e-5 (DDPM++), so a fresh net outputs almost exactly zero.
    assert float(jnp.abs(params["dec_8x8_aux_conv"]["kernel"]).max()) < 1e-5
    params = jax.tree.map(lambda p: p + 0.1, params)  # wake the near-zero layers
    run = lambda y, train, seed=0: model.apply(
        {"params": params}, x, jnp.log(sigma) / 4, y, train=train, rngs={"dropout": jax.random.PRNGKey(seed)}
    )
    eval_out = run(jnp.array([0, 2]), False)
    assert eval_out.shape == x.shape and bool(jnp.isfinite(eval_out).all())
    assert not np.allclose(run(jnp.array([1, 2]), False), eval_out), "labels matter"
    assert not np.allclose(run(None, False), eval_out)
    assert not np.allclose(run(jnp.array([0, 2]), True), eval_out), "dropout acts when training"
    with pytest.raises(ValueError, match="unconditional"):
        edm_unet.EDMUNet(num_classes=0, channel_mults=(1,)).init(jax.random.PRNGKey(0), x, sigma, jnp.array([0, 1]))
    with pytest.raises(ValueError, match="EDMUNet.arch"):
        edm_unet.EDMUNet(arch="ncsnpp")


def _config(**fields):
    return ml_collections.ConfigDict({"name": "unet", **fields})


def test_make_builds_edm_presets():
    model = models.make(_config(preset="edm_adm_imagenet64", dropout=0.0))
    assert isinstance(model, edm_unet.EDMUNet)
    assert (model.arch, model.base_channels, model.num_classes, model.dropout) == ("adm", 192, 1000, 0.0)
    cifar = models.make(_config(preset="edm_ddpmpp_cifar10", num_classes=None, channel_mults=[2, 2], dtype="bfloat16"))
    assert (cifar.num_classes, cifar.augment_dim, cifar.channel_mults, cifar.dtype) == (10, 9, (2, 2), jnp.bfloat16)
    with pytest.raises(ValueError, match="model.time_embed='fourier' does not apply to EDM's network"):
        models.make(_config(preset="edm_ddpmpp_cifar10", time_embed="fourier"))
    with pytest.raises(ValueError, match="edm_adm_imagenet64"):
        models.make(_config(preset="edm_adm"))
    with pytest.raises(ValueError, match="model.dropout"):
        models.make(_config(preset="edm_ddpmpp_cifar10", dropout=1.5))


def test_pairs_from_a_converted_conditional_teacher(tmp_path, tiny_presets):
    """A converted EDM network (model.weights) teaches as a trained one does: `--mode=pairs` writes
    labelled pairs, and pair i's x1 is EDM's Heun (N = 2) on the converted denoiser with label i mod 3,
    computed here by a second route (`edm.heun` on `edm.denoiser` of the converted parameters directly)."""
    from PIL import Image

    from configs import default
    from flowjax import edm, rectify, train
    from flowjax.data import pairs as pairs_io

    state = fixtures.seeded_state_dict(_fixture("tiny_adm")["state_dict"])
    np.savez(tmp_path / "tiny_adm.npz", **state)
    converter.main([f"--state_dict={tmp_path / 'tiny_adm.npz'}", f"--out={tmp_path / 'w' / 'adm.npz'}"])
    for c in "abc":  # an image folder with one sub-folder per class: the teacher's data (shape 8 x 8 x 3)
        os.makedirs(tmp_path / "img" / c)
        for i in range(2):
            Image.fromarray(np.full((8, 8, 3), ord(c) + i, np.uint8)).save(tmp_path / "img" / c / f"{i}.png")
    config = default.get_config()
    config.data.name, config.data.data_dir, config.data.image_size = "folder", str(tmp_path / "img"), 8
    config.model.name, config.model.preset, config.model.num_classes = "unet", "tiny_adm", 3
    config.model.weights = str(tmp_path / "w" / "adm.npz")
    config.loss.name, config.training.batch_size = "edm", 4
    config.pairs.solver, config.pairs.nfe, config.pairs.num_pairs = "edm_heun", 3, 4
    config.pairs.shard_size, config.pairs.batch_size = 2, 2
    exp = train.setup(config)
    expected_params = edm_unet.params_from_edm(state, _tiny("tiny_adm"), (8, 8, 3))
    assert jax.tree.all(jax.tree.map(np.array_equal, exp.state.ema_params, expected_params))

    import main  # --mode=pairs on a workdir with no checkpoint: the converted network is the teacher

    main.run(config, str(tmp_path / "run"), "pairs", "tiny")
    out = rectify.output_dir(config, str(tmp_path / "run"))
    assert pairs_io.read_manifest(out)["teacher"]["weights"] == str(tmp_path / "w" / "adm.npz")
    stored = pairs_io.open_pairs(out)
    x0, x1 = stored.read(np.arange(4))
    labels = stored.labels(np.arange(4))
    np.testing.assert_array_equal(labels, np.arange(4) % 3)
    net = lambda p, x, s, **kw: _tiny("tiny_adm").apply({"params": p}, x, s, **kw)
    denoise = edm.denoiser(net, 0.5)
    direct = edm.heun(lambda x, s: denoise(expected_params, x, s, y=jnp.asarray(labels)), jnp.asarray(x0), 2)
    np.testing.assert_allclose(x1, direct, rtol=1e-4, atol=1e-4 * float(np.abs(direct).max()))
    assert float(np.abs(x1 - x0 * 80.0).max()) > 1e-3  # the network did something

    # The converted file is EDM's denoiser network: another loss or another sigma_data is refused.
    for field, value, message in (("name", "flow_matching", "set --config.loss.name=edm"), ("sigma_data", 1.0, "0.5")):
        other = config.copy_and_resolve_references()
        other.loss[field] = value
        with pytest.raises(ValueError, match=f"model.weights=.*{message}"):
            train.setup(other)
