"""OT-CFM with the entropic (Sinkhorn) minibatch plan: 8gaussians -> moons."""

from configs.toy import toy_config


def get_config():
    return toy_config("sinkhorn", "8gaussians", "moons")
