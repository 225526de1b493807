"""The Lines Matching Models configs: LMM Table 6's values, and their full-size steps of both stages traced on
mocked data (stand-in pairs of the right shapes, TFDS's mocked images as the real data)."""

import jax
import numpy as np
import pytest

from flowjax import train
from flowjax.data import pairs as pairs_io
from flowjax.train import lmm_stages
from tests.test_paper_configs import _abstract_init, load

# LMM Table 6: (generator preset, classes, generator lr, batch, stage-1 iterations, total iterations, N of the
# teacher's Heun schedule, pairs); every column: RAdam (0.9, 0.999) / D RAdam 2e-3 (0.5, 0.9), EMA 0.999,
# lambda_lines 0.5.
EXPECTED = {
    "lmm_cifar10": ("edm_ddpmpp_cifar10", 10, 4e-4, 512, 80_000, 100_000, 18, 1_000_000),
    "lmm_cifar10:uncond": ("edm_ddpmpp_cifar10", 0, 4e-4, 512, 80_000, 100_000, 18, 1_000_000),
    "lmm_afhq64": ("edm_ddpmpp_afhqv2_64", 0, 1e-4, 512, 80_000, 105_000, 40, 2_000_000),
    "lmm_imagenet64": ("edm_adm_imagenet64", 1000, 8e-6, 512, 80_000, 110_000, 40, 4_000_000),
}


@pytest.mark.parametrize("name", EXPECTED)
def test_lmm_config_values_are_table_6(name):
    c = load(name)
    got = (
        c.model.preset,
        c.model.num_classes,
        c.optim.learning_rate,
        c.training.batch_size,
        c.lmm.adversarial_from,
        c.training.num_steps,
        c.lmm.num_steps,
        c.pairs.num_pairs,
    )
    assert got == EXPECTED[name]
    assert (c.optim.name, c.optim.b1, c.optim.b2, c.training.ema_decay) == ("radam", 0.9, 0.999, 0.999)
    assert (c.lmm.d_learning_rate, c.lmm.d_b1, c.lmm.d_b2, c.lmm.lines_weight) == (2e-3, 0.5, 0.9, 0.5)
    # App. A.4: the perceptual loss at native size in stage 1, at 224 in stage 2; D's inputs at 224
    assert (c.lmm.norm, c.lmm.lpips_resize, c.lmm.adv_lpips_resize, c.lmm.d_resize) == ("lpips", 0, 224, 224)
    # the teacher's pairs: Heun with N = 18 (CIFAR-10) or 40 (ImageNet, AFHQ), NFE 2N - 1
    assert (c.pairs.solver, c.pairs.nfe) == ("edm_heun", 2 * c.lmm.num_steps - 1)
    assert (c.loss.name, c.data.name, c.coupling.name, c.data.random_flip) == ("lines", "pairs", "independent", False)
    assert c.eval.solvers[:2] == ("lmm:0", "lmm:0,1") and "lmm:0,3,5" in c.eval.solvers
    assert ("lmm:0,1,3,5" in c.eval.solvers) == name.startswith("lmm_cifar10")  # NFE 4: Table 7 only


def fake_pairs(directory, data: str, side: int, classes: int) -> str:
    """Stand-in pairs of a teacher on ``data`` (shapes, labels and manifest as --mode=pairs writes them)."""
    rng = np.random.default_rng(0)
    n, shape = 16, (side, side, 3)

    def shard(a, b):
        x0 = rng.standard_normal((b - a,) + shape).astype(np.float32)
        out = (x0, np.tanh(x0))
        return out + (np.arange(a, b) % classes,) if classes else out

    manifest = {"num_pairs": n, "shard_size": n, "shape": list(shape), "data": {"name": data, "source": "normal"}}
    if classes:
        manifest["num_classes"] = classes
    pairs_io.write_pairs(str(directory), shard, manifest)
    return str(directory)


@pytest.mark.parametrize("name", ["lmm_cifar10", "lmm_imagenet64"])
def test_full_size_steps_of_both_stages_trace_on_mocked_data(name, mock_tfds, monkeypatch, tmp_path):
    """The full-size generator, LPIPS-VGG at the stage's size, the conditional projected discriminator on the
    frozen VGG16 at 224, and the whole train steps at a batch of 8: both stages for ImageNet-64, stage 1 for
    CIFAR-10 (its stage 2 is ImageNet-64's discriminator on inputs resized to the same 224)."""
    config = load(name)
    side = {"lmm_cifar10": 32, "lmm_imagenet64": 64}[name]
    teacher_data = {"lmm_cifar10": "cifar10", "lmm_imagenet64": "imagenet64"}[name]
    config.data.data_dir = fake_pairs(tmp_path / "pairs", teacher_data, side, config.model.num_classes)
    config.lmm.from_teacher = False
    config.training.batch_size = 8
    _abstract_init(monkeypatch)
    init_disc = lmm_stages.init_discriminator  # shapes only: VGG16 at 224 and the heads are traced, not run
    monkeypatch.setattr(
        lmm_stages,
        "init_discriminator",
        lambda cfg, key, x, frozen: jax.eval_shape(lambda k, xx, f: init_disc(cfg, k, xx, f), key, x, frozen),
    )
    exp = train.setup(config)
    assert exp.state.disc is not None and exp.frozen is not None
    ndev = jax.local_device_count()
    rep = jax.tree.map(lambda s: jax.ShapeDtypeStruct((ndev,) + tuple(s.shape), s.dtype), exp.state)
    for stage in (1, 2) if name == "lmm_imagenet64" else (1,):
        batch, _ = train.make_batch_fn(config, exp, real=exp.real if stage == 2 else None)(0)
        assert batch["x0"].shape == batch["x1"].shape == (ndev, 8 // ndev, side, side, 3)
        assert batch["label"].shape == (ndev, 8 // ndev)
        if stage == 2:  # the teacher's real images and their labels, for the conditional discriminator
            assert batch["real"].shape == batch["x1"].shape and batch["real_label"].shape == (ndev, 8 // ndev)
        step = train.pmapped_train_step(config, exp, stage=stage)
        _, metrics = jax.eval_shape(step, rep, batch, jax.random.PRNGKey(1))
        assert metrics["loss"].shape == (ndev,)
        assert ("lambda_adapt" in metrics) == (stage == 2)
    assert lmm_stages.last_layer_path(exp.state.params)[0] in ("dec_32x32_aux_conv", "out_conv")
