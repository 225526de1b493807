"""Convert a released EDM network (NVlabs/edm) to flowjax parameters, with a JSON record of what it is.

    python scripts/convert_edm_weights.py --state_dict=edm-cifar10-32x32-cond-vp.pt --out=edm_cifar10_cond.npz \
        [--preset=edm_ddpmpp_cifar10] [--sha256=<hex of the input file>] [--overwrite]

EDM (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative Models") releases its
networks as pickles of PyTorch modules whose classes are stored inside the pickle, so reading one needs
EDM's code. Export the state dict once, inside an EDM checkout (its ``torch_utils`` and ``dnnlib`` on the
path):

    import pickle, torch
    with open("edm-cifar10-32x32-cond-vp.pkl", "rb") as f:
        net = pickle.load(f)["ema"]  # an EDMPrecond; the UNet is net.model
    torch.save(net.state_dict(), "edm-cifar10-32x32-cond-vp.pt")
    # or, to convert without PyTorch: numpy.savez("edm-cifar10-32x32-cond-vp.npz",
    #     **{k: v.cpu().numpy() for k, v in net.state_dict().items()})

A ``.pt``/``.pth`` input needs PyTorch (imported only then); an ``.npz`` of the same key -> array does not.
Keys may carry EDMPrecond's ``model.`` prefix or not.

The network is checked key by key and shape by shape against the flowjax preset's (``--preset``, or the one
preset that fits when it is omitted): a missing, unexpected or wrongly shaped key refuses the file, names the
preset that does fit if one does, and writes nothing. The output is ``--out`` (flowjax's weight format,
`flowjax.models.weights.save_variables`: ``params/...`` arrays) and, beside it, ``<out>.json`` with the
preset, EDM's sigma_data (0.5), the class count, the input's and the output's SHA-256.
`flowjax.models.weights.load_converted` loads it, checking the hash and the shapes against the model.

Presets (`flowjax.models.edm_unet.PRESETS`): edm_ddpmpp_cifar10 (edm-cifar10-32x32-cond-vp.pkl),
edm_ddpmpp_cifar10_uncond (edm-cifar10-32x32-uncond-vp.pkl), edm_ddpmpp_afhqv2_64
(edm-afhqv2-64x64-uncond-vp.pkl), edm_adm_imagenet64 (edm-imagenet-64x64-cond-adm.pkl). The NCSN++ (``-ve``)
networks are not supported.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Mapping, Sequence

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from flowjax import io
from flowjax.models import edm_unet, weights

FORMAT = "flowjax-edm-weights-1"


def read_state_dict(path: str) -> dict[str, np.ndarray]:
    """EDM's state dict as NumPy arrays, from a ``.pt``/``.pth`` (needs PyTorch) or an ``.npz``."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"--state_dict={path} does not exist; export it from EDM's pickle (see this script).")
    if path.endswith(".pkl"):
        raise ValueError(
            f"--state_dict={path} is EDM's pickle, which only EDM's code can read: export its state dict to a .pt "
            "or .npz first (the few lines at the top of this script)."
        )
    if path.endswith(".npz"):
        with np.load(path, allow_pickle=False) as f:
            return {k: np.asarray(f[k]) for k in f.files}
    try:
        import torch
    except ImportError as err:
        raise ValueError(
            f"--state_dict={path}: reading a PyTorch file needs torch (pip install torch --index-url "
            "https://download.pytorch.org/whl/cpu), or save the state dict as .npz (see this script)."
        ) from err
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for a file that is not a plain state dict
        raise ValueError(f"--state_dict={path} is not a readable PyTorch state dict ({err}); see this script.") from err
    if not isinstance(state, Mapping):
        raise ValueError(f"--state_dict={path} holds a {type(state).__name__}, not a state dict (see this script).")
    return {k: v.detach().float().cpu().numpy() for k, v in state.items()}


def _model(preset: str) -> tuple[edm_unet.EDMUNet, tuple[int, int, int]]:
    return edm_unet.EDMUNet(**edm_unet.PRESETS[preset]()), edm_unet.RELEASED[preset][1]


def matching_presets(state_dict: Mapping[str, Any]) -> list[str]:
    """The presets whose network has exactly the keys and shapes of ``state_dict``."""
    return [p for p in edm_unet.PRESETS if not edm_unet.check_state_dict(state_dict, *_model(p))]


def choose_preset(state_dict: Mapping[str, Any], preset: str, source: str) -> str:
    """``preset`` if the state dict fits it (or the one preset that fits, if ``preset`` is empty); else ValueError."""
    if preset and preset not in edm_unet.PRESETS:
        raise ValueError(f"--preset={preset!r} is not an EDM preset; choose one of {sorted(edm_unet.PRESETS)}.")
    if preset:
        problems = edm_unet.check_state_dict(state_dict, *_model(preset))
        if not problems:
            return preset
    fits = matching_presets(state_dict)
    if not preset and len(fits) == 1:
        return fits[0]
    asked = bool(preset)
    if not asked:  # the closest preset's differences, for the message
        preset = min(edm_unet.PRESETS, key=lambda p: len(edm_unet.check_state_dict(state_dict, *_model(p))))
        problems = edm_unet.check_state_dict(state_dict, *_model(preset))
    what = (
        f"is not EDM's {edm_unet.RELEASED[preset][0]} (--preset={preset})"
        if asked
        else (f"fits no preset; the closest is --preset={preset} ({edm_unet.RELEASED[preset][0]})")
    )
    hint = (
        f"It is the network of --preset={fits[0]} ({edm_unet.RELEASED[fits[0]][0]}): convert it with that preset."
        if fits
        else "Export EDMPrecond.state_dict() of one of "
        f"{[name for name, _ in edm_unet.RELEASED.values()]} (the NCSN++ '-ve' networks are not supported)."
    )
    raise ValueError(
        f"{source} {what}: {len(problems)} keys differ, e.g. {'; '.join(problems[:4])}. {hint} Nothing was written."
    )


def convert(
    state_dict_path: str, out: str, preset: str = "", *, sha256: str = "", overwrite: bool = False
) -> dict[str, Any]:
    """Convert and write ``out`` and its record; returns the record. Raises before writing anything on a problem."""
    info_path = weights.converted_info_path(out)
    for path in (out, info_path):
        if os.path.exists(path) and not overwrite:
            raise FileExistsError(f"{path} exists; pass --overwrite to replace it.")
    source_sha = weights.sha256_file(state_dict_path) if os.path.exists(state_dict_path) else ""
    if sha256 and source_sha != sha256.lower():
        raise ValueError(
            f"--state_dict={state_dict_path}: SHA-256 {source_sha[:16]}... is not --sha256={sha256[:16]}...; "
            "the file is corrupt or a different network. Nothing was written."
        )
    state_dict = read_state_dict(state_dict_path)
    preset = choose_preset(state_dict, preset, f"--state_dict={state_dict_path}")
    model, image_shape = _model(preset)
    params = edm_unet.params_from_edm(state_dict, model, image_shape)
    weights.save_variables(out, {"params": params}, overwrite=overwrite)
    fields = edm_unet.PRESETS[preset]()
    info = {
        "format": FORMAT,
        "preset": preset,
        "model": {"name": "unet", "preset": preset},
        "edm_network": edm_unet.RELEASED[preset][0],
        "image_shape": list(image_shape),
        "sigma_data": edm_unet.SIGMA_DATA,
        "num_classes": fields["num_classes"],
        "augment_dim": fields["augment_dim"],
        "num_parameters": int(sum(np.size(a) for a in _leaves(params))),
        "source": {"file": os.path.basename(state_dict_path), "sha256": source_sha},
        "sha256": weights.sha256_file(out),
    }
    io.write_json_atomic(info_path, info)
    return info


def _leaves(tree: Mapping[str, Any]) -> list[np.ndarray]:
    return [leaf for v in tree.values() for leaf in (_leaves(v) if isinstance(v, Mapping) else [v])]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state_dict", required=True, help="EDM's exported state dict (.pt, .pth or .npz)")
    parser.add_argument("--out", required=True, help="the flowjax weight file to write (.npz); its record: .json")
    parser.add_argument("--preset", default="", help=f"one of {sorted(edm_unet.PRESETS)}; default: the one that fits")
    parser.add_argument("--sha256", default="", help="expected SHA-256 of --state_dict (checked if given)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    args = parser.parse_args(argv)
    try:
        info = convert(args.state_dict, args.out, args.preset, sha256=args.sha256, overwrite=args.overwrite)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        sys.exit(f"error: {err}")
    print(
        f"wrote {args.out} ({info['num_parameters']:,} parameters of {info['edm_network']}, preset {info['preset']}, "
        f"sha256 {info['sha256'][:16]}...) and {weights.converted_info_path(args.out)}"
    )


if __name__ == "__main__":
    main()
