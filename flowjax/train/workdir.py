"""A run's workdir: its identity (config.json) and its orbax checkpoints."""

from __future__ import annotations

import json
import os

import flax
import jax
import jax.numpy as jnp
import ml_collections
import orbax.checkpoint as ocp
from absl import logging

from flowjax import io
from flowjax.train.step import TrainState

# Config entries that define what a workdir's run is; the rest (num_steps, eval, logging) may change on resume.
RUN_IDENTITY = (
    "data",
    "model",
    "coupling",
    "loss",
    "optim",
    "training.seed",
    "training.batch_size",
    "training.ema_decay",
    "training.init_from",
)


def check_workdir(config: ml_collections.ConfigDict, workdir: str, record: bool = True) -> None:
    """Refuses a workdir that holds a run of another config; with ``record``, writes config.json."""
    path = os.path.join(workdir, "config.json")
    current = json.loads(config.to_json_best_effort())
    if os.path.exists(path):
        with open(path) as f:
            saved = json.load(f)
        # Fields new in flowjax since the run started are absent from its config.json: a new field's default
        # keeps the old behaviour, so they are not a difference (they are recorded below).
        diffs, added = io.config_diff(saved, current, RUN_IDENTITY, saved_as="in the workdir")
        if added:
            logging.info("Workdir %s predates config fields %s; resuming with their current values.", workdir, added)
        if diffs:
            raise ValueError(
                f"Workdir {workdir} holds a run of another config ({'; '.join(diffs)}). Nothing was changed. "
                "Use a new --workdir, or the workdir's own config (its config.json) to resume it."
            )
    if record:
        io.write_json_atomic(path, current)


def checkpoint_manager(workdir: str, config: ml_collections.ConfigDict) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=config.training.keep_checkpoints, create=True)
    return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), "checkpoints"), options=options)


def init_from_run(state: TrainState, workdir: str) -> TrainState:
    """``state`` with its parameters and EMA parameters set to the EMA parameters of the latest checkpoint
    in another run's ``workdir`` (a reflow student starting from its teacher, as LOOM-CFM's and rectified
    flow's reflow runs do). The optimizer and coupling states stay fresh; the networks must match."""
    directory = os.path.join(os.path.abspath(workdir), "checkpoints")
    step = ocp.CheckpointManager(directory).latest_step() if os.path.isdir(directory) else None
    if step is None:
        raise FileNotFoundError(
            f"training.init_from={workdir!r} has no checkpoint in {directory}; train that run "
            "first, or clear training.init_from."
        )
    raw = ocp.StandardCheckpointer().restore(os.path.join(directory, str(step), "default"))
    try:
        params = flax.serialization.from_state_dict(state.params, raw["ema_params"])
        mismatch = jax.tree.map(lambda a, b: a.shape != b.shape, state.params, params)
    except (KeyError, ValueError, TypeError) as err:
        raise ValueError(
            f"training.init_from={workdir!r}: its network differs from this config's model ({err}); "
            "use the teacher's model settings."
        ) from err
    if any(jax.tree.leaves(mismatch)):
        raise ValueError(
            f"training.init_from={workdir!r}: its parameter shapes differ from this config's model; "
            "use the teacher's model settings."
        )
    params = jax.tree.map(jnp.asarray, params)
    logging.info("Initialised from the EMA parameters of %s at step %d.", workdir, step)
    return state.replace(params=params, ema_params=params)


def restore_latest(mngr: ocp.CheckpointManager, template: TrainState) -> TrainState | None:
    step = mngr.latest_step()
    if step is None:
        return None
    return mngr.restore(step, args=ocp.args.StandardRestore(template))


def load_checkpoint(config: ml_collections.ConfigDict, workdir: str, template: TrainState) -> TrainState:
    """The workdir's latest checkpoint, refusing a workdir of another config."""
    if not os.path.isdir(os.path.join(workdir, "checkpoints")):
        raise FileNotFoundError(f"No checkpoints in {workdir}; train first with --mode=train.")
    check_workdir(config, workdir, record=False)
    state = restore_latest(checkpoint_manager(workdir, config), template)
    if state is None:
        raise FileNotFoundError(f"No checkpoint saved in {workdir}/checkpoints; train first with --mode=train.")
    return state
