"""EDM models and class labels in the training step, the velocity the samplers integrate, and the sweep."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import quickstart
from flowjax import couplings, evaluate, train
from flowjax.train import experiment


def edm_config(sigma_data=0.5, **overrides):
    config = quickstart.get_config()
    config.data.name, config.data.source, config.data.num_train = "normal", "normal", 0
    config.coupling.name = "independent"
    config.loss.name, config.loss.sigma, config.loss.sigma_data = "edm", 0.0, sigma_data
    config.model.hidden, config.model.time_embed_dim = (8,), 4
    for key, value in overrides.items():
        section, field = key.split(".")
        config[section][field] = value
    return config


def gaussian_net(sigma_data):
    """EDM's raw network F that makes D = c_skip x + c_out F the exact denoiser of N(0, I) data, D = x / (1 + s^2),
    computed from what the network is given (c_in x and c_noise), so c_in, c_noise, c_skip and c_out all matter."""

    def apply_fn(params, u, c_noise, **kw):
        sigma = jnp.exp(4.0 * c_noise)[:, None]
        x = u * jnp.sqrt(sigma**2 + sigma_data**2)
        c_skip = sigma_data**2 / (sigma**2 + sigma_data**2)
        c_out = sigma * sigma_data / jnp.sqrt(sigma**2 + sigma_data**2)
        return (x / (1 + sigma**2) - c_skip * x) / c_out + 0.0 * params["w"]

    return apply_fn


def _hermite_mean(fn, p_mean, p_std, degree=80):
    """E fn(sigma) for ln sigma ~ N(p_mean, p_std^2), by Gauss-Hermite quadrature (exact to round-off here)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(degree)
    return float(np.sum(weights * fn(np.exp(p_mean + p_std * nodes))) / np.sqrt(2 * np.pi))


def test_edm_step_loss_is_the_closed_form_for_gaussian_data():
    """N(0, I) data and the exact denoiser: D - x1 ~ N(0, s^2 / (1 + s^2)) per feature, so the step's weighted
    loss has mean E_sigma[lambda(sigma) s^2 / (1 + s^2)] over EDM's log-normal sigma. Checked against quadrature
    within 5 Monte Carlo standard errors (also from quadrature); a wrong weight, preconditioning coefficient or
    sigma distribution moves it by many."""
    sd, batch, dim = 0.5, 16_384, 2
    config = edm_config(sd, **{"training.batch_size": batch})
    exp = train.setup(config)
    params = {"w": jnp.zeros(())}
    tx = optax.sgd(0.0)
    state = train.TrainState(jnp.zeros((), jnp.int32), params, params, tx.init(params))
    step = train.make_train_step(config, gaussian_net(sd), tx, exp.coupling, exp.noise_one)
    ndev = jax.device_count()
    x1 = jax.random.normal(jax.random.PRNGKey(1), (ndev, batch // ndev, dim))
    batch_in = {"x1": x1, "index": -np.ones((ndev, batch // ndev), np.int32)}
    _, metrics = jax.pmap(step, axis_name=train.AXIS, in_axes=(0, 0, None))(
        train.replicate(state), batch_in, jax.random.PRNGKey(2)
    )
    g = lambda s: (s**2 + sd**2) / (s * sd) ** 2 * s**2 / (1 + s**2)
    mean = _hermite_mean(g, config.loss.p_mean, config.loss.p_std)
    # per-example loss g(sigma) * mean of `dim` chi^2_1: E[L^2] = E[g^2] (1 + 2 / dim)
    var = _hermite_mean(lambda s: g(s) ** 2, config.loss.p_mean, config.loss.p_std) * (1 + 2 / dim) - mean**2
    assert abs(float(metrics["loss"][0]) - mean) < 5 * np.sqrt(var / batch)
    assert 5 * np.sqrt(var / batch) < 0.05 * mean  # the check is sharp enough to see a wrong weight


def test_edm_velocity_is_the_linear_paths_gaussian_flow():
    """An EDM denoiser read on flowjax's axis (t = 1 / (1 + sigma), y = x / (1 + sigma)) is a flow on the linear
    path; for independent N(0, I) noise and data that flow is v(y, t) = (2t - 1) y / (2t^2 - 2t + 1), a closed
    form that does not involve EDM's formulas."""
    config = edm_config(0.5)
    velocity_fn = experiment.make_velocity_fn(config, gaussian_net(0.5))
    t = jnp.linspace(0.02, 0.99, 9)
    y = jax.random.normal(jax.random.PRNGKey(3), (9, 3))
    expected = (2 * t - 1)[:, None] * y / (2 * t**2 - 2 * t + 1)[:, None]
    np.testing.assert_allclose(velocity_fn({"w": jnp.zeros(())}, y, t), expected, rtol=2e-5, atol=2e-5)


def test_labels_reach_the_network_with_their_examples():
    """x1_i = y_i (all features), noise 0, v = w[y]: the flow-matching gradient at w = 0 is dL/dw_c =
    -2 c n_c / B (n_c examples of class c), so one SGD step of rate 1 gives w_c = 2 c n_c / B exactly. Labels
    that missed the step, or that were not aligned with their x1 across devices, would change it."""
    config = quickstart.get_config()
    config.coupling.name, config.loss.sigma, config.model.num_classes = "independent", 0.0, 5
    batch, dim, ndev = 32, 3, jax.device_count()
    labels = np.asarray(jax.random.randint(jax.random.PRNGKey(4), (batch,), 0, 5), np.int32)
    x1 = np.repeat(labels[:, None].astype(np.float32), dim, axis=1)
    apply_fn = lambda params, x, t, y=None, **kw: jnp.broadcast_to(params["w"][y][:, None], x.shape)
    params = {"w": jnp.zeros((5,))}
    tx = optax.sgd(1.0)
    state = train.TrainState(jnp.zeros((), jnp.int32), params, params, tx.init(params))
    batch_in = {
        "x1": x1.reshape(ndev, -1, dim),
        "index": -np.ones((ndev, batch // ndev), np.int32),
        "label": labels.reshape(ndev, -1),
    }
    noise_one = lambda key: jnp.zeros((dim,))
    step = train.make_train_step(config, apply_fn, tx, couplings.make(config.coupling, axis_name=train.AXIS), noise_one)
    new, _ = jax.pmap(step, axis_name=train.AXIS, in_axes=(0, 0, None))(
        train.replicate(state), batch_in, jax.random.PRNGKey(0)
    )
    counts = np.bincount(labels, minlength=5)
    np.testing.assert_allclose(new.params["w"][0], 2 * np.arange(5) * counts / batch, rtol=1e-6)


@pytest.mark.parametrize("solver,nfe", [("dopri5", None), ("rk4", 32)])
def test_sampler_conditions_on_labels(solver, nfe):
    """v(x, t, y) = y - x carries x0 to y + (x0 - y) / e at t = 1 (closed form), per example's label."""
    velocity_fn = lambda params, x, t, y: y[:, None].astype(x.dtype) - x
    x0 = jax.random.normal(jax.random.PRNGKey(5), (6, 2))
    labels = jnp.arange(6) % 3
    x1, _ = evaluate.sample(velocity_fn, None, x0, solver, nfe, labels=labels)
    c = labels[:, None].astype(x0.dtype)
    np.testing.assert_allclose(x1, c + (x0 - c) / np.e, rtol=1e-4, atol=1e-4)


def test_conditional_training_refuses_couplings_that_mix_classes():
    config = quickstart.get_config()
    config.model.num_classes = 10
    config.coupling.name = "exact_ot"
    with pytest.raises(ValueError, match="model.num_classes=10.*coupling.name='exact_ot'"):
        experiment.validate(config)


def test_edm_loss_refuses_the_flow_matching_perturbation():
    with pytest.raises(ValueError, match="loss.sigma"):
        experiment.validate(edm_config(**{"loss.sigma": 0.1}))


def test_class_accuracy_of_digits_follows_the_labels():
    """The digits classifier puts most test images in their own class, and almost none in the next one: the
    metric of conditional samples separates a model that follows its labels from one that ignores them."""
    from flowjax.data import digits
    from flowjax.metrics import fd_digits

    images, labels = digits.load("test")
    assert fd_digits.class_accuracy(images, labels) > 0.9
    assert fd_digits.class_accuracy(images, (labels + 1) % 10) < 0.1


def test_edm_digits_trains_and_evaluates_conditionally(tmp_path):
    """configs/edm_digits.py (its UNet cut to one level) through train and the sweep: the digit labels reach the
    step and the conditional samples, which get FD-digits and the class accuracy at EDM's Heun and at Euler."""
    from ml_collections import config_flags

    config = config_flags.config_flags._LoadConfigModule("config", "configs/edm_digits.py").get_config()
    config.model.channel_mults, config.model.attention_resolutions = (1,), (8,)
    config.model.base_channels, config.model.head_channels = 16, 16
    config.training.num_steps, config.training.batch_size, config.training.checkpoint_every = 4, 32, 4
    config.eval.solvers, config.eval.nfe, config.eval.path_nfe = ("edm_heun", "euler"), (3,), 4
    exp = train.setup(config)
    batch, _ = train.make_batch_fn(config, exp)(0)
    assert batch["label"].shape == batch["x1"].shape[:2]
    state = train.train(config, str(tmp_path), exp)
    rows = evaluate.evaluate(config, str(tmp_path), exp.velocity_fn, state.ema_params, 4, exp.noise_one)
    assert [(r["solver"], r["nfe"]) for r in rows] == [("edm_heun", 3), ("euler", 3), ("euler", 4)]
    for r in rows:
        assert np.isfinite(r["fd_digits"]) and 0.0 <= r["class_accuracy"] <= 1.0


def test_a_missing_or_wrong_weight_file_is_refused_before_anything_is_written(tmp_path):
    """model.weights is checked when the config is set up, before the workdir is created or locked."""
    import main

    config = edm_config()
    config.model.weights = str(tmp_path / "missing.npz")
    with pytest.raises(FileNotFoundError, match="model.weights=.*convert_edm_weights"):
        main.run(config, str(tmp_path / "run"), "pairs", "x")
    np.savez(tmp_path / "other.npz", w=np.zeros(3))  # not a converted network: it has no record beside it
    config.model.weights = str(tmp_path / "other.npz")
    with pytest.raises(ValueError, match="model.weights=.*no record"):
        main.run(config, str(tmp_path / "run"), "train", "x")
    assert not os.path.exists(tmp_path / "run")
