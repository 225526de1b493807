"""k-rectification (reflow) and one-step distillation: pairs of a trained flow, and training on them.

Rectified flow (Liu et al. 2023, "Flow straight and fast"): the k-rectified flow is trained on the
pairs (Z0, Z1) of the (k-1)-rectified flow, Z1 the solution of its ODE started at fresh noise Z0.

    python main.py --config=configs/icfm_8gaussians_moons.py --workdir=runs/rf1                # 1-RF
    python main.py --config=configs/icfm_8gaussians_moons.py --workdir=runs/rf1 --mode=pairs   # its pairs
    python main.py --config=configs/reflow_8gaussians_moons.py --workdir=runs/rf2 \\
        --config.data.data_dir=runs/rf1/pairs                                                   # 2-RF

Pairs of a 2-RF workdir give 3-RF, and so on; pairs of a LOOM-CFM teacher give LOOM + reflow. Training
on pairs is ``data.name = "pairs"`` with the independent coupling (the stored pairs are the coupling).
``loss.time_sampler = "zero"`` trains at t = 0 only: the paper's one-step distillation with the L2
loss (its LPIPS variant is not implemented).

Pair i's noise is drawn from ``fold_in(PRNGKey(pairs.seed), i)``, so every shard depends on its pair
indices only: generation is deterministic and resumable (`flowjax.data.pairs.write_pairs`). A
class-conditional teacher (``model.num_classes`` = K > 0) samples pair i with class ``i % K``
(`flowjax.data.dataset.class_labels`: as even over the classes as the evaluation's, and a function of i alone),
stored with the pair; a student with ``model.num_classes`` = K trains on them with their labels.

Compact pairs (`flowjax.data.pairs`): ``pairs.store_noise = False`` writes no x0, since pair i's noise is a
pure function of i; the manifest records ``"noise": "regenerated"`` (and ``noise_check``), and readers draw it
again from the manifest's ``seed`` and teacher ``data`` (its ``data.source``), checked to be the teacher's
``noise_one`` before any pair is integrated. ``pairs.dtype = "float16"`` writes x1 (and a stored x0) in half
precision; readers get float32. 4M ImageNet-64 pairs: 393 GB as float32 x0 and x1, 98 GB with both.
"""

from __future__ import annotations

import copy
import os
import time
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from absl import logging

from flowjax import distributed, evaluate, integrators
from flowjax.data import dataset as datasets
from flowjax.data import pairs as pairs_io


def output_dir(config: ml_collections.ConfigDict, workdir: str) -> str:
    return config.pairs.output_dir or os.path.join(workdir, "pairs")


def validate(config: ml_collections.ConfigDict) -> None:
    """The pairs.* settings (and the teacher's model.num_classes), before any work."""
    datasets.model_classes(config)
    p = config.pairs
    for field in ("num_pairs", "shard_size", "batch_size"):
        if not isinstance(p[field], int) or p[field] < 1:
            raise ValueError(f"pairs.{field} must be a positive integer, got {p[field]!r}.")
    sched = evaluate.path_schedule(config)
    integrators.get(p.solver, schedule=sched)  # raises on an unknown solver name
    if p.solver != "dopri5" and not integrators.valid_nfe(p.solver, p.nfe):
        raise ValueError(f"pairs.nfe={p.nfe} is not a valid number of evaluations for pairs.solver={p.solver!r}.")
    if p.get("dtype", "float32") not in pairs_io.DTYPES:
        raise ValueError(f"pairs.dtype must be one of {pairs_io.DTYPES}, got {p.dtype!r}.")
    if not isinstance(p.get("store_noise", True), bool):
        raise ValueError(f"pairs.store_noise must be True or False, got {p.store_noise!r}.")


pair_noise = pairs_io.pair_noise  # the noise of pairs ``indices``: pair i from ``fold_in(PRNGKey(seed), i)``


def target_data(data: ml_collections.ConfigDict | dict) -> dict:
    """The data config of the distribution a run models: its own, or for ``data.name = "pairs"`` the
    teacher's, read from the pairs' manifest (recursively, so 3-RF finds the 1-RF's data)."""
    data = data.to_dict() if isinstance(data, ml_collections.ConfigDict) else dict(data)
    if datasets.kind(data) == "pairs":
        return dict(pairs_io.read_manifest(data["data_dir"]).get("data") or {})
    return data


def evaluation_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The config the evaluation sweep uses: for a run on pairs, ``data`` becomes the teacher's target
    data, so samples are compared with the same held-out set as the teacher's."""
    if datasets.kind(config.data) != "pairs":
        return config
    pairs_io.require_dir(config.data.data_dir)
    data = target_data(config.data)
    if not data:
        raise ValueError(
            f"The pairs in {config.data.data_dir} do not record their target data (manifest 'data'); "
            "evaluate them yourself with evaluate.sweep."
        )
    config = copy.deepcopy(config)
    with config.unlocked():  # the teacher's fields over the student's (a manifest may record only some)
        config.data = ml_collections.ConfigDict({**config.data.to_dict(), **data})
    return config


def generate_pairs(
    config: ml_collections.ConfigDict,
    velocity_fn: Callable,
    params,
    noise_one: Callable,
    out_dir: str,
    teacher: dict | None = None,
) -> str:
    """Writes ``pairs.num_pairs`` pairs (x0, x1 = ODE solution from x0 with pairs.solver / pairs.nfe) to
    ``out_dir``, resuming: only missing shards are generated. Returns ``out_dir``.

    ``teacher``: what produced the pairs (workdir, config file, checkpoint step, EMA or not), recorded
    in the manifest with the teacher's data config; pairs of another teacher step or other settings
    are refused (`pairs.write_pairs`).

    A class-conditional teacher (``model.num_classes`` = K > 0) integrates pair i with label
    `flowjax.data.dataset.class_labels` (i % K), passed as ``labels`` to the sampler (which calls
    ``velocity_fn(params, x, t, labels)``);
    the shards store the labels and the manifest records ``num_classes`` = K.

    ``pairs.dtype`` other than float32 is recorded as the manifest's ``dtype``; ``pairs.store_noise = False``
    as ``"noise": "regenerated"``: then ``noise_one`` must draw exactly what the noise of the manifest's ``data``
    draws (`flowjax.data.pairs.noise_regenerator`, which readers use), checked on the first pairs before any is
    integrated. The defaults add neither key, so directories written before they existed resume.
    """
    validate(config)
    classes = datasets.model_classes(config)
    p = config.pairs
    shape = tuple(int(d) for d in jax.eval_shape(noise_one, jax.random.PRNGKey(0)).shape)
    solve = evaluate.sampler(
        velocity_fn,
        p.solver,
        p.nfe,
        config.eval.dopri5_tol,
        evaluate.path_schedule(config),
        config.eval.t_end,
        evaluate.karras_options(config),  # used by the edm_* solvers only
    )
    noise = jax.jit(lambda idx: pair_noise(p.seed, noise_one, idx))

    def generate_shard(start: int, stop: int):
        x0s, x1s = [], []
        labels = datasets.class_labels(classes, np.arange(start, stop))
        for lo in range(start, stop, p.batch_size):  # chunks aligned to the shard: same work on resume
            hi = min(stop, lo + p.batch_size)
            x0 = noise(jnp.arange(lo, hi))
            x1, _ = solve(params, x0, None if labels is None else labels[lo - start : hi - start])
            x0s.append(np.asarray(x0))
            x1s.append(np.asarray(x1))
        if not classes:
            return np.concatenate(x0s), np.concatenate(x1s)
        return np.concatenate(x0s), np.concatenate(x1s), labels

    manifest = {
        "num_pairs": p.num_pairs,
        "shard_size": p.shard_size,
        "shape": list(shape),
        "seed": p.seed,
        "solver": p.solver,
        "nfe": None if p.solver == "dopri5" else p.nfe,
        "dopri5_tol": config.eval.dopri5_tol if p.solver == "dopri5" else None,
        "t_end": config.eval.t_end,
        "teacher": teacher or {},
        "data": target_data(config.data),
    }
    # Recorded only when they apply, so the manifest of pairs written before they existed stays the same and
    # those pairs resume.
    if p.solver in integrators.EDM_SOLVERS:  # the edm_* solvers step on the Karras schedule of eval.*
        manifest["karras"] = evaluate.karras_options(config)
    if classes:
        manifest["num_classes"] = classes
    if p.get("dtype", "float32") != "float32":
        manifest["dtype"] = p.dtype
    if not p.get("store_noise", True):
        manifest["noise"] = pairs_io.REGENERATED
        probe = np.arange(min(p.num_pairs, pairs_io.NOISE_CHECK_PAIRS))
        mine, readers = np.asarray(noise(jnp.asarray(probe))), pairs_io.noise_regenerator(manifest)(probe)
        if not pairs_io.same_bits(mine, readers):
            raise ValueError(
                "pairs.store_noise=False: readers would regenerate x0 from the recorded data config "
                f"(data.source={manifest['data'].get('source', 'normal')!r}), but the teacher's noise differs from "
                "it. Set --config.pairs.store_noise=True to store the noise."
            )
    shards = pairs_io.num_shards(p.num_pairs, p.shard_size)
    started = time.time()

    def progress(done: int, total: int, shard: int) -> None:
        elapsed = time.time() - started
        logging.info("Pairs: shard %d written (%d/%d shards done, %.1f s).", shard, done, total, elapsed)

    before = (
        len(pairs_io.missing_shards(out_dir, manifest))
        if os.path.isfile(os.path.join(out_dir, pairs_io.MANIFEST))
        else shards
    )
    logging.info(
        "Pairs: %d of %d shards of %d pairs to write to %s (%s, NFE %s).",
        before,
        shards,
        p.shard_size,
        out_dir,
        p.solver,
        manifest["nfe"] or "adaptive",
    )
    pairs_io.write_pairs(
        out_dir,
        generate_shard,
        manifest,
        progress=progress,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
        barrier=distributed.barrier,
    )
    return out_dir
