"""Training speed and few-step quality on 8 Gaussians -> two moons, per coupling.

    python benchmarks/toy.py [--steps 3000] [--couplings independent,exact_ot,sinkhorn]

MLP with 3 hidden layers of width 64, batch 256, Adam 1e-3, one device. Prints steps/s of the
pmapped train step (data sampling included, compilation excluded) and W2 (EMA parameters, 2,000
held-out points) at Euler NFE 1/2/4/8 after --steps steps.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import flax  # noqa: E402
import jax  # noqa: E402

from configs import quickstart  # noqa: E402
from flowjax import evaluate, train  # noqa: E402
from flowjax.data import toy2d  # noqa: E402

NAMES = {"independent": "I-CFM", "exact_ot": "OT-CFM (exact)", "sinkhorn": "OT-CFM (Sinkhorn)"}


def run(coupling: str, steps: int, timed: int) -> dict:
    config = quickstart.get_config()
    config.coupling.name = coupling
    config.training.num_steps = steps
    exp = train.setup(config)
    p_step = train.pmapped_train_step(config, exp)
    batch_fn = train.make_batch_fn(exp.data_fn, config.training.batch_size)
    key = jax.random.PRNGKey(config.training.seed)
    replicated = flax.jax_utils.replicate(exp.state)
    start = None
    for step in range(steps):
        if step == steps - timed:
            jax.block_until_ready(replicated)
            start = time.perf_counter()
        replicated, _ = p_step(replicated, batch_fn(jax.random.fold_in(key, step)), jax.random.fold_in(key, 10**9 + step))
    jax.block_until_ready(replicated)
    row = {"coupling": NAMES[coupling], "steps/s": timed / (time.perf_counter() - start)}
    params = flax.jax_utils.unreplicate(replicated).ema_params
    config.eval.solvers, config.eval.nfe = ("euler",), (1, 2, 4, 8)
    target = toy2d.test_set(config.data.name, config.eval.num_samples, seed=config.data.test_seed)
    rows, _ = evaluate.sweep(config, exp.apply_fn, params, evaluate.eval_noise(config, exp.source_one, len(target)), target)
    row.update({f"W2 NFE {r['nfe']}": r["w2"] for r in rows})
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--timed", type=int, default=1000, help="last steps that are timed")
    parser.add_argument("--couplings", default="independent,exact_ot,sinkhorn")
    args = parser.parse_args()
    rows = [run(c, args.steps, min(args.timed, args.steps - 1)) for c in args.couplings.split(",")]
    keys = list(rows[0])
    print(f"\n8gaussians -> moons, MLP 3x64, batch 256, {args.steps} steps, {jax.default_backend()} "
          f"({os.cpu_count()} cores), W2 on 2,000 held-out points (EMA)\n")
    print("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(f"{r[k]:.3f}" if "W2" in k else f"{r[k]:.0f}" if k == "steps/s" else r[k] for k in keys) + " |")


if __name__ == "__main__":
    main()
