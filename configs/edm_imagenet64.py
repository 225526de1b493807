"""The class-conditional EDM teacher on ImageNet 64x64 (Karras et al. 2022, "Elucidating the Design Space of
Diffusion-Based Generative Models"): ADM (EDM's ``DhariwalUNet``) with EDM's preconditioning. It is the
teacher of Lines Matching Models on ImageNet-64 (LMM Sec. 4: 4M pairs from EDM's Heun with N = 40, NFE 79).
Training it takes weeks of GPU time; README ("EDM teachers") shows how to convert NVlabs' released network
instead (scripts/convert_edm_weights.py).

The released command of EDM's ImageNet-64 network (EDM's README, "exact training configurations") (``--cond=1 --arch=adm
--duration=2500 --batch=4096 --lr=1e-4 --ema=50 --dropout=0.10 --augment=0``): batch 4096, Adam lr 1e-4 ramped
up over the first 10 Mimg (2,441 steps), 2,500 Mimg (610,352 steps), EMA half-life 50 Mimg (decay
0.5^(4096 / 5e7) per step), dropout 0.10, no augmentation, no x-flips, ln sigma ~ N(-1.2, 1.2^2),
sigma_data = 0.5, the loss summed over pixels, no gradient clipping. Sampling: Heun with N = 40 (NFE 79) on the
Karras schedule, FID of 50,000 class-balanced samples against the training set. Not reproduced: EDM's float16
mixed precision with loss scaling 100 (``model.dtype`` can be set to bfloat16), and the shape of the EMA ramp.
"""

from configs.images import image_config


def get_config():
    config = image_config(
        "imagenet64",
        "edm_adm_imagenet64",
        coupling="independent",
        batch_size=4096,
        num_steps=610_352,
        learning_rate=1e-4,
        warmup_steps=2_441,
        ema_decay=0.5 ** (4096 / 50_000_000),
    )
    config.data.random_flip = False
    config.model.num_classes = 1000
    config.model.dropout = 0.10
    config.loss.name, config.loss.sigma_data, config.loss.feature_reduction = "edm", 0.5, "sum"
    config.optim.grad_clip = 0.0
    config.eval.solvers, config.eval.nfe = ("edm_heun", "euler"), (1, 2, 4, 8, 79)
    config.eval.fid_split = "train"
    # The pairs Lines Matching Models train on (LMM App. A.4): 4M pairs from Heun with N = 40 (NFE 79).
    config.pairs.solver, config.pairs.nfe = "edm_heun", 79
    config.pairs.num_pairs, config.pairs.shard_size = 4_000_000, 10_000
    return config
