"""An EDM model on the 2-D checkerboard (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based
Generative Models"): the EDM row of benchmarks/toy.py's checkerboard table, N(0, I) noise -> checkerboard
like the flow models there. Same MLP, training set, batch and optimizer as the other toy configs
(configs/toy.py); EDM's loss (ln sigma ~ N(-1.2, 1.2^2), weight lambda(sigma), EDM Table 1) with
sigma_data = 1 (the image value 0.5 does not apply to a target of this scale; chosen here), no gradient
clipping, sampled with EDM's deterministic Heun on the Karras schedule (sigma in [0.002, 80], rho = 7; NFE
2N - 1) and with the flow solvers on t = 1 / (1 + sigma).
"""

from configs.toy import toy_config


def get_config():
    config = toy_config("independent", "normal", "checkerboard")
    config.loss.name = "edm"
    config.loss.sigma = 0.0
    config.loss.sigma_data = 1.0
    config.optim.grad_clip = 0.0
    config.eval.solvers = ("edm_heun", "edm_euler", "euler", "dopri5")
    config.eval.nfe = (1, 2, 3, 4, 5, 8, 9, 19, 35)
    return config
