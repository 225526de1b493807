"""ODE samplers for dx/dt = v(x, t), integrated from noise (t = 0) to data (t = 1).

A velocity function has the call shape ``velocity_fn(x, t) -> v`` with x of shape [B, ...] and
t of shape [B]; the integrators pass ``jnp.full((B,), t)`` in x's float dtype.

Fixed-step solvers (`euler`, `midpoint`, `heun`, `rk4`) take ``nfe``, a static Python int that is
the exact number of velocity evaluations: ``nfe / stages(name)`` uniform steps, each a
``jax.lax.scan`` iteration that calls ``velocity_fn`` exactly ``stages(name)`` times.
`dopri5` is adaptive (``jax.lax.while_loop``) and returns the number of evaluations it used.
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

from flowjax import interpolants, predictions

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
        raise ValueError(
            f"{name} is adaptive: it has no fixed evaluations per step; stages() covers {FIXED_STEP}."
        )
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
    n_steps = _num_steps(name, nfe)
    x0 = _as_float(x0)
    dtype = x0.dtype
    f = _batched_time(velocity_fn, x0)
    t0 = jnp.asarray(t0, dtype)
    h = (jnp.asarray(t1, dtype) - t0) / n_steps

    def body(x: jax.Array, i: jax.Array) -> tuple[jax.Array, jax.Array | None]:
        x_next = step(f, x, t0 + i * h, h).astype(dtype)
        return x_next, (x_next if return_path else None)

    x1, xs = jax.lax.scan(body, x0, jnp.arange(n_steps, dtype=dtype))
    if return_path:
        return x1, jnp.concatenate([x0[None], xs], axis=0)
    return x1


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
    n_steps = _num_steps("ddim", nfe)
    x0 = _as_float(x0)
    dtype = x0.dtype
    denoiser = predictions.denoise(_batched_time(velocity_fn, x0), schedule)
    t0 = jnp.asarray(t0, dtype)
    t1 = jnp.asarray(t1, dtype)
    h = (t1 - t0) / n_steps

    def body(x: jax.Array, i: jax.Array) -> tuple[jax.Array, jax.Array | None]:
        x1_hat, x0_hat = denoiser(x, t0 + i * h)
        t_next = jnp.where(i + 1 == n_steps, t1, t0 + (i + 1) * h)
        x_next = (schedule.alpha(t_next) * x1_hat + schedule.sigma(t_next) * x0_hat).astype(dtype)
        return x_next, (x_next if return_path else None)

    x1, xs = jax.lax.scan(body, x0, jnp.arange(n_steps, dtype=dtype))
    if return_path:
        return x1, jnp.concatenate([x0[None], xs], axis=0)
    return x1


# --------------------------------------------------------------------------------------------
# Adaptive Dormand-Prince 5(4)
# --------------------------------------------------------------------------------------------

# Butcher tableau of Dormand & Prince (1980). Stage 7 is evaluated at the 5th-order solution
# (its row equals _B5), so it is the first stage of the next step (FSAL).
_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0)
_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
)
_B5 = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
_B4 = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)
_E = tuple(b5 - b4 for b5, b4 in zip(_B5, _B4))  # local error estimate = h * sum_i E_i k_i

_SAFETY = 0.9
_MIN_FACTOR = 0.2
_MAX_FACTOR = 10.0
_ERR_EXPONENT = -1.0 / 5.0  # -1 / (q + 1), q = 4 the order of the embedded estimate


def _rms(x: jax.Array) -> jax.Array:
    """Root mean square over all elements (the whole batch)."""
    return jnp.sqrt(jnp.mean(jnp.square(x)))


def _combine(x: jax.Array, h: jax.Array, coeffs: tuple[float, ...], ks: list[jax.Array]) -> jax.Array:
    """x + h * sum_i coeffs[i] ks[i], skipping zero coefficients."""
    return x + h * sum(c * k for c, k in zip(coeffs, ks) if c != 0.0)


def _initial_step(
    f: _Field,
    x0: jax.Array,
    f0: jax.Array,
    t0: jax.Array,
    direction: jax.Array,
    span: jax.Array,
    rtol: float,
    atol: float,
) -> jax.Array:
    """Initial step size magnitude by the heuristic of Hairer, Norsett & Wanner (1993), II.4.

    Costs one velocity evaluation (at t0 + h0); the result is at most ``span`` = |t1 - t0|.
    """
    scale = atol + rtol * jnp.abs(x0)
    d0 = _rms(x0 / scale)
    d1 = _rms(f0 / scale)
    h0 = jnp.where((d0 < 1e-5) | (d1 < 1e-5), 1e-6, 0.01 * d0 / d1)
    h0 = jnp.minimum(h0, span)
    f1 = f(x0 + direction * h0 * f0, t0 + direction * h0)
    d2 = _rms((f1 - f0) / scale) / jnp.maximum(h0, jnp.finfo(x0.dtype).tiny)
    dmax = jnp.maximum(d1, d2)
    h1 = jnp.where(
        dmax <= 1e-15,
        jnp.maximum(1e-6, h0 * 1e-3),
        (0.01 / jnp.maximum(dmax, 1e-15)) ** (-_ERR_EXPONENT),
    )
    return jnp.minimum(jnp.minimum(100.0 * h0, h1), span).astype(x0.dtype)


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
    dtype = x0.dtype
    f = _batched_time(velocity_fn, x0)
    t0 = jnp.asarray(t0, dtype)
    t1 = jnp.asarray(t1, dtype)
    direction = jnp.where(t1 >= t0, 1.0, -1.0).astype(dtype)
    span = jnp.abs(t1 - t0)

    k1 = f(x0, t0)
    h = _initial_step(f, x0, k1, t0, direction, span, rtol, atol)

    # carry: t, x, k1 = v(x, t), |h|, accepted steps, attempted steps, nfe, done[, ts, path]
    carry = (t0, x0, k1, h, jnp.int32(0), jnp.int32(0), jnp.int32(2), span == 0)
    if return_path:
        ts = jnp.full((max_steps + 1,), t0, dtype)
        path = jnp.broadcast_to(x0, (max_steps + 1,) + x0.shape)
        carry = carry + (ts, path)

    def cond(c: tuple) -> jax.Array:
        done, n_tried = c[7], c[5]
        return jnp.logical_not(done) & (n_tried < max_steps)

    def body(c: tuple) -> tuple:
        t, x, k1, h_abs, n_acc, n_tried, nfe, _ = c[:8]
        remaining = jnp.abs(t1 - t)
        last = h_abs >= remaining
        h = direction * jnp.where(last, remaining, h_abs)
        ks = [k1]
        for c_i, a_i in zip(_C[1:], _A[1:]):
            ks.append(f(_combine(x, h, a_i, ks), t + c_i * h))
        x_new = _combine(x, h, _B5, ks)
        t_new = jnp.where(last, t1, t + h)
        k7 = f(x_new, t_new)
        err = h * sum(e * k for e, k in zip(_E, ks + [k7]) if e != 0.0)
        scale = atol + rtol * jnp.maximum(jnp.abs(x), jnp.abs(x_new))
        err_norm = _rms(err / scale)
        accept = err_norm <= 1.0
        factor = jnp.where(
            err_norm == 0.0, _MAX_FACTOR, _SAFETY * err_norm ** _ERR_EXPONENT
        )
        factor = jnp.where(jnp.isfinite(err_norm), jnp.clip(factor, _MIN_FACTOR, _MAX_FACTOR), _MIN_FACTOR)
        t = jnp.where(accept, t_new, t)
        x = jnp.where(accept, x_new, x)
        k1 = jnp.where(accept, k7, k1)
        n_acc = n_acc + accept.astype(jnp.int32)
        out = (t, x, k1, jnp.abs(h) * factor, n_acc, n_tried + 1, nfe + 6, accept & last)
        if return_path:
            ts, path = c[8], c[9]
            out = out + (ts.at[n_acc].set(t), path.at[n_acc].set(x))
        return out

    final = jax.lax.while_loop(cond, body, carry)
    t_end, x1, nfe = final[0], final[1], final[6]
    if not return_path:
        return x1, nfe
    n_acc, ts, path = final[4], final[8], final[9]
    after = jnp.arange(max_steps + 1) > n_acc
    ts = jnp.where(after, t_end, ts)
    path = jnp.where(after.reshape((-1,) + (1,) * x1.ndim), x1[None], path)
    return x1, nfe, ts, path


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
