"""Issue 18 item 2: divergence. A NaN loss stops the run after the asynchronous save in flight is finished, the
message names the checkpoint that really is on disk, and the command it advises (a smaller learning rate, which
may change on resume) resumes from it; a finite blow-up and an evaluation no better than the noise are warned of."""

import json
import logging
import os
import shlex
import subprocess
import sys

import jax.numpy as jnp
import pytest

import main
from configs import quickstart
from flowjax import train
from flowjax.data import dataset as datasets
from flowjax.train import loop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = [
    "--config=configs/quickstart.py",
    "--config.model.hidden=(16,16)",
    "--config.model.time_embed_dim=8",
    "--config.training.batch_size=64",
    "--config.training.num_steps=40",
    "--config.training.log_every=10",
    "--config.training.checkpoint_every=10",
    "--config.eval.solvers=('euler',)",
    "--config.eval.nfe=(1,)",
    "--config.eval.num_samples=200",
    "--config.eval.num_path_samples=50",
    "--config.eval.path_nfe=4",
]
# main.py with the data of steps >= 10 turned to NaN: the loss is NaN at the log of step 20, while the
# asynchronous save of step 10 may still be under way.
NAN_AFTER_STEP_10 = """
import sys
from absl import app
from flowjax.data import dataset as datasets
import main

from_config = datasets.from_config

def nan_data(config):
    data = from_config(config)
    def global_batch(step):
        batch = data.global_batch(step)
        return {**batch, "x1": batch["x1"] * float("nan")} if step >= 10 else batch
    return data._replace(global_batch=global_batch)

datasets.from_config = nan_data
sys.argv = ["main.py"] + sys.argv[1:]
app.run(main.main, flags_parser=main.parse_flags)
"""


def _env(tmp_path):
    return dict(os.environ, XLA_FLAGS="", JAX_PLATFORMS="cpu", FLOWJAX_COMPILATION_CACHE=str(tmp_path / "cache"))


def test_nan_stops_after_the_save_in_flight_and_the_advised_command_resumes(tmp_path):
    workdir = str(tmp_path / "run")
    cmd = [sys.executable, "-c", NAN_AFTER_STEP_10, *TINY, f"--workdir={workdir}"]
    diverged = subprocess.run(cmd, cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert diverged.returncode == 1, diverged.stderr[-3000:]
    error = diverged.stderr[diverged.stderr.index("error: ") :]
    assert "Loss is nan at step 20; not saved. The newest checkpoint, step 10" in error
    checkpoints = os.path.join(workdir, "checkpoints")
    assert os.listdir(checkpoints) == ["10"]  # finished, not a 10.orbax-checkpoint-tmp cut off by the exit
    assert "Traceback" not in diverged.stderr

    advised = shlex.split(error.split("For example: ")[1].strip())
    assert (
        advised[1:3] == ["main.py", "--config=configs/quickstart.py"]
        and "--config.optim.learning_rate=0.0001" in advised
    )
    resumed = subprocess.run(advised, cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Resumed from {workdir} at step 10" in resumed.stderr
    with open(os.path.join(workdir, "config_history.json")) as f:
        (entry,) = json.load(f)
    assert entry["step"] == 10 and entry["changes"] == ["optim.learning_rate: 0.001 in the workdir, 0.0001 now"]
    with open(os.path.join(workdir, "config.json")) as f:
        assert json.load(f)["optim"]["learning_rate"] == 0.0001
    with open(os.path.join(workdir, "eval", "metrics.json")) as f:
        assert json.load(f)["step"] == 40


def tiny_config(**overrides):
    config = quickstart.get_config()
    config.model.hidden, config.model.time_embed_dim = (16, 16), 8
    config.training.batch_size, config.training.num_steps = 16, 40
    config.training.log_every = config.training.checkpoint_every = 10
    for key, value in overrides.items():
        section, field = key.split(".")
        config[section][field] = value
    return config


def test_nan_before_any_checkpoint_says_so(tmp_path, monkeypatch):
    from_config = datasets.from_config
    monkeypatch.setattr(
        datasets,
        "from_config",
        lambda config: from_config(config)._replace(
            global_batch=lambda step: {**from_config(config).global_batch(step), "x1": jnp.full((16, 2), jnp.nan)}
        ),
    )
    with pytest.raises(loop.Diverged, match="No checkpoint was saved before it.*rerun starts over") as err:
        train.train(tiny_config(**{"training.checkpoint_every": 40}), str(tmp_path / "run"))
    assert err.value.latest is None and "None" not in str(err.value)


def test_a_changed_optimizer_identity_is_still_refused(tmp_path):
    workdir = str(tmp_path / "run")
    train.train(tiny_config(**{"training.num_steps": 10}), workdir)
    with pytest.raises(ValueError, match="another config.*optim.b1"):
        train.train(tiny_config(**{"optim.b1": 0.5}), workdir)
    with pytest.raises(ValueError, match="another config.*optim.grad_clip.*switching clipping on or off"):
        train.train(tiny_config(**{"optim.grad_clip": 0.0}), workdir)
    state = train.train(tiny_config(**{"optim.grad_clip": 0.5, "optim.warmup_steps": 20}), workdir)
    assert int(state.step) == 40


def test_a_finite_blow_up_is_warned_of(tmp_path, monkeypatch, caplog):
    from_config = datasets.from_config

    def exploding(config):
        data = from_config(config)
        return data._replace(
            global_batch=lambda step: (
                {**data.global_batch(step), "x1": data.global_batch(step)["x1"] * 1e4}
                if step >= 20
                else data.global_batch(step)
            )
        )

    monkeypatch.setattr(datasets, "from_config", exploding)
    with caplog.at_level(logging.WARNING):
        train.train(tiny_config(), str(tmp_path / "run"))
    (warning,) = [r.getMessage() for r in caplog.records if "times the lowest so far" in r.getMessage()]
    assert "at step 30" in warning and "optim.learning_rate" in warning


def test_an_evaluation_no_better_than_the_noise_is_warned_of(tmp_path, capsys):
    config = tiny_config(**{"training.num_steps": 0, "eval.solvers": ("euler",), "eval.nfe": (1,)})
    config.eval.num_samples, config.eval.path_nfe, config.eval.num_path_samples = 200, 4, 50
    main.run(config, str(tmp_path / "run"), "train", "configs/quickstart.py")  # an untrained network
    out = capsys.readouterr()
    assert "W2 of the noise itself (no model)" in out.out
    assert "warning: the best W2" in out.err and "is no better than the noise's own" in out.err
    assert main.untrained_warning([{"solver": "euler", "nfe": 1, "w2": 0.3}], 1.3) is None
    assert "NaN or infinite" in main.untrained_warning([{"solver": "euler", "nfe": 1, "w2": float("nan")}], 1.3)
    assert main.untrained_warning([{"solver": "euler", "nfe": 1, "fid": 3.0}], None) is None
