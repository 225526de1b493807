"""Shared builder of the 2-D toy configs: one coupling, one source -> target pair.

sigma = 0.1 is the Gaussian perturbation of the straight path of I-CFM / OT-CFM (Tong et al.
2024); that paper is not in shared/papers, so the value is not checked against its tables. The
rest (MLP 3x64, Adam 1e-3, batch 256) are the defaults of configs/default.py.
"""
from configs import default


def toy_config(coupling: str, source: str, target: str, num_steps: int = 10_000):
    config = default.get_config()
    config.data.source, config.data.name = source, target
    config.coupling.name = coupling
    config.loss.sigma = 0.1
    config.training.num_steps = num_steps
    return config
