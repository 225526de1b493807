"""LOOM-CFM with 4 noise caches (Davtyan et al. 2025) on the 8x8 digits; see configs/digits.py."""

from configs.digits import digits_config


def get_config():
    return digits_config("loom", num_caches=4)
