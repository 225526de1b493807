"""Lines Matching Models on the digits ("Generative Lines Matching Models", Matityahu & Fattal): the CPU-scale
stand-in for LMM's image experiments, trained in minutes. Teacher: the class-conditional EDM of
configs/edm_digits.py; pairs: its Heun sampler with N = 18 (NFE 35), as LMM's CIFAR-10 teacher (App. A.4).

    python main.py --config=configs/edm_digits.py --workdir=runs/digits/teacher               # EDM teacher
    python main.py --config=configs/edm_digits.py --workdir=runs/digits/teacher --mode=pairs  # 10,000 Heun pairs
    python main.py --config=configs/lmm_digits.py --workdir=runs/digits/lmm \\
        --config.data.data_dir=runs/digits/teacher/pairs --config.training.init_from=runs/digits/teacher

``--config.lmm.norm=lpips --config.lmm.lpips_resize=16`` trains with the perceptual loss (LPIPS-VGG needs at
least 16 pixels a side; the digits are 8x8), and ``--config.lmm.adversarial_from=2000
--config.training.num_steps=4000 --config.lmm.d_resize=16 --config.lmm.adv_lpips_resize=16`` adds the
adversarial stage. From the paper (Table 6): RAdam with betas (0.9, 0.999), EMA
0.999, lambda_lines = 0.5, the teacher's network initialised from the teacher; evaluated at the step indices
of its Table 7 ({0}, {0, 1}, {0, 1, 2}, {0, 3, 5}, {0, 1, 3, 5} of the 18-level schedule). Chosen here: 2,000
steps at batch 128 with lr 2e-4, the L2 (mean squared error) loss, sigma uniform over the 18 Karras levels.
"""

from configs import edm_digits
from configs.lmm import lmm_config


def get_config():
    config = lmm_config(
        edm_digits.get_config(),
        "edm_digits",
        num_steps=2_000,
        learning_rate=2e-4,
        batch_size=128,
        schedules=("0", "0,1", "0,1,2", "0,3,5", "0,1,3,5"),
    )
    config.training.log_every, config.training.checkpoint_every = 200, 1_000
    return config
