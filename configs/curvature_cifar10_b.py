"""CIFAR-10, config B of "Minimizing Trajectory Curvature of ODE-based Generative Models" (Table 4, column B; Table 3's
"Ours (beta = 20, config B)" and the baseline "Rectified Flow* (config B)"): config A's networks, batch 128, Adam
lr 2e-4 with 5,000 warm-up steps, EMA 0.9999 from step 1, random flips, t in [1e-5, 1]; 500,000 iterations with
beta = 20 and 600,000 for the independent baseline (Table 4, footnote 2; the README's CIFAR-10 command).

``--config=configs/curvature_cifar10_b.py`` (beta = 20), ``:independent``, or another beta.
"""

from configs.curvature_cifar10_a import cifar10_config


def get_config(variant: str = ""):
    return cifar10_config(
        variant,
        default_beta=20.0,
        learning_rate=2e-4,
        warmup_steps=5_000,
        steps=(500_000, 600_000),
        flip=True,
        ema_start=1,
        config_file="curvature_cifar10_b.py",
    )
