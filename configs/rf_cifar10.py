"""1-rectified flow on CIFAR-10 (Liu et al. 2023, "Flow straight and fast"): independent coupling,
linear path, DDPM++ (`unet.ddpmpp_cifar10`).

The rectified-flow paper is not in this repository's paper set; the values are those of its
released config `cifar10_rf_gaussian_ddpmpp` and the score_sde CIFAR-10 defaults it inherits:
batch 128, Adam lr 2e-4 with 5,000 warm-up steps, gradient clipping 1, EMA 0.999999, 1.3M
iterations, random flips, data in [-1, 1]; sampling with RK45 at tolerance 1e-5 (dopri5 here) and
Euler at few steps. This is the 1-RF teacher of LOOM-CFM Table 1's 2-/3-RF rows (reflow: issue 5).
Differences: t ~ U[0, 1] here (the code uses U[1e-3, 1]); our EMA has the warm-up min(decay, (1+n)/(10+n)).
FID reference: the 10,000 CIFAR-10 test images (change with --config.eval.fid_split=train).

Reflow pairs (``--mode=pairs`` on a trained workdir; configs/rf_cifar10_reflow.py trains on them): 4M pairs
(Liu et al. Sec. 5; the code's README asks for at least 1M), RK45 at tolerance 1e-5 (dopri5 here), in
shards of 10,000 pairs (245 MB each; 4M float32 pairs are ~98 GB on disk, read by index during training).
"""

from configs.images import image_config


def get_config():
    config = image_config(
        "cifar10",
        "ddpmpp_cifar10",
        coupling="independent",
        batch_size=128,
        num_steps=1_300_000,
        learning_rate=2e-4,
        warmup_steps=5_000,
        ema_decay=0.999999,
    )
    config.eval.solvers, config.eval.nfe, config.eval.dopri5_tol = ("euler", "dopri5"), (1, 2, 4, 8), 1e-5
    config.pairs.num_pairs, config.pairs.shard_size, config.pairs.solver = 4_000_000, 10_000, "dopri5"
    return config
