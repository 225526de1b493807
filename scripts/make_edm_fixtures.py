"""Write the test fixtures of EDM's networks from EDM's own code (needs PyTorch and an NVlabs/edm checkout).

    python scripts/make_edm_fixtures.py --edm_dir=/path/to/edm [--out_dir=tests/fixtures]

Builds ``training.networks.EDMPrecond`` with the options of each released network (NVlabs/edm README,
"exact training configurations", and ``train.py``'s ``--arch`` settings, restated below) and writes
``edm_<preset>_keys.json``: the ``state_dict()`` key names and shapes, which of them are buffers, and the
parameter count (``sum(p.numel() for p in net.parameters())``). These are what
``scripts/convert_edm_weights.py`` checks a released network against, without PyTorch.

It also writes the same for two tiny networks (``edm_tiny_{ddpmpp,adm}_keys.json``) and
``edm_tiny_reference.npz``: the tiny networks' outputs on fixed inputs, with weights drawn by
`seeded_state_dict` (the tests draw the same weights and compare flowjax's forward pass to these outputs).
flowjax never imports this script (the tests import its `seeded_state_dict`); it is here so that the
fixtures can be remade and checked.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

# EDM's train.py: --arch=ddpmpp and --arch=adm network kwargs; --augment > 0 adds augment_dim=9.
DDPMPP = dict(
    model_type="SongUNet",
    embedding_type="positional",
    encoder_type="standard",
    decoder_type="standard",
    channel_mult_noise=1,
    resample_filter=[1, 1],
    model_channels=128,
    channel_mult=[2, 2, 2],
)
ADM = dict(model_type="DhariwalUNet", model_channels=192, channel_mult=[1, 2, 3, 4])

# preset -> (released pickle, resolution, label_dim, network kwargs), from the README's table.
RELEASED = {
    "edm_ddpmpp_cifar10": ("edm-cifar10-32x32-cond-vp.pkl", 32, 10, {**DDPMPP, "dropout": 0.13, "augment_dim": 9}),
    "edm_ddpmpp_cifar10_uncond": (
        "edm-cifar10-32x32-uncond-vp.pkl",
        32,
        0,
        {**DDPMPP, "dropout": 0.13, "augment_dim": 9},
    ),
    "edm_ddpmpp_afhqv2_64": (
        "edm-afhqv2-64x64-uncond-vp.pkl",
        64,
        0,
        {**DDPMPP, "channel_mult": [1, 2, 2, 2], "dropout": 0.25, "augment_dim": 9},
    ),
    "edm_adm_imagenet64": ("edm-imagenet-64x64-cond-adm.pkl", 64, 1000, {**ADM, "dropout": 0.10}),
}

# Tiny networks for the functional tests: two levels (so up/down blocks), attention at 4x4; ADM needs 128
# channels there for two heads (DhariwalUNet: 64 channels per head).
TINY = {
    "tiny_ddpmpp": (
        8,
        3,
        {**DDPMPP, "model_channels": 16, "channel_mult": [1, 2], "num_blocks": 1, "attn_resolutions": [4],
         "dropout": 0.0, "augment_dim": 9},
    ),
    "tiny_adm": (
        8,
        3,
        {**ADM, "model_channels": 64, "channel_mult": [1, 2], "num_blocks": 1, "attn_resolutions": [4],
         "dropout": 0.0, "augment_dim": 9},
    ),
}  # fmt: skip
SEED = 0


def seeded_state_dict(shapes: dict[str, list[int]], seed: int = SEED) -> dict[str, np.ndarray]:
    """Weights for the tiny reference nets: keys in sorted order, one draw each from one generator.

    Matrices and kernels ~ N(0, 1 / fan_in) (fan_in = prod(shape[1:])), vectors ~ N(0, 0.25); the resampling
    filters keep EDM's value (all 0.25). tests/test_edm_nets.py draws the same.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for key in sorted(shapes):
        shape = tuple(shapes[key])
        if key.endswith("resample_filter"):
            out[key] = np.full(shape, 0.25, np.float32)
            continue
        a = rng.standard_normal(shape)
        a = a / np.sqrt(np.prod(shape[1:])) if len(shape) >= 2 else 0.5 * a
        out[key] = a.astype(np.float32)
    return out


def reference_inputs(label_dim: int, augment_dim: int, resolution: int, channels: int, seed: int = SEED + 1):
    """x [2, C, H, W] (NCHW), noise labels [2], class indices [2], augment labels [2, augment_dim]."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, channels, resolution, resolution)).astype(np.float32)
    noise = np.array([-0.4, 0.9], np.float32)
    labels = np.array([0, label_dim - 1], np.int32)
    augment = rng.standard_normal((2, augment_dim)).astype(np.float32)
    return x, noise, labels, augment


def describe(net, source: str, pickle_name: str, kwargs: dict) -> dict:
    import torch

    state = net.state_dict()
    buffers = {name for name, _ in net.named_buffers()}
    return {
        "source": source,
        "released_pickle": pickle_name,
        "edm_kwargs": kwargs,
        "num_parameters": int(sum(p.numel() for p in net.parameters())),
        "state_dict": {k: list(v.shape) for k, v in state.items()},
        "buffers": sorted(k for k in state if k in buffers),
        "torch_version": torch.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--edm_dir", required=True, help="a checkout of github.com/NVlabs/edm")
    parser.add_argument("--edm_commit", default="", help="the checkout's commit, if --edm_dir is not a git work tree")
    parser.add_argument("--out_dir", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures"))
    args = parser.parse_args()
    sys.path.insert(0, os.path.abspath(args.edm_dir))
    import subprocess

    import torch
    from training import networks  # EDM's module, from the checkout

    commit = (
        args.edm_commit
        or subprocess.run(
            ["git", "-C", args.edm_dir, "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
    )
    source = f"NVlabs/edm training/networks.py ({commit}): EDMPrecond(...).state_dict()"
    os.makedirs(args.out_dir, exist_ok=True)

    def write(name, obj):
        with open(os.path.join(args.out_dir, f"edm_{name}_keys.json"), "w") as f:
            json.dump(obj, f, indent=1, sort_keys=True)

    for preset, (pickle_name, res, label_dim, kwargs) in RELEASED.items():
        net = networks.EDMPrecond(img_resolution=res, img_channels=3, label_dim=label_dim, **kwargs)
        write(
            preset.removeprefix("edm_"),
            describe(net, source, pickle_name, dict(kwargs, label_dim=label_dim, img_resolution=res)),
        )
        print(preset, sum(p.numel() for p in net.parameters()))

    reference = {}
    for name, (res, label_dim, kwargs) in TINY.items():
        net = networks.EDMPrecond(img_resolution=res, img_channels=3, label_dim=label_dim, **kwargs).eval()
        info = describe(net, source, "", dict(kwargs, label_dim=label_dim, img_resolution=res))
        write(name, info)
        state = seeded_state_dict(info["state_dict"])
        net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
        x, noise, labels, augment = reference_inputs(label_dim, kwargs["augment_dim"], res, 3)
        onehot = torch.nn.functional.one_hot(torch.from_numpy(labels).long(), label_dim).float()
        with torch.no_grad():
            run = lambda c: net.model(torch.from_numpy(x), torch.from_numpy(noise), c, torch.from_numpy(augment))
            reference[f"{name}_out"] = run(onehot).numpy()
            reference[f"{name}_out_nolabel"] = run(torch.zeros_like(onehot)).numpy()
        reference.update({f"{name}_x": x, f"{name}_noise": noise, f"{name}_labels": labels, f"{name}_augment": augment})
    np.savez(os.path.join(args.out_dir, "edm_tiny_reference.npz"), **reference)


if __name__ == "__main__":
    main()
