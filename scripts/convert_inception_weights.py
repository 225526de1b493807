"""Convert pytorch-fid's FID Inception weights (.pth) to flowjax's .npz weight format.

    python scripts/convert_inception_weights.py pt_inception-2015-12-05-6726825d.pth fid_inception.npz

The input is the state dict that pytorch-fid downloads (``FID_WEIGHTS_URL``: the GitHub release
``fid_weights`` of mseitzer/pytorch-fid), a port of the 2015-12-05 TensorFlow Inception graph
that TTUR's FID uses. Fetch it on a machine with internet; this script only reads local files.
It needs PyTorch to unpickle the file (``torch.load``); flowjax itself never imports torch.

The mapping (torchvision names -> Flax paths, OIHW -> HWIO, batch-norm statistics) is
`flowjax.models.inception.inception_variables_from_torch`; the output loads with
`flowjax.models.inception.load_inception_params`. If the file name carries torch.hub's hash suffix
(``-6726825d``), the file's SHA-256 is checked against it first.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from flowjax.models import inception, weights  # noqa: E402


def check_hash_suffix(path: str) -> None:
    """Raise if ``name-<hex>.pth`` does not have a SHA-256 starting with <hex> (torch.hub's rule)."""
    match = re.search(r"-([0-9a-f]{8,})\.pth$", os.path.basename(path))
    if match is None:
        return
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            sha.update(chunk)
    if not sha.hexdigest().startswith(match.group(1)):
        raise ValueError(
            f"{path}: SHA-256 {sha.hexdigest()[:16]}... does not match the name's hash "
            f"{match.group(1)}; the download is corrupt or a different file."
        )


def read_torch_state_dict(path: str) -> dict[str, np.ndarray]:
    """The .pth state dict as float32/int NumPy arrays (needs torch)."""
    try:
        import torch
    except ImportError:
        sys.exit(
            "Reading a .pth file needs PyTorch: run this script where `import torch` works "
            "(pip install torch --index-url https://download.pytorch.org/whl/cpu)."
        )
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    return {name: tensor.detach().cpu().numpy() for name, tensor in state_dict.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pth", help="pytorch-fid's pt_inception-2015-12-05-6726825d.pth")
    parser.add_argument("npz", help="output weight file for inception.load_inception_params")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    args = parser.parse_args()

    if not os.path.exists(args.pth):
        sys.exit(f"{args.pth} does not exist; download pytorch-fid's FID weights first (see this script's doc).")
    check_hash_suffix(args.pth)
    variables = inception.inception_variables_from_torch(read_torch_state_dict(args.pth))
    weights.save_variables(args.npz, variables, overwrite=args.overwrite)
    loaded = inception.load_inception_params(args.npz)
    count = sum(int(np.size(leaf)) for leaf in jax.tree_util.tree_leaves(loaded["params"]))
    print(f"wrote {args.npz}: {len(jax.tree_util.tree_leaves(loaded))} arrays, {count:,} parameters")


if __name__ == "__main__":
    main()
