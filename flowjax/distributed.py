"""Multi-process runs on JAX's own runtime (`jax.distributed`): one process per host (a TPU pod's workers, a Slurm
job's tasks), each driving its local devices, the train step's collectives spanning every device of every process.

`initialize` is called by main.py before JAX touches a device. ``mode``:

- ``"auto"`` (default): initialise when the coordinator is given (``coordinator_address``, ``num_processes``,
  ``process_id``, or JAX's ``JAX_COORDINATOR_ADDRESS``) or the environment is a launcher's step of several
  processes (`launched_processes`); otherwise a run stays one process and `jax.distributed` is never called.
- ``"on"``: always initialise; JAX finds the coordinator itself on a Cloud TPU VM, under Slurm or Open MPI
  (launch/tpu_pod.sh and launch/slurm.sh pass it).
- ``"off"``: never.

Everything else in flowjax reads ``jax.process_index()`` / ``jax.process_count()``: with one process they are
0 and 1, and the code paths are those of a single host.
"""

from __future__ import annotations

import os

import jax
import numpy as np

MODES = ("auto", "on", "off")


def launched_processes(environ: dict | None = None) -> int:
    """How many processes the environment's launcher started for this step: ``srun`` (SLURM_STEP_NUM_TASKS) or
    Open MPI's ``mpirun`` (OMPI_COMM_WORLD_SIZE); 1 if neither. An sbatch script's own shell is not a step of
    several tasks (only srun sets SLURM_STEP_NUM_TASKS), so ``python main.py`` typed in an allocation stays one
    process instead of waiting for peers that never come."""
    env = os.environ if environ is None else environ
    for name in ("SLURM_STEP_NUM_TASKS", "OMPI_COMM_WORLD_SIZE"):
        try:
            count = int(env.get(name, "1"))
        except ValueError:
            continue
        if count > 1:
            return count
    return 1


def initialize(
    mode: str = "auto",
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    environ: dict | None = None,
) -> bool:
    """Initialises `jax.distributed` as ``mode`` says (module docstring); returns whether it did. Call it before
    anything else uses JAX's devices. Raises ValueError for an unknown mode or an incomplete or inconsistent set
    of the three coordinator values (naming the flags)."""
    if mode not in MODES:
        raise ValueError(f"Unknown --distributed={mode!r}; choose one of {MODES}.")
    given = {
        "--coordinator_address": coordinator_address,
        "--num_processes": num_processes,
        "--process_id": process_id,
    }
    explicit = any(v is not None for v in given.values())
    if mode == "off":
        if explicit:
            raise ValueError(f"--distributed=off with {', '.join(k for k, v in given.items() if v is not None)}.")
        return False
    if explicit:
        missing = [k for k, v in given.items() if v is None]
        if missing:
            raise ValueError(
                f"A multi-process run needs --coordinator_address, --num_processes and --process_id together; "
                f"{', '.join(missing)} missing (e.g. --coordinator_address=host0:1234 --num_processes=2 "
                "--process_id=0 on the first host)."
            )
        if num_processes < 1 or not 0 <= process_id < num_processes:
            raise ValueError(f"--process_id={process_id} must be in [0, --num_processes={num_processes}).")
    env = os.environ if environ is None else environ
    if mode == "auto" and not explicit and not env.get("JAX_COORDINATOR_ADDRESS") and launched_processes(env) == 1:
        return False
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
    return True


def is_primary() -> bool:
    """Whether this is the process that writes the run's own files (config.json, events, eval/, manifests)."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Every process waits here until all have reached ``name`` (nothing with one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def global_mesh() -> jax.sharding.Mesh:
    """Every device of every process on one axis."""
    return jax.sharding.Mesh(np.array(jax.devices()), ("devices",))


def to_global(tree):
    """A tree of this process's arrays, equal on every process, as arrays replicated over every device of every
    process (what orbax saves in a multi-process run: a host-local array cannot be). With one process: ``tree``."""
    if jax.process_count() == 1:
        return tree
    sharding = jax.sharding.NamedSharding(global_mesh(), jax.sharding.PartitionSpec())

    def one(x):
        x = np.asarray(x)
        return jax.make_array_from_single_device_arrays(
            x.shape, sharding, [jax.device_put(x, d) for d in jax.local_devices()]
        )

    return jax.tree.map(one, tree)


def global_template(tree):
    """``tree``'s arrays as abstract arrays replicated over every device (the restore target of `to_global`'s
    saves); with one process: ``tree``."""
    if jax.process_count() == 1:
        return tree
    sharding = jax.sharding.NamedSharding(global_mesh(), jax.sharding.PartitionSpec())
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=sharding), tree)


def to_local(tree):
    """Replicated global arrays back as this process's own (on its first local device); with one process:
    ``tree``."""
    if jax.process_count() == 1:
        return tree
    return jax.tree.map(lambda x: x.addressable_data(0) if isinstance(x, jax.Array) else x, tree)


def stacked(local) -> np.ndarray:
    """``local`` (an array of the same shape and dtype on every process) of every process, stacked in process
    order: [process_count, ...]; with one process: ``local[None]``."""
    local = np.asarray(local)
    if jax.process_count() == 1:
        return local[None]
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(local, tiled=False))


def my_share(n: int) -> range:
    """The items of ``range(n)`` this process takes when n items are shared among the processes: a contiguous
    block, the first ``n % process_count`` processes taking one more (process 0 takes the first items)."""
    count, index = jax.process_count(), jax.process_index()
    base, extra = divmod(n, count)
    start = index * base + min(index, extra)
    return range(start, start + base + (index < extra))


def gather_shares(local, n: int) -> np.ndarray:
    """Every process's `my_share` of ``n`` items (``local``: this process's rows [len(my_share(n)), ...]) as the
    whole [n, ...], on every process; with one process: ``local``."""
    local = np.asarray(local)
    count = jax.process_count()
    if count == 1:
        return local
    block = -(-n // count)  # blocks differ by at most one row: pad each to the largest
    padded = np.zeros((block,) + local.shape[1:], local.dtype)
    padded[: local.shape[0]] = local
    sizes = [n // count + (p < n % count) for p in range(count)]
    return np.concatenate([rows[:size] for rows, size in zip(stacked(padded), sizes)])
