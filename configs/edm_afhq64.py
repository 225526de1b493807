"""The unconditional EDM teacher on AFHQv2 64x64 (Karras et al. 2022, "Elucidating the Design Space of
Diffusion-Based Generative Models"): DDPM++ (EDM's ``SongUNet``, channel multipliers 1, 2, 2, 2) with EDM's
preconditioning. It is the teacher of Lines Matching Models on AFHQ-64 (LMM App. A.4: 2M pairs from EDM's Heun
with N = 40, NFE 79). A released EDM network can be converted instead (scripts/convert_edm_weights.py,
preset edm_ddpmpp_afhqv2_64; README, "EDM teachers").

The images: AFHQv2 at 64x64 as a folder (``--config.data.data_dir=<folder>``: EDM's dataset_tool.py output
unzipped, or any folder of the cat/dog/wild images; not in the TFDS catalog), unconditional. Values of EDM's
released options (its README, ``--cond=0 --arch=ddpmpp --batch=256 --cres=1,2,2,2 --lr=2e-4 --dropout=0.25
--augment=0.15`` and train.py's defaults): batch 256, Adam lr 2e-4 ramped up over 10 Mimg (39,063 steps), 200
Mimg (781,250 steps), EMA half-life 0.5 Mimg, dropout 0.25, no x-flips, ln sigma ~ N(-1.2, 1.2^2), sigma_data
0.5, the loss summed over pixels, no clipping. Not implemented: EDM's augmentation pipeline (probability
0.15), mixed precision, the EMA ramp's shape.
"""

from configs.images import image_config


def get_config():
    config = image_config(
        "folder",
        "edm_ddpmpp_afhqv2_64",
        coupling="independent",
        batch_size=256,
        num_steps=781_250,
        learning_rate=2e-4,
        warmup_steps=39_063,
        ema_decay=0.5 ** (256 / 500_000),
    )
    config.data.image_size, config.data.random_flip = 64, False
    config.model.dropout, config.model.num_classes = 0.25, 0
    config.loss.name, config.loss.sigma_data, config.loss.feature_reduction = "edm", 0.5, "sum"
    config.optim.grad_clip = 0.0
    config.eval.solvers, config.eval.nfe = ("edm_heun", "euler"), (1, 2, 4, 8, 79)
    config.eval.fid_split = "train"
    # The pairs Lines Matching Models train on (LMM App. A.4): 2M pairs from Heun with N = 40 (NFE 79).
    config.pairs.solver, config.pairs.nfe = "edm_heun", 79
    config.pairs.num_pairs, config.pairs.shard_size = 2_000_000, 10_000
    return config
