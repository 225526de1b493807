"""Shared builder of the configs of "Minimizing Trajectory Curvature of ODE-based Generative Models" (Lee, Kim & Ye,
ICML 2023): flow matching on the linear path with the learned encoder coupling q_phi(z|x) (``coupling.name =
"encoder"``, Eq. 11), or its independent baseline (``beta=None``: beta -> infinity).

Common to the paper's runs (its App. C and released code): velocity regression (Eq. 11's 1/t^2-weighted
x-prediction loss is exactly the velocity loss, App. A.1); t uniform (the code's t in [1e-5, 1] is the paper's t, 0
at the data: flowjax's t = 1 - t_paper in [0, 1 - 1e-5], and U[0, 1) never draws the data end, so the two agree
but for a 1e-5 sliver that a velocity loss does not weigh); one Adam over the network and the encoder, linear
warm-up then constant, no gradient clipping (App. C), an EMA of both; evaluated with Euler and the paper's Heun
(`integrators.heun_euler_last`: odd NFE, last step Euler) and the curvature of Sec. 5.2 (Euler 128 steps, per
element: `metrics.straightness.curvature`) on 10,000 trajectories.
"""

from configs import default


def variant_beta(variant: str, default_beta: float, config_file: str) -> float | None:
    """``beta`` of a config's variant: a positive number, or "independent" (None, the baseline)."""
    if variant in ("", None):
        return default_beta
    if variant == "independent":
        return None
    try:
        beta = float(variant)
    except ValueError:
        beta = 0.0
    if not beta > 0:
        raise ValueError(
            f"configs/{config_file}:{variant}: the variant is beta, a positive number (e.g. :10), or 'independent' "
            "(the independent-coupling baseline, beta -> infinity)."
        )
    return beta


def curvature_config(beta: float | None, *, learning_rate: float, warmup_steps: int, batch_size: int, num_steps: int):
    """The parts every curvature-paper config shares; the caller sets data, model and the encoder network."""
    config = default.get_config()
    config.coupling.name = "encoder" if beta is not None else "independent"
    config.coupling.beta = beta
    config.loss.name, config.loss.interpolant, config.loss.sigma = "flow_matching", "linear", 0.0
    config.optim.name, config.optim.b1, config.optim.b2, config.optim.eps = "adam", 0.9, 0.999, 1e-8
    config.optim.learning_rate, config.optim.warmup_steps = learning_rate, warmup_steps
    config.optim.schedule = "constant"
    config.optim.grad_clip, config.optim.weight_decay = 0.0, 0.0
    config.training.batch_size, config.training.num_steps = batch_size, num_steps
    config.training.ema_warmup = False  # the code: a constant decay from ema_start on
    config.eval.solvers = ("euler", "heun_euler_last", "dopri5")
    config.eval.nfe = (1, 2, 3, 4, 5, 8, 9)
    config.eval.path_nfe, config.eval.num_path_samples = 128, 10_000  # Sec. 5.2
    return config
