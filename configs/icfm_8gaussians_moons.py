"""I-CFM (independent coupling): 8gaussians -> moons."""

from configs.toy import toy_config


def get_config():
    return toy_config("independent", "8gaussians", "moons")
