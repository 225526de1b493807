"""LOOM-CFM on ImageNet 64x64 (LOOM-CFM Table 4, column ImageNet-64).

ADM (`unet.adm_imagenet64`: 192 channels, [1, 2, 3, 4], 2 res blocks, attention at 16, 4 heads of
64, dropout 0.1); batch 96; 100 epochs = 1334k iterations (Table 4; the released config says 575
epochs); Adam lr 1e-4 after 20k warm-up steps; EMA 0.9999; sigma 1e-7; 1 noise cache. Code (and App. B): Euclidean cost,
clipping 1, flips as examples, seed 1543. Data: TFDS imagenet_resized/64x64 (the paper's code reads
an ImageFolder of 64x64 ImageNet; same images, resize method may differ). FID vs the validation split.
"""

from configs.images import loom_config


def get_config():
    return loom_config(
        "imagenet64",
        "adm_imagenet64",
        batch_size=96,
        num_steps=1_334_000,
        learning_rate=1e-4,
        warmup_steps=20_000,
        num_caches=1,
        fid_split="validation",
    )
