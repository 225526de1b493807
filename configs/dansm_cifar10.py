"""DANSM on CIFAR-10 (Xu et al. 2025): rectified flow (default) or the diffusion model, with
``--config=configs/dansm_cifar10.py:rf`` or ``:dm``.

rf (DANSM Table 1, CIFAR-10 rows; Tables 2 and 6): DDPM++ (`unet.ddpmpp_cifar10`, the code's
  `cifar10_rf_gaussian_ddpmpp`), match size 10,000 (Table 1's best), 500 epochs, Euler with 10 steps
  (Table 1) and 2 steps (Table 6).
dm (DANSM Table 4): the ermongroup DDPM UNet (`unet.ddpm_cifar10`), epsilon prediction on DDPM's
  linear-beta path (T = 1000), loss summed over pixels and averaged over the batch (the code's), match
  size 1,000 (Table 4's best), 1000 epochs, deterministic DDIM; the code's "3-step" DDIM evaluates the
  network 4 times (its timesteps are range(0, 1000, 1000 // steps) reversed: 999, 666, 333, 0), so NFE
  3, 4 and 10 are swept.

The paper states no optimiser settings. From the authors' released code (its trainers' command-line
defaults): Adam lr 1e-4, constant (the configs list a 5,000-step warm-up the trainers do not implement),
clipping 1, EMA with warm-up min(mu, (1+n)/(10+n)) (ours is the same), random flips.
EMA 0.999 (the code's default). Chosen here: batch 250 (the paper's own batch for its CIFAR-10
Immiscible comparison, A.4, and its README run; the code's default is 50). FID reference: the 50,000
training images (the code's torch-fidelity `cifar10-train`). DDPM draws integer timesteps; t is
continuous here.
"""

from configs.images import epochs_to_steps, image_config


def get_config(variant: str = "rf"):
    if variant not in ("rf", "dm"):
        raise ValueError(f"configs/dansm_cifar10.py:{variant}: choose :rf (rectified flow) or :dm (diffusion model).")
    epochs, preset = (500, "ddpmpp_cifar10") if variant == "rf" else (1000, "ddpm_cifar10")
    config = image_config(
        "cifar10",
        preset,
        coupling="dansm",
        batch_size=250,
        num_steps=epochs_to_steps(epochs, 50_000, 250),
        learning_rate=1e-4,
        warmup_steps=0,
        ema_decay=0.999,
    )
    config.eval.fid_split = "train"
    if variant == "rf":
        config.coupling.match_size = 10_000
        config.eval.solvers, config.eval.nfe = ("euler",), (1, 2, 4, 8, 10)
    else:
        config.coupling.match_size = 1_000
        config.loss.name, config.loss.interpolant, config.loss.feature_reduction = "epsilon", "vp_linear", "sum"
        config.eval.solvers, config.eval.nfe, config.eval.t_end = ("ddim",), (3, 4, 10), 0.999
        config.sampling.solver = "ddim"
    return config
