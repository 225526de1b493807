"""Every config builds and takes a train step; README's notebook example runs and learns."""

import contextlib
import glob
import io
import json
import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest
from ml_collections import config_flags

from flowjax import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# builders, the digits configs (tested below), the paper-scale image configs (tests/test_paper_configs.py,
# tests/test_edm_configs.py, tests/test_lmm_configs.py) and the configs that need a teacher's pairs
# (tests/test_rectify.py, tests/test_lmm_training.py)
PAPER_SCALE = (
    "rf_cifar10.py",
    "loom_cifar10.py",
    "loom_imagenet32.py",
    "loom_imagenet64.py",
    "dansm_cifar10.py",
    "dansm_imagenet64.py",
    "reflow_8gaussians_moons.py",
    "rf_cifar10_reflow.py",
    "rf_cifar10_distill.py",
    "loom_cifar10_reflow.py",
    "edm_cifar10.py",
    "edm_imagenet64.py",
    "edm_afhq64.py",
    "lmm_cifar10.py",
    "lmm_imagenet64.py",
    "lmm_afhq64.py",
    "curvature_cifar10_a.py",
    "curvature_cifar10_b.py",
    "curvature_mnist.py",
)
BUILDERS = ("__init__.py", "toy.py", "digits.py", "images.py", "lmm.py", "curvature.py")  # no get_config of their own
CONFIGS = sorted(
    p
    for p in glob.glob(os.path.join(ROOT, "configs", "*.py"))
    if os.path.basename(p) not in BUILDERS + PAPER_SCALE and "_digits" not in p
)
# the coupling comparison on the digits; configs/rf_digits.py (class subsets) is tested in tests/test_train.py,
# configs/edm_digits.py (another loss, conditional) in tests/test_edm_training.py, configs/lmm_digits.py (pairs) in
# benchmarks/lmm.py
DIGITS = sorted(
    p
    for p in glob.glob(os.path.join(ROOT, "configs", "*_digits.py"))
    if not p.endswith(("rf_digits.py", "edm_digits.py", "lmm_digits.py"))
)


def load(path):
    return config_flags.config_flags._LoadConfigModule("config", path).get_config()


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_builds_and_steps(path):
    config = load(path)
    assert config.training.batch_size % 4 == 0
    config.training.batch_size = 16
    exp = train.setup(config)
    batch, _ = train.make_batch_fn(config, exp)(0)
    _, metrics = train.pmapped_train_step(config, exp)(train.replicate(exp.state), batch, jax.random.PRNGKey(1))
    assert np.isfinite(float(metrics["loss"][0]))
    # the coupling does what the config says: OT never raises the minibatch cost
    if config.coupling.name == "exact_ot":
        assert float(metrics["coupling/cost_after"][0]) <= float(metrics["coupling/cost_before"][0])


def test_digits_configs_differ_only_in_the_coupling():
    configs = [load(p) for p in DIGITS]
    assert {c.coupling.name for c in configs} == {"independent", "exact_ot", "loom", "dansm", "encoder"}
    for c in configs:
        assert c.model == configs[0].model and c.data == configs[0].data and c.optim == configs[0].optim


def test_digits_train_and_evaluate_end_to_end(tmp_path):
    """A LOOM digits run (4 steps; its UNet cut to one level to keep compiles short) through train and the
    image evaluation."""
    from flowjax import evaluate
    from flowjax.data import dataset as datasets

    config = load(os.path.join(ROOT, "configs", "loom_digits.py"))
    config.model.channel_mults, config.model.attention_resolutions = (1,), (8,)
    config.model.base_channels, config.model.head_channels = 16, 16
    config.training.num_steps, config.training.batch_size = 4, 32
    config.training.checkpoint_every = 4
    config.eval.solvers, config.eval.nfe, config.eval.path_nfe = ("euler",), (2,), 4
    exp = train.setup(config)
    state = train.train(config, str(tmp_path), exp)
    assert int(state.step) == 4
    assert not np.array_equal(state.coupling_state["seeds"], exp.state.coupling_state["seeds"])
    rows = evaluate.evaluate(config, str(tmp_path), exp.velocity_fn, state.ema_params, 4, exp.noise_one)
    assert {(r["solver"], r["nfe"]) for r in rows} == {("euler", 2), ("euler", 4)}
    for r in rows:  # an untrained model's samples are far from the digits by either metric
        assert r["w2"] > 1.0 and r["fd_digits"] > 10.0
    assert os.path.getsize(os.path.join(tmp_path, "eval", "samples.png")) > 5_000
    config.eval.num_samples = 100
    with pytest.raises(ValueError, match="eval.num_samples"):
        datasets.held_out(config)


def test_readme_example_learns():
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    code = re.search(r"<!-- readme-example.*?-->\n```python\n(.*?)```", readme, re.S).group(1)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    w2 = float(re.search(r"W2 at NFE 2: ([0-9.]+)", out.getvalue()).group(1))
    assert w2 < 0.5, out.getvalue()  # the untrained source (8 Gaussians) is at W2 = 1.33 from the moons


SAMPLE = {int: 3, float: 0.5, bool: True, str: "abc", tuple: (1, 2)}


PARSE = """
import json, sys
from absl import flags
from ml_collections import config_flags
config_flags.DEFINE_config_file("config", None, "")
flags.FLAGS(sys.argv)
print(json.dumps(flags.FLAGS.config.to_dict()))
"""


def test_every_default_field_can_be_overridden_on_the_command_line():
    """Each field of configs/default.py, the typed None placeholders included, parses from --config.S.F=V as
    main.py's flags parse it (in a process of its own: absl's flags are global)."""
    config = load(os.path.join(ROOT, "configs", "default.py"))
    fields = {f"{s}.{n}": config[s].get_ref(n).get_type() for s in config for n in config[s]}
    untyped = sorted(k for k, kind in fields.items() if kind not in SAMPLE)
    assert not untyped, untyped  # every field has a type the flags parser can read
    values = {k: SAMPLE[kind] for k, kind in fields.items()}
    argv = [f"--config={os.path.join(ROOT, 'configs', 'default.py')}"] + [
        f"--config.{k}={v}" for k, v in values.items()
    ]
    proc = subprocess.run([sys.executable, "-c", PARSE, *argv], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    parsed = json.loads(proc.stdout)
    got = {k: parsed[k.split(".")[0]][k.split(".")[1]] for k in values}
    assert got == {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def _main_error(*flags_):
    env = dict(os.environ, XLA_FLAGS="", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "main.py", "--workdir=unused", *flags_], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    return proc.returncode, proc.stderr.strip().splitlines()


def test_bad_config_file_or_field_is_one_line():
    code, lines = _main_error("--config=configs/no_such_config.py")
    assert code == 2 and len(lines) == 1 and "no_such_config.py" in lines[0] and "No such file" in lines[0]
    code, lines = _main_error("--config=configs/quickstart.py", "--config.training.batchsize=8")
    assert code == 2 and len(lines) == 1 and 'Did you mean "batch_size"' in lines[0]
    code, lines = _main_error("--config=configs/quickstart.py", "--config.model.base_channels=1.5")
    assert code == 2 and len(lines) == 1 and "config.model.base_channels" in lines[0]
