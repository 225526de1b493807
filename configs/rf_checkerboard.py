"""1-rectified flow from N(0, I_2) to the checkerboard of the RF theory paper (Bansal et al. 2024,
Sec. 5.1, Example 2), with ``--config=configs/rf_checkerboard.py:2``, ``:8`` (default) or ``:18`` squares.

The paper's board: unit squares [i, i+1] x [j, j+1], i, j in {-b..b-1}, i + j even, equal mass
(2 b^2 squares: 2, 8, 18 for b = 1, 2, 3), 10,000 training points, W2 on 5,000 test points, Euler
with T = 1..32 steps. Its network (a 2000-1000-500-...-100 ReLU MLP trained on all 512^2 pairs of a
minibatch, lr 1e-2 with a plateau schedule, ~1,000 steps) is too large for a CPU run; here an
MLP 3x256 (SiLU) learns the drift from random independent pairs (the rectified-flow loss, sigma 0),
batch 1,024, Adam 1e-3 with cosine decay, 5,000 steps. Time enters as raw t plus sin/cos at frequency 1
(``model.time_embed_dim = 2``), close to the paper's raw-t input: the default embedding's frequencies
up to 100 add small wiggles in t whose second derivative inflates AS and PWS of the learned field.
W2 is exact (the paper's code used Sinkhorn with 500 generated points); 5,000 samples against the 5,000 test points.
"""

from configs.toy import toy_config

SQUARES = (2, 8, 18)


def get_config(squares: str = "8"):
    if squares not in tuple(map(str, SQUARES)):
        raise ValueError(
            f"configs/rf_checkerboard.py:{squares}: the paper's boards have 2, 8 or 18 squares "
            "(e.g. --config=configs/rf_checkerboard.py:18)."
        )
    config = toy_config("independent", "normal", "checkerboard", num_steps=5_000)
    config.data.num_squares, config.data.square_size = int(squares), 1.0
    config.loss.sigma = 0.0  # rectified flow: the straight path, no perturbation
    config.model.hidden, config.model.time_embed_dim = (256, 256, 256), 2
    config.training.batch_size = 1_024
    config.optim.schedule = "cosine"
    config.eval.solvers = ("euler", "dopri5")
    config.eval.nfe = (1, 2, 4, 8, 16, 32)
    config.eval.num_samples = 5_000
    return config
