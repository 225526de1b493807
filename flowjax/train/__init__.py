"""Training: from a config to steps on devices.

- `step`: the pure per-device train step (pairing, loss, Adam, EMA) and the train state;
- `experiment`: what a config builds, with no side effects (`setup`, `validate`);
- `inputs`: each step's batch, sliced per process and device, pool couplings paired on the way;
- `workdir`: a run's identity (config.json) and its orbax checkpoints;
- `loop`: device placement, pairing ahead, logging, checkpoints: `train`.
"""

from flowjax.train.experiment import Experiment, init_state, setup, validate, validate_lines
from flowjax.train.inputs import make_batch_fn
from flowjax.train.loop import make_advance_fn, pmapped_train_step, replicate, train
from flowjax.train.step import AXIS, PREDICTION, TrainState, make_optimizer, make_train_step
from flowjax.train.workdir import check_workdir, init_from_run, load_checkpoint

__all__ = [
    "AXIS",
    "PREDICTION",
    "Experiment",
    "TrainState",
    "check_workdir",
    "init_from_run",
    "init_state",
    "load_checkpoint",
    "make_advance_fn",
    "make_batch_fn",
    "make_optimizer",
    "make_train_step",
    "pmapped_train_step",
    "replicate",
    "setup",
    "train",
    "validate",
    "validate_lines",
]
