"""FID of the evaluation sweep for image data sets (`dataset.kind` "images"), run by `flowjax.evaluate`.

Samples and reference images go through the FID Inception in batches of ``eval.batch_size``, and only running
feature statistics are kept (`fid.merge_stats`), so 50,000 samples never sit on the device at once. The
reference statistics are computed once and cached (`reference_stats_path`).
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Callable, Mapping

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from flowjax import distributed, metrics, plots, predictions
from flowjax.data import dataset as datasets
from flowjax.data import images
from flowjax.metrics import fid
from flowjax.models import inception

FEATURES = 2048  # the FID Inception's pool features
Sampler = Callable  # (params, x0, labels=None, keys=None) -> (x1, nfe actually used): `flowjax.evaluate.sampler`


def validate_fid(config: ml_collections.ConfigDict) -> None:
    """Image data sets: the FID Inception weights file exists and is whole (`inception.check_inception_file`),
    and the batch and sample counts make sense."""
    ev, weights = config.eval, config.eval.inception_weights
    if not weights or not os.path.isfile(weights):
        what = f"eval.inception_weights={weights!r} does not exist" if weights else "eval.inception_weights is not set"
        raise FileNotFoundError(
            f"data.name={config.data.name!r} is evaluated with FID, but {what}. Download pytorch-fid's "
            "pt_inception-2015-12-05-6726825d.pth (release fid_weights of github.com/mseitzer/pytorch-fid), convert "
            "it with `python scripts/convert_inception_weights.py pt_inception-2015-12-05-6726825d.pth "
            "fid_inception.npz` and pass --config.eval.inception_weights=fid_inception.npz."
        )
    try:  # the whole file, before any training: a damaged one would otherwise fail only at the evaluation
        inception.check_inception_file(weights)
    except ValueError as err:
        raise ValueError(
            f"eval.inception_weights={weights!r} is not usable: {err} Convert pytorch-fid's "
            "pt_inception-2015-12-05-6726825d.pth again with scripts/convert_inception_weights.py."
        ) from err
    for field, low in (("batch_size", 1), ("num_samples", 2), ("fid_num_reference", 0)):
        if not isinstance(ev[field], int) or ev[field] < low:
            raise ValueError(f"eval.{field} must be an integer >= {low} for FID, got {ev[field]!r}.")


def fid_feature_fn(config: ml_collections.ConfigDict) -> Callable[[jax.Array], jax.Array]:
    """``images [B, H, W, C] in [-1, 1] -> features [B, 2048]`` of the FID Inception at eval.inception_weights."""
    return fid.inception_feature_fn(fid.load_inception_params(config.eval.inception_weights))


@jax.jit
def quantize(x: jax.Array) -> jax.Array:
    """Samples as the 8-bit images a PNG file would hold, back in [-1, 1]: clipped, round((x + 1) * 127.5) / 127.5 - 1.

    FID compares samples with uint8 data (`images.to_unit_range`), so samples are featurised as images too.
    """
    return jnp.round((jnp.clip(x, -1.0, 1.0) + 1.0) * 127.5) / 127.5 - 1.0


def batch_noise(noise_one: Callable, batch_size: int) -> Callable[[jax.Array], jax.Array]:
    """``keys [n <= batch_size] -> x0 [n, ...]``, x0[i] = noise_one(keys[i]), compiled once for all batches
    (keys padded to ``batch_size``): the noise of a sample depends on its key only, not on the batching."""
    run = jax.jit(jax.vmap(noise_one))
    return lambda keys: run(fid.pad_to(keys, batch_size))[: keys.shape[0]]


def reference_count(config: ml_collections.ConfigDict, source: images.ImageSource) -> int:
    """How many reference images FID uses: the first eval.fid_num_reference, or all of them when 0."""
    n = config.eval.fid_num_reference or source.num_examples
    if not 2 <= n <= source.num_examples:
        raise ValueError(
            f"eval.fid_num_reference={config.eval.fid_num_reference}: the reference split "
            f"{config.eval.fid_split!r} has {source.num_examples} images (need 2 to all of them; 0: all)."
        )
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


def evaluate_images(
    config: ml_collections.ConfigDict,
    workdir: str,
    velocity_fn: Callable,
    params,
    noise_one: Callable,
    samplers: Mapping[tuple[str, int | None], Sampler],
    per_panel: int = 36,
) -> list[dict]:
    """FID of eval.num_samples samples for every (solver, nfe) of the sweep, plus the trajectory row.

    ``samplers``: one compiled sampler per (solver, nfe) of the sweep, in sweep order (`flowjax.evaluate`
    builds them with its `sampler` at its `sweep_points`); ``config`` has passed `flowjax.evaluate.validate`.
    Samples are generated, quantised (`quantize`) and featurised in batches of eval.batch_size. Sample i starts
    from ``noise_one(keys[i])`` with ``keys = split(PRNGKey(eval.seed), eval.num_samples)`` (the noise of
    `flowjax.evaluate.eval_noise`), whatever the batching.
    The reference statistics (eval.fid_split, see `reference_stats_path`) are computed once and cached.
    In a multi-process run every process takes a contiguous block of the batches (`distributed.my_share`: the
    same samples from the same keys) and the feature statistics are combined exactly (`fid.combine_stats`);
    process 0 writes the files.
    Rows: {"solver", "nfe", "fid"}, and {"solver": "euler", "nfe": eval.path_nfe, straightness, curvature,
    loom_curvature} on the first min(eval.num_path_samples, eval.num_samples) samples (no FID there: it would
    cost a path_nfe-step sweep of all samples, and FID on fewer samples is biased, so not comparable).
    Writes eval/samples.png (the first reference images and samples of each row); `flowjax.evaluate.evaluate`
    writes the rows to eval/metrics.json.
    """
    ev, size = config.eval, config.eval.batch_size
    feature_fn = fid_feature_fn(config)
    source = datasets.held_out(config)
    n_ref = reference_count(config, source)
    ref_batches = list(range(0, n_ref, size))

    def reference_stats():  # this process's share of the reference batches, combined over the processes
        acc = None
        for i in distributed.my_share(len(ref_batches)):
            start = ref_batches[i]
            acc = fid.merge_stats(
                acc, fid.batch_features(feature_fn, source.get(np.arange(start, min(start + size, n_ref))), size)
            )
        return fid.merged_stats(all_processes(acc))

    ref_stats = fid.cached_stats(
        reference_stats_path(config, workdir, source), reference_stats, save=distributed.is_primary()
    )

    keys = jax.random.split(jax.random.PRNGKey(ev.seed), ev.num_samples)  # = flowjax.evaluate.eval_keys
    # A conditional model's sample i has class i mod K (`evaluate.eval_labels`): class-balanced like the reference.
    labels = datasets.eval_labels(datasets.model_classes(config), ev.num_samples)
    noise = batch_noise(noise_one, size)
    starts = range(0, ev.num_samples, size)
    chunks = [keys[i : i + size] for i in starts]
    label_chunks = [None if labels is None else labels[i : i + size] for i in starts]
    mine = distributed.my_share(len(chunks))  # a multi-process run: a block of batches each, process 0 the first
    rows, grid = [], {}
    for (solver, nfe), run in samplers.items():
        acc, used, shown = None, 0, []
        for i in mine:
            x1, chunk_nfe = run(params, noise(chunks[i]), label_chunks[i], chunks[i])  # keys: the LMM sampler's noise
            used = max(used, chunk_nfe)  # dopri5 adapts its steps to each batch: report the most any batch used
            acc = fid.merge_stats(acc, fid.batch_features(feature_fn, quantize(x1), size))
            if i * size < per_panel:  # the first per_panel samples, for the image grid
                shown.append(np.asarray(x1[: per_panel - i * size]))
        used = int(distributed.stacked(np.int64(used)).max())
        stats = fid.merged_stats(all_processes(acc))
        rows.append({"solver": solver, "nfe": used, "fid": fid.frechet_distance(*stats, *ref_stats)})
        if shown:
            grid[f"{solver} NFE={used}"] = np.concatenate(shown)

    # Straightness, curvature and LOOM curvature are each a plain mean over samples of a per-sample value
    # (straightness: mean over samples of the time-averaged squared deviation; curvature: the same per element,
    # every sample having D elements; LOOM: mean over samples of the time-averaged 1 - cosine), so the mean
    # of the batch means weighted by batch size is exactly their value on all samples at once.
    m = min(ev.num_path_samples, ev.num_samples)
    traj = jax.jit(lambda p, x, y: metrics.trajectory_metrics(predictions.bind(velocity_fn, p, y), x, ev.path_nfe))
    path_starts, sums = list(range(0, m, size)), {}
    for i in distributed.my_share(len(path_starts)):
        start, stop = path_starts[i], min(path_starts[i] + size, m)
        x0 = noise(keys[start:stop])
        for name, v in traj(params, x0, None if labels is None else labels[start:stop]).items():
            sums[name] = sums.get(name, 0.0) + float(v) * x0.shape[0]
    if jax.process_count() > 1:  # every process's sums (a process may have had no batch: its names are traced)
        names = sorted(jax.eval_shape(traj, params, noise(keys[:1]), None if labels is None else labels[:1]))
        totals = distributed.stacked(np.array([sums.get(k, 0.0) for k in names])).sum(axis=0)
        sums = dict(zip(names, totals.tolist()))
    rows.append({"solver": "euler", "nfe": ev.path_nfe, **{k: v / m for k, v in sums.items()}})

    if distributed.is_primary():  # process 0 drew the first samples, those of the grid
        out = os.path.join(workdir, "eval")
        os.makedirs(out, exist_ok=True)
        target = source.get(np.arange(min(per_panel, source.num_examples)))
        title = "image folder" if config.data.name == "folder" else f"{ev.fid_split} set"
        plots.plot_image_samples(os.path.join(out, "samples.png"), target, grid, per_panel, target_title=title)
    return rows


def all_processes(acc: tuple | None) -> tuple:
    """A `fid.merge_stats` accumulator of this process's features combined with every other process's
    (`fid.combine_stats`); with one process: ``acc``."""
    if jax.process_count() == 1:
        return acc
    k = FEATURES if acc is None else acc[1].shape[0]
    n, mu, scatter = acc if acc is not None else (0, np.zeros(k), np.zeros((k, k)))
    counts, mus, scatters = (distributed.stacked(a) for a in (np.int64(n), mu, scatter))
    return fid.combine_stats(zip(counts.tolist(), mus, scatters))
