"""The training loop: pmap equivalence, exact resume, bad input, NaN handling, end-to-end CLI."""

import json
import os
import subprocess
import sys

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import quickstart
from flowjax import metrics, train
from flowjax.data import dataset as datasets
from flowjax.data import toy2d

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(**overrides):
    config = quickstart.get_config()
    config.model.hidden = (16, 16)
    config.model.time_embed_dim = 8
    config.training.batch_size = 16
    config.training.num_steps = 40
    config.training.log_every = 10
    config.training.checkpoint_every = 10
    config.optim.warmup_steps = 5
    for key, value in overrides.items():
        section, field = key.split(".")
        config[section][field] = value
    return config


def test_pmap_step_matches_single_device_gradient():
    assert jax.device_count() == 4
    config = tiny_config(**{"coupling.name": "independent", "loss.sigma": 0.1})
    exp = train.setup(config)
    tx = optax.sgd(1.0)  # params_new = params - grad: the update *is* the gradient
    state = exp.state.replace(opt_state=tx.init(exp.state.params))
    step = train.make_train_step(config, exp.apply_fn, tx, exp.coupling, exp.noise_one)
    x1 = toy2d.get_sampler(config.data.name)(jax.random.PRNGKey(5), 16)
    key = jax.random.PRNGKey(7)
    results = []
    for ndev in (1, 4):
        p_step = jax.pmap(step, axis_name=train.AXIS, in_axes=(0, 0, None), devices=jax.devices()[:ndev])
        batch = {"x1": x1.reshape(ndev, 16 // ndev, 2), "index": -np.ones((ndev, 16 // ndev), np.int32)}
        new, metrics = p_step(train.replicate(state, jax.devices()[:ndev]), batch, key)
        grad = jax.tree.map(lambda a, b: a - b[0], state.params, new.params)
        results.append((grad, metrics["loss"][0]))
    (g1, l1), (g4, l4) = results
    np.testing.assert_allclose(l1, l4, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g4)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert max(float(jnp.abs(a).max()) for a in jax.tree.leaves(g1)) > 1e-3  # a real, non-zero gradient


def _params(state):
    return jax.tree.leaves(state.params) + jax.tree.leaves(state.ema_params)


LOOM = {"coupling.name": "loom", "coupling.num_caches": 2, "data.num_train": 64}
DANSM = {"coupling.name": "dansm", "coupling.match_size": 40, "data.num_train": 64}


@pytest.mark.parametrize("overrides", [{}, LOOM, DANSM], ids=["exact_ot", "loom", "dansm"])
def test_resume_equals_uninterrupted(tmp_path, overrides):
    """20 steps, stop, resume to 40 == 40 straight: parameters and coupling state (LOOM's seeds), bit for bit."""
    straight = train.train(tiny_config(**overrides), str(tmp_path / "a"))
    train.train(tiny_config(**overrides, **{"training.num_steps": 20}), str(tmp_path / "b"))
    resumed = train.train(tiny_config(**overrides), str(tmp_path / "b"))
    assert int(straight.step) == int(resumed.step) == 40
    for a, b in zip(_params(straight), _params(resumed)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(jax.tree.leaves(straight.coupling_state), jax.tree.leaves(resumed.coupling_state)):
        np.testing.assert_array_equal(a, b)
    if overrides is LOOM:
        initial = train.setup(tiny_config(**overrides)).state.coupling_state["seeds"]
        assert not np.array_equal(straight.coupling_state["seeds"], initial)
    short = train.train(tiny_config(**overrides, **{"training.num_steps": 20}), str(tmp_path / "c"))
    assert any(not np.allclose(a, b) for a, b in zip(_params(short), _params(straight)))


def test_loom_match_only_epochs_moves_the_coupling_not_the_model(caplog):
    """(Also: the replicated step compiles once; with flax.jax_utils.replicate its second call compiled again.)"""
    config = tiny_config(**LOOM, **{"coupling.match_only_epochs": 2, "training.num_steps": 9, "optim.warmup_steps": 0})
    exp = train.setup(config)
    p_step, batch_fn = train.pmapped_train_step(config, exp), train.make_batch_fn(config, exp)
    state = train.replicate(exp.state)
    params = [exp.state.params]
    for step in range(9):  # 64 // 16 = 4 steps per epoch: steps 0-7 only match
        with jax.log_compiles(step > 0):
            state, metrics = p_step(state, batch_fn(step)[0], jax.random.PRNGKey(step))
        params.append(flax.jax_utils.unreplicate(state).params)
    assert not [r for r in caplog.records if "Finished XLA compilation" in r.getMessage()]
    same = [all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(params[0]), jax.tree.leaves(p))) for p in params]
    assert same == [True] * 9 + [False]
    assert not np.array_equal(
        flax.jax_utils.unreplicate(state).coupling_state["seeds"], exp.state.coupling_state["seeds"]
    )


@pytest.mark.parametrize(
    "overrides",
    [{}, {"coupling.scope": "global"}, LOOM],
    ids=["exact_ot_paired_ahead", "exact_ot_global_scope", "loom"],
)
def test_steps_per_call_takes_the_same_steps(overrides):
    """training.steps_per_call=4 (one compiled call per 4 steps; exact OT's 4 assignments solved together,
    per device in a worker thread one call ahead or, matched globally, in the step's own program; LOOM's
    in turn) gives the parameters, coupling state and last metrics of 8 single steps."""
    results = []
    for k in (1, 4):
        config = tiny_config(
            **overrides, **{"training.steps_per_call": k, "training.log_every": 8, "training.checkpoint_every": 8}
        )
        exp = train.setup(config)
        advance, state = train.make_advance_fn(config, exp), train.replicate(exp.state)
        for step in range(0, 8, k):
            state, metrics, _ = advance(state, step)
        results.append((flax.jax_utils.unreplicate(state), jax.device_get(metrics)))
    (one, m1), (four, m4) = results
    for a, b in zip(_params(one), _params(four)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    for a, b in zip(jax.tree.leaves(one.coupling_state), jax.tree.leaves(four.coupling_state)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(m1["loss"], m4["loss"], rtol=1e-5)
    np.testing.assert_allclose(m1["coupling/cost_after"], m4["coupling/cost_after"], rtol=1e-5)
    assert int(four.step) == 8 and not np.allclose(_params(four)[0], _params(train.setup(tiny_config()).state)[0])


def _snapshot(workdir):
    out = {}
    for root, _, files in os.walk(workdir):
        for f in files:
            with open(os.path.join(root, f), "rb") as fh:
                out[os.path.relpath(os.path.join(root, f), workdir)] = fh.read()
    return out


def test_workdir_of_another_config_is_refused_untouched(tmp_path):
    workdir = str(tmp_path / "run")
    train.train(tiny_config(**{"training.num_steps": 10}), workdir)
    before = _snapshot(workdir)
    with pytest.raises(ValueError, match="another config.*coupling"):
        train.train(tiny_config(**{"coupling.name": "sinkhorn"}), workdir)
    assert _snapshot(workdir) == before


def test_workdir_from_before_a_new_config_field_resumes(tmp_path):
    """A run whose config.json lacks a field added to flowjax later resumes; a changed field is still refused."""
    workdir = str(tmp_path / "run")
    train.train(tiny_config(**{"training.num_steps": 10}), workdir)
    path = os.path.join(workdir, "config.json")
    with open(path) as f:
        saved = json.load(f)
    del saved["data"]["split"], saved["loss"]["feature_reduction"], saved["training"]["init_from"]
    with open(path, "w") as f:
        json.dump(saved, f)
    state = train.train(tiny_config(**{"training.num_steps": 20}), workdir)
    assert int(state.step) == 20
    with pytest.raises(ValueError, match="another config.*data.num_train"):
        train.train(tiny_config(**{"training.num_steps": 30, "data.num_train": 64}), workdir)


def test_init_from_starts_at_the_teachers_ema_parameters(tmp_path):
    teacher = train.train(tiny_config(**{"training.num_steps": 10}), str(tmp_path / "teacher"))
    student_config = tiny_config(
        **{"training.num_steps": 0, "training.seed": 7, "training.init_from": str(tmp_path / "teacher")}
    )
    student = train.train(student_config, str(tmp_path / "student"))
    for got in (student.params, student.ema_params):
        jax.tree.map(np.testing.assert_array_equal, got, teacher.ema_params)
    assert int(student.step) == 0 and not np.array_equal(  # a fresh optimizer: Adam's moments are zero
        jax.tree.leaves(student.opt_state)[1], jax.tree.leaves(teacher.opt_state)[1]
    )
    with pytest.raises(ValueError, match="network differs|shapes differ"):
        train.train(
            tiny_config(**{"model.hidden": (8, 8), "training.init_from": str(tmp_path / "teacher")}),
            str(tmp_path / "other"),
        )
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train.train(tiny_config(**{"training.init_from": str(tmp_path / "nowhere")}), str(tmp_path / "third"))


def test_nan_loss_stops_and_keeps_last_checkpoint(tmp_path, monkeypatch):
    workdir = str(tmp_path / "run")
    train.train(tiny_config(**{"training.num_steps": 10}), workdir)
    ckpt_before = _snapshot(os.path.join(workdir, "checkpoints"))
    from_config = datasets.from_config

    def nan_data(config):
        data = from_config(config)
        return data._replace(
            global_batch=lambda step: {**data.global_batch(step), "x1": data.global_batch(step)["x1"] * jnp.nan}
        )

    monkeypatch.setattr(datasets, "from_config", nan_data)
    with pytest.raises(FloatingPointError, match="step 20.*step 10"):
        train.train(tiny_config(), workdir)
    assert _snapshot(os.path.join(workdir, "checkpoints")) == ckpt_before


@pytest.mark.parametrize(
    "override, message",
    [
        ({"coupling.name": "hungarian"}, "coupling.name"),
        ({"training.batch_size": 18}, "multiple of the 4 devices"),
        ({"model.name": "unet3d"}, "model.name"),
        ({"optim.schedule": "linear"}, "optim.schedule"),
        ({"coupling.name": "loom"}, "data.num_train"),
        ({"coupling.scope": "world"}, "coupling.scope"),
        ({"coupling.cost": "l1"}, "coupling.cost"),
        ({"data.num_train": 10}, "between 1 and data.num_train=10"),
        ({"coupling.name": "dansm", "coupling.match_size": -1}, "coupling.match_size"),
        ({"training.steps_per_call": 3}, "steps_per_call=3 must .* divide training.num_steps=40"),
        ({"training.steps_per_call": -1}, "steps_per_call=-1 must be 0"),
    ],
)
def test_bad_config_values(override, message):
    with pytest.raises(ValueError, match=message):
        train.setup(tiny_config(**override))


def _training_set(config):
    data = datasets.from_config(config)
    return data.read(np.arange(data.num_examples))


def test_data_options_reach_training_and_evaluation():
    """data.num_squares / square_size shape the checkerboard of training and of the held-out set (the RF
    theory paper's unit squares on [-b, b]^2); data.num_classes keeps the first digits classes in both splits,
    and FD-digits (reference statistics of all ten classes) is reported only for all ten."""
    from configs import rf_checkerboard, rf_digits
    from flowjax import evaluate
    from flowjax.data import digits

    config = rf_checkerboard.get_config("18")
    train_x = _training_set(config)
    target = np.asarray(datasets.held_out(config))
    for x in (np.asarray(train_x), target):
        cells = np.floor(x).astype(int)
        assert np.abs(x).max() <= 3 and np.all(cells.sum(1) % 2 == 0)  # filled unit squares of the 6 x 6 board
        assert len({tuple(c) for c in cells}) == 18
    np.testing.assert_array_equal(
        target, toy2d.test_set("checkerboard", 5000, seed=config.data.test_seed, num_squares=18, square_size=1.0)
    )
    assert tiny_config().data.num_squares == 8 and tiny_config().data.square_size == 2.0  # FFJORD's board by default

    sizes = {}
    for k in (3, 7, 10):
        config = rf_digits.get_config(str(k))
        train_x = _training_set(config)
        images, labels = digits.load("train", num_classes=k)
        np.testing.assert_array_equal(np.asarray(train_x), images)
        assert labels.max() == k - 1 and datasets.num_examples(config.data) == len(images)
        test_x = datasets.held_out(config)
        assert len(test_x) == config.eval.num_samples == len(digits.load("test", num_classes=k)[1])
        sizes[k] = len(test_x)
        assert ("fd_digits" in evaluate.sample_metrics(config, test_x, test_x)) == (k == 10)
    assert sizes[3] < sizes[7] < sizes[10] == 300
    with pytest.raises(ValueError, match="data.num_classes"):
        train.setup(tiny_config(**{"data.num_classes": 3}))  # not digits
    bad = rf_digits.get_config("3")
    bad.data.num_classes = 11
    with pytest.raises(ValueError, match="data.num_classes"):
        datasets.from_config(bad)


def _main(workdir, *flags):
    env = dict(os.environ, XLA_FLAGS="", JAX_PLATFORMS="cpu")
    cmd = [
        sys.executable,
        "main.py",
        "--config=configs/quickstart.py",
        f"--workdir={workdir}",
        "--config.model.hidden=(16,16)",
        "--config.training.batch_size=32",
        "--config.eval.num_samples=300",
        "--config.eval.num_path_samples=100",
        *flags,
    ]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_main_end_to_end(tmp_path):
    workdir = str(tmp_path / "run")
    proc = _main(workdir, "--config.training.num_steps=300", "--config.eval.solvers=('euler','heun','dopri5')")
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(os.path.join(workdir, "eval", "metrics.json")) as f:
        result = json.load(f)
    assert result["config"].endswith("configs/quickstart.py") and result["step"] == 300
    rows = {(r["solver"], r["nfe"]): r for r in result["results"]}
    assert {("euler", 1), ("euler", 8), ("heun", 2), ("heun", 8)} <= set(rows) and ("heun", 1) not in rows
    # trained OT-CFM moves 8 Gaussians onto the moons: W2 far below that of the untouched source
    source = toy2d.get_sampler("8gaussians")(jax.random.PRNGKey(0), 300)
    baseline = float(metrics.w2(source, toy2d.test_set("moons", 300, seed=12345)))
    assert rows[("euler", 8)]["w2"] < 0.5 * baseline
    for f in ("samples.png", "trajectories.png"):
        assert os.path.getsize(os.path.join(workdir, "eval", f)) > 10_000
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(workdir))
    assert "Results in" in proc.stdout

    bad = _main(workdir, "--mode=eval", "--config.eval.nfe=(1,-2)")
    assert bad.returncode == 1 and "eval.nfe" in bad.stderr
    bad = _main(workdir, "--mode=eval", "--config.eval.solvers=('euler','rk45')")
    assert bad.returncode == 1 and "rk45" in bad.stderr
    sampled = _main(workdir, "--mode=sample")
    assert sampled.returncode == 0, sampled.stderr[-3000:]
    assert os.path.exists(os.path.join(workdir, "eval", "samples_euler_8.npz"))
