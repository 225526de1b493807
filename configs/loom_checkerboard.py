"""LOOM-CFM, 1 noise cache (Davtyan et al. 2025, Algorithm 1): normal -> checkerboard."""

from configs.toy import toy_config


def get_config():
    return toy_config("loom", "normal", "checkerboard")
