"""EDM teachers trained here, sampled with EDM's Heun and with flowjax's solvers, beside flow models.

    python benchmarks/edm.py [--workdir runs/bench_edm] [--steps N] [--toy_steps N] [--tasks digits,toy]
                             [--out benchmarks/results/edm.json]

Digits: `configs/edm_digits.py` (EDM of Karras et al. 2022, conditional on the digit class, small UNet,
2,000 steps) beside the I-CFM and OT-CFM runs of `configs/{icfm,otcfm}_digits.py` (the flow models of
benchmarks/digits.py, same UNet, batch and steps; unconditional). Every model is sampled by EDM's Heun on the
Karras schedule (``edm_heun``: N = 1, 5, 10, 18 steps, NFE 1, 9, 19, 35; for a flow model through the
denoiser its velocity implies on the linear path, see `flowjax.integrators`), by Euler on the Karras grid
(``edm_euler``) and by Euler on a uniform grid in t (``euler``, the EDM model read on t = 1 / (1 + sigma)).
FD-digits against the 300 test images, from the EMA parameters and the same 300 noises; the conditional
model's samples are class-balanced (sample i is digit i mod 10) and its rows also give the fraction the digits
classifier assigns to the asked class.

Toy: `configs/edm_checkerboard.py` (N(0, I) -> checkerboard, MLP, sigma_data = 1) beside
`configs/icfm_checkerboard.py` and `configs/otcfm_checkerboard.py` (the checkerboard table of
benchmarks/toy.py), W2 to 2,000 held-out points at the same solvers and NFEs.

Runs are kept in ``WORKDIR/<config>`` and resumed, not redone. The tables also go to a JSON file (`--out`,
see benchmarks/common.py).
"""

import argparse
import importlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402

from benchmarks import common  # noqa: E402
from flowjax import evaluate, train  # noqa: E402

SOLVERS = {"edm_heun": (1, 9, 19, 35), "edm_euler": (1, 2, 4, 8), "euler": (1, 2, 4, 8)}
TASKS = {
    "digits": (("edm_digits", "EDM (cond.)"), ("icfm_digits", "I-CFM"), ("otcfm_digits", "OT-CFM")),
    "toy": (
        ("edm_checkerboard", "EDM"),
        ("icfm_checkerboard", "I-CFM"),
        ("otcfm_checkerboard", "OT-CFM"),
    ),
}
METRIC = {"digits": "fd_digits", "toy": "w2"}


def run(name: str, workdir: str, steps: int | None) -> tuple[dict, list[dict]]:
    """Trains (or resumes) one config and evaluates it at SOLVERS; returns (config, evaluation rows)."""
    config = importlib.import_module(f"configs.{name}").get_config()
    if steps:
        config.training.num_steps = steps
    config.eval.solvers = tuple(SOLVERS)
    config.eval.nfe = tuple(sorted({n for ns in SOLVERS.values() for n in ns}))
    exp = train.setup(config)
    state = train.train(config, os.path.join(workdir, name), exp)
    rows = evaluate.evaluate(
        config, os.path.join(workdir, name), exp.velocity_fn, state.ema_params, int(state.step), exp.noise_one, name
    )
    return config, rows


def columns() -> list[str]:
    return [f"{solver} NFE {n}" for solver, nfes in SOLVERS.items() for n in nfes]


def table_row(label: str, rows: list[dict], metric: str, what: str = "") -> dict:
    row = {"model": label + what}
    for r in rows:
        if r["solver"] in SOLVERS and r["nfe"] in SOLVERS[r["solver"]] and metric in r:
            row[f"{r['solver']} NFE {r['nfe']}"] = r[metric]
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="runs/bench_edm")
    parser.add_argument("--steps", type=int, default=None, help="digits training steps (default: the configs')")
    parser.add_argument("--toy_steps", type=int, default=None, help="toy training steps (default: the configs')")
    parser.add_argument("--tasks", default="digits,toy")
    common.add_out_argument(parser, "edm")
    args = parser.parse_args()
    tables, settings = [], {"workdir": args.workdir, "solvers": {k: list(v) for k, v in SOLVERS.items()}}
    for task in args.tasks.split(","):
        steps = args.steps if task == "digits" else args.toy_steps
        metric, rows = METRIC[task], []
        for name, label in TASKS[task]:
            config, result = run(name, args.workdir, steps)
            rows.append(table_row(label, result, metric))
            if any("class_accuracy" in r for r in result):
                rows.append(table_row(label, result, "class_accuracy", ": class accuracy"))
            settings[name] = common.config_values(
                config, "training.num_steps", "training.batch_size", "loss.name", "model.num_classes"
            )
            print(rows[-1], flush=True)
        what = "FD-digits against the 300 test images" if task == "digits" else "W2 to 2,000 held-out points"
        title = (
            f"{task}: {what} ({jax.default_backend()}, {os.cpu_count()} cores; EMA parameters); "
            "edm_heun NFE 2N - 1 on the Karras schedule (N = 1, 5, 10, 18), edm_euler on its grid, euler on t"
        )
        keys = ["model"] + columns()
        print(f"\n{title}\n")
        print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
        for r in rows:
            print(
                "| "
                + " | ".join(str(r.get(k, "")) if k == "model" else f"{r.get(k, float('nan')):.3f}" for k in keys)
                + " |"
            )
        tables.append(common.table(f"edm_{task}", title, keys, rows, {k: ".3f" for k in keys[1:]}))
    common.write(args.out, "edm", tables, seeds=1, settings=settings)


if __name__ == "__main__":
    main()
