"""Evaluation sweep: every solver x NFE against a fixed held-out target set, for any method.

Writes ``eval/metrics.json`` ({"config", "step", "results": [{"solver", "nfe", <metric>...}]}),
``eval/samples.png`` and ``eval/trajectories.png``, and returns the rows.
"""
from __future__ import annotations

import json
import os
from typing import Callable

import jax
import jax.numpy as jnp
import matplotlib
import ml_collections
import numpy as np

from flowjax import integrators, interpolants, metrics
from flowjax.data import digits, toy2d

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def eval_noise(config: ml_collections.ConfigDict, source_one: Callable, n: int) -> jax.Array:
    """Fixed evaluation noise x0 [n, ...] (key eval.seed), independent of training draws."""
    keys = jax.random.split(jax.random.PRNGKey(config.eval.seed), n)
    return jax.jit(jax.vmap(source_one))(keys)


def sample(apply_fn: Callable, params, x0: jax.Array, solver: str, nfe: int | None, tol: float = 1e-5,
           schedule: interpolants.Schedule | None = None, t_end: float = 1.0):
    """Integrates x0 from t=0 to ``t_end`` with v = apply_fn(params, x, t); returns (x1, nfe actually used).

    ``schedule`` (the training path's) is needed by ``ddim`` only.
    """
    if solver == "dopri5":
        run = lambda p, x: integrators.dopri5(lambda y, t: apply_fn(p, y, t), x, t1=t_end, rtol=tol, atol=tol)
        x1, used = jax.jit(run)(params, x0)
        return x1, int(used)
    solve = integrators.get(solver, schedule=schedule)
    return jax.jit(lambda p, x: solve(lambda y, t: apply_fn(p, y, t), x, nfe, t1=t_end))(params, x0), nfe


def target_set(config: ml_collections.ConfigDict) -> jax.Array:
    """The held-out set samples are compared with: a toy's test set of eval.num_samples points, or
    the digits test split (then eval.num_samples must equal its size: exact W2 pairs them one to one)."""
    if config.data.name == "digits":
        images, _ = digits.load("test", size=config.data.image_size)
        if config.eval.num_samples != images.shape[0]:
            raise ValueError(f"eval.num_samples={config.eval.num_samples}: W2 against the digits test split needs "
                             f"exactly its {images.shape[0]} images; set --config.eval.num_samples={images.shape[0]}.")
        return jnp.asarray(images)
    return toy2d.test_set(config.data.name, config.eval.num_samples, seed=config.data.test_seed)


def sample_metrics(config: ml_collections.ConfigDict, x1: jax.Array, target: jax.Array) -> dict:
    """W2 to the held-out set, and FD-digits for digits."""
    out = {"w2": float(metrics.w2(x1, target))}
    if config.data.name == "digits":
        out["fd_digits"] = metrics.fd_digits.fd_digits(np.asarray(x1))
    return out


def sweep(config: ml_collections.ConfigDict, apply_fn: Callable, params, x0: jax.Array,
          target: jax.Array) -> tuple[list, dict]:
    """Rows of {"solver", "nfe", "w2", ...} for each valid (solver, nfe), plus the samples by row label."""
    rows, samples = [], {}
    sched = path_schedule(config)
    for solver in config.eval.solvers:
        nfes = [None] if solver == "dopri5" else [n for n in config.eval.nfe if integrators.valid_nfe(solver, n)]
        for nfe in nfes:
            x1, used = sample(apply_fn, params, x0, solver, nfe, config.eval.dopri5_tol, sched, config.eval.t_end)
            rows.append({"solver": solver, "nfe": used, **sample_metrics(config, x1, target)})
            samples[f"{solver} NFE={used}"] = np.asarray(x1)
    return rows, samples


def path_schedule(config: ml_collections.ConfigDict) -> interpolants.Schedule:
    """Coefficients (alpha, sigma) of the training path, for path-aware solvers (ddim)."""
    return interpolants.schedule(config.loss.interpolant, config.loss.sigma_min)


def validate(config: ml_collections.ConfigDict) -> None:
    for solver in config.eval.solvers:
        integrators.get(solver, schedule=path_schedule(config))
    if not 0.0 < config.eval.t_end <= 1.0:
        raise ValueError(f"eval.t_end must be in (0, 1], got {config.eval.t_end}.")
    for nfe in config.eval.nfe:
        if not isinstance(nfe, int) or nfe < 1:
            raise ValueError(f"eval.nfe entries must be positive integers, got {nfe!r} in {tuple(config.eval.nfe)}.")


def evaluate(config: ml_collections.ConfigDict, workdir: str, apply_fn: Callable, params, step: int,
             source_one: Callable, config_name: str = "") -> list[dict]:
    """Runs the sweep and the trajectory metrics, writes eval/ files, returns the rows."""
    validate(config)
    target = target_set(config)
    n = target.shape[0]
    x0 = eval_noise(config, source_one, n)
    rows, samples = sweep(config, apply_fn, params, x0, target)

    m, path_nfe = min(config.eval.num_path_samples, n), config.eval.path_nfe
    traj = jax.jit(lambda p, x: metrics.trajectory_metrics(lambda y, t: apply_fn(p, y, t), x, path_nfe))(params, x0[:m])
    x_fine, _ = sample(apply_fn, params, x0, "euler", path_nfe, t_end=config.eval.t_end)
    rows.append({"solver": "euler", "nfe": path_nfe, **sample_metrics(config, x_fine, target),
                 **{k: float(v) for k, v in traj.items() if np.ndim(v) == 0}})

    out = os.path.join(workdir, "eval")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump({"config": config_name, "step": int(step), "results": rows}, f, indent=2)
    if target.ndim == 4:
        plot_image_samples(os.path.join(out, "samples.png"), np.asarray(target), samples)
    if target.shape[-1] == 2 and target.ndim == 2:
        plot_samples(os.path.join(out, "samples.png"), np.asarray(target), samples)
        k = min(config.eval.num_plot_paths, n)
        _, path = integrators.euler(lambda y, t: apply_fn(params, y, t), x0[:k], path_nfe, return_path=True)
        plot_trajectories(os.path.join(out, "trajectories.png"), np.asarray(path), np.asarray(target))
    return rows


def format_table(rows: list[dict]) -> str:
    """Rows as a fixed-width text table (one line per solver x NFE)."""
    keys = ["solver", "nfe"] + sorted({k for r in rows for k in r} - {"solver", "nfe"})
    lines = ["  ".join(f"{k:>14}" for k in keys)]
    for r in rows:
        lines.append("  ".join(f"{r[k]:>14.4f}" if isinstance(r.get(k), float) else f"{str(r.get(k, '')):>14}" for k in keys))
    return "\n".join(lines)


def plot_samples(path: str, target: np.ndarray, samples: dict[str, np.ndarray]) -> None:
    panels = {"target (test set)": target, **samples}
    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    lim = np.abs(target).max() * 1.3
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, x) in zip(axes.flat, panels.items()):
        ax.scatter(x[:, 0], x[:, 1], s=1, alpha=0.5)
        ax.set(title=title, xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_image_samples(path: str, target: np.ndarray, samples: dict[str, np.ndarray], per_panel: int = 36) -> None:
    """A grid of the first ``per_panel`` images per panel (test set, then each solver x NFE)."""
    panels = {"test set": target, **samples}
    side = int(np.sqrt(per_panel))
    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, x) in zip(axes.flat, panels.items()):
        x = np.clip(x[: side * side], -1, 1)
        h, w = x.shape[1:3]
        grid = x[..., 0].reshape(side, side, h, w).transpose(0, 2, 1, 3).reshape(side * h, side * w)
        ax.imshow(grid, cmap="gray", vmin=-1, vmax=1)
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_trajectories(path: str, traj: np.ndarray, target: np.ndarray) -> None:
    """traj [steps+1, n, 2]: noise in black, paths in grey, endpoints in blue."""
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(target[:, 0], target[:, 1], s=1, c="tab:orange", alpha=0.3, label="target")
    ax.plot(traj[:, :, 0], traj[:, :, 1], c="grey", lw=0.4, alpha=0.6)
    ax.scatter(traj[0, :, 0], traj[0, :, 1], s=3, c="black", label="x0")
    ax.scatter(traj[-1, :, 0], traj[-1, :, 1], s=3, c="tab:blue", label="x1")
    ax.set(aspect="equal", title="Euler trajectories")
    ax.legend(loc="upper right", markerscale=3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_samples(config: ml_collections.ConfigDict, workdir: str, apply_fn: Callable, params,
                  source_one: Callable) -> str:
    """Samples with sampling.solver / sampling.nfe to eval/samples_<solver>_<nfe>.npz (x0 and x1)."""
    s = config.sampling
    keys = jax.random.split(jax.random.PRNGKey(s.seed), s.num_samples)
    x0 = jax.jit(jax.vmap(source_one))(keys)
    x1, used = sample(apply_fn, params, x0, s.solver, s.nfe, config.eval.dopri5_tol, path_schedule(config),
                      config.eval.t_end)
    out = os.path.join(workdir, "eval")
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, f"samples_{s.solver}_{used}.npz")
    np.savez(path, x0=np.asarray(x0), x1=np.asarray(x1))
    return path
