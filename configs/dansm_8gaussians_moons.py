"""DANSM greedy matching over pools of 1,024 (Xu et al. 2025, Eq. 11); other sizes: --config.coupling.match_size=N."""

from configs.toy import toy_config


def get_config():
    return toy_config("dansm", "8gaussians", "moons", match_size=1024)
