"""DANSM on ImageNet 64x64 (DANSM Table 1, ImageNet64 rows): rectified flow, DDPM++ with the CIFAR-10
configuration (`unet.ddpmpp_cifar10` at 64 px, the code's `imagenet_64_64.py`), match size 1,000
(the table's best), 200 epochs, Euler with 5 steps.

The ImageNet variant is not stated; TFDS imagenet_resized/64x64 is used. Optimiser settings as in
configs/dansm_cifar10.py (code: Adam lr 1e-4 constant, clipping 1; EMA 0.999; chosen: batch 250).
FID reference: 50,000 training images (the paper uses the training set as reference for CIFAR-10).
"""

from configs.images import epochs_to_steps, image_config


def get_config():
    config = image_config(
        "imagenet64",
        "ddpmpp_cifar10",
        coupling="dansm",
        batch_size=250,
        num_steps=epochs_to_steps(200, 1_281_167, 250),
        learning_rate=1e-4,
        warmup_steps=0,
        ema_decay=0.999,
    )
    config.coupling.match_size = 1_000
    config.eval.solvers, config.eval.nfe = ("euler",), (1, 2, 4, 5, 8)
    config.eval.fid_split, config.eval.fid_num_reference = "train", 50_000
    return config
