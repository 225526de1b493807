"""LMM's adversarial stage (flowjax/train/lmm_stages.py) against a second implementation, the last layers of every
network, and a run that switches stages, checkpoints the discriminator and resumes exactly."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import quickstart
from flowjax import adversarial, models
from flowjax.data import pairs as pairs_io
from flowjax.models.discriminator import PROJECTION
from flowjax.train import lmm_stages


@pytest.fixture(scope="module")
def frozen():
    from flowjax.models import lpips

    return {"vgg": lpips.load_vgg()}


def stage2_config(**overrides):
    config = quickstart.get_config()
    config.loss.name, config.coupling.name = "lines", "independent"
    # VGG16 at 16 pixels (its four poolings leave relu5_3 at 1 x 1): the smallest input it takes, to keep this fast
    config.lmm.adversarial_from, config.lmm.d_resize, config.lmm.d_channels = 0, 16, 4
    config.lmm.norm = "l2sq"
    config.training.num_steps = 10
    for key, value in overrides.items():
        section, field = key.split(".")
        config[section][field] = value
    return config


def test_last_layers_are_the_output_layers():
    """The adaptive weight's theta_L: the layer each network applies last (read from the models' code)."""
    mlp = {"Dense_0": {"kernel": 0}, "Dense_1": {"kernel": 0}, "Dense_10": {"kernel": 0}, "Dense_2": {"kernel": 0}}
    assert lmm_stages.last_layer_path(mlp) == ("Dense_10", "kernel")
    cfg = quickstart.get_config()
    cfg.model.name, cfg.model.preset = "unet", "edm_ddpmpp_cifar10"
    cfg.model.base_channels, cfg.model.channel_mults, cfg.model.num_res_blocks = 8, (1, 2), 1
    cfg.model.attention_resolutions = ()
    for preset, want in (
        ("edm_ddpmpp_cifar10", "dec_16x16_aux_conv"),
        ("edm_adm_imagenet64", "out_conv"),
        ("", "conv_out"),
    ):
        cfg.model.preset = preset
        model = models.make(cfg.model)
        shapes = jax.eval_shape(lambda m=model: m.init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3)), jnp.zeros(1)))
        path = lmm_stages.last_layer_path(shapes["params"])
        assert path[0] == want, (preset, path)
        # the output layer maps to the image's channels
        assert adversarial.get_path(shapes["params"], path).shape[-1] == 3


def test_stage2_step_equals_a_second_implementation(frozen):
    """The generator's gradient lambda_lines grad L_lines + lambda_adapt grad L_adv with lambda_adapt from the last
    layer's two gradients, and the discriminator's RAdam step on the hinge loss: recomputed here with jax.grad of
    each loss separately (one device, so the device means are the identity)."""
    config = stage2_config(**{"lmm.diffaug": "translation"})
    kx = jax.random.split(jax.random.PRNGKey(0), 4)
    b, hw = 4, 8
    x1 = jax.random.uniform(kx[0], (b, hw, hw, 3), minval=-1, maxval=1)
    real = jax.random.uniform(kx[1], (b, hw, hw, 3), minval=-1, maxval=1)
    params = {
        "hidden": {"kernel": 0.1 * jax.random.normal(kx[2], (3, 3))},
        "conv_out": {"kernel": 0.1 * jax.random.normal(kx[3], (3, 3))},
    }

    def generator(p):  # a per-pixel two-layer "network"
        return jnp.tanh(x1 @ p["hidden"]["kernel"]) @ p["conv_out"]["kernel"]

    def lines_fn(p):
        pred = generator(p)
        return 0.5 * jnp.mean(jnp.square(pred - x1)), pred

    disc = lmm_stages.init_discriminator(config, jax.random.PRNGKey(5), x1[:1], frozen)
    key = jax.random.PRNGKey(6)
    run = jax.vmap(
        lambda p, d, k: lmm_stages.generator_and_discriminator_step(
            config, lines_fn, p, d, frozen, None, real, None, k, "batch"
        ),
        axis_name="batch",
        in_axes=(None, None, None),
        axis_size=1,
    )
    loss, grads, new_disc, metrics = jax.tree.map(lambda a: a[0], run(params, disc, key))

    # the second implementation: the same keys, each loss differentiated on its own
    module = lmm_stages.discriminator(config)
    k_fake, k_real, k_fake_d = jax.random.split(jax.random.fold_in(key, 0), 3)
    feats = lambda x: lmm_stages.features(frozen, x)

    def logits(dp, k, x):
        v = {"params": dp, PROJECTION: disc[PROJECTION]}
        return adversarial.discriminator_logits(
            k, x, feats, lambda f, y: module.apply(v, f, y), None, policy="translation", size=16
        )

    g_lines = jax.grad(lambda p: lines_fn(p)[0])(params)
    g_adv = jax.grad(lambda p: adversarial.g_hinge_loss(logits(disc["params"], k_fake, generator(p))))(params)
    n_lines = jnp.linalg.norm(g_lines["conv_out"]["kernel"])
    n_adv = jnp.linalg.norm(g_adv["conv_out"]["kernel"])
    lam = jnp.clip(n_lines / (n_adv + 1e-4), 0.01, 10.0)
    np.testing.assert_allclose(metrics["lambda_adapt"], lam, rtol=1e-4)
    for name in ("hidden", "conv_out"):
        want = g_lines[name]["kernel"] + lam * g_adv[name]["kernel"]
        np.testing.assert_allclose(grads[name]["kernel"], want, rtol=2e-4, atol=1e-7)
    adv = adversarial.g_hinge_loss(logits(disc["params"], k_fake, generator(params)))
    np.testing.assert_allclose(loss, lines_fn(params)[0] + lam * adv, rtol=1e-5)

    fake = generator(params)
    d_loss_fn = lambda dp: adversarial.d_hinge_loss(logits(dp, k_real, real), logits(dp, k_fake_d, fake))
    d_grads = jax.grad(d_loss_fn)(disc["params"])
    tx = optax.radam(config.lmm.d_learning_rate, b1=0.5, b2=0.9)
    upd, _ = tx.update(d_grads, tx.init(disc["params"]), disc["params"])
    want_d = optax.apply_updates(disc["params"], upd)
    for a, w in zip(jax.tree.leaves(new_disc["params"]), jax.tree.leaves(want_d)):
        np.testing.assert_allclose(a, w, rtol=1e-4, atol=1e-6)
    # the frozen projections do not move
    for a, w in zip(jax.tree.leaves(new_disc[PROJECTION]), jax.tree.leaves(disc[PROJECTION])):
        np.testing.assert_array_equal(a, w)


def write_digit_pairs(directory, n=64):
    """Stand-in pairs of a digits teacher (x1: noise-free digit-shaped arrays); the real images are the digits."""
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((n, 8, 8, 1)).astype(np.float32)
    x1 = np.tanh(x0).astype(np.float32)
    manifest = {"num_pairs": n, "shape": [8, 8, 1], "shard_size": 32, "data": {"name": "digits", "source": "normal"}}
    pairs_io.write_pairs(str(directory), lambda a, b: (x0[a:b], x1[a:b]), manifest)
    return str(directory)


def test_stages_switch_checkpoint_the_discriminator_and_resume_exactly(tmp_path):
    """A run of 3 steps, 2 of them adversarial, stopped after 2 and resumed, ends with the same generator,
    discriminator and optimizer states as the uninterrupted run (the discriminator and both optimizers are in
    the checkpoint)."""
    from flowjax import train
    from flowjax.train import loop

    directory = write_digit_pairs(tmp_path / "pairs")
    config = stage2_config(
        **{
            "data.name": "pairs",
            "data.data_dir": directory,
            "lmm.from_teacher": False,
            "lmm.adversarial_from": 1,
            "lmm.diffaug": "",
            "training.num_steps": 3,
            "training.batch_size": 8,
            "training.log_every": 1,
            "training.checkpoint_every": 1,
            "training.steps_per_call": 1,
            "model.hidden": (16,),
        }
    )
    exp = train.setup(config)
    assert exp.state.disc is not None and exp.real is not None
    full = loop.train(config, str(tmp_path / "full"), exp)
    short = config.copy_and_resolve_references()
    short.training.num_steps = 2
    loop.train(short, str(tmp_path / "split"), train.setup(short))
    resumed = loop.train(config, str(tmp_path / "split"), train.setup(config))
    for a, b in zip(jax.tree.leaves(full), jax.tree.leaves(resumed)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # stage 2 moved the discriminator, stage 1 did not touch it
    moved = [
        not np.array_equal(a, b)
        for a, b in zip(jax.tree.leaves(full.disc["params"]), jax.tree.leaves(exp.state.disc["params"]))
    ]
    assert all(moved)


def test_checkpoints_without_a_discriminator_keep_their_layout(tmp_path):
    """A run without a discriminator saves (and restores) the five fields the train state had before LMM's
    ``disc`` existed, so that checkpoints written by earlier flowjax still restore: one written from a stand-in of
    that old state restores into today's template, equal leaf by leaf."""
    import flax
    import orbax.checkpoint as ocp

    from flowjax import train
    from flowjax.train import workdir as workdirs

    @flax.struct.dataclass
    class OldTrainState:  # the train state before LMM's discriminator
        step: jax.Array
        params: dict
        ema_params: dict
        opt_state: tuple
        coupling_state: dict | None = None

    tx = optax.adam(1e-3)
    params = {"w": jnp.arange(3.0), "b": jnp.ones((2, 2))}
    old = OldTrainState(jnp.asarray(7, jnp.int32), params, jax.tree.map(lambda a: 2 * a, params), tx.init(params))
    mngr = ocp.CheckpointManager(str(tmp_path / "checkpoints"))
    mngr.save(7, args=ocp.args.StandardSave(old))
    mngr.wait_until_finished()
    template = train.TrainState(jnp.zeros((), jnp.int32), params, params, tx.init(params))
    restored = workdirs.restore_newest(mngr, template)
    assert restored.disc is None and int(restored.step) == 7
    for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(old)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # and today's save of such a state has the old layout: it restores into the old structure
    mngr.save(8, args=ocp.args.StandardSave(workdirs.checkpoint_tree(restored.replace(step=jnp.asarray(8)))))
    mngr.wait_until_finished()
    back = mngr.restore(8, args=ocp.args.StandardRestore(old))
    assert isinstance(back, OldTrainState) and int(back.step) == 8
