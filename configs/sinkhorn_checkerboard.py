"""OT-CFM with the entropic (Sinkhorn) minibatch plan: normal -> checkerboard."""

from configs.toy import toy_config


def get_config():
    return toy_config("sinkhorn", "normal", "checkerboard")
