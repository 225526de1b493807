"""Shared builder of the paper-scale image configs (GPU/TPU runs; nothing here runs on a laptop CPU).

Each config file cites the table its values come from; fields a paper does not state are said to be
chosen and are in the config file's docstring. Data are read by index from a prepared TFDS data set
(see README, "Image data sets"); FID needs a converted Inception file (``eval.inception_weights``).
"""

from configs import default


def image_config(
    data: str,
    preset: str,
    *,
    coupling: str,
    batch_size: int,
    num_steps: int,
    learning_rate: float,
    warmup_steps: int,
    ema_decay: float,
    seed: int = 0,
):
    config = default.get_config()
    config.data.name, config.data.source = data, "normal"
    config.data.random_flip = True
    config.model.name, config.model.preset = "unet", preset
    config.coupling.name = coupling
    config.loss.sigma = 0.0
    config.optim.learning_rate, config.optim.warmup_steps = learning_rate, warmup_steps
    config.optim.schedule, config.optim.grad_clip = "constant", 1.0
    config.training.batch_size, config.training.num_steps = batch_size, num_steps
    config.training.ema_decay, config.training.seed = ema_decay, seed
    config.training.log_every, config.training.checkpoint_every, config.training.keep_checkpoints = 1_000, 20_000, 3
    config.eval.num_samples, config.eval.batch_size = 50_000, 500
    config.eval.num_path_samples, config.eval.num_plot_paths = 1_000, 0
    config.sampling.num_samples = 64
    return config


def epochs_to_steps(epochs: float, num_examples: int, batch_size: int) -> int:
    """Training steps of ``epochs`` passes over ``num_examples`` (whole batches per epoch)."""
    return int(round(epochs * (num_examples // batch_size)))


def loom_config(
    data: str,
    preset: str,
    *,
    batch_size: int,
    num_steps: int,
    learning_rate: float,
    warmup_steps: int,
    num_caches: int,
    fid_split: str,
):
    """A LOOM-CFM Table 4 column. Common to its columns: EMA 0.9999, CFM sigma 1e-7; from the released code:
    the plain Euclidean cost ||x - z|| (App. B's c_ij; Sec. 3.1 writes the squared distance), which its
    Hungarian step uses and so produced the paper's numbers, one assignment of the whole global batch (its
    GPUs all-gather their minibatches before the Hungarian step: ``coupling.scope = "global"``), flips as
    examples of their own (own noise caches), seed 1543; evaluated as Table 1 (midpoint 2/4/6 steps,
    dopri5) plus Euler."""
    config = image_config(
        data,
        preset,
        coupling="loom",
        batch_size=batch_size,
        num_steps=num_steps,
        learning_rate=learning_rate,
        warmup_steps=warmup_steps,
        ema_decay=0.9999,
        seed=1543,
    )
    config.coupling.num_caches, config.coupling.cost = num_caches, "euclidean"
    config.coupling.scope = "global"
    config.data.flip_as_example = True
    config.loss.sigma = 1e-7
    config.eval.solvers, config.eval.nfe = ("euler", "midpoint", "dopri5"), (1, 2, 4, 8, 12)
    config.eval.fid_split = fid_split
    return config


def reflow_config(
    teacher,
    *,
    num_steps: int,
    ema_decay: float,
    batch_size: int | None = None,
    learning_rate: float | None = None,
    warmup_steps: int | None = None,
):
    """A student of ``teacher`` (its model, optimiser and evaluation) trained on the teacher's stored pairs
    (``data.name = "pairs"``: pass --config.data.data_dir=<teacher workdir>/pairs, written by --mode=pairs)
    with the independent coupling and no flips (a flip would break the pairs), starting from the teacher's
    EMA parameters when --config.training.init_from=<teacher workdir> is given (both papers' codes do)."""
    config = teacher
    config.data.name, config.data.data_dir, config.data.num_train = "pairs", "", 0
    config.data.random_flip, config.data.flip_as_example = False, False
    config.coupling.name = "independent"
    config.training.num_steps, config.training.ema_decay = num_steps, ema_decay
    for group, field, value in (
        ("training", "batch_size", batch_size),
        ("optim", "learning_rate", learning_rate),
        ("optim", "warmup_steps", warmup_steps),
    ):
        if value is not None:
            config[group][field] = value
    return config
