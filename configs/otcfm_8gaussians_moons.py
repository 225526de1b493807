"""OT-CFM (exact minibatch OT, Hungarian): 8gaussians -> moons."""

from configs.toy import toy_config


def get_config():
    return toy_config("exact_ot", "8gaussians", "moons")
