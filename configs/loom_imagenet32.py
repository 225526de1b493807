"""LOOM-CFM on ImageNet 32x32 (LOOM-CFM Table 4, column ImageNet-32).

ADM (`unet.adm_imagenet32`: 128 channels, [1, 2, 2, 2], 3 res blocks, attention at 16 and 8, 4 heads
of 64, dropout 0.1); batch 512; 200 epochs = 500k iterations; Adam lr 1e-4 after 20k warm-up steps;
EMA 0.9999; sigma 1e-7; 1 noise cache (Table 4; the released config uses 2). Code (and App. B): Euclidean cost,
clipping 1, flips as examples, seed 1543. Data: TFDS imagenet_resized/32x32 (box-downsampled ImageNet, the same
1.28M/50k images as the paper's downsampled ImageNet). FID: 50,000 samples vs the validation split.
"""

from configs.images import loom_config


def get_config():
    return loom_config(
        "imagenet32",
        "adm_imagenet32",
        batch_size=512,
        num_steps=500_000,
        learning_rate=1e-4,
        warmup_steps=20_000,
        num_caches=1,
        fid_split="validation",
    )
