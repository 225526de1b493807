"""Issue 18 item 4: SIGTERM (a preemption notice) saves a checkpoint at the next step boundary and exits with
143, and a rerun resumes there; Ctrl-C stops the pairing worker and exits with 130 and one line, not an abort."""

import json
import os
import signal
import subprocess
import sys
import threading

import pytest

from flowjax.train import workdir as workdirs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = [
    "--config=configs/quickstart.py",
    "--config.model.hidden=(16,16)",
    "--config.model.time_embed_dim=8",
    "--config.training.batch_size=64",
    "--config.training.log_every=10",
    "--config.training.checkpoint_every=1000000",  # no periodic save: the only checkpoint is the signal's
    "--config.eval.solvers=('euler',)",
    "--config.eval.nfe=(1,)",
    "--config.eval.num_samples=200",
    "--config.eval.num_path_samples=50",
    "--config.eval.path_nfe=4",
]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    cache = tmp_path_factory.mktemp("jax_cache")
    return dict(os.environ, XLA_FLAGS="", JAX_PLATFORMS="cpu", FLOWJAX_COMPILATION_CACHE=str(cache))


def _signalled(env, workdir, signum, *flags):
    """main.py training for a million steps, sent ``signum`` once it has logged step 20; (exit code, stderr)."""
    proc = subprocess.Popen(
        [sys.executable, "main.py", *TINY, f"--workdir={workdir}", "--config.training.num_steps=1000000", *flags],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines, sent = [], threading.Event()

    def read():
        for line in proc.stderr:
            lines.append(line)
            if "Step 20 of" in line and not sent.is_set():
                proc.send_signal(signum)
                sent.set()

    reader = threading.Thread(target=read)
    reader.start()
    try:
        proc.wait(timeout=300)
    finally:
        proc.kill()
        reader.join()
    assert sent.is_set(), "".join(lines)[-3000:]
    return proc.returncode, "".join(lines)


def test_sigterm_saves_at_the_next_step_boundary_and_the_rerun_resumes(tmp_path, env):
    workdir = str(tmp_path / "run")
    code, stderr = _signalled(env, workdir, signal.SIGTERM)
    assert code == 143, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("Stopped by SIGTERM at step ") and "Rerun the same command to resume" in last
    step = int(last.split("at step ")[1].split(";")[0])
    assert step >= 20 and f"saved checkpoint {step} in" in last
    assert os.listdir(os.path.join(workdir, "checkpoints")) == [str(step)]  # written whole
    with open(os.path.join(workdir, workdirs.LOCK_FILE)) as f:
        assert f.read() == ""  # released
    assert "Traceback" not in stderr

    rerun = subprocess.run(
        [sys.executable, "main.py", *TINY, f"--workdir={workdir}", f"--config.training.num_steps={step + 10}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"Resumed from {workdir} at step {step}" in rerun.stderr
    with open(os.path.join(workdir, "eval", "metrics.json")) as f:
        assert json.load(f)["step"] == step + 10


def test_ctrl_c_stops_the_pairing_worker_and_exits_130_with_one_line(tmp_path, env):
    # exact OT with 10 steps per call: a worker thread pairs the next call's batches through a host callback
    code, stderr = _signalled(env, str(tmp_path / "run"), signal.SIGINT, "--config.training.steps_per_call=10")
    assert code == 130, stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("Interrupted (Ctrl-C) at step ") and "no checkpoint was saved yet" in last
    assert "Traceback" not in stderr and "Fatal Python error" not in stderr
