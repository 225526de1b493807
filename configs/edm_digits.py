"""An EDM teacher on the digits (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based
Generative Models"), conditional on the digit class: the CPU-scale stand-in for the EDM teachers that
Lines Matching Models distill (LMM Sec. 3 and App. A.4), trained in minutes.

EDM's method on the digits data: the preconditioned denoiser D = c_skip x + c_out F(c_in x, c_noise) (EDM
Table 1, "Ours"), trained with ln sigma ~ N(-1.2, 1.2^2) and the weight lambda(sigma) = (sigma^2 +
sigma_data^2) / (sigma sigma_data)^2, the loss summed over pixels as EDM's code does, no gradient clipping
(EDM clips nothing), sampled with EDM's deterministic Heun (Algorithm 1, S_churn = 0) on the Karras schedule
sigma_max = 80, sigma_min = 0.002, rho = 7. The network is the small UNet of configs/digits.py with a class
embedding (``model.num_classes = 10``) and EDM's noise input c_noise = ln(sigma) / 4 embedded as is
(``time_scale = 1``). Chosen here, not from EDM: the network size, 2,000 steps, Adam lr 2e-3 with 200 warm-up
steps (the digits configs' schedule), sigma_data = 0.5 (EDM's value for images in [-1, 1]).

Evaluated with the flow models of benchmarks/digits.py on one time axis: ``edm_heun`` at N = 1, 5, 10, 18
steps (NFE 1, 9, 19, 35), ``edm_euler`` (the Karras grid) and flowjax's ``euler`` on t = 1 / (1 + sigma) at
NFE 1/2/4/8; samples are class-balanced (sample i has digit i mod 10), like the 300-image test split.
"""

from configs.digits import digits_config


def get_config():
    config = digits_config("independent")
    config.model.num_classes = 10
    config.model.time_scale = 1.0
    config.loss.name = "edm"
    config.loss.sigma_data = 0.5
    config.loss.feature_reduction = "sum"
    config.optim.grad_clip = 0.0
    config.eval.solvers = ("edm_heun", "edm_euler", "euler")
    config.eval.nfe = (1, 2, 4, 8, 9, 19, 35)
    # --mode=pairs: the teacher's Heun pairs as Lines Matching Models draws them on CIFAR-10 (N = 18, NFE 35)
    config.pairs.solver, config.pairs.nfe, config.pairs.num_pairs = "edm_heun", 35, 10_000
    return config
