"""2-rectified flow (reflow; Liu et al. 2023, "Flow straight and fast") from 8 Gaussians to two moons.

Trains on the (x0, x1) pairs of a trained 1-rectified flow (here I-CFM, the independent coupling),
given by --config.data.data_dir. Two commands before it:

    python main.py --config=configs/icfm_8gaussians_moons.py --workdir=runs/rf1                 # 1-RF
    python main.py --config=configs/icfm_8gaussians_moons.py --workdir=runs/rf1 --mode=pairs    # 10,000 pairs
    python main.py --config=configs/reflow_8gaussians_moons.py --workdir=runs/rf2 \\
        --config.data.data_dir=runs/rf1/pairs                                                    # 2-RF

Pairs of runs/rf2 (--mode=pairs on it) give 3-RF; pairs of a LOOM teacher (configs/loom_8gaussians_moons.py)
give LOOM + reflow. --config.loss.time_sampler=zero trains at t = 0 only: the one-step distillation
of the paper (L2 loss; its LPIPS variant is not implemented). The model and optimizer are those of the
toy configs (configs/toy.py); the pairs are the coupling, so the coupling is independent and the x_t
perturbation sigma is 0 (rectified flow has none). Evaluation is against the teacher's held-out moons.
"""

from configs import default


def get_config():
    config = default.get_config()
    config.data.name = "pairs"
    config.data.data_dir = ""  # required: the teacher's pairs directory
    config.data.num_train = 0  # all stored pairs
    config.coupling.name = "independent"
    config.loss.sigma = 0.0
    config.training.num_steps = 10_000
    return config
