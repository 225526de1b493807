"""EDM teachers on CIFAR-10 (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative
Models"): DDPM++ (EDM's ``SongUNet``) with EDM's preconditioning, class-conditional by default and
unconditional with ``--config=configs/edm_cifar10.py:uncond``. These are the teachers of Lines Matching Models
on CIFAR-10 (LMM App. A.4: pairs from EDM's Heun with N = 18, NFE 35). Instead of training one, a released
EDM network can be converted (scripts/convert_edm_weights.py; README, "EDM teachers").

Values of EDM's released training options for its CIFAR-10 networks (``train.py --cond=1 --arch=ddpmpp``, the
defaults of ``--precond=edm``): batch 512, Adam lr 1e-3 (betas 0.9/0.999, eps 1e-8) ramped up linearly
over the first 10 Mimg (19,531 steps), 200 Mimg of training (390,625 steps), EMA half-life 0.5 Mimg
(decay 0.5^(512 / 500,000) per step), dropout 0.13, no x-flips, ln sigma ~ N(-1.2, 1.2^2), sigma_data = 0.5,
the loss summed over pixels, no gradient clipping. Sampling: Heun with N = 18 on the Karras schedule
(sigma in [0.002, 80], rho = 7), FID of 50,000 samples against the training set, as EDM's fid.py does.
Not implemented, so different from EDM: its non-leaking augmentation pipeline (probability 0.12, with the
augmentation labels fed to the network; here no augmentation and zero augmentation labels), mixed
precision, and the shape of the EMA ramp (EDM's half-life grows with the images seen; flowjax's EMA warms up
as min(decay, (1 + n) / (10 + n))).
"""

from configs.images import image_config


def get_config(variant: str = "cond"):
    if variant not in ("cond", "uncond"):
        raise ValueError(
            f"configs/edm_cifar10.py:{variant}: choose cond (class-conditional, default) or uncond, "
            "e.g. --config=configs/edm_cifar10.py:uncond."
        )
    config = image_config(
        "cifar10",
        "edm_ddpmpp_cifar10",
        coupling="independent",
        batch_size=512,
        num_steps=390_625,
        learning_rate=1e-3,
        warmup_steps=19_531,
        ema_decay=0.5 ** (512 / 500_000),
    )
    config.data.random_flip = False
    config.model.num_classes = 10 if variant == "cond" else 0
    config.model.dropout = 0.13
    config.loss.name, config.loss.sigma_data, config.loss.feature_reduction = "edm", 0.5, "sum"
    config.optim.grad_clip = 0.0
    config.eval.solvers, config.eval.nfe = ("edm_heun", "euler"), (1, 2, 4, 8, 35)
    config.eval.fid_split = "train"
    # The pairs Lines Matching Models train on (LMM App. A.4): 1M pairs from Heun with N = 18 (NFE 35).
    config.pairs.solver, config.pairs.nfe = "edm_heun", 35
    config.pairs.num_pairs, config.pairs.shard_size = 1_000_000, 10_000
    return config
