"""Lines Matching Models on AFHQv2 64x64, unconditional ("Generative Lines Matching Models", Matityahu & Fattal,
Sec. 4 and App. A.4): the DDPM++ network of EDM's AFHQv2 teacher (configs/edm_afhq64.py) trained with the lines
loss on 2M pairs of the teacher's Heun sampler (N = 40, NFE 79), initialised from the teacher.

    python main.py --config=configs/edm_afhq64.py --workdir=runs/afhq/teacher --config.data.data_dir=<AFHQv2 folder>
    python main.py --config=configs/edm_afhq64.py --workdir=runs/afhq/teacher --mode=pairs \\
        --config.data.data_dir=<AFHQv2 folder>
    python main.py --config=configs/lmm_afhq64.py --workdir=runs/afhq/lmm \\
        --config.data.data_dir=runs/afhq/teacher/pairs --config.training.init_from=runs/afhq/teacher

Table 6 (AFHQ column): DDPM++ with 128 channels, multipliers 1, 2, 2, 2, 4 residual blocks, attention at 16,
RAdam lr 1e-4 with betas (0.9, 0.999) for the generator and 2e-3 with (0.5, 0.9) for the discriminator, batch
512, EMA 0.999, 2M pairs, 80k iterations of the lines loss then 25k with the adversarial loss, lambda_lines = 0.5.
Evaluated as Table 9: step indices {0}, {0, 1}, {0, 1, 2}, {0, 3, 5} of the 40-level Karras schedule, FID of
50,000 samples against the image folder. No SOT: it made AFHQ worse in the paper (Table 9). Choices where the
paper is silent, and the discriminator's feature network, as configs/lmm_imagenet64.py says.
"""

from configs import edm_afhq64
from configs.lmm import lmm_config


def get_config():
    config = lmm_config(
        edm_afhq64.get_config(),
        "edm_afhq64",
        num_steps=80_000,
        adversarial_steps=25_000,
        learning_rate=1e-4,
        batch_size=512,
        schedules=("0", "0,1", "0,1,2", "0,3,5"),
    )
    return config
