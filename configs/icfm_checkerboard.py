"""I-CFM (independent coupling): normal -> checkerboard."""

from configs.toy import toy_config


def get_config():
    return toy_config("independent", "normal", "checkerboard")
