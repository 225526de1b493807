"""Issue 18 item 11: short jobs. training.steps_per_call = 0 chooses K from log_every, checkpoint_every, num_steps
and the step a run resumes at (the same steps as K = 1), a run resumed at a step that is not a multiple of K
continues instead of failing, and compiled programs go to JAX's persistent cache, where a rerun finds them."""

import os
import subprocess
import sys

import jax
import numpy as np

from configs import quickstart
from flowjax import train
from flowjax.train import loop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_auto_steps_per_call_divides_every_boundary():
    assert loop.auto_steps_per_call(3000, 200, 1000) == 40  # the quickstart
    assert loop.auto_steps_per_call(2000, 200, 1000) == 40
    assert loop.auto_steps_per_call(400, 100, 200) == 25  # the largest divisor of 100 up to 40
    assert loop.auto_steps_per_call(40, 10, 10) == 10
    assert loop.auto_steps_per_call(3000, 200, 1000, start=3010) == 10  # resumed at step 3010
    assert loop.auto_steps_per_call(3001, 200, 1000) == 1
    assert loop.auto_steps_per_call(0, 200, 1000) == 40
    config = quickstart.get_config()
    config.training.steps_per_call = 0
    assert loop.steps_per_call(config, 0, (2,)) == 40
    assert loop.steps_per_call(config, 0, (32, 32, 3)) == 1  # images: a call per step costs nothing there
    assert loop.steps_per_call(config, 0, (8, 8, 1)) == 1  # the digits too (a UNet is slow inside the K-step loop)
    assert loop.steps_per_call(config, 0, (128,)) == 40  # the 128-D toy's vectors
    config.training.steps_per_call = 8
    assert loop.steps_per_call(config, 0, (2,)) == 8 and loop.steps_per_call(config, 1004, (2,)) == 4


def tiny_config(**overrides):
    config = quickstart.get_config()
    config.model.hidden, config.model.time_embed_dim = (16, 16), 8
    config.training.batch_size, config.training.num_steps = 16, 40
    config.training.log_every = config.training.checkpoint_every = 20
    for key, value in overrides.items():
        section, field = key.split(".")
        config[section][field] = value
    return config


def _params(state):
    return jax.tree.leaves(state.params) + jax.tree.leaves(state.ema_params)


def test_auto_and_resumed_runs_take_the_steps_of_single_steps(tmp_path):
    single = train.train(tiny_config(**{"training.steps_per_call": 1}), str(tmp_path / "single"))
    auto = train.train(tiny_config(**{"training.steps_per_call": 0}), str(tmp_path / "auto"))  # K = 20
    # 10 single steps, then K = 4 from step 10: taken 2 per call (gcd(4, 10)); this used to raise
    resumed = str(tmp_path / "resumed")
    train.train(
        tiny_config(**{"training.num_steps": 10, "training.log_every": 10, "training.checkpoint_every": 10}), resumed
    )
    resumed = train.train(tiny_config(**{"training.steps_per_call": 4}), resumed)
    for other in (auto, resumed):
        assert int(other.step) == 40
        for a, b in zip(_params(single), _params(other)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_a_rerun_finds_its_programs_in_the_persistent_cache(tmp_path):
    cache = tmp_path / "cache"
    env = dict(os.environ, XLA_FLAGS="", JAX_PLATFORMS="cpu", FLOWJAX_COMPILATION_CACHE=str(cache))
    env.pop("JAX_COMPILATION_CACHE_DIR", None)

    def run(workdir, *flags):
        cmd = [
            sys.executable,
            "main.py",
            "--config=configs/quickstart.py",
            f"--workdir={tmp_path / workdir}",
            "--config.model.hidden=(16,16)",
            "--config.training.num_steps=20",
            "--config.training.log_every=10",
            "--config.training.steps_per_call=0",
            "--config.eval.solvers=('euler',)",
            "--config.eval.nfe=(1,)",
            "--config.eval.num_samples=200",
            "--config.eval.num_path_samples=50",
            "--config.eval.path_nfe=4",
            *flags,
        ]
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc.stderr

    first = run("a")
    assert "Compiling the train step (10 steps per call)" in first  # auto: gcd(20, 10, 1000) = 10
    assert len(os.listdir(cache)) > 10
    again = run("b", "--verbosity=1")  # a new workdir: the same programs, from the cache
    hits = [line for line in again.splitlines() if "Persistent compilation cache hit for 'jit_updates'" in line]
    assert hits, again[-3000:]
