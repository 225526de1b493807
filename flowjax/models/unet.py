"""UNet velocity networks for images: the DDPM/ADM and DDPM++ (NCSN++) families in one Flax module.

One file of about 420 lines on purpose: its blocks are only meaningful inside this one network, and the
presets at its end are the constructors of the papers' variants.

One configurable UNet covers the image networks of the five papers:

- **ADM** (Dhariwal & Nichol 2021, guided-diffusion ``UNetModel``): LOOM-CFM's network (LOOM-CFM App. C,
  Table 4). GroupNorm + SiLU residual blocks with dropout, multi-head QKV attention with a fixed number of
  heads or a fixed number of channels per head, zero-initialised residual and output convolutions,
  optional scale-shift norm for the time embedding, optional residual-block up/down sampling.
- **DDPM** (Ho et al. 2020) as re-implemented in ermongroup/ddim (the "simple" UNet): DANSM's
  diffusion-model runs (DANSM Table 4; the architecture is in DANSM's code, not its paper). It is the ADM
  layout with strided-conv downsampling, nearest-neighbour + conv upsampling, one attention head and no
  scale-shift norm.
- **DDPM++** (Song et al. 2021, score_sde ``ncsnpp.py`` with the ``ddpmpp`` configs): rectified flow's and
  DANSM's CIFAR-10 network (DANSM's code; the paper states no architecture), and EDM's ``SongUNet`` port
  of it (Karras et al. 2022): the curvature paper's MNIST/CIFAR-10 network (curvature App. C, Table 4) and
  LMM's CIFAR-10/AFHQ one (LMM App. A.4, Table 6). BigGAN-style residual up/down blocks and skip sums
  divided by sqrt(2).

The two ``layout`` values differ in two places only:

========================================  ==============================  ===========================
                                          ``"adm"`` (DDPM, ermongroup,    ``"ddpmpp"`` (NCSN++/DDPM++,
                                          ADM)                            EDM SongUNet)
========================================  ==============================  ===========================
decoder attention at a resolution         after every residual block      once per level, after the
                                                                          level's last residual block
skip path of a resampling residual block  identity (resampled)            1x1 conv (resampled)
========================================  ==============================  ===========================

(and in the default initialisers and GroupNorm epsilon: PyTorch's defaults for ``"adm"``, score_sde's
fan-avg uniform and 1e-6 for ``"ddpmpp"``). Both layouts zero-initialise the last conv of every residual
block, the attention output projection and the output conv (ADM's ``zero_module``; score_sde's
``init_scale=0``; EDM's ``init_zero``), so a freshly initialised network outputs exactly zero. GroupNorm
uses min(32, C/4) groups (ADM's 32 for every paper width; score_sde's and EDM's rule for narrow nets).

Time: flowjax's convention (t = 0 noise, t = 1 data); the network embeds ``t * time_scale``
(rectified flow's DDPM++ sees 999 t; LOOM-CFM's ADM sees raw t). Images are NHWC.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

LAYOUTS = ("adm", "ddpmpp")
TIME_EMBEDS = ("positional", "fourier")
FOURIER_SCALE = 16.0  # std of NCSN++'s Gaussian Fourier frequencies (score_sde `fourier_scale`)

_INITS: dict[str, Callable] = {
    "adm": nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform"),  # PyTorch's Conv/Linear default
    "ddpmpp": nn.initializers.variance_scaling(1.0, "fan_avg", "uniform"),  # score_sde `default_init`
}
_NORM_EPS = {"adm": 1e-5, "ddpmpp": 1e-6}


def positional_embedding(s: jax.Array, dim: int, max_period: float = 10_000.0) -> jax.Array:
    """[B] (scaled) times -> [B, dim] transformer sinusoids [cos, sin] at periods 2 pi .. max_period (ADM)."""
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
    angles = s[:, None] * freqs[None, :]
    return jnp.concatenate([jnp.cos(angles), jnp.sin(angles)], axis=-1)


def fourier_embedding(s: jax.Array, dim: int, scale: float = FOURIER_SCALE) -> jax.Array:
    """[B] (scaled) times -> [B, dim] Gaussian random Fourier features [sin, cos] (NCSN++).

    The dim/2 frequencies ~ N(0, scale^2) are constants (numpy seed 0), not parameters: score_sde stops
    their gradient, EDM keeps them as a buffer.
    """
    freqs = jnp.asarray(np.random.default_rng(0).standard_normal(dim // 2) * scale, jnp.float32)
    angles = 2 * jnp.pi * s[:, None] * freqs[None, :]
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)


def _num_groups(channels: int) -> int:
    groups = min(32, max(channels // 4, 1))
    while channels % groups:
        groups -= 1
    return groups


def _downsample_2x(x: jax.Array) -> jax.Array:
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def _upsample_2x(x: jax.Array) -> jax.Array:
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, time(+class) embedding injected between, optional 2x up/down sampling.

    ADM ``ResBlock`` / score_sde ``ResnetBlockBigGANpp`` / ermongroup ``ResnetBlock``.
    """

    out_channels: int
    resample: str = "none"  # none | up | down
    dropout: float = 0.0
    scale_shift_norm: bool = False
    skip_rescale: bool = False
    project_resampled_skip: bool = False  # "ddpmpp": 1x1 conv on the skip whenever it is resampled
    norm_eps: float = 1e-5
    kernel_init: Callable = nn.initializers.lecun_normal()
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, emb: jax.Array, train: bool) -> jax.Array:
        c_in, c_out = x.shape[-1], self.out_channels
        conv = lambda c, k, init, name: nn.Conv(
            c, (k, k), padding="SAME", kernel_init=init, dtype=self.dtype, name=name
        )
        h = nn.silu(nn.GroupNorm(_num_groups(c_in), epsilon=self.norm_eps, dtype=self.dtype, name="norm_in")(x))
        if self.resample != "none":
            resample = _upsample_2x if self.resample == "up" else _downsample_2x
            h, x = resample(h), resample(x)
        h = conv(c_out, 3, self.kernel_init, "conv_in")(h)
        e = nn.Dense(
            c_out * (2 if self.scale_shift_norm else 1), kernel_init=self.kernel_init, dtype=self.dtype, name="emb"
        )(nn.silu(emb))[:, None, None, :]
        norm_out = nn.GroupNorm(_num_groups(c_out), epsilon=self.norm_eps, dtype=self.dtype, name="norm_out")
        if self.scale_shift_norm:
            scale, shift = jnp.split(e, 2, axis=-1)
            h = nn.silu(norm_out(h) * (1 + scale) + shift)
        else:
            h = nn.silu(norm_out(h + e))
        h = nn.Dropout(self.dropout, deterministic=not train)(h)
        h = conv(c_out, 3, nn.initializers.zeros, "conv_out")(h)
        if c_in != c_out or (self.project_resampled_skip and self.resample != "none"):
            x = conv(c_out, 1, self.kernel_init, "skip")(x)
        out = x + h
        return out / math.sqrt(2.0) if self.skip_rescale else out


class Attention(nn.Module):
    """Multi-head self-attention over the H*W positions, residual; ADM ``AttentionBlock`` (legacy QKV order)."""

    num_heads: int
    skip_rescale: bool = False
    norm_eps: float = 1e-5
    kernel_init: Callable = nn.initializers.lecun_normal()
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        b, hgt, wid, c = x.shape
        heads, ch = self.num_heads, c // self.num_heads
        h = nn.GroupNorm(_num_groups(c), epsilon=self.norm_eps, dtype=self.dtype, name="norm")(x)
        qkv = nn.Dense(3 * c, kernel_init=self.kernel_init, dtype=self.dtype, name="qkv")(h.reshape(b, hgt * wid, c))
        q, k, v = jnp.moveaxis(qkv.reshape(b, hgt * wid, heads, 3, ch), 3, 0)
        logits = jnp.einsum("bqhc,bkhc->bhqk", q, k).astype(jnp.float32) / math.sqrt(ch)
        weights = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
        h = jnp.einsum("bhqk,bkhc->bqhc", weights, v).reshape(b, hgt * wid, c)
        h = nn.Dense(c, kernel_init=nn.initializers.zeros, dtype=self.dtype, name="proj_out")(h)
        out = x + h.reshape(b, hgt, wid, c)
        return out / math.sqrt(2.0) if self.skip_rescale else out


def check_fields(fields: Mapping[str, Any], prefix: str = "") -> None:
    """Raises ValueError naming ``prefix + field`` for every UNet field value that cannot work.

    Only the fields present in ``fields`` are checked (``models.make`` passes the config's, ``UNet`` its own).
    """

    def fail(name: str, what: str) -> None:
        raise ValueError(f"{prefix}{name}={fields[name]!r}: {what}.")

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    checks: dict[str, tuple[Callable[[Any], bool], str]] = {
        "base_channels": (lambda v: is_int(v) and v > 0 and v % 2 == 0, "must be a positive even integer"),
        "channel_mults": (
            lambda v: isinstance(v, (tuple, list)) and len(v) > 0 and all(is_int(m) and m > 0 for m in v),
            "must be a non-empty tuple of positive integers",
        ),
        "num_res_blocks": (lambda v: is_int(v) and v >= 1, "must be an integer >= 1"),
        "attention_resolutions": (
            lambda v: isinstance(v, (tuple, list)) and all(is_int(r) and r > 0 for r in v),
            "must be a tuple of feature-map resolutions (positive integers)",
        ),
        "num_heads": (lambda v: is_int(v) and v >= 1, "must be an integer >= 1"),
        "head_channels": (lambda v: is_int(v) and (v == -1 or v >= 1), "must be -1 (use num_heads) or >= 1"),
        "dropout": (lambda v: isinstance(v, (int, float)) and 0 <= v < 1, "must be in [0, 1)"),
        "time_embed": (lambda v: v in TIME_EMBEDS, f"must be one of {TIME_EMBEDS}"),
        "time_scale": (lambda v: isinstance(v, (int, float)) and v > 0, "must be a positive number"),
        "resblock_updown": (lambda v: isinstance(v, bool), "must be True or False"),
        "scale_shift_norm": (lambda v: isinstance(v, bool), "must be True or False"),
        "skip_rescale": (lambda v: isinstance(v, bool), "must be True or False"),
        "num_classes": (lambda v: is_int(v) and v >= 0, "must be 0 (unconditional) or the number of classes"),
        "out_channels": (lambda v: is_int(v) and v >= 0, "must be 0 (as many as the input) or positive"),
        "layout": (lambda v: v in LAYOUTS, f"must be one of {LAYOUTS}"),
    }
    for name, (ok, what) in checks.items():
        if name in fields and not ok(fields[name]):
            fail(name, what)


class UNet(nn.Module):
    """x [B, H, W, C], t [B] (, y [B] int) -> [B, H, W, out_channels or C].

    H and W must be divisible by 2^(len(channel_mults) - 1). ``attention_resolutions`` are feature-map
    heights (e.g. (16,) on 32x32 inputs), and the bottleneck always has one attention layer. Dropout is
    active only with ``train=True`` and draws from the ``"dropout"`` rng stream. With ``num_classes > 0``
    a class embedding is added to the time embedding; class index ``num_classes`` is the "null" class,
    used when ``y`` is None (unconditional / classifier-free guidance).
    """

    base_channels: int = 128
    channel_mults: tuple[int, ...] = (1, 2, 2, 2)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (16,)
    num_heads: int = 1
    head_channels: int = -1  # channels per attention head; -1: use num_heads heads
    dropout: float = 0.0
    time_embed: str = "positional"  # positional | fourier
    time_scale: float = 1000.0  # the network embeds t * time_scale
    resblock_updown: bool = False  # resample with residual blocks (BigGAN / ADM) instead of conv layers
    scale_shift_norm: bool = False  # ADM's GroupNorm(h) * (1 + scale(emb)) + shift(emb)
    skip_rescale: bool = False  # divide residual sums by sqrt(2) (DDPM++)
    num_classes: int = 0
    out_channels: int = 0  # 0: as many as the input
    layout: str = "adm"  # adm (DDPM / ermongroup / ADM) | ddpmpp (NCSN++ / DDPM++ / EDM SongUNet)
    dtype: Any = jnp.float32

    def __post_init__(self) -> None:
        check_fields({f: getattr(self, f) for f in FIELDS if f != "dtype"}, prefix="UNet.")
        super().__post_init__()

    def _heads(self, channels: int, where: str) -> int:
        if self.head_channels != -1:
            if channels % self.head_channels:
                raise ValueError(
                    f"UNet: attention {where} has {channels} channels, not a multiple of "
                    f"head_channels={self.head_channels}."
                )
            return channels // self.head_channels
        if channels % self.num_heads:
            raise ValueError(
                f"UNet: attention {where} has {channels} channels, not a multiple of num_heads={self.num_heads}."
            )
        return self.num_heads

    def _check_input(self, x: jax.Array) -> None:
        if x.ndim != 4:
            raise ValueError(f"UNet expects NHWC images [B, H, W, C]; got shape {x.shape}.")
        factor = 2 ** (len(self.channel_mults) - 1)
        height, width = x.shape[1:3]
        if height % factor or width % factor:
            raise ValueError(
                f"UNet: input resolution {height}x{width} is not divisible by {factor} = 2^(number of "
                f"levels - 1) for channel_mults={tuple(self.channel_mults)}; pad or crop the images, "
                "or use fewer levels."
            )
        resolutions = [height // 2**level for level in range(len(self.channel_mults))]
        missing = sorted(set(self.attention_resolutions) - set(resolutions))
        if missing:
            raise ValueError(
                f"UNet: attention_resolutions {missing} are not feature-map resolutions of this net "
                f"on {height}x{width} inputs (those are {resolutions})."
            )
        for level, res in enumerate(resolutions):
            if res in self.attention_resolutions:
                self._heads(self.base_channels * self.channel_mults[level], f"at resolution {res}")
        self._heads(self.base_channels * self.channel_mults[-1], "in the bottleneck")

    @nn.compact
    def __call__(self, x: jax.Array, t: jax.Array, y: jax.Array | None = None, *, train: bool = False) -> jax.Array:
        self._check_input(x)
        batch, c0 = x.shape[0], self.base_channels
        init, eps, ddpmpp = _INITS[self.layout], _NORM_EPS[self.layout], self.layout == "ddpmpp"
        dense = lambda c, name: nn.Dense(c, kernel_init=init, dtype=self.dtype, name=name)
        conv3 = lambda c, name, kinit=init: nn.Conv(
            c, (3, 3), padding="SAME", kernel_init=kinit, dtype=self.dtype, name=name
        )

        def block(h, c, name, resample="none"):
            return ResBlock(
                c,
                resample,
                self.dropout,
                self.scale_shift_norm,
                self.skip_rescale,
                ddpmpp,
                eps,
                init,
                self.dtype,
                name=name,
            )(h, emb, train)

        def attend(h, name):
            return Attention(self._heads(h.shape[-1], name), self.skip_rescale, eps, init, self.dtype, name=name)(h)

        s = jnp.broadcast_to(jnp.asarray(t, jnp.float32), (batch,)) * self.time_scale
        embed = positional_embedding if self.time_embed == "positional" else fourier_embedding
        emb = dense(4 * c0, "time_dense_1")(nn.silu(dense(4 * c0, "time_dense_0")(embed(s, c0))))
        if self.num_classes:
            labels = jnp.full((batch,), self.num_classes, jnp.int32) if y is None else y
            emb = emb + nn.Embed(self.num_classes + 1, 4 * c0, dtype=self.dtype, name="class_embed")(labels)
        elif y is not None:
            raise ValueError("UNet: class labels y were given to an unconditional net (num_classes=0).")

        h = conv3(c0, "conv_in")(x.astype(self.dtype))
        skips, res, last = [h], x.shape[1], len(self.channel_mults) - 1
        for level, mult in enumerate(self.channel_mults):
            for i in range(self.num_res_blocks):
                h = block(h, c0 * mult, f"down_{level}_block_{i}")
                if res in self.attention_resolutions:
                    h = attend(h, f"down_{level}_attn_{i}")
                skips.append(h)
            if level != last:
                if self.resblock_updown:
                    h = block(h, h.shape[-1], f"down_{level}_resample", resample="down")
                else:
                    h = nn.Conv(
                        h.shape[-1],
                        (3, 3),
                        strides=(2, 2),
                        padding=((1, 1), (1, 1)),
                        kernel_init=init,
                        dtype=self.dtype,
                        name=f"down_{level}_resample",
                    )(h)
                skips.append(h)
                res //= 2

        h = block(h, h.shape[-1], "mid_block_0")
        h = attend(h, "mid_attn")
        h = block(h, h.shape[-1], "mid_block_1")

        for level in reversed(range(len(self.channel_mults))):
            for i in range(self.num_res_blocks + 1):
                h = block(
                    jnp.concatenate([h, skips.pop()], axis=-1), c0 * self.channel_mults[level], f"up_{level}_block_{i}"
                )
                if res in self.attention_resolutions and not ddpmpp:
                    h = attend(h, f"up_{level}_attn_{i}")
            if res in self.attention_resolutions and ddpmpp:
                h = attend(h, f"up_{level}_attn")
            if level != 0:
                if self.resblock_updown:
                    h = block(h, h.shape[-1], f"up_{level}_resample", resample="up")
                else:
                    h = conv3(h.shape[-1], f"up_{level}_resample")(_upsample_2x(h))
                res *= 2

        h = nn.silu(nn.GroupNorm(_num_groups(h.shape[-1]), epsilon=eps, dtype=self.dtype, name="norm_out")(h))
        h = conv3(self.out_channels or x.shape[-1], "conv_out", nn.initializers.zeros)(h)
        return h.astype(x.dtype)


FIELDS = tuple(f for f in UNet.__dataclass_fields__ if f not in ("parent", "name"))


def num_params(module: nn.Module, input_shape: Sequence[int]) -> int:
    """Number of parameters of ``module`` on inputs of shape [B, H, W, C]; abstract (jax.eval_shape), no FLOPs."""
    x = jax.ShapeDtypeStruct(tuple(input_shape), jnp.float32)
    t = jax.ShapeDtypeStruct((input_shape[0],), jnp.float32)
    shapes = jax.eval_shape(module.init, jax.random.PRNGKey(0), x, t)
    return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(shapes["params"]))


# Presets: the kwargs of the networks the papers train; configs cite them as model.preset.


def ddpmpp_cifar10() -> dict[str, Any]:
    """DDPM++ of rectified flow / DANSM on CIFAR-10 (DANSM Tables 1, 2, 6; the paper gives no architecture, the
    authors' released code's `cifar10_rf_gaussian_ddpmpp` config does: nf 128, ch_mult (1,2,2,2), 4 res
    blocks, attention at 16, dropout 0.15, positional embedding of 999 t, BigGAN residual up/down blocks,
    skip_rescale, no FIR)."""
    return dict(
        base_channels=128,
        channel_mults=(1, 2, 2, 2),
        num_res_blocks=4,
        attention_resolutions=(16,),
        num_heads=1,
        head_channels=-1,
        dropout=0.15,
        time_embed="positional",
        time_scale=999.0,
        resblock_updown=True,
        scale_shift_norm=False,
        skip_rescale=True,
        layout="ddpmpp",
    )


def ddpm_cifar10() -> dict[str, Any]:
    """DDPM UNet of DANSM's diffusion-model runs on CIFAR-10 (DANSM Table 4; the paper gives no architecture,
    the authors' released code uses the ermongroup DDIM "simple" UNet: ch 128, ch_mult (1,2,2,2), 2 res blocks,
    attention at 16, dropout 0.1; time scaled to DDPM's 1000 discrete steps)."""
    return dict(
        base_channels=128,
        channel_mults=(1, 2, 2, 2),
        num_res_blocks=2,
        attention_resolutions=(16,),
        num_heads=1,
        head_channels=-1,
        dropout=0.1,
        time_embed="positional",
        time_scale=999.0,
        resblock_updown=False,
        scale_shift_norm=False,
        skip_rescale=False,
        layout="adm",
    )


def _adm_loom(channels: int, num_res_blocks: int, mults: tuple[int, ...], attention: tuple[int, ...]) -> dict[str, Any]:
    # LOOM-CFM App. C (ADM, Dhariwal & Nichol 2021) and its released code: guided-diffusion UNetModel with
    # use_scale_shift_norm=False, resblock_updown=False, conv_resample=True; sinusoidal embedding of raw t in
    # [0, 1]; Table 4: 4 heads, 64 head channels (64 wins, as in guided-diffusion), dropout 0.1.
    return dict(
        base_channels=channels,
        channel_mults=mults,
        num_res_blocks=num_res_blocks,
        attention_resolutions=attention,
        num_heads=4,
        head_channels=64,
        dropout=0.1,
        time_embed="positional",
        time_scale=1.0,
        resblock_updown=False,
        scale_shift_norm=False,
        skip_rescale=False,
        layout="adm",
    )


def adm_cifar10() -> dict[str, Any]:
    """ADM of LOOM-CFM on CIFAR-10 (LOOM-CFM Table 4, column CIFAR10: 128 channels, 2 res blocks, [1,2,2,2],
    4 heads, 64 head channels, attention at [16], dropout 0.1; input 3x32x32)."""
    return _adm_loom(128, 2, (1, 2, 2, 2), (16,))


def adm_imagenet32() -> dict[str, Any]:
    """ADM of LOOM-CFM on ImageNet-32 (LOOM-CFM Table 4, column ImageNet-32: 128 channels, 3 res blocks,
    [1,2,2,2], 4 heads, 64 head channels, attention at [16, 8], dropout 0.1; input 3x32x32)."""
    return _adm_loom(128, 3, (1, 2, 2, 2), (16, 8))


def adm_imagenet64() -> dict[str, Any]:
    """ADM of LOOM-CFM on ImageNet-64 (LOOM-CFM Table 4, column ImageNet-64: 192 channels, 2 res blocks,
    [1,2,3,4], 4 heads, 64 head channels, attention at [16], dropout 0.1; input 3x64x64)."""
    return _adm_loom(192, 2, (1, 2, 3, 4), (16,))


def adm_ffhq256_latent() -> dict[str, Any]:
    """ADM of LOOM-CFM on FFHQ-256 latents (LOOM-CFM Table 4, column FFHQ256: 256 channels, 2 res blocks,
    [1,2,3,4], 4 heads, 64 head channels, attention at [16, 8, 4], dropout 0.1; input 4x32x32 SD-VAE latents)."""
    return _adm_loom(256, 2, (1, 2, 3, 4), (16, 8, 4))


def _ddpmpp_edm(
    channels: int, num_res_blocks: int, attention: tuple[int, ...], out_channels: int = 0
) -> dict[str, Any]:
    # Curvature paper App. C (code configs/*.json): EDM SongUNet, channel_mult [2,2,2], channel_mult_emb 4,
    # positional embedding of raw t, one attention head, dropout 0.13 (Table 4), skip_scale sqrt(0.5),
    # residual resampling blocks with 1x1 skip projection (resample_proj=True).
    return dict(
        base_channels=channels,
        channel_mults=(2, 2, 2),
        num_res_blocks=num_res_blocks,
        attention_resolutions=attention,
        num_heads=1,
        head_channels=-1,
        dropout=0.13,
        time_embed="positional",
        time_scale=1.0,
        resblock_updown=True,
        scale_shift_norm=False,
        skip_rescale=True,
        out_channels=out_channels,
        layout="ddpmpp",
    )


def ddpmpp_edm_cifar10() -> dict[str, Any]:
    """DDPM++ (EDM SongUNet) of the curvature paper on CIFAR-10 (curvature Table 4: channel multiplier 128,
    channels per resolution [2,2,2], 4 ResBlocks, dropout 0.13, 55.73M parameters; attention at 16 per its
    config). The same network is LMM's CIFAR-10 generator (LMM Table 6)."""
    return _ddpmpp_edm(128, 4, (16,))


def ddpmpp_edm_mnist() -> dict[str, Any]:
    """DDPM++ (EDM SongUNet) of the curvature paper on MNIST (curvature Table 4: channel multiplier 32,
    [2,2,2], 2 ResBlocks, dropout 0.13, 2.15M parameters; 1x28x28 inputs, so attention only in the bottleneck)."""
    return _ddpmpp_edm(32, 2, ())


def ddpmpp_edm_encoder_cifar10() -> dict[str, Any]:
    """The curvature paper's "small" CIFAR-10 encoder q_phi(z|x) (curvature App. C and Table 4: the MNIST
    generator architecture, 32 channels, [2,2,2], 2 ResBlocks, out_channels 2C = 6 for [mu, log sigma^2];
    2.2M parameters)."""
    return _ddpmpp_edm(32, 2, (16,), out_channels=6)


PRESETS: dict[str, Callable[[], dict[str, Any]]] = {
    f.__name__: f
    for f in (
        ddpmpp_cifar10,
        ddpm_cifar10,
        adm_cifar10,
        adm_imagenet32,
        adm_imagenet64,
        adm_ffhq256_latent,
        ddpmpp_edm_cifar10,
        ddpmpp_edm_mnist,
        ddpmpp_edm_encoder_cifar10,
    )
}
