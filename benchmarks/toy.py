"""Training speed and few-step quality of every coupling on a 2-D toy task.

    python benchmarks/toy.py [--task moons|checkerboard] [--steps 3000] [--methods icfm,otcfm,loom,...]
                             [--steps_per_call 1] [--out benchmarks/results/toy_<task>.json]
    python benchmarks/toy.py --end_to_end [--steps 2000] [--steps_per_call 0] [--sweep default|short]
                             [--out benchmarks/results/toy_end_to_end.json]

--end_to_end times the whole command a user runs, `main.py --config=configs/quickstart.py` (OT-CFM, 8 Gaussians
-> moons, batch 256) with --steps steps and its evaluation sweep, as a subprocess: start-up (from the command
to the end of the first compiled call, i.e. the first steps taken), steps/s after it, end-to-end seconds and W2
at Euler NFE 1. It runs the command three times: "cold" (an empty compilation cache, a new workdir), "rerun"
(the cache it filled, a new workdir) and "resume" (that workdir, 10% more steps). Its fields line up with
`benchmarks/toy_torch_reference.py --end_to_end`.

Each row is a toy config of `configs/` (same fixed training set of 10,000 points, MLP 3x64, batch
256, Adam 1e-3, sigma 0.1, one device), differing only in the coupling. Prints steps/s of the
pmapped train step (input stream and pool matching included, compilation excluded) and W2 (EMA
parameters, 2,000 held-out points) at Euler NFE 1/2/4/8 after --steps steps. The JSON (`--out`,
see benchmarks/common.py) also holds --trajectories Euler trajectories of each model (for the plots of
benchmarks/report.py) and a sample of the held-out points.
"""

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
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


E2E_COLUMNS = ["implementation", "run", "start-up s", "steps/s", "end-to-end s", "W2 NFE 1"]


def timed_main(workdir: str, steps: int, steps_per_call: int, sweep: str, cache: str) -> dict:
    """Runs main.py on the quickstart and times it from the outside: each stderr line is stamped as it arrives."""
    flags = [f"--config.training.num_steps={steps}", f"--config.training.steps_per_call={steps_per_call}"]
    if sweep == "short":
        flags += ["--config.eval.solvers=('euler',)", "--config.eval.nfe=(1,)"]
    cmd = [sys.executable, "main.py", "--config=configs/quickstart.py", f"--workdir={workdir}", *flags]
    env = dict(os.environ, FLOWJAX_COMPILATION_CACHE=cache)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=common.ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend((time.perf_counter(), s) for s in proc.stderr))
    reader.start()
    proc.wait()
    reader.join()
    total = time.perf_counter() - started
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n" + "".join(s for _, s in lines)[-3000:])
    first = next(((t, s) for t, s in lines if "Compiled and took the first call's steps" in s), None)
    steps_at = [(t, int(s.split("Step ")[1].split(" of")[0])) for t, s in lines if "] Step " in s and " of " in s]
    rate = None
    if first and steps_at and steps_at[-1][0] > first[0]:
        k = int(next(s for _, s in lines if "Compiling the train step (" in s).split("(")[1].split(" ")[0])
        start = (
            int(
                next(s for _, s in lines if "Compiling the train step" in s)
                .split("taking step")[1]
                .lstrip("s ")
                .split()[0]
            )
            - 1
        )
        rate = (steps_at[-1][1] - start - k) / (steps_at[-1][0] - first[0])
    with open(os.path.join(workdir, "eval", "metrics.json")) as f:
        w2 = next(r["w2"] for r in json.load(f)["results"] if (r["solver"], r["nfe"]) == ("euler", 1))
    return {
        "start-up s": first[0] - started if first else None,
        "steps/s": rate,
        "end-to-end s": total,
        "W2 NFE 1": w2,
    }


def end_to_end(args) -> None:
    k = args.steps_per_call
    rows, tmp = [], tempfile.mkdtemp(prefix="flowjax_e2e_")
    try:
        cache = os.path.join(tmp, "cache")
        runs = [
            ("cold", os.path.join(tmp, "a"), args.steps),
            ("rerun", os.path.join(tmp, "b"), args.steps),
            ("resume", os.path.join(tmp, "b"), args.steps + args.steps // 10),
        ]
        for name, workdir, steps in runs:
            row = {"implementation": "flowjax main.py", "run": name, **timed_main(workdir, steps, k, args.sweep, cache)}
            rows.append(row)
            print(row, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"\nmain.py --config=configs/quickstart.py, {args.steps} steps (steps_per_call={k}; 0: auto), {args.sweep} "
        f"evaluation sweep, {jax.default_backend()} ({os.cpu_count()} cores)\n"
    )
    formats = {"start-up s": ".1f", "steps/s": ".0f", "end-to-end s": ".1f", "W2 NFE 1": ".3f"}
    t = common.table("toy_end_to_end", "flowjax end to end (quickstart)", E2E_COLUMNS, rows, formats)
    reference = os.path.join(common.RESULTS, "toy_torch_reference_end_to_end.json")
    shown = t
    if os.path.exists(reference):  # benchmarks/toy_torch_reference.py --end_to_end, run where torch is installed
        with open(reference) as f:
            ref = json.load(f)
        shown = {**t, "rows": rows + ref["tables"][0]["rows"]}
        print(
            f"(the PyTorch row: {reference}, {ref['date']}, {ref['machine']['cpu']}, {ref['settings']['steps']} steps)"
        )
    print(common.markdown(shown))
    settings = {"steps": args.steps, "steps_per_call": k, "sweep": args.sweep, "config": "configs/quickstart.py"}
    common.write(args.out, "toy_end_to_end", [t], seeds=1, settings=settings)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sorted(TASKS), default="moons")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default 3000; 2000 --end_to_end)")
    parser.add_argument("--timed", type=int, default=1000, help="last steps that are timed")
    parser.add_argument(
        "--steps_per_call",
        type=int,
        default=None,
        help="training.steps_per_call: steps per compiled call (must divide --steps; default 1, 0 (auto) with "
        "--end_to_end)",
    )
    parser.add_argument("--end_to_end", action="store_true", help="time main.py's whole command (see above)")
    parser.add_argument("--sweep", choices=("default", "short"), default="default", help="--end_to_end's evaluation")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {list(METHODS)}")
    parser.add_argument("--trajectories", type=int, default=64, help="Euler trajectories kept per model in the JSON")
    parser.add_argument("--trajectory_steps", type=int, default=16, help="Euler steps of those trajectories")
    common.add_out_argument(parser, "toy_<task>")
    args = parser.parse_args()
    if args.end_to_end:
        args.steps = 2000 if args.steps is None else args.steps
        args.steps_per_call = 0 if args.steps_per_call is None else args.steps_per_call
        if args.out.endswith("toy_<task>.json"):
            args.out = args.out.replace("toy_<task>", "toy_end_to_end")
        return end_to_end(args)
    args.steps = 3000 if args.steps is None else args.steps
    args.steps_per_call = 1 if args.steps_per_call is None else args.steps_per_call
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
