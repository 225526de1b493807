"""ODE samplers for dx/dt = v(x, t), integrated from noise (t = 0) to data (t = 1).

One module of about 400 lines, under half of them code: the fixed-step solvers share its grid, scan and NFE
helpers, and ``integrators.<name>`` is how every caller reaches a solver; the adaptive Dormand-Prince loop
lives apart in `flowjax._dopri5`.

A velocity function has the call shape ``velocity_fn(x, t) -> v`` with x of shape [B, ...] and
t of shape [B]; the integrators pass ``jnp.full((B,), t)`` in x's float dtype.

Fixed-step solvers (`euler`, `midpoint`, `heun`, `rk4`) take ``nfe``, a static Python int that is
the exact number of velocity evaluations: ``nfe / stages(name)`` uniform steps, each a
``jax.lax.scan`` iteration that calls ``velocity_fn`` exactly ``stages(name)`` times.
`euler_with` is `euler` for a field that also returns a value to keep at each grid point (the
trajectory measures of `flowjax.metrics.straightness` use it).
`dopri5` is adaptive (``jax.lax.while_loop``, in `flowjax._dopri5`) and returns the number of evaluations it
used.
`ddim` (deterministic DDIM, one evaluation per step) also needs the path's coefficients
(an `interpolants.Schedule`), so it is listed apart in ``SCHEDULE_SOLVERS`` and ``get`` hands it
out only with a schedule.
All solvers are pure and jittable once ``velocity_fn``, ``nfe``, ``max_steps`` and
``return_path`` are fixed (e.g. ``jax.jit(lambda x: rk4(v, x, 8))``).
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from flowjax import _dopri5, interpolants, predictions

VelocityFn = Callable[[jax.Array, jax.Array], jax.Array]
# f(x, t) with a scalar t: a velocity function whose time has been broadcast to the batch.
_Field = Callable[[jax.Array, jax.Array], jax.Array]
_Step = Callable[[_Field, jax.Array, jax.Array, jax.Array], jax.Array]

FIXED_STEP = ("euler", "midpoint", "heun", "rk4")
ADAPTIVE = ("dopri5",)
NAMES = FIXED_STEP + ADAPTIVE
SCHEDULE_SOLVERS = ("ddim",)  # fixed-step solvers that also need the path's Schedule

_STAGES = (1, 2, 2, 4)  # velocity evaluations per step, aligned with FIXED_STEP


# --------------------------------------------------------------------------------------------
# NFE bookkeeping
# --------------------------------------------------------------------------------------------


def _check_name(name: str) -> None:
    """Raises ValueError unless ``name`` is a known solver."""
    if name not in NAMES + SCHEDULE_SOLVERS:
        raise ValueError(
            f"Unknown ODE solver {name!r}; choose one of {NAMES + SCHEDULE_SOLVERS} (config field eval.solvers)."
        )


def stages(name: str) -> int:
    """Velocity evaluations per step of the fixed-step solver ``name`` (euler 1, midpoint 2, heun 2, rk4 4, ddim 1).

    Raises ValueError for an unknown name and for ``dopri5``, whose evaluation count is adaptive.
    """
    _check_name(name)
    if name in SCHEDULE_SOLVERS:
        return 1
    if name not in FIXED_STEP:
        raise ValueError(f"{name} is adaptive: it has no fixed evaluations per step; stages() covers {FIXED_STEP}.")
    return _STAGES[FIXED_STEP.index(name)]


def valid_nfe(name: str, nfe: int) -> bool:
    """Whether the fixed-step solver ``name`` can spend exactly ``nfe`` velocity evaluations.

    True iff ``nfe`` is a positive Python int that is a multiple of ``stages(name)``. Always False
    for ``dopri5`` (its nfe is not prescribed), so a (solver, nfe) sweep can skip it.
    Raises ValueError for an unknown solver name.
    """
    _check_name(name)
    if name in ADAPTIVE:
        return False
    if isinstance(nfe, bool) or not isinstance(nfe, (int, np.integer)):
        return False
    s = stages(name)
    return nfe >= s and nfe % s == 0


def _num_steps(name: str, nfe: int) -> int:
    """Number of steps of ``name`` that use exactly ``nfe`` evaluations; ValueError if impossible."""
    if isinstance(nfe, bool) or not isinstance(nfe, (int, np.integer)):
        raise TypeError(f"{name}: nfe must be a static Python int, got {nfe!r} of type {type(nfe).__name__}.")
    s = stages(name)
    if not valid_nfe(name, nfe):
        if s == 1:
            need = "nfe ≥ 1"
        elif s == 2:
            need = "an even nfe ≥ 2"
        else:
            need = f"nfe a positive multiple of {s} ({s}, {2 * s}, {3 * s}, ...)"
        plural = "evaluation" if s == 1 else "evaluations"
        raise ValueError(f"{name} needs {need} ({s} {plural} per step), got {nfe}.")
    return int(nfe) // s


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------


def _as_float(x0: jax.Array) -> jax.Array:
    """x0 as an array with a floating dtype (integer inputs get JAX's default float dtype)."""
    x0 = jnp.asarray(x0)
    if not jnp.issubdtype(x0.dtype, jnp.floating):
        x0 = x0.astype(jnp.result_type(float))
    return x0


def _batched_time(velocity_fn: VelocityFn, x0: jax.Array) -> _Field:
    """Wraps ``velocity_fn`` so it takes a scalar time, passed on as a [B] vector in x0's dtype.

    The velocity is cast to x0's dtype so loop carries keep a fixed type.
    """
    batch, dtype = x0.shape[0], x0.dtype

    def field(x: jax.Array, t: jax.Array) -> jax.Array:
        return velocity_fn(x, jnp.full((batch,), t, dtype)).astype(dtype)

    return field


def _uniform_grid(
    name: str, nfe: int, x0: jax.Array, t0: float, t1: float
) -> tuple[int, jax.Array, jax.Array, jax.Array, jax.Array]:
    """(steps, x0 as float, t0, t1, h = (t1 - t0) / steps) of the fixed-step solver ``name`` at ``nfe``, in x0's
    dtype."""
    n_steps = _num_steps(name, nfe)
    x0 = _as_float(x0)
    t0, t1 = jnp.asarray(t0, x0.dtype), jnp.asarray(t1, x0.dtype)
    return n_steps, x0, t0, t1, (t1 - t0) / n_steps


# --------------------------------------------------------------------------------------------
# Fixed-step solvers
# --------------------------------------------------------------------------------------------


def _euler_step(f: _Field, x: jax.Array, t: jax.Array, h: jax.Array) -> jax.Array:
    """x + h v(x, t)."""
    return x + h * f(x, t)


def _midpoint_step(f: _Field, x: jax.Array, t: jax.Array, h: jax.Array) -> jax.Array:
    """Explicit midpoint: x + h v(x + h/2 v(x, t), t + h/2)."""
    k1 = f(x, t)
    return x + h * f(x + 0.5 * h * k1, t + 0.5 * h)


def _heun_step(f: _Field, x: jax.Array, t: jax.Array, h: jax.Array) -> jax.Array:
    """Heun / explicit trapezoid: Euler predictor, trapezoidal corrector."""
    k1 = f(x, t)
    k2 = f(x + h * k1, t + h)
    return x + 0.5 * h * (k1 + k2)


def _rk4_step(f: _Field, x: jax.Array, t: jax.Array, h: jax.Array) -> jax.Array:
    """Classic four-stage Runge-Kutta."""
    k1 = f(x, t)
    k2 = f(x + 0.5 * h * k1, t + 0.5 * h)
    k3 = f(x + 0.5 * h * k2, t + 0.5 * h)
    k4 = f(x + h * k3, t + h)
    return x + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


def _scan_grid(
    update: Callable[[jax.Array, jax.Array], tuple[jax.Array, Any]], x0: jax.Array, n_steps: int, return_path: bool
) -> tuple[jax.Array, jax.Array | None, Any]:
    """``x_{i+1}, y_i = update(x_i, i)`` for i = 0..n_steps-1 (i in x0's float dtype) in one ``lax.scan``.

    Returns ``(x_n, path, ys)``: path [n_steps + 1, B, ...] = (x_0, ..., x_n) if ``return_path``
    (else None) and the stacked per-step outputs ys. x_{i+1} is cast to x0's dtype.
    """
    dtype = x0.dtype

    def body(x: jax.Array, i: jax.Array) -> tuple[jax.Array, tuple]:
        x_next, y = update(x, i)
        x_next = x_next.astype(dtype)
        return x_next, (x_next if return_path else None, y)

    x1, (xs, ys) = jax.lax.scan(body, x0, jnp.arange(n_steps, dtype=dtype))
    return x1, (jnp.concatenate([x0[None], xs], axis=0) if return_path else None), ys


def _fixed_step(
    name: str,
    step: _Step,
    velocity_fn: VelocityFn,
    x0: jax.Array,
    nfe: int,
    t0: float,
    t1: float,
    return_path: bool,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    """Runs ``step`` on a uniform grid of ``nfe / stages(name)`` steps from t0 to t1 with a scan."""
    n_steps, x0, t0, _, h = _uniform_grid(name, nfe, x0, t0, t1)
    f = _batched_time(velocity_fn, x0)
    x1, path, _ = _scan_grid(lambda x, i: (step(f, x, t0 + i * h, h), None), x0, n_steps, return_path)
    return (x1, path) if return_path else x1


def euler(
    velocity_fn: VelocityFn,
    x0: jax.Array,
    nfe: int,
    *,
    t0: float = 0.0,
    t1: float = 1.0,
    return_path: bool = False,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    """Forward Euler with ``nfe`` uniform steps (1 evaluation per step; first order).

    Returns x at t1, shape [B, ...]; with ``return_path`` also the states on the grid,
    shape [nfe + 1, B, ...] (path[0] = x0, path[-1] = x1). ValueError if nfe < 1.
    """
    return _fixed_step("euler", _euler_step, velocity_fn, x0, nfe, t0, t1, return_path)


def euler_with(
    field_fn: Callable[[jax.Array, jax.Array], tuple[jax.Array, Any]],
    x0: jax.Array,
    nfe: int,
    *,
    t0: float = 0.0,
    t1: float = 1.0,
) -> tuple[jax.Array, Any]:
    """`euler` with ``return_path=True`` for a field that also returns a value to keep at every grid point.

    ``field_fn(x [B, ...], t [B]) -> (v, y)``: the velocity v drives the same Euler steps as `euler`
    (grid t_k = t0 + k h, h = (t1 - t0) / nfe, x_{k+1} = x_k + h v) and y (any pytree, e.g. v
    itself or an acceleration) is stacked over the steps. Returns ``(path, ys)``: path
    [nfe + 1, B, ...] as `euler`'s, ys with a leading axis of nfe (ys[k] at (path[k], t_k)).
    The trajectory measures of `flowjax.metrics.straightness` are built on it.
    """
    n_steps, x0, t0, _, h = _uniform_grid("euler", nfe, x0, t0, t1)
    dtype, batch = x0.dtype, x0.shape[0]

    def update(x: jax.Array, i: jax.Array) -> tuple[jax.Array, Any]:
        v, y = field_fn(x, jnp.full((batch,), t0 + i * h, dtype))
        return x + h * v.astype(dtype), y

    _, path, ys = _scan_grid(update, x0, n_steps, True)
    return path, ys


def midpoint(
    velocity_fn: VelocityFn,
    x0: jax.Array,
    nfe: int,
    *,
    t0: float = 0.0,
    t1: float = 1.0,
    return_path: bool = False,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    """Explicit midpoint rule with ``nfe / 2`` uniform steps (2 evaluations per step; second order).

    Returns x at t1, shape [B, ...]; with ``return_path`` also the states on the grid,
    shape [nfe / 2 + 1, B, ...]. ValueError unless nfe is even and ≥ 2.
    """
    return _fixed_step("midpoint", _midpoint_step, velocity_fn, x0, nfe, t0, t1, return_path)


def heun(
    velocity_fn: VelocityFn,
    x0: jax.Array,
    nfe: int,
    *,
    t0: float = 0.0,
    t1: float = 1.0,
    return_path: bool = False,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    """Heun's method (explicit trapezoid, RK2) with ``nfe / 2`` uniform steps; second order.

    Every step, the last one included, uses both the predictor and the corrector evaluation (no
    Euler final step, unlike the EDM sampler). Returns x at t1, shape [B, ...]; with
    ``return_path`` also the grid states, shape [nfe / 2 + 1, B, ...].
    ValueError unless nfe is even and ≥ 2.
    """
    return _fixed_step("heun", _heun_step, velocity_fn, x0, nfe, t0, t1, return_path)


def rk4(
    velocity_fn: VelocityFn,
    x0: jax.Array,
    nfe: int,
    *,
    t0: float = 0.0,
    t1: float = 1.0,
    return_path: bool = False,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    """Classic Runge-Kutta with ``nfe / 4`` uniform steps (4 evaluations per step; fourth order).

    Returns x at t1, shape [B, ...]; with ``return_path`` also the grid states,
    shape [nfe / 4 + 1, B, ...]. ValueError unless nfe is a positive multiple of 4.
    """
    return _fixed_step("rk4", _rk4_step, velocity_fn, x0, nfe, t0, t1, return_path)


def ddim(
    velocity_fn: VelocityFn,
    x0: jax.Array,
    nfe: int,
    *,
    schedule: interpolants.Schedule,
    t0: float = 0.0,
    t1: float = 1.0,
    return_path: bool = False,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    """Deterministic DDIM (eta = 0; Song, Meng & Ermon 2021, Eq. 12) with ``nfe`` uniform steps.

    On the path x_t = alpha(t) x1 + sigma(t) x0 of ``schedule``, a step from t to t' recovers
    (x1_hat, x0_hat) = `predictions.denoise`(velocity_fn, schedule)(x, t) and moves to
    x' = alpha(t') x1_hat + sigma(t') x0_hat, one velocity evaluation per step; the last step
    lands exactly on t1. An epsilon network goes in through `predictions.to_velocity`. On the
    linear path DDIM is `euler`. Evaluations are at t0 + i (t1 - t0) / nfe, i < nfe, so the
    singular end of vp_linear (t = 1) is only reached as the target, never evaluated, when t1 = 1.

    Returns x at t1, shape [B, ...]; with ``return_path`` also the grid states,
    shape [nfe + 1, B, ...]. ValueError if nfe < 1.
    """
    n_steps, x0, t0, t1, h = _uniform_grid("ddim", nfe, x0, t0, t1)
    denoiser = predictions.denoise(_batched_time(velocity_fn, x0), schedule)

    def update(x: jax.Array, i: jax.Array) -> tuple[jax.Array, None]:
        x1_hat, x0_hat = denoiser(x, t0 + i * h)
        t_next = jnp.where(i + 1 == n_steps, t1, t0 + (i + 1) * h)
        return schedule.alpha(t_next) * x1_hat + schedule.sigma(t_next) * x0_hat, None

    x1, path, _ = _scan_grid(update, x0, n_steps, return_path)
    return (x1, path) if return_path else x1


# --------------------------------------------------------------------------------------------
# Adaptive Dormand-Prince 5(4) (its loop is in flowjax._dopri5)
# --------------------------------------------------------------------------------------------


def dopri5(
    velocity_fn: VelocityFn,
    x0: jax.Array,
    *,
    t0: float = 0.0,
    t1: float = 1.0,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    max_steps: int = 1000,
    return_path: bool = False,
) -> tuple[jax.Array, jax.Array] | tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Adaptive Dormand-Prince 5(4) with FSAL, in a ``jax.lax.while_loop``.

    A step of size h is accepted when the RMS over every element of the batch of
    ``err_i / (atol + rtol * max(|x_old_i|, |x_new_i|))`` is ≤ 1; the 5th-order solution is kept
    (local extrapolation). The next step is h * clip(0.9 * err^(-1/5), 0.2, 10), after a
    rejection as well (then the factor is < 0.9); a non-finite error shrinks the step by 0.2.
    The first step comes from the Hairer-Norsett-Wanner heuristic. t1 < t0 integrates backwards.

    Cost: 2 evaluations to start (v(x0, t0), reused as the first stage, and one for the initial
    step) plus 6 per attempted step, so ``nfe = 2 + 6 * attempts`` (accepted and rejected).

    ``max_steps`` bounds the attempted steps (accepted plus rejected). If it is reached before
    t1, the loop stops and the returned state is at the last accepted time ``ts[-1]``, which is
    then < t1 (forward) — check ``ts`` (``return_path=True``) when this matters.

    Returns ``(x1, nfe)``: x at t1 [B, ...] and the int32 scalar count of velocity evaluations.
    With ``return_path``, ``(x1, nfe, ts, path)``: ts [max_steps + 1] and path
    [max_steps + 1, B, ...] hold the accepted times and states (ts[0] = t0, path[0] = x0);
    entries after the last accepted step repeat the final time and state.
    """
    if isinstance(max_steps, bool) or not isinstance(max_steps, (int, np.integer)) or max_steps < 1:
        raise ValueError(f"dopri5 needs a static int max_steps ≥ 1, got {max_steps!r}.")
    x0 = _as_float(x0)
    return _dopri5.integrate(_batched_time(velocity_fn, x0), x0, t0, t1, rtol, atol, max_steps, return_path)


def get(name: str, schedule: interpolants.Schedule | None = None) -> Callable[..., Any]:
    """The solver called ``name`` (config field ``eval.solvers``); ValueError listing the valid names otherwise.

    A name in ``SCHEDULE_SOLVERS`` (``"ddim"``) needs the path's ``schedule``
    (``interpolants.schedule(config.loss.interpolant)``) and comes back with it bound, so it has
    the usual ``(velocity_fn, x0, nfe, **kw)`` signature; ``get("ddim")`` without one raises
    ValueError. Solvers of ``NAMES`` do not use a schedule and ignore it, so a sweep may pass the
    schedule for every name.
    """
    _check_name(name)
    if name in SCHEDULE_SOLVERS:
        if schedule is None:
            raise ValueError(
                f"Solver {name!r} (config field eval.solvers) needs the path's schedule: "
                f"integrators.get({name!r}, schedule=interpolants.schedule(config.loss.interpolant))."
            )
        return functools.partial(ddim, schedule=schedule)
    return (euler, midpoint, heun, rk4, dopri5)[NAMES.index(name)]
