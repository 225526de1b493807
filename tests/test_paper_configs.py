"""Paper-scale image configs: their values are the papers' tables; each builds at full size and its
whole train step traces (shapes, on mocked TFDS data); every config takes real steps with its UNet shrunk.

Compiling a full-size UNet step on a CPU is too slow for a test, so the full-size step is abstractly
evaluated (`jax.eval_shape`: the whole pmapped step is traced, nothing runs), and real steps run
with the configs' UNets shrunk (8 channels, 1 level, 1 block) at 8 px on the mocked data, once for each
distinct shrunk network and coupling: the ImageNet configs' shrunk steps would repeat CIFAR-10's (same
layout, same coupling; their data path is in the full-size trace).
"""

import functools
import os

import flax
import jax
import numpy as np
import pytest
from ml_collections import config_flags

from flowjax import train
from flowjax.data import images, stream
from flowjax.train import experiment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAPER = (
    "rf_cifar10",
    "loom_cifar10",
    "loom_imagenet32",
    "loom_imagenet64",
    "dansm_cifar10:rf",
    "dansm_cifar10:dm",
    "dansm_imagenet64",
)


def load(name):
    path, _, arg = name.partition(":")
    module = config_flags.config_flags._LoadConfigModule("config", os.path.join(ROOT, "configs", f"{path}.py"))
    return module.get_config(arg) if arg else module.get_config()


# (data, preset, coupling, batch, steps, lr, warm-up, EMA, caches, match size) as the papers' tables say
EXPECTED = {
    # LOOM-CFM Table 4: 1000 epochs = 391k its, 200 epochs = 500k, 100 epochs = 1334k
    "loom_cifar10": ("cifar10", "adm_cifar10", "loom", 128, 391_000, 2e-4, 5_000, 0.9999, 4, 0),
    "loom_imagenet32": ("imagenet32", "adm_imagenet32", "loom", 512, 500_000, 1e-4, 20_000, 0.9999, 1, 0),
    "loom_imagenet64": ("imagenet64", "adm_imagenet64", "loom", 96, 1_334_000, 1e-4, 20_000, 0.9999, 1, 0),
    # DANSM Table 1 (ms 10,000, 500 epochs) and Table 4 (ms 1,000, 1000 epochs); batch 250 chosen
    "dansm_cifar10:rf": ("cifar10", "ddpmpp_cifar10", "dansm", 250, 100_000, 1e-4, 0, 0.999, 1, 10_000),
    "dansm_cifar10:dm": ("cifar10", "ddpm_cifar10", "dansm", 250, 200_000, 1e-4, 0, 0.999, 1, 1_000),
    "dansm_imagenet64": ("imagenet64", "ddpmpp_cifar10", "dansm", 250, 1_024_800, 1e-4, 0, 0.999, 1, 1_000),
    # rectified flow's released config (score_sde CIFAR-10 defaults)
    "rf_cifar10": ("cifar10", "ddpmpp_cifar10", "independent", 128, 1_300_000, 2e-4, 5_000, 0.999999, 1, 0),
}


@pytest.mark.parametrize("name", PAPER)
def test_config_values_are_the_papers(name):
    c = load(name)
    got = (
        c.data.name,
        c.model.preset,
        c.coupling.name,
        c.training.batch_size,
        c.training.num_steps,
        c.optim.learning_rate,
        c.optim.warmup_steps,
        c.training.ema_decay,
        c.coupling.num_caches,
        c.coupling.match_size,
    )
    assert got == EXPECTED[name]
    assert c.optim.grad_clip == 1.0 and c.optim.schedule == "constant" and c.data.random_flip
    assert c.loss.sigma == (1e-7 if name.startswith("loom") else 0.0)  # LOOM Table 4: CFM sigma 1e-7
    assert c.data.flip_as_example == name.startswith("loom")
    if name.startswith("loom"):  # LOOM App. B's c_ij and the released code's Hungarian cost: the plain distance
        assert c.coupling.cost == "euclidean"
        # the released code all-gathers the GPUs' minibatches and solves one assignment of the global batch
        assert c.coupling.scope == "global"
    dm = name.endswith(":dm")
    assert (c.loss.name, c.loss.interpolant) == (("epsilon", "vp_linear") if dm else ("flow_matching", "linear"))
    assert c.eval.num_samples == 50_000


def test_dansm_cifar10_rejects_unknown_variant():
    with pytest.raises(ValueError, match=":rf .* :dm"):
        load("dansm_cifar10:ve")


def _abstract_init(monkeypatch):
    original = experiment.init_state
    monkeypatch.setattr(
        experiment,
        "init_state",
        lambda model, tx, x, key, conditional=False: jax.eval_shape(
            functools.partial(original, model, tx, conditional=conditional), x, key
        ),
    )


# One trace per distinct (full-size network, coupling, data size): loom_imagenet32 is ADM with LOOM at 32 px as
# loom_cifar10, and dansm_cifar10:rf is rf_cifar10's DDPM++ with dansm_imagenet64's pools.
TRACED = tuple(n for n in PAPER if n not in ("loom_imagenet32", "dansm_cifar10:rf"))


@pytest.mark.parametrize("name", TRACED)
def test_full_size_step_traces_on_mocked_data(name, mock_tfds, monkeypatch):
    """The full-size model and the config's whole train step (coupling, loss, update) at a reduced batch."""
    config = load(name)
    config.training.batch_size = 8
    # pools are matched on the host before the step, whatever their size; 12 mocked images make a pool here
    config.coupling.match_size = min(config.coupling.match_size, 12)
    _abstract_init(monkeypatch)
    exp = train.setup(config)
    side = {"cifar10": 32, "imagenet32": 32, "imagenet64": 64}[config.data.name]
    params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(exp.state.params))
    assert params > 30e6  # paper-size networks (35.7M to 186.6M, benchmarks/unet_params.py)
    batch, _ = train.make_batch_fn(config, exp)(0)
    ndev = jax.local_device_count()
    assert batch["x1"].shape == (ndev, 8 // ndev, side, side, 3)
    rep = jax.tree.map(lambda s: jax.ShapeDtypeStruct((ndev,) + tuple(s.shape), s.dtype), exp.state)
    new_state, metrics = jax.eval_shape(train.pmapped_train_step(config, exp), rep, batch, jax.random.PRNGKey(1))
    assert jax.tree.map(lambda s: s.shape, new_state.params) == jax.tree.map(lambda s: s.shape, rep.params)
    assert metrics["loss"].shape == (ndev,)
    if config.coupling.name == "loom":  # one seed row per example and flip variant (LOOM code: flips are examples)
        assert exp.state.coupling_state["seeds"].shape == (2 * 12, config.coupling.num_caches)


def _shrink(config):
    """The config at batch 8 with its UNet (same layout and blocks) at one level of 8 channels on 8 px."""
    config.training.batch_size, config.data.image_size = 8, 8
    config.model.base_channels, config.model.channel_mults, config.model.num_res_blocks = 8, (1,), 1
    config.model.head_channels, config.model.attention_resolutions = 8, (8,)
    return config


def test_loom_cifar10_real_steps_with_flips_as_examples(mock_tfds):
    """Two real steps of the LOOM CIFAR-10 config on mocked CIFAR-10: the flipped images are examples of
    their own, and only the seeds of the examples of the batches are re-matched."""
    config = _shrink(load("loom_cifar10"))
    exp = train.setup(config)
    batch_fn, p_step = train.make_batch_fn(config, exp), train.pmapped_train_step(config, exp)
    n = exp.dataset.examples_per_epoch
    batches = [batch_fn(step)[0] for step in range(2)]
    batch = batches[1]
    index = batch["index"].reshape(-1)
    key = jax.random.fold_in(jax.random.PRNGKey(config.training.seed), images.DATA_KEY)
    np.testing.assert_array_equal(index % n, stream.batch_indices(key, n, 8, 1))  # the stream's order
    flipped = index >= n
    np.testing.assert_array_equal(flipped, images.flip_mask(config.training.seed, 1, 8))
    originals = exp.dataset.read(index % n)
    want = np.where(flipped[:, None, None, None], originals[:, :, ::-1], originals)
    np.testing.assert_array_equal(batch["x1"].reshape(want.shape), want)

    state = train.replicate(exp.state)
    for step in range(2):
        state, metrics = p_step(state, batches[step], jax.random.PRNGKey(step))
        assert np.isfinite(float(metrics["loss"][0]))
    state = flax.jax_utils.unreplicate(state)
    seeds, before = np.asarray(state.coupling_state["seeds"]), np.asarray(exp.state.coupling_state["seeds"])
    assert seeds.shape == (2 * n, 4)
    assert sorted(seeds.ravel()) == sorted(before.ravel())  # LOOM permutes seeds, never makes new ones
    touched = {int(i) for b in batches for i in b["index"].ravel()}
    untouched = sorted(set(range(2 * n)) - touched)
    np.testing.assert_array_equal(seeds[untouched], before[untouched])


def test_dansm_cifar10_dm_real_step_on_pools(mock_tfds):
    """A real step of the DANSM diffusion-model config: pools of images matched to noise by the greedy
    matcher (cost never above the unmatched pool's), epsilon loss summed over pixels."""
    config = _shrink(load("dansm_cifar10:dm"))
    config.coupling.match_size = 12
    exp = train.setup(config)
    batch_fn = train.make_batch_fn(config, exp)
    batch, info = batch_fn(0)
    assert info["coupling/cost_after"] <= info["coupling/cost_before"]
    plain = images.step_reader(images.source_from_config(config.data), 8, config.training.seed, flip=True)(0)
    np.testing.assert_array_equal(batch["x1"].reshape(plain["x1"].shape), plain["x1"])  # same data as without pools
    again, _ = train.make_batch_fn(config, exp)(0)  # pools are a function of the step: restart gives the same pairs
    np.testing.assert_array_equal(again["x0"], batch["x0"])
    _, metrics = train.pmapped_train_step(config, exp)(train.replicate(exp.state), batch, jax.random.PRNGKey(1))
    # summed over 8 x 8 x 3 features: an untrained (zero-output) network's loss is E||eps||^2 = 192 (sd 20/sqrt(8))
    assert 160 < float(metrics["loss"][0]) < 225


# loom_cifar10 and dansm_cifar10:dm have tests of their own above; shrunk, loom_imagenet32/64 are loom_cifar10's
# ADM with its coupling, and dansm_cifar10:rf and dansm_imagenet64 are rf_cifar10's DDPM++ with the pools of
# dansm_cifar10:dm's test.
@pytest.mark.parametrize("name", ["rf_cifar10"])
def test_shrunk_config_takes_a_real_step(name, mock_tfds):
    """One real step of the other paper configs' networks and couplings, UNet shrunk, on mocked data. The fresh UNet
    outputs exactly 0, so the first loss is the mean squared target |x1 - x0|^2 / D, about mean(x1^2) + 1 for
    independent noise (sd of the estimate ~0.04 over 8 x 192 values), less when a coupling matches the pairs."""
    config = _shrink(load(name))
    exp = train.setup(config)
    batch, _ = train.make_batch_fn(config, exp)(0)
    state, metrics = train.pmapped_train_step(config, exp)(train.replicate(exp.state), batch, jax.random.PRNGKey(1))
    loss, expected = float(metrics["loss"][0]), float(np.mean(np.square(batch["x1"]))) + 1.0
    if config.coupling.name == "independent":
        assert abs(loss - expected) < 0.15
    else:
        assert 0.5 < loss < expected + 0.15
    assert 0.0 < float(metrics["grad_norm"][0]) < np.inf  # (warm-up makes the first learning rate 0)
    assert int(state.step[0]) == 1


REFLOW = {  # (teacher config, steps, batch, lr, warm-up, EMA, time sampler, sigma)
    "rf_cifar10_reflow": ("rf_cifar10", 1_300_000, 128, 2e-4, 5_000, 0.9999, "uniform", 0.0),  # RF code's reflow_train
    "rf_cifar10_distill": ("rf_cifar10", 1_300_000, 128, 2e-4, 5_000, 0.9999, "zero", 0.0),  # its distill_k=1 ("t0")
    "loom_cifar10_reflow": ("loom_cifar10", 781_200, 256, 2e-5, 5_000, 0.9999, "uniform", 1e-7),  # LOOM reflow yaml
}


@pytest.mark.parametrize("name", REFLOW)
def test_reflow_configs_are_the_codes(name):
    """Values of the released reflow/distillation configs; the student keeps the teacher's model."""
    teacher_name, steps, batch, lr, warmup, ema, sampler, sigma = REFLOW[name]
    c, teacher = load(name), load(teacher_name)
    assert (c.data.name, c.coupling.name, c.data.random_flip, c.data.flip_as_example) == (
        "pairs",
        "independent",
        False,
        False,
    )
    assert (
        c.training.num_steps,
        c.training.batch_size,
        c.optim.learning_rate,
        c.optim.warmup_steps,
        c.training.ema_decay,
        c.loss.time_sampler,
        c.loss.sigma,
    ) == (steps, batch, lr, warmup, ema, sampler, sigma)
    assert c.model.to_dict() == teacher.model.to_dict() and c.optim.grad_clip == 1.0
    assert teacher.pairs.solver == "dopri5" and teacher.pairs.num_pairs == (
        4_000_000 if teacher_name == "rf_cifar10" else 1_000_000
    )


def test_reflow_config_trains_on_image_pairs(tmp_path):
    """A real step of LOOM + reflow (UNet shrunk) on image-shaped pairs read by index: the fresh UNet outputs
    0, so the first loss is exactly the mean of (x1 - x0)^2 of the served pairs (the linear path's target at
    any t), which are the stored rows. (The pairs path does not depend on the network: one config suffices.)"""
    from flowjax.data import pairs as pairs_io

    rng = np.random.default_rng(0)
    x0, x1 = rng.standard_normal((20, 8, 8, 3)).astype(np.float32), rng.uniform(-1, 1, (20, 8, 8, 3)).astype(np.float32)
    d = str(tmp_path / "pairs")
    pairs_io.write_pairs(
        d,
        lambda a, b: (x0[a:b], x1[a:b]),
        {
            "num_pairs": 20,
            "shard_size": 6,
            "shape": [8, 8, 3],
            "solver": "dopri5",
            "nfe": None,
            "seed": 0,
            "teacher": {},
            "data": load("loom_cifar10").data.to_dict(),
        },
    )
    config = _shrink(load("loom_cifar10_reflow"))
    config.data.data_dir = d
    exp = train.setup(config)
    batch, _ = train.make_batch_fn(config, exp)(0)
    index = np.asarray(batch["index"]).reshape(-1)
    np.testing.assert_array_equal(np.asarray(batch["x0"]).reshape(8, 8, 8, 3), x0[index])
    np.testing.assert_array_equal(np.asarray(batch["x1"]).reshape(8, 8, 8, 3), x1[index])
    state, metrics = train.pmapped_train_step(config, exp)(train.replicate(exp.state), batch, jax.random.PRNGKey(1))
    np.testing.assert_allclose(float(metrics["loss"][0]), np.mean((x1[index] - x0[index]) ** 2), rtol=1e-4)
    assert int(state.step[0]) == 1
