"""Issue 18 item 8: progress and logs. Start-up, compile, training (steps/s, an ETA in m:ss) and each evaluation
point say what they are doing; libraries' INFO lines (orbax's ~40 per checkpoint) stay out of the default log,
and nothing imports TensorFlow; samples.png shares its axes and draws the target under every panel."""

import os
import re
import subprocess
import sys

import matplotlib.colors
import numpy as np

from flowjax import plots

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_run_reports_its_progress_without_library_chatter(tmp_path):
    cmd = [
        sys.executable,
        "-X",
        "importtime",  # every imported module, on stderr
        "main.py",
        "--config=configs/quickstart.py",
        f"--workdir={tmp_path / 'run'}",
        "--config.model.hidden=(16,16)",
        "--config.model.time_embed_dim=8",
        "--config.training.batch_size=64",
        "--config.training.num_steps=40",
        "--config.training.log_every=10",
        "--config.training.checkpoint_every=20",
        "--config.eval.solvers=('euler','heun')",
        "--config.eval.nfe=(1,2)",
        "--config.eval.num_samples=200",
        "--config.eval.num_path_samples=50",
        "--config.eval.path_nfe=4",
    ]
    env = dict(os.environ, XLA_FLAGS="", JAX_PLATFORMS="cpu", FLOWJAX_COMPILATION_CACHE="")
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    imports = [line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")]
    assert "flowjax.train.loop" in imports
    assert not [m for m in imports if m == "tensorflow" or m.startswith("tensorflow.")]
    log = [line for line in proc.stderr.splitlines() if not line.startswith("import time:")]

    def first(pattern):
        return next(i for i, line in enumerate(log) if re.search(pattern, line))

    order = [
        first(r"Setting up configs/quickstart.py"),
        first(r"Compiling the train step \(\d+ steps? per call\)"),
        first(r"Compiled and took the first call's steps in [\d.]+ s"),
        first(r"Step 20 of 40 \(50%\): [\d.]+ steps/s, ETA 0:0\d; loss"),
        first(r"Evaluated euler NFE 1 \(1 of 3\), [\d.]+ s so far, ETA \d+ s"),
        first(r"Evaluated heun NFE 2 \(3 of 3\)"),
    ]
    assert order == sorted(order), "\n".join(log)
    chatter = [line for line in log if re.search(r"orbax|checkpoint_manager|xla_bridge|atomicity", line)]
    assert not chatter, chatter[:5]
    assert len(log) < 40, "\n".join(log)


def test_sample_panels_share_the_targets_axes_and_show_it():
    rng = np.random.default_rng(0)
    target = rng.normal(size=(500, 2)) * [3.0, 1.0] + [10.0, 0.0]
    samples = {"euler NFE=1": target * 0.5, "diverged": target * 1e6}
    fig = plots.samples_figure(target, samples)
    axes = [ax for ax in fig.axes if ax.collections]
    assert len(axes) == 3
    assert len({(ax.get_xlim(), ax.get_ylim()) for ax in axes}) == 1  # one box for all, the target's
    x0, x1 = axes[0].get_xlim()
    assert x0 < target[:, 0].min() and x1 > target[:, 0].max() and x1 - x0 < 2 * np.ptp(target[:, 0])
    for ax in axes[1:]:  # the target faintly (grey) first, then the samples
        under, over = ax.collections
        np.testing.assert_array_equal(under.get_offsets(), target)
        assert matplotlib.colors.to_hex(under.get_facecolor()[0], keep_alpha=False) == "#cccccc"
        assert len(over.get_offsets()) == len(target)
