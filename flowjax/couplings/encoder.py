"""A learned coupling: the Gaussian encoder q_phi(z|x) of "Minimizing Trajectory Curvature of ODE-based Generative
Models" (Lee, Kim & Ye, ICML 2023, Sec. 3.3-3.4).

The noise paired with a data point x is z ~ q_phi(z|x) = N(mu_phi(x), diag sigma_phi(x)^2), trained jointly with the
velocity network on Eq. 11, ``flow matching(x, z) + beta * KL(q_phi(z|x) || p(z))``. Gradients reach phi through
the reparameterised z in the flow-matching term (no stop-gradient) and through the KL term; the aggregate q_phi(z)
stays near the prior, so sampling starts from p(z) and never uses the encoder. beta -> infinity is the independent
coupling (`couplings.make` returns exactly that for ``coupling.beta = None``).

Conventions, as the paper's released code computes them:

- The encoder outputs [mu, log sigma^2] on its last axis (2C channels for C input channels).
- The KL term is per dimension: the closed-form KL summed over the D features, averaged over the batch, divided
  by D, so that with flow matching's per-feature mean the paper's beta is the code's ``weight_prior``.
- The encoder reads the data at the noise end of the path as its (constant) time: the paper's t = 1, which is
  flowjax's t = 0 (t = 0 noise here; the paper's t runs the other way).

The prior here is p(z) = N(0, diag s^2) (s = 1 for images; the 2-D toy's "wide prior" has s = (6, 1)). The
encoder is read in the prior's whitened coordinates: z = s * mu + exp(log sigma^2 / 2) * x0 with x0 ~ p(z), i.e.
z = s * (mu + sigma * eps), eps ~ N(0, I), and KL(q || p) = KL(N(mu, sigma^2) || N(0, I)). For s = 1 this is the
released code's parameterisation exactly; for the wide prior it differs from the code (whose encoder outputs z's
own mean and variance) only in that a zero output is the prior itself, so training starts from the independent
coupling, as the paper says it should, for any s.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp


def split(out: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The encoder's output [..., 2C] -> (mu, log sigma^2), each [..., C] (mu first, as the released code)."""
    c = out.shape[-1]
    if c % 2:
        raise ValueError(f"the encoder's output needs an even last axis [mu, log sigma^2], got {out.shape}.")
    return out[..., : c // 2], out[..., c // 2 :]


def kl_per_example(mu: jax.Array, logvar: jax.Array) -> jax.Array:
    """KL(N(mu, diag e^logvar) || N(0, I)) of each example [B]: 1/2 sum_d (mu^2 + e^logvar - 1 - logvar)."""
    terms = 0.5 * (jnp.square(mu) + jnp.exp(logvar) - 1.0 - logvar)
    return jnp.sum(terms.reshape(terms.shape[0], -1), axis=1)


def kl_per_dim(mu: jax.Array, logvar: jax.Array) -> jax.Array:
    """The paper's KL term as its code computes it: the batch mean of `kl_per_example` divided by the D features."""
    return jnp.mean(kl_per_example(mu, logvar)) / (mu[0].size)


def reparameterize(mu: jax.Array, logvar: jax.Array, x0: jax.Array, prior_std: Any = 1.0) -> jax.Array:
    """z = s * mu + exp(logvar / 2) * x0, with x0 ~ N(0, diag s^2) the independent draw (s = ``prior_std``,
    broadcast over the last axis): z ~ N(s mu, s^2 sigma^2), differentiable in (mu, logvar)."""
    return jnp.asarray(prior_std, mu.dtype) * mu + jnp.exp(0.5 * logvar) * x0


def couple(
    encode: Callable[[jax.Array], jax.Array],
    x0: jax.Array,
    x1: jax.Array,
    *,
    beta: float,
    prior_std: Any = 1.0,
) -> tuple[jax.Array, jax.Array, dict]:
    """Pairs data x1 [B, ...] with z ~ q_phi(z|x1), reparameterised with the independent noise x0 [B, ...] ~ p(z).

    ``encode(x1) -> [B, ..., 2C]`` is the encoder with its parameters bound. Returns (z, beta * KL per dim, info):
    the noise to train on, the penalty the loss adds (Eq. 11) and scalars for logging.
    """
    mu, logvar = split(encode(x1))
    if mu.shape != x1.shape:
        raise ValueError(f"the encoder maps x {x1.shape} to mu {mu.shape}; they must have one shape.")
    z = reparameterize(mu, logvar, x0, prior_std)
    kl = kl_per_dim(mu, logvar)
    sq = lambda a: jnp.mean(jnp.sum(jnp.square(a).reshape(a.shape[0], -1), axis=1))
    info = {
        "coupling/kl": kl,  # per dimension: the code's L_kl; beta times it is the loss's penalty
        "coupling/cost_before": sq(x1 - x0),  # the independent pair's squared path length
        "coupling/cost_after": sq(x1 - z),
        "coupling/mu_sq": jnp.mean(jnp.square(mu)),
        "coupling/sigma": jnp.mean(jnp.exp(0.5 * logvar)),
    }
    return z, beta * kl, info
