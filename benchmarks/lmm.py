"""Lines Matching Models ("Generative Lines Matching Models", Matityahu & Fattal) reproduced at CPU scale.

    python benchmarks/lmm.py [--tasks bound,toy,digits] [--workdir runs/bench_lmm] [--toy_steps N]
                             [--digits_steps N] [--out benchmarks/results/lmm.json]

- ``bound`` (App. A.2): the mean similarity E<x1*, x0> = (1/d) sum_i x1*_i x0_i of the pairs that exact batch OT
  (`scipy.optimize.linear_sum_assignment` on squared distances) and nearest-neighbour matching make between
  N(0, I_d) noise and N(0, I_d) data, against the paper's bound sqrt(2 ln n / d) (Eq. 20), for d in {2, 8, 32,
  128, 512, 3072} and batch sizes n in {16, 128, 256, 1024}, averaged over max(2, 4096 / n) batches. The claim:
  OT <= NN <= bound, so driving the velocity at t = 0 to zero needs n exponential in d.
- ``toy`` (Sec. 3, Table 1): configs/lmm_toy128.py's five models (LMM with four choices the paper leaves open:
  sigma on the teacher's 18 Karras levels or log-uniform, unweighted or weighted by EDM's lambda(sigma)) on
  N(0, I_128) -> two Gaussians, with the
  paper's straightness in both readings (its printed formula is ambiguous, see flowjax/lmm.py's docstrings):
  the per-dimension squared deviation from the straight line integrated over 100 Euler steps (Liu et al.'s S
  over d; flowjax's ``curvature``), and the 10-step discrete form (1/d) sum_k ||dx_k - (x_10 - x_0) / 10||^2, =
  the 10-step curvature / 10; and the W2 distance of each model's samples to held-out points of q (Euler in t
  at NFE 1 and 100; EDM at Heun NFE 35; LMM at its NFE 1 and 2 samplers). The claims: LMM and 2-RF about an
  order of magnitude straighter than the others; LMM's endpoints do not drift from q as 2-RF's may.
- ``digits`` (Sec. 4 and App. A.3 at CPU scale): configs/edm_digits.py's conditional EDM teacher -> its Heun
  pairs (N = 18) -> configs/lmm_digits.py with the L2 lines loss, with LPIPS-VGG (the 8x8 digits upsampled to
  16x16, the least VGG16 takes), and the LPIPS model continued by ``--adversarial_steps`` steps of the
  adversarial stage (discriminator on VGG16 features at 16x16, real digits); FD-digits at the paper's step
  schedules (NFE 1-4), beside the teacher at Heun NFE 35. The claims: LMM at NFE 1-2 near or better than its
  teacher; perceptual better than L2; the adversarial stage better than lines only. Unless ``--one_teacher``, a
  second teacher (any flowjax model's pairs define lines): I-CFM on the digits with midpoint pairs (NFE 32), and
  LMM (L2) trained on them from scratch for ``--scratch_steps`` (no denoiser to start from), beside 2-RF on the
  same pairs (from the teacher, ``--digits_steps``) at Euler NFE 1 and 2.

Runs are kept in WORKDIR and resumed, not redone. The tables also go to a JSON file (`--out`, benchmarks/common.py).
"""

import argparse
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
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


def run(config, workdir: str, name: str, mode: str = "train"):
    """``main.py --mode=<mode>`` on ``config`` (train: resumes, then the evaluation sweep)."""
    import main

    main.run(config, workdir, mode, name)


def trained(config, workdir: str):
    """(experiment, EMA parameters) of a trained run."""
    exp = train.setup(config)
    state = train.load_checkpoint(config, workdir, exp.state)
    return exp, state.ema_params


# The LMM rows of the toy: (label, lmm.sigma, lmm.weighting); the L2 lines loss on the EDM teacher's Heun pairs.
LMM_TOY = {
    "lmm": ("LMM, sigma on the 18 Karras levels", "karras", "none"),
    "lmm_edmweight": ("LMM, Karras levels, EDM's lambda(sigma)", "karras", "edm"),
    "lmm_loguniform": ("LMM, log-uniform sigma", "loguniform", "none"),
    "lmm_loguniform_edmweight": ("LMM, log-uniform sigma, EDM's lambda(sigma)", "loguniform", "edm"),
}


def toy_distances(x: jax.Array, target: jax.Array) -> str:
    """ "a / b": the exact W2 of the first two coordinates (the two Gaussians) to the held-out points', and the
    W2 between Gaussians with the moments of the other 126 (N(0, I) in q). The W2 of all 128 coordinates of
    2,000 points is no use here: two samples of one 128-D distribution are about 13 apart, as far as the noise."""
    x, target = np.asarray(x, np.float64), np.asarray(target, np.float64)
    head = float(metrics.w2(jnp.asarray(x[:, :2]), jnp.asarray(target[:, :2])))
    rest = lambda a: (a[:, 2:].mean(0), np.cov(a[:, 2:], rowvar=False))
    tail = float(metrics.gaussian_w2(*map(jnp.asarray, rest(x)), *map(jnp.asarray, rest(target))))
    return f"{head:.3f} / {tail:.3f}"


def toy_table(workdir: str, steps: int | None) -> tuple[dict, dict]:
    """Table 1 at CPU scale: the five models of configs/lmm_toy128.py (see the module docstring)."""
    dirs = {m: os.path.join(workdir, "toy128", m) for m in ("edm", "icfm", "botcfm", "rf2") + tuple(LMM_TOY)}
    configs = {}
    for method in dirs:
        config = common.load_config(f"lmm_toy128:{method.split('_')[0]}")
        if method in LMM_TOY:  # the paper states neither the sigma distribution nor a per-sigma weight
            config.lmm.sigma, config.lmm.weighting = LMM_TOY[method][1:]
        if steps:
            config.training.num_steps = steps
            config.training.checkpoint_every = config.training.log_every = math.gcd(steps, 1000)
        if method == "rf2":
            config.data.data_dir = os.path.join(dirs["icfm"], "pairs")
            config.training.init_from = dirs["icfm"]
        if method.startswith("lmm"):
            config.data.data_dir = os.path.join(dirs["edm"], "pairs")
            config.training.init_from = dirs["edm"]
        configs[method] = config
    for method in ("edm", "icfm", "botcfm"):
        run(configs[method], dirs[method], f"lmm_toy128:{method}")
    run(configs["icfm"], dirs["icfm"], "lmm_toy128:icfm", "pairs")  # 1-RF's pairs, for 2-RF
    run(configs["edm"], dirs["edm"], "lmm_toy128:edm", "pairs")  # EDM's Heun pairs: LMM's lines
    for method in ("rf2",) + tuple(LMM_TOY):
        run(configs[method], dirs[method], f"lmm_toy128:{method}")

    # Table 1 of the paper as printed ("1/2-RF 0.043/0.00135"): its straightness of each method
    paper = {"edm": 0.0397, "icfm": 0.0417, "botcfm": 0.030, "rf2": 0.00135, **{m: 0.00183 for m in LMM_TOY}}
    labels = {
        "edm": "EDM",
        "icfm": "I-CFM = 1-RF (paper: OT-CFM (Lipman), 1-RF)",
        "botcfm": "BOT-CFM (batch 256)",
        "rf2": "2-RF",
        **{m: label for m, (label, _, _) in LMM_TOY.items()},
    }
    own = {"edm": ("edm_heun", 35), **{m: ("lmm:0", 1) for m in LMM_TOY}}
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
        w2 = lambda x: toy_distances(x, target)
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
        if method.startswith("lmm"):
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
        "(EDM and LMM read on t = 1 / (1 + sigma)), and the samples' distance to q as 'a / b': a = exact W2 of "
        "their first two coordinates to 2,000 held-out points', b = W2 between Gaussians fitted to the other 126"
    )
    fmt = {c: ".4f" for c in cols[1:] if not c.startswith(("own", "W2"))}
    settings = {
        m: common.config_values(c, "training.num_steps", "training.batch_size", "loss.name") for m, c in configs.items()
    }
    return common.table("lmm_toy", title, cols, rows, fmt), settings


DIGITS_VARIANTS = (
    ("l2", "L2 (mean squared error)", {}),
    ("lpips", "LPIPS-VGG (16x16)", {"lmm.norm": "lpips", "lmm.lpips_resize": 16}),
    (
        "lpips_adv",
        "LPIPS, then + adversarial",
        {"lmm.norm": "lpips", "lmm.lpips_resize": 16, "lmm.adv_lpips_resize": 16, "lmm.d_resize": 16},
    ),  # stage 2 only: continues the LPIPS run (its EMA weights) with ADVERSARIAL_STEPS adversarial steps
)


def digits_table(
    workdir: str,
    steps: int | None,
    second_teacher: bool = True,
    adversarial_steps: int = 100,
    variants: tuple[str, ...] = tuple(k for k, _, _ in DIGITS_VARIANTS),
    scratch_steps: int = 4000,
) -> tuple[dict, dict]:
    """The digits pipeline: EDM teacher -> Heun pairs -> LMM with three losses (see the module docstring)."""
    teacher_dir = os.path.join(workdir, "digits", "teacher")
    teacher = common.load_config("edm_digits")
    run(teacher, teacher_dir, "edm_digits")
    run(teacher, teacher_dir, "edm_digits", "pairs")
    rows, settings = [], {}
    teacher_rows = evaluate_rows(teacher_dir)
    heun = next(r for r in teacher_rows if r["solver"] == "edm_heun" and r["nfe"] == 35)
    euler = {r["nfe"]: r["fd_digits"] for r in teacher_rows if r["solver"] == "euler"}
    rows.append(
        {
            "model": "EDM teacher (conditional)",
            "teacher (Heun 35)": heun["fd_digits"],
            "Euler NFE 1": euler.get(1),
            "Euler NFE 2": euler.get(2),
        }
    )
    for key, label, overrides in DIGITS_VARIANTS:
        if key not in variants:
            continue
        config = common.load_config("lmm_digits")
        config.data.data_dir = os.path.join(teacher_dir, "pairs")
        config.training.init_from = teacher_dir
        for field, value in overrides.items():
            section, name = field.split(".")
            config[section][name] = value
        if steps:
            config.training.num_steps = steps
        if key == "lpips_adv":  # stage 2 from the LPIPS run: the stage-1 steps are not taken twice
            config.training.init_from = os.path.join(workdir, "digits", "lmm_lpips")
            config.lmm.adversarial_from, config.training.num_steps = 0, adversarial_steps
            config.training.log_every = config.training.checkpoint_every = adversarial_steps
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
    if second_teacher:
        rows += flow_teacher_rows(workdir, steps, settings, scratch_steps)
    cols = ["model", "teacher (Heun 35)", "teacher (midpoint 32)", "Euler NFE 1", "Euler NFE 2"]
    cols += [f"lmm:{s}" for s in ("0", "0,1", "0,1,2", "0,3,5", "0,1,3,5")] + ["lmm_euler:0,1"]
    title = (
        "LMM on the digits: FD-digits against the 300 test images (lower is better) of the conditional EDM teacher and"
        " of LMM students trained on its 10,000 Heun pairs (N = 18), at the paper's step schedules (NFE = number of "
        "indices; lmm_euler: the deterministic step along the lines)"
    )
    return common.table("lmm_digits", title, cols, rows, {c: ".2f" for c in cols[1:]}), settings


def flow_teacher_rows(workdir: str, steps: int | None, settings: dict, scratch_steps: int) -> list[dict]:
    """A second teacher: I-CFM on the digits (configs/icfm_digits.py, unconditional), its midpoint pairs (NFE 32),
    2-RF on them (flow matching, from the teacher), and LMM on the same pairs (L2; unconditional, so trained from
    scratch, for ``scratch_steps``: the EDM teacher's conditional network does not fit, and a velocity network
    is no denoiser)."""
    teacher_dir = os.path.join(workdir, "digits", "icfm_teacher")
    teacher = common.load_config("icfm_digits")
    teacher.pairs.solver, teacher.pairs.nfe, teacher.pairs.num_pairs = "midpoint", 32, 10_000
    teacher.eval.solvers, teacher.eval.nfe = ("euler", "midpoint"), (1, 2, 32)
    run(teacher, teacher_dir, "icfm_digits")
    run(teacher, teacher_dir, "icfm_digits", "pairs")
    pairs_dir = os.path.join(teacher_dir, "pairs")
    t_rows = evaluate_rows(teacher_dir)
    pick = lambda rows, solver, nfe: next(
        (r["fd_digits"] for r in rows if (r["solver"], r["nfe"]) == (solver, nfe)), None
    )
    out = [
        {
            "model": "I-CFM teacher (1-RF)",
            "teacher (midpoint 32)": pick(t_rows, "midpoint", 32),
            "Euler NFE 1": pick(t_rows, "euler", 1),
            "Euler NFE 2": pick(t_rows, "euler", 2),
        }
    ]
    rf2 = common.load_config("icfm_digits")
    rf2.data.name, rf2.data.data_dir, rf2.data.num_train, rf2.data.random_flip = "pairs", pairs_dir, 0, False
    rf2.coupling.name, rf2.training.init_from = "independent", teacher_dir
    rf2.eval.solvers, rf2.eval.nfe = ("euler",), (1, 2)
    if steps:
        rf2.training.num_steps = steps
    rf2_dir = os.path.join(workdir, "digits", "icfm_rf2")
    run(rf2, rf2_dir, "icfm_digits (2-RF)")
    r_rows = evaluate_rows(rf2_dir)
    out.append(
        {"model": "2-RF on its pairs", "Euler NFE 1": pick(r_rows, "euler", 1), "Euler NFE 2": pick(r_rows, "euler", 2)}
    )
    lines = common.load_config("lmm_digits")
    lines.data.data_dir, lines.model.num_classes, lines.lmm.from_teacher = pairs_dir, 0, False
    lines.training.num_steps = scratch_steps  # not the fine-tuning steps: it learns the data as well as the lines
    lines_dir = os.path.join(workdir, "digits", "icfm_lmm_l2")
    run(lines, lines_dir, "lmm_digits (I-CFM teacher)")
    row = {"model": "LMM, L2, on its pairs (from scratch)"}
    for r in evaluate_rows(lines_dir):
        if r["solver"].startswith("lmm"):
            row[r["solver"]] = r["fd_digits"]
    out.append(row)
    settings["icfm_teacher"] = common.config_values(teacher, "training.num_steps", "pairs.solver", "pairs.nfe")
    settings["icfm_rf2"] = common.config_values(rf2, "training.num_steps", "training.init_from")
    settings["icfm_lmm"] = common.config_values(lines, "training.num_steps", "lmm.norm", "lmm.from_teacher")
    for r in out:
        print(r, flush=True)
    return out


def evaluate_rows(workdir: str) -> list[dict]:
    with open(os.path.join(workdir, "eval", "metrics.json")) as f:
        return json.load(f)["results"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="runs/bench_lmm")
    parser.add_argument("--tasks", default="bound,toy,digits")
    parser.add_argument("--toy_steps", type=int, default=None, help="toy training steps (default: the configs')")
    parser.add_argument("--digits_steps", type=int, default=None, help="LMM digits steps (default: the config's)")
    parser.add_argument("--one_teacher", action="store_true", help="digits: the EDM teacher only (no I-CFM teacher)")
    parser.add_argument("--adversarial_steps", type=int, default=100, help="digits: stage-2 steps after LPIPS")
    parser.add_argument(
        "--scratch_steps", type=int, default=4000, help="digits: steps of the LMM trained from scratch on I-CFM's pairs"
    )
    parser.add_argument("--variants", default="l2,lpips,lpips_adv", help="digits: the LMM losses to train")
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
        table, settings["digits"] = digits_table(
            args.workdir,
            args.digits_steps,
            not args.one_teacher,
            args.adversarial_steps,
            args.variants.split(","),
            args.scratch_steps,
        )
        tables.append(table)
    for t in tables:
        print("\n" + common.markdown(t))
    common.write(args.out, "lmm", tables, seeds=1, settings=settings)


if __name__ == "__main__":
    main()
