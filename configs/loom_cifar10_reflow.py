"""LOOM-CFM + reflow on CIFAR-10 (LOOM-CFM Sec. 4.2, Table 1: FID 7.63 at Euler 1 NFE, 4.49 at midpoint
2 NFE): a CFM trained on 1M (x0, x1) pairs of the trained 4-cache LOOM-CFM model.

    python main.py --config=configs/loom_cifar10.py --workdir=runs/loom                    # LOOM-CFM
    python main.py --config=configs/loom_cifar10.py --workdir=runs/loom --mode=pairs       # 1M pairs
    python main.py --config=configs/loom_cifar10_reflow.py --workdir=runs/loom_reflow \\
        --config.data.data_dir=runs/loom/pairs --config.training.init_from=runs/loom

Values of the released code's ``cifar10_ot_cached_reflow.yaml`` (the paper gives none): initialised from the LOOM
checkpoint (the paper says "a new CFM model"; omit init_from for that), independent coupling on the stored
pairs, 200 epochs of the 1M pairs at batch 256 (the code's per-GPU batch; 781,200 steps), Adam 2e-5 after
5,000 warm-up steps, EMA 0.9999, clipping 1, sigma 1e-7, no flips. The code stores x1 as 8-bit images;
here pairs are float32. Evaluated as Table 1 (Euler 1 NFE, midpoint 2 NFE) and dopri5.
"""

from configs import loom_cifar10
from configs.images import epochs_to_steps, reflow_config


def get_config():
    config = reflow_config(
        loom_cifar10.get_config(),
        num_steps=epochs_to_steps(200, 1_000_000, 256),
        ema_decay=0.9999,
        batch_size=256,
        learning_rate=2e-5,
        warmup_steps=5_000,
    )
    config.eval.solvers, config.eval.nfe = ("euler", "midpoint", "dopri5"), (1, 2)
    return config
