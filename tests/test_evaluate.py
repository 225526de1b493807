"""The evaluation sweep's writes: a workdir it cannot write is refused before anything is computed, and a
failed write shows the results instead of losing them."""

import os

import jax.numpy as jnp
import pytest

from configs import quickstart
from flowjax import evaluate, io


def _never_called(params, x, t):
    raise AssertionError("the sweep ran before the workdir was checked")


def _blocked_workdir(tmp_path):
    (tmp_path / "a_file").write_text("")
    return str(tmp_path / "a_file" / "run")  # its eval/ folder cannot be created: a file is in the way


def test_unwritable_workdir_is_refused_before_the_sweep(tmp_path):
    config = quickstart.get_config()
    workdir = _blocked_workdir(tmp_path)
    with pytest.raises(ValueError, match="Cannot write the evaluation results.*Nothing was computed"):
        evaluate.evaluate(config, workdir, _never_called, None, 0, lambda key: jnp.zeros(2))
    with pytest.raises(ValueError, match="Cannot write the evaluation results"):
        evaluate.write_samples(config, workdir, _never_called, None, lambda key: jnp.zeros(2))
    evaluate.check_writable(str(tmp_path / "fine"))  # a fresh workdir is writable
    assert os.listdir(tmp_path / "fine" / "eval") == []  # and the check leaves nothing behind


def test_failed_metrics_write_shows_the_results(tmp_path, monkeypatch):
    def full_disk(path, obj):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(io, "write_json_atomic", full_disk)
    rows = [{"solver": "euler", "nfe": 1, "w2": 0.123456}, {"solver": "heun", "nfe": 2, "w2": 0.654321}]
    with pytest.raises(ValueError, match="No space left") as err:
        evaluate.write_metrics(str(tmp_path), "configs/quickstart.py", 7, rows)
    assert evaluate.format_table(rows) in str(err.value)
