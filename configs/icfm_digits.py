"""I-CFM (independent coupling) on the 8x8 digits; see configs/digits.py."""

from configs.digits import digits_config


def get_config():
    return digits_config("independent")
