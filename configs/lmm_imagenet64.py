"""Lines Matching Models on ImageNet 64x64, class-conditional ("Generative Lines Matching Models", Matityahu &
Fattal, Sec. 4 and App. A.4): the ADM network of EDM's ImageNet-64 teacher (configs/edm_imagenet64.py) trained
with the lines loss on 4M pairs of the teacher's Heun sampler (N = 40, NFE 79), initialised from the teacher.

    python main.py --config=configs/edm_imagenet64.py --workdir=runs/in64/teacher              # or convert EDM's
    python main.py --config=configs/edm_imagenet64.py --workdir=runs/in64/teacher --mode=pairs # 4M Heun pairs
    python main.py --config=configs/lmm_imagenet64.py --workdir=runs/in64/lmm \\
        --config.data.data_dir=runs/in64/teacher/pairs --config.training.init_from=runs/in64/teacher

Run without the pairs or the teacher, it stops before writing anything and prints these commands. The teacher's
data set (ImageNet 64x64 in TFDS) is read too: by the adversarial stage (real images) and by the FID evaluation.
``--config.pairs.store_noise=False --config.pairs.dtype=float16`` on the pairs command keeps the 4M pairs at a
quarter of their float32 size (x0 is redrawn from the pair's index).

Table 6 (ImageNet column): ADM with 192 channels, multipliers 1, 2, 3, 4, 3 residual blocks, attention at 32,
16, 8 (EDM's ``DhariwalUNet``, the teacher's network), RAdam lr 8e-6 with betas (0.9, 0.999) for the generator
and 2e-3 with (0.5, 0.9) for the discriminator, batch 512, EMA 0.999, 4M pairs, 80k iterations of the lines loss
then 30k with the adversarial loss, lambda_lines = 0.5; App. A.4: the perceptual loss at 64x64 in the first
80k iterations, at 224 after, the discriminator's inputs at 224. Evaluated as Table 8 / App. A.3: the sampler
at step indices {0}, {0, 1}, {0, 1, 2}, {0, 3, 5} of the 40-level Karras schedule, FID of 50,000
class-balanced samples against the training set. Chosen where the paper is silent (stated in flowjax/lmm.py
and flowjax/train/lmm_stages.py): sigma uniform over the 40 Karras levels, EDM's preconditioning with
sigma_data = 0.5, LPIPS-VGG as the perceptual loss, hinge loss, one discriminator step per generator step, the
teacher's dropout, no gradient clipping. Replaced because its weights cannot be installed offline: the
discriminator's feature networks (DeiT-base and EfficientNet-lite0 in the paper) by the pretrained VGG16 that
ships with LPIPS. SOT (Sec. 3.6): ``--config.lmm.sot_steps='(0, 1)'`` for the NFE-2 model.
"""

from configs import edm_imagenet64
from configs.lmm import lmm_config


def get_config():
    config = lmm_config(
        edm_imagenet64.get_config(),
        "edm_imagenet64",
        num_steps=80_000,
        adversarial_steps=30_000,
        learning_rate=8e-6,
        batch_size=512,
        schedules=("0", "0,1", "0,1,2", "0,3,5"),
    )
    config.pairs.num_pairs = 4_000_000
    return config
