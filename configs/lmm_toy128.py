"""The 128-D toy of "Generative Lines Matching Models" (Matityahu & Fattal, Sec. 3, Table 1): N(0, I_128) to the
two-Gaussian mixture of `flowjax.data.toy2d.two_gaussians` (means +-(1, 1, 0, ...), stds (0.1, 0.1, 1, ...)),
one config per method of its Table 1, ``--config=configs/lmm_toy128.py:<method>``:

- ``edm``: EDM (its preconditioned denoiser, ln sigma ~ N(-1.2, 1.2^2), sigma_data = 1: the data's std here);
  its Heun pairs (N = 18, NFE 35) are LMM's lines;
- ``icfm``: flow matching with independent pairs (the paper's "OT-CFM (Lipman)" and 1-rectified flow, one
  objective);
- ``botcfm``: batch OT-CFM, exact OT within batches of 256;
- ``rf2``: 2-rectified flow, trained on the 1-RF's (icfm's) pairs (--config.data.data_dir=<icfm>/pairs);
- ``lmm``: the lines loss (L2, no perceptual or adversarial loss on a toy) on the EDM teacher's pairs
  (--config.data.data_dir=<edm>/pairs), initialised from the teacher (training.init_from).

The paper gives no network, steps or pair counts for this toy; chosen here (CPU minutes): an MLP of 3 x 256 SiLU
layers, 20,000 steps at batch 256, Adam 1e-3 (RAdam for LMM), 20,000 training points and 20,000 pairs.
benchmarks/lmm.py trains all five and measures their straightness in both forms and the endpoints' W2 to q.
"""

from configs import default

METHODS = ("edm", "icfm", "botcfm", "rf2", "lmm")


def get_config(method: str = "icfm"):
    if method not in METHODS:
        raise ValueError(f"configs/lmm_toy128.py:{method}: choose one of {METHODS}, e.g. :edm.")
    config = default.get_config()
    config.data.name, config.data.source, config.data.num_train = "two_gaussians_128", "normal", 20_000
    config.model.hidden, config.model.time_embed_dim = (256, 256, 256), 64
    config.training.num_steps, config.training.batch_size = 20_000, 256
    config.training.log_every, config.training.checkpoint_every = 1_000, 10_000
    config.coupling.name, config.loss.sigma = "independent", 0.0
    config.eval.solvers, config.eval.nfe, config.eval.num_samples = ("euler",), (1, 2, 10), 2_000
    config.pairs.num_pairs, config.pairs.shard_size = 20_000, 5_000
    config.pairs.solver, config.pairs.nfe = "euler", 100
    if method == "botcfm":
        config.coupling.name, config.coupling.solver = "exact_ot", "scipy"
    if method in ("edm", "lmm"):
        config.loss.name, config.loss.sigma_data = "edm", 1.0
        config.eval.solvers = ("edm_heun", "euler")
        config.eval.nfe = (1, 2, 10, 35)
        config.pairs.solver, config.pairs.nfe = "edm_heun", 35
        config.lmm.num_steps = 18
    if method in ("rf2", "lmm"):
        config.data.name, config.data.data_dir, config.data.num_train = "pairs", "", 0
    if method == "lmm":
        config.loss.name, config.lmm.norm, config.lmm.teacher = "lines", "l2sq", ""
        config.optim.name, config.optim.learning_rate = "radam", 3e-4
        config.eval.solvers = ("lmm:0", "lmm:0,1", "lmm_euler:0,1", "euler")
        config.eval.nfe = (1, 2, 10)
    return config
