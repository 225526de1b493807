"""Training speed and few-step quality of every coupling on a 2-D toy task.

    python benchmarks/toy.py [--task moons|checkerboard] [--steps 3000] [--methods icfm,otcfm,loom,...]
                             [--steps_per_call 1] [--out benchmarks/results/toy_<task>.json]

Each row is a toy config of `configs/` (same fixed training set of 10,000 points, MLP 3x64, batch
256, Adam 1e-3, sigma 0.1, one device), differing only in the coupling. Prints steps/s of the
pmapped train step (input stream and pool matching included, compilation excluded) and W2 (EMA
parameters, 2,000 held-out points) at Euler NFE 1/2/4/8 after --steps steps. The JSON (`--out`,
see benchmarks/common.py) also holds --trajectories Euler trajectories of each model (for the plots of
benchmarks/report.py) and a sample of the held-out points.
"""

import argparse
import importlib
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import flax  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import common  # noqa: E402
from flowjax import evaluate, integrators, train  # noqa: E402
from flowjax.data import toy2d  # noqa: E402

TASKS = {"moons": "8gaussians_moons", "checkerboard": "checkerboard"}
# label -> (config prefix, coupling overrides)
METHODS = {
    "icfm": ("I-CFM", "icfm", {}),
    "otcfm": ("OT-CFM (exact, per batch)", "otcfm", {}),
    "sinkhorn": ("OT-CFM (Sinkhorn)", "sinkhorn", {}),
    "loom": ("LOOM-CFM, 1 cache", "loom", {}),
    "loom4": ("LOOM-CFM, 4 caches", "loom4", {}),
    "dansm256": ("DANSM, match size 256", "dansm", {"match_size": 256}),
    "dansm1024": ("DANSM, match size 1,024", "dansm", {"match_size": 1024}),
    "dansm10000": ("DANSM, match size 10,000", "dansm", {"match_size": 10_000}),
    "immiscible256": ("Immiscible, match size 256", "immiscible", {"match_size": 256}),
    "immiscible1024": ("Immiscible, match size 1,024", "immiscible", {"match_size": 1024}),
}


def run(
    method: str, task: str, steps: int, timed: int, steps_per_call: int = 1, num_paths: int = 0, path_steps: int = 16
) -> tuple[dict, dict]:
    """Trains one toy config; returns (table row, extras: trajectories, held-out sample, config)."""
    label, prefix, overrides = METHODS[method]
    config = importlib.import_module(f"configs.{prefix}_{TASKS[task]}").get_config()
    for field, value in overrides.items():
        config.coupling[field] = value
    config.training.num_steps, config.training.steps_per_call = steps, steps_per_call
    exp = train.setup(config)
    # the step keys this script has always used (docs/results.md), not main.py's
    advance = train.make_advance_fn(config, exp, jax.random.PRNGKey(config.training.seed))
    replicated = train.replicate(exp.state)
    start = None
    for step in range(0, steps, steps_per_call):
        if step == steps - timed:
            jax.block_until_ready(replicated)
            start = time.perf_counter()
        replicated, _, _ = advance(replicated, step)
    jax.block_until_ready(replicated)
    row = {"coupling": label, "steps/s": timed / (time.perf_counter() - start)}
    params = flax.jax_utils.unreplicate(replicated).ema_params
    config.eval.solvers, config.eval.nfe = ("euler",), (1, 2, 4, 8)
    target = toy2d.test_set(config.data.name, config.eval.num_samples, seed=config.data.test_seed)
    x0 = evaluate.eval_noise(config, exp.noise_one, len(target))
    rows, _ = evaluate.sweep(config, exp.velocity_fn, params, x0, target)
    row.update({f"W2 NFE {r['nfe']}": r["w2"] for r in rows})
    extras = {"config": config}
    if num_paths:  # [path_steps + 1, num_paths, 2] Euler states from the first evaluation noises
        _, path = integrators.euler(
            lambda x, t: exp.velocity_fn(params, x, t), x0[:num_paths], path_steps, return_path=True
        )
        extras["trajectory"] = np.round(np.asarray(path, np.float64), 3)
        extras["target"] = np.round(np.asarray(target[:1000], np.float64), 3)
    return row, extras


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sorted(TASKS), default="moons")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--timed", type=int, default=1000, help="last steps that are timed")
    parser.add_argument(
        "--steps_per_call",
        type=int,
        default=1,
        help="training.steps_per_call: steps per compiled call (must divide --steps)",
    )
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {list(METHODS)}")
    parser.add_argument("--trajectories", type=int, default=64, help="Euler trajectories kept per model in the JSON")
    parser.add_argument("--trajectory_steps", type=int, default=16, help="Euler steps of those trajectories")
    common.add_out_argument(parser, "toy_<task>")
    args = parser.parse_args()
    if args.out.endswith("toy_<task>.json"):
        args.out = args.out.replace("<task>", args.task)
    rows, trajectories = [], {}
    k = args.steps_per_call
    timed = min(args.timed, args.steps - k) // k * k  # whole calls, after the first (compiling) one
    for method in args.methods.split(","):
        row, extras = run(method, args.task, args.steps, timed, k, args.trajectories, args.trajectory_steps)
        rows.append(row)
        print(rows[-1], flush=True)
        config = extras["config"]
        if "trajectory" in extras:
            trajectories[row["coupling"]] = extras["trajectory"]
            target_sample = extras["target"]
    keys = list(rows[0])
    source = "8 Gaussians -> moons" if args.task == "moons" else "N(0, I) -> checkerboard"
    print(
        f"\n{source}, MLP 3x64, batch 256, 10,000 training points, {args.steps} steps ({k} per call), "
        f"{jax.default_backend()} ({os.cpu_count()} cores), W2 on 2,000 held-out points (EMA)\n"
    )
    print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for r in rows:
        print(
            "| "
            + " | ".join(f"{r[k]:.3f}" if "W2" in k else f"{r[k]:.0f}" if k == "steps/s" else r[k] for k in keys)
            + " |"
        )
    settings = {
        "task": args.task,
        "steps": args.steps,
        "timed_steps": timed,
        "steps_per_call": k,
        "methods": args.methods.split(","),
        "trajectory_steps": args.trajectory_steps,
        **common.config_values(
            config,
            "data.source",
            "data.name",
            "data.num_train",
            "training.batch_size",
            "model.hidden",
            "loss.sigma",
            "optim.learning_rate",
            "training.ema_decay",
            "training.seed",
            "eval.num_samples",
        ),
    }
    extra = {"trajectories": trajectories, "target_sample": target_sample} if trajectories else {}
    common.write(
        args.out,
        "toy",
        [common.table(f"toy_{args.task}", source, keys, rows, {"steps/s": ".0f"})],
        seeds=1,
        settings=settings,
        compact=bool(extra),
        **extra,
    )


if __name__ == "__main__":
    main()
