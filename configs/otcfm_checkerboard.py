"""OT-CFM (exact minibatch OT, Hungarian): normal -> checkerboard."""

from configs.toy import toy_config


def get_config():
    return toy_config("exact_ot", "normal", "checkerboard")
