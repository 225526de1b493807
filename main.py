"""flowjax entry point.

    python main.py --config=configs/quickstart.py --workdir=runs/quickstart [--mode=train|eval|sample|pairs]

--mode=train trains (resuming from the workdir's latest checkpoint) and then runs the evaluation
sweep once; --mode=eval evaluates the latest checkpoint; --mode=sample writes samples; --mode=pairs
writes (x0, x1) pairs of the latest checkpoint for reflow / distillation (pairs.*, resumable; see
flowjax/rectify.py and configs/reflow_8gaussians_moons.py).
Any config field can be overridden: --config.training.batch_size=64.
"""

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from flowjax import evaluate, rectify, train
from flowjax.data import dataset as datasets

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Experiment config file, e.g. configs/quickstart.py.", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, TensorBoard events and eval/ outputs.")
flags.DEFINE_enum("mode", "train", ["train", "eval", "sample", "pairs"], "What to run.")
flags.mark_flags_as_required(["config", "workdir"])


def run(config, workdir: str, mode: str, config_name: str) -> None:
    eval_config = rectify.evaluation_config(config)  # runs on pairs are evaluated against the teacher's data
    evaluate.validate(eval_config)  # before training, not after it
    if mode == "pairs":
        rectify.validate(config)
    exp = train.setup(config)
    state = train.train(config, workdir, exp) if mode == "train" else train.load_checkpoint(config, workdir, exp.state)
    params, step = (state.ema_params if config.eval.use_ema else state.params), int(state.step)
    velocity_fn, noise_one = exp.velocity_fn, exp.noise_one
    if mode == "pairs":
        teacher = {
            "workdir": os.path.abspath(workdir),
            "config": config_name,
            "step": step,
            "use_ema": bool(config.eval.use_ema),
        }
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
    measured = (
        f"FID of {config.eval.num_samples} samples against the {config.eval.fid_split} split"
        if datasets.kind(config.data) == "images"
        else f"W2 to {config.eval.num_samples} held-out points"
    )
    print(
        f"\nStep {step}, {'EMA' if config.eval.use_ema else 'raw'} parameters, {measured}:\n"
        f"{evaluate.format_table(rows)}"
    )
    out = os.path.abspath(workdir)
    eval_files = "".join(
        f"\n  eval/{f}" + ("   the table above" if f == "metrics.json" else "")
        for f in sorted(os.listdir(os.path.join(out, "eval")))
    )
    print(
        f"\nResults in {out}:\n  checkpoints/        orbax checkpoints\n  events.out.tfevents.*  TensorBoard "
        f"(tensorboard --logdir {out}){eval_files}"
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.INFO)
    try:
        run(FLAGS.config, FLAGS.workdir, FLAGS.mode, config_flags.get_config_filename(FLAGS["config"]))
    except (ValueError, FileNotFoundError, FloatingPointError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


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
