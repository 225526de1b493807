"""Issue 18 item 3: a damaged newest checkpoint. Resuming falls back to the newest checkpoint that can be read,
says which one it skipped and why, keeps the damaged one (moved aside, never deleted) and continues as an
uninterrupted run would; evaluation falls back too; a damaged config.json is named."""

import glob
import logging
import os
import shutil

import jax
import numpy as np
import pytest

import flowjax
from configs import quickstart
from flowjax import train
from flowjax.train import workdir as workdirs


def tiny_config(num_steps=30):
    config = quickstart.get_config()
    config.model.hidden, config.model.time_embed_dim = (16, 16), 8
    config.training.batch_size, config.training.num_steps = 16, num_steps
    config.training.log_every = config.training.checkpoint_every = 10
    return config


def _zero_data(step_dir):
    for path in glob.glob(os.path.join(step_dir, "default", "d", "*")):
        size = os.path.getsize(path)
        with open(path, "wb") as f:
            f.write(b"\0" * size)


def _truncate_metadata(step_dir):
    path = os.path.join(step_dir, "default", "_METADATA")
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text[: len(text) // 2])


def _remove_manifest(step_dir):
    os.remove(os.path.join(step_dir, "default", "manifest.ocdbt"))


def _cut_data_file(step_dir):
    for path in glob.glob(os.path.join(step_dir, "default", "d", "*")):
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data[: len(data) // 2])


DAMAGE = {"zeroed": _zero_data, "truncated_metadata": _truncate_metadata, "no_manifest": _remove_manifest}
DAMAGE["partial_data"] = _cut_data_file


def _files(directory):
    out = {}
    for root, _, files in os.walk(directory):
        for f in files:
            with open(os.path.join(root, f), "rb") as fh:
                out[os.path.relpath(os.path.join(root, f), directory)] = fh.read()
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run saved at steps 10, 20, 30, and the state of the same run taken straight to 40."""
    base = str(tmp_path_factory.mktemp("base") / "run")
    train.train(tiny_config(30), base)
    straight = train.train(tiny_config(40), str(tmp_path_factory.mktemp("straight") / "run"))
    return base, straight


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_resume_skips_a_damaged_newest_checkpoint(tmp_path, trained, damage, caplog):
    base, straight = trained
    workdir = str(tmp_path / "run")
    shutil.copytree(base, workdir)
    damaged = os.path.join(workdir, "checkpoints", "30")
    DAMAGE[damage](damaged)
    damaged_files = _files(damaged)

    with caplog.at_level(logging.WARNING):
        evaluated = train.load_checkpoint(tiny_config(), workdir, train.setup(tiny_config()).state)
    assert int(evaluated.step) == 20 and os.path.isdir(damaged)  # evaluation falls back, moves nothing
    with caplog.at_level(logging.WARNING):
        resumed = train.train(tiny_config(40), workdir)

    # Our own warnings only: orbax's abandoned asyncio tasks may log tensorstore's whole spec themselves.
    ours = [r for r in caplog.records if r.pathname.startswith(os.path.dirname(flowjax.__file__))]
    messages = [r.getMessage() for r in ours if r.levelno >= logging.WARNING]
    assert any("Checkpoint step 30" in m and "cannot be read" in m for m in messages), messages
    assert any("Using step 20" in m and "damaged_checkpoints/30" in m for m in messages), messages
    assert max(len(m) for m in messages) < 800  # the gist of the error, not tensorstore's spec
    assert _files(os.path.join(workdir, workdirs.DAMAGED_DIR, "30")) == damaged_files  # kept as it was
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["20", "30", "40"]
    assert int(resumed.step) == 40
    for a, b in zip(jax.tree.leaves(straight.params), jax.tree.leaves(resumed.params)):
        np.testing.assert_array_equal(a, b)  # the steps 21-30 taken again are the ones the damaged file held


def test_no_readable_checkpoint_is_one_error_naming_the_directory(tmp_path, trained):
    base, _ = trained
    workdir = str(tmp_path / "run")
    shutil.copytree(base, workdir)
    for step in (10, 20, 30):
        _truncate_metadata(os.path.join(workdir, "checkpoints", str(step)))
    before = _files(workdir)
    with pytest.raises(ValueError, match=r"No checkpoint in .*checkpoints can be read \(step 30: JSONDecodeError"):
        train.train(tiny_config(40), workdir)
    assert _files(workdir) == before  # nothing moved, nothing written


@pytest.mark.parametrize("content", ["", "{", "[1, 2]"])
def test_damaged_config_json_is_named(tmp_path, trained, content):
    base, _ = trained
    workdir = str(tmp_path / "run")
    shutil.copytree(base, workdir)
    with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write(content)
    with pytest.raises(ValueError, match=r"run/config.json is damaged.*move it aside"):
        train.train(tiny_config(40), workdir)
    with pytest.raises(ValueError, match=r"run/config.json is damaged"):
        train.load_checkpoint(tiny_config(), workdir, train.setup(tiny_config()).state)
