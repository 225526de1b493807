"""The FID Inception: the 2015-12-05 TensorFlow InceptionV3 graph of FID (Heusel et al. 2017, TTUR) in Flax.

`InceptionV3` maps images to the 2048-d pool-3 features that `flowjax.metrics.fid` compares: the
torchvision Inception3 trunk with pytorch-fid's FID patches (average pools that do not count the
padding; a max pool in the last block's pool branch), batch norm without scale and with TF's epsilon
1e-3, inputs in [-1, 1] resized bilinearly to 299 x 299. `inception_feature_fn` is the feature
function for given variables. One file: its blocks exist only to reproduce this one network, layer for
layer, against the weights that define FID.

Weights are read from a local ``.npz`` only; nothing is downloaded. The file is a Flax variables
dict in `flowjax.models.weights`' format (94 conv + batch-norm layers, 376 arrays);
``scripts/convert_inception_weights.py`` writes it from pytorch-fid's
``pt_inception-2015-12-05-6726825d.pth`` with `inception_variables_from_torch`.
"""

from __future__ import annotations

import functools
import os
from typing import Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from flowjax.models.weights import Variables, array_shapes, load_variables

INCEPTION_SIZE = 299
INCEPTION_FEATURES = 2048
# TF's batch-norm epsilon in the FID Inception graph (torchvision's BasicConv2d uses it too).
BN_EPSILON = 1e-3

# ----------------------------------------------------------------------------- network


class BasicConv2d(nn.Module):
    """Conv (no bias) -> batch norm (beta only, eps 1e-3, running statistics) -> ReLU."""

    features: int
    kernel_size: tuple[int, int]
    strides: int = 1
    padding: str = "SAME"
    precision: jax.lax.Precision | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nn.Conv(
            self.features,
            self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            use_bias=False,
            precision=self.precision,
            name="conv",
        )(x)
        x = nn.BatchNorm(use_running_average=True, use_scale=False, epsilon=BN_EPSILON, name="bn")(x)
        return nn.relu(x)


def _avg_pool_3x3(x: jax.Array) -> jax.Array:
    """3x3 stride-1 average pool that, like TF, averages over the unpadded window only."""
    return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)), count_include_pad=False)


def _max_pool_3x3_s2(x: jax.Array) -> jax.Array:
    return nn.max_pool(x, (3, 3), strides=(2, 2))


class InceptionA(nn.Module):
    """35 x 35 block (Mixed_5b..5d): 64 + 64 + 96 + pool_features channels."""

    pool_features: int
    precision: jax.lax.Precision | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        conv = functools.partial(BasicConv2d, precision=self.precision)
        b1 = conv(64, (1, 1), name="branch1x1")(x)
        b5 = conv(48, (1, 1), name="branch5x5_1")(x)
        b5 = conv(64, (5, 5), name="branch5x5_2")(b5)
        b3 = conv(64, (1, 1), name="branch3x3dbl_1")(x)
        b3 = conv(96, (3, 3), name="branch3x3dbl_2")(b3)
        b3 = conv(96, (3, 3), name="branch3x3dbl_3")(b3)
        bp = conv(self.pool_features, (1, 1), name="branch_pool")(_avg_pool_3x3(x))
        return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
    """35 -> 17 reduction (Mixed_6a): 384 + 96 + input channels."""

    precision: jax.lax.Precision | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        conv = functools.partial(BasicConv2d, precision=self.precision)
        b3 = conv(384, (3, 3), strides=2, padding="VALID", name="branch3x3")(x)
        bd = conv(64, (1, 1), name="branch3x3dbl_1")(x)
        bd = conv(96, (3, 3), name="branch3x3dbl_2")(bd)
        bd = conv(96, (3, 3), strides=2, padding="VALID", name="branch3x3dbl_3")(bd)
        return jnp.concatenate([b3, bd, _max_pool_3x3_s2(x)], axis=-1)


class InceptionC(nn.Module):
    """17 x 17 block with factorised 7x7 convolutions (Mixed_6b..6e): 4 x 192 channels."""

    channels_7x7: int
    precision: jax.lax.Precision | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        conv = functools.partial(BasicConv2d, precision=self.precision)
        c7 = self.channels_7x7
        b1 = conv(192, (1, 1), name="branch1x1")(x)
        b7 = conv(c7, (1, 1), name="branch7x7_1")(x)
        b7 = conv(c7, (1, 7), name="branch7x7_2")(b7)
        b7 = conv(192, (7, 1), name="branch7x7_3")(b7)
        bd = conv(c7, (1, 1), name="branch7x7dbl_1")(x)
        bd = conv(c7, (7, 1), name="branch7x7dbl_2")(bd)
        bd = conv(c7, (1, 7), name="branch7x7dbl_3")(bd)
        bd = conv(c7, (7, 1), name="branch7x7dbl_4")(bd)
        bd = conv(192, (1, 7), name="branch7x7dbl_5")(bd)
        bp = conv(192, (1, 1), name="branch_pool")(_avg_pool_3x3(x))
        return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
    """17 -> 8 reduction (Mixed_7a): 320 + 192 + input channels."""

    precision: jax.lax.Precision | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        conv = functools.partial(BasicConv2d, precision=self.precision)
        b3 = conv(192, (1, 1), name="branch3x3_1")(x)
        b3 = conv(320, (3, 3), strides=2, padding="VALID", name="branch3x3_2")(b3)
        b7 = conv(192, (1, 1), name="branch7x7x3_1")(x)
        b7 = conv(192, (1, 7), name="branch7x7x3_2")(b7)
        b7 = conv(192, (7, 1), name="branch7x7x3_3")(b7)
        b7 = conv(192, (3, 3), strides=2, padding="VALID", name="branch7x7x3_4")(b7)
        return jnp.concatenate([b3, b7, _max_pool_3x3_s2(x)], axis=-1)


class InceptionE(nn.Module):
    """8 x 8 block (Mixed_7b, 7c): 320 + 768 + 768 + 192 = 2048 channels.

    ``pool="max"`` is the FID graph's Mixed_7c, whose pool branch max-pools (3x3, stride 1)
    where the paper and Mixed_7b average-pool.
    """

    pool: str = "avg"
    precision: jax.lax.Precision | None = None

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        conv = functools.partial(BasicConv2d, precision=self.precision)
        b1 = conv(320, (1, 1), name="branch1x1")(x)
        b3 = conv(384, (1, 1), name="branch3x3_1")(x)
        b3 = jnp.concatenate(
            [conv(384, (1, 3), name="branch3x3_2a")(b3), conv(384, (3, 1), name="branch3x3_2b")(b3)],
            axis=-1,
        )
        bd = conv(448, (1, 1), name="branch3x3dbl_1")(x)
        bd = conv(384, (3, 3), name="branch3x3dbl_2")(bd)
        bd = jnp.concatenate(
            [conv(384, (1, 3), name="branch3x3dbl_3a")(bd), conv(384, (3, 1), name="branch3x3dbl_3b")(bd)],
            axis=-1,
        )
        if self.pool == "max":
            pooled = nn.max_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))
        else:
            pooled = _avg_pool_3x3(x)
        bp = conv(192, (1, 1), name="branch_pool")(pooled)
        return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class InceptionV3(nn.Module):
    """FID InceptionV3: images [B, H, W, 3] in [-1, 1] -> pool-3 features [B, 2048].

    Images are resized bilinearly (half-pixel centres, no antialiasing, as pytorch-fid's
    ``F.interpolate(..., align_corners=False)``) to 299 x 299 unless already that size.
    Submodule names are torchvision's (``Mixed_5b/branch1x1/conv``), which keeps the weight
    conversion a renaming. ``precision`` defaults to full float32 convolutions so that
    features do not depend on an accelerator's reduced-precision default.
    """

    precision: jax.lax.Precision | None = jax.lax.Precision.HIGHEST

    @nn.compact
    def __call__(self, images: jax.Array) -> jax.Array:
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"InceptionV3 needs images [B, H, W, 3], got {images.shape}.")
        x = images
        if x.shape[1:3] != (INCEPTION_SIZE, INCEPTION_SIZE):
            x = jax.image.resize(x, (x.shape[0], INCEPTION_SIZE, INCEPTION_SIZE, 3), "bilinear", antialias=False)
        p = self.precision
        conv = functools.partial(BasicConv2d, precision=p)
        x = conv(32, (3, 3), strides=2, padding="VALID", name="Conv2d_1a_3x3")(x)  # 149
        x = conv(32, (3, 3), padding="VALID", name="Conv2d_2a_3x3")(x)  # 147
        x = conv(64, (3, 3), name="Conv2d_2b_3x3")(x)
        x = _max_pool_3x3_s2(x)  # 73
        x = conv(80, (1, 1), name="Conv2d_3b_1x1")(x)
        x = conv(192, (3, 3), padding="VALID", name="Conv2d_4a_3x3")(x)  # 71
        x = _max_pool_3x3_s2(x)  # 35
        x = InceptionA(32, p, name="Mixed_5b")(x)  # 256
        x = InceptionA(64, p, name="Mixed_5c")(x)  # 288
        x = InceptionA(64, p, name="Mixed_5d")(x)  # 288
        x = InceptionB(p, name="Mixed_6a")(x)  # 17 x 17 x 768
        x = InceptionC(128, p, name="Mixed_6b")(x)
        x = InceptionC(160, p, name="Mixed_6c")(x)
        x = InceptionC(160, p, name="Mixed_6d")(x)
        x = InceptionC(192, p, name="Mixed_6e")(x)
        x = InceptionD(p, name="Mixed_7a")(x)  # 8 x 8 x 1280
        x = InceptionE("avg", p, name="Mixed_7b")(x)  # 2048
        x = InceptionE("max", p, name="Mixed_7c")(x)
        return jnp.mean(x, axis=(1, 2))


def inception_variable_shapes(model: InceptionV3 | None = None) -> dict[str, tuple[int, ...]]:
    """ "/"-joined variable path -> shape of `InceptionV3`, from an abstract (compute-free) init.

    This is the list of arrays a weight file must hold (376: 94 layers x kernel, bias, mean,
    var); the parameters proper ("params/...") number 21,768,352.
    """
    model = model or InceptionV3()
    images = jax.ShapeDtypeStruct((1, INCEPTION_SIZE, INCEPTION_SIZE, 3), jnp.float32)
    abstract = jax.eval_shape(model.init, jax.random.key(0), images)
    return {k: tuple(v.shape) for k, v in traverse_util.flatten_dict(abstract, sep="/").items()}


def _check_shapes(shapes: Mapping[str, tuple[int, ...]], model: InceptionV3, source: str) -> None:
    """Raises ValueError unless ``shapes`` (path -> shape) are exactly the model's variables."""
    expected = inception_variable_shapes(model)
    missing, unexpected = sorted(expected.keys() - shapes.keys()), sorted(shapes.keys() - expected.keys())
    wrong = sorted(k for k in expected.keys() & shapes.keys() if tuple(shapes[k]) != expected[k])
    if missing or unexpected or wrong:
        raise ValueError(
            f"{source} does not hold FID InceptionV3 weights: missing {missing[:5]}"
            f"{'...' if len(missing) > 5 else ''} ({len(missing)}), unexpected {unexpected[:5]} "
            f"({len(unexpected)}), wrong shapes {[(k, tuple(shapes[k]), expected[k]) for k in wrong[:5]]} "
            f"({len(wrong)}). Convert pytorch-fid's weights with scripts/convert_inception_weights.py."
        )


def _check_inception_variables(variables: Variables, model: InceptionV3, source: str) -> Variables:
    """Variables cast to float32, after checking their paths and shapes against the model."""
    flat = traverse_util.flatten_dict(variables, sep="/")
    _check_shapes({k: np.shape(v) for k, v in flat.items()}, model, source)
    return traverse_util.unflatten_dict({k: np.asarray(v, np.float32) for k, v in flat.items()}, sep="/")


def check_inception_file(path: str, model: InceptionV3 | None = None) -> None:
    """Checks, without loading the arrays, that ``path`` is a whole FID Inception weight file: every variable
    of `InceptionV3` present with its shape, each array's data complete (`weights.array_shapes`)."""
    _check_shapes(array_shapes(path), model or InceptionV3(), path)


def load_inception_params(path: str, model: InceptionV3 | None = None) -> Variables:
    """FID Inception variables ``{"params": ..., "batch_stats": ...}`` from a local .npz.

    The file is in `flowjax.models.weights`' format; paths and shapes are checked against
    `InceptionV3`. Nothing is downloaded: see scripts/convert_inception_weights.py for how to
    make the file.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"No FID Inception weights at {path}. Download pt_inception-2015-12-05-6726825d.pth "
            "from pytorch-fid's GitHub release and convert it with "
            "`python scripts/convert_inception_weights.py <pth> <npz>`."
        )
    return _check_inception_variables(load_variables(path), model or InceptionV3(), path)


@jax.jit
def _to_inception_input(images: jax.Array) -> jax.Array:
    """[B, H, W, 1 or 3] in [-1, 1] -> [B, 299, 299, 3] float32 (grey repeated, bilinear resize)."""
    x = images.astype(jnp.float32)
    if x.shape[-1] == 1:
        x = jnp.repeat(x, 3, axis=-1)
    return jax.image.resize(x, (x.shape[0], INCEPTION_SIZE, INCEPTION_SIZE, 3), "bilinear", antialias=False)


@functools.partial(jax.jit, static_argnums=0)
def _apply_inception(model: InceptionV3, variables: Variables, x: jax.Array) -> jax.Array:
    return model.apply(variables, x)


def inception_feature_fn(variables: Variables, model: InceptionV3 | None = None) -> Callable[[jax.Array], jax.Array]:
    """``images [B, H, W, C] in [-1, 1] -> pool-3 features [B, 2048]`` for given variables.

    C is 1 (greyscale, repeated to RGB) or 3; any H, W (resized to 299 x 299). The resize and
    the network are two jitted functions, so the network compiles once per batch size whatever
    the image size, and is shared by every set of variables of the same shapes.
    """
    model = model or InceptionV3()

    def features(images: jax.Array) -> jax.Array:
        if images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise ValueError(f"Inception features need images [B, H, W, 1 or 3], got {images.shape}.")
        return _apply_inception(model, variables, _to_inception_input(images))

    return features


# ----------------------------------------------------------------------------- conversion


def _fold_bn_scale(gamma: np.ndarray, var: np.ndarray, eps: float) -> np.ndarray:
    """Running variance that makes a scale-free batch norm equal one with scale ``gamma``.

    gamma (z - m) / sqrt(v + eps) = (z - m) / sqrt(v' + eps) with v' = (v + eps) / gamma^2 - eps,
    exact for gamma > 0. The FID graph has no scale (gamma == 1), which is passed through as is.
    """
    if np.all(gamma == 1.0):
        return var
    if np.any(gamma <= 0.0):
        raise ValueError("batch-norm scale <= 0 cannot be folded into a scale-free batch norm.")
    gamma, var = np.asarray(gamma, np.float64), np.asarray(var, np.float64)
    return ((var + eps) / gamma**2 - eps).astype(np.float32)


def inception_variables_from_torch(state_dict: Mapping[str, np.ndarray], model: InceptionV3 | None = None) -> Variables:
    """Flax variables of `InceptionV3` from pytorch-fid's FID Inception state dict (as NumPy).

    Mapping, for every torchvision ``BasicConv2d`` named ``<layer>`` (``Mixed_6b.branch7x7_2``):
      ``<layer>.conv.weight`` [O, I, kh, kw]  -> ``params/<layer>/conv/kernel`` [kh, kw, I, O]
      ``<layer>.bn.bias``                     -> ``params/<layer>/bn/bias``
      ``<layer>.bn.running_mean``             -> ``batch_stats/<layer>/bn/mean``
      ``<layer>.bn.running_var``, ``.bn.weight`` -> ``batch_stats/<layer>/bn/var`` (the scale,
        all ones in the FID graph, is folded into the variance, see `_fold_bn_scale`)
    with ``.`` in ``<layer>`` replaced by ``/``. ``*.num_batches_tracked`` and the 1008-way
    classifier ``fc.weight``/``fc.bias`` (not part of pool-3 features) are dropped. Any other
    key, a missing layer or a wrong shape raises ValueError.
    """
    arrays = {k: np.asarray(v) for k, v in state_dict.items()}
    flat: dict[str, np.ndarray] = {}
    layers = sorted({k[: -len(".conv.weight")] for k in arrays if k.endswith(".conv.weight")})
    for layer in layers:
        path = layer.replace(".", "/")
        try:
            weight = arrays.pop(f"{layer}.conv.weight")
            gamma = arrays.pop(f"{layer}.bn.weight")
            beta = arrays.pop(f"{layer}.bn.bias")
            mean = arrays.pop(f"{layer}.bn.running_mean")
            var = arrays.pop(f"{layer}.bn.running_var")
        except KeyError as e:
            raise ValueError(f"state dict lacks {e.args[0]} (layer {layer}).") from None
        arrays.pop(f"{layer}.bn.num_batches_tracked", None)
        if weight.ndim != 4:
            raise ValueError(f"{layer}.conv.weight should be [O, I, kh, kw], got {weight.shape}.")
        flat[f"params/{path}/conv/kernel"] = np.transpose(weight, (2, 3, 1, 0))
        flat[f"params/{path}/bn/bias"] = beta
        flat[f"batch_stats/{path}/bn/mean"] = mean
        flat[f"batch_stats/{path}/bn/var"] = _fold_bn_scale(gamma, var, BN_EPSILON)
    for key in ("fc.weight", "fc.bias"):
        arrays.pop(key, None)
    if arrays:
        raise ValueError(f"state dict has keys the FID Inception does not use: {sorted(arrays)[:10]}.")
    return _check_inception_variables(
        traverse_util.unflatten_dict(flat, sep="/"), model or InceptionV3(), "the state dict"
    )
