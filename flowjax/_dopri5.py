"""The adaptive Dormand-Prince 5(4) loop behind `flowjax.integrators.dopri5` (use that; this module is private).

The Butcher tableau, the step-size control and the ``jax.lax.while_loop`` on a field ``f(x, t)`` with a scalar
time; `integrators.dopri5` documents the method, checks its arguments and builds ``f`` from a velocity function.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

_Field = Callable[[jax.Array, jax.Array], jax.Array]  # f(x, t) with a scalar t

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


def integrate(
    f: _Field,
    x0: jax.Array,
    t0: float,
    t1: float,
    rtol: float,
    atol: float,
    max_steps: int,
    return_path: bool,
) -> tuple[jax.Array, jax.Array] | tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """`integrators.dopri5` of the field ``f`` from a floating ``x0``; its returns, as documented there."""
    dtype = x0.dtype
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
        factor = jnp.where(err_norm == 0.0, _MAX_FACTOR, _SAFETY * err_norm**_ERR_EXPONENT)
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
