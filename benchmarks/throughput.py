"""Training throughput of the paper configs: the real train step (input pipeline, coupling, loss, update) on the
devices present. The script to run first on a GPU or TPU host.

    python benchmarks/throughput.py [--configs edm_cifar10:uncond,loom_cifar10,...] [--size auto|full|shrunk]
                                    [--steps 200] [--batch_size B] [--data mock|real] [--peak_tflops P]
                                    [--out benchmarks/results/throughput.json]

For each config: `flowjax.train.setup`, then `loop.make_advance_fn` (what `train` calls each step) for --steps
steps after the compile and --warmup steps, timed to the last step's completion. Reported: steps/s, examples/s,
the model FLOPs of one global step (XLA's cost analysis of the per-device step, forward, backward and update,
times the device count), the TFLOP/s they imply, the utilisation against --peak_tflops (the accelerator's peak at
the step's precision; left empty if not given, since it depends on the precision XLA picks), and the peak device
memory (what the backend reports; none on CPU).

``--size``: ``full`` is the config as it is; ``shrunk`` (the default on CPU, where a paper network takes minutes a
step) keeps each config's coupling, loss and layout with a one-level 8-channel UNet on 8 px and a batch of 2 per
device. ``--data mock`` (default) reads TFDS's mock examples through the real pipeline (no data set needed) and,
for configs trained on a teacher's pairs, random pairs of the right shape written to a temporary directory
(an LMM network starts from random weights: the same program); ``real`` reads the config's data.
With ``jax.distributed`` initialised by the caller (several processes), the numbers are those of the global step.
"""

import argparse
import contextlib
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks import common  # noqa: E402
from flowjax import train  # noqa: E402
from flowjax.data import dataset as datasets  # noqa: E402
from flowjax.data import images  # noqa: E402
from flowjax.data import pairs as pairs_io  # noqa: E402
from flowjax.train import lmm_stages, loop  # noqa: E402
from flowjax.train.step import AXIS  # noqa: E402

# One config per paper experiment that trains on images (the toys' steps are in benchmarks/toy.py).
CONFIGS = (
    "edm_cifar10:uncond",
    "edm_imagenet64",
    "loom_cifar10",
    "loom_imagenet64",
    "rf_cifar10",
    "dansm_cifar10:dm",
    "curvature_cifar10_a:10",
    "lmm_cifar10:uncond",
    "lmm_imagenet64",
)


def shrink(config, devices: int):
    """The config with a one-level UNet of 8 channels and no attention on 8 px (16 px for LMM, whose LPIPS-VGG
    needs them), an MLP encoder for a learned coupling, and 2 examples per device; its coupling, loss and layout
    are kept."""
    config.training.batch_size = 2 * devices
    config.data.image_size = 16 if config.loss.name == "lines" else 8
    config.model.base_channels, config.model.channel_mults, config.model.num_res_blocks = 8, (1,), 1
    config.model.attention_resolutions = ()
    if not str(config.model.get("preset", "")).startswith("edm_"):  # flowjax's UNet: bottleneck attention, 8 wide
        config.model.head_channels = 8
    if config.coupling.name == "encoder":
        config.coupling.encoder_name, config.coupling.encoder_hidden = "mlp", (16,)
    if config.coupling.get("match_size"):
        config.coupling.match_size = min(config.coupling.match_size, 12)  # 12 mocked images make a pool
    return config


def random_pairs(config, directory: str) -> None:
    """Random pairs shaped as the config's teacher would write them (labels for a conditional model); the
    manifest records the teacher's data (lmm.teacher's config, CIFAR-10 for another config on pairs) at the
    config's image size, which LMM's adversarial stage reads as its real images."""
    teacher = config.get("lmm", {}).get("teacher") or ""
    data = common.load_config(teacher).data.to_dict() if teacher else {"name": "cifar10", "source": "normal"}
    if config.data.image_size:
        data["image_size"] = config.data.image_size
    side = config.data.image_size or {"imagenet64": 64, "afhq64": 64}.get(data["name"], 32)
    shape, n, classes = [side, side, 3], max(64, config.training.batch_size), datasets.model_classes(config)
    rng = np.random.default_rng(0)
    x0, x1 = rng.standard_normal((2, n, *shape)).astype(np.float32)
    labels = np.arange(n) % max(classes, 1)
    manifest = {"num_pairs": n, "shape": shape, "shard_size": n, "data": data}
    if classes:
        manifest["num_classes"] = classes
    pairs_io.write_pairs(directory, lambda a, b: (x0[a:b], x1[a:b], *([labels[a:b]] if classes else [])), manifest)


def flops_per_step(config, exp, batch, stage: int) -> float | None:
    """XLA's FLOP count of one global step: the per-device step lowered on one device's share, times the
    device count (None where the backend gives no count)."""
    step = loop._step_fn(config, exp, stage=stage)
    per_device = lambda tree: jax.tree.map(lambda a: jax.ShapeDtypeStruct((1,) + np.shape(a), a.dtype), tree)
    one_device = lambda tree: jax.tree.map(lambda a: jax.ShapeDtypeStruct((1,) + np.shape(a)[1:], a.dtype), tree)
    args = [per_device(exp.state), one_device(batch), jax.random.PRNGKey(0)]
    if exp.frozen is not None:
        args.append(per_device(exp.frozen))
    in_axes = (0, 0, None, 0)[: len(args)]
    lowered = jax.jit(jax.vmap(step, axis_name=AXIS, in_axes=in_axes)).lower(*args)
    cost = lowered.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops = (cost or {}).get("flops")
    return None if flops is None else float(flops) * jax.device_count()


def measure(name: str, config, steps: int, warmup: int, stage: int = 1) -> dict:
    exp = train.setup(config)
    start = config.lmm.adversarial_from if stage == 2 else 0
    config = loop.with_steps_per_call(config, 1)  # one step per call: the step's own rate
    advance = loop.make_advance_fn(config, exp)
    batch, _ = train.make_batch_fn(config, exp, real=exp.real if stage == 2 else None)(start)
    state = loop.replicate(exp.state)
    try:
        compile_start = time.perf_counter()
        state, _, _ = advance(state, start)
        jax.block_until_ready(state)
        compile_s = time.perf_counter() - compile_start
        for step in range(start + 1, start + 1 + warmup):
            state, _, _ = advance(state, step)
        jax.block_until_ready(state)
        timed = time.perf_counter()
        for step in range(start + 1 + warmup, start + 1 + warmup + steps):
            state, metrics, _ = advance(state, step)
        jax.block_until_ready(state)
        elapsed = time.perf_counter() - timed
    finally:
        advance.close()
    loss = float(jax.device_get(metrics["loss"])[0])
    rate = steps / elapsed
    flops = flops_per_step(config, exp, batch, stage)
    memory = jax.local_devices()[0].memory_stats() or {}
    params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(exp.state.params))
    return {
        "config": name + (" (adversarial stage)" if stage == 2 else ""),
        "params": params,
        "batch": config.training.batch_size,
        "compile_s": compile_s,
        "steps_per_s": rate,
        "examples_per_s": rate * config.training.batch_size,
        "gflops_per_step": None if flops is None else flops / 1e9,
        "tflops_per_s": None if flops is None else flops * rate / 1e12,
        "peak_memory_gib": memory.get("peak_bytes_in_use", 0) / 2**30 or None,
        "loss": loss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated config names (file:arg)")
    parser.add_argument("--size", choices=("auto", "full", "shrunk"), default="auto", help="auto: shrunk on CPU")
    parser.add_argument("--steps", type=int, default=200, help="timed steps per config")
    parser.add_argument("--warmup", type=int, default=3, help="steps after the compile, before the timing")
    parser.add_argument("--batch_size", type=int, default=0, help="global batch (0: the config's, or shrunk's)")
    parser.add_argument("--data", choices=("mock", "real"), default="mock")
    parser.add_argument("--peak_tflops", type=float, default=0.0, help="the accelerators' peak, all devices")
    common.add_out_argument(parser, "throughput")
    args = parser.parse_args()
    size = args.size if args.size != "auto" else ("shrunk" if jax.default_backend() == "cpu" else "full")
    rows = []
    for name in args.configs.split(","):
        with contextlib.ExitStack() as stack:
            config = common.load_config(name)
            if size == "shrunk":
                config = shrink(config, jax.device_count())
            if args.batch_size:
                config.training.batch_size = args.batch_size
            if config.loss.name == "lines":
                config.lmm.from_teacher = False  # random weights: the same program as the teacher's
            if args.data == "mock":
                if datasets.kind(config.data) == "pairs":
                    config.data.data_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="flowjax-pairs-"))
                    random_pairs(config, config.data.data_dir)
                stack.enter_context(images.mock_tfds())
            stages = (1, 2) if lmm_stages.adversarial_stage(config) else (1,)
            for stage in stages:
                row = measure(name, config, args.steps, args.warmup, stage)
                if args.peak_tflops and row["tflops_per_s"] is not None:
                    row["utilisation"] = row["tflops_per_s"] / args.peak_tflops
                rows.append(row)
                print(
                    f"{row['config']}: {row['steps_per_s']:.2f} steps/s, {row['examples_per_s']:.1f} examples/s, "
                    f"{row['gflops_per_step'] or float('nan'):.3f} GFLOP/step, compile {row['compile_s']:.1f} s",
                    flush=True,
                )
    columns = ["config", "params", "batch", "steps_per_s", "examples_per_s", "gflops_per_step", "tflops_per_s"]
    columns += ["utilisation"] * bool(args.peak_tflops) + ["peak_memory_gib", "compile_s"]
    formats = {"params": "M", "batch": "int", "steps_per_s": ".2f", "examples_per_s": ".1f", "compile_s": "seconds"}
    formats.update(gflops_per_step=".3f", tflops_per_s=".4f", utilisation=".1%", peak_memory_gib=".2f")
    title = f"Train-step throughput ({size} configs, {jax.device_count()} {jax.devices()[0].device_kind} devices)"
    settings = {"size": size, "steps": args.steps, "warmup": args.warmup, "data": args.data}
    common.write(args.out, "throughput", [common.table("throughput", title, columns, rows, formats)], 1, settings)


if __name__ == "__main__":
    main()
