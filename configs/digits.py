"""Shared builder of the small digits configs: scikit-learn's 8x8 digits (1,497 training images,
300 held out), a small ADM-layout UNet, one coupling each; they train on a CPU.

These are CPU-scale analogues of the image experiments, not paper settings: the model and the
schedule are sized for a CPU. W2 (exact, pixel space) and FD-digits are computed against
the 300 test images.
"""

from configs import default


def digits_config(coupling: str, num_steps: int = 2_000, **coupling_fields):
    config = default.get_config()
    config.data.name, config.data.source, config.data.image_size = "digits", "normal", 8
    config.model.name = "unet"
    config.model.base_channels = 32
    config.model.channel_mults = (1, 2)
    config.model.num_res_blocks = 1
    config.model.attention_resolutions = (4,)
    config.model.head_channels = 32
    config.model.dropout = 0.1
    config.coupling.name = coupling
    for field, value in coupling_fields.items():
        config.coupling[field] = value
    config.optim.learning_rate = 2e-3
    config.optim.warmup_steps = 200
    config.training.batch_size = 128
    config.training.num_steps = num_steps
    config.training.log_every = 500
    config.eval.solvers = ("euler", "midpoint", "dopri5")
    config.eval.num_samples = 300
    config.eval.num_path_samples = 300
    return config
