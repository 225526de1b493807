"""PyTorch + POT reference timing for benchmarks/toy.py: OT-CFM and I-CFM, 8 Gaussians -> two moons.

    pip install torch pot
    python benchmarks/toy_torch_reference.py [--steps 1200] [--timed 1000]
                                             [--out benchmarks/results/toy_torch_reference.json]

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
"""

import argparse
import math
import os
import sys
import time

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


def run(coupling: str, steps: int, timed: int, seed: int = 0) -> float:
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = MLP()
    ema = [p.detach().clone() for p in model.parameters()]
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8)
    start = None
    for step in range(steps):
        if step == steps - timed:
            start = time.perf_counter()
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
    if not math.isfinite(loss.item()):
        raise RuntimeError(f"{coupling}: loss is {loss.item()}")
    return timed / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--timed", type=int, default=1000, help="last steps that are timed")
    common.add_out_argument(parser, "toy_torch_reference")
    args = parser.parse_args()
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
