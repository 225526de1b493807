"""LOOM-CFM, 4 noise caches (the paper's CIFAR-10 setting, Table 4): normal -> checkerboard."""

from configs.toy import toy_config


def get_config():
    return toy_config("loom", "normal", "checkerboard", num_caches=4)
