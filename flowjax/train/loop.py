"""The training loop, the only place with side effects: device placement, pairing ahead, progress and logging,
checkpoints (resumed automatically, also from SIGTERM), the NaN check and the divergence warning.

A run holds its workdir's lock throughout (`workdir.lock`). Signals are read at step boundaries: SIGTERM (a
preemption notice) saves a checkpoint there and stops with `Stopped` (exit code 143); Ctrl-C stops there without
saving (exit code 130); on any way out, the pairing worker is stopped, the devices' work is waited for and so are
the asynchronous checkpoint saves, so that a save in flight is never cut off by the exit.
"""

from __future__ import annotations

import concurrent.futures
import math
import signal
import threading
import time
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from flowjax.keys import per_index_keys
from flowjax.train import lmm_stages
from flowjax.train import workdir as workdirs
from flowjax.train.experiment import Experiment, setup, validate_lines
from flowjax.train.inputs import make_batch_fn
from flowjax.train.step import AXIS, PREDICTION, TrainState, make_train_step
from flowjax.train.writer import MetricWriter

STEP_KEY = 2  # fold_in(PRNGKey(training.seed), STEP_KEY): the key of the steps' draws
# training.steps_per_call = 0 (auto) takes at most this many steps per call. benchmarks/toy.py measured OT-CFM on
# the 2-D toy at 96-150 steps/s with K = 1 and 221-243 with K = 40: the host round trip of each call is then a
# few per cent of the call; a larger K gains little and delays what happens at step boundaries (a SIGTERM save).
MAX_STEPS_PER_CALL = 40
# ... and only for vector examples of at most this many values (the toys' MLPs). Images (the digits' 8 x 8 too)
# take K = 1: a UNet step takes long enough that a call per step costs nothing, K stacked image batches would cost
# device memory, and XLA:CPU ran the digits UNet's steps about 30 times slower inside the K-step loop (lax.scan)
# than one per call (0.12 against 3.6 steps/s, measured with the LMM digits config at K = 8 and 1).
MAX_AUTO_EXAMPLE_SIZE = 1024
SIGTERM_EXIT, SIGINT_EXIT = 143, 130  # 128 + the signal's number, what a shell reports for a process it ended


def _per_device(fn: Callable, in_axes: tuple, donate: tuple = ()) -> Callable:
    """`jax.pmap` of ``fn`` over the local devices (axis 'batch'), whose collectives span every process's devices
    in a multi-process run; with one device in all, `jax.jit` of its vmap."""
    if jax.device_count() == 1:
        # Same program over a device axis of size 1 (vmap supports the named-axis collectives); XLA:CPU
        # runs a 1-device pmap of a UNet step much slower than this jit.
        return jax.jit(jax.vmap(fn, axis_name=AXIS, in_axes=in_axes), donate_argnums=donate)
    return jax.pmap(fn, axis_name=AXIS, in_axes=in_axes, donate_argnums=donate)


def _step_fn(config: ml_collections.ConfigDict, exp: Experiment, split: bool = False, stage: int = 1):
    return make_train_step(
        config,
        exp.apply_fn,
        exp.tx,
        exp.coupling,
        exp.noise_one,
        noise_in_batch=exp.noise_in_batch,
        match_only_steps=exp.match_only_steps,
        split=split,
        stage=stage,
    )


def _with_frozen(fn: Callable, in_axes: tuple, frozen: Any, donate: tuple = ()) -> Callable:
    """`_per_device` of ``fn(*args, frozen)`` called as ``fn(*args)``: the frozen weights (replicated once) are an
    argument of the compiled program, not constants in it (which would make it slow to compile)."""
    if frozen is None:
        return _per_device(fn, in_axes, donate)
    run = _per_device(fn, in_axes + (0,), donate)
    return lambda *args: run(*args, frozen)


def pmapped_train_step(config: ml_collections.ConfigDict, exp: Experiment, stage: int = 1) -> Callable:
    """``(replicated state, batch of [devices, b, ...] arrays, key) -> (state, metrics)`` over the local devices
    (`jax.pmap`; with one local device, `jax.jit` of the step vmapped over a device axis of size 1); ``stage`` 2 is
    LMM's adversarial stage (`lmm_stages`).

    The state argument is donated: its buffers are reused for the returned state.
    """
    frozen = None if exp.frozen is None else replicate(exp.frozen)
    return _with_frozen(_step_fn(config, exp, stage=stage), (0, 0, None), frozen, donate=(0,))


def replicate(tree: Any, devices: list | None = None) -> Any:
    """One copy of every leaf per local device (leading axis), laid out as `pmapped_train_step` returns it.

    `flax.jax_utils.replicate` places the copies on a mesh of another axis name than pmap's outputs, so
    the step's second call saw new input shardings and compiled the whole step a second time.
    """
    devices = devices or jax.local_devices()
    sharding = jax.sharding.NamedSharding(
        jax.sharding.Mesh(np.array(devices), (AXIS,)), jax.sharding.PartitionSpec(AXIS)
    )
    return jax.tree.map(lambda x: jax.device_put(jnp.broadcast_to(x, (len(devices),) + jnp.shape(x)), sharding), tree)


def make_advance_fn(config: ml_collections.ConfigDict, exp: Experiment, step_key: jax.Array | None = None) -> Callable:
    """``(replicated state, step) -> (state, metrics, pool info)``: takes steps ``step .. step + K - 1``
    (K = training.steps_per_call, >= 1) on their batches and keys (step s: ``fold_in(step_key, s)``; by default
    the training loop's key); the metrics are the last step's.

    With K > 1 and a coupling that is neither ``stateful`` nor all-gathering in the step, a worker thread
    computes the next call's K pairings (batches, noise, coupling) while this call's K updates run: the
    same steps, with exact OT's host assignments overlapping the updates. Calls for consecutive steps use
    it; any other step is paired on the spot. (A pairing that all-gathers would run collectives from two
    threads, which could reach the devices in different orders, so it keeps the single program.)

    The returned function's ``close()`` stops that worker; call it when done. training.steps_per_call = 0 takes
    `steps_per_call` from step 0 (`train` chooses it for the step it resumes at).

    An LMM run with an adversarial stage (`lmm_stages.stage_of`) compiles the second stage's step when it first
    reaches it; K divides lmm.adversarial_from, so a call never spans both stages.
    """
    if config.training.steps_per_call == 0:
        config = with_steps_per_call(config, steps_per_call(config, 0, exp.dataset.shape))
    if step_key is None:
        step_key = jax.random.fold_in(jax.random.PRNGKey(config.training.seed), STEP_KEY)
    frozen = None if exp.frozen is None else replicate(exp.frozen)
    if not lmm_stages.adversarial_stage(config):
        return _make_advance(config, exp, step_key, 1, frozen)
    made = {}

    def advance_by_stage(replicated, step: int):
        stage = lmm_stages.stage_of(config, step)
        if stage not in made:
            for other in made.values():  # the first stage is over: stop its pairing worker
                other.close()
            made[stage] = _make_advance(config, exp, step_key, stage, frozen)
            logging.info("Stage %d of the Lines Matching Model from step %d.", stage, step)
        return made[stage](replicated, step)

    advance_by_stage.close = lambda: [a.close() for a in made.values()]
    return advance_by_stage


def _make_advance(config: ml_collections.ConfigDict, exp: Experiment, step_key: jax.Array, stage: int, frozen: Any):
    """`make_advance_fn` for one stage of training."""
    batch_fn = make_batch_fn(config, exp, real=exp.real if stage == 2 else None)
    per_call, num_steps = config.training.steps_per_call, config.training.num_steps
    fold_in_steps = jax.jit(per_index_keys)  # K keys in one dispatch
    stack = lambda *a: np.stack(a, 1) if isinstance(a[0], np.ndarray) else jnp.stack(a, 1)  # host stays host

    def inputs(step: int):  # -> batches [devices, K, b, ...], keys [K], the last step's pool info
        batches = [batch_fn(s) for s in range(step, step + per_call)]
        batch = jax.tree.map(stack, *[b for b, _ in batches])
        return batch, fold_in_steps(step_key, np.arange(step, step + per_call)), batches[-1][1]

    last = lambda metrics: jax.tree.map(lambda a: a[:, -1], metrics)
    if per_call > 1 and not exp.coupling.stateful and not exp.coupling.gathers:
        pairings, updates = _step_fn(config, exp, split=True, stage=stage)
        p_pairings = _per_device(pairings, (0, None))
        p_updates = _with_frozen(updates, (0, 0, None), frozen, donate=(0,))
        worker, ahead = concurrent.futures.ThreadPoolExecutor(1), {}
        # The two threads dispatch their programs one at a time: each multi-device program then reaches every
        # device in the same order relative to the other's. Dispatched at once from both threads, a pairing and
        # the collective update could interleave differently on different devices, and XLA:CPU's rendezvous
        # of the update's collectives then waited until it aborted the process (seen on a loaded 2-core machine).
        # The programs still run concurrently: the lock is held while dispatching, not while they run.
        dispatch = threading.Lock()

        def paired_at(step: int):
            with dispatch:
                batch, keys, pool_info = inputs(step)
                paired = p_pairings(batch, keys)
            return jax.block_until_ready(paired), keys, pool_info

        def advance_paired_ahead(replicated, step: int):
            paired, keys, pool_info = (ahead.pop(step, None) or worker.submit(paired_at, step)).result()
            ahead.clear()
            if step + per_call < num_steps:
                ahead[step + per_call] = worker.submit(paired_at, step + per_call)
            with dispatch:
                replicated, metrics = p_updates(replicated, paired, keys)
            return replicated, last(metrics), pool_info

        def close():  # stops the worker: its pairing in flight calls back into Python, which must outlive it
            for future in ahead.values():
                future.cancel()
            ahead.clear()
            worker.shutdown(wait=True, cancel_futures=True)

        advance_paired_ahead.close = close
        return advance_paired_ahead

    p_step = _with_frozen(_step_fn(config, exp, stage=stage), (0, 0, None), frozen, donate=(0,))

    def advance(replicated, step: int):
        if per_call == 1:
            batch, pool_info = batch_fn(step)
            replicated, metrics = p_step(replicated, batch, jax.random.fold_in(step_key, step))
            return replicated, metrics, pool_info
        batch, keys, pool_info = inputs(step)
        replicated, metrics = p_step(replicated, batch, keys)
        return replicated, last(metrics), pool_info

    advance.close = lambda: None
    return advance


def auto_steps_per_call(num_steps: int, log_every: int, checkpoint_every: int, start: int = 0) -> int:
    """The largest K <= MAX_STEPS_PER_CALL that divides num_steps, log_every, checkpoint_every and the step the
    run starts at: the loop then logs, saves, stops and resumes at call boundaries, as it does with K = 1."""
    g = math.gcd(num_steps, log_every, checkpoint_every, start)
    return max((k for k in range(1, min(g, MAX_STEPS_PER_CALL) + 1) if g % k == 0), default=1)


def steps_per_call(config: ml_collections.ConfigDict, start: int, example_shape: tuple[int, ...]) -> int:
    """K for a run that starts at step ``start``: training.steps_per_call, or with 0 `auto_steps_per_call` (K = 1
    for images and for vectors of more than MAX_AUTO_EXAMPLE_SIZE values). A K that does not divide ``start`` (a
    run resumed from a checkpoint taken with another K) becomes gcd(K, start), which divides everything K divides: the
    steps are the same for every K (tests/test_train.py::test_steps_per_call_takes_the_same_steps)."""
    t = config.training
    k = t.steps_per_call
    if k == 0:
        small = len(example_shape) == 1 and math.prod(example_shape) <= MAX_AUTO_EXAMPLE_SIZE
        k = auto_steps_per_call(t.num_steps, t.log_every, t.checkpoint_every, start) if small else 1
        if lmm_stages.adversarial_stage(config):  # a call stays within one stage
            k = math.gcd(k, config.lmm.adversarial_from) or k
    elif start % k:
        logging.info(
            "Step %d is not a multiple of training.steps_per_call=%d: taking %d steps per call.",
            start,
            k,
            math.gcd(k, start),
        )
        k = math.gcd(k, start)
    return k


def with_steps_per_call(config: ml_collections.ConfigDict, k: int) -> ml_collections.ConfigDict:
    """A copy of ``config`` with training.steps_per_call = ``k``."""
    config = config.copy_and_resolve_references()
    config.training.steps_per_call = k
    return config


class Stopped(Exception):
    """Training stopped at a step boundary on a signal; ``exit_code`` is what main.py exits with."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


class Diverged(FloatingPointError):
    """A non-finite loss; ``latest`` is the newest checkpoint (None if none was saved)."""

    def __init__(self, message: str, step: int, latest: int | None):
        super().__init__(message)
        self.step, self.latest = step, latest


class _Signals:
    """SIGTERM and SIGINT (Ctrl-C) turned into requests that the loop reads at its step boundaries.

    Raising KeyboardInterrupt anywhere in the loop could leave a pairing worker or an asynchronous computation
    calling back into an interpreter that is shutting down ("Fatal Python error: PyGILState_Release"); a
    second Ctrl-C still raises it at once. Handlers can only be set from the main thread: elsewhere (a loop
    run in a thread) the signals keep their handlers. In a multi-process run SIGTERM is left to JAX's
    preemption service, which tells every process at the same step (`reached_preemption`).
    """

    def __init__(self, multi_process: bool):
        self.received: int | None = None
        self._previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT,) if multi_process else (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        if signum == signal.SIGINT and self.received == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = self.received or signum

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def format_duration(seconds: float) -> str:
    """``75.4 -> "1:15"``, ``3725 -> "1:02:05"``."""
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def loss_blew_up(loss: float, lowest: float, factor: float = 100.0) -> bool:
    """Whether a finite ``loss`` is ``factor`` times the lowest logged so far: a run diverging without NaN."""
    return math.isfinite(loss) and lowest > 0 and loss >= factor * lowest


def train(config: ml_collections.ConfigDict, workdir: str, exp: Experiment | None = None) -> TrainState:
    """Trains to training.num_steps, resuming from the workdir's newest readable checkpoint. Returns the state.

    Raises `Diverged` on a non-finite loss and `Stopped` on SIGTERM (after saving) or Ctrl-C. ``exp``: the
    `setup` of ``config`` (any training.steps_per_call: the steps per call are chosen here, `steps_per_call`).
    """
    exp = exp or setup(with_steps_per_call(config, config.training.steps_per_call or 1))  # checks the config first
    with workdirs.lock(workdir):
        changes = workdirs.check_workdir(config, workdir, record=False)
        mngr = workdirs.checkpoint_manager(workdir, config)
        try:
            return _train(config, workdir, exp, mngr, changes)
        finally:
            mngr.wait_until_finished()  # an error must not end the process while a save is being written
            mngr.close()


def _train(config, workdir: str, exp: Experiment, mngr: ocp.CheckpointManager, changes: list[str]) -> TrainState:
    state = workdirs.restore_newest(mngr, exp.state, move_damaged=True)
    if state is not None:
        logging.info("Resumed from %s at step %d.", workdir, int(state.step))
    else:
        if config.loss.name == "lines":  # a fresh LMM run starts from its teacher: checked now, not on resume
            validate_lines(config)
        state = exp.state
        if config.training.init_from:
            state = workdirs.init_from_run(state, config.training.init_from, PREDICTION[config.loss.name])
    start, num_steps = int(state.step), config.training.num_steps
    per_call = steps_per_call(config, start, exp.dataset.shape)
    config = with_steps_per_call(config, per_call)
    workdirs.record_config(config, workdir, changes, start)
    t = config.training
    directory = str(mngr.directory)
    if start >= num_steps:
        return state

    advance = make_advance_fn(config, exp)
    writer = MetricWriter(workdir, just_logging=jax.process_index() > 0)
    replicated = replicate(state)
    multi_process = jax.process_count() > 1
    signals = _Signals(multi_process)
    lowest, warned = math.inf, False
    try:
        steps = f"steps {start + 1} to {start + per_call}" if per_call > 1 else f"step {start + 1}"
        logging.info(
            "Compiling the train step (%d step%s per call) and taking %s ...",
            per_call,
            "s" if per_call > 1 else "",
            steps,
        )
        compile_start = time.perf_counter()
        for call, step in enumerate(range(start, num_steps, per_call)):
            replicated, metrics, pool_info = advance(replicated, step)
            done = step + per_call
            if call == 0:
                jax.block_until_ready(replicated)
                logging.info(
                    "Compiled and took the first call's steps in %.1f s; training.", time.perf_counter() - compile_start
                )
                last_log = (done, time.perf_counter())  # the rate and the ETA leave the compile out
            log_now = done % t.log_every == 0
            save_now = done % t.checkpoint_every == 0 or done == num_steps
            if log_now or save_now:
                scalars = {k: float(v) for k, v in jax.device_get(flax.jax_utils.unreplicate(metrics)).items()}
                scalars.update(pool_info)
                loss = scalars["loss"]
                if not np.isfinite(loss):
                    raise _diverged(config, mngr, loss, done)
                if loss_blew_up(loss, lowest) and not warned:
                    warned = True
                    logging.warning(
                        "Loss %.4g at step %d is %.0f times the lowest so far (%.4g): the run is diverging. Rerun with "
                        "a smaller optim.learning_rate (now %g), warm-up (optim.warmup_steps) or clipping "
                        "(optim.grad_clip); they may change when a run resumes.",
                        loss,
                        done,
                        loss / lowest,
                        lowest,
                        config.optim.learning_rate,
                    )
                lowest = min(lowest, loss)
                if log_now:
                    now = time.perf_counter()
                    if done > last_log[0]:
                        scalars["steps_per_sec"] = rate = (done - last_log[0]) / max(now - last_log[1], 1e-9)
                        progress = f"{rate:.1f} steps/s, ETA {format_duration((num_steps - done) / max(rate, 1e-9))}"
                    else:
                        progress = "rate from the next log on"
                    last_log = (done, now)
                    logging.info(
                        "Step %d of %d (%.0f%%): %s; loss %.4g.",
                        done,
                        num_steps,
                        100 * done / num_steps,
                        progress,
                        loss,
                    )
                writer.write_scalars(done, scalars)
            if multi_process and mngr.reached_preemption(call):  # every process stops at the same call
                signals.received = signal.SIGTERM
            if save_now or signals.received == signal.SIGTERM:
                saved = flax.jax_utils.unreplicate(replicated)
                mngr.save(done, args=ocp.args.StandardSave(workdirs.checkpoint_tree(saved, for_save=True)))
            if signals.received:
                raise _stopped(signals.received, mngr, done, directory)
    finally:
        signals.restore()
        advance.close()
        try:  # nothing may still run on the devices (or call back into Python) once the process exits
            jax.block_until_ready(replicated)
        except Exception:  # buffers donated to a call that failed
            pass
        writer.close()
    return flax.jax_utils.unreplicate(replicated)


def _diverged(config, mngr: ocp.CheckpointManager, loss: float, step: int) -> Diverged:
    mngr.wait_until_finished()  # the newest checkpoint is the one actually written
    latest = mngr.latest_step()
    kept = (
        f"The newest checkpoint, step {latest} in {mngr.directory}, is kept, and a rerun resumes from it"
        if latest is not None
        else f"No checkpoint was saved before it (training.checkpoint_every={config.training.checkpoint_every}), so a "
        "rerun starts over"
    )
    return Diverged(
        f"Loss is {loss} at step {step}; not saved. {kept}. Rerun with a smaller optim.learning_rate (now "
        f"{config.optim.learning_rate:g}), more warm-up (optim.warmup_steps={config.optim.warmup_steps}) or "
        f"clipping (optim.grad_clip={config.optim.grad_clip:g}): these may change when a run resumes (the change "
        "is recorded in config_history.json).",
        step,
        latest,
    )


def _stopped(signum: int, mngr: ocp.CheckpointManager, step: int, directory: str) -> Stopped:
    mngr.wait_until_finished()
    latest = mngr.latest_step()
    if signum == signal.SIGTERM:
        return Stopped(
            f"Stopped by SIGTERM at step {step}; saved checkpoint {latest} in {directory}. Rerun the same command "
            f"to resume (exit code {SIGTERM_EXIT}).",
            SIGTERM_EXIT,
        )
    saved = f"the newest checkpoint is step {latest}" if latest is not None else "no checkpoint was saved yet"
    return Stopped(
        f"Interrupted (Ctrl-C) at step {step}; not saved: {saved} in {directory}, where a rerun resumes. "
        f"To save before stopping, send SIGTERM instead (kill <pid>).",
        SIGINT_EXIT,
    )
