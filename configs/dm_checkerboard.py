"""A diffusion model on the toy: DDPM's epsilon-prediction loss on its linear-beta VP path, sampled
with deterministic DDIM (the objective of DANSM's Table 4 DM rows), normal -> checkerboard.

Any coupling applies: --config.coupling.name=dansm (with --config.coupling.match_size=N) pairs the
noise that the loss regresses on with the data, as DANSM does for diffusion models.
"""

from configs.toy import toy_config


def get_config():
    config = toy_config("independent", "normal", "checkerboard")
    config.loss.name = "epsilon"
    config.loss.interpolant = "vp_linear"
    config.loss.sigma = 0.0
    config.eval.solvers = ("ddim", "euler", "heun", "dopri5")
    # The probability-flow velocity of vp_linear is singular at t = 1 (sigma' is infinite); stop at
    # DDPM's last network step k = 0, t = 0.999, as DDPM samplers do (residual noise std 0.01).
    config.eval.t_end = 0.999
    config.sampling.solver = "ddim"
    return config
