"""Pairing time of every pool/minibatch coupling, and DANSM Table 2 on the digits.

    python benchmarks/couplings.py [--sizes 256,1024,10000] [--dims 2,3072] [--repeats 3]
        [--max-hungarian-n 10000] [--max-ott-n 1024] [--match-sizes 0,10,100,1000,1797]
        [--out benchmarks/results/couplings.json]

(a) Wall time per call, after compiling, median of ``--repeats`` calls (a call slower than 10 s
runs once), of pairing n data (N(0, I) + 1) with n noises (N(0, I)) in dimension d, the cost
matrix included: DANSM greedy (`couplings.dansm`), the exact assignment of Immiscible Diffusion
(`couplings.immiscible`) with solver "scipy" (host, `pure_callback`) and "ott" (in-graph),
one LOOM-CFM step on a minibatch of n (noise regenerated from seeds, exact assignment, seeds
written back), OT-CFM's Sinkhorn (`couplings.minibatch_ot.sinkhorn`, default relative epsilon, pairs drawn from
the plan), and as reference plain `scipy.optimize.linear_sum_assignment` on the precomputed cost.

(b) DANSM Table 2 on scikit-learn's 1,797 digits (8x8, scaled to [-1, 1]) paired with N(0, I)
noise from a fixed key, with the streaming greedy semantics of DANSM Algorithm 1: the data in a
fixed shuffled order is cut into consecutive groups of ``match_size`` points, each matched greedily
against its own fresh pool of as many noises (the last group and its pool may be smaller, so every
noise is used once); match size 0 is the random pairing (baseline); plus the exact assignment on
the whole set. path_stats on all 1,797 paths: d_min here is over 1,797 paths, not 50K as in the
paper's CIFAR-10 row, so it is smaller (fewer neighbours) and not comparable in value. t* is in
this codebase's direction (t = 1 data); the paper's t* is 1 minus it.

Both tables also go to a JSON file (`--out`, see benchmarks/common.py): times in seconds, a skipped
cell as the reason it was skipped.
"""

import argparse
import functools
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import scipy.optimize  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

from benchmarks import common  # noqa: E402
from flowjax.couplings import assignment, dansm, immiscible, loom, minibatch_ot  # noqa: E402
from flowjax.metrics import paths  # noqa: E402

SLOW_S = 10.0  # a call slower than this is timed once


def _median_time(call, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(call())
        times.append(time.perf_counter() - start)
        if times[-1] > SLOW_S:
            break
    return statistics.median(times)


def _time_jitted(fn, args, repeats: int) -> float:
    compiled = jax.jit(fn).lower(*args).compile()  # compile without running (a run may take minutes)
    return _median_time(lambda: compiled(*args), repeats)


_fmt = common.format_seconds


TIMING_COLUMNS = [
    "n",
    "d",
    "cost matrix",
    "dansm greedy",
    "immiscible (scipy)",
    "immiscible (ott)",
    "loom step (scipy)",
    "sinkhorn",
    "scipy LSA, cost given",
]


def timing_table(
    sizes: list[int], dims: list[int], repeats: int, max_hungarian_n: int, max_ott_n: int, key: jax.Array
) -> list[dict]:
    """Prints table (a) row by row (a row at n = 10,000 can take minutes); returns its rows (seconds, or
    the reason a cell was skipped)."""
    lines = ["| " + " | ".join(TIMING_COLUMNS) + " |", "|" + "---|" * len(TIMING_COLUMNS)]
    print("\n".join(lines), flush=True)
    ott_seconds = {}  # d -> (n, seconds) of the largest ott run, to estimate skipped sizes
    rows = []
    for d in dims:
        for n in sizes:
            k1, k0, ks = jax.random.split(jax.random.fold_in(key, n * 10_007 + d), 3)
            x1 = jax.random.normal(k1, (n, d)) + 1.0
            x0 = jax.random.normal(k0, (n, d))
            jax.block_until_ready((x1, x0))
            row = {"n": n, "d": d}
            row["cost matrix"] = _time_jitted(assignment.pairwise_sqeuclidean, (x1, x0), repeats)
            row["dansm greedy"] = _time_jitted(dansm.greedy_pairing, (x1, x0), repeats)
            if n <= max_hungarian_n:
                row["immiscible (scipy)"] = _time_jitted(
                    functools.partial(immiscible.pairing, solver="scipy"), (x1, x0), repeats
                )
            else:
                row["immiscible (scipy)"] = "skipped (n > --max-hungarian-n)"
            if n <= max_ott_n:
                seconds = _time_jitted(functools.partial(immiscible.pairing, solver="ott"), (x1, x0), repeats)
                ott_seconds[d] = (n, seconds)
                row["immiscible (ott)"] = seconds
            elif d in ott_seconds:
                m, seconds = ott_seconds[d]
                row["immiscible (ott)"] = (
                    f"skipped (O(n^3): {_fmt(seconds)} at n={m:,}, ~{_fmt(seconds * (n / m) ** 3)} here)"
                )
            else:
                row["immiscible (ott)"] = "skipped (n > --max-ott-n)"
            if n <= max_hungarian_n:  # one LOOM step on a batch of n: noise from seeds, assignment, write-back
                state = loom.init_state(ks, n, 1)
                step = lambda a, st: loom.couple(
                    ks, a, a, st, index=jnp.arange(n), solver="scipy", noise_one=lambda k: jax.random.normal(k, (d,))
                )[2]
                row["loom step (scipy)"] = _time_jitted(step, (x1, state), repeats)
            else:
                row["loom step (scipy)"] = "skipped (n > --max-hungarian-n)"
            row["sinkhorn"] = _time_jitted(lambda k, a, b: minibatch_ot.sinkhorn(k, a, b)[0], (ks, x0, x1), repeats)
            if n <= max_hungarian_n:
                cost = np.asarray(assignment.pairwise_sqeuclidean(x1, x0), np.float64)
                row["scipy LSA, cost given"] = _median_time(lambda: scipy.optimize.linear_sum_assignment(cost), repeats)
            else:
                row["scipy LSA, cost given"] = "skipped (n > --max-hungarian-n)"
            cells = [f"{n:,}", f"{d:,}"] + [v if isinstance(v, str) else _fmt(v) for v in list(row.values())[2:]]
            print("| " + " | ".join(cells) + " |", flush=True)
            rows.append(row)
    return rows


def streaming_greedy(x1: jax.Array, x0: jax.Array, match_size: int) -> np.ndarray:
    """DANSM Algorithm 1 over a stream: consecutive groups of match_size data, each with its own noise pool."""
    n = x1.shape[0]
    if match_size == 0:
        return np.arange(n)
    perm = np.empty(n, np.int64)
    for start in range(0, n, match_size):
        stop = min(start + match_size, n)
        perm[start:stop] = start + np.asarray(dansm.greedy_pairing(x1[start:stop], x0[start:stop]))
    return perm


PATH_COLUMNS = ["pairing", "length", "d_avg", "d_min", "t*_avg", "t*_min"]


def digits_table(match_sizes: list[int], key: jax.Array) -> tuple[list[str], list[dict]]:
    """Table (b): its Markdown lines and its rows."""
    k_order, k_noise = jax.random.split(key)
    images = jnp.asarray(load_digits().data, jnp.float32) / 8.0 - 1.0
    x1 = images[jax.random.permutation(k_order, images.shape[0])]  # the stream order
    x0 = jax.random.normal(k_noise, x1.shape)
    pairings = [(f"greedy, ms = {m}" if m else "random (baseline)", streaming_greedy(x1, x0, m)) for m in match_sizes]
    pairings += [
        (f"Hungarian ({c}), all", np.asarray(immiscible.pairing(x1, x0, cost=c, solver="scipy")))
        for c in immiscible.COSTS
    ]
    lines = ["| " + " | ".join(PATH_COLUMNS) + " |", "|" + "---|" * len(PATH_COLUMNS)]
    rows = []
    for name, perm in pairings:
        s = paths.path_stats(x0[perm], x1)
        rows.append(
            {
                "pairing": name,
                "length": float(s["length"]),
                "d_avg": float(s["d_avg"]),
                "d_min": float(s["d_min"]),
                "t*_avg": float(s["t_avg"]),
                "t*_min": float(s["t_min"]),
            }
        )
        lines.append(
            f"| {name} | {s['length']:.3f} | {s['d_avg']:.3f} | {s['d_min']:.3f} | "
            f"{s['t_avg']:.3f} | {s['t_min']:.3f} |"
        )
    return lines, rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256,1024,10000", help="pool sizes n, comma separated")
    parser.add_argument("--dims", default="2,3072", help="dimensions d, comma separated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-hungarian-n", type=int, default=10_000, help="skip scipy's assignment above this n")
    parser.add_argument("--max-ott-n", type=int, default=1024, help="skip ott's in-graph Hungarian above this n")
    parser.add_argument("--match-sizes", default="0,10,100,1000,1797", help="table (b); 0 = random pairing")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-timing", action="store_true", help="print only table (b)")
    common.add_out_argument(parser, "couplings")
    args = parser.parse_args()
    key = jax.random.PRNGKey(args.seed)
    env = f"{jax.default_backend()}, {os.cpu_count()} cores"
    tables = []
    if not args.skip_timing:
        print(f"\n(a) Pairing time per call, cost matrix included ({env}); data N(0, I) + 1, noise N(0, I)\n")
        sizes = [int(s) for s in args.sizes.split(",")]
        dims = [int(s) for s in args.dims.split(",")]
        rows = timing_table(sizes, dims, args.repeats, args.max_hungarian_n, args.max_ott_n, jax.random.fold_in(key, 1))
        tables.append(
            common.table(
                "pairing_time",
                "pairing time per call, cost matrix included",
                TIMING_COLUMNS,
                rows,
                {"n": "int", "d": "int"} | {c: "seconds" for c in TIMING_COLUMNS[2:]},
            )
        )
    print(
        f"\n(b) DANSM Table 2 on the 1,797 digits in [-1, 1] with N(0, I) noise (seed {args.seed}); "
        "t* with t = 1 at the data\n"
    )
    lines, rows = digits_table([int(m) for m in args.match_sizes.split(",")], jax.random.fold_in(key, 2))
    print("\n".join(lines))
    tables.append(
        common.table("dansm_table2_digits", "inter-path distances of digit-noise pairings", PATH_COLUMNS, rows)
    )
    common.write(
        args.out,
        "couplings",
        tables,
        seeds=1,
        settings={
            "sizes": args.sizes,
            "dims": args.dims,
            "repeats": args.repeats,
            "max_hungarian_n": args.max_hungarian_n,
            "max_ott_n": args.max_ott_n,
            "match_sizes": args.match_sizes,
            "seed": args.seed,
            "skip_timing": args.skip_timing,
            "num_digits": len(load_digits().data),
        },
    )


if __name__ == "__main__":
    main()
