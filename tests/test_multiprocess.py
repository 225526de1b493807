"""Multi-process training on this machine: 2 processes x 2 CPU devices (jax.distributed on localhost, JAX's CPU
collectives) against this test process's 1 process x 4 devices, with the same config and seed.

What must hold: the same logged losses and final parameters (to the rounding of a mean over 4 devices summed in
another order), the same LOOM seed table bit for bit (the coupling's writes are all-gathered over every device of
every process), the same pools' pairing (DANSM's pools are drawn whole on every process, which keeps its rows);
and a run that loses a process mid-way resumes on all processes to the same end.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile

import jax
import mp_worker  # tests/mp_worker.py: pytest puts tests/ on the path
import numpy as np
import pytest

from flowjax import train
from flowjax.train import loop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "mp_worker.py")
OVERRIDES = {
    "training.num_steps": 20,
    "training.batch_size": 32,
    "training.log_every": 5,
    "training.checkpoint_every": 10,
    "data.num_train": 512,
}
# Parameters after 20 Adam steps differ by the rounding of the gradient mean, summed over the 4 devices in another
# order (float32: a few 1e-8 measured on parameters of order 0.1-1): 1e-5 leaves two orders of magnitude for other
# CPUs and BLAS; a different batch, pairing or key is a different random draw, whose losses differ in their
# second digit.
RTOL, ATOL = 1e-5, 1e-6


def _xla_flags(devices: int) -> str:
    """This process's XLA flags (conftest's: the same compiler settings, so the same bits) with ``devices`` CPU
    devices."""
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if "device_count" not in f]
    return " ".join(flags + [f"--xla_force_host_platform_device_count={devices}"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _spec(config: str, workdir, out, **extra) -> dict:
    return {"devices": 2, "config": config, "overrides": OVERRIDES, "workdir": str(workdir), "out": str(out), **extra}


def _start(spec: dict, logs) -> list[subprocess.Popen]:
    port = _free_port()
    env = {**os.environ, "XLA_FLAGS": _xla_flags(2)}
    procs = []
    for i in range(2):
        s = {**spec, "coordinator": f"localhost:{port}", "num_processes": 2, "process_id": i}
        if spec.get("die_after") is not None and i == 0:
            s["die_after"] = None  # process 1 is the one lost
        log = open(os.path.join(logs, f"process{i}.log"), "a")
        procs.append(
            subprocess.Popen([sys.executable, WORKER, json.dumps(s)], cwd=ROOT, env=env, stdout=log, stderr=log)
        )
    return procs


def _wait(procs, logs, timeout=300) -> None:
    for i, p in enumerate(procs):
        if p.wait(timeout=timeout) != 0:
            with open(os.path.join(logs, f"process{i}.log")) as f:
                tail = f.read()[-3000:]
            pytest.fail(f"process {i} exited with {p.returncode}:\n{tail}")


def _config_of(config_path: str, overrides: dict = OVERRIDES):
    return mp_worker.load_config(os.path.join(ROOT, config_path), overrides)


_REFERENCES = {}


def _reference(config_path: str) -> dict:
    """The same run in this process (4 devices), flattened like mp_worker.py's output (once per config)."""
    if config_path in _REFERENCES:
        return _REFERENCES[config_path]
    workdir = tempfile.mkdtemp(prefix="flowjax-mp-reference-")
    config = _config_of(config_path)
    losses = []

    class Recording(loop.MetricWriter):
        def write_scalars(self, step, scalars):
            losses.append((step, scalars["loss"]))
            super().write_scalars(step, scalars)

    original, loop.MetricWriter = loop.MetricWriter, Recording
    try:
        state = train.train(config, str(workdir))
    finally:
        loop.MetricWriter = original
    flat = {"losses": np.array(losses)}
    for prefix, tree in (("params", state.params), ("coupling", state.coupling_state)):
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
            flat[prefix + jax.tree_util.keystr(path)] = np.asarray(leaf)
    shutil.rmtree(workdir)
    _REFERENCES[config_path] = flat
    return flat


def _assert_same_run(got, want) -> None:
    assert sorted(got) == sorted(want)
    np.testing.assert_array_equal(got["losses"][:, 0], want["losses"][:, 0])  # the same log steps
    np.testing.assert_allclose(got["losses"][:, 1], want["losses"][:, 1], rtol=RTOL)
    for name in want:
        if name.startswith("coupling"):  # integer seed tables: exactly
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
        elif name.startswith("params"):
            np.testing.assert_allclose(got[name], want[name], rtol=RTOL, atol=ATOL, err_msg=name)


@pytest.mark.parametrize("config", ["configs/loom_checkerboard.py", "configs/dansm_checkerboard.py"])
def test_two_processes_train_as_one(config, tmp_path):
    assert jax.device_count() == 4  # conftest: the reference has as many devices as the two processes together
    want = _reference(config)
    procs = _start(_spec(config, tmp_path / "two", tmp_path / "two"), tmp_path)
    _wait(procs, tmp_path)
    outs = [dict(np.load(tmp_path / f"two.{i}.npz")) for i in range(2)]
    for name in outs[0]:  # every process ends with the same state (not only process 0's copy)
        np.testing.assert_array_equal(outs[0][name], outs[1][name], err_msg=name)
    _assert_same_run(outs[0], want)
    if "loom" in config:  # the seed table did move: the test compares a coupling that acts
        assert np.any(
            want["coupling['seeds']"] != np.asarray(train.setup(_config_of(config)).state.coupling_state["seeds"])
        )
    # One config.json and one events file, written by process 0; checkpoints restore on one process (below).
    assert os.path.isfile(tmp_path / "two" / "config.json")
    assert len([f for f in os.listdir(tmp_path / "two") if f.startswith("events.out.tfevents")]) == 1


def test_lost_process_resumes_on_all_processes(tmp_path):
    """Process 1 ends abruptly after the step-10 checkpoint (a lost host); the launcher then stops the other (as
    Slurm or a pod's runtime does), and the same two-process command resumes from the checkpoint to the same end."""
    config = "configs/loom_checkerboard.py"
    want = _reference(config)
    spec = _spec(config, tmp_path / "two", tmp_path / "two", die_after=15)
    procs = _start(spec, tmp_path)
    assert procs[1].wait(timeout=300) == 9
    procs[0].kill()  # left alone, it would wait for its peer's heartbeat to time out
    procs[0].wait()
    assert not os.path.exists(tmp_path / "two.0.npz")
    steps = sorted(int(s) for s in os.listdir(tmp_path / "two" / "checkpoints") if s.isdigit())
    assert steps == [10]
    _wait(_start({**spec, "die_after": None}, tmp_path), tmp_path)
    _assert_same_run(dict(np.load(tmp_path / "two.0.npz")), {**want, "losses": want["losses"][2:]})


MAIN = {  # quickstart shrunk: main.py's flags and the same config for the one-process references run here
    "training.num_steps": 10,
    "training.batch_size": 32,
    "training.log_every": 5,
    "training.checkpoint_every": 10,
    "eval.num_samples": 200,
    "eval.num_path_samples": 50,
    "eval.solvers": ("euler",),
    "eval.nfe": (1, 2),
    "pairs.num_pairs": 100,
    "pairs.shard_size": 20,
    "pairs.batch_size": 20,
    "pairs.solver": "euler",
    "pairs.nfe": 4,
    "sampling.num_samples": 101,
}


def _main(workdir, mode: str, *extra) -> list[str]:
    """Runs main.py as 2 processes x 2 devices on localhost; returns their outputs."""
    port, procs = _free_port(), []
    flags = [f"--config.{k}={v!r}" if isinstance(v, tuple) else f"--config.{k}={v}" for k, v in MAIN.items()]
    for i in range(2):
        env = {**os.environ, "XLA_FLAGS": _xla_flags(2)}
        cmd = [sys.executable, "main.py", "--config=configs/quickstart.py", f"--workdir={workdir}", f"--mode={mode}"]
        cmd += [*flags, *extra, f"--coordinator_address=localhost:{port}", "--num_processes=2", f"--process_id={i}"]
        procs.append(
            subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        )
    outs = [p.communicate(timeout=300)[0] for p in procs]
    for i, (p, out) in enumerate(zip(procs, outs)):
        assert p.returncode == 0, f"process {i} of 2, --mode={mode}:\n{out[-3000:]}"
    return outs


def _one_process(workdir, mode: str, **fields) -> None:
    """main.py's run of the same config in this process (4 devices)."""
    import main

    config = _config_of("configs/quickstart.py", {**MAIN, **fields})
    main.run(config, str(workdir), mode, "configs/quickstart.py")


def test_main_runs_as_two_processes(tmp_path):
    """main.py with the coordinator flags: training and its evaluation, pairs and samples, as 2 processes x 2
    devices give what 1 process x 4 devices gives from the same checkpoint; process 0 alone prints and writes the
    run's files, and the pairs are the same files."""
    run = tmp_path / "run"
    outs = _main(run, "train")
    assert "Process 0 of 2" in outs[0] and "Results in" in outs[0] and "Results in" not in outs[1]
    two = json.loads((run / "eval" / "metrics.json").read_text())["results"]
    _one_process(run, "eval")  # the two processes' checkpoint, restored by one
    one = json.loads((run / "eval" / "metrics.json").read_text())["results"]
    assert [(r["solver"], r["nfe"]) for r in two] == [(r["solver"], r["nfe"]) for r in one]
    for a, b in zip(two, one):
        for k in a:
            if k not in ("solver", "nfe"):
                assert a[k] == pytest.approx(b[k], rel=1e-5), k  # the same samples, integrated per process or whole

    # training.init_from reads the two processes' checkpoint here too (as NumPy: its layout was 2 x 2 devices)
    from flowjax.train import workdir as workdirs

    config = _config_of("configs/quickstart.py", MAIN)
    template = train.setup(config).state
    started = workdirs.init_from_run(template, str(run))
    saved = train.load_checkpoint(config, str(run), template)
    for a, b in zip(jax.tree.leaves(started.params), jax.tree.leaves(saved.ema_params)):
        np.testing.assert_array_equal(a, b)

    _main(run, "pairs", f"--config.pairs.output_dir={tmp_path / 'pairs2'}")
    _one_process(run, "pairs", **{"pairs.output_dir": str(tmp_path / "pairs1")})
    names = sorted(os.listdir(tmp_path / "pairs1"))
    assert sorted(os.listdir(tmp_path / "pairs2")) == names and len([n for n in names if n.endswith(".npz")]) == 5
    for name in names:
        if name.endswith(".npz"):
            a, b = np.load(tmp_path / "pairs2" / name), np.load(tmp_path / "pairs1" / name)
            for k in b.files:  # the same program on the same pairs, on whichever process
                np.testing.assert_array_equal(a[k], b[k], err_msg=f"{name}:{k}")

    _main(run, "sample")
    two = dict(np.load(run / "eval" / "samples_euler_8.npz"))
    _one_process(run, "sample")
    one = dict(np.load(run / "eval" / "samples_euler_8.npz"))
    np.testing.assert_array_equal(two["x0"], one["x0"])  # 101 samples: blocks of 51 and 50, in order
    np.testing.assert_allclose(two["x1"], one["x1"], rtol=1e-6, atol=1e-6)


def _pairs_dir(directory, n=256):
    from flowjax.data import pairs as pairs_io

    rng = np.random.default_rng(0)
    x0, x1 = rng.standard_normal((2, n, 2)).astype(np.float32)
    manifest = {"num_pairs": n, "shape": [2], "shard_size": 64, "data": {"name": "moons", "source": "normal"}}
    pairs_io.write_pairs(str(directory), lambda a, b: (x0[a:b], x1[a:b]), manifest)
    return str(directory)


@pytest.mark.parametrize("kind", ["pairs", "pools", "loom"])
def test_each_process_gets_its_rows_of_the_global_batch(kind, tmp_path, monkeypatch):
    """Every data kind's input pipeline, as process 0 and 1 of 2 (jax.process_index / process_count faked):
    the two shares, put together, are the one-process batch (data, indices, the pools' matched noise), so
    that the steps see the same examples; stored pairs read only their own rows (the global batch is never
    read)."""
    from flowjax.train.inputs import make_batch_fn

    config = _config_of(
        {"pairs": "configs/quickstart.py", "pools": "configs/dansm_checkerboard.py"}.get(
            kind, "configs/loom_checkerboard.py"
        )
    )
    if kind == "pairs":
        config.data.name, config.data.data_dir, config.coupling.name = (
            "pairs",
            _pairs_dir(tmp_path / "p"),
            "independent",
        )
        config.data.num_train = 0  # all the pairs
    exp = train.setup(config)
    flat = lambda b: {k: np.asarray(v).reshape((-1,) + np.shape(v)[2:]) for k, v in b.items()}
    want = [flat(make_batch_fn(config, exp)(step)[0]) for step in (0, 7)]
    if kind == "pairs":
        exp = exp._replace(dataset=exp.dataset._replace(global_batch=lambda step: pytest.fail("read whole")))
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    shares = []
    for index in range(2):
        monkeypatch.setattr(jax, "process_index", lambda index=index: index)
        batch_fn = make_batch_fn(config, exp)
        shares.append([flat(batch_fn(step)[0]) for step in (0, 7)])
    for step in range(2):
        assert sorted(shares[0][step]) == sorted(want[step])
        for k, v in want[step].items():
            np.testing.assert_array_equal(np.concatenate([shares[0][step][k], shares[1][step][k]]), v, err_msg=k)


def test_real_images_of_lmm_stage_two_are_read_per_process(mock_tfds, tmp_path, monkeypatch):
    """LMM's second stage adds real images of the teacher's data set (flipped, labelled) to every batch: each
    process reads only its rows of them from the files (the global batch is never read), and the two shares
    together are the one-process batch."""
    from flowjax.data import dataset as datasets
    from flowjax.train.inputs import make_batch_fn

    config = _config_of("configs/quickstart.py", {**OVERRIDES, "training.batch_size": 8})
    config.data.name, config.data.data_dir, config.coupling.name = "pairs", _pairs_dir(tmp_path / "p"), "independent"
    config.data.num_train = 0
    exp = train.setup(config)
    real_config = config.copy_and_resolve_references()
    real_config.data.name, real_config.data.data_dir, real_config.data.random_flip = "cifar10", str(tmp_path), True
    real_config.model.num_classes = 10
    real = datasets.from_config(real_config)
    flat = lambda b: {k: np.asarray(v).reshape((-1,) + np.shape(v)[2:]) for k, v in b.items()}
    want = [flat(make_batch_fn(config, exp, real)(step)[0]) for step in (0, 5)]
    assert {"real", "real_label"} <= want[0].keys()
    real = real._replace(global_batch=lambda step: pytest.fail("read whole"))
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    shares = []
    for index in range(2):
        monkeypatch.setattr(jax, "process_index", lambda index=index: index)
        batch_fn = make_batch_fn(config, exp, real)
        shares.append([flat(batch_fn(step)[0]) for step in (0, 5)])
    for step in range(2):
        for k in ("real", "real_label"):
            np.testing.assert_array_equal(np.concatenate([shares[0][step][k], shares[1][step][k]]), want[step][k])


def test_image_fid_of_two_processes_is_the_fid_of_one(tmp_path, monkeypatch):
    """tests/test_evaluate_images.py's FID sweep (20 samples and 24 reference images in batches of 7, shared
    2 / 1 and 2 / 2 by the processes; path samples 1 / 1) on 2 processes x 2 devices: the same rows as this
    process's run, each FID that of all samples at once against all reference images; process 0 writes."""
    import test_evaluate_images as case

    from flowjax import evaluate_fid
    from flowjax.metrics import fid

    root = case.make_root(tmp_path)
    spec = {
        "devices": 2,
        "task": "fid",
        "root": str(root),
        "workdir": str(tmp_path / "two"),
        "out": str(tmp_path / "rows"),
    }
    procs = _start(spec, tmp_path)
    monkeypatch.setattr(evaluate_fid.inception, "check_inception_file", lambda path: None)
    one = case.run(case.make_config(root), tmp_path / "one", case.make_features(0))
    _wait(procs, tmp_path)
    rows = [json.loads((tmp_path / f"rows.{i}.json").read_text()) for i in range(2)]
    assert rows[0] == rows[1]  # every process returns the combined rows
    config, features = case.make_config(root), case.make_features(0)
    reference = case.reference_stats(config, features)
    for got, want in zip(rows[0], one, strict=True):
        assert got.keys() == want.keys() and (got["solver"], got["nfe"]) == (want["solver"], want["nfe"])
        for k in set(want) - {"solver", "nfe"}:
            assert got[k] == pytest.approx(want[k], rel=1e-5, abs=1e-9), k
        if "fid" in got:
            expected = fid.frechet_distance(*case.sample_stats(config, got["nfe"], features), *reference)
            assert got["fid"] == pytest.approx(expected, rel=1e-5, abs=1e-9)
    with open(tmp_path / "two" / "eval" / "metrics.json") as f:
        assert json.load(f)["results"] == rows[0]


def test_shares_cover_every_item_once_in_order(monkeypatch):
    from flowjax import distributed

    for count in (1, 2, 3, 4):
        for n in (0, 1, 5, 101, 200):
            monkeypatch.setattr(jax, "process_count", lambda count=count: count)
            shares = []
            for index in range(count):
                monkeypatch.setattr(jax, "process_index", lambda index=index: index)
                shares.append(distributed.my_share(n))
            assert [i for share in shares for i in share] == list(range(n))  # contiguous blocks, process order
            assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_feature_statistics_combine_exactly_across_any_split():
    """`fid.combine_stats` of per-process accumulators (each merged batch by batch; some empty) against the
    statistics of all the features at once (float64 round-off)."""
    from flowjax.metrics import fid

    rng = np.random.default_rng(0)
    features = rng.standard_normal((103, 6)) * rng.uniform(0.5, 3, 6) + rng.standard_normal(6)
    want = fid.statistics(features)
    for cuts in ([], [50], [0, 10, 10, 103], [1, 2, 60, 99]):
        accs = []
        for part in np.split(features, cuts):
            acc = None
            for batch in np.array_split(part, max(1, len(part) // 7)) if len(part) else []:
                acc = fid.merge_stats(acc, batch) if len(batch) else acc
            accs.append(acc)
        got = fid.merged_stats(fid.combine_stats(accs))
        np.testing.assert_allclose(got[0], want[0], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got[1], want[1], rtol=1e-12, atol=1e-12)


def test_distributed_flags_are_checked_and_a_single_process_stays_one():
    from flowjax import distributed

    assert not distributed.initialize("auto", environ={})  # nothing asks for several processes
    assert not distributed.initialize("auto", environ={"SLURM_NTASKS": "8", "SLURM_JOB_ID": "1"})  # sbatch's shell
    assert not distributed.initialize("off", environ={"SLURM_STEP_NUM_TASKS": "8"})
    assert distributed.launched_processes({"SLURM_STEP_NUM_TASKS": "8"}) == 8
    assert distributed.launched_processes({"OMPI_COMM_WORLD_SIZE": "4"}) == 4
    assert distributed.launched_processes({"SLURM_STEP_NUM_TASKS": "1"}) == 1
    with pytest.raises(ValueError, match="--num_processes, --process_id missing"):
        distributed.initialize("auto", coordinator_address="host0:1234", environ={})
    with pytest.raises(ValueError, match=r"--process_id=2 must be in \[0, --num_processes=2\)"):
        distributed.initialize("on", "host0:1234", 2, 2, environ={})
    with pytest.raises(ValueError, match="--distributed=off with --coordinator_address"):
        distributed.initialize("off", coordinator_address="host0:1234", environ={})
    with pytest.raises(ValueError, match="Unknown --distributed='yes'"):
        distributed.initialize("yes")


def test_remote_workdir_is_refused_before_anything_runs():
    import main

    with pytest.raises(ValueError, match="--workdir=gs://bucket/run: flowjax writes its workdir with local file"):
        main.run(_config_of("configs/quickstart.py"), "gs://bucket/run", "train", "")
    assert not os.path.exists(os.path.join(ROOT, "gs:"))
