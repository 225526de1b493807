"""Issue 18 item 1: one writer per workdir. A second process on a workdir in use is refused with one line and
changes nothing; a lock left by a killed process is taken over with a message."""

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
    "--config.eval.solvers=('euler',)",
    "--config.eval.nfe=(1,)",
    "--config.eval.num_samples=200",
    "--config.eval.num_path_samples=50",
    "--config.eval.path_nfe=4",
]


def _env(cache):
    # one CPU device (the suite's conftest forces 4), the compiled programs shared through a cache of this module
    return dict(os.environ, XLA_FLAGS="", JAX_PLATFORMS="cpu", FLOWJAX_COMPILATION_CACHE=str(cache))


def _main(cache, *flags, timeout=600):
    cmd = [sys.executable, "main.py", *TINY, *flags]
    return subprocess.run(cmd, cwd=ROOT, env=_env(cache), capture_output=True, text=True, timeout=timeout)


class Running:
    """main.py in the background; ``wait_for(text)`` blocks until a line of its stderr contains ``text``."""

    def __init__(self, cache, *flags):
        self.proc = subprocess.Popen(
            [sys.executable, "main.py", *TINY, *flags],
            cwd=ROOT,
            env=_env(cache),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines, self._seen = [], threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            with self._seen:
                self.lines.append(line)
                self._seen.notify_all()
        with self._seen:
            self.lines.append(None)  # end of output
            self._seen.notify_all()

    def wait_for(self, text, timeout=300):
        with self._seen:
            found = self._seen.wait_for(lambda: any(line is None or text in line for line in self.lines), timeout)
            assert found and None not in self.lines, "".join(line for line in self.lines if line)[-3000:]

    def output(self):
        self.proc.wait(timeout=300)
        self.wait_for_end()
        return "".join(line for line in self.lines if line)

    def wait_for_end(self):
        with self._seen:
            self._seen.wait_for(lambda: None in self.lines, 60)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("jax_cache")


def test_second_process_is_refused_and_a_killed_ones_lock_is_taken_over(tmp_path, cache):
    workdir = str(tmp_path / "run")
    long_run = ("--config.training.num_steps=1000000", "--config.training.checkpoint_every=1000000")
    first = Running(cache, f"--workdir={workdir}", *long_run)
    try:
        first.wait_for("Step 10 of")  # training: it holds the lock from before its config check to its exit
        # refused at once (without the lock, the second would train alongside the first: the timeout fails it)
        other = _main(cache, f"--workdir={workdir}", "--config.coupling.name=independent", timeout=120)
        same = _main(cache, f"--workdir={workdir}", *long_run, timeout=120)
        evaluating = _main(cache, f"--workdir={workdir}", "--mode=eval", timeout=120)
        for refused in (other, same, evaluating):
            assert refused.returncode == 1, refused.stderr[-3000:]
            assert f"is in use by process {first.proc.pid} on host" in refused.stderr
            last = refused.stderr.strip().splitlines()[-1]  # one line, after the set-up's progress lines
            assert last.startswith("error: Workdir") and "Traceback" not in refused.stderr
        with open(os.path.join(workdir, "config.json")) as f:
            assert json.load(f)["coupling"]["name"] == "exact_ot"  # the first run's, not the refused one's
        with open(os.path.join(workdir, workdirs.LOCK_FILE)) as f:
            assert json.load(f)["pid"] == first.proc.pid
    finally:
        first.proc.send_signal(signal.SIGKILL)  # no clean-up: the lock file still names it
        first.proc.wait(timeout=60)

    after = _main(cache, f"--workdir={workdir}", "--config.training.num_steps=20")
    assert after.returncode == 0, after.stderr[-3000:]
    assert f"Took over the lock of {workdir} left by process {first.proc.pid}" in after.stderr
    assert "(no longer running)" in after.stderr
    with open(os.path.join(workdir, workdirs.LOCK_FILE)) as f:
        assert f.read() == ""  # released on exit
    with open(os.path.join(workdir, "eval", "metrics.json")) as f:
        assert json.load(f)["step"] == 20


def test_lock_is_reentrant_released_on_error_and_refuses_a_missing_workdir_to_read(tmp_path):
    workdir = str(tmp_path / "run")
    with pytest.raises(RuntimeError):
        with workdirs.lock(workdir):
            with workdirs.lock(workdir):  # train inside main.run
                holder = json.loads((tmp_path / "run" / workdirs.LOCK_FILE).read_text())
                assert holder["pid"] == os.getpid()
            raise RuntimeError("an error inside the run")
    assert (tmp_path / "run" / workdirs.LOCK_FILE).read_text() == ""
    with workdirs.lock(workdir):  # taken again, with no take-over message needed
        pass
    with pytest.raises(FileNotFoundError, match="No run in"):
        with workdirs.lock(str(tmp_path / "never_trained"), create=False):
            pass
    assert not os.path.exists(tmp_path / "never_trained")
