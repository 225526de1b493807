"""A run's workdir: its lock, its identity (config.json, config_history.json) and its orbax checkpoints.

- One writer: every mode takes ``<workdir>/.lock`` (`lock`) before it reads or writes anything else, so a
  second process on the same workdir is refused instead of mixing two runs' files.
- One run: ``config.json`` records the run's config; another run identity (`RUN_IDENTITY`) is refused.
  The fields of `RESUMABLE` may change when a run resumes (a lower learning rate for a diverged run), and
  each change is appended to ``config_history.json`` with the step it took effect at.
- Checkpoints: resuming takes the newest checkpoint that can be read (`restore_newest`); a damaged newer
  one is skipped with a message, and moved to ``<workdir>/damaged_checkpoints/`` by training (never deleted).
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
import shutil
import socket
import sys
from typing import Iterator

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from flowjax import distributed, io
from flowjax.train.step import PREDICTION, TrainState

try:
    import fcntl
except ImportError:  # not POSIX (Windows): workdirs are not locked
    fcntl = None

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
    "training.ema_warmup",
    "training.ema_start",
    "training.init_from",
)
# Fields of RUN_IDENTITY that a resumed run may change: the step size and its safeguards, what one changes to
# rescue a diverging run. The optimizer's state has the same structure whatever their values (the schedule is a
# function of the step count kept in that state), so the checkpoint restores into it; only switching gradient
# clipping on or off (optim.grad_clip 0 <-> > 0) adds or removes a state and stays refused.
RESUMABLE = ("optim.learning_rate", "optim.schedule", "optim.warmup_steps", "optim.grad_clip")

LOCK_FILE = ".lock"
HISTORY_FILE = "config_history.json"
DAMAGED_DIR = "damaged_checkpoints"


class WorkdirInUse(ValueError):
    """Another process holds the workdir's lock."""


# ----------------------------------------------------------------------------------------------------------------
# The lock


_held: dict[str, list] = {}  # lock path -> [file descriptor, depth]: this process's locks (re-entrant)


def _holder_text() -> str:
    return json.dumps(
        {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.datetime.now().isoformat(timespec="seconds"),
            "command": " ".join(sys.argv),
        }
    )


def _read_holder(fd: int) -> dict | None:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 1 << 16).decode(errors="replace").strip()
    if not text:
        return None
    try:
        holder = json.loads(text)
        return holder if isinstance(holder, dict) else {"text": text}
    except ValueError:
        return {"text": text}


def _describe(holder: dict | None) -> str:
    if not holder:
        return "another process"
    if "pid" not in holder:
        return f"another process ({holder.get('text', '')!r})"
    return (
        f"process {holder['pid']} on host {holder.get('host', '?')} (since {holder.get('started', '?')}: "
        f"{holder.get('command', '?')})"
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_local(workdir: str) -> None:
    """Refuses a remote workdir (gs://, s3://, ...): orbax would write its checkpoints there, but the rest of a
    workdir is written with local file calls (the lock's flock, config.json, the TensorBoard events, eval/, pairs/,
    damaged checkpoints moved aside), which would land in a local directory named "gs:"."""
    if "://" in workdir:
        raise ValueError(
            f"--workdir={workdir}: flowjax writes its workdir with local file calls (lock, config.json, events, "
            "eval/, pairs); use a local or shared-filesystem path, or mount the bucket with gcsfuse and use the "
            "mount (launch/tpu_pod.sh does: gs://BUCKET/DIR runs in /mnt/gcs/BUCKET/DIR)."
        )


@contextlib.contextmanager
def lock(workdir: str, create: bool = True) -> Iterator[None]:
    """Holds ``<workdir>/.lock`` for the duration: one process writes a workdir at a time.

    The lock is an exclusive `fcntl.flock` on the file, which the kernel releases when the process ends however
    it ends (also when killed), so a lock is never left held by a process that is gone; the file names its
    holder (pid, host, start, command) for the refusal message, and is emptied on release. A file that still
    names a holder when the lock is free was left by a process that was killed or crashed: it is taken over with
    a message. Re-entrant within a process (`train` inside `main.run`). In a multi-process (multi-host) run only
    process 0 takes it: the processes of one run are started together by the launcher, and process 0 is the one
    that writes config.json, the events and eval/.

    ``create``: create a missing workdir (training); otherwise a missing workdir is refused (nothing to read).
    Raises `WorkdirInUse` (a ValueError) if another process holds the lock.
    """
    if jax.process_index() > 0 or fcntl is None:
        yield
        return
    if not os.path.isdir(workdir) and not create:
        raise FileNotFoundError(f"No run in {workdir} (no such directory); train first with --mode=train.")
    path = os.path.join(os.path.abspath(workdir), LOCK_FILE)
    if path in _held:
        _held[path][1] += 1
        try:
            yield
        finally:
            _held[path][1] -= 1
        return
    try:
        os.makedirs(workdir, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as err:
        raise ValueError(
            f"Cannot write the workdir's lock {path} ({err}). Nothing was changed; make the workdir writable (or "
            "copy it somewhere writable), or use another --workdir."
        ) from err
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            # A file system without locks (some network or FUSE mounts): run unprotected rather than not at all.
            logging.warning("Cannot lock %s (%s); not protected against a second process on this workdir.", path, err)
            os.close(fd)
            yield
            return
        holder = _read_holder(fd)
        os.close(fd)
        raise WorkdirInUse(
            f"Workdir {workdir} is in use by {_describe(holder)}; nothing was changed. Wait for that run to "
            "finish, stop it (kill -TERM <pid> saves a checkpoint and exits), or use another --workdir."
        ) from None
    try:
        previous = _read_holder(fd)
        if previous:
            pid, same_host = previous.get("pid"), previous.get("host") == socket.gethostname()
            gone = " (no longer running)" if same_host and isinstance(pid, int) and not _alive(pid) else ""
            logging.warning(
                "Took over the lock of %s left by %s%s: it ended without releasing it (killed or crashed).",
                workdir,
                _describe(previous),
                gone,
            )
        holder = _holder_text().encode()
        os.pwrite(fd, holder, 0)  # then cut: a reader never finds it empty while it is held
        os.ftruncate(fd, len(holder))
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        raise
    _held[path] = [fd, 1]
    try:
        yield
    finally:
        del _held[path]
        try:
            os.ftruncate(fd, 0)  # an empty file: released cleanly (a non-empty one left unlocked was abandoned)
        finally:
            os.close(fd)  # closing releases the flock


# ----------------------------------------------------------------------------------------------------------------
# The run's identity


def _read_json(path: str, what: str):
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError as err:  # json.JSONDecodeError, UnicodeDecodeError
        raise ValueError(
            f"{path} is damaged ({type(err).__name__}: {err}); it records {what}. Restore it from a copy, or move it "
            f"aside (mv {path} {path}.damaged) to record the current config in its place."
        ) from err


def check_workdir(config: ml_collections.ConfigDict, workdir: str, record: bool = True) -> list[str]:
    """Refuses a workdir that holds a run of another config; returns the `RESUMABLE` fields that differ
    (``"optim.learning_rate: 0.001 in the workdir, 0.0001 now"``). With ``record``, writes config.json and
    appends those changes to config_history.json (`record_config`)."""
    path = os.path.join(workdir, "config.json")
    current = json.loads(config.to_json_best_effort())
    changes = []
    if os.path.exists(path):
        saved = _read_json(path, "the run's config, which a resumed run is checked against")
        if not isinstance(saved, dict):
            raise ValueError(f"{path} is damaged (not a JSON object); move it aside or restore it from a copy.")
        # Fields new in flowjax since the run started are absent from its config.json: a new field's default
        # keeps the old behaviour, so they are not a difference (they are recorded below).
        diffs, added = io.config_diff(saved, current, RUN_IDENTITY, saved_as="in the workdir")
        if added:
            logging.info("Workdir %s predates config fields %s; resuming with their current values.", workdir, added)
        clip = saved.get("optim", {}).get("grad_clip", 0)
        switches_clipping = isinstance(clip, (int, float)) and (clip > 0) != (config.optim.grad_clip > 0)
        field = lambda d: d.split(":")[0]
        changes = [
            d for d in diffs if field(d) in RESUMABLE and not (field(d) == "optim.grad_clip" and switches_clipping)
        ]
        diffs = [
            d
            + (" (switching clipping on or off changes the optimizer's state)" if field(d) == "optim.grad_clip" else "")
            for d in diffs
            if d not in changes
        ]
        if diffs:
            raise ValueError(
                f"Workdir {workdir} holds a run of another config ({'; '.join(diffs)}). Nothing was changed. "
                "Use a new --workdir, or the workdir's own config (its config.json) to resume it."
            )
    if record:
        record_config(config, workdir, changes, None)
    return changes


def record_config(config: ml_collections.ConfigDict, workdir: str, changes: list[str], step: int | None) -> None:
    """Writes config.json; appends ``changes`` (from `check_workdir`), if any, to config_history.json with the
    step they take effect at, so that the workdir keeps every value its steps were trained with. In a
    multi-process run the first process writes them."""
    if not distributed.is_primary():
        return
    if changes:
        path = os.path.join(workdir, HISTORY_FILE)
        history = _read_json(path, "the config changes of resumed runs") if os.path.exists(path) else []
        entry = {"step": step, "time": datetime.datetime.now().isoformat(timespec="seconds"), "changes": changes}
        io.write_json_atomic(path, history + [entry])
        logging.info("Resuming %s at step %s with %s (recorded in %s).", workdir, step, "; ".join(changes), path)
    io.write_json_atomic(os.path.join(workdir, "config.json"), json.loads(config.to_json_best_effort()))


# ----------------------------------------------------------------------------------------------------------------
# Checkpoints


def checkpoint_manager(workdir: str, config: ml_collections.ConfigDict) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=config.training.keep_checkpoints, create=True)
    return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), "checkpoints"), options=options)


def _reason(err: BaseException) -> str:
    """An exception's class and the gist of its message, on one line: tensorstore's messages end in the
    JSON spec of the store (kilobytes), which is cut off, and the rest keeps its last 300 characters."""
    text = " ".join(str(err).split(" [tensorstore_spec")[0].split())
    return f"{type(err).__name__}: {text if len(text) <= 300 else '...' + text[-300:]}"


STATE_FIELDS = ("step", "params", "ema_params", "opt_state", "coupling_state")


def checkpoint_tree(state: TrainState, for_save: bool = False) -> dict:
    """What a checkpoint holds: the train state's fields, with ``disc`` (LMM's adversarial stage) and
    ``coupling_params`` (a learned coupling) only for runs that have them, so that every other run's checkpoints
    keep the layout they had before these existed (and those written before them still restore).

    In a multi-process run every process holds the same state; orbax saves it as arrays replicated over every
    device (``for_save``: `distributed.to_global`; a restore's template: `distributed.global_template`), so that
    one copy is written, and the checkpoint is the one a single process writes: it restores on any process count.
    """
    tree = {name: getattr(state, name) for name in STATE_FIELDS}
    for name in ("disc", "coupling_params"):
        if getattr(state, name) is not None:
            tree[name] = getattr(state, name)
    return distributed.to_global(tree) if for_save else tree


def restore_newest(mngr: ocp.CheckpointManager, template: TrainState, move_damaged: bool = False) -> TrainState | None:
    """The newest checkpoint of ``mngr`` that restores into ``template``; None if there is none.

    A checkpoint that cannot be read (a damaged file, a save cut short) is skipped with a warning naming its
    step and the error, and the one before it is tried. ``move_damaged`` (training) moves the skipped ones to
    ``<workdir>/damaged_checkpoints/<step>``, where they are kept: left in place, the resumed run would save
    its own checkpoint of that step over them and orbax's ``max_to_keep`` would delete them. If none can be
    read, raises ValueError naming the directory and each error, and moves nothing.
    """
    directory = str(mngr.directory)
    failures = []
    for step in sorted(mngr.all_steps(), reverse=True):
        try:
            target = distributed.global_template(checkpoint_tree(template))
            restored = mngr.restore(step, args=ocp.args.StandardRestore(target))
            state = TrainState(**distributed.to_local(restored))
        except Exception as err:  # any failure to read it: orbax, tensorstore, JSON, missing files
            failures.append((step, _reason(err)))
            logging.warning("Checkpoint step %d in %s cannot be read (%s); skipped.", step, directory, failures[-1][1])
            continue
        if failures:
            moved = (
                [_move_aside(directory, s) for s, _ in failures] if move_damaged and distributed.is_primary() else []
            )
            distributed.barrier("flowjax-damaged-checkpoints-moved")  # every process reloads after the move
            logging.warning(
                "Using step %d, the newest checkpoint that can be read in %s; skipped step%s %s%s.",
                step,
                directory,
                "s" if len(failures) > 1 else "",
                ", ".join(str(s) for s, _ in failures),
                f" (moved to {', '.join(moved)}, not deleted)" if moved else "",
            )
            if move_damaged:
                mngr.reload()
        return state
    if failures:
        listing = "; ".join(f"step {s}: {r}" for s, r in failures)
        raise ValueError(
            f"No checkpoint in {directory} can be read ({listing}). Nothing was changed. If the code or the model "
            "changed since they were written, use the version that wrote them; to start over, move them aside "
            f"(mv {directory} {directory}.damaged) or use a new --workdir."
        )
    return None


def _move_aside(directory: str, step: int) -> str:
    parent = os.path.join(os.path.dirname(directory), DAMAGED_DIR)
    os.makedirs(parent, exist_ok=True)
    target, n = os.path.join(parent, str(step)), 1
    while os.path.exists(target):
        target, n = os.path.join(parent, f"{step}.{n}"), n + 1
    shutil.move(os.path.join(directory, str(step)), target)
    return target


def init_from_run(state: TrainState, workdir: str, prediction: str | None = None) -> TrainState:
    """``state`` with its parameters and EMA parameters set to the EMA parameters of the latest checkpoint
    in another run's ``workdir`` (a reflow student starting from its teacher, as LOOM-CFM's and rectified
    flow's reflow runs do, or LMM's N_theta from its EDM teacher). The optimizer and coupling states stay fresh;
    the networks must match, and so must what they predict (``prediction``, `step.PREDICTION` of loss.name:
    a velocity network's weights are no denoiser's), when the run's config.json says."""
    teacher_config = os.path.join(os.path.abspath(workdir), "config.json")
    if prediction is not None and os.path.isfile(teacher_config):
        with open(teacher_config) as f:
            teacher_loss = (json.load(f).get("loss") or {}).get("name", "flow_matching")
        if PREDICTION.get(teacher_loss) != prediction:
            raise ValueError(
                f"training.init_from={workdir!r} was trained with loss.name={teacher_loss!r}: its network predicts "
                f"{PREDICTION.get(teacher_loss)!r}, this run's {prediction!r}, so its weights are no starting point. "
                "Clear training.init_from (train from scratch), or start from a teacher of the same kind."
            )
    directory = os.path.join(os.path.abspath(workdir), "checkpoints")
    step = ocp.CheckpointManager(directory).latest_step() if os.path.isdir(directory) else None
    if step is None:
        raise FileNotFoundError(
            f"training.init_from={workdir!r} has no checkpoint in {directory}; train that run "
            "first, or clear training.init_from."
        )
    try:
        raw = restore_as_numpy(os.path.join(directory, str(step), "default"))
    except Exception as err:
        raise ValueError(
            f"training.init_from={workdir!r}: its newest checkpoint {directory}/{step} cannot be read "
            f"({_reason(err)}); resume that run once (it skips a damaged checkpoint) or point to another run."
        ) from err
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


def restore_as_numpy(path: str) -> dict:
    """A checkpoint item's whole tree as NumPy arrays, on any devices and processes: a raw restore would lay the
    arrays out as they were saved, which fails on another device count (a multi-process run's checkpoint)."""
    checkpointer = ocp.PyTreeCheckpointer()
    tree = dict(checkpointer.metadata(path).item_metadata)
    args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
    return checkpointer.restore(path, args=ocp.args.PyTreeRestore(restore_args=args))


def has_checkpoints(workdir: str) -> bool:
    """Whether ``workdir`` holds any checkpoint step (damaged ones included: resuming reports those)."""
    directory = os.path.join(workdir, "checkpoints")
    return os.path.isdir(directory) and any(name.isdigit() for name in os.listdir(directory))


def load_checkpoint(config: ml_collections.ConfigDict, workdir: str, template: TrainState) -> TrainState:
    """The workdir's newest readable checkpoint, refusing a workdir of another config."""
    if not os.path.isdir(os.path.join(workdir, "checkpoints")):
        raise FileNotFoundError(f"No checkpoints in {workdir}; train first with --mode=train.")
    check_workdir(config, workdir, record=False)
    mngr = checkpoint_manager(workdir, config)
    state = restore_newest(mngr, template)  # evaluation moves nothing aside
    mngr.close()
    if state is None:
        raise FileNotFoundError(f"No checkpoint saved in {workdir}/checkpoints; train first with --mode=train.")
    return state
