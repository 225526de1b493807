"""launch/tpu_pod.sh and launch/slurm.sh: their --dry-run commands, and the arguments they refuse."""

import os
import re
import shlex
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TPU = os.path.join(ROOT, "launch", "tpu_pod.sh")
SLURM = os.path.join(ROOT, "launch", "slurm.sh")
PASSTHROUGH = ["--config.training.batch_size=512", "--mode=pairs", "--config.lmm.sot_steps=(0, 1)", "it's"]

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="the launch scripts are bash")


@pytest.fixture
def launch(tmp_path):
    """Runs a script in an empty cwd, with gcloud / sbatch / srun / scontrol replaced by stubs that record being
    called, and TMPDIR empty: a dry run must leave all three as they were."""
    bin_dir, cwd, tmp = tmp_path / "bin", tmp_path / "cwd", tmp_path / "tmp"
    for d in (bin_dir, cwd, tmp):
        d.mkdir()
    called = tmp_path / "called"
    for tool in ("gcloud", "sbatch", "srun", "scontrol"):
        stub = bin_dir / tool
        stub.write_text(f'#!/bin/sh\necho "{tool} $*" >> "{called}"\nexit 1\n')
        stub.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", TMPDIR=str(tmp))

    def run(script, *args, dry_run=True):
        argv = ["bash", script] + (["--dry-run"] if dry_run else []) + list(args)  # args may end with "-- ..."
        return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)

    yield run, cwd
    assert not called.exists(), called.read_text()
    assert os.listdir(cwd) == [] and os.listdir(tmp) == []


def commands(stdout):
    """The printed commands, split as a shell would (comments dropped)."""
    return [shlex.split(line) for line in stdout.splitlines() if line.strip() and not line.startswith("#")]


TPU_ARGS = [
    "--name=flowjax-test",
    "--zone=us-central2-b",
    "--accelerator=v4-32",
    "--config=configs/lmm_imagenet64.py",
    "--workdir=gs://bucket/runs/in64",
    "--data_dir=gs://bucket/tensorflow_datasets",
    "--spot",
]


def test_tpu_dry_run_prints_the_create_copy_install_and_run_on_every_worker(launch):
    run, _ = launch
    out = run(TPU, *TPU_ARGS, "--", *PASSTHROUGH)
    assert out.returncode == 0, out.stderr
    cmds = commands(out.stdout)
    gcloud = [c for c in cmds if c[:4] == ["gcloud", "compute", "tpus", "tpu-vm"]]
    verbs = [c[4] for c in gcloud]
    assert verbs == ["describe", "create", "scp", "ssh", "ssh"]
    create = gcloud[1]
    assert create[5] == "flowjax-test" and "--zone=us-central2-b" in create
    assert {"--accelerator-type=v4-32", "--version=tpu-ubuntu2204-base", "--spot"} <= set(create)
    assert "--worker=all" in gcloud[2] and "--worker=all" in gcloud[3] and "--worker=all" in gcloud[4]

    def remote(cmd):
        (arg,) = [a for a in cmd if a.startswith("--command=")]
        return arg[len("--command=") :]

    install = remote(gcloud[3])
    assert 'pip install "jax[tpu]"' in install and "pip install -e" in install
    # main.py writes a local path: the bucket is mounted on every worker and the run's workdir is on the mount
    assert "gcsfuse --implicit-dirs bucket /mnt/gcs/bucket" in install
    prefix = "cd ~/flowjax && "
    assert remote(gcloud[4]).startswith(prefix)
    assert shlex.split(remote(gcloud[4])[len(prefix) :]) == [
        "python3",
        "main.py",
        "--config=configs/lmm_imagenet64.py",
        "--workdir=/mnt/gcs/bucket/runs/in64",
        "--distributed=on",
        "--config.data.data_dir=gs://bucket/tensorflow_datasets",
        *PASSTHROUGH,
    ]


def test_tpu_dry_run_from_a_git_url_clones_instead_of_copying(launch):
    run, _ = launch
    args = ["--name=t", "--zone=z", "--accelerator=v5litepod-16", "--project=p", "--config=configs/quickstart.py"]
    out = run(TPU, *args, "--workdir=gs://b/q", "--repo=https://example.com/flowjax.git")
    assert out.returncode == 0, out.stderr
    cmds = commands(out.stdout)
    assert [c[4] for c in cmds] == ["describe", "create", "ssh", "ssh"]
    assert "--version=v2-alpha-tpuv5-lite" in cmds[1] and all("--project=p" in c for c in cmds)
    assert "git clone https://example.com/flowjax.git ~/flowjax" in cmds[2][-1]


def sbatch_file(stdout):
    """The printed sbatch script (between `cat > FILE <<'EOF'` and `EOF`), its path, and the command after it."""
    match = re.search(r"^cat > (\S+) <<'EOF'\n(.*?)^EOF\n(.*)", stdout, re.S | re.M)
    assert match, stdout
    return match.group(1), match.group(2), commands(match.group(3))


@pytest.mark.parametrize("per, tasks", [("gpu", "8"), ("node", "1")])
def test_slurm_dry_run_prints_the_sbatch_script_and_submits_nothing(launch, tmp_path, per, tasks):
    run, _ = launch
    workdir = tmp_path / "run"
    args = ["--nodes=2", "--gpus_per_node=8", f"--per={per}", "--config=configs/lmm_imagenet64.py"]
    out = run(SLURM, *args, f"--workdir={workdir}", "--time=48:00:00", "--", *PASSTHROUGH)
    assert out.returncode == 0, out.stderr
    path, script, after = sbatch_file(out.stdout)
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash"
    assert {"#SBATCH --nodes=2", f"#SBATCH --ntasks-per-node={tasks}", "#SBATCH --gpus-per-node=8"} <= set(lines)
    assert {"#SBATCH --job-name=lmm_imagenet64", "#SBATCH --time=48:00:00"} <= set(lines)
    assert ("export JAX_LOCAL_DEVICE_IDS=0,1,2,3,4,5,6,7" in lines) == (per == "node")
    assert not any("--requeue" in line for line in lines)
    (srun,) = [shlex.split(line) for line in lines if line.startswith("srun ")]
    assert srun == [
        "srun",
        "python",
        "main.py",
        "--config=configs/lmm_imagenet64.py",
        f"--workdir={workdir}",
        "--distributed=on",
        *PASSTHROUGH,
    ]
    assert after == [["sbatch", path]] and path == f"{workdir}/slurm/lmm_imagenet64.sbatch"
    assert not workdir.exists()


def test_slurm_requeue_and_a_relative_workdir(launch):
    run, cwd = launch
    out = run(
        SLURM,
        "--nodes=1",
        "--gpus_per_node=4",
        "--config=configs/rf_checkerboard.py:8",
        "--workdir=runs/rf",
        "--requeue",
    )
    assert out.returncode == 0, out.stderr
    _, script, _ = sbatch_file(out.stdout)
    lines = script.splitlines()
    assert {"#SBATCH --requeue", "#SBATCH --signal=TERM@120", "#SBATCH --job-name=rf_checkerboard_8"} <= set(lines)
    assert any("scontrol requeue" in line for line in lines)
    assert f"--workdir={cwd}/runs/rf" in script  # the job runs in the repository root, not here


def test_help(launch):
    run, _ = launch
    for script in (TPU, SLURM):
        out = run(script, "--help", dry_run=False)
        assert out.returncode == 0 and out.stdout.startswith("usage:")


TPU_OK = dict(a.split("=", 1) for a in TPU_ARGS[:5])
SLURM_OK = {"--nodes": "2", "--gpus_per_node": "8", "--config": "configs/quickstart.py", "--workdir": "/shared/run"}


def args_of(ok, **changes):
    """``ok`` with options changed (a value) or dropped (None), as --OPTION=VALUE arguments."""
    merged = {**ok, **{f"--{k}": v for k, v in changes.items()}}
    return [f"{k}={v}" for k, v in merged.items() if v is not None]


@pytest.mark.parametrize(
    "script, args, named",
    [
        (TPU, args_of(TPU_OK, config=None), "--config"),
        (TPU, args_of(TPU_OK, workdir="/shared/run"), "--workdir"),
        (TPU, args_of(TPU_OK, workdir="runs/x"), "--workdir"),
        (TPU, args_of(TPU_OK) + ["--zones=x"], "--zones"),
        (TPU, args_of(TPU_OK, config="configs/missing.py"), "--config"),
        (TPU, args_of(TPU_OK, accelerator="tpu"), "--accelerator"),
        (TPU, args_of(TPU_OK) + ["--name"], "--name"),
        (SLURM, args_of(SLURM_OK, config=None), "--config"),
        (SLURM, args_of(SLURM_OK, config="configs/missing.py:1"), "--config"),
        (SLURM, args_of(SLURM_OK) + ["--gpus=8"], "--gpus"),
        (SLURM, args_of(SLURM_OK, nodes="0"), "--nodes"),
        (SLURM, args_of(SLURM_OK, gpus_per_node="two"), "--gpus_per_node"),
        (SLURM, args_of(SLURM_OK, per="cpu"), "--per"),
        (SLURM, args_of(SLURM_OK, venv="/nonexistent/venv"), "--venv"),
        (SLURM, args_of(SLURM_OK, workdir="gs://bucket/run"), "--workdir"),
    ],
)
def test_refusals_exit_2_with_one_line_naming_the_argument(launch, script, args, named):
    run, _ = launch
    for dry_run in (True, False):  # refused before anything runs, dry run or not
        out = run(script, *args, dry_run=dry_run)
        assert out.returncode == 2 and out.stdout == ""
        assert re.fullmatch(rf"error: [^\n]*{re.escape(named)}\b[^\n]*\n", out.stderr), out.stderr
