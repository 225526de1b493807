"""Straightness and curvature of sampling trajectories, measured along Euler trajectories.

All measures use one Euler simulation on the uniform grid t_k = k / N (k = 0..N) from given
noise x0 at t = 0 to t = 1 (this codebase's direction; the curvature paper integrates from
t = 1 noise to t = 0 data, which is the same trajectory with time reversed — its
``z1 - z0`` and its velocity both flip sign, so the squared deviation is unchanged):

- ``straightness``: Liu et al. (rectified flow, ICLR 2023), S = ∫₀¹ E‖(Z₁ − Z₀) − v(Z_t, t)‖² dt,
  the squared norm summed over all features.
- ``curvature``: Lee et al. 2023 (Minimizing trajectory curvature, Eq. 5, Sec. 5.2),
  E_t‖z₁ − z₀ − ∂_t z_t‖², which their code averages over elements instead of summing:
  curvature = straightness / D on the same trajectory (D = number of features).
- ``loom_curvature``: Davtyan et al. (LOOM-CFM, Sec. 4.1, Fig. 6),
  1 − v̄(t)ᵀ v̄(t + Δt) between the normalised velocities at consecutive grid times.

The ``*_from_path`` helpers take the arrays of one simulation, so an evaluation harness can
compute all three from a single `euler_trajectory` (see `trajectory_metrics`).
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

VelocityFn = Callable[[jax.Array, jax.Array], jax.Array]


def euler_trajectory(
    velocity_fn: VelocityFn, x0: jax.Array, num_steps: int
) -> tuple[jax.Array, jax.Array]:
    """Euler simulation of dx/dt = v(x, t) from t = 0 to t = 1 on the grid t_k = k / N.

    Args:
      velocity_fn: ``velocity_fn(x [B, ...], t [B]) -> v [B, ...]``.
      x0: [B, ...] starting noise at t = 0.
      num_steps: N, a Python int (static under jit).

    Returns:
      path: [N + 1, B, ...], path[0] = x0 and path[k + 1] = path[k] + velocities[k] / N.
      velocities: [N, B, ...], velocities[k] = velocity_fn(path[k], t_k).
    """
    dt = 1.0 / num_steps

    def step(x, k):
        t = jnp.full((x.shape[0],), k * dt, dtype=x.dtype)
        v = velocity_fn(x, t)
        return x + dt * v, (x, v)

    x1, (states, velocities) = jax.lax.scan(step, x0, jnp.arange(num_steps))
    return jnp.concatenate([states, x1[None]], axis=0), velocities


def _deviation_sq(path: jax.Array, velocities: jax.Array) -> jax.Array:
    """[N, B, ...] squared deviation ((path[N] − path[0]) − velocities[k])²."""
    return ((path[-1] - path[0])[None] - velocities) ** 2


@jax.jit
def straightness_from_path(path: jax.Array, velocities: jax.Array) -> jax.Array:
    """Liu et al.'s S: (1/N) Σ_k mean_b ‖(path[N] − path[0]) − velocities[k]‖² (sum over features)."""
    dev = _deviation_sq(path, velocities)
    return jnp.mean(jnp.sum(dev.reshape(dev.shape[0], dev.shape[1], -1), axis=-1))


@jax.jit
def curvature_from_path(path: jax.Array, velocities: jax.Array) -> jax.Array:
    """Lee et al. 2023's curvature as their code computes it: the per-element mean, = S / D."""
    return jnp.mean(_deviation_sq(path, velocities))


@jax.jit
def loom_curvature_from_velocities(velocities: jax.Array) -> tuple[jax.Array, jax.Array]:
    """LOOM-CFM's 1 − v̄(t_k)ᵀ v̄(t_{k+1}) averaged over trajectories.

    Args:
      velocities: [N, B, ...] velocities along the trajectories.

    Returns:
      (mean over k of the profile, profile [N − 1] with profile[k] for the pair t_k, t_{k+1}).
      A zero velocity has no direction; it is normalised to zero (cosine 0, curvature 1).
    """
    v = velocities.reshape(velocities.shape[0], velocities.shape[1], -1)
    norm = jnp.linalg.norm(v, axis=-1, keepdims=True)
    unit = v / jnp.maximum(norm, jnp.finfo(v.dtype).tiny)
    profile = jnp.mean(1.0 - jnp.sum(unit[:-1] * unit[1:], axis=-1), axis=1)
    return jnp.mean(profile), profile


def straightness(velocity_fn: VelocityFn, x0: jax.Array, num_steps: int = 100) -> jax.Array:
    """Liu et al.'s straightness S = ∫₀¹ E‖(Z₁ − Z₀) − v(Z_t, t)‖² dt along Euler trajectories from x0."""
    return straightness_from_path(*euler_trajectory(velocity_fn, x0, num_steps))


def curvature(velocity_fn: VelocityFn, x0: jax.Array, num_steps: int = 128) -> jax.Array:
    """Lee et al. 2023 (Eq. 5, Sec. 5.2) curvature E_t‖z₁ − z₀ − ∂_t z_t‖², per element.

    As in the authors' code (Euler, 128 steps, "divide by the number of pixels"), the squared
    deviation is averaged over elements, so this is `straightness` / D on the same trajectory.
    """
    return curvature_from_path(*euler_trajectory(velocity_fn, x0, num_steps))


def loom_curvature(
    velocity_fn: VelocityFn, x0: jax.Array, num_steps: int = 100
) -> tuple[jax.Array, jax.Array]:
    """LOOM-CFM (Fig. 6) curvature 1 − v̄(t)ᵀ v̄(t + Δt) along Euler trajectories: (mean, profile [N − 1])."""
    _, velocities = euler_trajectory(velocity_fn, x0, num_steps)
    return loom_curvature_from_velocities(velocities)


def trajectory_metrics(
    velocity_fn: VelocityFn, x0: jax.Array, num_steps: int
) -> dict[str, jax.Array]:
    """Straightness, curvature and (mean) LOOM curvature from one Euler simulation of num_steps."""
    path, velocities = euler_trajectory(velocity_fn, x0, num_steps)
    return {
        "straightness": straightness_from_path(path, velocities),
        "curvature": curvature_from_path(path, velocities),
        "loom_curvature": loom_curvature_from_velocities(velocities)[0],
    }
