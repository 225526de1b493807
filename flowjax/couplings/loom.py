"""LOOM-CFM (Davtyan et al., ICLR 2025): a persistent data-noise assignment, improved every minibatch.

Every training example i has ``num_caches`` noise cells; cell (i, k) holds the RNG seed of its
noise (4 bytes: Sec. 3.3), and the noise is regenerated from the seed when needed, never stored.
The seeds start as an independent random draw (a random pairing, tau_0 = Id over i.i.d. noise).

One step (Algorithm 1, Eqs. 9-10): the minibatch's examples ``index`` each pick one cache cell at
random; their current noises are regenerated; the exact assignment (Hungarian) between the data
and these noises is solved; the seeds are permuted accordingly and written back to the picked
cells; training uses the re-paired, already updated pairs. With K caches this is LOOM on the
K-fold duplicated dataset (Sec. 3.2): the seeds move between the picked cells, so the multiset of
all N*K seeds is preserved, not each cache column separately. The total cost over all cells never
increases (Theorem 1).

Matching scope under `pmap` (axis ``axis_name``): ``"device"`` solves each device's local
minibatch; ``"global"`` all-gathers the minibatch, solves one assignment (the same on every
device) and keeps the local slice, as the official code does across GPUs. Either way all devices
apply all write-backs, so the replicated state stays identical on every device.

Cost: ``"sqeuclidean"`` is the paper's ||x - z||^2 (Sec. 3.1); ``"euclidean"`` is ||x - z||, which
Appendix B and the released code use. They can pair differently.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from jax import lax

from flowjax.couplings import assignment
from flowjax.couplings.base import check_shapes, pairing_info


def init_state(key: jax.Array, num_train: int, num_caches: int = 1) -> dict:
    """``{"seeds": uint32[num_train, num_caches]}``, an independent random seed per cache cell."""
    if num_train < 1 or num_caches < 1:
        raise ValueError(f"LOOM needs data.num_train >= 1 and coupling.num_caches >= 1, got {num_train}, {num_caches}.")
    return {"seeds": jax.random.bits(key, (num_train, num_caches), jnp.uint32)}


def noise_from_seeds(seeds: jax.Array, noise_one: Callable) -> jax.Array:
    """Noise [n, ...] of seeds [n]: ``noise_one(PRNGKey(seed))``, a pure function of the seed."""
    return jax.vmap(lambda s: noise_one(jax.random.PRNGKey(s)))(seeds)


def total_cost(x1_all: jax.Array, seeds: jax.Array, noise_one: Callable, cost: str = "sqeuclidean") -> jax.Array:
    """Sum over all cells (i, k) of c(x1_all[i], noise(seeds[i, k])): the quantity of Theorem 1."""
    n, k = seeds.shape
    x0 = noise_from_seeds(seeds.reshape(-1), noise_one)
    x1 = jnp.repeat(x1_all.reshape(n, -1), k, axis=0)
    d = jnp.sum(jnp.square(x1 - x0.reshape(n * k, -1)), axis=1)
    return jnp.sum(d if cost == "sqeuclidean" else jnp.sqrt(d))


def couple(
    key: jax.Array,
    x0: jax.Array,
    x1: jax.Array,
    state: dict,
    *,
    index: jax.Array,
    noise_one: Callable,
    cost: str = "sqeuclidean",
    solver: str = "auto",
    reassign: bool = True,
    scope: str = "device",
    axis_name: str | None = None,
):
    """One LOOM step on data x1 [b, ...] with training-set indices ``index`` [b] (distinct).

    ``x0`` (fresh noise) only fixes the shape: LOOM's noise comes from the seeds. ``key`` picks the
    cache cell of each example (per example, from its index, so the draw does not depend on the
    number of devices). ``reassign=False`` keeps the initial random pairing (the paper's "fixed
    source, w/o reassignments" ablation). Returns (x0_paired, x1, new state, info).
    """
    check_shapes(x1, x0)
    seeds = state["seeds"]
    num_caches = seeds.shape[1]
    slot = jax.vmap(lambda i: jax.random.randint(jax.random.fold_in(key, i), (), 0, num_caches))(index)
    cell_seeds = seeds[index, slot]
    z = noise_from_seeds(cell_seeds, noise_one).astype(x1.dtype)
    if scope not in ("device", "global"):
        raise ValueError(f"Unknown coupling.scope {scope!r}; choose 'device' or 'global'.")
    gather = (lambda a: lax.all_gather(a, axis_name, tiled=True)) if axis_name is not None else (lambda a: a)
    if scope == "global" and axis_name is not None:
        x1_m, z_m, seeds_m, index_m, slot_m = map(gather, (x1, z, cell_seeds, index, slot))
    else:
        x1_m, z_m, seeds_m, index_m, slot_m = x1, z, cell_seeds, index, slot
    n = x1_m.shape[0]
    perm = (
        assignment.solve(assignment.cost_matrix(x1_m, z_m, cost), solver)
        if reassign
        else jnp.arange(n, dtype=jnp.int32)
    )
    z_paired, new_seeds = z_m[perm], seeds_m[perm]
    reassigned = jnp.mean((perm != jnp.arange(n)).astype(jnp.float32))
    if scope == "global" and axis_name is not None:
        b = x1.shape[0]
        z_local = lax.dynamic_slice_in_dim(z_paired, lax.axis_index(axis_name) * b, b)
        writes = (index_m, slot_m, new_seeds)  # already global: identical on every device
    else:
        z_local = z_paired
        writes = tuple(map(gather, (index_m, slot_m, new_seeds)))  # every device applies every write
    seeds = seeds.at[writes[0], writes[1]].set(writes[2])
    info = {**pairing_info(z, x1, z_local, x1), "coupling/reassigned": reassigned}
    return z_local, x1, {"seeds": seeds}, info
