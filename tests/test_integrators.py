"""Tests of flowjax.integrators: exactness, convergence order, NFE bookkeeping, dopri5, jit/shapes.

Float64 tests use the ``x64`` fixture (the ``jax.enable_x64`` context), so other test modules in
the same pytest process keep float32.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flowjax import integrators

OMEGA = 2.0 * np.pi
ORDERS = {"euler": 1.0, "midpoint": 2.0, "heun": 2.0, "rk4": 4.0}


@pytest.fixture
def x64():
    """Runs the test with 64-bit floats enabled, restoring the previous setting afterwards."""
    with jax.enable_x64(True):
        yield


def _bcast(t: jax.Array, x: jax.Array) -> jax.Array:
    return t.reshape(t.shape + (1,) * (x.ndim - 1))


def forced_decay(x: jax.Array, t: jax.Array) -> jax.Array:
    """dx/dt = -x + sin(2 pi t): state- and time-dependent, linear."""
    return -x + jnp.sin(OMEGA * _bcast(t, x))


def forced_decay_exact(x0: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """Closed-form solution of `forced_decay` from x(0) = x0."""
    t = np.asarray(t, dtype=np.float64)
    t = t.reshape(t.shape + (1,) * np.ndim(x0))
    forced = (np.sin(OMEGA * t) - OMEGA * np.cos(OMEGA * t) + OMEGA * np.exp(-t)) / (1.0 + OMEGA**2)
    return np.asarray(x0) * np.exp(-t) + forced


def _x0(shape: tuple[int, ...] = (3, 2)) -> jax.Array:
    return jax.random.normal(jax.random.PRNGKey(0), shape)


# 1. exactness -------------------------------------------------------------------------------


def test_one_euler_step_is_exact_for_constant_field():
    x0 = _x0((4, 3))
    c = jax.random.normal(jax.random.PRNGKey(1), (4, 3))
    x1 = integrators.euler(lambda x, t: c, x0, 1)
    np.testing.assert_allclose(x1, x0 + c, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", integrators.FIXED_STEP)
def test_one_step_constant_field_and_time_window(name):
    """Constant field over [t0, t1] = [0.25, 0.75] moves x by (t1 - t0) c with the fewest evaluations."""
    x0 = _x0((4, 3))
    c = jax.random.normal(jax.random.PRNGKey(1), (4, 3))
    x1 = integrators.get(name)(lambda x, t: c, x0, integrators.stages(name), t0=0.25, t1=0.75)
    np.testing.assert_allclose(x1, x0 + 0.5 * c, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "name, nfe, field, increment",
    [
        ("euler", 4, lambda t: t, 0.375),  # left Riemann sum of t over 4 cells
        ("midpoint", 2, lambda t: 2.0 * t, 1.0),  # midpoint rule, exact for linear integrands
        ("heun", 2, lambda t: 2.0 * t, 1.0),  # trapezoid rule, exact for linear integrands
        ("midpoint", 2, lambda t: 3.0 * t**2, 0.75),  # midpoint rule: 3 (1/2)^2
        ("heun", 2, lambda t: 3.0 * t**2, 1.5),  # trapezoid: (0 + 3) / 2, no Euler final step
        ("rk4", 4, lambda t: 4.0 * t**3, 1.0),  # Simpson's rule, exact for cubics
    ],
)
def test_time_only_fields_give_quadrature_rules(name, nfe, field, increment):
    """For v = g(t) each solver reduces to a known quadrature rule: checks stage times and weights."""
    x0 = _x0()
    x1 = integrators.get(name)(lambda x, t: jnp.broadcast_to(_bcast(field(t), x), x.shape), x0, nfe)
    np.testing.assert_allclose(x1, x0 + increment, rtol=1e-6, atol=1e-6)


# 2. convergence order -----------------------------------------------------------------------


@pytest.mark.parametrize("name", integrators.FIXED_STEP)
def test_empirical_order_of_convergence(name, x64):
    x0 = np.array([[1.0, -0.5], [2.0, 0.3]])
    exact = forced_decay_exact(x0, 1.0)
    steps = np.array([8, 16, 32, 64])
    solver = integrators.get(name)
    errors = [
        np.max(np.abs(np.asarray(solver(forced_decay, jnp.asarray(x0), int(n) * integrators.stages(name))) - exact))
        for n in steps
    ]
    slope = np.polyfit(np.log(1.0 / steps), np.log(errors), 1)[0]
    assert abs(slope - ORDERS[name]) < 0.3, (name, slope, errors)


# 3. NFE bookkeeping -------------------------------------------------------------------------


def _counting(velocity_fn, times: list[float], traces: list[int]):
    """Wraps velocity_fn: counts traces, and records t[0] of every runtime call via a callback."""

    def wrapped(x, t):
        traces.append(1)
        jax.debug.callback(lambda tt: times.append(float(tt[0])), t)
        return velocity_fn(x, t)

    return wrapped


def _expected_times(name: str, nfe: int) -> np.ndarray:
    """Stage times of ``name`` on the uniform grid of [0, 1] with nfe evaluations."""
    n = nfe // integrators.stages(name)
    h = 1.0 / n
    offsets = {"euler": [0.0], "midpoint": [0.0, 0.5], "heun": [0.0, 1.0], "rk4": [0.0, 0.5, 0.5, 1.0]}[name]
    return np.sort([(i + o) * h for i in range(n) for o in offsets])


@pytest.mark.parametrize("name", integrators.FIXED_STEP)
def test_fixed_step_uses_exactly_nfe_evaluations(name):
    nfe = 12
    times, traces = [], []
    x0 = _x0()
    x1, path = integrators.get(name)(_counting(forced_decay, times, traces), x0, nfe, return_path=True)
    jax.effects_barrier()
    assert len(times) == nfe  # runtime evaluations
    assert len(traces) == integrators.stages(name)  # the scan body calls velocity_fn `stages` times
    np.testing.assert_allclose(np.sort(times), _expected_times(name, nfe), atol=1e-6)
    assert path.shape == (nfe // integrators.stages(name) + 1,) + x0.shape
    np.testing.assert_array_equal(path[0], x0)
    np.testing.assert_array_equal(path[-1], x1)


def test_path_states_are_the_grid_states():
    """path[k] of an 8-step Euler run equals a k-step run over [0, k/8]."""
    x0 = _x0()
    _, path = integrators.euler(forced_decay, x0, 8, return_path=True)
    np.testing.assert_allclose(path[3], integrators.euler(forced_decay, x0, 3, t1=3 / 8), rtol=1e-5, atol=1e-6)


def test_dopri5_reports_the_evaluations_it_made():
    times, traces = [], []
    x1, nfe = integrators.dopri5(_counting(forced_decay, times, traces), _x0(), rtol=1e-4, atol=1e-4)
    jax.effects_barrier()
    assert nfe.dtype == jnp.int32 and nfe.shape == ()
    assert len(times) == int(nfe)
    assert int(nfe) % 6 == 2  # 2 to start (FSAL stage + initial-step probe), 6 per attempted step
    assert all(0.0 <= t <= 1.0 for t in times)


# 4. validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, nfe",
    [
        ("euler", 0),
        ("euler", -1),
        ("midpoint", 0),
        ("midpoint", 3),
        ("heun", 3),
        ("heun", -2),
        ("rk4", 0),
        ("rk4", 2),
        ("rk4", 6),
    ],
)
def test_invalid_nfe_raises(name, nfe):
    assert not integrators.valid_nfe(name, nfe)
    with pytest.raises(ValueError, match=rf"{name} needs .* got {nfe}"):
        integrators.get(name)(forced_decay, _x0(), nfe)


def test_nfe_helpers():
    assert [integrators.stages(n) for n in integrators.FIXED_STEP] == [1, 2, 2, 4]
    assert integrators.valid_nfe("euler", 1) and integrators.valid_nfe("heun", 4)
    assert integrators.valid_nfe("rk4", 8) and not integrators.valid_nfe("rk4", 10)
    assert not integrators.valid_nfe("euler", 2.0)
    assert not integrators.valid_nfe("dopri5", 6)
    with pytest.raises(ValueError, match="adaptive"):
        integrators.stages("dopri5")
    with pytest.raises(TypeError, match="static Python int"):
        integrators.euler(forced_decay, _x0(), 2.0)
    with pytest.raises(ValueError, match="heun needs an even nfe ≥ 2 \\(2 evaluations per step\\), got 3"):
        integrators.heun(forced_decay, _x0(), 3)


def test_get():
    assert [integrators.get(n) for n in integrators.NAMES] == [
        integrators.euler,
        integrators.midpoint,
        integrators.heun,
        integrators.rk4,
        integrators.dopri5,
    ]
    with pytest.raises(ValueError, match="dopri5"):
        integrators.get("rk45")
    with pytest.raises(ValueError, match="euler"):
        integrators.valid_nfe("leapfrog", 2)


# 5. dopri5 ----------------------------------------------------------------------------------


def test_dopri5_meets_tolerance_and_nfe_grows(x64):
    x0 = np.array([[1.0, -0.5], [2.0, 0.3]])
    exact = forced_decay_exact(x0, 1.0)
    nfes = []
    for tol in (1e-3, 1e-6, 1e-9):
        x1, nfe = integrators.dopri5(forced_decay, jnp.asarray(x0), rtol=tol, atol=tol)
        assert x1.dtype == jnp.float64
        assert np.max(np.abs(np.asarray(x1) - exact)) <= 10 * tol
        assert int(nfe) % 6 == 2
        nfes.append(int(nfe))
    assert nfes[0] < nfes[1] < nfes[2]


def test_dopri5_path(x64):
    x0 = np.array([[1.0, -0.5], [2.0, 0.3]])
    max_steps = 50
    x1, nfe, ts, path = integrators.dopri5(
        forced_decay, jnp.asarray(x0), rtol=1e-6, atol=1e-6, max_steps=max_steps, return_path=True
    )
    ts, path = np.asarray(ts), np.asarray(path)
    assert ts.shape == (max_steps + 1,) and path.shape == (max_steps + 1,) + x0.shape
    last = int(np.argmax(ts == 1.0))  # index of the last accepted step
    assert ts[last] == 1.0 and 1 < last < max_steps
    assert np.all(np.diff(ts[: last + 1]) > 0) and np.all(ts[last:] == 1.0)
    assert last <= (int(nfe) - 2) // 6  # accepted steps ≤ attempted steps
    np.testing.assert_array_equal(path[0], x0)
    np.testing.assert_array_equal(path[last:], np.broadcast_to(np.asarray(x1), path[last:].shape))
    np.testing.assert_allclose(path, forced_decay_exact(x0, ts), atol=1e-5)  # accepted states on track


def test_dopri5_stops_at_max_steps(x64):
    x0 = np.array([[1.0, -0.5], [2.0, 0.3]])
    x1, nfe, ts, path = integrators.dopri5(
        forced_decay, jnp.asarray(x0), rtol=1e-9, atol=1e-9, max_steps=3, return_path=True
    )
    assert int(nfe) == 2 + 6 * 3
    assert 0.0 < float(ts[-1]) < 1.0
    np.testing.assert_array_equal(path[-1], x1)
    np.testing.assert_allclose(x1, forced_decay_exact(x0, float(ts[-1])), atol=1e-7)


@pytest.mark.parametrize("name", ["rk4", "dopri5"])
def test_backward_integration_inverts_forward(name, x64):
    x0 = jnp.asarray([[1.0, -0.5], [2.0, 0.3]])
    if name == "dopri5":
        solve = lambda x, t0, t1: integrators.dopri5(forced_decay, x, t0=t0, t1=t1, rtol=1e-8, atol=1e-8)[0]
    else:
        solve = lambda x, t0, t1: integrators.rk4(forced_decay, x, 64, t0=t0, t1=t1)
    x1 = solve(x0, 0.0, 1.0)
    np.testing.assert_allclose(x1, forced_decay_exact(np.asarray(x0), 1.0), atol=1e-6)
    np.testing.assert_allclose(solve(x1, 1.0, 0.0), x0, atol=1e-6)


# 6. jit, image shapes, dtypes ----------------------------------------------------------------


@pytest.mark.parametrize("name", integrators.NAMES)
def test_jit_with_image_batch(name):
    """Rank-4 x [B, 2, 3, 3] under jit; velocity_fn sees t of shape [B] in x's dtype."""
    batch = 2
    x0 = _x0((batch, 2, 3, 3))

    def velocity(x, t):
        assert t.shape == (batch,) and t.dtype == x.dtype == jnp.float32
        return -_bcast(t, x) * x  # x(t) = x0 exp(-t^2 / 2)

    if name == "dopri5":
        run = jax.jit(lambda x: integrators.dopri5(velocity, x, rtol=1e-5, atol=1e-5)[0])
    else:
        run = jax.jit(lambda x: integrators.get(name)(velocity, x, 16))
    x1 = run(x0)
    assert x1.shape == x0.shape and x1.dtype == jnp.float32
    tol = {"euler": 5e-2, "midpoint": 2e-3, "heun": 2e-3}.get(name, 1e-4)
    np.testing.assert_allclose(x1, x0 * np.exp(-0.5), atol=tol)
