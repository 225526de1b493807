"""Lines Matching Models ("Generative Lines Matching Models", Matityahu & Fattal) reproduced at CPU scale.

    python benchmarks/lmm.py [--tasks bound,toy,digits] [--workdir runs/bench_lmm] [--toy_steps N]
                             [--digits_steps N] [--out benchmarks/results/lmm.json]

- ``bound`` (App. A.2): the mean similarity E<x1*, x0> = (1/d) sum_i x1*_i x0_i of the pairs that exact batch OT
  (`scipy.optimize.linear_sum_assignment` on squared distances) and nearest-neighbour matching make between
  N(0, I_d) noise and N(0, I_d) data, against the paper's bound sqrt(2 ln n / d) (Eq. 20), for d in {2, 8, 32,
  128, 512, 3072} and batch sizes n in {16, 128, 256, 1024}, averaged over max(2, 4096 / n) batches. The claim:
  OT <= NN <= bound, so driving the velocity at t = 0 to zero needs n exponential in d.
- ``toy`` (Sec. 3, Table 1): configs/lmm_toy128.py's five models on N(0, I_128) -> two Gaussians, with the
  paper's straightness in both readings (its printed formula is ambiguous, see flowjax/lmm.py's docstrings):
  the per-dimension squared deviation from the straight line integrated over 100 Euler steps (Liu et al.'s S
  over d; flowjax's ``curvature``), and the 10-step discrete form (1/d) sum_k ||dx_k - (x_10 - x_0) / 10||^2, =
  the 10-step curvature / 10; and the W2 distance of each model's samples to held-out points of q (Euler in t
  at NFE 1 and 100; EDM at Heun NFE 35; LMM at its NFE 1 and 2 samplers). The claims: LMM and 2-RF about an
  order of magnitude straighter than the others; LMM's endpoints do not drift from q as 2-RF's may.
- ``digits`` (Sec. 4 and App. A.3 at CPU scale): configs/edm_digits.py's conditional EDM teacher -> its Heun
  pairs (N = 18) -> configs/lmm_digits.py with the L2 lines loss, with LPIPS-VGG (at 32x32), and with LPIPS then
  the adversarial stage; FD-digits at the paper's step schedules (NFE 1-4), beside the teacher at Heun NFE 35.
  The claims: LMM at NFE 1-2 near or better than its teacher; perceptual better than L2; the adversarial stage
  better than lines only.

Runs are kept in WORKDIR and resumed, not redone. The tables also go to a JSON file (`--out`, benchmarks/common.py).
"""

import argparse
import importlib
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from scipy.optimize import linear_sum_assignment  # noqa: E402

from benchmarks import common  # noqa: E402
from flowjax import evaluate, integrators, metrics, predictions, rectify, train  # noqa: E402
from flowjax.data import dataset as datasets  # noqa: E402

DIMS, SIZES = (2, 8, 32, 128, 512, 3072), (16, 128, 256, 1024)


def similarity_table(seed: int = 0) -> dict:
    """App. A.2's bound against exact batch OT and nearest-neighbour matching (see the module docstring)."""
    rng = np.random.default_rng(seed)
    rows = []
    for d in DIMS:
        for n in SIZES:
            ot, nn = [], []
            for _ in range(max(2, 4096 // n)):
                x0, x1 = rng.standard_normal((n, d)), rng.standard_normal((n, d))
                cost = (x0**2).sum(1)[:, None] + (x1**2).sum(1)[None] - 2 * x0 @ x1.T
                rows_, cols = linear_sum_assignment(cost)
                ot.append(np.mean(np.sum(x0[rows_] * x1[cols], axis=1)) / d)
                nn.append(np.mean(np.max(x0 @ x1.T, axis=1)) / d)
            bound = math.sqrt(2 * math.log(n) / d)
            rows.append({"d": d, "n": n, "OT": float(np.mean(ot)), "NN": float(np.mean(nn)), "bound": bound})
            print(rows[-1], flush=True)
    title = (
        "LMM App. A.2: E<x1*, x0> (per dimension) of exact batch OT and nearest-neighbour pairs of N(0, I_d) noise "
        "and data, against the bound sqrt(2 ln n / d) (Eq. 20)"
    )
    return common.table("lmm_bound", title, ["d", "n", "OT", "NN", "bound"], rows, {"d": "d", "n": "d"})


def load(name: str):
    path, _, arg = name.partition(":")
    module = importlib.import_module(f"configs.{path}")
    return module.get_config(arg) if arg else module.get_config()


def run(config, workdir: str, name: str, mode: str = "train"):
    """``main.py --mode=<mode>`` on ``config`` (train: resumes, then the evaluation sweep)."""
    import main

    main.run(config, workdir, mode, name)


def trained(config, workdir: str):
    """(experiment, EMA parameters) of a trained run."""
    exp = train.setup(config)
    state = train.load_checkpoint(config, workdir, exp.state)
    return exp, state.ema_params


def toy_table(workdir: str, steps: int | None) -> tuple[dict, dict]:
    """Table 1 at CPU scale: the five models of configs/lmm_toy128.py (see the module docstring)."""
    dirs = {m: os.path.join(workdir, "toy128", m) for m in ("edm", "icfm", "botcfm", "rf2", "lmm")}
    configs = {}
    for method in dirs:
        config = load(f"lmm_toy128:{method}")
        if steps:
            config.training.num_steps = steps
            config.training.checkpoint_every = config.training.log_every = math.gcd(steps, 1000)
        if method == "rf2":
            config.data.data_dir = os.path.join(dirs["icfm"], "pairs")
            config.training.init_from = dirs["icfm"]
        if method == "lmm":
            config.data.data_dir = os.path.join(dirs["edm"], "pairs")
            config.training.init_from = dirs["edm"]
        configs[method] = config
    for method in ("edm", "icfm", "botcfm"):
        run(configs[method], dirs[method], f"lmm_toy128:{method}")
    run(configs["icfm"], dirs["icfm"], "lmm_toy128:icfm", "pairs")  # 1-RF's pairs, for 2-RF
    run(configs["edm"], dirs["edm"], "lmm_toy128:edm", "pairs")  # EDM's Heun pairs: LMM's lines
    for method in ("rf2", "lmm"):
        run(configs[method], dirs[method], f"lmm_toy128:{method}")

    # Table 1 of the paper as printed ("1/2-RF 0.043/0.00135"): its straightness of each method
    paper = {"edm": 0.0397, "icfm": 0.0417, "botcfm": 0.030, "rf2": 0.00135, "lmm": 0.00183}
    labels = {
        "edm": "EDM",
        "icfm": "I-CFM = 1-RF (paper: OT-CFM (Lipman), 1-RF)",
        "botcfm": "BOT-CFM (batch 256)",
        "rf2": "2-RF",
        "lmm": "LMM",
    }
    own = {"edm": ("edm_heun", 35), "lmm": ("lmm:0", 1)}
    rows = []
    for method, config in configs.items():
        exp, params = trained(config, dirs[method])
        eval_config = rectify.evaluation_config(config)
        target = datasets.held_out(eval_config)
        n = target.shape[0]
        keys = evaluate.eval_keys(config.eval.seed, n)
        x0 = jax.jit(jax.vmap(exp.noise_one))(keys)
        field = predictions.bind(exp.velocity_fn, params, None)
        d = x0.shape[-1]
        s100 = float(metrics.straightness.curvature(field, x0, 100))
        s10 = float(metrics.straightness.curvature(field, x0, 10)) / 10
        w2 = lambda x: float(metrics.w2(x, target))
        row = {
            "model": labels[method],
            "paper (Table 1)": paper[method],
            "S (100 steps, per dim.)": s100,
            "S_10 (discrete, per dim.)": s10,
            "W2 Euler NFE 1": w2(integrators.euler(field, x0, 1)),
            "W2 Euler NFE 100": w2(integrators.euler(field, x0, 100)),
        }
        if method in own:
            solver, nfe = own[method]
            x1, _ = evaluate.sample(
                exp.velocity_fn, params, x0, solver, nfe, karras=evaluate.sampling_options(config), keys=keys
            )
            row["W2 own sampler"] = w2(x1)
            row["own sampler"] = f"{solver} NFE {nfe}"
        if method == "lmm":
            x1, _ = evaluate.sample(
                exp.velocity_fn, params, x0, "lmm:0,1", 2, karras=evaluate.sampling_options(config), keys=keys
            )
            row["W2 LMM NFE 2"] = w2(x1)
        rows.append(row)
        print(row, f"(d = {d})", flush=True)
    cols = [
        "model",
        "paper (Table 1)",
        "S (100 steps, per dim.)",
        "S_10 (discrete, per dim.)",
        "W2 Euler NFE 1",
        "W2 Euler NFE 100",
        "own sampler",
        "W2 own sampler",
        "W2 LMM NFE 2",
    ]
    title = (
        "LMM Table 1 at CPU scale: N(0, I_128) -> two Gaussians (configs/lmm_toy128.py), straightness per dimension "
        "(100-step integral, and the 10-step discrete form) along Euler trajectories in t of 2,000 held-out noises "
        "(EDM and LMM read on t = 1 / (1 + sigma)), and W2 of the samples to 2,000 held-out points of q"
    )
    fmt = {c: ".4f" for c in cols[1:] if c != "own sampler"}
    settings = {
        m: common.config_values(c, "training.num_steps", "training.batch_size", "loss.name") for m, c in configs.items()
    }
    return common.table("lmm_toy", title, cols, rows, fmt), settings


DIGITS_VARIANTS = (
    ("l2", "L2 (mean squared error)", {}),
    ("lpips", "LPIPS-VGG (32x32)", {"lmm.norm": "lpips", "lmm.lpips_resize": 32}),
    (
        "lpips_adv",
        "LPIPS, then + adversarial",
        {"lmm.norm": "lpips", "lmm.lpips_resize": 32, "lmm.adv_lpips_resize": 32, "lmm.d_resize": 32},
    ),
)


def digits_table(workdir: str, steps: int | None) -> tuple[dict, dict]:
    """The digits pipeline: EDM teacher -> Heun pairs -> LMM with three losses (see the module docstring)."""
    teacher_dir = os.path.join(workdir, "digits", "teacher")
    teacher = load("edm_digits")
    run(teacher, teacher_dir, "edm_digits")
    run(teacher, teacher_dir, "edm_digits", "pairs")
    rows, settings = [], {}
    teacher_rows = evaluate_rows(teacher_dir)
    heun = next(r for r in teacher_rows if r["solver"] == "edm_heun" and r["nfe"] == 35)
    rows.append({"model": "EDM teacher, Heun NFE 35", **{"teacher (Heun 35)": heun["fd_digits"]}})
    for key, label, overrides in DIGITS_VARIANTS:
        config = load("lmm_digits")
        config.data.data_dir = os.path.join(teacher_dir, "pairs")
        config.training.init_from = teacher_dir
        for field, value in overrides.items():
            section, name = field.split(".")
            config[section][name] = value
        if steps:
            config.training.num_steps = steps
        if key == "lpips_adv":  # the same stage-1 length as the others, then as many adversarial steps
            config.lmm.adversarial_from = config.training.num_steps
            config.training.num_steps *= 2
        workdir_k = os.path.join(workdir, "digits", f"lmm_{key}")
        run(config, workdir_k, f"lmm_digits ({key})")
        result = evaluate_rows(workdir_k)
        row = {"model": f"LMM, {label}"}
        for r in result:
            if r["solver"].startswith("lmm"):
                row[r["solver"]] = r["fd_digits"]
                row[r["solver"] + " class acc."] = r.get("class_accuracy")
        rows.append(row)
        settings[key] = common.config_values(
            config, "training.num_steps", "lmm.adversarial_from", "lmm.norm", "optim.learning_rate"
        )
        print(row, flush=True)
    cols = ["model", "teacher (Heun 35)"] + [f"lmm:{s}" for s in ("0", "0,1", "0,1,2", "0,3,5", "0,1,3,5")]
    cols += ["lmm_euler:0,1"]
    title = (
        "LMM on the digits: FD-digits against the 300 test images (lower is better) of the conditional EDM teacher and"
        " of LMM students trained on its 10,000 Heun pairs (N = 18), at the paper's step schedules (NFE = number of "
        "indices; lmm_euler: the deterministic step along the lines)"
    )
    return common.table("lmm_digits", title, cols, rows, {c: ".2f" for c in cols[1:]}), settings


def evaluate_rows(workdir: str) -> list[dict]:
    with open(os.path.join(workdir, "eval", "metrics.json")) as f:
        return json.load(f)["results"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="runs/bench_lmm")
    parser.add_argument("--tasks", default="bound,toy,digits")
    parser.add_argument("--toy_steps", type=int, default=None, help="toy training steps (default: the configs')")
    parser.add_argument("--digits_steps", type=int, default=None, help="LMM digits steps (default: the config's)")
    common.add_out_argument(parser, "lmm")
    args = parser.parse_args()
    tables, settings = [], {"workdir": args.workdir}
    tasks = args.tasks.split(",")
    if "bound" in tasks:
        tables.append(similarity_table())
    if "toy" in tasks:
        table, settings["toy"] = toy_table(args.workdir, args.toy_steps)
        tables.append(table)
    if "digits" in tasks:
        table, settings["digits"] = digits_table(args.workdir, args.digits_steps)
        tables.append(table)
    for t in tables:
        print("\n" + common.markdown(t))
    common.write(args.out, "lmm", tables, seeds=1, settings=settings)


if __name__ == "__main__":
    main()
