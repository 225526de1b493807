"""Lines Matching Models in the train step and the run: the lines loss by an exact gradient, SOT's levels, the
sweep's LMM samplers, and the refusals that name what is missing before anything is written."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import quickstart
from flowjax import edm, evaluate, lmm, train
from flowjax.data import pairs as pairs_io
from flowjax.train import experiment

A = 0.6  # the toy teacher: x1 = A x0


def lines_config(**overrides):
    config = quickstart.get_config()
    config.data.name, config.data.source = "pairs", "normal"
    config.coupling.name = "independent"
    config.loss.name, config.loss.sigma, config.loss.sigma_data = "lines", 0.0, 0.5
    for key, value in overrides.items():
        section, field = key.split(".")
        config[section][field] = value
    return config


def line_net(sigma_data, offset):
    """EDM's raw network F for which D = c_skip x + c_out F is the exact lines denoiser of the teacher x1 = A x0,
    A x / (A + sigma), plus params["w"] * offset(sigma); computed from what the network is given (c_in x and
    c_noise = ln(sigma) / 4), so the preconditioning and the sigma fed to the network all matter."""

    def apply_fn(params, u, c_noise, **kw):
        sigma = jnp.exp(4.0 * c_noise)[:, None]
        x = u * jnp.sqrt(sigma**2 + sigma_data**2)
        c_skip = sigma_data**2 / (sigma**2 + sigma_data**2)
        c_out = sigma * sigma_data / jnp.sqrt(sigma**2 + sigma_data**2)
        target = A * x / (A + sigma) + params["w"] * offset(sigma)
        return (target - c_skip * x) / c_out

    return apply_fn


def run_step(config, apply_fn, w, lr=0.0, batch=64, dim=3):
    params = {"w": jnp.asarray(w, jnp.float32)}
    tx = optax.sgd(lr)
    state = train.TrainState(jnp.zeros((), jnp.int32), params, params, tx.init(params))
    coupling = train.experiment.couplings.make(config.coupling, axis_name=train.AXIS)
    step = train.make_train_step(config, apply_fn, tx, coupling, None, noise_in_batch=True)
    ndev = jax.device_count()
    x0 = jax.random.normal(jax.random.PRNGKey(1), (ndev, batch // ndev, dim))
    data = {"x0": x0, "x1": A * x0, "index": np.zeros((ndev, batch // ndev), np.int32)}
    new, metrics = jax.pmap(step, axis_name=train.AXIS, in_axes=(0, 0, None))(
        train.replicate(state), data, jax.random.PRNGKey(2)
    )
    return float(metrics["loss"][0]), float(new.params["w"][0])


@pytest.mark.parametrize("distribution", ["karras", "lognormal", "loguniform"])
def test_step_lines_loss_and_gradient_are_exact(distribution):
    """N_theta = the exact lines denoiser + w: the l2sq lines loss is lambda_lines w^2 at every sigma, whatever its
    distribution, and one SGD step moves w by -lr * 2 lambda_lines w (the gradient averaged over the devices)."""
    config = lines_config(**{"lmm.sigma": distribution, "lmm.norm": "l2sq", "lmm.lines_weight": 0.5})
    w, lr = 0.3, 0.1
    loss, new_w = run_step(config, line_net(0.5, lambda s: 1.0), w, lr)
    np.testing.assert_allclose(loss, 0.5 * w**2, rtol=1e-4)
    np.testing.assert_allclose(new_w, w - lr * 2 * 0.5 * w, rtol=1e-4)
    # l2 (RMS error): |w| per example, gradient sign(w) lambda_lines
    config.lmm.norm = "l2"
    loss, new_w = run_step(config, line_net(0.5, lambda s: 1.0), w, lr)
    np.testing.assert_allclose(loss, 0.5 * w, rtol=1e-4)
    np.testing.assert_allclose(new_w, w - lr * 0.5, rtol=1e-4)


def test_edm_weighting_scales_each_example_by_lambda():
    """lmm.weighting='edm': an error w at sigma = 80 (SOT at index 0) costs lambda(80) w^2, lambda EDM's weight
    (s^2 + sd^2) / (s sd)^2 computed here by hand."""
    sd, w = 0.5, 0.3
    config = lines_config(**{"lmm.sot_steps": (0,), "lmm.norm": "l2sq", "lmm.weighting": "edm"})
    loss, _ = run_step(config, line_net(sd, lambda s: 1.0), w)
    lam = (80.0**2 + sd**2) / (80.0 * sd) ** 2
    np.testing.assert_allclose(loss, 0.5 * lam * w**2, rtol=1e-4)


def test_sot_trains_at_the_sampling_levels_only():
    """An error w (sigma - 80) vanishes only if every training sigma is 80: SOT at (0,) trains there alone, at (1,)
    at 57.586 (LMM Sec. 3.6's CIFAR-10 levels), and the whole Karras schedule visits other levels."""
    offset = lambda s: s - 80.0
    for steps, want in (((0,), 0.0), ((1,), (57.58598 - 80.0) ** 2)):
        config = lines_config(**{"lmm.sot_steps": steps, "lmm.norm": "l2sq", "lmm.lines_weight": 1.0})
        loss, _ = run_step(config, line_net(0.5, offset), 1.0)
        np.testing.assert_allclose(loss, want, rtol=1e-3, atol=1e-6)
    loss, _ = run_step(lines_config(**{"lmm.norm": "l2sq"}), line_net(0.5, offset), 1.0)
    assert loss > 10.0


def write_fake_pairs(directory, n=64, dim=2, teacher=None):
    """A pairs directory of the teacher x1 = A x0, written through the real writer."""
    x0 = np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32)
    manifest = {"num_pairs": n, "shard_size": 32, "shape": [dim], "data": teacher or {"name": "normal"}}
    pairs_io.write_pairs(str(directory), lambda a, b: (x0[a:b], A * x0[a:b]), manifest)
    return str(directory)


def test_missing_inputs_are_named_with_the_commands(tmp_path):
    """LMM without pairs or teacher: one message naming both, with the teacher -> pairs -> LMM commands."""
    import configs.lmm_imagenet64 as cfg

    config = cfg.get_config()
    with pytest.raises(ValueError) as err:
        train.validate_lines(config)
    msg = str(err.value)
    assert "data.data_dir is empty" in msg and "training.init_from or model.weights" in msg
    assert "configs/edm_imagenet64.py" in msg and "--mode=pairs" in msg and "configs/lmm_imagenet64.py" in msg
    config.data.data_dir = str(tmp_path / "nowhere")
    config.training.init_from = str(tmp_path / "no_teacher")
    with pytest.raises(ValueError, match="holds no pairs manifest.*init_from=.*has no checkpoints"):
        train.validate_lines(config)
    config.data.name = "cifar10"
    with pytest.raises(ValueError, match="data.name=pairs"):
        train.validate_lines(config)


def test_a_missing_teacher_stops_only_a_fresh_start(tmp_path):
    """The teacher's weights are read when a run starts, not when it resumes or is evaluated: with the pairs there
    and the teacher gone, the config still builds, and training a fresh workdir names the missing teacher."""
    config = lines_config(**{"data.data_dir": write_fake_pairs(tmp_path / "pairs"), "training.batch_size": 16})
    config.training.init_from = str(tmp_path / "moved_teacher")
    exp = train.setup(config)  # what a resumed run and --mode=eval build first
    assert exp.state.params is not None
    with pytest.raises(ValueError, match="init_from=.*has no checkpoints"):
        train.train(config, str(tmp_path / "fresh"))


def test_main_refuses_lmm_without_inputs_and_writes_nothing(tmp_path):
    import main

    config = __import__("configs.lmm_imagenet64", fromlist=["x"]).get_config()
    workdir = tmp_path / "lmm"
    with pytest.raises(ValueError, match="Nothing was written"):
        main.run(config, str(workdir), "train", "lmm_imagenet64")
    assert not workdir.exists()


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("lmm.sigma", "uniform", "lmm.sigma"),
        ("lmm.norm", "l1", "lmm.norm"),
        ("lmm.sot_steps", (0, 18), "lmm.sot_steps"),
        ("lmm.lines_weight", 0.0, "lines_weight"),
        ("lmm.weighting", "snr", "lmm.weighting"),
    ],
)
def test_bad_lmm_fields_are_refused(tmp_path, field, value, match):
    config = lines_config(**{"data.data_dir": write_fake_pairs(tmp_path / "pairs"), "lmm.from_teacher": False})
    section, name = field.split(".")
    config[section][name] = value
    with pytest.raises(ValueError, match=match):
        experiment.validate(config)


def test_sot_needs_the_karras_distribution(tmp_path):
    config = lines_config(**{"data.data_dir": write_fake_pairs(tmp_path / "pairs"), "lmm.from_teacher": False})
    config.lmm.sot_steps, config.lmm.sigma = (0,), "lognormal"
    with pytest.raises(ValueError, match="lmm.sigma='karras'"):
        experiment.validate(config)


def test_init_from_a_velocity_teacher_is_refused(tmp_path):
    teacher = tmp_path / "fm_teacher"
    (teacher / "checkpoints").mkdir(parents=True)
    (teacher / "config.json").write_text(json.dumps({"loss": {"name": "flow_matching"}}))
    config = lines_config()
    exp_state = train.TrainState(jnp.zeros((), jnp.int32), {"w": jnp.zeros(())}, {"w": jnp.zeros(())}, None)
    with pytest.raises(ValueError, match="predicts 'velocity'.*'edm'"):
        train.init_from_run(exp_state, str(teacher), train.PREDICTION[config.loss.name])


def test_sweep_runs_the_lmm_samplers_with_per_sample_keys():
    """The sweep's lmm:<indices> rows use the evaluation's per-sample keys (its noise keys): the row equals
    lmm.sample on the model's denoiser with those keys, and the deterministic lmm_euler row the line step."""
    config = quickstart.get_config()
    config.loss.name, config.loss.sigma_data = "edm", 0.5
    config.eval.solvers = ("lmm:0,1", "lmm_euler:0,3,5")
    config.lmm.num_steps = 18
    s2 = 0.3
    velocity_fn = lambda params, x, t, y=None: edm.velocity(
        lambda z, s: s2 * z / (s2 + jnp.square(s)[:, None]), config.eval.sigma_min, config.eval.sigma_max
    )(x, t)
    n = 6
    keys = evaluate.eval_keys(config.eval.seed, n)
    x0 = jax.vmap(lambda k: jax.random.normal(k, (2,)))(keys)
    target = jnp.zeros((n, 2))
    rows, samples = evaluate.sweep(config, velocity_fn, None, x0, target)
    assert [(r["solver"], r["nfe"]) for r in rows] == [("lmm:0,1", 2), ("lmm_euler:0,3,5", 3)]
    den = lambda z, s: s2 * z / (s2 + jnp.square(s)[:, None])
    want = lmm.sample(den, x0, lmm.step_sigmas((0, 1), 18), keys)
    np.testing.assert_allclose(samples["lmm:0,1 NFE=2"], want, rtol=2e-4, atol=1e-5)
    np.testing.assert_allclose(
        samples["lmm_euler:0,3,5 NFE=3"], lmm.euler(den, x0, lmm.step_sigmas((0, 3, 5), 18)), rtol=2e-4, atol=1e-5
    )
    config.eval.solvers = ("lmm:0,18",)
    with pytest.raises(ValueError, match="18-level"):
        evaluate.validate(config)


def test_lines_run_end_to_end_on_toy_pairs(tmp_path):
    """A tiny LMM run on stored toy pairs: trains from scratch (lmm.from_teacher=False), checkpoints, evaluates with
    the LMM samplers; the lines loss on the pairs falls well below the untrained network's."""
    from flowjax.train import loop

    directory = write_fake_pairs(tmp_path / "pairs", n=256)
    config = lines_config(
        **{
            "data.data_dir": directory,
            "lmm.from_teacher": False,
            "lmm.norm": "l2sq",
            "training.num_steps": 300,
            "training.batch_size": 64,
            "training.log_every": 100,
            "training.checkpoint_every": 300,
            "optim.name": "radam",
            "optim.learning_rate": 3e-3,
            "model.hidden": (32, 32),
            "eval.solvers": ("lmm:0", "lmm:0,1"),
            "eval.nfe": (),
        }
    )
    exp = train.setup(config)
    state = loop.train(config, str(tmp_path / "run"), exp)
    den = edm.denoiser(lambda p, x, t: exp.apply_fn(p, x, t), 0.5)
    src = pairs_io.open_pairs(directory)
    x0, x1 = (jnp.asarray(a) for a in src.read(np.arange(256)))
    sig = lmm.sample_sigma(jax.random.PRNGKey(9), 256, num_steps=18)
    before, _ = lmm.lines_loss(den, exp.state.params, x0, x1, sig, distance_fn=lmm.distance("l2sq"))
    after, _ = lmm.lines_loss(den, state.ema_params, x0, x1, sig, distance_fn=lmm.distance("l2sq"))
    assert float(after) < 0.2 * float(before)
    assert os.path.isdir(tmp_path / "run" / "checkpoints")
