"""CIFAR-10, config A of "Minimizing Trajectory Curvature of ODE-based Generative Models" (Table 4, column A; Table 3's
"Ours (beta = 10, config A)"): DDPM++ (EDM's SongUNet, 128 channels, [2, 2, 2], 4 ResBlocks, dropout 0.13, 55.73M
parameters), the "small" encoder (32 channels, 2 ResBlocks, 2.2M), batch 128, Adam lr 3e-4 with 78,125 warm-up
steps, EMA 0.9999 from step 300, no flips, t in [0, 1]; 200,000 iterations with beta = 10 and 300,000 for the
independent baseline (Table 4, footnote 1).

``--config=configs/curvature_cifar10_a.py`` (beta = 10), ``:independent``, or another beta (``:20``; it keeps
beta = 10's 200,000 iterations). Evaluated as Table 3: Heun at NFE 5 and 9 (`integrators.heun_euler_last`), RK45
(dopri5, tolerance 1e-5), Euler; FID needs a converted Inception file (README, "FID").
"""

from configs.curvature import curvature_config, variant_beta
from configs.images import image_config


def cifar10_config(variant: str, *, default_beta, learning_rate, warmup_steps, steps, flip, ema_start, config_file):
    """A CIFAR-10 column of Table 4; ``steps`` = (iterations with the encoder, iterations of the baseline)."""
    beta = variant_beta(variant, default_beta, config_file)
    config = curvature_config(
        beta,
        learning_rate=learning_rate,
        warmup_steps=warmup_steps,
        batch_size=128,
        num_steps=steps[0] if beta is not None else steps[1],
    )
    images = image_config(
        "cifar10",
        "ddpmpp_edm_cifar10",
        coupling=config.coupling.name,
        batch_size=128,
        num_steps=config.training.num_steps,
        learning_rate=learning_rate,
        warmup_steps=warmup_steps,
        ema_decay=0.9999,
    )
    for section in ("data", "model", "eval", "sampling"):
        config[section] = images[section]
    config.data.random_flip = flip
    config.coupling.encoder_name, config.coupling.encoder_preset = "unet", "ddpmpp_edm_encoder_cifar10"
    config.training.ema_decay, config.training.ema_start = 0.9999, ema_start
    config.training.log_every, config.training.checkpoint_every = 1_000, 50_000  # the code saves every 50K
    config.eval.solvers, config.eval.nfe = ("euler", "heun_euler_last", "dopri5"), (1, 2, 4, 5, 8, 9, 10, 20)
    config.eval.path_nfe, config.eval.num_path_samples = 128, 10_000  # Sec. 5.2's curvature
    return config


def get_config(variant: str = ""):
    return cifar10_config(
        variant,
        default_beta=10.0,
        learning_rate=3e-4,
        warmup_steps=78_125,
        steps=(200_000, 300_000),
        flip=False,
        ema_start=300,
        config_file="curvature_cifar10_a.py",
    )
