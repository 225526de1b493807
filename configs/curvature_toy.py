"""The 2-D toy of "Minimizing Trajectory Curvature of ODE-based Generative Models" (Figs. 1, 2 and 4) as its
released code sets it up (the paper does not describe it): two anisotropic Gaussians N((-8, 8), diag(3, 0.1)) and
N((8, 8), diag(3, 0.1)), 100,000 points each, from the "wide prior" N(0, diag(36, 1)) (``data.source =
"wide_normal"``); velocity and encoder are MLPs [x, t] -> 100 -> tanh -> 100 -> tanh -> out; one Adam, lr 1e-3,
batch 512, 100,000 iterations, no warm-up, no EMA; KL to the wide prior.

``--config=configs/curvature_toy.py:10`` (beta = 10, the code's default), any positive beta (``:1``, ``:20``),
or ``:independent`` (the baseline). Fig. 4 sweeps beta without stating the values; benchmarks/curvature.py runs
{1, 2, 5, 10, 20, independent}.

Choices where the code differs or the paper is silent: batches mix both modes (the code alternates batches of
one mode); the encoder is read in the prior's whitened coordinates, so it starts at the prior itself
(`flowjax.couplings.encoder`; the code's starts at N(0, I) and is pulled to the wide prior by the KL); the MLPs'
time input is t alone (``time_embed_dim = 0``), initialised by Flax (the code: PyTorch's defaults).
"""

from configs.curvature import curvature_config, variant_beta


def get_config(variant: str = "10"):
    beta = variant_beta(variant, 10.0, "curvature_toy.py")
    config = curvature_config(beta, learning_rate=1e-3, warmup_steps=0, batch_size=512, num_steps=100_000)
    config.data.name, config.data.source = "two_modes", "wide_normal"
    config.data.num_train = 200_000  # the code's 100,000 points of each mode
    m, c = config.model, config.coupling
    m.name, m.hidden, m.activation, m.time_embed_dim = "mlp", (100, 100), "tanh", 0
    c.encoder_name, c.encoder_hidden, c.encoder_activation, c.encoder_time_embed_dim = "mlp", (100, 100), "tanh", 0
    config.training.ema_decay = 0.0  # no EMA in the 2-D script: evaluation reads the parameters themselves
    config.training.log_every, config.training.checkpoint_every = 1_000, 20_000
    config.eval.num_samples, config.eval.num_plot_paths = 2_000, 30  # Fig. 4 draws 30 trajectories, Euler 20 steps
    config.sampling.solver, config.sampling.nfe = "euler", 20
    return config
