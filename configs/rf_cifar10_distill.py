"""One-step distillation of a k-rectified flow on CIFAR-10 (Liu et al. 2023, "+ distill" rows of LOOM-CFM
Table 1): the student learns x1 from x0 at t = 0 only (``loss.time_sampler = "zero"``: v(x0, 0) = x1 - x0),
on the pairs of a trained 2-RF, fine-tuned from it:

    python main.py --config=configs/rf_cifar10_reflow.py --workdir=runs/rf2 --mode=pairs    # the 2-RF's pairs
    python main.py --config=configs/rf_cifar10_distill.py --workdir=runs/rf2_distill \\
        --config.data.data_dir=runs/rf2/pairs --config.training.init_from=runs/rf2

Values of the released code's ``cifar10_rf_gaussian_reflow_distill_k=1``: t = 0 ("t0"), EMA 0.9999, the rest
as configs/rf_cifar10_reflow.py. Deviation: the code's distillation loss is LPIPS; LPIPS is not implemented
here, so the loss is L2 (the code's ``reflow_loss = 'l2'`` option). Evaluated by one Euler step (NFE 1).
"""

from configs import rf_cifar10_reflow


def get_config():
    config = rf_cifar10_reflow.get_config()
    config.loss.time_sampler = "zero"
    config.eval.solvers, config.eval.nfe = ("euler",), (1,)
    return config
