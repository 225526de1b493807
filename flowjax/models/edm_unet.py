"""EDM's two image networks in Flax, parameter for parameter: DDPM++ (``SongUNet``) and ADM (``DhariwalUNet``).

Karras, Aittala, Aila, Laine 2022, "Elucidating the Design Space of Diffusion-Based Generative Models" (EDM),
trains and releases these two networks (its code, NVlabs/edm ``training/networks.py``; the training options
of each released network are in its README's table "exact training configurations"). `EDMUNet` computes the
same function as EDM's module of the same ``arch`` and holds the same parameters, so a released network
converts one array to one array (`scripts/convert_edm_weights.py`, `params_from_edm`) and the parameter
counts are equal. It is a module of its own, not options of `flowjax.models.unet.UNet`: the two agree
in their overall layout but differ in the noise embedding, the place of the class embedding, the width of
the first conv, the q/k/v channel order, GroupNorm's variance and the initialisers, and a weight mapping is
only simple when the module tree mirrors EDM's. The UNet's presets are untouched.

EDM's function, as this module computes it (EDM's names in parentheses):

- noise embedding (``PositionalEmbedding``): frequencies (1/10^4)^(i / (n/2 - 1)) for DDPM++
  (``endpoint=True``), (1/10^4)^(i / (n/2)) for ADM, output [cos, sin], which ``SongUNet`` swaps to
  [sin, cos]; n = ``base_channels`` (DDPM++'s ``channel_mult_noise=1``);
- mapping network: DDPM++ adds the class embedding (of the one-hot vector times sqrt(classes), with a bias)
  and the augmentation embedding before its two layers, each followed by SiLU; ADM adds the augmentation
  embedding first, applies layer0, SiLU, layer1, then adds the class embedding (no bias, no scaling) and
  applies SiLU;
- GroupNorm: min(32, C // 4) groups, eps 1e-6 in DDPM++'s blocks and output, 1e-5 in ADM's, two-pass variance;
- resampling in a residual block: EDM's FIR filter [1, 1] (a 2x2 box: 2x2 average pooling down,
  nearest-neighbour up), before the block's first conv and on its skip path; the skip path has a 1x1 conv
  when the width changes and, for DDPM++ (``resample_proj=True``), whenever the block resamples;
- ADM scales and shifts the second GroupNorm's output by the embedding (``adaptive_scale``); DDPM++ adds the
  embedding before it and divides every residual sum by sqrt(2) (``skip_scale``);
- attention: a 1x1 conv gives q, k, v interleaved per channel (output channel 3 (h ch + c) + j holds
  component j of channel c of head h), ch = C / heads; DDPM++ uses one head, ADM C // 64 heads (so none
  below 64 channels); DDPM++'s decoder attends once per level after its last block, ADM's after every block
  at an attention resolution, and both after the first bottleneck block;
- the first DDPM++ conv has ``base_channels`` outputs (ADM's: ``base_channels * channel_mults[0]``).

Call: ``apply(variables, x [B, H, W, C], noise_cond [B], y=None, augment_labels=None, train=False)``.
``noise_cond`` is EDM's c_noise (ln(sigma) / 4 under EDM's preconditioning, applied by the caller). ``y``
holds integer class indices; EDM feeds one-hot vectors to a linear layer, which is the same as reading the
row ``y`` of its weight, and ``y=None`` is EDM's all-zero class vector. ``augment_labels`` [B, augment_dim]
are EDM's augmentation labels (its ``AugmentPipe``); None means zeros, i.e. no augmentation, which is also
what EDM's sampler passes. The parameter exists so that the count and the weights match the released nets.

Parameter paths mirror EDM's state dict: EDM's ``model.enc.32x32_block0.conv0.weight`` is
``params/enc_32x32_block0/conv0/kernel`` here, Linear weights [out, in] become Dense kernels [in, out], conv
weights OIHW become HWIO, GroupNorm weights become ``scale``. The resampling filters, buffers in EDM's state
dict, are constants here (`params_from_edm` checks their values).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from flowjax.models.unet import _downsample_2x, _upsample_2x

ARCHS = ("ddpmpp", "adm")
ADM_HEAD_CHANNELS = 64  # DhariwalUNet's channels_per_head
RESAMPLE_FILTER = np.full((1, 1, 2, 2), 0.25, np.float32)  # EDM's [1, 1] filter as stored in its state dict


def positional_embedding(s: jax.Array, dim: int, endpoint: bool) -> jax.Array:
    """EDM ``PositionalEmbedding``: [B] -> [B, dim] = [cos(s f_i), sin(s f_i)], f_i = 10^(-4 i / (dim/2 - endpoint))."""
    half = dim // 2
    freqs = (1.0 / 10_000.0) ** (jnp.arange(half, dtype=jnp.float32) / (half - (1 if endpoint else 0)))
    angles = s[:, None].astype(jnp.float32) * freqs[None, :]
    return jnp.concatenate([jnp.cos(angles), jnp.sin(angles)], axis=-1)


def _groups(channels: int) -> int:
    return min(32, channels // 4)  # EDM GroupNorm: num_groups=32, min_channels_per_group=4


def _inits(arch: str, role: str, fan_in: int) -> tuple[Callable, Callable]:
    """(kernel_init, bias_init) of EDM's weight_init for a layer of ``role`` ("init", "zero" or "attn").

    DDPM++: Xavier-uniform weights times 1 ("init"), 1e-5 ("zero", EDM's init_zero) or sqrt(0.2) ("attn"),
    zero biases. ADM: PyTorch's default (Kaiming-uniform times sqrt(1/3), i.e. U(+-1/sqrt(fan_in)), for weights
    and biases) or all zeros ("zero"). Flax's fans equal EDM's (conv: channels x kernel area).
    """
    if arch == "ddpmpp":
        gain = {"init": 1.0, "zero": 1e-5, "attn": math.sqrt(0.2)}[role]
        return nn.initializers.variance_scaling(gain**2, "fan_avg", "uniform"), nn.initializers.zeros
    if role == "zero":
        return nn.initializers.zeros, nn.initializers.zeros
    bound = 1.0 / math.sqrt(fan_in)
    return (
        nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform"),
        lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound),
    )


class _Layers:
    """Conv, Dense and GroupNorm constructors of one architecture (module-creating helpers for compact code)."""

    def __init__(self, arch: str, dtype: Any):
        self.arch, self.dtype = arch, dtype

    def conv(self, c_in: int, c_out: int, k: int, name: str, role: str = "init") -> nn.Conv:
        kinit, binit = _inits(self.arch, role, c_in * k * k)
        pad = ((k // 2, k // 2),) * 2
        return nn.Conv(c_out, (k, k), padding=pad, kernel_init=kinit, bias_init=binit, dtype=self.dtype, name=name)

    def dense(self, c_in: int, c_out: int, name: str, role: str = "init", bias: bool = True) -> nn.Dense:
        kinit, binit = _inits(self.arch, role, c_in)
        return nn.Dense(c_out, use_bias=bias, kernel_init=kinit, bias_init=binit, dtype=self.dtype, name=name)

    def norm(self, channels: int, eps: float, name: str) -> nn.GroupNorm:
        # Two-pass variance, as torch.nn.functional.group_norm computes it.
        return nn.GroupNorm(_groups(channels), epsilon=eps, use_fast_variance=False, dtype=self.dtype, name=name)


class EDMBlock(nn.Module):
    """EDM ``UNetBlock``: GroupNorm-SiLU-conv, embedding, GroupNorm-SiLU-dropout-conv, skip, optional attention."""

    out_channels: int
    arch: str
    resample: str = "none"  # none | up | down
    num_heads: int = 0  # 0: no attention
    dropout: float = 0.0
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, emb: jax.Array, train: bool) -> jax.Array:
        ddpmpp, c_in, c_out = self.arch == "ddpmpp", x.shape[-1], self.out_channels
        layers = _Layers(self.arch, self.dtype)
        eps = 1e-6 if ddpmpp else 1e-5
        skip_scale = math.sqrt(0.5) if ddpmpp else 1.0
        resample = {"none": lambda a: a, "up": _upsample_2x, "down": _downsample_2x}[self.resample]

        h = resample(nn.silu(layers.norm(c_in, eps, "norm0")(x)))
        h = layers.conv(c_in, c_out, 3, "conv0")(h)
        adaptive = not ddpmpp  # ADM: GroupNorm(h) * (1 + scale) + shift
        params = layers.dense(emb.shape[-1], c_out * (2 if adaptive else 1), "affine")(emb)[:, None, None, :]
        if adaptive:
            scale, shift = jnp.split(params, 2, axis=-1)
            h = nn.silu(shift + layers.norm(c_out, eps, "norm1")(h) * (scale + 1))
        else:
            h = nn.silu(layers.norm(c_out, eps, "norm1")(h + params))
        h = nn.Dropout(self.dropout, deterministic=not train)(h)
        h = layers.conv(c_out, c_out, 3, "conv1", "zero")(h)
        skip = resample(x)
        # EDM's skip conv: 1x1 when the width changes, and for DDPM++ also whenever the block resamples.
        if c_out != c_in or (ddpmpp and self.resample != "none"):
            skip = layers.conv(c_in, c_out, 1, "skip")(skip)
        x = (h + skip) * skip_scale

        if self.num_heads:
            b, hgt, wid, c = x.shape
            heads, ch = self.num_heads, c // self.num_heads
            qkv = layers.conv(c, 3 * c, 1, "qkv", "attn" if ddpmpp else "init")(layers.norm(c, eps, "norm2")(x))
            q, k, v = jnp.moveaxis(qkv.reshape(b, hgt * wid, heads, ch, 3), -1, 0)
            logits = jnp.einsum("bqhc,bkhc->bhqk", q.astype(jnp.float32), k.astype(jnp.float32) / math.sqrt(ch))
            w = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
            a = jnp.einsum("bhqk,bkhc->bqhc", w, v).reshape(b, hgt, wid, c)
            x = (layers.conv(c, c, 1, "proj", "zero")(a) + x) * skip_scale
        return x


class EDMUNet(nn.Module):
    """EDM's ``SongUNet`` (``arch="ddpmpp"``) or ``DhariwalUNet`` (``arch="adm"``); see the module docstring.

    x [B, H, W, C] (H = W, divisible by 2^(levels - 1)), noise_cond [B] (, y [B] int) -> [B, H, W, out or C].
    """

    arch: str = "ddpmpp"
    base_channels: int = 128  # EDM model_channels
    channel_mults: tuple[int, ...] = (2, 2, 2)
    channel_mult_emb: int = 4
    num_res_blocks: int = 4  # EDM num_blocks
    attention_resolutions: tuple[int, ...] = (16,)
    dropout: float = 0.10
    num_classes: int = 0  # EDM label_dim
    augment_dim: int = 0
    out_channels: int = 0  # 0: as many as the input
    dtype: Any = jnp.float32

    def __post_init__(self) -> None:
        check_fields({f: getattr(self, f) for f in FIELDS if f != "dtype"}, prefix="EDMUNet.")
        super().__post_init__()

    def _check(self, x: jax.Array, y: jax.Array | None) -> None:
        if x.ndim != 4 or x.shape[1] != x.shape[2]:
            raise ValueError(f"EDMUNet expects square NHWC images [B, H, H, C]; got shape {x.shape}.")
        factor = 2 ** (len(self.channel_mults) - 1)
        if x.shape[1] % factor:
            raise ValueError(
                f"EDMUNet: resolution {x.shape[1]} is not divisible by {factor} for channel_mults="
                f"{tuple(self.channel_mults)}."
            )
        if y is not None and not self.num_classes:
            raise ValueError("EDMUNet: class labels y were given to an unconditional net (num_classes=0).")

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        noise_cond: jax.Array,
        y: jax.Array | None = None,
        *,
        augment_labels: jax.Array | None = None,
        train: bool = False,
    ) -> jax.Array:
        self._check(x, y)
        ddpmpp, batch, c0 = self.arch == "ddpmpp", x.shape[0], self.base_channels
        layers = _Layers(self.arch, self.dtype)
        c_emb = c0 * self.channel_mult_emb

        def block(h, c, name, resample="none", attention=False):
            # DDPM++: one head; ADM: C / 64 heads, so none below 64 channels (EDM's integer division).
            heads = (1 if ddpmpp else c // ADM_HEAD_CHANNELS) if attention else 0
            return EDMBlock(c, self.arch, resample, heads, self.dropout, self.dtype, name=name)(h, emb, train)

        # Mapping network. EDM's DDPM++ uses channel_mult_noise=1: the noise embedding has c0 channels.
        noise = jnp.broadcast_to(jnp.asarray(noise_cond, jnp.float32), (batch,))
        emb = positional_embedding(noise, c0, endpoint=ddpmpp)
        if ddpmpp:
            emb = jnp.concatenate([emb[:, c0 // 2 :], emb[:, : c0 // 2]], axis=-1)  # SongUNet's sin/cos swap
        label = None
        if self.num_classes:
            label = jnp.zeros((batch, self.num_classes)) if y is None else jax.nn.one_hot(y, self.num_classes)
        augment = augment_labels if augment_labels is not None else jnp.zeros((batch, self.augment_dim))
        # EDM's map_augment has no bias: Xavier-initialised for DDPM++, zero-initialised for ADM.
        aug_role = "init" if ddpmpp else "zero"
        map_augment = self.augment_dim and layers.dense(self.augment_dim, c0, "map_augment", aug_role, bias=False)
        if ddpmpp:
            if label is not None:
                emb = emb + layers.dense(self.num_classes, c0, "map_label")(label * math.sqrt(self.num_classes))
            if map_augment:
                emb = emb + map_augment(augment)
            emb = nn.silu(layers.dense(c0, c_emb, "map_layer0")(emb))
            emb = nn.silu(layers.dense(c_emb, c_emb, "map_layer1")(emb))
        else:
            if map_augment:
                emb = emb + map_augment(augment)
            emb = nn.silu(layers.dense(c0, c_emb, "map_layer0")(emb))
            emb = layers.dense(c_emb, c_emb, "map_layer1")(emb)
            if label is not None:
                # EDM: kaiming_normal x sqrt(label_dim), i.e. N(0, 1) entries, and no bias.
                init = nn.initializers.normal(1.0)
                emb = emb + nn.Dense(c_emb, use_bias=False, kernel_init=init, dtype=self.dtype, name="map_label")(label)
            emb = nn.silu(emb)
        emb = emb.astype(self.dtype)

        # Encoder: every module's output is a skip.
        h, skips, size, last = x.astype(self.dtype), [], x.shape[1], len(self.channel_mults) - 1
        for level, mult in enumerate(self.channel_mults):
            res = f"{size >> level}x{size >> level}"
            if level == 0:
                h = layers.conv(x.shape[-1], c0 if ddpmpp else c0 * mult, 3, f"enc_{res}_conv")(h)
            else:
                h = block(h, h.shape[-1], f"enc_{res}_down", resample="down")
            skips.append(h)
            for idx in range(self.num_res_blocks):
                attend = (size >> level) in self.attention_resolutions
                h = block(h, c0 * mult, f"enc_{res}_block{idx}", attention=attend)
                skips.append(h)

        # Decoder.
        for level in reversed(range(len(self.channel_mults))):
            res = f"{size >> level}x{size >> level}"
            if level == last:
                h = block(h, h.shape[-1], f"dec_{res}_in0", attention=True)
                h = block(h, h.shape[-1], f"dec_{res}_in1")
            else:
                h = block(h, h.shape[-1], f"dec_{res}_up", resample="up")
            for idx in range(self.num_res_blocks + 1):
                attend = (size >> level) in self.attention_resolutions and (not ddpmpp or idx == self.num_res_blocks)
                h = jnp.concatenate([h, skips.pop()], axis=-1)
                h = block(h, c0 * self.channel_mults[level], f"dec_{res}_block{idx}", attention=attend)

        c_out = self.out_channels or x.shape[-1]
        c = h.shape[-1]
        if ddpmpp:  # SongUNet's decoder_type="standard": the output layers are its level-0 "aux" pair
            h = nn.silu(layers.norm(c, 1e-6, f"dec_{size}x{size}_aux_norm")(h))
            h = layers.conv(c, c_out, 3, f"dec_{size}x{size}_aux_conv", "zero")(h)
        else:
            h = layers.conv(c, c_out, 3, "out_conv", "zero")(nn.silu(layers.norm(c, 1e-5, "out_norm")(h)))
        return h.astype(x.dtype)


FIELDS = tuple(f for f in EDMUNet.__dataclass_fields__ if f not in ("parent", "name"))


def check_fields(fields: Mapping[str, Any], prefix: str = "") -> None:
    """Raises ValueError naming ``prefix + field`` for every EDMUNet field value that cannot work."""

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    checks: dict[str, tuple[Callable[[Any], bool], str]] = {
        "arch": (lambda v: v in ARCHS, f"must be one of {ARCHS}"),
        "base_channels": (lambda v: is_int(v) and v > 0 and v % 2 == 0, "must be a positive even integer"),
        "channel_mults": (
            lambda v: isinstance(v, (tuple, list)) and len(v) > 0 and all(is_int(m) and m > 0 for m in v),
            "must be a non-empty tuple of positive integers",
        ),
        "channel_mult_emb": (lambda v: is_int(v) and v >= 1, "must be an integer >= 1"),
        "num_res_blocks": (lambda v: is_int(v) and v >= 1, "must be an integer >= 1"),
        "attention_resolutions": (
            lambda v: isinstance(v, (tuple, list)) and all(is_int(r) and r > 0 for r in v),
            "must be a tuple of feature-map resolutions (positive integers)",
        ),
        "dropout": (lambda v: isinstance(v, (int, float)) and 0 <= v < 1, "must be in [0, 1)"),
        "num_classes": (lambda v: is_int(v) and v >= 0, "must be 0 (unconditional) or the number of classes"),
        "augment_dim": (lambda v: is_int(v) and v >= 0, "must be 0 or EDM's augmentation label size (9)"),
        "out_channels": (lambda v: is_int(v) and v >= 0, "must be 0 (as many as the input) or positive"),
    }
    for name, (ok, what) in checks.items():
        if name in fields and not ok(fields[name]):
            raise ValueError(f"{prefix}{name}={fields[name]!r}: {what}.")


# Presets: EDM's released networks (README "exact training configurations", train.py's --arch defaults).
# ddpmpp: model_channels 128, channel_mult [2,2,2] (--cres overrides), 4 blocks, attention at 16;
# --augment > 0 sets augment_dim=9; adm: model_channels 192, channel_mult [1,2,3,4], 3 blocks, attention at
# 32, 16, 8 (DhariwalUNet's defaults). Dropout: --dropout of each row (train.py default 0.13).


def _ddpmpp(mults: tuple[int, ...], dropout: float, num_classes: int) -> dict[str, Any]:
    return dict(
        arch="ddpmpp",
        base_channels=128,
        channel_mults=mults,
        channel_mult_emb=4,
        num_res_blocks=4,
        attention_resolutions=(16,),
        dropout=dropout,
        num_classes=num_classes,
        augment_dim=9,
    )


def edm_ddpmpp_cifar10() -> dict[str, Any]:
    """edm-cifar10-32x32-cond-vp.pkl: ``--cond=1 --arch=ddpmpp`` (dropout 0.13, augment 0.12: augment_dim 9)."""
    return _ddpmpp((2, 2, 2), 0.13, 10)


def edm_ddpmpp_cifar10_uncond() -> dict[str, Any]:
    """edm-cifar10-32x32-uncond-vp.pkl: ``--cond=0 --arch=ddpmpp`` (dropout 0.13, augment_dim 9)."""
    return _ddpmpp((2, 2, 2), 0.13, 0)


def edm_ddpmpp_afhqv2_64() -> dict[str, Any]:
    """edm-afhqv2-64x64-uncond-vp.pkl: ``--cond=0 --arch=ddpmpp --cres=1,2,2,2 --dropout=0.25 --augment=0.15``."""
    return _ddpmpp((1, 2, 2, 2), 0.25, 0)


def edm_adm_imagenet64() -> dict[str, Any]:
    """edm-imagenet-64x64-cond-adm.pkl: ``--cond=1 --arch=adm --dropout=0.10 --augment=0`` (no augment_dim)."""
    return dict(
        arch="adm",
        base_channels=192,
        channel_mults=(1, 2, 3, 4),
        channel_mult_emb=4,
        num_res_blocks=3,
        attention_resolutions=(32, 16, 8),
        dropout=0.10,
        num_classes=1000,
        augment_dim=0,
    )


PRESETS: dict[str, Callable[[], dict[str, Any]]] = {
    f.__name__: f for f in (edm_ddpmpp_cifar10, edm_ddpmpp_cifar10_uncond, edm_ddpmpp_afhqv2_64, edm_adm_imagenet64)
}

# preset -> (EDM's released pickle, image shape H, W, C)
RELEASED: dict[str, tuple[str, tuple[int, int, int]]] = {
    "edm_ddpmpp_cifar10": ("edm-cifar10-32x32-cond-vp.pkl", (32, 32, 3)),
    "edm_ddpmpp_cifar10_uncond": ("edm-cifar10-32x32-uncond-vp.pkl", (32, 32, 3)),
    "edm_ddpmpp_afhqv2_64": ("edm-afhqv2-64x64-uncond-vp.pkl", (64, 64, 3)),
    "edm_adm_imagenet64": ("edm-imagenet-64x64-cond-adm.pkl", (64, 64, 3)),
}

SIGMA_DATA = 0.5  # EDMPrecond's sigma_data for every released network


# The mapping to and from EDM's state dict.


def param_shapes(model: nn.Module, image_shape: Sequence[int]) -> dict[tuple[str, ...], tuple[int, ...]]:
    """Flax parameter path -> shape of ``model`` on [1, *image_shape] inputs (abstract: jax.eval_shape)."""
    x = jax.ShapeDtypeStruct((1, *image_shape), jnp.float32)
    t = jax.ShapeDtypeStruct((1,), jnp.float32)
    tree = jax.eval_shape(model.init, jax.random.PRNGKey(0), x, t)["params"]
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {tuple(k.key for k in path): tuple(leaf.shape) for path, leaf in flat}


def edm_key(path: Sequence[str]) -> str:
    """Flax path -> EDM state-dict key: (enc_32x32_block0, conv0, kernel) -> model.enc.32x32_block0.conv0.weight."""
    head, *rest = path
    if head.startswith(("enc_", "dec_")):
        head = head.replace("_", ".", 1)  # EDM's ModuleDicts "enc" / "dec", entries named "32x32_block0"
    leaf = {"kernel": "weight", "scale": "weight", "bias": "bias"}[rest[-1]]
    return ".".join(["model", head, *rest[:-1], leaf])


def to_edm_layout(array: np.ndarray) -> np.ndarray:
    """Flax -> EDM layout: conv HWIO -> OIHW, Dense [in, out] -> Linear [out, in], vectors unchanged."""
    return {4: lambda a: a.transpose(3, 2, 0, 1), 2: lambda a: a.T}.get(array.ndim, lambda a: a)(array)


def from_edm_layout(array: np.ndarray) -> np.ndarray:
    """EDM -> Flax layout (inverse of `to_edm_layout`)."""
    return {4: lambda a: a.transpose(2, 3, 1, 0), 2: lambda a: a.T}.get(array.ndim, lambda a: a)(array)


def edm_state_dict_shapes(model: EDMUNet, image_shape: Sequence[int]) -> tuple[dict[str, tuple], dict[str, tuple]]:
    """(parameters, buffers): the keys and shapes of EDM's ``EDMPrecond.state_dict()`` for the same network.

    The buffers are the [1, 1] resampling filters of the first conv and the skip path of every up/down block
    (EDM registers them only when a conv resamples). Cached by the model's fields: a converter tries every preset.
    """
    fields = tuple((f, tuple(v) if isinstance(v, list) else v) for f in FIELDS for v in [getattr(model, f)])
    params, buffers = _edm_state_dict_shapes(fields, tuple(image_shape))
    return dict(params), dict(buffers)


@functools.lru_cache(maxsize=32)
def _edm_state_dict_shapes(fields: tuple, image_shape: tuple) -> tuple[tuple, tuple]:
    model = EDMUNet(**dict(fields))
    params = {
        edm_key(p): tuple(to_edm_layout(np.empty(s, np.int8)).shape)
        for p, s in param_shapes(model, image_shape).items()
    }
    blocks = sorted({k.rsplit(".", 2)[0] for k in params if k.split(".")[2].endswith(("_down", "_up"))})
    buffers = {f"{b}.{conv}.resample_filter": RESAMPLE_FILTER.shape for b in blocks for conv in ("conv0", "skip")}
    return tuple(params.items()), tuple(buffers.items())


def _prefixed(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Keys as ``EDMPrecond.state_dict()`` names them: adds ``model.`` to a ``net.model.state_dict()``."""
    bare = not any(k.startswith("model.") for k in state_dict)
    return {(f"model.{k}" if bare else k): v for k, v in state_dict.items()}


def check_state_dict(state_dict: Mapping[str, Any], model: EDMUNet, image_shape: Sequence[int]) -> list[str]:
    """The differences between a state dict's keys and shapes and the ones ``model`` needs (empty: it fits)."""
    params, buffers = edm_state_dict_shapes(model, image_shape)
    expected, given = {**params, **buffers}, _prefixed(state_dict)
    shapes = {k: tuple(np.shape(v)) for k, v in given.items()}
    problems = [f"missing {k} {list(s)}" for k, s in expected.items() if k not in shapes]
    problems += [f"unexpected {k} {list(s)}" for k, s in shapes.items() if k not in expected]
    problems += [
        f"{k} has shape {list(shapes[k])}, expected {list(s)}" for k, s in expected.items() if shapes.get(k, s) != s
    ]
    for k in buffers:
        if shapes.get(k) == RESAMPLE_FILTER.shape and not np.array_equal(np.asarray(given[k]), RESAMPLE_FILTER):
            problems.append(f"{k} is not EDM's [1, 1] filter (all 0.25)")
    return problems


def params_from_edm(state_dict: Mapping[str, Any], model: EDMUNet, image_shape: Sequence[int]) -> dict[str, Any]:
    """Flax params of ``model`` from EDM's state dict (NumPy arrays by EDM key). Raises ValueError on any mismatch."""
    problems = check_state_dict(state_dict, model, image_shape)
    if problems:
        raise ValueError(f"{len(problems)} mismatches with EDM's network: " + "; ".join(problems[:6]))
    given = _prefixed(state_dict)
    params: dict[str, Any] = {}
    for path in param_shapes(model, image_shape):
        node = params
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = np.ascontiguousarray(from_edm_layout(np.asarray(given[edm_key(path)], np.float32)))
    return params
