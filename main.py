"""flowjax entry point.

    python main.py --config=configs/quickstart.py --workdir=runs/quickstart [--mode=train|eval|sample|pairs]

--mode=train trains (resuming from the workdir's latest checkpoint) and then runs the evaluation
sweep once; --mode=eval evaluates the latest checkpoint; --mode=sample writes samples; --mode=pairs
writes (x0, x1) pairs of the latest checkpoint for reflow / distillation (pairs.*, resumable; see
flowjax/rectify.py and configs/reflow_8gaussians_moons.py).
Any config field can be overridden: --config.training.batch_size=64.

Every mode holds the workdir's lock (a second process on it is refused). Compiled programs are kept in JAX's
persistent compilation cache, ``$FLOWJAX_COMPILATION_CACHE`` (default ``~/.cache/flowjax/jax``; empty: off;
JAX's own ``JAX_COMPILATION_CACHE_DIR`` takes precedence), so that a rerun or a resume starts in seconds.
Exit codes: 0 done, 1 an error (one line, ``error: ...``), 2 a bad flag or config, 130 Ctrl-C, 143 SIGTERM
(after saving a checkpoint: rerun to resume).
"""

import logging as std_logging
import os
import shlex
import sys
import time

import jax
from absl import app, flags, logging
from ml_collections import config_flags

import flowjax
from flowjax import distributed, evaluate, metrics, rectify, train
from flowjax.data import dataset as datasets
from flowjax.train import loop
from flowjax.train import workdir as workdirs

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file, e.g. configs/quickstart.py.", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, TensorBoard events and eval/ outputs.")
flags.DEFINE_enum("mode", "train", ["train", "eval", "sample", "pairs"], "What to run.")
flags.DEFINE_enum(
    "distributed",
    "auto",
    list(distributed.MODES),
    "Multi-process run with jax.distributed: auto (when the coordinator flags are given or srun / mpirun started "
    "several processes), on (always; JAX finds a Cloud TPU pod's or Slurm's coordinator itself), off.",
)
flags.DEFINE_string("coordinator_address", None, "Multi-process: host:port of process 0 (with the next two flags).")
flags.DEFINE_integer("num_processes", None, "Multi-process: how many processes take part.")
flags.DEFINE_integer("process_id", None, "Multi-process: this process's index, 0 .. num_processes - 1.")
flags.mark_flags_as_required(["config", "workdir"])

# An evaluation whose best W2 is at least this fraction of the W2 of its own starting noise has learned nothing.
UNTRAINED_FRACTION = 0.9


def run(config, workdir: str, mode: str, config_name: str) -> None:
    workdirs.check_local(workdir)
    if config.loss.name == "lines" and not workdirs.has_checkpoints(workdir):
        train.validate_lines(config)  # LMM's pairs and teacher: what is missing, and the commands that provide it
    eval_config = rectify.evaluation_config(config)  # runs on pairs are evaluated against the teacher's data
    if mode in ("train", "eval"):  # the modes that run the sweep: checked before training, not after it
        evaluate.validate(eval_config)
    if mode == "pairs":
        rectify.validate(config)
    started = time.perf_counter()
    logging.info(
        "Setting up %s: %s from %s, %s, %s coupling ...",
        config_name or "the config",
        config.data.name,
        config.data.source,
        config.model.name,
        config.coupling.name,
    )
    # training.steps_per_call = 0 (auto) is chosen by train.train once it knows the step it resumes at; the
    # setup does not depend on it, and is checked with single steps.
    exp = train.setup(loop.with_steps_per_call(config, config.training.steps_per_call or 1))
    logging.info("Set up in %.1f s.", time.perf_counter() - started)
    # The workdir is locked once the config is known to be usable (a refused config leaves no trace there),
    # before anything in it is read, and until the evaluation's files are written.
    # A converted network (model.weights) can be evaluated or give pairs before the workdir holds any checkpoint.
    converted = bool(config.model.get("weights")) and not workdirs.has_checkpoints(workdir)
    with workdirs.lock(workdir, create=mode == "train" or converted):
        _run(config, eval_config, exp, workdir, mode, config_name, converted)


def _run(config, eval_config, exp, workdir: str, mode: str, config_name: str, converted: bool = False) -> None:
    if mode == "train":
        state = train.train(config, workdir, exp)
    elif converted:  # model.weights, checked by train.setup; nothing trained here yet
        logging.info(
            "No checkpoint in %s: using the converted network model.weights=%s.", workdir, config.model.weights
        )
        workdirs.check_workdir(config, workdir)
        state = exp.state
    else:
        state = train.load_checkpoint(config, workdir, exp.state)
    params, step = (state.ema_params if config.eval.use_ema else state.params), int(state.step)
    velocity_fn, noise_one = exp.velocity_fn, exp.noise_one
    if mode == "pairs":
        teacher = {
            "workdir": os.path.abspath(workdir),
            "config": config_name,
            "step": step,
            "use_ema": bool(config.eval.use_ema),
        }
        if converted:
            teacher["weights"] = os.path.abspath(config.model.weights)
        out = rectify.generate_pairs(
            config, velocity_fn, params, noise_one, rectify.output_dir(config, workdir), teacher
        )
        p = config.pairs
        print(
            f"{p.num_pairs} pairs of step {step} ({p.solver}, NFE {'adaptive' if p.solver == 'dopri5' else p.nfe}) "
            f"in {os.path.abspath(out)}\nTrain on them with --config.data.name=pairs --config.data.data_dir="
            f"{os.path.abspath(out)} (e.g. configs/reflow_8gaussians_moons.py)."
        )
        return
    config = eval_config
    if mode == "sample":
        path = evaluate.write_samples(config, workdir, velocity_fn, params, noise_one)
        print(
            f"Wrote {config.sampling.num_samples} samples ({config.sampling.solver}, "
            f"NFE {config.sampling.nfe}) to {path}"
        )
        return
    rows = evaluate.evaluate(config, workdir, velocity_fn, params, step, noise_one, config_name)
    if not distributed.is_primary():  # process 0 prints the table and the files it wrote
        return
    images = datasets.kind(config.data) == "images"
    measured = (
        f"FID of {config.eval.num_samples} samples against the {config.eval.fid_split} split"
        if images
        else f"W2 to {config.eval.num_samples} held-out points"
    )
    noise = None if images else noise_w2(config, noise_one)
    print(
        f"\nStep {step}, {'EMA' if config.eval.use_ema else 'raw'} parameters, {measured}:\n"
        f"{evaluate.format_table(rows)}"
        + ("" if noise is None else f"\nW2 of the noise itself (no model): {noise:.4f}")
    )
    warning = untrained_warning(rows, noise)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    out = os.path.abspath(workdir)
    eval_files = "".join(
        f"\n  eval/{f}" + ("   the table above" if f == "metrics.json" else "")
        for f in sorted(os.listdir(os.path.join(out, "eval")))
    )
    print(
        f"\nResults in {out}:\n  checkpoints/        orbax checkpoints\n  events.out.tfevents.*  TensorBoard "
        f"(tensorboard --logdir {out}){eval_files}"
    )


def noise_w2(config, noise_one) -> float:
    """W2 of the evaluation's starting noise itself to the held-out set: what samples of a model that has learned
    nothing score (its samples stay the noise), the baseline of `untrained_warning`."""
    target = datasets.held_out(config)
    return float(metrics.w2(evaluate.eval_noise(config, noise_one, target.shape[0]), target))


def untrained_warning(rows: list[dict], noise: float | None) -> str | None:
    """A warning if no row's W2 is clearly below the noise's own (`UNTRAINED_FRACTION`): the run diverged to
    finite nonsense or has not learned yet, which would otherwise end with exit code 0 and no word."""
    if noise is None:
        return None
    w2 = [r["w2"] for r in rows if "w2" in r]
    finite = [w for w in w2 if w == w and abs(w) != float("inf")]
    if not w2 or (finite and min(finite) < UNTRAINED_FRACTION * noise):
        return None
    best = f"the best W2, {min(finite):.4g}," if finite else "every W2 is NaN or infinite:"
    return (
        f"{best} is no better than the noise's own ({noise:.4g}): the model has not learned the data (a diverged or "
        "too short run; see the training log for a loss warning)."
    )


def _advised_command(argv: list[str], field: str, value: str) -> str:
    """The command line ``argv`` with --config.<field>=<value> (replacing an earlier value of it)."""
    flag = f"--config.{field}"
    args = [a for a in argv[1:] if a.split("=")[0] != flag] + [f"{flag}={value}"]
    return shlex.join([sys.executable, argv[0], *args])


class _LibraryInfo(std_logging.Filter):
    """Drops the INFO lines of libraries (orbax writes ~40 per checkpoint; JAX names the backends it did not
    find), keeping flowjax's own and every library's warnings and errors."""

    def __init__(self):
        super().__init__()
        self.own = (os.path.dirname(os.path.abspath(flowjax.__file__)), os.path.abspath(__file__))

    def filter(self, record: std_logging.LogRecord) -> bool:
        return record.levelno >= std_logging.WARNING or os.path.abspath(record.pathname).startswith(self.own)


def _compilation_cache() -> str | None:
    """Turns on JAX's persistent compilation cache (see the module docstring); returns its directory."""
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):  # JAX has read it already
        return os.environ["JAX_COMPILATION_CACHE_DIR"]
    default = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "flowjax", "jax")
    path = os.environ.get("FLOWJAX_COMPILATION_CACHE", default)
    if path:
        jax.config.update("jax_compilation_cache_dir", path)
        # JAX caches only programs that took a second to compile; a toy's take less, and together most of its start.
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return path or None


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    verbose = FLAGS["verbosity"].present and FLAGS.verbosity > 0  # --verbosity=1: libraries' INFO lines too
    logging.set_verbosity(logging.DEBUG if verbose else logging.INFO)
    if not verbose:
        logging.get_absl_handler().addFilter(_LibraryInfo())
    try:
        if distributed.initialize(FLAGS.distributed, FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id):
            logging.info("Process %d of %d (jax.distributed).", jax.process_index(), jax.process_count())
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    _compilation_cache()
    try:
        run(FLAGS.config, FLAGS.workdir, FLAGS.mode, config_flags.get_config_filename(FLAGS["config"]))
    except loop.Diverged as e:
        lr = FLAGS.config.optim.learning_rate
        print(
            f"error: {e}\nFor example: {_advised_command(sys.argv, 'optim.learning_rate', f'{lr / 10:g}')}",
            file=sys.stderr,
        )
        sys.exit(1)
    except loop.Stopped as e:
        print(str(e), file=sys.stderr)
        sys.exit(e.exit_code)
    except (ValueError, FileNotFoundError, FloatingPointError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"Interrupted (Ctrl-C) in --mode={FLAGS.mode}; checkpoints in {FLAGS.workdir} are kept.", file=sys.stderr)
        sys.exit(loop.SIGINT_EXIT)


def _reason(err: BaseException) -> str:
    """An exception's message on one line (descending into an exception that only wraps another)."""
    while err.args and isinstance(err.args[0], BaseException):
        err = err.args[0]
    text = err.args[0] if err.args and isinstance(err.args[0], str) else str(err)
    return " ".join(text.split())


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing; a bad config file or field (missing file, misspelled field, a value of the wrong
    type) ends with one line naming it instead of a chained traceback."""
    try:
        rest = FLAGS(argv)
        FLAGS.config.to_dict()  # the config file is loaded lazily: load it here, where its errors are caught
        return rest
    except Exception as err:  # every failure here comes from the command line or the config file
        print(f"error: {_reason(err)} (in --config or a --config.* override)", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
