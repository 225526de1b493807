"""Reproduces "Minimizing Trajectory Curvature of ODE-based Generative Models" (Lee, Kim & Ye, ICML 2023) at CPU scale.

Task ``toy`` (Figs. 1, 2 and 4): configs/curvature_toy.py (the released code's two anisotropic Gaussians from the
wide prior N(0, diag(36, 1))) trained with the encoder coupling at each beta of ``--betas`` and with the independent
coupling, then for each: the curvature of Sec. 5.2 (10,000 Euler trajectories of 128 steps from the prior, per
element), the held-out flow-matching loss as the estimate of the I(q) bound (Eq. 8; 20,000 held-out points, z from
the encoder or the prior, 10 draws of t), the encoder's KL per dimension, the reconstruction error (x against the
128-step Euler solution from its own z) and ||z / s|| under q_phi(z) against the prior's, and the W2 of samples to
held-out points at few steps (the run's evaluation sweep: Euler, and the paper's Heun with an Euler last step).
Paper's claims: curvature and the I(q) bound fall as beta falls, and few-step sampling improves; too small a beta
mismatches the prior. Writes trajectory plots (forward lines x -> z, reverse Euler paths from the prior) for the
independent coupling and beta = 10 to ``<workdir>/toy_trajectories.png``.

Task ``digits`` (Figs. 5 and 7 analogue): configs/curvature_digits.py (the digits configs' small UNet, 2,000 steps)
at each beta of ``--digits_betas``, beside the independent coupling, OT-CFM and LOOM-CFM trained with the same
digits settings (configs/{icfm,otcfm,loom}_digits.py; ``--digits_baselines DIR`` reads runs already trained there,
e.g. the digits benchmark's, instead of training them again). For each: FD-digits of 1,000 samples at Euler NFE
1, 2, 4, 8 and the paper's Heun at NFE 5 and 9, the curvature (Sec. 5.2: Euler 128 steps, 1,000 trajectories) and
the I(q) bound on the 300 test images. Paper's claims: curvature falls with beta and few-step FD improves; too
small a beta costs quality (the default betas 0.1 ... 10 span both sides: at beta = 10 the digits' encoder already
sits near the prior, KL about 0.002 per dimension).

Task ``distill`` (Table 1 analogue; needs the digits task's runs): one-step distillation of the independent
(I-CFM) teacher and of the encoder teachers of ``--distill_betas``: 10,000 teacher pairs by Euler (20 steps for the
independent teacher, 10 for the encoder's, as Table 1's teachers), a student fine-tuned from its teacher at t = 0
only (``loss.time_sampler = "zero"``), then its distillation error (mean squared error per element against 1,000
held-out teacher pairs) and FD-digits at NFE 1, beside the teacher's FD at its own NFE. Paper's claim: the
straighter teacher distils better.

    python benchmarks/curvature.py --workdir runs/curvature --toy_steps 20000 --tasks toy,digits,distill
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import common  # noqa: E402
from flowjax import integrators, train  # noqa: E402
from flowjax.couplings import encoder  # noqa: E402
from flowjax.data import dataset as datasets  # noqa: E402
from flowjax.data import toy2d  # noqa: E402
from flowjax.metrics import coupling as coupling_metrics  # noqa: E402
from flowjax.metrics import straightness  # noqa: E402

BETAS = "1,2,5,10,20,independent"
SWEEP = (("euler", 1), ("euler", 2), ("heun_euler_last", 3), ("heun_euler_last", 5), ("euler", 128))


def toy_config(beta: str, steps: int | None):
    config = common.load_config(f"curvature_toy:{beta}")
    if steps:
        every = min(steps, 1_000)
        config.training.num_steps, config.training.log_every, config.training.checkpoint_every = steps, every, steps
    return config


def toy_row(config, workdir: str, label: str) -> dict:
    exp = train.setup(config)
    state = train.load_checkpoint(config, workdir, exp.state)
    velocity = lambda x, t: exp.velocity_fn(state.ema_params, x, t)
    prior_std = jnp.asarray(datasets.prior_std(config.data))
    key = jax.random.PRNGKey(0)
    k_x0, k_prior, k_t = jax.random.split(key, 3)
    x1 = toy2d.test_set("two_modes", 20_000, seed=config.data.test_seed)
    x0 = jax.random.normal(k_x0, x1.shape) * prior_std
    if exp.coupling.encode is not None:
        mu, logvar = exp.coupling.encode(state.coupling_params["ema_params"], x1)
        z, kl = encoder.reparameterize(mu, logvar, x0, prior_std), float(encoder.kl_per_dim(mu, logvar))
    else:
        z, kl = x0, None
    prior = jax.random.normal(k_prior, (10_000, 2)) * prior_std
    curvature = float(jax.jit(lambda x: straightness.curvature(velocity, x, 128))(prior))
    bound = float(jax.jit(lambda a, b: coupling_metrics.intersection_bound(velocity, a, b, k_t, 10))(z, x1))
    solve = jax.jit(lambda x: integrators.euler(velocity, x, 128))
    recon = float(coupling_metrics.reconstruction_error(solve, z, x1))
    z_norm, _ = coupling_metrics.norm_stats(z, prior_std)
    prior_norm, _ = coupling_metrics.norm_stats(prior, prior_std)
    with open(os.path.join(workdir, "eval", "metrics.json")) as f:
        sweep = {(r["solver"], r["nfe"]): r["w2"] for r in json.load(f)["results"]}
    row = {
        "coupling": label,
        "curvature": curvature,
        "I(q) bound": bound,
        "KL / dim": kl,
        "recon. error": recon,
        "E‖z/s‖ under q": float(z_norm),
        "E‖z/s‖ under p": float(prior_norm),
    }
    row.update({f"W2 {'Heun' if s != 'euler' else 'Euler'} {n}": sweep.get((s, n)) for s, n in SWEEP})
    return row, (exp, state, z[:30], x1[:30])


def plot_toy(path: str, panels: dict) -> None:
    """Fig. 4-style panels: the forward lines x -> z of the coupling, and Euler paths (20 steps) from the prior."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), 2, figsize=(9, 3.6 * len(panels)), squeeze=False)
    for row, (label, (exp, state, z, x1)) in zip(axes, panels.items()):
        for a, b in zip(np.asarray(z), np.asarray(x1)):
            row[0].plot([a[0], b[0]], [a[1], b[1]], color="0.5", lw=0.6)
        row[0].scatter(*np.asarray(z).T, s=6, c="k", label="z")
        row[0].scatter(*np.asarray(x1).T, s=6, c="tab:blue", label="x")
        row[0].set_title(f"{label}: forward lines x -> z")
        prior = jax.random.normal(jax.random.PRNGKey(5), (30, 2)) * jnp.asarray(toy2d.WIDE_PRIOR_STD)
        velocity = lambda x, t: exp.velocity_fn(state.ema_params, x, t)
        _, path_ = integrators.euler(velocity, prior, 20, return_path=True)
        for p in np.asarray(path_).transpose(1, 0, 2):
            row[1].plot(p[:, 0], p[:, 1], color="tab:orange", lw=0.6)
        row[1].scatter(*np.asarray(prior).T, s=6, c="k")
        row[1].set_title(f"{label}: Euler, 20 steps, from the prior")
        for ax in row:
            ax.set_xlim(-18, 18)
            ax.set_ylim(-9, 18)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    print(f"plots: {path}")


def toy_table(workdir: str, steps: int | None, betas: list[str]) -> tuple[dict, dict]:
    import main

    rows, panels = [], {}
    for beta in betas:
        config = toy_config(beta, steps)
        run_dir = os.path.join(workdir, "toy", beta)
        main.run(config, run_dir, "train", f"curvature_toy:{beta}")
        label = "independent" if beta == "independent" else f"encoder, beta = {beta}"
        row, panel = toy_row(config, run_dir, label)
        rows.append(row)
        print(rows[-1], flush=True)
        if beta in ("independent", "10"):
            panels[label] = panel
    if panels:
        plot_toy(os.path.join(workdir, "toy_trajectories.png"), panels)
    columns = list(rows[0])
    formats = {c: ".4f" for c in columns if c != "coupling"}
    title = (
        "The 2-D toy (Figs. 1, 2, 4): curvature (Sec. 5.2, per element), the I(q) bound (Eq. 8, held-out flow-matching "
        "loss per dimension), KL per dimension, reconstruction error, whitened noise norms, and W2 of samples to "
        "held-out points at few steps (Heun: the paper's, last step Euler)"
    )
    config = toy_config(betas[0], steps)
    settings = {"steps": config.training.num_steps, "batch": config.training.batch_size, "betas": betas}
    return common.table("curvature_toy", title, columns, rows, formats), settings


DIGITS_BASELINES = {"icfm": "independent (I-CFM)", "otcfm": "OT-CFM (exact, per batch)", "loom": "LOOM-CFM, 4 caches"}
DIGITS_SWEEP = (("euler", 1), ("euler", 2), ("euler", 4), ("euler", 8), ("heun_euler_last", 5), ("heun_euler_last", 9))


def digits_row(config, workdir: str, label: str) -> dict:
    """FD-digits by solver and NFE, the curvature and the I(q) bound of a trained digits run."""
    from flowjax import evaluate
    from flowjax.data import digits
    from flowjax.metrics import fd_digits

    exp = train.setup(config)
    state = train.load_checkpoint(config, workdir, exp.state)
    params = state.ema_params
    velocity = lambda x, t: exp.velocity_fn(params, x, t)
    x0 = evaluate.eval_noise(config, exp.noise_one, 1_000)
    row = {"coupling": label}
    for solver, nfe in DIGITS_SWEEP:
        x, _ = evaluate.sample(exp.velocity_fn, params, x0, solver, nfe)
        row[f"FD {'Heun' if solver != 'euler' else 'Euler'} {nfe}"] = fd_digits.fd_digits(np.asarray(x))
    row["curvature"] = float(jax.jit(lambda x: straightness.curvature(velocity, x, 128))(x0))
    test, _ = digits.from_config(config.data, "test")
    test = jnp.asarray(test)
    noise = jax.random.normal(jax.random.PRNGKey(11), test.shape)
    z, row["KL / dim"] = noise, None
    if exp.coupling.encode is not None:
        mu, logvar = exp.coupling.encode(state.coupling_params["ema_params"], test)
        z, row["KL / dim"] = encoder.reparameterize(mu, logvar, noise), float(encoder.kl_per_dim(mu, logvar))
    # the bound of the coupling the model was trained with, on held-out data: the encoder's or the independent one
    # (OT-CFM's and LOOM-CFM's couplings are of their training batches and set, not of the test images)
    row["I(q) bound"] = None
    if config.coupling.name in ("encoder", "independent"):
        bound = jax.jit(lambda a, b: coupling_metrics.intersection_bound(velocity, a, b, jax.random.PRNGKey(12), 10))
        row["I(q) bound"] = float(bound(z, test))
    # Fig. 8's gap: FD of the 300 test images' reconstructions (Euler 128 from their own z) against FD of 300
    # samples (Euler 128 from the prior), the same count; the independent coupling reconstructs nothing
    row["rFD (300)"] = row["FD (300)"] = None
    if exp.coupling.encode is not None:
        solve = jax.jit(lambda x: integrators.euler(velocity, x, 128))
        row["rFD (300)"] = fd_digits.fd_digits(np.asarray(solve(z)))
        row["FD (300)"] = fd_digits.fd_digits(np.asarray(solve(x0[: test.shape[0]])))
    return row


def digits_table(workdir: str, steps: int | None, betas: list[str], baselines_dir: str | None):
    rows = []
    for name, label in [(f"curvature_digits:{b}", f"encoder, beta = {b}") for b in betas] + [
        (f"{m}_digits", label) for m, label in DIGITS_BASELINES.items()
    ]:
        config = common.load_config(name)
        if steps:
            config.training.num_steps = steps
        run_dir = os.path.join(workdir, "digits", name.replace(":", "_"))
        if name.endswith("_digits") and baselines_dir:
            run_dir = os.path.join(baselines_dir, name[: -len("_digits")])
        else:
            train.train(config, run_dir)  # resumes a finished run at its last step: nothing is trained again
        rows.append(digits_row(config, run_dir, label))
        print(rows[-1], flush=True)
    columns = list(rows[0])
    formats = {c: ".2f" for c in columns if c.startswith(("FD", "rFD"))}
    formats.update({"curvature": ".4f", "I(q) bound": ".4f", "KL / dim": ".4f"})
    title = (
        "Digits (Figs. 5, 7 analogue): FD-digits of 1,000 samples by solver and NFE (Heun: the paper's, last step "
        "Euler), curvature (Sec. 5.2, per element, 128 Euler steps), KL per dimension and the I(q) bound of the "
        "encoder's or the independent coupling on the 300 test images; for the encoder, Fig. 8's gap: FD-digits of "
        "the test images' reconstructions (Euler 128 from their encodings) against that of as many samples"
    )
    config = common.load_config(f"curvature_digits:{betas[0]}")
    settings = {"steps": steps or config.training.num_steps, "betas": betas, "baselines": baselines_dir or "trained"}
    return common.table("curvature_digits", title, columns, rows, formats), settings


def distill_row(teacher_config, teacher_dir: str, workdir: str, label: str, nfe: int, steps: int) -> dict:
    """Teacher pairs (Euler, ``nfe`` steps), a one-step student fine-tuned from the teacher on them, and its
    distillation error on held-out teacher pairs and FD-digits at NFE 1."""
    import copy

    from flowjax import evaluate, rectify
    from flowjax.data import pairs as pairs_io
    from flowjax.metrics import fd_digits

    exp = train.setup(teacher_config)
    params = train.load_checkpoint(teacher_config, teacher_dir, exp.state).ema_params
    dirs = {}
    for part, (num, seed) in {"train": (10_000, 3), "test": (1_000, 1_003)}.items():
        config = copy.deepcopy(teacher_config)
        config.pairs.solver, config.pairs.nfe, config.pairs.num_pairs, config.pairs.seed = "euler", nfe, num, seed
        config.pairs.shard_size = min(num, 2_000)
        dirs[part] = rectify.generate_pairs(
            config, exp.velocity_fn, params, exp.noise_one, os.path.join(workdir, f"pairs_{part}"),
            teacher={"workdir": teacher_dir},
        )  # fmt: skip
    teacher_x, _ = evaluate.sample(exp.velocity_fn, params, evaluate.eval_noise(teacher_config, exp.noise_one, 1_000),
                                   "euler", nfe)  # fmt: skip
    student = copy.deepcopy(teacher_config)
    student.data.name, student.data.data_dir, student.data.num_train = "pairs", dirs["train"], 0
    student.coupling.name, student.coupling.beta = "independent", None
    student.loss.time_sampler = "zero"
    student.training.init_from, student.training.num_steps = os.path.abspath(teacher_dir), steps
    student.optim.learning_rate, student.optim.warmup_steps = 3e-4, 100
    student.training.checkpoint_every = steps
    s_exp = train.setup(student)
    s_params = train.train(student, os.path.join(workdir, "student"), s_exp).ema_params
    one_step = jax.jit(lambda x: x + s_exp.velocity_fn(s_params, x, jnp.zeros((x.shape[0],))))
    x0, x1 = pairs_io.open_pairs(dirs["test"]).read(np.arange(1_000))
    eval_config = rectify.evaluation_config(student)
    x0_eval = evaluate.eval_noise(eval_config, s_exp.noise_one, 1_000)
    return {
        "teacher": label,
        "teacher NFE": nfe,
        "teacher FD": fd_digits.fd_digits(np.asarray(teacher_x)),
        "distillation error": float(jnp.mean(jnp.square(one_step(jnp.asarray(x0)) - jnp.asarray(x1)))),
        "student FD NFE 1": fd_digits.fd_digits(np.asarray(one_step(x0_eval))),
    }


def distill_table(workdir: str, betas: list[str], steps: int, baselines_dir: str | None):
    teachers = [("icfm_digits", "independent (I-CFM)", 20)] + [
        (f"curvature_digits:{b}", f"encoder, beta = {b}", 10) for b in betas
    ]
    rows = []
    for name, label, nfe in teachers:
        config = common.load_config(name)
        teacher_dir = os.path.join(workdir, "digits", name.replace(":", "_"))
        if name == "icfm_digits" and baselines_dir:
            teacher_dir = os.path.join(baselines_dir, "icfm")
        rows.append(distill_row(config, teacher_dir, os.path.join(workdir, "distill", name.replace(":", "_")),
                                label, nfe, steps))  # fmt: skip
        print(rows[-1], flush=True)
    columns = list(rows[0])
    formats = {"teacher FD": ".2f", "student FD NFE 1": ".2f", "distillation error": ".4f", "teacher NFE": "int"}
    title = (
        "Digits, Table 1 analogue: one-step students distilled from 10,000 Euler pairs of each teacher (fine-tuned "
        "from it at t = 0 only); distillation error per element on 1,000 held-out teacher pairs, FD-digits of "
        "1,000 samples"
    )
    return common.table("curvature_distill", title, columns, rows, formats), {"steps": steps, "betas": betas}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="runs/bench_curvature")
    parser.add_argument("--tasks", default="toy")
    parser.add_argument("--toy_steps", type=int, default=None, help="toy training steps (default: the config's)")
    parser.add_argument("--betas", default=BETAS, help="toy: the betas (and 'independent') to train")
    parser.add_argument("--digits_steps", type=int, default=None, help="digits training steps (default: 2,000)")
    parser.add_argument("--digits_betas", default="0.1,0.3,1,3,10", help="digits: the encoder's betas")
    parser.add_argument("--digits_baselines", default=None, help="digits: a directory with trained icfm/otcfm/loom")
    parser.add_argument("--distill_betas", default="10,1", help="distill: the encoder teachers' betas")
    parser.add_argument("--distill_steps", type=int, default=1_000, help="distill: the students' training steps")
    common.add_out_argument(parser, "curvature")
    args = parser.parse_args()
    tables, settings = [], {"workdir": args.workdir}
    if "toy" in args.tasks.split(","):
        table, settings["toy"] = toy_table(args.workdir, args.toy_steps, args.betas.split(","))
        tables.append(table)
    if "digits" in args.tasks.split(","):
        table, settings["digits"] = digits_table(
            args.workdir, args.digits_steps, args.digits_betas.split(","), args.digits_baselines
        )
        tables.append(table)
    if "distill" in args.tasks.split(","):
        table, settings["distill"] = distill_table(
            args.workdir, args.distill_betas.split(","), args.distill_steps, args.digits_baselines
        )
        tables.append(table)
    for t in tables:
        print("\n" + common.markdown(t))
    common.write(args.out, "curvature", tables, seeds=1, settings=settings)


if __name__ == "__main__":
    main()
