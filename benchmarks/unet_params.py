"""Parameter counts of the UNet presets next to the counts the papers state.

    python benchmarks/unet_params.py [--out benchmarks/results/unet_params.json]

Counts come from ``jax.eval_shape(model.init, ...)`` at each preset's dataset resolution (no FLOPs, a few
seconds). Of the five papers only the curvature paper states counts (App. C, Table 4: 55.73M generator,
2.15M MNIST generator, 2.2M encoder). LOOM-CFM (Table 4) and LMM (Table 6) give architectures without
counts, and DANSM neither (its architectures come from its code): printed as "not stated". The table
also goes to a JSON file (`--out`, see benchmarks/common.py).

A second table puts the EDM presets (`flowjax/models/edm_unet.py`: EDM's released DDPM++ and ADM networks,
Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative Models") beside the count of
the released network: ``sum(p.numel() for p in net.parameters())`` of ``EDMPrecond`` built by EDM's own code
(NVlabs/edm ``training/networks.py``, with the README's training options), as recorded in
``tests/fixtures/edm_<preset>_keys.json`` by ``scripts/make_edm_fixtures.py``. The EDM paper's own table of
model capacities was not available to check here; the curvature paper's 55.73M (App. C, Table 4) is its
DDPM++ CIFAR-10 network from EDM's code, printed beside the unconditional CIFAR-10 preset.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402
from flowjax.models import edm_unet, unet  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "fixtures")

# preset -> (dataset, input shape [B, H, W, C], stated count or None, where it is stated)
ROWS = {
    "ddpmpp_cifar10": ("CIFAR-10 (RF, DANSM)", (1, 32, 32, 3), None, "DANSM code (paper: none)"),
    "ddpm_cifar10": ("CIFAR-10 (DANSM DM)", (1, 32, 32, 3), None, "DANSM code (paper: none)"),
    "adm_cifar10": ("CIFAR-10 (LOOM-CFM)", (1, 32, 32, 3), None, "LOOM-CFM Table 4"),
    "adm_imagenet32": ("ImageNet-32 (LOOM-CFM)", (1, 32, 32, 3), None, "LOOM-CFM Table 4"),
    "adm_imagenet64": ("ImageNet-64 (LOOM-CFM)", (1, 64, 64, 3), None, "LOOM-CFM Table 4"),
    "adm_ffhq256_latent": ("FFHQ-256 latents (LOOM-CFM)", (1, 32, 32, 4), None, "LOOM-CFM Table 4"),
    "ddpmpp_edm_cifar10": ("CIFAR-10 (curvature)", (1, 32, 32, 3), 55.73e6, "curvature Table 4"),
    "ddpmpp_edm_mnist": ("MNIST 28x28 (curvature)", (1, 28, 28, 1), 2.15e6, "curvature Table 4"),
    "ddpmpp_edm_encoder_cifar10": ("CIFAR-10 encoder (curvature)", (1, 32, 32, 3), 2.2e6, "curvature Table 4"),
}


# EDM preset -> (dataset, stated count or None, where it is stated)
EDM_ROWS = {
    "edm_ddpmpp_cifar10": ("CIFAR-10, class-conditional", None, "-"),
    "edm_ddpmpp_cifar10_uncond": ("CIFAR-10", 55.73e6, "curvature Table 4 (EDM's DDPM++)"),
    "edm_ddpmpp_afhqv2_64": ("AFHQv2 64x64", None, "-"),
    "edm_adm_imagenet64": ("ImageNet 64x64, class-conditional", None, "-"),
}


def released_count(preset: str) -> int:
    """The parameter count of EDM's released network, as EDM's code builds it (the fixture's record)."""
    with open(os.path.join(FIXTURES, f"edm_{preset.removeprefix('edm_')}_keys.json")) as f:
        return json.load(f)["num_parameters"]


def edm_table() -> dict:
    assert set(EDM_ROWS) == set(edm_unet.PRESETS), "every EDM preset needs a row"
    columns = [
        "preset",
        "released network",
        "dataset",
        "params (ours)",
        "params (EDM code)",
        "params (paper)",
        "source",
    ]
    rows = []
    print("\n| " + " | ".join(columns) + " |")
    print("|---|---|---|---:|---:|---:|---|")
    for name, (dataset, stated, source) in EDM_ROWS.items():
        pickle_name, shape = edm_unet.RELEASED[name]
        count = unet.num_params(edm_unet.EDMUNet(**edm_unet.PRESETS[name]()), (1, *shape))
        released = released_count(name)
        paper = f"{stated / 1e6:.2f}M" if stated else "not checked"
        same = "(equal)" if count == released else "(DIFFERS)"
        print(f"| {name} | {pickle_name} | {dataset} | {count:,} | {released:,} {same} | {paper} | {source} |")
        rows.append(
            {
                "preset": name,
                "released network": pickle_name,
                "dataset": dataset,
                "params (ours)": count,
                "params (EDM code)": released,
                "params (paper)": stated or "not checked",
                "source": source,
            }
        )
    return common.table(
        "edm_params",
        "EDM presets: parameter counts vs EDM's released networks",
        columns,
        rows,
        {"params (ours)": "count", "params (EDM code)": "count", "params (paper)": "M"},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_out_argument(parser, "unet_params")
    args = parser.parse_args()
    assert set(ROWS) == set(unet.PRESETS), "every preset needs a row"
    rows = []
    print("| preset | dataset | input (HxWxC) | params (ours) | params (paper) | source | rel. diff |")
    print("|---|---|---|---:|---:|---|---:|")
    for name, (dataset, shape, stated, source) in ROWS.items():
        count = unet.num_params(unet.UNet(**unet.PRESETS[name]()), shape)
        paper = f"{stated / 1e6:.2f}M" if stated else "not stated"
        diff = f"{(count - stated) / stated:+.2%}" if stated else "-"
        print(
            f"| {name} | {dataset} | {shape[1]}x{shape[2]}x{shape[3]} | {count:,} ({count / 1e6:.2f}M) | {paper} "
            f"| {source} | {diff} |"
        )
        rows.append(
            {
                "preset": name,
                "dataset": dataset,
                "input (HxWxC)": f"{shape[1]}x{shape[2]}x{shape[3]}",
                "params (ours)": count,
                "params (paper)": stated or "not stated",
                "source": source,
                "rel. diff": (count - stated) / stated if stated else None,
            }
        )
    columns = ["preset", "dataset", "input (HxWxC)", "params (ours)", "params (paper)", "source", "rel. diff"]
    common.write(
        args.out,
        "unet_params",
        [
            common.table(
                "unet_params",
                "UNet presets: parameter counts",
                columns,
                rows,
                {"params (ours)": "count", "params (paper)": "M", "rel. diff": "percent"},
            ),
            edm_table(),
        ],
        seeds=0,
        settings={},
    )


if __name__ == "__main__":
    main()
