"""Immiscible Diffusion: pools of 1,024 matched exactly (Hungarian), as DANSM's A.4 runs it: normal -> checkerboard."""

from configs.toy import toy_config


def get_config():
    return toy_config("immiscible", "normal", "checkerboard", match_size=1024)
