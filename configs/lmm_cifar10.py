"""Lines Matching Models on CIFAR-10 ("Generative Lines Matching Models", Matityahu & Fattal, Sec. 4 and App.
A.4): the DDPM++ network of EDM's CIFAR-10 teacher (configs/edm_cifar10.py), class-conditional by default and
unconditional with ``--config=configs/lmm_cifar10.py:uncond``, trained with the lines loss on 1M pairs of the
teacher's Heun sampler (N = 18, NFE 35), initialised from the teacher.

    python main.py --config=configs/edm_cifar10.py --workdir=runs/c10/teacher               # or convert EDM's
    python main.py --config=configs/edm_cifar10.py --workdir=runs/c10/teacher --mode=pairs  # 1M Heun pairs
    python main.py --config=configs/lmm_cifar10.py --workdir=runs/c10/lmm \\
        --config.data.data_dir=runs/c10/teacher/pairs --config.training.init_from=runs/c10/teacher

(``:uncond`` on all three for the unconditional model.) Table 6 (CIFAR-10 column): DDPM++ with 128 channels,
multipliers 2, 2, 2, 4 residual blocks, attention at 16, RAdam lr 4e-4 with betas (0.9, 0.999) for the
generator and 2e-3 with (0.5, 0.9) for the discriminator, batch 512, EMA 0.999, 1M pairs, 80k iterations of the
lines loss then 20k with the adversarial loss, lambda_lines = 0.5; App. A.4: the perceptual loss at native size
first, at 224 after, the discriminator's inputs at 224. Evaluated as Table 7: the sampler at step indices {0},
{0, 1}, {0, 1, 2}, {0, 3, 5}, {0, 1, 3, 5} of the 18-level Karras schedule, FID of 50,000 samples against the
training set. Choices where the paper is silent, and the discriminator's feature network, as
configs/lmm_imagenet64.py says. SOT (Sec. 3.6): ``--config.lmm.sot_steps='(0,)'`` for the NFE-1 model.
"""

from configs import edm_cifar10
from configs.lmm import lmm_config


def get_config(variant: str = "cond"):
    config = lmm_config(
        edm_cifar10.get_config(variant),
        "edm_cifar10" if variant == "cond" else f"edm_cifar10:{variant}",
        num_steps=80_000,
        adversarial_steps=20_000,
        learning_rate=4e-4,
        batch_size=512,
        schedules=("0", "0,1", "0,1,2", "0,3,5", "0,1,3,5"),
    )
    return config
