"""The curvature paper's image experiment at CPU scale ("Minimizing Trajectory Curvature of ODE-based Generative
Models", Figs. 5, 7, 8 analogue): the learned encoder coupling on scikit-learn's 8x8 digits, with the small UNet
and schedule of the other digits configs (configs/digits.py: 2,000 steps, batch 128), so that its rows stand
beside the independent coupling, OT-CFM and LOOM-CFM on the same data, steps and FD-digits.

``--config=configs/curvature_digits.py:10`` (beta = 10), any positive beta, or ``:independent``.

Choices (the paper has no digits run): the encoder is an MLP of two 256-unit layers on the 64 pixels (the paper's
"small" encoder is a UNet for 28x28 and up; `configs/curvature_cifar10_a.py` uses it), its last layer at zero; the
digits configs' Adam with warm-up and clipping, EMA 0.999; evaluated with Euler, the paper's Heun (odd NFE, last
step Euler) and dopri5, and the curvature of Sec. 5.2 (Euler 128 steps).
"""

from configs.curvature import variant_beta
from configs.digits import digits_config


def get_config(variant: str = "10"):
    beta = variant_beta(variant, 10.0, "curvature_digits.py")
    config = digits_config("encoder" if beta is not None else "independent")
    config.coupling.beta = beta
    config.coupling.encoder_name, config.coupling.encoder_hidden = "mlp", (256, 256)
    config.coupling.encoder_time_embed_dim = 0
    config.eval.solvers = ("euler", "heun_euler_last", "dopri5")
    config.eval.nfe = (1, 2, 4, 5, 8, 9)
    config.eval.path_nfe = 128
    return config
