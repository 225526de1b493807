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
- ``average_straightness`` / ``piecewise_straightness``: Bansal et al. 2024 (Def. 3.3), AS
  γ₁ = ∫₀¹ E‖a(t)‖² dt and PWS γ₂,T = max_j T ∫_{I_j} E‖a(t)‖² dt, with the acceleration
  a = d/dt v(Z_t, t) = ∂_t v + J_x v · v from one `jax.jvp` per step (`acceleration`);
  ``rectified_straightness`` gives S, AS and PWS from one simulation.

The ``*_from_path`` helpers take the arrays of one simulation, so an evaluation harness can
compute all three from a single `euler_trajectory` (see `trajectory_metrics`).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from flowjax import integrators

VelocityFn = Callable[[jax.Array, jax.Array], jax.Array]


def euler_trajectory(velocity_fn: VelocityFn, x0: jax.Array, num_steps: int) -> tuple[jax.Array, jax.Array]:
    """Euler simulation of dx/dt = v(x, t) from t = 0 to t = 1 on the grid t_k = k / N, keeping the velocities.

    The steps are `integrators.euler`'s (`integrators.euler_with`), so path equals
    ``euler(velocity_fn, x0, N, return_path=True)[1]``.

    Args:
      velocity_fn: ``velocity_fn(x [B, ...], t [B]) -> v [B, ...]``.
      x0: [B, ...] starting noise at t = 0.
      num_steps: N, a Python int (static under jit).

    Returns:
      path: [N + 1, B, ...], path[0] = x0 and path[k + 1] = path[k] + velocities[k] / N.
      velocities: [N, B, ...], velocities[k] = velocity_fn(path[k], t_k).
    """

    def field(x, t):
        v = velocity_fn(x, t)
        return v, v

    return integrators.euler_with(field, x0, num_steps)


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


def loom_curvature(velocity_fn: VelocityFn, x0: jax.Array, num_steps: int = 100) -> tuple[jax.Array, jax.Array]:
    """LOOM-CFM (Fig. 6) curvature 1 − v̄(t)ᵀ v̄(t + Δt) along Euler trajectories: (mean, profile [N − 1])."""
    _, velocities = euler_trajectory(velocity_fn, x0, num_steps)
    return loom_curvature_from_velocities(velocities)


def trajectory_metrics(velocity_fn: VelocityFn, x0: jax.Array, num_steps: int) -> dict[str, jax.Array]:
    """Straightness, curvature and (mean) LOOM curvature from one Euler simulation of num_steps."""
    path, velocities = euler_trajectory(velocity_fn, x0, num_steps)
    return {
        "straightness": straightness_from_path(path, velocities),
        "curvature": curvature_from_path(path, velocities),
        "loom_curvature": loom_curvature_from_velocities(velocities)[0],
    }


# --------------------------------------------------------------------------------------------
# Acceleration-based straightness (Bansal et al. 2024, Def. 3.3): AS γ₁ and PWS γ₂,T
# --------------------------------------------------------------------------------------------


def _velocity_and_acceleration(velocity_fn: VelocityFn, x: jax.Array, t: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(v(x, t), a(x, t)) with a = ∂_t v + J_x v · v from one evaluation and one `jax.jvp`."""
    v = velocity_fn(x, t)
    _, a = jax.jvp(velocity_fn, (x, t), (v, jnp.ones_like(t)))
    return v, a


def acceleration(velocity_fn: VelocityFn, x: jax.Array, t: jax.Array) -> jax.Array:
    """Acceleration along the flow, a = d/dt v(Z_t, t) = ∂_t v + J_x v · v at Z_t = x.

    One forward-mode `jax.jvp` of (x, t) ↦ v(x, t) with tangents (v(x, t), 1); no Jacobian is
    formed, so it runs on image models. The time tangent is ``ones_like(t)``: for a [B] vector t
    every sample's clock advances at rate 1, and for a scalar t (broadcast inside ``velocity_fn``)
    the single tangent 1 moves all samples' times together — both give the per-sample total derivative.

    Args:
      velocity_fn: ``velocity_fn(x [B, ...], t) -> v [B, ...]`` with t of shape [B] (or scalar,
        if the function accepts one).
      x: [B, ...] points on the trajectories.
      t: [B] or scalar time(s) in x's float dtype.

    Returns:
      a [B, ...], shaped like x.
    """
    return _velocity_and_acceleration(velocity_fn, x, jnp.asarray(t, x.dtype))[1]


def acceleration_trajectory(
    velocity_fn: VelocityFn, x0: jax.Array, num_steps: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The Euler simulation of `euler_trajectory` plus the acceleration at every grid point.

    Returns:
      path: [N + 1, B, ...] (as `euler_trajectory`).
      velocities: [N, B, ...], velocities[k] = v(path[k], t_k).
      acc_sq: [N], acc_sq[k] = mean_b ‖a(path[k], t_k)‖² (squared norm over all non-batch axes).
    """

    def field(x, t):
        v, a = _velocity_and_acceleration(velocity_fn, x, t)
        return v, (v, jnp.mean(jnp.sum(a.reshape(a.shape[0], -1) ** 2, axis=-1)))

    path, (velocities, acc_sq) = integrators.euler_with(field, x0, num_steps)
    return path, velocities, acc_sq


def _check_pieces(num_steps: int, num_pieces: int) -> None:
    """ValueError unless num_pieces ≥ 1 divides num_steps."""
    if num_pieces < 1 or num_steps % num_pieces:
        raise ValueError(
            f"Piece-wise straightness needs num_pieces ≥ 1 dividing num_steps (each of the T equal "
            f"intervals must hold whole Euler steps), got num_steps={num_steps}, num_pieces={num_pieces}."
        )


def average_straightness_from_acc(acc_sq: jax.Array) -> jax.Array:
    """AS γ₁ ≈ (1/N) Σ_k E‖a(t_k)‖² (left-point rule) from `acceleration_trajectory`'s acc_sq."""
    return jnp.mean(acc_sq)


def piecewise_straightness_from_acc(acc_sq: jax.Array, num_pieces: int) -> jax.Array:
    """PWS γ₂,T ≈ max_j mean_{k ∈ I_j} E‖a(t_k)‖² over T = num_pieces equal blocks of the [N] grid values.

    T ∫_{I_j} E‖a‖² dt with the left-point rule is the mean of the N / T grid values in block j.
    """
    _check_pieces(acc_sq.shape[0], num_pieces)
    return jnp.max(jnp.mean(acc_sq.reshape(num_pieces, -1), axis=1))


def average_straightness(velocity_fn: VelocityFn, x0: jax.Array, num_steps: int = 100) -> jax.Array:
    """Average straightness (AS, Bansal et al. Def. 3.3) γ₁ = ∫₀¹ E‖a(t)‖² dt along Euler paths from x0.

    Quadrature: the left-point rule on the Euler grid, γ₁ ≈ (1/N) Σ_{k<N} mean_b ‖a(Z_{t_k}, t_k)‖²
    with t_k = k / N and Z the Euler path (as the authors' ``gamma_st``, which averages grid values);
    its error is O(1/N) from the rule plus the Euler path's O(1/N) deviation. One `jax.jvp` per step.
    """
    return average_straightness_from_acc(acceleration_trajectory(velocity_fn, x0, num_steps)[2])


def piecewise_straightness(
    velocity_fn: VelocityFn, x0: jax.Array, num_steps: int = 100, num_pieces: int = 10
) -> jax.Array:
    """Piece-wise straightness (PWS, Bansal et al. Def. 3.3) γ₂,T = max_j T ∫_{I_j} E‖a(t)‖² dt, T = pieces.

    Same trajectory and left-point quadrature as `average_straightness`; each of the T equal
    intervals I_j = [j/T, (j+1)/T) holds num_steps / T grid points, so num_steps must be a multiple
    of num_pieces (ValueError otherwise). γ₁ ≤ γ₂,T ≤ T γ₁ holds exactly for these sums.
    """
    _check_pieces(num_steps, num_pieces)
    return piecewise_straightness_from_acc(acceleration_trajectory(velocity_fn, x0, num_steps)[2], num_pieces)


def rectified_straightness(
    velocity_fn: VelocityFn, x0: jax.Array, num_steps: int = 100, num_pieces: int = 10
) -> dict[str, jax.Array]:
    """S (Liu et al.), AS γ₁ and PWS γ₂,T (T = num_pieces) from one Euler simulation of num_steps.

    Returns {"straightness", "average_straightness", "piecewise_straightness"}; all three use the
    same path and left-point rule (see `average_straightness`). For a continuous flow
    S ≤ γ₁ ≤ γ₂,T ≤ T γ₁ (Bansal et al. 2024, "Straightness of Rectified Flow", Lemma 3.4), and the
    sharper S ≤ γ₁ / 3 holds: Z₁ − Z₀ − Ż_t = ∫₀¹ (Ż_s − Ż_t) ds, Jensen's inequality,
    ‖Ż_s − Ż_t‖² ≤ |s − t| ∫₀¹ ‖Z̈_u‖² du, and ∫₀¹∫₀¹ |s − t| ds dt = 1/3.
    """
    _check_pieces(num_steps, num_pieces)
    path, velocities, acc_sq = acceleration_trajectory(velocity_fn, x0, num_steps)
    return {
        "straightness": straightness_from_path(path, velocities),
        "average_straightness": average_straightness_from_acc(acc_sq),
        "piecewise_straightness": piecewise_straightness_from_acc(acc_sq, num_pieces),
    }
