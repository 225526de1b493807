"""PyTorch + POT reference timing for benchmarks/toy.py: OT-CFM and I-CFM, 8 Gaussians -> two moons.

    pip install torch pot
    python benchmarks/toy_torch_reference.py [--steps 1200] [--timed 1000]
                                             [--out benchmarks/results/toy_torch_reference.json]
    python benchmarks/toy_torch_reference.py --end_to_end [--steps 2000]
                                             [--out benchmarks/results/toy_torch_reference_end_to_end.json]

This is a stand-alone reference point for the steps/s that benchmarks/toy.py reports, run on the same
machine; it is not part of flowjax and flowjax does not depend on torch or POT.

It is a plain eager PyTorch loop with the same setup as benchmarks/toy.py (configs/quickstart.py):
MLP velocity model v(x, t) on concat(x, t, 32 sinusoidal features of t at 16 frequencies from 1 to 100),
3 hidden layers of width 64 with SiLU; Adam 1e-3 with global-norm gradient clipping at 1.0; batch 256;
float32; an EMA copy of the parameters (decay 0.999) updated every step as flowjax's train step does.
Each OT-CFM step solves the exact minibatch OT problem with POT's network simplex (ot.emd) on the
squared Euclidean cost and pairs each target point with its planned source point (Tong et al. 2024).
I-CFM uses the independent pairing. Data sampling is inside the timed loop; the first
steps - timed steps are warm-up and are not timed. torch.set_num_threads is left at its default.
The result also goes to a JSON file (`--out`, see benchmarks/common.py).

--end_to_end is the reference for `benchmarks/toy.py --end_to_end`, with the same columns: OT-CFM for --steps
steps, then W2 at Euler NFE 1 (exact, POT's ot.emd2 on squared distances, 2,000 fresh moons points against the
samples of 2,000 fresh 8-Gaussians noise points); start-up is the time from the process's start (Linux:
/proc/self/stat) to the end of the first step, steps/s is over the steps after it, end-to-end is the time from
the process's start to the end of the evaluation.
"""

import os
import time


def _process_age() -> float:
    """Seconds since this process started (Linux: /proc/self/stat's starttime against /proc/uptime; else 0)."""
    try:
        with open("/proc/self/stat") as f:
            started_ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime
        with open("/proc/uptime") as f:
            return max(0.0, float(f.read().split()[0]) - started_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


# before torch's import: --end_to_end's start-up includes it, as flowjax's includes JAX's
_CLOCK_AT_IMPORT, _AGE_AT_IMPORT = time.perf_counter(), _process_age()

import argparse
import math
import sys

import numpy as np
import ot
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from benchmarks import common  # noqa: E402

BATCH = 256
DTYPE = torch.float32


def sample_8gaussians(n: int, gen: torch.Generator) -> torch.Tensor:
    angles = torch.randint(0, 8, (n,), generator=gen).to(DTYPE) * (2 * math.pi / 8)
    centres = 2 * math.sqrt(2) * torch.stack([torch.cos(angles), torch.sin(angles)], 1)
    return centres + (0.5 / math.sqrt(2)) * torch.randn(n, 2, generator=gen, dtype=DTYPE)


def sample_moons(n: int, gen: torch.Generator, noise: float = 0.2) -> torch.Tensor:
    """sklearn-style two moons (random split between the moons), scaled by 2 and centred, plus noise."""
    upper = torch.rand(n, generator=gen) < 0.5
    s = math.pi * torch.rand(n, generator=gen, dtype=DTYPE)
    x = torch.where(upper, torch.cos(s), 1 - torch.cos(s))
    y = torch.where(upper, torch.sin(s), 0.5 - torch.sin(s))
    pts = torch.stack([x, y], 1) - torch.tensor([0.5, 0.25], dtype=DTYPE)
    return 2 * pts + noise * torch.randn(n, 2, generator=gen, dtype=DTYPE)


class MLP(nn.Module):
    def __init__(self, dim: int = 2, hidden=(64, 64, 64), embed_dim: int = 32, max_freq: float = 100.0):
        super().__init__()
        self.register_buffer("freqs", torch.exp(torch.linspace(0.0, math.log(max_freq), embed_dim // 2, dtype=DTYPE)))
        layers, width = [], dim + 1 + embed_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.SiLU()]
            width = h
        layers.append(nn.Linear(width, dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        angles = t[:, None] * self.freqs[None, :]
        return self.net(torch.cat([x, t[:, None], torch.sin(angles), torch.cos(angles)], 1))


def exact_ot_pairing(x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    """Reorders x0 so that x0[i] is the source point the exact OT plan sends to x1[i]."""
    cost = (torch.cdist(x1, x0) ** 2).double().numpy()
    n = cost.shape[0]
    weights = np.full(n, 1.0 / n)
    plan = ot.emd(weights, weights, cost)  # [n, n]; a permutation / n for uniform weights
    return x0[torch.from_numpy(plan.argmax(1))]


def train(coupling: str, steps: int, seed: int = 0, before_step=lambda step: None):
    """``steps`` CFM steps (exact-OT or independent pairs) of the MLP; returns (model, its parameters, their EMA,
    the last loss). ``before_step(step)`` is called before each step (the timers hook in there)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = MLP()
    ema = [p.detach().clone() for p in model.parameters()]
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    for step in range(steps):
        before_step(step)
        x1 = sample_moons(BATCH, gen)
        x0 = sample_8gaussians(BATCH, gen)
        if coupling == "exact_ot":
            x0 = exact_ot_pairing(x0, x1)
        t = torch.rand(BATCH, generator=gen, dtype=DTYPE)
        xt = (1 - t[:, None]) * x0 + t[:, None] * x1
        loss = (model(xt, t) - (x1 - x0)).pow(2).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema, [p.detach() for p in params], 1 - 0.999)
    return model, params, ema, loss


def run(coupling: str, steps: int, timed: int, seed: int = 0) -> float:
    marks = {}
    _, _, _, loss = train(
        coupling, steps, seed, lambda step: marks.update(start=time.perf_counter()) if step == steps - timed else None
    )
    if not math.isfinite(loss.item()):
        raise RuntimeError(f"{coupling}: loss is {loss.item()}")
    return timed / (time.perf_counter() - marks["start"])


def since_start() -> float:
    return _AGE_AT_IMPORT + time.perf_counter() - _CLOCK_AT_IMPORT


def end_to_end(steps: int, seed: int = 0) -> dict:
    """OT-CFM for ``steps`` steps, then W2 at Euler NFE 1; the fields of benchmarks/toy.py --end_to_end."""
    marks = {}  # when the first step was done: the start-up, and the clock the steps/s are counted from

    def after_first(step: int) -> None:
        if step == 1:
            marks.update(first=since_start(), clock=time.perf_counter())

    model, params, ema, _ = train("exact_ot", steps, seed, after_first)
    first_step = marks.get("first", since_start())  # a single step: start-up is the whole training
    rate = (steps - 1) / (time.perf_counter() - marks["clock"]) if steps > 1 else None
    with torch.no_grad():  # the EMA parameters, as flowjax evaluates (eval.use_ema)
        for p, e in zip(params, ema):
            p.copy_(e)
        eval_gen = torch.Generator().manual_seed(seed + 1)
        target, x0 = sample_moons(2000, eval_gen), sample_8gaussians(2000, eval_gen)
        x1 = x0 + model(x0, torch.zeros(2000, dtype=DTYPE))  # one Euler step from t = 0 to 1
    cost = (torch.cdist(x1, target) ** 2).double().numpy()
    weights = np.full(2000, 1.0 / 2000)
    w2 = float(np.sqrt(ot.emd2(weights, weights, cost)))
    return {"start-up s": first_step, "steps/s": rate, "end-to-end s": since_start(), "W2 NFE 1": w2}


E2E_COLUMNS = ["implementation", "run", "start-up s", "steps/s", "end-to-end s", "W2 NFE 1"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="training steps (default 1200; 2000 --end_to_end)")
    parser.add_argument("--timed", type=int, default=1000, help="last steps that are timed")
    parser.add_argument("--end_to_end", action="store_true", help="start-up, steps/s, end-to-end time, W2 NFE 1")
    common.add_out_argument(parser, "toy_torch_reference")
    args = parser.parse_args()
    if args.end_to_end:
        steps = 2000 if args.steps is None else args.steps
        row = {"implementation": "PyTorch + POT (reference)", "run": "cold", **end_to_end(steps)}
        print(row)
        formats = {"start-up s": ".1f", "steps/s": ".0f", "end-to-end s": ".1f", "W2 NFE 1": ".3f"}
        t = common.table("toy_torch_reference_end_to_end", "PyTorch + POT end to end", E2E_COLUMNS, [row], formats)
        print(common.markdown(t))
        out = args.out.replace("toy_torch_reference.json", "toy_torch_reference_end_to_end.json")
        settings = {"steps": steps, "batch_size": BATCH, "torch": torch.__version__, "pot": ot.__version__}
        common.write(out, "toy_torch_reference_end_to_end", [t], seeds=1, settings=settings)
        return
    args.steps = 1200 if args.steps is None else args.steps
    timed = min(args.timed, args.steps - 1)
    ot_rate = run("exact_ot", args.steps, timed)
    icfm_rate = run("independent", args.steps, timed)
    print(
        f"torch {torch.__version__}, POT {ot.__version__}, numpy {np.__version__}, "
        f"torch.get_num_threads() = {torch.get_num_threads()} (default), {os.cpu_count()} cores; "
        f"batch {BATCH}, last {timed} of {args.steps} steps timed\n"
    )
    print(f"| PyTorch + POT (reference) | OT-CFM exact: {ot_rate:.0f} steps/s | I-CFM: {icfm_rate:.0f} steps/s |")
    columns = ["implementation", "OT-CFM (exact) steps/s", "I-CFM steps/s"]
    rows = [
        {"implementation": "PyTorch + POT (reference)", "OT-CFM (exact) steps/s": ot_rate, "I-CFM steps/s": icfm_rate}
    ]
    common.write(
        args.out,
        "toy_torch_reference",
        [
            common.table(
                "toy_torch_reference",
                "PyTorch + POT reference, 8 Gaussians -> moons",
                columns,
                rows,
                {"OT-CFM (exact) steps/s": ".0f", "I-CFM steps/s": ".0f"},
            )
        ],
        seeds=1,
        settings={
            "steps": args.steps,
            "timed_steps": timed,
            "batch_size": BATCH,
            "torch": torch.__version__,
            "pot": ot.__version__,
            "torch_threads": torch.get_num_threads(),
        },
    )


if __name__ == "__main__":
    main()
