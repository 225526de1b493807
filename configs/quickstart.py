"""README default: OT-CFM (exact minibatch OT; Tong et al. 2024, Sec. 6.1) from 8 Gaussians to two moons.

Small enough to train on a CPU.
"""

from configs import default


def get_config():
    config = default.get_config()
    config.data.source = "8gaussians"
    config.data.name = "moons"
    config.coupling.name = "exact_ot"
    config.training.num_steps = 3_000
    config.training.checkpoint_every = 1_000
    return config
