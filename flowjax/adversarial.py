"""The adversarial loss of LMM's second training stage: DiffAugment, GAN losses, the adaptive weight.

"Generative Lines Matching Models" (Matityahu & Fattal), Eq. 5, adds an adversarial loss to the lines
loss, following CTM ("Consistency Trajectory Models", Kim et al. 2024, Sec. 4.2 and App. C), whose
discriminator is StyleGAN-XL's ("StyleGAN-XL: Scaling StyleGAN to Large Diverse Datasets", Sauer et al.
2022, Sec. 3), the projected discriminator of "Projected GANs Converge Faster" (Sauer et al. 2021,
Sec. 3): a frozen pretrained feature network, fixed random projections of its features, one small
trained head per feature scale (`flowjax/models/discriminator.py`). This file holds the pure functions
around that network:

- `diff_augment`: "Differentiable Augmentation for Data-Efficient GAN Training" (Zhao et al. 2020,
  Sec. 3), the policy color, translation, cutout that Projected GAN applies to every discriminator input
  (``pg_modules/discriminator.py``, ``ProjectedDiscriminator.forward``), with Projected GAN's ratios
  (translation 0.125, cutout 0.2; DiffAugment's own default cutout ratio is 0.5).
- `resize`: the bilinear resize to the feature network's resolution (224 in Projected GAN's
  ``interp224``), applied after the augmentation as there.
- `discriminator_logits`: augment, resize, features, discriminator, in that order.
- the hinge losses (Projected GAN's, StyleGAN-XL's and CTM's choice) and the log losses of LMM Eq. 5.
- `adaptive_weight`: the weight of "Taming Transformers for High-Resolution Image Synthesis" (Esser et
  al. 2021, Eq. 7, VQGAN), lambda = ||grad_L L_rec|| / (||grad_L L_GAN|| + delta) on the generator's last
  layer L, which CTM uses for its GAN term (CTM Sec. 4.2).

Images are NHWC in [-1, 1] (flowjax's convention), which is also the range DiffAugment's code works in:
its brightness offset U(-0.5, 0.5) is added in that range.
"""

from __future__ import annotations

from typing import Any, Callable, Hashable, Mapping, Sequence

import jax
import jax.numpy as jnp

from flowjax import keys

POLICIES = ("color", "translation", "cutout")
TRANSLATION_RATIO = 0.125  # Projected GAN pg_modules/diffaug.py, rand_translation (DiffAugment's default too)
CUTOUT_RATIO = 0.2  # Projected GAN pg_modules/diffaug.py, rand_cutout (DiffAugment's own default is 0.5)

Logits = jax.Array | Sequence[jax.Array]
Path = Sequence[Hashable]


# --------------------------------------------------------------------------------------------------------------
# DiffAugment
# --------------------------------------------------------------------------------------------------------------


def parse_policy(policy: str | Sequence[str]) -> tuple[str, ...]:
    """A DiffAugment policy ("color,translation,cutout" or a sequence of names) as a tuple of `POLICIES` names;
    ValueError naming any unknown one."""
    if isinstance(policy, str):
        policy = tuple(p.strip() for p in policy.split(",") if p.strip())
    policy = tuple(policy)
    unknown = [p for p in policy if p not in POLICIES]
    if unknown:
        raise ValueError(f"DiffAugment policy {unknown} is unknown; use a subset of {POLICIES}.")
    return policy


def _ratio_size(size: int, ratio: float) -> int:
    """``int(size * ratio + 0.5)``: DiffAugment's rounding (half up) of a ratio of the image side."""
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"DiffAugment ratio {ratio} must be in [0, 1].")
    return int(size * ratio + 0.5)


def diff_augment_draws(
    key: jax.Array,
    batch: int,
    height: int,
    width: int,
    translation: float = TRANSLATION_RATIO,
    cutout: float = CUTOUT_RATIO,
) -> dict[str, jax.Array]:
    """The random draws of `diff_augment` for a batch of ``batch`` images of ``height`` x ``width``.

    Example j draws from ``fold_in(key, j)`` (`flowjax.keys.per_index_keys`), so its augmentation does not
    depend on the batch it is in. The distributions are DiffAugment's (Zhao et al. 2020, Sec. 3; its
    ``DiffAugment_pytorch.py``), one draw per example:

    - ``brightness`` [B]: U(-0.5, 0.5), added;
    - ``saturation`` [B]: U(0, 2), the factor around each pixel's mean over channels;
    - ``contrast`` [B]: U(0.5, 1.5), the factor around the image's mean over pixels and channels;
    - ``shift`` [B, 2] int32: (rows, columns) the content moves by, uniform on {-s, ..., s} with
      s = int(side * translation + 0.5) for each side;
    - ``cutout`` [B, 2] int32: the top-left corner (row, column) of the cut-out square of side
      c = int(side * cutout + 0.5). As in DiffAugment's ``rand_cutout``, the centre offset is uniform on
      {0, ..., side - c mod 2} and the corner is offset - c // 2, so the square can stick out of the image
      (its inside part is cut).
    """
    sh, sw = _ratio_size(height, translation), _ratio_size(width, translation)
    ch, cw = _ratio_size(height, cutout), _ratio_size(width, cutout)

    def one(k: jax.Array) -> dict[str, jax.Array]:
        kb, ks, kc, kth, ktw, kch, kcw = jax.random.split(k, 7)
        return {
            "brightness": jax.random.uniform(kb, (), minval=-0.5, maxval=0.5),
            "saturation": jax.random.uniform(ks, (), minval=0.0, maxval=2.0),
            "contrast": jax.random.uniform(kc, (), minval=0.5, maxval=1.5),
            "shift": jnp.stack(
                [jax.random.randint(kth, (), -sh, sh + 1), jax.random.randint(ktw, (), -sw, sw + 1)]
            ).astype(jnp.int32),
            "cutout": jnp.stack(
                [
                    jax.random.randint(kch, (), 0, height + 1 - ch % 2) - ch // 2,
                    jax.random.randint(kcw, (), 0, width + 1 - cw % 2) - cw // 2,
                ]
            ).astype(jnp.int32),
        }

    return jax.vmap(one)(keys.per_index_keys(key, jnp.arange(batch)))


def _color(x: jax.Array, draws: Mapping[str, jax.Array]) -> jax.Array:
    """DiffAugment's ``rand_brightness``, ``rand_saturation``, ``rand_contrast``, in that order."""
    b, s, c = (draws[name].astype(x.dtype)[:, None, None, None] for name in ("brightness", "saturation", "contrast"))
    x = x + b
    mean = jnp.mean(x, axis=-1, keepdims=True)  # per pixel, over channels (DiffAugment: x.mean(dim=1), NCHW)
    x = (x - mean) * s + mean
    mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)  # per image
    return (x - mean) * c + mean


def _translate(x: jax.Array, shift: jax.Array) -> jax.Array:
    """out[b, i, j] = x[b, i - shift[b, 0], j - shift[b, 1]], zero where that falls outside the image.

    DiffAugment's ``rand_translation`` (a gather from the zero-padded image); a gather, so differentiable in x.
    """
    b, h, w, _ = x.shape
    rows = jnp.arange(h)[None, :] - shift[:, :1]  # [B, H]
    cols = jnp.arange(w)[None, :] - shift[:, 1:]  # [B, W]
    inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    moved = x[jnp.arange(b)[:, None, None], jnp.clip(rows, 0, h - 1)[:, :, None], jnp.clip(cols, 0, w - 1)[:, None, :]]
    return jnp.where(inside[..., None], moved, jnp.zeros((), x.dtype))


def _cutout(x: jax.Array, corner: jax.Array, size: tuple[int, int]) -> jax.Array:
    """Zero the square of ``size`` at ``corner`` (its part inside the image); DiffAugment's ``rand_cutout``."""
    _, h, w, _ = x.shape
    rows = jnp.arange(h)[None, :]
    cols = jnp.arange(w)[None, :]
    in_rows = (rows >= corner[:, :1]) & (rows < corner[:, :1] + size[0])
    in_cols = (cols >= corner[:, 1:]) & (cols < corner[:, 1:] + size[1])
    cut = in_rows[:, :, None] & in_cols[:, None, :]
    return jnp.where(cut[..., None], jnp.zeros((), x.dtype), x)


def diff_augment_apply(
    x: jax.Array,
    draws: Mapping[str, jax.Array],
    policy: str | Sequence[str] = POLICIES,
    cutout: float = CUTOUT_RATIO,
) -> jax.Array:
    """Applies the augmentations of ``policy``, in its order, with the given ``draws`` (`diff_augment_draws`).

    Affine in x for fixed draws, hence differentiable. ``cutout`` is the ratio the square's side is drawn
    with (the draws hold its corner); the translation's size is in the draws.
    """
    if x.ndim != 4:
        raise ValueError(f"diff_augment: images must be NHWC [B, H, W, C], got shape {x.shape}.")
    _, h, w, _ = x.shape
    for p in parse_policy(policy):
        if p == "color":
            x = _color(x, draws)
        elif p == "translation":
            x = _translate(x, draws["shift"])
        else:
            x = _cutout(x, draws["cutout"], (_ratio_size(h, cutout), _ratio_size(w, cutout)))
    return x


def diff_augment(
    key: jax.Array,
    x: jax.Array,
    policy: str | Sequence[str] = POLICIES,
    translation: float = TRANSLATION_RATIO,
    cutout: float = CUTOUT_RATIO,
) -> jax.Array:
    """DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training", Sec. 3)
    of NHWC images x in [-1, 1], random per example, differentiable in x.

    ``policy``: a subset of ("color", "translation", "cutout"), or the comma-separated string of
    DiffAugment's code, applied in that order. color: brightness + U(-0.5, 0.5), then saturation
    x U(0, 2) around each pixel's channel mean, then contrast x U(0.5, 1.5) around the image mean.
    translation: an integer shift of up to int(side * translation + 0.5) pixels on each axis, zero fill.
    cutout: one zero square of side int(side * cutout + 0.5) at a random place. See `diff_augment_draws`
    for the exact distributions, and `diff_augment_apply` to apply given draws.

    Augment real and generated images with different keys (or in one concatenated batch): example j of two
    batches augmented with one key gets the same augmentation.
    """
    if x.ndim != 4:
        raise ValueError(f"diff_augment: images must be NHWC [B, H, W, C], got shape {x.shape}.")
    policy = parse_policy(policy)
    if not policy:
        return x
    b, h, w, _ = x.shape
    return diff_augment_apply(x, diff_augment_draws(key, b, h, w, translation, cutout), policy, cutout)


# --------------------------------------------------------------------------------------------------------------
# Resize and the discriminator's input pipeline
# --------------------------------------------------------------------------------------------------------------


def resize(x: jax.Array, size: int | tuple[int, int], antialias: bool = False) -> jax.Array:
    """Bilinear resize of NHWC images to ``size`` (an int for square), as Projected GAN's ``interp224``
    (``F.interpolate(x, 224, mode="bilinear", align_corners=False)``: half-pixel centres, no antialiasing;
    ``jax.image.resize`` antialiases a downsampling unless ``antialias=False``, the default here)."""
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if x.shape[1:3] == (h, w):
        return x
    return jax.image.resize(x, (x.shape[0], h, w, x.shape[3]), "bilinear", antialias=antialias)


def discriminator_logits(
    key: jax.Array | None,
    x: jax.Array,
    features: Callable[[jax.Array], Sequence[jax.Array]],
    discriminator: Callable[[Sequence[jax.Array], jax.Array | None], list[jax.Array]],
    y: jax.Array | None = None,
    *,
    policy: str | Sequence[str] = POLICIES,
    translation: float = TRANSLATION_RATIO,
    cutout: float = CUTOUT_RATIO,
    size: int | tuple[int, int] | None = 224,
) -> list[jax.Array]:
    """The projected discriminator's logits of images x: DiffAugment, resize to ``size``, the frozen
    ``features(x) -> [NHWC maps]``, then ``discriminator(features, y) -> [logits per scale]`` (e.g.
    ``lambda f, y: ProjectedDiscriminator(...).apply(variables, f, y)``). Projected GAN's order
    (``ProjectedDiscriminator.forward``). ``policy=()`` or ``size=None`` skips that stage (``key`` may then be
    None).

    Gradients flow to x through every stage, as the generator's adversarial loss needs: the feature
    network is frozen by not differentiating its parameters (close over them), not by stopping the
    gradient of its output.
    """
    if parse_policy(policy):
        if key is None:
            raise ValueError("discriminator_logits: DiffAugment needs a key (or pass policy=()).")
        x = diff_augment(key, x, policy, translation, cutout)
    if size is not None:
        x = resize(x, size)
    return list(discriminator(list(features(x)), y))


# --------------------------------------------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------------------------------------------


def _mean_over_heads(fn: Callable[[jax.Array], jax.Array], logits: Logits) -> jax.Array:
    """Mean of ``fn(logits)`` over each head's elements, then the mean over heads (each head weighs the same).

    Projected GAN (``MultiScaleD.forward``) concatenates the flattened logits of its heads and takes one mean;
    its heads all output 5 x 5 maps, so that is this mean. Here heads may differ in size, and each counts
    once whatever its number of positions.
    """
    heads = [logits] if isinstance(logits, jax.Array) or hasattr(logits, "shape") else list(logits)
    if not heads:
        raise ValueError("GAN loss: no logits were given.")
    return jnp.mean(jnp.stack([jnp.mean(fn(jnp.asarray(h, jnp.float32))) for h in heads]))


def d_hinge_loss(real_logits: Logits, fake_logits: Logits) -> jax.Array:
    """Discriminator hinge loss E[relu(1 - D(real))] + E[relu(1 + D(fake))] ("Geometric GAN", Lim & Ye 2017;
    Projected GAN's and StyleGAN-XL's ``loss.py``, CTM's GAN loss). Logits: one array or a list over heads,
    averaged over heads (`_mean_over_heads`)."""
    return _mean_over_heads(lambda r: jax.nn.relu(1.0 - r), real_logits) + _mean_over_heads(
        lambda f: jax.nn.relu(1.0 + f), fake_logits
    )


def g_hinge_loss(fake_logits: Logits) -> jax.Array:
    """Generator hinge loss -E[D(fake)], averaged over heads."""
    return _mean_over_heads(lambda f: -f, fake_logits)


def d_log_loss(real_logits: Logits, fake_logits: Logits) -> jax.Array:
    """Discriminator log loss of LMM Eq. 5 (Goodfellow et al. 2014, Eq. 1): D = sigmoid(logit) maximises
    E[log D(real)] + E[log(1 - D(fake))]; this returns its negative,
    E[softplus(-real)] + E[softplus(fake)], exact and finite for any finite logits. Averaged over heads."""
    return _mean_over_heads(lambda r: jax.nn.softplus(-r), real_logits) + _mean_over_heads(jax.nn.softplus, fake_logits)


def g_log_loss(fake_logits: Logits, non_saturating: bool = False) -> jax.Array:
    """Generator log loss, averaged over heads.

    Default: the minimax term of LMM Eq. 5 as written, E[log(1 - D(fake))] = E[-softplus(fake)], which the
    generator minimises. Its gradient vanishes where D confidently rejects the samples (Goodfellow et al.
    2014, Sec. 3); ``non_saturating=True`` gives their alternative E[-log D(fake)] = E[softplus(-fake)].
    """
    if non_saturating:
        return _mean_over_heads(lambda f: jax.nn.softplus(-f), fake_logits)
    return _mean_over_heads(lambda f: -jax.nn.softplus(f), fake_logits)


D_LOSSES: dict[str, Callable[[Logits, Logits], jax.Array]] = {"hinge": d_hinge_loss, "log": d_log_loss}
G_LOSSES: dict[str, Callable[[Logits], jax.Array]] = {"hinge": g_hinge_loss, "log": g_log_loss}


# --------------------------------------------------------------------------------------------------------------
# Adaptive weight
# --------------------------------------------------------------------------------------------------------------


def get_path(tree: Any, path: Path) -> Any:
    """The subtree of ``tree`` at ``path``, a tuple of keys (e.g. ``("conv_out", "kernel")``)."""
    for i, k in enumerate(path):
        try:
            tree = tree[k]
        except (KeyError, IndexError, TypeError) as e:
            raise ValueError(
                f"No parameter at path {tuple(path)!r}: {tuple(path[: i + 1])!r} is missing. Name the generator's "
                "last layer by its keys in the parameter tree."
            ) from e
    return tree


def _set_path(tree: Any, path: Path, value: Any) -> Any:
    if not path:
        return value
    k, rest = path[0], tuple(path[1:])
    if isinstance(tree, Mapping):
        new = dict(tree)
        new[k] = _set_path(tree[k], rest, value)
        return type(tree)(new)
    new = list(tree)
    new[k] = _set_path(tree[k], rest, value)
    return type(tree)(new)


def last_layer_grads(loss_fn: Callable[[Any], jax.Array], params: Any, path: Path) -> Any:
    """The gradient of ``loss_fn(params)`` with respect to the parameters at ``path`` only (the generator's
    last layer theta_L), same structure as ``get_path(params, path)``. Only that slice is differentiated;
    when the step already has full gradients, ``get_path(grads, path)`` gives the same."""
    last = get_path(params, path)
    return jax.grad(lambda p: loss_fn(_set_path(params, path, p)))(last)


def _norm(tree: Any) -> jax.Array:
    """The L2 norm of all the elements of a pytree (torch.norm of the flattened gradient, as VQGAN)."""
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.sqrt(sum(jnp.sum(jnp.square(jnp.asarray(leaf, jnp.float32))) for leaf in leaves))


def adaptive_weight(
    grad_lines_last: Any, grad_adv_last: Any, eps: float = 1e-4, lo: float = 0.01, hi: float = 10.0
) -> jax.Array:
    """lambda = ||grad_{theta_L} L_lines|| / (||grad_{theta_L} L_adv|| + eps), clipped to [lo, hi], gradient
    stopped: the adaptive weight of VQGAN ("Taming Transformers for High-Resolution Image Synthesis", Esser et
    al. 2021, Eq. 7, delta = 1e-4; ``calculate_adaptive_weight`` in taming-transformers'
    ``vqperceptual.py``) as CTM weighs its GAN loss (CTM Sec. 4.2).

    Both gradients are taken with respect to the generator's last layer theta_L (`last_layer_grads` or
    `get_path` of full gradients); a pytree (kernel and bias) is one flattened vector. VQGAN's code clamps
    lambda to [0, 1e4] (``torch.clamp(d_weight, 0.0, 1e4)``), as CTM's code does before its own bounds; the
    default [lo, hi] = [0.01, 10] is the LMM stage's clip and lies inside [0, 1e4], so clamping to it alone
    gives the same value. Neither paper states [0.01, 10]: the bounds are arguments.
    """
    lam = _norm(grad_lines_last) / (_norm(grad_adv_last) + eps)
    return jax.lax.stop_gradient(jnp.clip(lam, lo, hi))
