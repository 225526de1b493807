"""DANSM greedy matching over pools of 1,024 (Xu et al. 2025) on the 8x8 digits; see configs/digits.py."""

from configs.digits import digits_config


def get_config():
    return digits_config("dansm", match_size=1024)
