"""Lines Matching Models (Matityahu & Fattal, "Generative Lines Matching Models") as pure functions.

A teacher's deterministic sampler maps noise x0 to x1 = psi*(x0) (Sec. 3.1: EDM's Heun sampler in the paper;
any flowjax model's ODE pairs from ``--mode=pairs`` here). LMM trains a denoiser N_theta to map every point of
the VE line x1 + sigma x0 back to its end x1 (Eq. 3),

    L_lines = E_{sigma, (x0, x1)} || N_theta(x1 + sigma x0, sigma) - x1 ||_P,

and samples in one or a few evaluations with the consistency-model sampler of App. A.4,
x <- N_theta(x, sigma_k) + sigma_{k+1} eta, fresh eta ~ N(0, I) at every step (`sample`).

N_theta is an EDM denoiser (`flowjax.edm.denoiser`, EDM's preconditioning, initialised from the teacher): the
paper does not say how N_theta is parameterised or initialised (its learning rates are those of fine-tuning
from EDM), and a denoiser makes LMM's network a drop-in EDM model, read on flowjax's time axis by
`edm.velocity` (t = 1 / (1 + sigma), y = x / (1 + sigma): the VE line is the linear interpolant
t x1 + (1 - t) x0). Every flowjax solver and trajectory metric applies to it, and on a line-consistent
N_theta the PF-ODE dx/dsigma = (x - N_theta(x, sigma)) / sigma has the lines as its exact solutions, so
`euler` (the deterministic step x_b = N + (sigma_b / sigma_a)(x_a - N), Sec. 3.2's constant-speed
progression along the line) is as exact as any solver.

Where the paper is silent (its App. A.4 and Sec. 3 leave these open), the choice is a parameter here:

- the training distribution of sigma (`sample_sigma`): uniform over the indices of the teacher's Karras
  schedule (default: the sigmas the sampler can visit), EDM's log-normal, or log-uniform on
  [sigma_min, sigma_max]; Sampling-Optimized Training (SOT, Sec. 3.6) restricts the Karras choice to the
  indices the sampler uses;
- the norm ||.||_P (`distance`): the perceptual LPIPS-VGG distance (the paper's "VGG-based perceptual
  loss", evaluated as CTM's code does), or for the L2 ablation of Table 7 the root-mean-square error ("l2",
  the norm of Eq. 3 over sqrt(d)) or the mean squared error ("l2sq").
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from flowjax import edm

SIGMA_DISTRIBUTIONS = ("karras", "lognormal", "loguniform")
WEIGHTINGS = ("none", "edm")
NORMS = ("l2", "l2sq", "lpips")
# The sampling schedules of the paper's ablations (App. A.3, Tables 7-9): indices into the teacher's
# N-step Karras schedule (N = 18 for CIFAR-10, 40 for ImageNet-64 and AFHQ-64); NFE = number of indices.
PAPER_STEPS = ((0,), (0, 1), (0, 1, 2), (0, 3, 5), (0, 1, 3, 5))

Distance = Callable[[jax.Array, jax.Array], jax.Array]


def check_steps(steps: Sequence[int], num_steps: int, field: str = "steps") -> tuple[int, ...]:
    """``steps`` as a tuple of strictly increasing indices in [0, num_steps); ValueError naming ``field`` otherwise."""
    out = tuple(int(i) for i in steps)
    if (
        not out
        or any(i != s or isinstance(s, bool) for i, s in zip(out, steps))
        or any(b <= a for a, b in zip(out, out[1:]))
        or out[0] < 0
        or out[-1] >= num_steps
    ):
        raise ValueError(
            f"{field}={tuple(steps)!r} must be strictly increasing integer indices into the {num_steps}-level Karras "
            f"schedule, in [0, {num_steps}) (e.g. (0,) or (0, 3, 5) as in LMM App. A.3)."
        )
    return out


def step_sigmas(
    steps: Sequence[int],
    num_steps: int,
    sigma_min: float = edm.SIGMA_MIN,
    sigma_max: float = edm.SIGMA_MAX,
    rho: float = edm.RHO,
) -> np.ndarray:
    """The noise levels sigma_{i_1} > ... > sigma_{i_K} of the indices ``steps`` into `edm.karras_sigmas`
    (``num_steps`` levels), followed by 0: shape [K + 1], float64 NumPy (static, for the unrolled samplers)."""
    steps = check_steps(steps, num_steps)
    i = np.asarray(steps, np.float64)
    a, b = sigma_max ** (1.0 / rho), sigma_min ** (1.0 / rho)
    frac = i / (num_steps - 1) if num_steps > 1 else np.zeros_like(i)
    return np.concatenate([(a + frac * (b - a)) ** rho, [0.0]])


def sample_sigma(
    key: jax.Array,
    n: int,
    distribution: str = "karras",
    *,
    num_steps: int = 18,
    steps: Sequence[int] = (),
    sigma_min: float = edm.SIGMA_MIN,
    sigma_max: float = edm.SIGMA_MAX,
    rho: float = edm.RHO,
    p_mean: float = edm.P_MEAN,
    p_std: float = edm.P_STD,
) -> jax.Array:
    """Training noise levels for the lines loss, shape [n] (the paper does not state their distribution).

    - ``"karras"``: sigma_i of the ``num_steps``-level Karras schedule, i uniform over [0, num_steps), or over
      ``steps`` when given (SOT, Sec. 3.6: "restricting the training to the specific time steps used at the
      sampling stage");
    - ``"lognormal"``: ln sigma ~ N(p_mean, p_std^2), EDM's training distribution (`edm.sample_sigma`);
    - ``"loguniform"``: ln sigma ~ U(ln sigma_min, ln sigma_max).
    """
    if distribution == "karras":
        index = check_steps(steps, num_steps, "lmm.sot_steps") if steps else tuple(range(num_steps))
        levels = jnp.asarray(step_sigmas(index, num_steps, sigma_min, sigma_max, rho)[:-1], jnp.float32)
        return levels[jax.random.randint(key, (n,), 0, len(index))]
    if steps:
        raise ValueError(f"SOT steps {tuple(steps)} restrict the 'karras' distribution; got {distribution!r}.")
    if distribution == "lognormal":
        return edm.sample_sigma(key, n, p_mean, p_std)
    if distribution == "loguniform":
        return jnp.exp(jax.random.uniform(key, (n,), minval=np.log(sigma_min), maxval=np.log(sigma_max)))
    raise ValueError(f"Unknown sigma distribution {distribution!r}; choose one of {SIGMA_DISTRIBUTIONS} (lmm.sigma).")


def distance(norm: str, lpips_fn: Distance | None = None) -> Distance:
    """Per-example ||pred - target||_P, ``(pred [B, ...], target [B, ...]) -> [B]``.

    ``"l2"``: sqrt(mean of squares) (Eq. 3's norm over sqrt(d), so that its scale does not grow with the image
    size); ``"l2sq"``: the mean of squares; ``"lpips"``: ``lpips_fn(pred, target)`` (e.g. LPIPS-VGG of
    `flowjax.models.lpips`), which must be given.
    """
    if norm == "l2sq":
        return lambda p, x: jnp.mean(jnp.square(p - x).reshape(p.shape[0], -1), axis=1)
    if norm == "l2":
        # the 1e-12 keeps the gradient finite where a prediction is exact (d sqrt(u) / du = inf at u = 0)
        return lambda p, x: jnp.sqrt(jnp.mean(jnp.square(p - x).reshape(p.shape[0], -1), axis=1) + 1e-12)
    if norm == "lpips":
        if lpips_fn is None:
            raise ValueError("norm 'lpips' needs the perceptual distance lpips_fn(pred, target) -> [B].")
        return lpips_fn
    raise ValueError(f"Unknown lines norm {norm!r}; choose one of {NORMS} (config field lmm.norm).")


def lines_loss(
    denoise_fn: Callable[..., jax.Array],
    params: Any,
    x0: jax.Array,
    x1: jax.Array,
    sigma: jax.Array,
    *,
    distance_fn: Distance,
    weight_fn: Callable[[jax.Array], jax.Array] | None = None,
) -> tuple[jax.Array, jax.Array]:
    """LMM's lines loss (Eq. 3): mean over the batch of distance_fn(N_theta(x1 + sigma x0, sigma), x1).

    ``denoise_fn(params, x, sigma [B]) -> x1_hat`` (`edm.denoiser`, labels bound with a lambda); (x0, x1) a
    teacher's pairs, x0 the standard normal noise the teacher started from; sigma [B]. ``weight_fn(sigma) -> [B]``
    weights the examples (the paper states no weighting; `edm.loss_weight` is EDM's, which asks for an error
    that shrinks with sigma, as the velocity the map to flowjax's t implies, (D - y)(1 + sigma) / sigma, needs).
    Returns (loss, the predictions N_theta(x1 + sigma x0, sigma)), which the adversarial stage feeds to the
    discriminator.
    """
    if x0.shape != x1.shape:
        raise ValueError(f"noise x0 {x0.shape} and data x1 {x1.shape} must have the same shape.")
    sigma = jnp.asarray(sigma, x1.dtype)
    if sigma.shape != x1.shape[:1]:
        raise ValueError(f"sigma {sigma.shape} must have shape [B] = {x1.shape[:1]} (one noise level per example).")
    x = x1 + jnp.reshape(sigma, sigma.shape + (1,) * (x1.ndim - 1)) * x0
    pred = denoise_fn(params, x, sigma)
    err = distance_fn(pred, x1)
    if weight_fn is not None:
        err = err * weight_fn(sigma)
    return jnp.mean(err), pred


def _eta(keys: jax.Array, k: int, shape: tuple[int, ...], dtype: Any) -> jax.Array:
    """Fresh noise of step k for each example: normal(fold_in(keys[i], k + 1)) (fold 0 is left to x0's draw)."""
    return jax.vmap(lambda key: jax.random.normal(jax.random.fold_in(key, k + 1), shape, dtype))(keys)


def sample(
    denoise_fn: Callable[[jax.Array, jax.Array], jax.Array],
    z: jax.Array,
    sigmas: Sequence[float],
    keys: jax.Array,
) -> jax.Array:
    """LMM's sampler (App. A.4; the multistep sampler of consistency models): x = sigmas[0] z, then for each k
    x1_hat = N(x, sigma_k) and x = x1_hat + sigma_{k+1} eta_k with fresh eta_k ~ N(0, I); returns the last x1_hat.

    ``sigmas`` = `step_sigmas` (the K levels and a final 0): NFE = K. ``denoise_fn(x, sigma [B]) -> x1_hat``.
    ``keys`` [B]: one PRNG key per example; eta_k of example i is drawn from fold_in(keys[i], k + 1), so a
    sample depends on its own key only, not on the batch it is drawn in.
    """
    sigmas = [float(s) for s in sigmas]
    if keys.shape[:1] != z.shape[:1]:
        raise ValueError(f"keys {keys.shape} must hold one key per example of z {z.shape}.")
    b = z.shape[0]
    x = z * sigmas[0]
    for k, (s, s_next) in enumerate(zip(sigmas[:-1], sigmas[1:])):
        x1_hat = denoise_fn(x, jnp.full((b,), s, z.dtype)).astype(z.dtype)
        x = x1_hat if s_next == 0.0 else x1_hat + s_next * _eta(keys, k, z.shape[1:], z.dtype)
    return x


def euler(denoise_fn: Callable[[jax.Array, jax.Array], jax.Array], z: jax.Array, sigmas: Sequence[float]) -> jax.Array:
    """The deterministic step along the lines (Sec. 3.2): x = sigmas[0] z, then
    x <- N(x, sigma_k) + (sigma_{k+1} / sigma_k) (x - N(x, sigma_k)); the last step (to 0) returns N. NFE = K.

    It continues the line through x and its predicted end, i.e. Euler's method on the PF-ODE of the denoiser
    (`edm.euler`'s step on an arbitrary subset of levels). For a perfectly line-consistent N_theta every K gives
    the one-step result; `sample` instead re-noises with fresh noise, as the paper's sampler does.
    """
    sigmas = [float(s) for s in sigmas]
    b = z.shape[0]
    x = z * sigmas[0]
    for s, s_next in zip(sigmas[:-1], sigmas[1:]):
        x1_hat = denoise_fn(x, jnp.full((b,), s, z.dtype)).astype(z.dtype)
        x = x1_hat + (s_next / s) * (x - x1_hat)
    return x
