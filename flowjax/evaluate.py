"""Evaluation sweep: every solver x NFE against a fixed held-out target set, for any method.

Writes ``eval/metrics.json`` ({"config", "step", "results": [{"solver", "nfe", <metric>...}]}),
``eval/samples.png`` and ``eval/trajectories.png`` (`flowjax.plots`), and returns the rows.

2-D toys and the digits are compared with a held-out set in memory (exact W2, FD-digits), all samples
in one call. Image data sets (`dataset.kind` "images") get FID instead (`flowjax.evaluate_fid`): samples
and reference images go through the FID Inception in batches of ``eval.batch_size``, and only running
feature statistics are kept, so 50,000 samples never sit on the device at once.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Callable

import jax
import ml_collections
import numpy as np
from absl import logging

from flowjax import distributed, evaluate_fid, integrators, interpolants, io, lmm, metrics, plots, predictions
from flowjax.data import dataset as datasets


def eval_noise(config: ml_collections.ConfigDict, noise_one: Callable, n: int) -> jax.Array:
    """Fixed evaluation noise x0 [n, ...] (key eval.seed), independent of training draws."""
    return jax.jit(jax.vmap(noise_one))(eval_keys(config.eval.seed, n))


def karras_options(config: ml_collections.ConfigDict) -> dict:
    """The Karras et al. (2022) schedule of the edm_heun / edm_euler solvers: eval.sigma_min/sigma_max/rho."""
    ev = config.eval
    return {"sigma_min": ev.sigma_min, "sigma_max": ev.sigma_max, "rho": ev.rho}


KARRAS_KEYS = ("sigma_min", "sigma_max", "rho")


def sampling_options(config: ml_collections.ConfigDict) -> dict:
    """`karras_options` and the length N of the Karras schedule whose indices the LMM samplers name (lmm.num_steps)."""
    return {**karras_options(config), "num_steps": config.lmm.num_steps}


def eval_keys(seed: int, n: int) -> jax.Array:
    """The n per-sample keys of the evaluation: sample i's noise is noise_one(keys[i]), and the LMM sampler's fresh
    noise comes from the same key (`lmm.sample`), so a sample does not depend on the batch it is drawn in."""
    return jax.random.split(jax.random.PRNGKey(seed), n)


def sampler(
    velocity_fn: Callable,
    solver: str,
    nfe: int | None,
    tol: float = 1e-5,
    schedule: interpolants.Schedule | None = None,
    t_end: float = 1.0,
    karras: dict | None = None,
) -> Callable:
    """``(params, x0, labels=None, keys=None) -> (x1, nfe actually used)``, integrating from t=0 to ``t_end`` with
    one jitted function; ``labels`` [B] (class indices) condition a class-conditional model; ``keys`` [B] (the
    samples' PRNG keys) are needed by the LMM sampler ``lmm:<indices>``, which draws fresh noise at every step.

    ``karras`` (`karras_options`, or `sampling_options` with the LMM samplers' ``num_steps``) sets the sigma
    schedule of the edm_* and lmm samplers. Build it once and call it on many batches: it compiles once per batch
    shape.
    """
    if solver == "dopri5":
        run = jax.jit(
            lambda p, x, y: integrators.dopri5(predictions.bind(velocity_fn, p, y), x, t1=t_end, rtol=tol, atol=tol)
        )

        def call(p, x, labels=None, keys=None):
            x1, used = run(p, x, labels)
            return x1, int(used)

        return call
    solve = integrators.get(solver, schedule=schedule)
    karras = karras or {}
    if integrators.parse_lmm(solver):
        kw = dict(karras)
        run = jax.jit(lambda p, x, y, k: solve(predictions.bind(velocity_fn, p, y), x, nfe, t1=t_end, keys=k, **kw))
        return lambda p, x, labels=None, keys=None: (run(p, x, labels, keys), nfe)
    kw = {k: v for k, v in karras.items() if k in KARRAS_KEYS} if solver in integrators.EDM_SOLVERS else {}
    run = jax.jit(lambda p, x, y: solve(predictions.bind(velocity_fn, p, y), x, nfe, t1=t_end, **kw))
    return lambda p, x, labels=None, keys=None: (run(p, x, labels), nfe)


def sample(
    velocity_fn: Callable,
    params,
    x0: jax.Array,
    solver: str,
    nfe: int | None,
    tol: float = 1e-5,
    schedule: interpolants.Schedule | None = None,
    t_end: float = 1.0,
    labels: jax.Array | None = None,
    karras: dict | None = None,
    keys: jax.Array | None = None,
):
    """Integrates x0 from t=0 to ``t_end`` with v = velocity_fn(params, x, t[, labels]); returns (x1, nfe used).

    ``schedule`` (the training path's) is needed by ``ddim`` only, ``karras`` by the edm_* solvers. Compiles anew
    on every call: use `sampler` to integrate several batches with one compiled function.
    """
    return sampler(velocity_fn, solver, nfe, tol, schedule, t_end, karras)(params, x0, labels, keys)


def eval_labels(config: ml_collections.ConfigDict, n: int) -> jax.Array | None:
    """Class labels of the n evaluation samples of a conditional model, spread evenly over the classes
    (sample i gets class i mod K, so FID compares with a class-balanced reference); None if unconditional."""
    return datasets.eval_labels(datasets.model_classes(config), n)


def sweep_points(config: ml_collections.ConfigDict) -> list[tuple[str, int | None]]:
    """The (solver, nfe) pairs of the sweep: dopri5 once (adaptive, nfe None), an LMM sampler once (its nfe is the
    number of its step indices), the others at each valid eval.nfe."""

    def nfes(solver: str) -> list:
        if solver == "dopri5":
            return [None]
        if integrators.parse_lmm(solver):
            return [len(integrators.parse_lmm(solver)[1])]
        return [n for n in config.eval.nfe if integrators.valid_nfe(solver, n)]

    return [(solver, nfe) for solver in config.eval.solvers for nfe in nfes(solver)]


def sample_metrics(
    config: ml_collections.ConfigDict, x1: jax.Array, target: jax.Array, labels: jax.Array | None = None
) -> dict:
    """W2 to the held-out set, and FD-digits for digits (all ten classes: its reference statistics are of all);
    for class-conditional digits also the fraction of samples the digits classifier puts in their class."""
    out = {"w2": float(metrics.w2(x1, target))}
    if config.data.name == "digits" and config.data.get("num_classes", 0) in (0, 10):  # its classifier: 8x8 digits
        out["fd_digits"] = metrics.fd_digits.fd_digits(np.asarray(x1))
    if config.data.name == "digits" and labels is not None:
        out["class_accuracy"] = metrics.fd_digits.class_accuracy(np.asarray(x1), np.asarray(labels))
    return out


def sweep(
    config: ml_collections.ConfigDict,
    velocity_fn: Callable,
    params,
    x0: jax.Array,
    target: jax.Array,
    labels: jax.Array | None = None,
    keys: jax.Array | None = None,
) -> tuple[list, dict]:
    """Rows of {"solver", "nfe", "w2", ...} for each valid (solver, nfe), plus the samples by row label. ``keys``:
    the samples' keys (`eval_keys`; x0 = noise_one(keys)), for the LMM sampler's fresh noise."""
    rows, samples = [], {}
    sched, ev = path_schedule(config), config.eval
    points, started = sweep_points(config), time.perf_counter()
    if keys is None:
        keys = eval_keys(ev.seed, x0.shape[0])
    for i, (solver, nfe) in enumerate(points, 1):
        x1, used = sample(
            velocity_fn, params, x0, solver, nfe, ev.dopri5_tol, sched, ev.t_end, labels, sampling_options(config), keys
        )
        rows.append({"solver": solver, "nfe": used, **sample_metrics(config, x1, target, labels)})
        samples[f"{solver} NFE={used}"] = np.asarray(x1)
        elapsed = time.perf_counter() - started  # progress: a sweep of large held-out sets takes minutes
        eta = elapsed / i * (len(points) - i)
        logging.info(
            "Evaluated %s NFE %s (%d of %d), %.1f s so far, ETA %.0f s.", solver, used, i, len(points), elapsed, eta
        )
    return rows, samples


def path_schedule(config: ml_collections.ConfigDict) -> interpolants.Schedule:
    """Coefficients (alpha, sigma) of the training path, for path-aware solvers (ddim)."""
    return interpolants.schedule(config.loss.interpolant, config.loss.sigma_min)


def validate(config: ml_collections.ConfigDict) -> None:
    """Checks the eval config before training (main.py), so that a run cannot fail at its end because of it."""
    for solver in config.eval.solvers:
        integrators.get(solver, schedule=path_schedule(config))
    if not 0.0 < config.eval.t_end <= 1.0:
        raise ValueError(f"eval.t_end must be in (0, 1], got {config.eval.t_end}.")
    edm_solvers = [s for s in config.eval.solvers if s in integrators.EDM_SOLVERS or integrators.parse_lmm(s)]
    if edm_solvers and config.eval.t_end != 1.0:
        raise ValueError(
            f"eval.solvers {edm_solvers} step on the Karras noise levels down to sigma = 0 (t = 1); "
            f"eval.t_end={config.eval.t_end} cannot apply to them. Set eval.t_end=1 or drop them."
        )
    if not 0 < config.eval.sigma_min < config.eval.sigma_max:
        raise ValueError(
            f"eval.sigma_min={config.eval.sigma_min} and eval.sigma_max={config.eval.sigma_max} must satisfy "
            "0 < sigma_min < sigma_max (EDM's schedule: 0.002 and 80)."
        )
    for solver in config.eval.solvers:
        if integrators.parse_lmm(solver):
            lmm.check_steps(integrators.parse_lmm(solver)[1], config.lmm.num_steps, f"eval.solvers {solver!r} indices")
    for nfe in config.eval.nfe:
        if not isinstance(nfe, int) or nfe < 1:
            raise ValueError(f"eval.nfe entries must be positive integers, got {nfe!r} in {tuple(config.eval.nfe)}.")
    if datasets.kind(config.data) == "images":
        evaluate_fid.validate_fid(config)


def evaluate(
    config: ml_collections.ConfigDict,
    workdir: str,
    velocity_fn: Callable,
    params,
    step: int,
    noise_one: Callable,
    config_name: str = "",
) -> list[dict]:
    """Runs the sweep and the trajectory metrics, writes eval/ files, returns the rows.

    In a multi-process run every process returns the same rows and the first writes the files. The held-out
    sets kept in memory (2-D toys, digits) are evaluated whole by every process (seconds); image data sets
    share their FID batches among the processes (`evaluate_fid.evaluate_images`).

    Image data sets are evaluated with FID by `evaluate_fid.evaluate_images`, with one compiled `sampler` per
    sweep point.
    """
    validate(config)
    primary = distributed.is_primary()  # in a multi-process run, process 0 writes the files
    if primary:
        check_writable(workdir)
    if datasets.kind(config.data) == "images":
        ev, sched = config.eval, path_schedule(config)
        samplers = {
            (solver, nfe): sampler(velocity_fn, solver, nfe, ev.dopri5_tol, sched, ev.t_end, sampling_options(config))
            for solver, nfe in sweep_points(config)
        }
        rows = evaluate_fid.evaluate_images(config, workdir, velocity_fn, params, noise_one, samplers)
        if primary:
            write_metrics(workdir, config_name, step, rows)
        return rows
    target = datasets.held_out(config)
    n = target.shape[0]
    x0 = eval_noise(config, noise_one, n)
    labels = eval_labels(config, n)
    rows, samples = sweep(config, velocity_fn, params, x0, target, labels)

    m, path_nfe = min(config.eval.num_path_samples, n), config.eval.path_nfe
    logging.info("Straightness and W2 of the %d-step Euler trajectories, then the plots ...", path_nfe)
    traj = jax.jit(lambda p, x, y: metrics.trajectory_metrics(predictions.bind(velocity_fn, p, y), x, path_nfe))(
        params, x0[:m], None if labels is None else labels[:m]
    )
    x_fine, _ = sample(velocity_fn, params, x0, "euler", path_nfe, t_end=config.eval.t_end, labels=labels)
    rows.append(
        {
            "solver": "euler",
            "nfe": path_nfe,
            **sample_metrics(config, x_fine, target, labels),
            **{k: float(v) for k, v in traj.items() if np.ndim(v) == 0},
        }
    )

    if not primary:
        return rows
    out = write_metrics(workdir, config_name, step, rows)
    if target.ndim == 4:
        plots.plot_image_samples(os.path.join(out, "samples.png"), np.asarray(target), samples)
    if target.shape[-1] == 2 and target.ndim == 2:
        plots.plot_samples(os.path.join(out, "samples.png"), np.asarray(target), samples)
        k = min(config.eval.num_plot_paths, n)
        field = predictions.bind(velocity_fn, params, None if labels is None else labels[:k])
        _, path = integrators.euler(field, x0[:k], path_nfe, return_path=True)
        plots.plot_trajectories(os.path.join(out, "trajectories.png"), np.asarray(path), np.asarray(target))
    return rows


def check_writable(workdir: str) -> None:
    """Fails unless files can be written in ``workdir``/eval: checked before a sweep, so that a sweep is never
    computed only to be lost on the write."""
    out = os.path.join(workdir, "eval")
    try:
        os.makedirs(out, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-check-"):
            pass
    except OSError as err:
        raise ValueError(
            f"Cannot write the evaluation results to {out} ({err}). Nothing was computed; make the workdir "
            "writable (or copy it somewhere writable) and rerun."
        ) from err


def write_metrics(workdir: str, config_name: str, step: int, rows: list[dict]) -> str:
    """Writes eval/metrics.json ({"config", "step", "results": rows}); returns the eval/ folder. If the write
    fails, the error shows the rows, so that the sweep's results are not lost."""
    out = os.path.join(workdir, "eval")
    try:
        io.write_json_atomic(
            os.path.join(out, "metrics.json"), {"config": config_name, "step": int(step), "results": rows}
        )
    except OSError as err:
        raise ValueError(f"Could not write {out}/metrics.json ({err}). The results:\n{format_table(rows)}") from err
    return out


def format_table(rows: list[dict]) -> str:
    """Rows as a fixed-width text table (one line per solver x NFE)."""
    keys = ["solver", "nfe"] + sorted({k for r in rows for k in r} - {"solver", "nfe"})
    lines = ["  ".join(f"{k:>14}" for k in keys)]
    for r in rows:
        lines.append(
            "  ".join(f"{r[k]:>14.4f}" if isinstance(r.get(k), float) else f"{str(r.get(k, '')):>14}" for k in keys)
        )
    return "\n".join(lines)


def write_samples(
    config: ml_collections.ConfigDict, workdir: str, velocity_fn: Callable, params, noise_one: Callable
) -> str:
    """Samples with sampling.solver / sampling.nfe to eval/samples_<solver>_<nfe>.npz (x0, x1 and, for a
    conditional model, the labels: class i mod K for sample i). In a multi-process run every process integrates
    its block of the samples (`distributed.my_share`) and the first writes them all."""
    primary = distributed.is_primary()
    if primary:
        check_writable(workdir)
    s, ev = config.sampling, config.eval
    keys = eval_keys(s.seed, s.num_samples)
    labels = eval_labels(config, s.num_samples)
    mine = distributed.my_share(s.num_samples)
    mine = slice(mine.start, mine.stop)
    x0 = jax.jit(jax.vmap(noise_one))(keys[mine])
    x1, used = sample(
        velocity_fn,
        params,
        x0,
        s.solver,
        s.nfe,
        ev.dopri5_tol,
        path_schedule(config),
        ev.t_end,
        None if labels is None else labels[mine],
        sampling_options(config),
        keys[mine],
    )
    x0, x1 = (distributed.gather_shares(a, s.num_samples) for a in (x0, x1))
    used = int(distributed.stacked(np.int64(used)).max())  # dopri5 adapts its steps to each process's samples
    out = os.path.join(workdir, "eval")
    path = os.path.join(out, f"samples_{s.solver}_{used}.npz")
    if primary:
        os.makedirs(out, exist_ok=True)
        extra = {} if labels is None else {"labels": np.asarray(labels)}
        np.savez(path, x0=x0, x1=x1, **extra)
    return path
