"""Shared builder of the 2-D toy configs: one coupling, one source -> target pair.

I-CFM and OT-CFM follow Tong et al. (2024): sigma = 0.1 perturbation of the straight path in
their 2-D experiments, MLP of width 64, Adam 1e-3, batch 256.
"""
from configs import default

def toy_config(coupling: str, source: str, target: str, num_steps: int = 10_000):
    config = default.get_config()
    config.data.source, config.data.name = source, target
    config.coupling.name = coupling
    config.loss.sigma = 0.1
    config.training.num_steps = num_steps
    return config
