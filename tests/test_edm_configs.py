"""The EDM teacher configs: EDM's released training options, a full-size traced step on mocked data with labels."""

import jax
import numpy as np
import pytest

from flowjax import train
from tests.test_paper_configs import _abstract_init, load

# (data, preset, classes, batch, steps, lr, warm-up steps, EMA decay, dropout, pairs NFE) of EDM's released
# commands: CIFAR-10 `--cond=1 --arch=ddpmpp` (train.py defaults), ImageNet-64 `--cond=1 --arch=adm
# --duration=2500 --batch=4096 --lr=1e-4 --ema=50 --dropout=0.10 --augment=0`; lr ramp-up 10 Mimg, EMA
# half-life in Mimg converted to a per-step decay 0.5^(batch / half-life).
CIFAR = (512, 390_625, 1e-3, 19_531, 0.5 ** (512 / 5e5), 0.13, 35)
EXPECTED = {
    "edm_cifar10": ("cifar10", "edm_ddpmpp_cifar10", 10, *CIFAR),
    "edm_cifar10:uncond": ("cifar10", "edm_ddpmpp_cifar10", 0, *CIFAR),
    "edm_imagenet64": (
        "imagenet64",
        "edm_adm_imagenet64",
        1000,
        4096,
        610_352,
        1e-4,
        2_441,
        0.5 ** (4096 / 5e7),
        0.1,
        79,
    ),
    # AFHQv2 64x64 `--cond=0 --arch=ddpmpp --batch=256 --cres=1,2,2,2 --lr=2e-4 --dropout=0.25 --augment=0.15`
    "edm_afhq64": ("folder", "edm_ddpmpp_afhqv2_64", 0, 256, 781_250, 2e-4, 39_063, 0.5 ** (256 / 5e5), 0.25, 79),
}


@pytest.mark.parametrize("name", EXPECTED)
def test_edm_config_values_are_the_released_options(name):
    c = load(name)
    got = (
        c.data.name,
        c.model.preset,
        c.model.num_classes,
        c.training.batch_size,
        c.training.num_steps,
        c.optim.learning_rate,
        c.optim.warmup_steps,
        c.training.ema_decay,
        c.model.dropout,
        c.pairs.nfe,
    )
    assert got == EXPECTED[name]
    # 10 Mimg of ramp-up and the duration in images, as whole steps
    assert abs(c.optim.warmup_steps - 10e6 / c.training.batch_size) < 1
    assert (c.loss.name, c.loss.sigma_data, c.loss.p_mean, c.loss.p_std) == ("edm", 0.5, -1.2, 1.2)
    assert (c.loss.feature_reduction, c.optim.grad_clip, c.data.random_flip) == ("sum", 0.0, False)
    assert (c.eval.sigma_min, c.eval.sigma_max, c.eval.rho, c.pairs.solver) == (0.002, 80.0, 7.0, "edm_heun")
    assert c.coupling.name == "independent" and c.eval.fid_split == "train"


def test_edm_cifar10_rejects_unknown_variant():
    with pytest.raises(ValueError, match="cond.*uncond"):
        load("edm_cifar10:ve")


@pytest.mark.parametrize("name", ["edm_cifar10", "edm_imagenet64"])
def test_edm_full_size_step_traces_with_labels(name, mock_tfds, monkeypatch):
    """EDM's network at full size, the class labels of the mocked TFDS data in the batch, the EDM loss step."""
    config = load(name)
    config.training.batch_size = 8
    _abstract_init(monkeypatch)
    exp = train.setup(config)
    params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(exp.state.params))
    assert params == {"edm_cifar10": 55_735_299, "edm_imagenet64": 295_899_267}[name]  # benchmarks/unet_params.py
    batch, _ = train.make_batch_fn(config, exp)(0)
    ndev = jax.local_device_count()
    assert batch["label"].shape == (ndev, 8 // ndev) and batch["label"].dtype == np.int32
    assert 0 <= batch["label"].min() and batch["label"].max() < config.model.num_classes
    rep = jax.tree.map(lambda s: jax.ShapeDtypeStruct((ndev,) + tuple(s.shape), s.dtype), exp.state)
    new_state, metrics = jax.eval_shape(train.pmapped_train_step(config, exp), rep, batch, jax.random.PRNGKey(1))
    assert metrics["loss"].shape == (ndev,)
