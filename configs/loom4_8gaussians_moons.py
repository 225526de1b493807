"""LOOM-CFM, 4 noise caches (the paper's CIFAR-10 setting, Table 4): 8gaussians -> moons."""

from configs.toy import toy_config


def get_config():
    return toy_config("loom", "8gaussians", "moons", num_caches=4)
