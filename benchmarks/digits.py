"""FD-digits and W2 at NFE 1/2/4/8 for I-CFM, OT-CFM, LOOM-CFM and DANSM on the digits.

    python benchmarks/digits.py [--workdir runs/bench_digits] [--methods icfm,otcfm,loom,dansm] [--steps N]
                                [--out benchmarks/results/digits.json]

Each row trains one of `configs/{icfm,otcfm,loom,dansm}_digits.py` (8x8 digits, 1,497 training
images, small ADM UNet, batch 128; they differ only in the coupling) through `train.train` into
``WORKDIR/<method>`` (an existing run there is resumed, not redone), then runs the evaluation sweep
of `main.py`. W2 (exact, pixel space, [-1, 1] scale) and FD-digits are against the 300 held-out
test images, from the EMA parameters and the same 300 noises for every method; the straightness S
and the curvature paper's curvature come from a 100-step Euler simulation. The last row puts 300
training images in place of samples: the floor of both metrics on this split. The table also goes to
a JSON file (`--out`, see benchmarks/common.py).
"""

import argparse
import importlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402

from benchmarks import common  # noqa: E402
from flowjax import evaluate, train  # noqa: E402

METHODS = {
    "icfm": "I-CFM",
    "otcfm": "OT-CFM (exact, per batch)",
    "loom": "LOOM-CFM, 4 caches",
    "dansm": "DANSM, match size 1,024",
}


def run(method: str, workdir: str, steps: int | None, configs: dict | None = None) -> dict:
    config = importlib.import_module(f"configs.{method}_digits").get_config()
    if steps:
        config.training.num_steps = steps
    config.eval.solvers = ("euler", "dopri5")
    if configs is not None:
        configs[method] = config
    exp = train.setup(config)
    state = train.train(config, os.path.join(workdir, method), exp)
    rows = evaluate.evaluate(
        config,
        os.path.join(workdir, method),
        exp.velocity_fn,
        state.ema_params,
        int(state.step),
        exp.noise_one,
        f"{method}_digits",
    )
    row = {"coupling": METHODS[method]}
    for r in rows:
        if r["solver"] == "euler" and r["nfe"] in (1, 2, 4, 8):
            row[f"FD NFE {r['nfe']}"], row[f"W2 NFE {r['nfe']}"] = r["fd_digits"], r["w2"]
        elif r["solver"] == "dopri5":
            row["FD dopri5"], row["dopri5 NFE"] = r["fd_digits"], r["nfe"]
        elif "straightness" in r:
            row["S"], row["curvature"] = r["straightness"], r["curvature"]
    return row


def reference_row() -> dict:
    """The floor of both metrics: 300 training images (a fixed random subset) in place of samples."""
    import numpy as np

    from flowjax import metrics
    from flowjax.data import digits

    train_x, _ = digits.load("train")
    test_x, _ = digits.load("test")
    subset = train_x[np.random.default_rng(0).choice(len(train_x), len(test_x), replace=False)]
    fd, w2 = metrics.fd_digits.fd_digits(subset), float(metrics.w2(subset, test_x))
    return {
        "coupling": "reference: 300 training images",
        **{f"FD NFE {n}": fd for n in (1, 2, 4, 8)},
        **{f"W2 NFE {n}": w2 for n in (1, 2, 4, 8)},
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="runs/bench_digits")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {list(METHODS)}")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the configs' 2,000)")
    common.add_out_argument(parser, "digits")
    args = parser.parse_args()
    rows, configs = [], {}
    for method in args.methods.split(","):
        rows.append(run(method, args.workdir, args.steps, configs))
        print(rows[-1], flush=True)
    rows.append(reference_row())
    keys = (
        ["coupling"]
        + [f"{m} NFE {n}" for m in ("FD", "W2") for n in (1, 2, 4, 8)]
        + ["FD dopri5", "dopri5 NFE", "S", "curvature"]
    )
    print(
        f"\ndigits 8x8, 1,497 training images, {jax.default_backend()} ({os.cpu_count()} cores); Euler unless "
        "stated; FD-digits and W2 against the 300 test images (EMA parameters)\n"
    )
    print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    fmt = lambda k, v: (
        v if k == "coupling" else f"{v:.0f}" if k == "dopri5 NFE" else f"{v:.2f}" if k.startswith("FD") else f"{v:.3f}"
    )
    for r in rows:
        print("| " + " | ".join(fmt(k, r[k]) if k in r else "" for k in keys) + " |")
    config = next(iter(configs.values()))
    settings = {
        "methods": args.methods.split(","),
        "workdir": args.workdir,
        **common.config_values(
            config,
            "training.num_steps",
            "training.batch_size",
            "data.num_train",
            "data.image_size",
            "model.base_channels",
            "optim.learning_rate",
            "training.seed",
            "eval.num_samples",
            "eval.path_nfe",
        ),
    }
    formats = {k: ".2f" for k in keys if k.startswith("FD")} | {"dopri5 NFE": ".0f"}
    common.write(
        args.out, "digits", [common.table("digits", "digits", keys, rows, formats)], seeds=1, settings=settings
    )


if __name__ == "__main__":
    main()
