"""LOOM-CFM on CIFAR-10 (Davtyan et al. 2025), LOOM-CFM Table 4, column CIFAR10.

ADM (`unet.adm_cifar10`: 128 channels, [1, 2, 2, 2], 2 res blocks, attention at 16, 4 heads of 64,
dropout 0.1); batch 128; 1000 epochs = 391k iterations; Adam lr 2e-4, constant after 5k warm-up
steps; EMA 0.9999; CFM sigma 1e-7; 4 noise caches. From the released code (all its configs): gradient
clipping 1, random flips with a flipped image as an example of its own (own caches), seed 1543.
Cost: the plain Euclidean distance of Appendix B and the released code, which produced the paper's numbers
(Sec. 3.1 writes the squared distance: --config.coupling.cost=sqeuclidean).
Evaluation as Table 1: midpoint with 2/4/6 steps (NFE 4/8/12) and dopri5; FID against the 10,000
test images (the paper's 'validation set'), 50,000 samples. Our EMA has a warm-up (the code's does not).
Reflow pairs (``--mode=pairs``; configs/loom_cifar10_reflow.py): 1M (Sec. 4.2); the paper does not give the
solver: dopri5 at tolerance 1e-5 here.
"""

from configs.images import loom_config


def get_config():
    config = loom_config(
        "cifar10",
        "adm_cifar10",
        batch_size=128,
        num_steps=391_000,
        learning_rate=2e-4,
        warmup_steps=5_000,
        num_caches=4,
        fid_split="test",
    )
    config.pairs.num_pairs, config.pairs.shard_size, config.pairs.solver = 1_000_000, 10_000, "dopri5"
    return config
