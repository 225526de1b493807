"""Shared builder of the 2-D toy configs: one coupling, one source -> target pair.

Every toy config trains on the same fixed training set of data.num_train = 10,000 points (and is
evaluated on a separate held-out set), so that configs of one task differ only in the coupling.
sigma = 0.1 is the Gaussian perturbation of the straight path of I-CFM / OT-CFM (Tong et al.
2024, "Improving and generalizing flow-based generative models with minibatch optimal transport");
the value is not checked against that paper's tables. The
rest (MLP 3x64, Adam 1e-3, batch 256) are the defaults of configs/default.py. The LOOM-CFM and
DANSM papers have no 2-D experiments; their toy configs keep these settings and change only the
coupling.
"""

from configs import default


def toy_config(coupling: str, source: str, target: str, num_steps: int = 10_000, **coupling_fields):
    config = default.get_config()
    config.data.source, config.data.name = source, target
    config.data.num_train = 10_000
    config.coupling.name = coupling
    for field, value in coupling_fields.items():
        config.coupling[field] = value
    config.loss.sigma = 0.1
    config.training.num_steps = num_steps
    return config
