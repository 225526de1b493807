"""The curvature paper's learned encoder coupling (Lee, Kim & Ye 2023, Eq. 11): the KL closed form against Monte
Carlo, the reparameterisation, beta = None as the independent coupling bit for bit, the encoder at init pairing
exactly as the independent coupling, and the joint train step against the loss written out by hand."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import quickstart
from flowjax import couplings, models, train
from flowjax.couplings import encoder
from flowjax.data import toy2d
from flowjax.keys import per_index_keys


def tiny_config(beta=10.0, **overrides):
    config = quickstart.get_config()
    config.model.hidden = (16, 16)
    config.model.time_embed_dim = 8
    config.data.source = "normal"
    config.coupling.name = "encoder"
    config.coupling.beta = beta
    config.coupling.encoder_hidden = (8,)
    config.coupling.encoder_time_embed_dim = 4
    config.training.batch_size = 16
    config.training.num_steps = 8
    config.training.log_every = 4
    config.training.checkpoint_every = 4
    config.optim.warmup_steps = 2
    for key, value in overrides.items():
        section, field = key.split(".")
        config[section][field] = value
    return config


def test_kl_closed_form_matches_monte_carlo():
    # KL(N(mu, s^2) || N(0, 1)) = E_q[log q(z) - log p(z)], estimated from 200k draws per dimension; the estimator's
    # standard error is computed from the same draws and bounds the tolerance (5 standard errors).
    key = jax.random.PRNGKey(0)
    mu = np.array([[0.3, -1.2, 0.0, 2.0]])
    logvar = np.array([[0.0, -1.0, 0.7, -0.2]])
    n = 200_000
    eps = np.asarray(jax.random.normal(key, (n, 4)), np.float64)
    std = np.exp(0.5 * logvar)
    z = mu + std * eps
    log_ratio = (-0.5 * eps**2 - 0.5 * logvar) - (-0.5 * z**2)  # the 1/sqrt(2 pi) factors cancel
    estimate, stderr = log_ratio.mean(0), log_ratio.std(0) / np.sqrt(n)
    exact = np.asarray(0.5 * (mu**2 + np.exp(logvar) - 1.0 - logvar))[0]
    assert np.all(np.abs(estimate - exact) < 5 * stderr + 1e-12)
    got = encoder.kl_per_example(jnp.asarray(mu, jnp.float32), jnp.asarray(logvar, jnp.float32))
    np.testing.assert_allclose(got, [exact.sum()], rtol=1e-6)


def test_kl_per_dim_is_the_batch_mean_over_features():
    mu = jnp.arange(12.0).reshape(2, 3, 2) / 10
    logvar = -jnp.arange(12.0).reshape(2, 3, 2) / 20
    by_hand = np.mean([np.sum(0.5 * (m**2 + np.exp(v) - 1 - v)) for m, v in zip(np.asarray(mu), np.asarray(logvar))])
    np.testing.assert_allclose(encoder.kl_per_dim(mu, logvar), by_hand / 6, rtol=1e-6)
    assert float(encoder.kl_per_dim(jnp.zeros((3, 4)), jnp.zeros((3, 4)))) == 0.0  # q = p


def test_reparameterisation_has_the_encoders_distribution():
    # z = s mu + sigma x0 with x0 ~ N(0, diag s^2): z ~ N(s mu, s^2 sigma^2); moments of 100k draws within 5 standard
    # errors of the mean and of the variance.
    s, mu, logvar, n = np.array([6.0, 1.0]), np.array([0.5, -2.0]), np.array([-1.0, 0.4]), 100_000
    x0 = np.asarray(jax.random.normal(jax.random.PRNGKey(1), (n, 2))) * s
    z = np.asarray(encoder.reparameterize(jnp.asarray(mu)[None], jnp.asarray(logvar)[None], jnp.asarray(x0), s))
    var = s**2 * np.exp(logvar)
    assert np.all(np.abs(z.mean(0) - s * mu) < 5 * np.sqrt(var / n))
    assert np.all(np.abs(z.var(0) - var) < 5 * var * np.sqrt(2 / n))


def test_beta_none_is_the_independent_coupling_bit_for_bit(tmp_path):
    none = train.setup(tiny_config(beta=None))
    assert none.coupling.route == "step" and none.state.coupling_params is None
    a = train.train(tiny_config(beta=None), str(tmp_path / "a"))
    b = train.train(tiny_config(beta=None, **{"coupling.name": "independent"}), str(tmp_path / "b"))
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
        np.testing.assert_array_equal(x, y)


def test_the_encoder_starts_as_the_independent_coupling():
    exp = train.setup(tiny_config())
    assert exp.coupling.route == "loss"
    x1 = toy2d.get_sampler("moons")(jax.random.PRNGKey(2), 32)
    x0 = jax.random.normal(jax.random.PRNGKey(3), (32, 2))
    z, penalty, info = exp.coupling.learned(exp.state.coupling_params["params"], x0, x1, jax.random.PRNGKey(4))
    np.testing.assert_array_equal(z, x0)  # mu = 0, log sigma^2 = 0: z is the independent draw itself
    assert float(penalty) == 0.0 and float(info["coupling/kl"]) == 0.0


def test_make_refuses_a_non_gaussian_prior_and_a_bad_beta():
    config = tiny_config()
    with pytest.raises(ValueError, match="Gaussian prior"):
        couplings.make(config.coupling, prior_std=None)
    config.coupling.beta = 0.0
    with pytest.raises(ValueError, match="coupling.beta must be > 0"):
        couplings.make(config.coupling, prior_std=1.0)
    with pytest.raises(ValueError, match="flow-matching loss"):
        train.setup(tiny_config(**{"loss.name": "epsilon"}))


@pytest.mark.parametrize("prior, ndev", [("normal", 4), ("wide_normal", 1)])
def test_joint_step_matches_eq_11_by_hand(prior, ndev):
    """One step with SGD(1): theta and phi move by the gradient of Eq. 11 (flow matching on the reparameterised z,
    no stop-gradient, plus beta times the per-dimension KL), written out here on the step's own draws, on 4 devices
    (gradients averaged over them) and on 1; the encoder's EMA is updated like the network's."""
    beta = 3.0
    config = tiny_config(beta=beta, **{"data.name": "two_modes", "data.source": prior})
    exp = train.setup(config)
    # move phi off zero, so that the encoder's mean and variance both matter
    phi = exp.state.coupling_params["params"]
    phi = jax.tree.map(lambda a: a + 0.3 * jax.random.normal(jax.random.PRNGKey(9), a.shape), phi)
    tx = optax.sgd(1.0)
    state = exp.state.replace(coupling_params={"params": phi, "ema_params": phi})
    state = state.replace(opt_state=tx.init(train.step.trainable(state)))
    step = train.make_train_step(config, exp.apply_fn, tx, exp.coupling, exp.noise_one)
    x1 = toy2d.get_sampler("two_modes")(jax.random.PRNGKey(5), 16)
    key = jax.random.PRNGKey(7)
    s = jnp.asarray(toy2d.GAUSSIAN_SOURCES[prior])

    # the step's draws: noise and time of example j from fold_in(key_part, j) (flowjax.train.step)
    k_src, k_t = jax.random.split(key, 4)[0], jax.random.split(key, 4)[1]
    x0 = jax.vmap(exp.noise_one)(per_index_keys(k_src, jnp.arange(16)))
    t = jax.vmap(lambda k: jax.random.uniform(k, (1,))[0])(per_index_keys(k_t, jnp.arange(16)))
    enc_net = models.make(couplings.encoder_network_config(config.coupling, out_channels=4))  # [mu, log sigma^2]

    def eq11(theta, phi):
        out = enc_net.apply({"params": phi}, x1, jnp.zeros((16,)))
        mu, logvar = out[:, :2], out[:, 2:]
        z = s * mu + jnp.exp(logvar / 2) * x0
        xt = (1 - t[:, None]) * z + t[:, None] * x1
        v = exp.apply_fn(theta, xt, t)
        fm = jnp.mean((v - (x1 - z)) ** 2)
        kl = jnp.mean(jnp.sum(0.5 * (mu**2 + jnp.exp(logvar) - 1 - logvar), axis=1)) / 2
        return fm + beta * kl

    loss, (g_theta, g_phi) = jax.value_and_grad(eq11, argnums=(0, 1))(state.params, phi)
    assert max(float(jnp.abs(a).max()) for a in jax.tree.leaves(g_phi)) > 1e-3  # the encoder is trained
    devices = jax.devices()[:ndev]
    p_step = jax.pmap(step, axis_name=train.AXIS, in_axes=(0, 0, None), devices=devices)
    batch = {"x1": x1.reshape(ndev, 16 // ndev, 2), "index": -np.ones((ndev, 16 // ndev), np.int32)}
    new, metrics = p_step(train.replicate(state, devices), batch, key)
    np.testing.assert_allclose(metrics["loss"][0], loss, rtol=1e-5)
    moved = lambda old, new: jax.tree.map(lambda a, b: a - b[0], old, new)
    for got, want in (
        (moved(state.params, new.params), g_theta),
        (moved(phi, new.coupling_params["params"]), g_phi),
    ):
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    rate = min(config.training.ema_decay, 1 / 10)  # the step's EMA warm-up at step 0
    for e, old, new_p in zip(
        *(jax.tree.leaves(x) for x in (new.coupling_params["ema_params"], phi, new.coupling_params["params"]))
    ):
        np.testing.assert_allclose(e[0], rate * old + (1 - rate) * new_p[0], rtol=1e-5, atol=1e-7)


def test_resumed_run_continues_exactly_with_the_encoder(tmp_path):
    """The encoder's parameters, their EMA and the joint optimizer state are in the checkpoint: 4 steps, then 4
    more after a restart, end where 8 straight steps do."""
    straight = train.train(tiny_config(), str(tmp_path / "straight"))
    train.train(tiny_config(**{"training.num_steps": 4}), str(tmp_path / "resumed"))
    resumed = train.train(tiny_config(), str(tmp_path / "resumed"))
    assert int(resumed.step) == 8 and resumed.coupling_params is not None
    for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed)):
        np.testing.assert_array_equal(a, b)
    moved = jax.tree.map(
        lambda a, b: float(jnp.abs(a - b).max()),
        straight.coupling_params["params"],
        train.setup(tiny_config()).state.coupling_params["params"],
    )
    assert max(jax.tree.leaves(moved)) > 0  # the encoder was trained
