"""EDM: the preconditioned denoiser, its loss weight, noise-level sampler and samplers of Karras et al. (2022).

"Elucidating the Design Space of Diffusion-Based Generative Models" (Karras, Aittala, Aila & Laine 2022)
works on the variance-exploding (VE) path x_sigma = x1 + sigma x0 (x1 data, x0 ~ N(0, I)) with a
denoiser D(x, sigma) ~ E[x1 | x_sigma = x]. Its probability-flow ODE (Sec. 2, Eq. 1 and 3 with
sigma(t) = t, s(t) = 1) is

    dx/dsigma = (x - D(x, sigma)) / sigma,

integrated from sigma_max down to 0 on the noise levels of Eq. 5 (`karras_sigmas`) by Algorithm 1
(`heun`; `euler` is its first-order variant). Everything here is a pure, jittable function of arrays;
``sigma`` has shape [B] (one noise level per example) and broadcasts against x [B, ...].

On flowjax's time axis (t = 0 noise, t = 1 data)
------------------------------------------------
Divide the VE state by 1 + sigma: y = x_sigma / (1 + sigma) = x1 / (1 + sigma) + sigma x0 / (1 + sigma).
With t = 1 / (1 + sigma), i.e. sigma = (1 - t) / t, this is y = t x1 + (1 - t) x0, flowjax's linear
interpolant (`interpolants.linear`): VE lines in (sigma, x) are straight lines in (t, y), sigma = inf
is t = 0 and sigma = 0 is t = 1 (`to_flow`). With y = t x and dsigma/dt = -1/t^2 the ODE above becomes

    dy/dt = x + t dx/dt = x - (x - D(x, sigma)) / (sigma t) = (D(x, sigma) - y) / (1 - t)
          = (D(y (1 + sigma), sigma) - y) (1 + sigma) / sigma,

using sigma t = 1 - t. `velocity` evaluates this field, so an EDM model runs under every flowjax
integrator and metric. Because the path is the linear one, the data prediction behind a velocity,
`predictions.denoise`(velocity_fn, interpolants.schedule("linear")), is x1_hat = y + (1 - t) v = D(x, sigma):
this is how `integrators.edm_heun` and `integrators.edm_euler` get a denoiser from any flowjax
velocity field, a flow-matching model included.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

# EDM's defaults (Sec. 3 and Table 1): the sampler's noise range and the exponent of Eq. 5.
SIGMA_MIN, SIGMA_MAX, RHO = 0.002, 80.0, 7.0
# Training noise levels ln(sigma) ~ N(P_MEAN, P_STD^2) (Table 1, "Ours", training).
P_MEAN, P_STD = -1.2, 1.2

DenoiseFn = Callable[[jax.Array, jax.Array], jax.Array]


def _bcast(c: jax.Array, x: jax.Array) -> jax.Array:
    """Reshapes c (scalar or [B]) to broadcast against x [B, ...]."""
    return jnp.reshape(c, c.shape + (1,) * (x.ndim - c.ndim))


def _float_dtype(dtype: Any) -> np.dtype:
    """``dtype`` as a NumPy dtype; ValueError if JAX would silently narrow it (float64 without jax_enable_x64)."""
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):
        raise ValueError(f"EDM samplers run in a floating dtype, got {dtype}.")
    if jax.dtypes.canonicalize_dtype(dtype) != dtype:
        raise ValueError(
            f"dtype={dtype.name} needs 64-bit floats in JAX, which are off: run under `with jax.enable_x64(True):` "
            "or set jax.config.update('jax_enable_x64', True) before any array is created."
        )
    return dtype


def _check_steps(num_steps: int) -> int:
    if isinstance(num_steps, bool) or not isinstance(num_steps, (int, np.integer)) or num_steps < 1:
        raise ValueError(f"num_steps must be a static Python int ≥ 1, got {num_steps!r}.")
    return int(num_steps)


def karras_sigmas(
    num_steps: int,
    sigma_min: float = SIGMA_MIN,
    sigma_max: float = SIGMA_MAX,
    rho: float = RHO,
    dtype: Any = jnp.float32,
) -> jax.Array:
    """The noise levels of EDM's sampler (Eq. 5), shape [num_steps + 1], decreasing from sigma_max to 0.

    sigma_i = (sigma_max^(1/rho) + i / (N - 1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho for i < N and
    sigma_N = 0: uniform steps in sigma^(1/rho), which with rho = 7 concentrates the steps at low noise
    (Sec. 3, "Discretization and higher-order integrators"). N = 1 gives [sigma_max, 0], as EDM's code,
    whose i / (N - 1) is 0 / 0 there.
    ValueError unless num_steps is an int ≥ 1, or for float64 without jax_enable_x64.
    """
    n = _check_steps(num_steps)
    dtype = _float_dtype(dtype)
    # Python numbers (the usual case) are computed in float64 and rounded once, like EDM's float64 grid;
    # traced ones in ``dtype``.
    xp, work = (
        (np, np.float64)
        if all(isinstance(v, (int, float, np.number)) for v in (sigma_min, sigma_max, rho))
        else (jnp, dtype)
    )
    if n == 1:
        return jnp.asarray([sigma_max, 0.0], dtype)
    a = xp.asarray(sigma_max, work) ** (1.0 / rho)
    b = xp.asarray(sigma_min, work) ** (1.0 / rho)
    frac = xp.arange(n, dtype=work) / (n - 1)
    return jnp.concatenate([jnp.asarray((a + frac * (b - a)) ** rho, dtype), jnp.zeros((1,), dtype)])


def precondition(sigma: jax.Array, sigma_data: float) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """EDM's preconditioning (Table 1, "Ours"; derived in Appendix B.6): (c_skip, c_out, c_in, c_noise).

    c_skip = sd^2 / (s^2 + sd^2), c_out = s sd / sqrt(s^2 + sd^2), c_in = 1 / sqrt(s^2 + sd^2) and
    c_noise = ln(s) / 4, with sd = sigma_data, the data's standard deviation. c_in gives the network an
    input of unit variance; c_skip minimises c_out, and c_out gives the network's training target
    F = (x1 - c_skip x) / c_out unit variance, for data of variance sd^2. Each has sigma's shape.
    """
    sigma = jnp.asarray(sigma)
    s2, sd2 = jnp.square(sigma), sigma_data**2
    root = jnp.sqrt(s2 + sd2)
    return sd2 / (s2 + sd2), sigma * sigma_data / root, 1.0 / root, 0.25 * jnp.log(sigma)


def denoiser(net_fn: Callable[..., jax.Array], sigma_data: float) -> Callable[..., jax.Array]:
    """EDM's preconditioned denoiser (Eq. 7): D(params, x, sigma, **kw) = c_skip x + c_out F.

    F = net_fn(params, c_in x, c_noise, **kw), with the coefficients of `precondition`.

    ``net_fn(params, x, t, **kw)`` is the raw network (flowjax's ``apply_fn`` call shape): it gets
    c_in x and c_noise = ln(sigma) / 4 of shape [B] in the place of t. ``sigma`` is [B] or a scalar
    (broadcast to [B]) and is cast to x's dtype; ``kw`` (e.g. ``y=labels``, ``train=...``,
    ``rngs=...``) is passed to ``net_fn`` unchanged. Returns x1_hat, shape and dtype of x.
    """

    def fn(params: Any, x: jax.Array, sigma: jax.Array, **kw: Any) -> jax.Array:
        sigma = jnp.broadcast_to(jnp.asarray(sigma, x.dtype), x.shape[:1])
        c_skip, c_out, c_in, c_noise = precondition(sigma, sigma_data)
        out = net_fn(params, _bcast(c_in, x) * x, c_noise, **kw)
        return _bcast(c_skip, x) * x + _bcast(c_out, x) * out.astype(x.dtype)

    return fn


def loss_weight(sigma: jax.Array, sigma_data: float) -> jax.Array:
    """lambda(sigma) = (s^2 + sd^2) / (s sd)^2 = 1 / c_out^2 (EDM Table 1, "Ours").

    In EDM's Eq. 8 the network's own error ||F_theta - F||^2 carries the effective weight lambda c_out^2;
    this choice (Sec. 5, "Loss weighting") sets it to 1 at every noise level.
    """
    sigma = jnp.asarray(sigma)
    return (jnp.square(sigma) + sigma_data**2) / jnp.square(sigma * sigma_data)


def sample_sigma(key: jax.Array, n: int, p_mean: float = P_MEAN, p_std: float = P_STD) -> jax.Array:
    """Training noise levels, ln sigma ~ N(p_mean, p_std^2) (EDM Table 1, "Ours"), shape [n]."""
    return jnp.exp(p_mean + p_std * jax.random.normal(key, (n,)))


def _sample(
    second_order: bool,
    denoise_fn: DenoiseFn,
    z: jax.Array,
    num_steps: int,
    sigma_min: float,
    sigma_max: float,
    rho: float,
    return_path: bool,
    dtype: Any,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    """EDM's deterministic sampler on the grid of `karras_sigmas`; see `heun` and `euler`."""
    n = _check_steps(num_steps)
    z = jnp.asarray(z)
    if not jnp.issubdtype(z.dtype, jnp.floating):
        z = z.astype(jnp.result_type(float))
    in_dtype = z.dtype
    work = _float_dtype(in_dtype if dtype is None else dtype)
    sigmas = karras_sigmas(n, sigma_min, sigma_max, rho, work)
    batch = z.shape[0]

    def d(x: jax.Array, s: jax.Array) -> jax.Array:
        """dx/dsigma = (x - D(x, s)) / s; the network sees x and sigma [B] in the input's dtype."""
        return (x - denoise_fn(x.astype(in_dtype), jnp.full((batch,), s, in_dtype)).astype(work)) / s

    def step(x: jax.Array, s: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array | None]:
        s_cur, s_next = s
        d_cur = d(x, s_cur)
        x_next = x + (s_next - s_cur) * d_cur
        if second_order:  # Algorithm 1's 2nd-order (trapezoidal) correction
            x_next = x + (s_next - s_cur) * (0.5 * d_cur + 0.5 * d(x_next, s_next))
        return x_next, (x_next if return_path else None)

    x_start = z.astype(work) * sigmas[0]
    # Algorithm 1 corrects only where sigma_{i+1} != 0: every step but the last, whose d' would divide by 0.
    n_full = n - 1 if second_order else n
    x, xs = jax.lax.scan(step, x_start, (sigmas[:n_full], sigmas[1 : n_full + 1]))
    if second_order:
        x = x + (sigmas[n] - sigmas[n - 1]) * d(x, sigmas[n - 1])
    if not return_path:
        return x
    path = jnp.concatenate([x_start[None], xs] + ([x[None]] if second_order else []), axis=0)
    return x, path


def heun(
    denoise_fn: DenoiseFn,
    z: jax.Array,
    num_steps: int,
    *,
    sigma_min: float = SIGMA_MIN,
    sigma_max: float = SIGMA_MAX,
    rho: float = RHO,
    return_path: bool = False,
    dtype: Any = None,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    """EDM's deterministic 2nd-order sampler (Algorithm 1 with S_churn = 0) from the noise z ~ N(0, I).

    x_0 = sigma_max z on the N + 1 levels sigma_i of `karras_sigmas`; each step takes
    d = (x_i - D(x_i, sigma_i)) / sigma_i and the Euler prediction x' = x_i + (sigma_{i+1} - sigma_i) d;
    for i < N - 1 it then corrects with d' = (x' - D(x', sigma_{i+1})) / sigma_{i+1} to
    x_{i+1} = x_i + (sigma_{i+1} - sigma_i) (d + d') / 2. The last step, to sigma = 0, stays Euler,
    so it returns D(x_{N-1}, sigma_{N-1}) up to round-off. NFE = 2N - 1.

    This is not flowjax's `integrators.heun`, which corrects every step (the last included) on a grid
    uniform in t; `integrators.edm_heun` runs this sampler on a flowjax velocity field.

    ``denoise_fn(x [B, ...], sigma [B]) -> x1_hat``, with params and labels closed over, e.g.
    ``lambda x, s: D(params, x, s)`` of `denoiser`. ``num_steps`` = N, a static int ≥ 1.
    ``dtype=jnp.float64`` runs the sampler's arithmetic in float64, as EDM's code does
    (generate.py, ``edm_sampler``), while the network is still called with x and sigma in z's float
    dtype; it needs jax_enable_x64 (ValueError otherwise). The default (None) computes in z's dtype.

    Returns x at sigma = 0, shape of z, in the sampler's dtype; with ``return_path`` also
    the states at sigma_0 .. sigma_N, shape [N + 1, B, ...] (path[-1] = x). Jittable (one lax.scan)
    once denoise_fn, num_steps, return_path and dtype are fixed.
    """
    return _sample(True, denoise_fn, z, num_steps, sigma_min, sigma_max, rho, return_path, dtype)


def euler(
    denoise_fn: DenoiseFn,
    z: jax.Array,
    num_steps: int,
    *,
    sigma_min: float = SIGMA_MIN,
    sigma_max: float = SIGMA_MAX,
    rho: float = RHO,
    return_path: bool = False,
    dtype: Any = None,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    """`heun`'s grid with first-order steps only (NFE = N).

    x_{i+1} = x_i + (sigma_{i+1} - sigma_i) (x_i - D(x_i, sigma_i)) / sigma_i for i < N. Each step is
    x_{i+1} = D + (sigma_{i+1} / sigma_i)(x_i - D), i.e. deterministic DDIM (Song, Meng & Ermon 2021,
    Eq. 12) on the VE path: EDM's Table 1 ("iDDPM + DDIM" column) has DDIM as Euler's method with
    sigma(t) = t and s(t) = 1. Arguments, dtype and returns as `heun`'s.
    """
    return _sample(False, denoise_fn, z, num_steps, sigma_min, sigma_max, rho, return_path, dtype)


def velocity(
    denoise_fn: DenoiseFn, sigma_min: float = SIGMA_MIN, sigma_max: float = SIGMA_MAX
) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """The EDM model as a flowjax velocity field ``(y, t) -> v`` on the linear path (derived in the module docstring).

    v = (D(y (1 + sigma), sigma) - y) (1 + sigma) / sigma with sigma = (1 - t) / t clipped to
    [sigma_min, sigma_max]. The clip reads t < 1 / (1 + sigma_max) as sigma_max, so flowjax's noise z at
    t = 0 stands for the VE state (1 + sigma_max) z ~ sigma_max z, where EDM's sampler starts; and it
    reads t > 1 / (1 + sigma_min) as sigma_min, so a solver may evaluate at t = 1 without 0 / 0.
    Between the two, `predictions.denoise` with the linear schedule returns y + (1 - t) v = D exactly.
    ``denoise_fn(x, sigma [B]) -> x1_hat`` as for `heun`; t is [B] or a scalar.
    """
    t_lo, t_hi = 1.0 / (1.0 + sigma_max), 1.0 / (1.0 + sigma_min)

    def fn(y: jax.Array, t: jax.Array) -> jax.Array:
        t = jnp.clip(jnp.broadcast_to(jnp.asarray(t, y.dtype), y.shape[:1]), t_lo, t_hi)
        sigma = jnp.clip((1.0 - t) / t, sigma_min, sigma_max)
        s = _bcast(sigma, y)
        return (denoise_fn(y * (1.0 + s), sigma).astype(y.dtype) - y) * (1.0 + s) / s

    return fn


def to_flow(x: jax.Array, sigma: jax.Array) -> tuple[jax.Array, jax.Array]:
    """A VE state x at noise level sigma ([B] or scalar) as flowjax's (y, t).

    t = 1 / (1 + sigma), shape [B], and y = x / (1 + sigma) (module docstring).
    """
    sigma = jnp.broadcast_to(jnp.asarray(sigma, x.dtype), x.shape[:1])
    return x / _bcast(1.0 + sigma, x), 1.0 / (1.0 + sigma)
