"""ODE samplers for dx/dt = v(x, t), integrated from noise (t = 0) to data (t = 1).

One module of about 550 lines, under half of them code: the fixed-step solvers share its grid, scan and NFE
helpers, and ``integrators.<name>`` is how every caller reaches a solver; the adaptive Dormand-Prince loop
lives apart in `flowjax._dopri5`, and EDM's samplers in `flowjax.edm`.

A velocity function has the call shape ``velocity_fn(x, t) -> v`` with x of shape [B, ...] and
t of shape [B]; the integrators pass ``jnp.full((B,), t)`` in x's float dtype.

Fixed-step solvers (`euler`, `midpoint`, `heun`, `rk4`) take ``nfe``, a static Python int that is
the exact number of velocity evaluations: ``nfe / stages(name)`` uniform steps, each a
``jax.lax.scan`` iteration that calls ``velocity_fn`` exactly ``stages(name)`` times.
`heun_euler_last` is the curvature paper's Heun as its code implements it (Lee et al. 2023, Table 3): an odd nfe,
(nfe + 1) / 2 uniform steps, Heun on all but the last, which is an Euler step (NFE 5 = 3 steps, 9 = 5).
`euler_with` is `euler` for a field that also returns a value to keep at each grid point (the
trajectory measures of `flowjax.metrics.straightness` use it).
`dopri5` is adaptive (``jax.lax.while_loop``, in `flowjax._dopri5`) and returns the number of evaluations it
used.
`ddim` (deterministic DDIM, one evaluation per step) also needs the path's coefficients
(an `interpolants.Schedule`), so it is listed apart in ``SCHEDULE_SOLVERS`` and ``get`` hands it
out only with a schedule.
`edm_heun` and `edm_euler` (``EDM_SOLVERS``) run the samplers of Karras et al. (2022), `edm.heun` and
`edm.euler`, on any velocity field of the linear path: they step on EDM's noise levels
(`edm.karras_sigmas`), not on a uniform grid in t, always over the whole of [0, 1], and `edm_heun`
spends an odd nfe (its last step has no corrector).
``lmm:<indices>`` and ``lmm_euler:<indices>`` (``LMM_SOLVERS``, e.g. ``"lmm:0,3,5"``) are the samplers of Lines
Matching Models (`flowjax.lmm.sample`, `flowjax.lmm.euler`) on the same denoiser, at the listed indices of an
N-level Karras schedule: NFE = the number of indices; ``lmm`` draws fresh noise at every step, so it also takes
one PRNG key per example (``keys``).
All solvers are pure and jittable once ``velocity_fn``, ``nfe``, ``max_steps`` and
``return_path`` are fixed (e.g. ``jax.jit(lambda x: rk4(v, x, 8))``).
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from flowjax import _dopri5, edm, interpolants, lmm, predictions

VelocityFn = Callable[[jax.Array, jax.Array], jax.Array]
# f(x, t) with a scalar t: a velocity function whose time has been broadcast to the batch.
_Field = Callable[[jax.Array, jax.Array], jax.Array]
_Step = Callable[[_Field, jax.Array, jax.Array, jax.Array], jax.Array]

FIXED_STEP = ("euler", "midpoint", "heun", "rk4")
ADAPTIVE = ("dopri5",)
NAMES = FIXED_STEP + ADAPTIVE
SCHEDULE_SOLVERS = ("ddim",)  # fixed-step solvers that also need the path's Schedule
# EDM's samplers on its noise levels (Karras et al. 2022, Algorithm 1); the linear path, t from 0 to 1 only.
EDM_SOLVERS = ("edm_euler", "edm_heun")
# Lines Matching Models' samplers, named with their step indices: "lmm:0,1" (fresh noise), "lmm_euler:0,1".
LMM_SOLVERS = ("lmm", "lmm_euler")
# Heun with an Euler last step on the uniform grid (the curvature paper's code); an odd nfe, as edm_heun's.
LAST_EULER = ("heun_euler_last",)

_STAGES = (1, 2, 2, 4)  # velocity evaluations per step, aligned with FIXED_STEP


# --------------------------------------------------------------------------------------------
# NFE bookkeeping
# --------------------------------------------------------------------------------------------


def parse_lmm(name: str) -> tuple[str, tuple[int, ...]] | None:
    """``"lmm:0,3,5"`` -> ("lmm", (0, 3, 5)); None if ``name`` is not an LMM sampler; ValueError if it is one
    without a valid index list (the indices are checked against the schedule's length when it is run)."""
    base, sep, rest = name.partition(":")
    if base not in LMM_SOLVERS:
        return None
    try:
        steps = tuple(int(i) for i in rest.split(",")) if sep else ()
    except ValueError:
        steps = ()
    if not steps or any(i < 0 for i in steps) or any(b <= a for a, b in zip(steps, steps[1:])):
        raise ValueError(
            f"Solver {name!r}: an LMM sampler is named with its increasing step indices into the Karras schedule, "
            f"e.g. '{base}:0' (NFE 1) or '{base}:0,3,5' (NFE 3), as in LMM App. A.3 (config field eval.solvers)."
        )
    return base, steps


def _check_name(name: str) -> None:
    """Raises ValueError unless ``name`` is a known solver."""
    known = NAMES + LAST_EULER + SCHEDULE_SOLVERS + EDM_SOLVERS
    if name not in known and parse_lmm(name) is None:
        raise ValueError(
            f"Unknown ODE solver {name!r}; choose one of {known} or an LMM sampler "
            "'lmm:<indices>' / 'lmm_euler:<indices>' (e.g. 'lmm:0,1') (config field eval.solvers)."
        )


def stages(name: str) -> int:
    """Velocity evaluations per step of the fixed-step solver ``name`` (euler 1, midpoint 2, heun 2, rk4 4, ddim 1).

    edm_euler 1; edm_heun 2, but its last step spends 1, so N steps cost 2N - 1 (see `valid_nfe`).
    Raises ValueError for an unknown name and for ``dopri5``, whose evaluation count is adaptive.
    """
    _check_name(name)
    if name in SCHEDULE_SOLVERS or parse_lmm(name):
        return 1
    if name in EDM_SOLVERS:
        return 2 if name == "edm_heun" else 1
    if name in LAST_EULER:
        return 2
    if name not in FIXED_STEP:
        raise ValueError(f"{name} is adaptive: it has no fixed evaluations per step; stages() covers {FIXED_STEP}.")
    return _STAGES[FIXED_STEP.index(name)]


def valid_nfe(name: str, nfe: int) -> bool:
    """Whether the fixed-step solver ``name`` can spend exactly ``nfe`` velocity evaluations.

    True iff ``nfe`` is a positive Python int that is a multiple of ``stages(name)``; for
    ``edm_heun`` iff it is odd and positive (N steps spend 2N - 1); for an LMM sampler iff it equals the number of
    its step indices. Always False for ``dopri5``
    (its nfe is not prescribed), so a (solver, nfe) sweep can skip it.
    Raises ValueError for an unknown solver name.
    """
    _check_name(name)
    if name in ADAPTIVE:
        return False
    if isinstance(nfe, bool) or not isinstance(nfe, (int, np.integer)):
        return False
    if name in ("edm_heun",) + LAST_EULER:
        return nfe >= 1 and nfe % 2 == 1
    if parse_lmm(name):
        return nfe == len(parse_lmm(name)[1])
    s = stages(name)
    return nfe >= s and nfe % s == 0


def _num_steps(name: str, nfe: int) -> int:
    """Number of steps of ``name`` that use exactly ``nfe`` evaluations; ValueError if impossible."""
    if isinstance(nfe, bool) or not isinstance(nfe, (int, np.integer)):
        raise TypeError(f"{name}: nfe must be a static Python int, got {nfe!r} of type {type(nfe).__name__}.")
    s = stages(name)
    odd = name in ("edm_heun",) + LAST_EULER  # N steps, the last of one evaluation: 2N - 1
    if not valid_nfe(name, nfe):
        if odd:
            raise ValueError(f"{name} needs an odd nfe ≥ 1 (N steps spend 2N - 1 evaluations), got {nfe}.")
        if s == 1:
            need = "nfe ≥ 1"
        elif s == 2:
            need = "an even nfe ≥ 2"
        else:
            need = f"nfe a positive multiple of {s} ({s}, {2 * s}, {3 * s}, ...)"
        plural = "evaluation" if s == 1 else "evaluations"
        raise ValueError(f"{name} needs {need} ({s} {plural} per step), got {nfe}.")
    return (int(nfe) + 1) // 2 if odd else int(nfe) // s


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


def heun_euler_last(
    velocity_fn: VelocityFn,
    x0: jax.Array,
    nfe: int,
    *,
    t0: float = 0.0,
    t1: float = 1.0,
    return_path: bool = False,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    """Heun as the curvature paper's code implements it ("Minimizing Trajectory Curvature of ODE-based Generative
    Models", Table 3's "Heun's 2nd order method"): K = (nfe + 1) / 2 uniform steps, the first K - 1 Heun steps
    and the last one an Euler step, so NFE = 2K - 1 (5 = 3 steps, 9 = 5; nfe 1 is one Euler step). The paper
    integrates from noise at its t = 1 to data at t = 0: its last, Euler, step ends at the data, as here at t1.
    Returns x at t1; with ``return_path`` also the K + 1 grid states. ValueError unless nfe is odd and >= 1.
    """
    n_steps, x0, t0, t1, h = _uniform_grid("heun_euler_last", nfe, x0, t0, t1)
    f = _batched_time(velocity_fn, x0)
    x, path, _ = _scan_grid(lambda x, i: (_heun_step(f, x, t0 + i * h, h), None), x0, n_steps - 1, return_path)
    x1 = (x + h * f(x, t1 - h)).astype(x0.dtype)
    return (x1, jnp.concatenate([path, x1[None]], axis=0)) if return_path else x1


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


# --------------------------------------------------------------------------------------------
# EDM's samplers (Karras et al. 2022) on a flowjax velocity field; the samplers are in flowjax.edm
# --------------------------------------------------------------------------------------------


def _edm_steps(name: str, nfe: int, t0: float, t1: float) -> int:
    """EDM steps N that spend exactly ``nfe`` evaluations (2N - 1 for edm_heun, N for edm_euler); checks t0, t1."""
    n = _num_steps(name, nfe)
    if float(t0) != 0.0 or float(t1) != 1.0:
        raise ValueError(
            f"{name} integrates over the whole of t in [0, 1] (EDM's noise levels from sigma_max to 0), so it needs "
            f"t0 = 0 and t1 = 1, got t0={t0}, t1={t1}: set eval.t_end = 1.0 or choose another solver."
        )
    return n


def _ve_denoiser(velocity_fn: VelocityFn, dtype: Any) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """The denoiser D(x, sigma) a linear-path velocity implies: x1_hat = y + (1 - t) v(y, t) at y = x / (1 + sigma),
    t = 1 / (1 + sigma) (`predictions.denoise`; `flowjax.edm`'s module docstring derives the map), in ``dtype``."""
    data_prediction = predictions.denoise(velocity_fn, interpolants.schedule("linear"))

    def denoise_fn(x: jax.Array, sigma: jax.Array) -> jax.Array:
        y, t = edm.to_flow(x, sigma)
        return data_prediction(y, t)[0].astype(dtype)

    return denoise_fn


def _edm_solve(
    sampler: Callable[..., Any],
    velocity_fn: VelocityFn,
    x0: jax.Array,
    num_steps: int,
    return_path: bool,
    sigma_min: float,
    sigma_max: float,
    rho: float,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    """Runs the `flowjax.edm` sampler on the denoiser behind ``velocity_fn`` (linear path), from sigma_max x0.

    D(x, sigma) = x1_hat of `predictions.denoise` at y = x / (1 + sigma), t = 1 / (1 + sigma), i.e.
    y + (1 - t) v(y, t) (`flowjax.edm`'s module docstring derives the map). The path is returned as
    flowjax states y_i = x_i / (1 + sigma_i).
    """
    x0 = _as_float(x0)
    dtype = x0.dtype
    denoise_fn = _ve_denoiser(velocity_fn, dtype)
    out = sampler(denoise_fn, x0, num_steps, sigma_min=sigma_min, sigma_max=sigma_max, rho=rho, return_path=return_path)
    if not return_path:
        return out
    x1, path = out
    scale = 1.0 + edm.karras_sigmas(num_steps, sigma_min, sigma_max, rho, dtype)
    return x1, path / jnp.reshape(scale, scale.shape + (1,) * x0.ndim)


def edm_heun(
    velocity_fn: VelocityFn,
    x0: jax.Array,
    nfe: int,
    *,
    t0: float = 0.0,
    t1: float = 1.0,
    return_path: bool = False,
    sigma_min: float = edm.SIGMA_MIN,
    sigma_max: float = edm.SIGMA_MAX,
    rho: float = edm.RHO,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    """EDM's deterministic Heun sampler (Karras et al. 2022, Algorithm 1, S_churn = 0) on any flowjax velocity field.

    ``velocity_fn`` must be a field of the linear path x_t = t x1 + (1 - t) x0: a flow-matching model,
    or an EDM model through `edm.velocity`. Its denoiser D(x, sigma) = y + (1 - t) v(y, t) at
    y = x / (1 + sigma), t = 1 / (1 + sigma) drives `edm.heun` from the VE state sigma_max x0, so the
    velocity is evaluated at t_i = 1 / (1 + sigma_i) on the levels of `edm.karras_sigmas`.
    N = (nfe + 1) / 2 steps: the N - 1 first have a corrector (2 evaluations each), the last, to
    sigma = 0 (t = 1), is an Euler step. ValueError unless nfe is odd and ≥ 1, and unless t0 = 0 and
    t1 = 1 (config field eval.t_end), since the grid is EDM's.

    This differs from `heun`, which steps on a uniform grid in t with a corrector on every step.

    Returns x at t = 1 (sigma = 0), shape [B, ...]; with ``return_path`` also the states y_i =
    x_i / (1 + sigma_i) at t_i, shape [N + 1, B, ...] (path[0] = sigma_max / (1 + sigma_max) x0,
    path[-1] = x1).
    """
    n = _edm_steps("edm_heun", nfe, t0, t1)
    return _edm_solve(edm.heun, velocity_fn, x0, n, return_path, sigma_min, sigma_max, rho)


def edm_euler(
    velocity_fn: VelocityFn,
    x0: jax.Array,
    nfe: int,
    *,
    t0: float = 0.0,
    t1: float = 1.0,
    return_path: bool = False,
    sigma_min: float = edm.SIGMA_MIN,
    sigma_max: float = edm.SIGMA_MAX,
    rho: float = edm.RHO,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    """`edm.euler` (first order, N = nfe steps on EDM's noise levels) on any flowjax velocity field.

    As `edm_heun` without the corrector: an Euler step in sigma on the VE state is an Euler step in t on
    the linear path evaluated at the same point, so this is `euler` on the non-uniform grid
    t_i = 1 / (1 + sigma_i), started from sigma_max / (1 + sigma_max) x0 at t_0. ValueError if nfe < 1 or
    unless t0 = 0 and t1 = 1 (config field eval.t_end). Returns as `edm_heun`, with N = nfe.
    """
    n = _edm_steps("edm_euler", nfe, t0, t1)
    return _edm_solve(edm.euler, velocity_fn, x0, n, return_path, sigma_min, sigma_max, rho)


def lmm_sampler(
    velocity_fn: VelocityFn,
    x0: jax.Array,
    nfe: int,
    *,
    steps: tuple[int, ...],
    stochastic: bool = True,
    keys: jax.Array | None = None,
    num_steps: int = 18,
    t0: float = 0.0,
    t1: float = 1.0,
    sigma_min: float = edm.SIGMA_MIN,
    sigma_max: float = edm.SIGMA_MAX,
    rho: float = edm.RHO,
) -> jax.Array:
    """Lines Matching Models' samplers (`lmm.sample`, or `lmm.euler` with ``stochastic=False``) on any velocity
    field of the linear path, at the noise levels of ``steps`` (indices into the ``num_steps``-level Karras
    schedule; `lmm.step_sigmas`), from sigma_{steps[0]} x0. The denoiser is that of `edm_heun`,
    D(x, sigma) = y + (1 - t) v(y, t) at y = x / (1 + sigma), t = 1 / (1 + sigma), which for an LMM or EDM model
    read through `edm.velocity` is its own N_theta. NFE = len(steps) (ValueError otherwise, and unless t0 = 0,
    t1 = 1). ``keys`` [B] (one PRNG key per example, e.g. those its noise x0 was drawn with) are needed by the
    stochastic sampler. Returns x1 [B, ...] (trajectories are not returned: the stochastic steps are not a path).
    """
    name = f"{'lmm' if stochastic else 'lmm_euler'}:{','.join(map(str, steps))}"
    if not valid_nfe(name, nfe):
        raise ValueError(f"{name} spends nfe = {len(steps)} (one per step index), got {nfe}.")
    if float(t0) != 0.0 or float(t1) != 1.0:
        raise ValueError(f"{name} runs from sigma_max to 0 (t from 0 to 1); got t0={t0}, t1={t1} (eval.t_end).")
    x0 = _as_float(x0)
    denoise_fn = _ve_denoiser(velocity_fn, x0.dtype)
    sigmas = lmm.step_sigmas(steps, num_steps, sigma_min, sigma_max, rho)
    if not stochastic:
        return lmm.euler(denoise_fn, x0, sigmas)
    if keys is None:
        raise ValueError(f"{name} draws fresh noise at every step: pass keys, one PRNG key per example.")
    return lmm.sample(denoise_fn, x0, sigmas, keys)


def _is_linear(schedule: interpolants.Schedule) -> bool:
    """Whether ``schedule`` is (t, 1 - t), checked at a few times."""
    t = np.linspace(0.0, 1.0, 5, dtype=np.float32)
    with jax.ensure_compile_time_eval():  # concrete values even when get() is called inside jit
        alpha, sigma = np.asarray(schedule.alpha(jnp.asarray(t))), np.asarray(schedule.sigma(jnp.asarray(t)))
    return bool(np.allclose(alpha, t, rtol=0.0, atol=1e-6) and np.allclose(sigma, 1.0 - t, rtol=0.0, atol=1e-6))


def get(name: str, schedule: interpolants.Schedule | None = None) -> Callable[..., Any]:
    """The solver called ``name`` (config field ``eval.solvers``); ValueError listing the valid names otherwise.

    A name in ``SCHEDULE_SOLVERS`` (``"ddim"``) needs the path's ``schedule``
    (``interpolants.schedule(config.loss.interpolant)``) and comes back with it bound, so it has
    the usual ``(velocity_fn, x0, nfe, **kw)`` signature; ``get("ddim")`` without one raises
    ValueError. Solvers of ``NAMES`` do not use a schedule and ignore it, so a sweep may pass the
    schedule for every name. Those of ``EDM_SOLVERS`` read a velocity of the linear path only: given a
    schedule, they raise ValueError unless it is (t, 1 - t) (``loss.interpolant = "linear"``); so do the LMM
    samplers (``"lmm:<indices>"``, ``"lmm_euler:<indices>"``), which come back with their indices bound.
    """
    _check_name(name)
    if name in EDM_SOLVERS or parse_lmm(name):
        if schedule is not None and not _is_linear(schedule):
            raise ValueError(
                f"Solver {name!r} (config field eval.solvers) recovers EDM's denoiser as y + (1 - t) v, which holds "
                "on the linear path only; train with loss.interpolant = 'linear' or choose another solver."
            )
        if parse_lmm(name):
            base, steps = parse_lmm(name)
            return functools.partial(lmm_sampler, steps=steps, stochastic=base == "lmm")
        return edm_heun if name == "edm_heun" else edm_euler
    if name in SCHEDULE_SOLVERS:
        if schedule is None:
            raise ValueError(
                f"Solver {name!r} (config field eval.solvers) needs the path's schedule: "
                f"integrators.get({name!r}, schedule=interpolants.schedule(config.loss.interpolant))."
            )
        return functools.partial(ddim, schedule=schedule)
    if name in LAST_EULER:
        return heun_euler_last
    return (euler, midpoint, heun, rk4, dopri5)[NAMES.index(name)]
