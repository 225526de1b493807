"""Evaluation sweep: every solver x NFE against a fixed held-out target set, for any method.

Writes ``eval/metrics.json`` ({"config", "step", "results": [{"solver", "nfe", <metric>...}]}),
``eval/samples.png`` and ``eval/trajectories.png``, and returns the rows.

2-D toys and the digits are compared with a held-out set in memory (exact W2, FD-digits), all samples
in one call. Image data sets (`images.is_image_dataset`) get FID instead (`evaluate_images`): samples
and reference images go through the FID Inception in batches of ``eval.batch_size``, and only running
feature statistics are kept, so 50,000 samples never sit on the device at once.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Callable, Iterable

import jax
import jax.numpy as jnp
import matplotlib
import ml_collections
import numpy as np

from flowjax import integrators, interpolants, metrics
from flowjax.data import digits, images, toy2d
from flowjax.metrics import fid

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def eval_noise(config: ml_collections.ConfigDict, source_one: Callable, n: int) -> jax.Array:
    """Fixed evaluation noise x0 [n, ...] (key eval.seed), independent of training draws."""
    keys = jax.random.split(jax.random.PRNGKey(config.eval.seed), n)
    return jax.jit(jax.vmap(source_one))(keys)


def sampler(apply_fn: Callable, solver: str, nfe: int | None, tol: float = 1e-5,
            schedule: interpolants.Schedule | None = None, t_end: float = 1.0) -> Callable:
    """``(params, x0) -> (x1, nfe actually used)``, integrating from t=0 to ``t_end`` with one jitted function.

    Build it once and call it on many batches: it compiles once per batch shape.
    """
    if solver == "dopri5":
        run = jax.jit(lambda p, x: integrators.dopri5(lambda y, t: apply_fn(p, y, t), x, t1=t_end, rtol=tol, atol=tol))

        def call(p, x):
            x1, used = run(p, x)
            return x1, int(used)

        return call
    solve = integrators.get(solver, schedule=schedule)
    run = jax.jit(lambda p, x: solve(lambda y, t: apply_fn(p, y, t), x, nfe, t1=t_end))
    return lambda p, x: (run(p, x), nfe)


def sample(apply_fn: Callable, params, x0: jax.Array, solver: str, nfe: int | None, tol: float = 1e-5,
           schedule: interpolants.Schedule | None = None, t_end: float = 1.0):
    """Integrates x0 from t=0 to ``t_end`` with v = apply_fn(params, x, t); returns (x1, nfe actually used).

    ``schedule`` (the training path's) is needed by ``ddim`` only. Compiles anew on every call: use
    `sampler` to integrate several batches with one compiled function.
    """
    return sampler(apply_fn, solver, nfe, tol, schedule, t_end)(params, x0)


def sweep_points(config: ml_collections.ConfigDict) -> list[tuple[str, int | None]]:
    """The (solver, nfe) pairs of the sweep: dopri5 once (adaptive, nfe None), the others at each valid eval.nfe."""
    return [(solver, nfe) for solver in config.eval.solvers
            for nfe in ([None] if solver == "dopri5" else
                        [n for n in config.eval.nfe if integrators.valid_nfe(solver, n)])]


def target_set(config: ml_collections.ConfigDict) -> jax.Array:
    """The held-out set samples are compared with: a toy's test set of eval.num_samples points, or
    the digits test split (then eval.num_samples must equal its size: exact W2 pairs them one to one)."""
    if config.data.name == "digits":
        images, _ = digits.from_config(config.data, "test")
        if config.eval.num_samples != images.shape[0]:
            raise ValueError(f"eval.num_samples={config.eval.num_samples}: W2 against the digits test split needs "
                             f"exactly its {images.shape[0]} images; set --config.eval.num_samples={images.shape[0]}.")
        return jnp.asarray(images)
    return toy2d.test_set(config.data.name, config.eval.num_samples, seed=config.data.test_seed,
                          **toy2d.config_kwargs(config.data.name, config.data))


def sample_metrics(config: ml_collections.ConfigDict, x1: jax.Array, target: jax.Array) -> dict:
    """W2 to the held-out set, and FD-digits for digits (all ten classes: its reference statistics are of all)."""
    out = {"w2": float(metrics.w2(x1, target))}
    if config.data.name == "digits" and config.data.get("num_classes", 0) in (0, 10):
        out["fd_digits"] = metrics.fd_digits.fd_digits(np.asarray(x1))
    return out


def sweep(config: ml_collections.ConfigDict, apply_fn: Callable, params, x0: jax.Array,
          target: jax.Array) -> tuple[list, dict]:
    """Rows of {"solver", "nfe", "w2", ...} for each valid (solver, nfe), plus the samples by row label."""
    rows, samples = [], {}
    sched = path_schedule(config)
    for solver, nfe in sweep_points(config):
        x1, used = sample(apply_fn, params, x0, solver, nfe, config.eval.dopri5_tol, sched, config.eval.t_end)
        rows.append({"solver": solver, "nfe": used, **sample_metrics(config, x1, target)})
        samples[f"{solver} NFE={used}"] = np.asarray(x1)
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
    for nfe in config.eval.nfe:
        if not isinstance(nfe, int) or nfe < 1:
            raise ValueError(f"eval.nfe entries must be positive integers, got {nfe!r} in {tuple(config.eval.nfe)}.")
    if images.is_image_dataset(config.data.name):
        validate_fid(config)


def validate_fid(config: ml_collections.ConfigDict) -> None:
    """Image data sets: the FID Inception weights file exists, and the batch and sample counts make sense."""
    ev, weights = config.eval, config.eval.inception_weights
    if not weights or not os.path.isfile(weights):
        what = f"eval.inception_weights={weights!r} does not exist" if weights else "eval.inception_weights is not set"
        raise FileNotFoundError(
            f"data.name={config.data.name!r} is evaluated with FID, but {what}. Download pytorch-fid's "
            "pt_inception-2015-12-05-6726825d.pth (release fid_weights of github.com/mseitzer/pytorch-fid), convert "
            "it with `python scripts/convert_inception_weights.py pt_inception-2015-12-05-6726825d.pth "
            "fid_inception.npz` and pass --config.eval.inception_weights=fid_inception.npz.")
    for field, low in (("batch_size", 1), ("num_samples", 2), ("fid_num_reference", 0)):
        if not isinstance(ev[field], int) or ev[field] < low:
            raise ValueError(f"eval.{field} must be an integer >= {low} for FID, got {ev[field]!r}.")


def evaluate(config: ml_collections.ConfigDict, workdir: str, apply_fn: Callable, params, step: int,
             source_one: Callable, config_name: str = "") -> list[dict]:
    """Runs the sweep and the trajectory metrics, writes eval/ files, returns the rows.

    Image data sets are evaluated with FID by `evaluate_images`.
    """
    if images.is_image_dataset(config.data.name):
        return evaluate_images(config, workdir, apply_fn, params, step, source_one, config_name)
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

    out = write_metrics(workdir, config_name, step, rows)
    if target.ndim == 4:
        plot_image_samples(os.path.join(out, "samples.png"), np.asarray(target), samples)
    if target.shape[-1] == 2 and target.ndim == 2:
        plot_samples(os.path.join(out, "samples.png"), np.asarray(target), samples)
        k = min(config.eval.num_plot_paths, n)
        _, path = integrators.euler(lambda y, t: apply_fn(params, y, t), x0[:k], path_nfe, return_path=True)
        plot_trajectories(os.path.join(out, "trajectories.png"), np.asarray(path), np.asarray(target))
    return rows


def write_metrics(workdir: str, config_name: str, step: int, rows: list[dict]) -> str:
    """Writes eval/metrics.json ({"config", "step", "results": rows}); returns the eval/ folder."""
    out = os.path.join(workdir, "eval")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump({"config": config_name, "step": int(step), "results": rows}, f, indent=2)
    return out


# ----------------------------------------------------------------------------- FID (image data sets)


def fid_feature_fn(config: ml_collections.ConfigDict) -> Callable[[jax.Array], jax.Array]:
    """``images [B, H, W, C] in [-1, 1] -> features [B, 2048]`` of the FID Inception at eval.inception_weights."""
    return fid.inception_feature_fn(fid.load_inception_params(config.eval.inception_weights))


@jax.jit
def quantize(x: jax.Array) -> jax.Array:
    """Samples as the 8-bit images a PNG file would hold, back in [-1, 1]: clipped, round((x + 1) * 127.5) / 127.5 - 1.

    FID compares samples with uint8 data (`images.to_unit_range`), so samples are featurised as images too.
    """
    return jnp.round((jnp.clip(x, -1.0, 1.0) + 1.0) * 127.5) / 127.5 - 1.0


def pad_to(x: jax.Array, size: int) -> jax.Array:
    """x [n, ...] with n <= size, padded to [size, ...] by repeating its last row."""
    return jnp.concatenate([x, jnp.repeat(x[-1:], size - x.shape[0], axis=0)]) if x.shape[0] < size else x


def batch_features(feature_fn: Callable, x: jax.Array, batch_size: int) -> np.ndarray:
    """``feature_fn`` of a batch of at most ``batch_size`` images, padded to exactly ``batch_size`` (`pad_to`, the
    padding dropped) so that the Inception compiles once for every batch, samples and reference."""
    return np.asarray(feature_fn(pad_to(x, batch_size)))[:x.shape[0]]


def batch_noise(source_one: Callable, batch_size: int) -> Callable[[jax.Array], jax.Array]:
    """``keys [n <= batch_size] -> x0 [n, ...]``, x0[i] = source_one(keys[i]), compiled once for all batches
    (keys padded to ``batch_size``): the noise of a sample depends on its key only, not on the batching."""
    run = jax.jit(jax.vmap(source_one))
    return lambda keys: run(pad_to(keys, batch_size))[:keys.shape[0]]


def merge_stats(acc: tuple | None, features: np.ndarray) -> tuple:
    """Running (count, mean, centred scatter matrix) updated with a batch of features [m, k], in float64.

    Chan, Golub & LeVeque's pairwise update: merging the batch's own mean and scatter is exact (no one-pass
    sum of squares), so the result equals `fid.statistics` of all features up to round-off.
    """
    f = np.asarray(features, np.float64)
    mean, centred = f.mean(axis=0), f - f.mean(axis=0)
    if acc is None:
        return f.shape[0], mean, centred.T @ centred
    n, mu, scatter = acc
    total, delta = n + f.shape[0], mean - mu
    return (total, mu + delta * (f.shape[0] / total),
            scatter + centred.T @ centred + np.outer(delta, delta) * (n * f.shape[0] / total))


def merged_stats(acc: tuple) -> fid.Stats:
    """Mean [k] and unbiased covariance [k, k] (as `fid.statistics`) of what `merge_stats` accumulated."""
    n, mu, scatter = acc
    return mu, scatter / (n - 1)


def feature_stats(feature_fn: Callable, batches: Iterable[jax.Array], batch_size: int) -> fid.Stats:
    """Mean [k] and unbiased covariance [k, k] (as `fid.statistics`) of the features of a stream of image
    batches; only one batch's features are held at a time."""
    acc = None
    for x in batches:
        acc = merge_stats(acc, batch_features(feature_fn, x, batch_size))
    return merged_stats(acc)


def reference_count(config: ml_collections.ConfigDict, source: images.ImageSource) -> int:
    """How many reference images FID uses: the first eval.fid_num_reference, or all of them when 0."""
    n = config.eval.fid_num_reference or source.num_examples
    if not 2 <= n <= source.num_examples:
        raise ValueError(f"eval.fid_num_reference={config.eval.fid_num_reference}: the reference split "
                         f"{config.eval.fid_split!r} has {source.num_examples} images (need 2 to all of them; 0: all).")
    return n


def reference_stats_path(config: ml_collections.ConfigDict, workdir: str, source: images.ImageSource) -> str:
    """eval.fid_stats, or ``<workdir>/eval/fid_reference_<data>_<side>px_<n>.npz``.

    <data> is ``<data.name>_<eval.fid_split>`` for TFDS, and ``folder-<folder name>-<hash of its absolute
    path>`` for an image folder (a folder has no splits; the hash tells apart folders of the same name).
    """
    if config.eval.fid_stats:
        return config.eval.fid_stats
    if config.data.name == "folder":
        folder = os.path.abspath(config.data.data_dir)
        data = f"folder-{os.path.basename(folder)}-{hashlib.sha1(folder.encode()).hexdigest()[:8]}"
    else:
        data = f"{config.data.name}_{config.eval.fid_split}"
    name = f"fid_reference_{data}_{source.shape[0]}px_{reference_count(config, source)}.npz"
    return os.path.join(workdir, "eval", re.sub(r"[^\w.+-]+", "-", name))


def reference_batches(source: images.ImageSource, n: int, batch_size: int) -> Iterable[np.ndarray]:
    """The first ``n`` images of ``source`` in batches of ``batch_size``."""
    for start in range(0, n, batch_size):
        yield source.get(np.arange(start, min(start + batch_size, n)))


def evaluate_images(config: ml_collections.ConfigDict, workdir: str, apply_fn: Callable, params, step: int,
                    source_one: Callable, config_name: str = "", per_panel: int = 36) -> list[dict]:
    """FID of eval.num_samples samples for every (solver, nfe) of the sweep, plus the trajectory row.

    Samples are generated, quantised (`quantize`) and featurised in batches of eval.batch_size, with one
    compiled sampler per (solver, nfe). Sample i starts from ``source_one(keys[i])`` with
    ``keys = split(PRNGKey(eval.seed), eval.num_samples)`` (the noise of `eval_noise`), whatever the batching.
    The reference statistics (eval.fid_split, see `reference_stats_path`) are computed once and cached.
    Rows: {"solver", "nfe", "fid"}, and {"solver": "euler", "nfe": eval.path_nfe, straightness, curvature,
    loom_curvature} on the first min(eval.num_path_samples, eval.num_samples) samples (no FID there: it would
    cost a path_nfe-step sweep of all samples, and FID on fewer samples is biased, so not comparable).
    Writes eval/metrics.json and eval/samples.png (the first reference images and samples of each row).
    """
    validate(config)
    ev, size = config.eval, config.eval.batch_size
    feature_fn = fid_feature_fn(config)
    source = images.source_from_config(config.data, split=ev.fid_split)
    n_ref = reference_count(config, source)
    ref_stats = fid.cached_stats(reference_stats_path(config, workdir, source),
                                 lambda: feature_stats(feature_fn, reference_batches(source, n_ref, size), size))

    keys = jax.random.split(jax.random.PRNGKey(ev.seed), ev.num_samples)
    noise = batch_noise(source_one, size)
    chunks = [keys[i:i + size] for i in range(0, ev.num_samples, size)]
    rows, grid, sched = [], {}, path_schedule(config)
    for solver, nfe in sweep_points(config):
        run = sampler(apply_fn, solver, nfe, ev.dopri5_tol, sched, ev.t_end)
        acc, used, shown = None, 0, []
        for i, chunk in enumerate(chunks):
            x1, chunk_nfe = run(params, noise(chunk))
            used = max(used, chunk_nfe)  # dopri5 adapts its steps to each batch: report the most any batch used
            acc = merge_stats(acc, batch_features(feature_fn, quantize(x1), size))
            if i * size < per_panel:  # the first per_panel samples, for the image grid
                shown.append(np.asarray(x1[:per_panel - i * size]))
        rows.append({"solver": solver, "nfe": used, "fid": fid.frechet_distance(*merged_stats(acc), *ref_stats)})
        grid[f"{solver} NFE={used}"] = np.concatenate(shown)

    # Straightness, curvature and LOOM curvature are each a plain mean over samples of a per-sample value
    # (straightness: mean over samples of the time-averaged squared deviation; curvature: the same per element,
    # every sample having D elements; LOOM: mean over samples of the time-averaged 1 - cosine), so the mean
    # of the batch means weighted by batch size is exactly their value on all samples at once.
    m = min(ev.num_path_samples, ev.num_samples)
    traj = jax.jit(lambda p, x: metrics.trajectory_metrics(lambda y, t: apply_fn(p, y, t), x, ev.path_nfe))
    sums = {}
    for start in range(0, m, size):
        x0 = noise(keys[start:min(start + size, m)])
        for k, v in traj(params, x0).items():
            sums[k] = sums.get(k, 0.0) + float(v) * x0.shape[0]
    rows.append({"solver": "euler", "nfe": ev.path_nfe, **{k: v / m for k, v in sums.items()}})

    out = write_metrics(workdir, config_name, step, rows)
    target = source.get(np.arange(min(per_panel, source.num_examples)))
    title = "image folder" if config.data.name == "folder" else f"{ev.fid_split} set"
    plot_image_samples(os.path.join(out, "samples.png"), target, grid, per_panel, target_title=title)
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


def plot_image_samples(path: str, target: np.ndarray, samples: dict[str, np.ndarray], per_panel: int = 36,
                       target_title: str = "test set") -> None:
    """A grid of the first ``per_panel`` images [n, H, W, 1 or 3] in [-1, 1] per panel (the target, then each
    solver x NFE); grey or RGB, panels with fewer images are filled with black."""
    panels = {target_title: target, **samples}
    side = int(np.sqrt(per_panel))
    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, x) in zip(axes.flat, panels.items()):
        x = np.clip(np.asarray(x[: side * side]), -1, 1)
        x = np.concatenate([x, np.full((side * side - x.shape[0],) + x.shape[1:], -1.0, x.dtype)])
        h, w, c = x.shape[1:]
        grid = x.reshape(side, side, h, w, c).transpose(0, 2, 1, 3, 4).reshape(side * h, side * w, c)
        if c == 1:
            ax.imshow(grid[..., 0], cmap="gray", vmin=-1, vmax=1)
        else:
            ax.imshow((grid + 1) / 2)
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
