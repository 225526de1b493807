"""Fréchet distances between Gaussian fits of features: FID with the standard FID Inception.

The Fréchet distance (Dowson & Landau 1982) between N(mu1, S1) and N(mu2, S2),

    FD = ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^{1/2}),

is the squared 2-Wasserstein distance between the two Gaussians. FID (Heusel et al. 2017,
"GANs trained by a two time-scale update rule", TTUR) applies it to the 2048-d pool-3 features
of the 2015-12-05 TensorFlow InceptionV3 graph, `flowjax.models.inception` (whose
`inception_feature_fn` and `load_inception_params` are re-exported here).

This module holds the distance, the statistics (all features at once with `statistics`, or
streamed batch by batch with `merge_stats` / `feature_stats`, only one batch's features held at a
time), statistics files, and feature functions applied in batches of a fixed size (`pad_to`,
`batch_features`, `batched_features`), so that a jitted feature function compiles once.
"""

from __future__ import annotations

import os
from typing import Callable, Iterable

import jax
import jax.numpy as jnp
import numpy as np

from flowjax import io
from flowjax.models.inception import inception_feature_fn, load_inception_params  # noqa: F401 (re-exported)

Stats = tuple[np.ndarray, np.ndarray]

# ----------------------------------------------------------------------------- distance


def _symmetric(a: np.ndarray) -> np.ndarray:
    return 0.5 * (a + a.T)


def _sqrtm_psd(a: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix; round-off negative eigenvalues -> 0."""
    evals, evecs = np.linalg.eigh(_symmetric(a))
    return (evecs * np.sqrt(np.clip(evals, 0.0, None))) @ evecs.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^{1/2}), in float64.

    The trace of (S1 S2)^{1/2} is computed as the trace of the symmetric matrix
    (S1^{1/2} S2 S1^{1/2})^{1/2}. The two are equal: S1 S2 = S1^{1/2} M S1^{-1/2} with
    M = S1^{1/2} S2 S1^{1/2} when S1 is invertible (and by continuity otherwise), so S1 S2 and
    M have the same eigenvalues, which are real and >= 0 because M is symmetric PSD; the trace
    of the principal square root is the sum of their square roots. Unlike ``sqrtm(S1 @ S2)``
    of a non-symmetric product (pytorch-fid, TTUR), which can return complex parts and fail
    for the singular covariances of n < k samples, both steps here are symmetric eigen-
    decompositions, and eigenvalues that round-off makes slightly negative are clipped to 0.
    The result is clipped at 0 for the same reason.

    Args:
      mu1, mu2: [k] means.
      sigma1, sigma2: [k, k] symmetric positive semi-definite covariances.

    Returns:
      The distance as a Python float (>= 0).
    """
    mu1, mu2, sigma1, sigma2 = (np.asarray(a, np.float64) for a in (mu1, mu2, sigma1, sigma2))
    k = mu1.shape[0] if mu1.ndim == 1 else -1
    if mu1.ndim != 1 or mu2.shape != (k,) or sigma1.shape != (k, k) or sigma2.shape != (k, k):
        raise ValueError(
            "frechet_distance needs means of shape [k] and covariances of shape [k, k], got "
            f"{mu1.shape}, {sigma1.shape}, {mu2.shape}, {sigma2.shape}."
        )
    if not all(np.all(np.isfinite(a)) for a in (mu1, mu2, sigma1, sigma2)):
        raise ValueError("frechet_distance got non-finite statistics (NaN or inf features?).")
    root1 = _sqrtm_psd(sigma1)
    cross_evals = np.linalg.eigvalsh(_symmetric(root1 @ sigma2 @ root1))
    trace_sqrt = np.sum(np.sqrt(np.clip(cross_evals, 0.0, None)))
    diff = mu1 - mu2
    fd = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt
    return float(max(fd, 0.0))


def statistics(features: np.ndarray) -> Stats:
    """Mean [k] and unbiased covariance [k, k] (divisor n - 1) of features [n, k], in float64."""
    features = np.asarray(features, np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"statistics needs features of shape [n, k] with n >= 2, got {features.shape}.")
    return merged_stats(merge_stats(None, features))


def merge_stats(acc: tuple | None, features: np.ndarray) -> tuple:
    """Running (count, mean, centred scatter matrix) updated with a batch of features [m, k], in float64.

    ``acc`` None starts the count. Chan, Golub & LeVeque's pairwise update: merging the batch's own
    mean and scatter is exact (no one-pass sum of squares), so streamed statistics equal `statistics`
    of all features at once up to round-off.
    """
    f = np.asarray(features, np.float64)
    mean, centred = f.mean(axis=0), f - f.mean(axis=0)
    if acc is None:
        return f.shape[0], mean, centred.T @ centred
    n, mu, scatter = acc
    total, delta = n + f.shape[0], mean - mu
    return (
        total,
        mu + delta * (f.shape[0] / total),
        scatter + centred.T @ centred + np.outer(delta, delta) * (n * f.shape[0] / total),
    )


def combine_stats(accs: Iterable[tuple | None]) -> tuple | None:
    """One `merge_stats` accumulator of several (each of disjoint features; None or a count of 0: none), by the
    same pairwise update: the statistics of all the features, up to round-off, whatever the split."""
    out = None
    for acc in accs:
        if acc is None or acc[0] == 0:
            continue
        if out is None:
            out = acc
            continue
        (n, mu, scatter), (m, mu_b, scatter_b) = out, acc
        total, delta = n + m, mu_b - mu
        out = (total, mu + delta * (m / total), scatter + scatter_b + np.outer(delta, delta) * (n * m / total))
    return out


def merged_stats(acc: tuple) -> Stats:
    """Mean [k] and unbiased covariance [k, k] (as `statistics`) of what `merge_stats` accumulated."""
    n, mu, scatter = acc
    return mu, scatter / (n - 1)


# ----------------------------------------------------------------------------- files


def save_stats(path: str, mu: np.ndarray, sigma: np.ndarray, *, overwrite: bool = False) -> None:
    """Save feature statistics as an .npz with arrays ``mu`` [k] and ``sigma`` [k, k] (float64)."""
    mu, sigma = np.asarray(mu, np.float64), np.asarray(sigma, np.float64)
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(f"save_stats needs mu [k] and sigma [k, k], got {mu.shape}, {sigma.shape}.")
    io.save_npz_atomic(path, {"mu": mu, "sigma": sigma}, overwrite=overwrite)


def load_stats(path: str) -> Stats:
    """Load ``(mu, sigma)`` written by `save_stats`."""
    with np.load(path, allow_pickle=False) as f:
        if set(f.files) != {"mu", "sigma"}:
            raise ValueError(f"{path} is not a statistics file: it holds {sorted(f.files)}, not mu, sigma.")
        return np.asarray(f["mu"], np.float64), np.asarray(f["sigma"], np.float64)


def cached_stats(path: str, compute_fn: Callable[[], Stats], save: bool = True) -> Stats:
    """Statistics cached at ``path``: loaded if the file exists, else ``compute_fn()`` saved there.

    An existing file is never recomputed or overwritten (delete it to refresh the cache). The
    file is written atomically (temporary file + ``os.replace``), so an exception in
    ``compute_fn`` or an interrupted write leaves no file behind. (The existence check and the
    rename are separate steps: if two processes fill the same cache at once, each writes a
    complete file and the last rename wins.)

    Args:
      path: the .npz cache file.
      compute_fn: ``() -> (mu [k], sigma [k, k])``, e.g. ``lambda: statistics(features)``.
      save: False returns what ``compute_fn`` computed without writing it (the other processes of a
        multi-process run, whose first process writes the same statistics).
    """
    if os.path.exists(path):
        return load_stats(path)
    mu, sigma = compute_fn()
    if not save:  # another process of the same run writes the file
        return mu, sigma
    try:
        save_stats(path, mu, sigma)
    except FileExistsError:  # another process cached it meanwhile: keep its file
        pass
    return load_stats(path)


# ----------------------------------------------------------------------------- batches


def pad_to(x: jax.Array, size: int) -> jax.Array:
    """x [n, ...] with n <= size, padded to [size, ...] by repeating its last row."""
    return jnp.concatenate([x, jnp.repeat(x[-1:], size - x.shape[0], axis=0)]) if x.shape[0] < size else x


def batch_features(features_fn: Callable, x: jax.Array, batch_size: int) -> np.ndarray:
    """``features_fn`` of a batch of at most ``batch_size`` samples, padded to exactly ``batch_size``
    (`pad_to`, the padding dropped), so that a jitted ``features_fn`` compiles once for every batch."""
    return np.asarray(features_fn(pad_to(x, batch_size)))[: x.shape[0]]


def batched_features(
    features_fn: Callable[[jax.Array], jax.Array], samples: np.ndarray, batch_size: int = 128
) -> np.ndarray:
    """``features_fn`` over ``samples`` [n, ...] in batches of exactly ``min(batch_size, n)``.

    The last batch is padded by repeating its last sample (and the padding dropped, `batch_features`),
    so a jitted ``features_fn`` compiles once.
    """
    samples = np.asarray(samples)
    size = min(batch_size, samples.shape[0])
    return np.concatenate(
        [
            batch_features(features_fn, jnp.asarray(samples[start : start + size]), size)
            for start in range(0, samples.shape[0], size)
        ],
        axis=0,
    )


def feature_stats(features_fn: Callable, batches: Iterable[jax.Array], batch_size: int) -> Stats:
    """Mean [k] and unbiased covariance [k, k] (as `statistics`) of the features of a stream of batches of
    at most ``batch_size`` samples (`batch_features`); only one batch's features are held at a time."""
    acc = None
    for x in batches:
        acc = merge_stats(acc, batch_features(features_fn, x, batch_size))
    return merged_stats(acc)


# ----------------------------------------------------------------------------- scores


def fd_score(
    features_fn: Callable[[jax.Array], jax.Array],
    samples: np.ndarray,
    ref_stats: Stats,
    batch_size: int = 128,
) -> float:
    """Fréchet distance between the features of ``samples`` and reference ``(mu, sigma)``.

    With ``inception_feature_fn(load_inception_params(path))`` and reference statistics of
    the real data this is FID (standard practice: 50,000 samples; fewer samples bias it up).
    """
    mu, sigma = statistics(batched_features(features_fn, samples, batch_size))
    return frechet_distance(mu, sigma, *ref_stats)
