"""Host assignment time with and without `assignment.column_order`, on the costs the couplings build.

    python benchmarks/assignment.py [--n 256] [--problems 40] [--repeats 5] [--out benchmarks/results/assignment.json]

For each family, ``--problems`` cost matrices ``cost_matrix(x1, x0)`` (rows: data x1, columns:
noise x0, float32, as `couplings.exact_ot` builds them) are solved one after another on one core by
the host solver of `assignment.solve` (`_scipy_perm`: row and column reduction, then scipy's
`linear_sum_assignment`), once on the cost as built and once with its columns in
`assignment.column_order` (computed beforehand, as the compiled step does). Prints the median over
``--repeats`` passes of the time per problem and checks that both find assignments of equal cost.
Families: the 2-D toys (8 Gaussians -> moons training set, N(0, I) -> checkerboard, N(0, I) ->
circles), scikit-learn's digits (64-d) and smooth random 32x32x3 images (3072-d) against N(0, I).
The table also goes to a JSON file (`--out`, see benchmarks/common.py); its seed count is the number
of random problems per family.
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

from benchmarks import common  # noqa: E402
from flowjax.couplings import assignment  # noqa: E402
from flowjax.data import toy2d  # noqa: E402


def families(key: jax.Array) -> dict:
    """name -> (noise sampler (key, n) -> x0, data sampler (key, n) -> x1)."""

    def subset(data):
        return lambda k, n: data[jax.random.choice(k, data.shape[0], (n,), replace=False)]

    normal = lambda d: lambda k, n: jax.random.normal(k, (n, d))
    moons = toy2d.train_set("moons", 10_000, seed=0)
    digits = jnp.asarray(load_digits().data, jnp.float32) / 8.0 - 1.0
    coarse = jax.random.normal(key, (2_000, 8, 8, 3))  # 8x8 noise upsampled to 32x32: smooth images
    images = jnp.clip(0.5 * jnp.repeat(jnp.repeat(coarse, 4, 1), 4, 2), -1, 1).reshape(2_000, -1)
    return {
        "8 Gaussians -> moons (2-d)": (toy2d.get_sampler("8gaussians"), subset(moons)),
        "N(0, I) -> checkerboard (2-d)": (normal(2), toy2d.get_sampler("checkerboard")),
        "N(0, I) -> circles (2-d)": (normal(2), toy2d.get_sampler("circles")),
        "N(0, I) -> digits (64-d)": (normal(64), subset(digits)),
        "N(0, I) -> smooth images (3072-d)": (normal(3072), subset(images)),
    }


def per_problem_ms(costs: list, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for c in costs:
            assignment._scipy_perm(c)
        times.append((time.perf_counter() - start) / len(costs) * 1e3)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--problems", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    common.add_out_argument(parser, "assignment")
    args = parser.parse_args()
    results = []
    build = jax.jit(lambda x1, x0: (lambda c: (c, assignment.column_order(c)))(assignment.cost_matrix(x1, x0)))
    print(f"n = {args.n}, {args.problems} problems, one core, median of {args.repeats} passes\n")
    print("| costs | as built | columns in column_order | ratio |\n|---|---|---|---|")
    for f, (name, (noise, data)) in enumerate(families(jax.random.PRNGKey(1)).items()):
        plain, ordered = [], []
        for i in range(args.problems):
            k0, k1 = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(f), i))
            cost, cols = map(np.asarray, build(data(k1, args.n), noise(k0, args.n)))
            plain.append(cost)
            ordered.append(np.ascontiguousarray(cost[:, cols]))
            rows = np.arange(args.n)
            a, b = assignment._scipy_perm(cost), cols[assignment._scipy_perm(ordered[-1])]
            assert np.isclose(cost[rows, a].sum(), cost[rows, b].sum(), rtol=1e-6), name
        t_plain, t_ordered = per_problem_ms(plain, args.repeats), per_problem_ms(ordered, args.repeats)
        print(f"| {name} | {t_plain:.2f} ms | {t_ordered:.2f} ms | {t_ordered / t_plain:.2f} |", flush=True)
        results.append(
            {"costs": name, "as built": t_plain, "columns in column_order": t_ordered, "ratio": t_ordered / t_plain}
        )
    columns = ["costs", "as built", "columns in column_order", "ratio"]
    common.write(
        args.out,
        "assignment",
        [
            common.table(
                "assignment",
                "host assignment time per problem",
                columns,
                results,
                {"as built": "ms", "columns in column_order": "ms", "ratio": ".2f"},
            )
        ],
        seeds=args.problems,
        settings={"n": args.n, "problems": args.problems, "repeats": args.repeats},
    )


if __name__ == "__main__":
    main()
