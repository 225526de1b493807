"""Shared builder of the Lines Matching Models configs ("Generative Lines Matching Models", Matityahu & Fattal):
an LMM run is its EDM teacher's config (same network, data and evaluation) trained with the lines loss on the
teacher's stored Heun pairs, starting from the teacher's weights.

Each config's docstring gives its three commands (teacher -> pairs -> LMM); `flowjax.train.experiment` prints
them when the pairs or the teacher's weights are missing.
"""


def lmm_config(
    teacher,
    teacher_name: str,
    *,
    num_steps: int,
    learning_rate: float,
    batch_size: int,
    schedules: tuple[str, ...],
    adversarial_steps: int = 0,
    ema_decay: float = 0.999,
):
    """``teacher`` (a config) turned into its LMM student: pairs data (--config.data.data_dir), loss "lines" with
    the teacher's N (pairs.nfe = 2N - 1 of Heun), RAdam with LMM Table 6's generator betas, EMA 0.999, no
    gradient clipping (the paper states none), evaluated with LMM's sampler at ``schedules`` (App. A.3) and the
    deterministic step along the lines at the second schedule. ``num_steps`` of stage 1 (lines loss), then
    ``adversarial_steps`` of stage 2 (LPIPS at 224 plus the adversarial loss, discriminator inputs at 224)."""
    config = teacher
    n = (config.pairs.nfe + 1) // 2  # the teacher's Heun steps: NFE 2N - 1
    config.data.name, config.data.data_dir, config.data.num_train = "pairs", "", 0
    config.data.random_flip, config.data.flip_as_example = False, False
    config.coupling.name = "independent"
    config.loss.name, config.loss.feature_reduction = "lines", "mean"
    config.lmm.num_steps, config.lmm.teacher = n, teacher_name
    config.optim.name, config.optim.learning_rate, config.optim.warmup_steps = "radam", learning_rate, 0
    config.optim.b1, config.optim.b2, config.optim.grad_clip, config.optim.schedule = 0.9, 0.999, 0.0, "constant"
    config.training.num_steps, config.training.batch_size, config.training.ema_decay = num_steps, batch_size, ema_decay
    config.eval.solvers = tuple(f"lmm:{s}" for s in schedules) + tuple(f"lmm_euler:{s}" for s in schedules[1:2])
    config.eval.nfe = ()
    if adversarial_steps:  # App. A.4: stage 1 with LPIPS at native size, stage 2 at 224 with the adversarial loss
        config.lmm.norm, config.lmm.lpips_resize, config.lmm.adv_lpips_resize = "lpips", 0, 224
        config.lmm.adversarial_from, config.lmm.d_resize = num_steps, 224
        config.training.num_steps = num_steps + adversarial_steps
    return config
