"""2-rectified flow on CIFAR-10 (Liu et al. 2023): configs/rf_cifar10.py's model trained on the (x0, x1)
pairs of a trained 1-RF, fine-tuned from it. Three commands (a GPU run):

    python main.py --config=configs/rf_cifar10.py --workdir=runs/rf1                       # 1-RF
    python main.py --config=configs/rf_cifar10.py --workdir=runs/rf1 --mode=pairs          # 4M pairs (RK45)
    python main.py --config=configs/rf_cifar10_reflow.py --workdir=runs/rf2 \\
        --config.data.data_dir=runs/rf1/pairs --config.training.init_from=runs/rf1      # 2-RF

3-RF: the same on runs/rf2's pairs. Values of the released code's ``cifar10_rf_gaussian_reflow_train``:
fine-tuning the 1-RF checkpoint (``training.init_from``; omit it to train from scratch), t ~ U[0, 1], L2
loss, EMA 0.9999; the rest as the 1-RF (batch 128, Adam 2e-4 after 5,000 warm-up steps, clipping 1,
1.3M iterations: the code's default, the paper gives no reflow length). No flips: a flipped x1 would no
longer be the teacher's image of x0. Evaluation against the CIFAR-10 test images (the teacher's data),
Euler at 1/2/4/8 steps and dopri5.
"""

from configs import rf_cifar10
from configs.images import reflow_config


def get_config():
    return reflow_config(rf_cifar10.get_config(), num_steps=1_300_000, ema_decay=0.9999)
