"""1-rectified flow on the digits with the first 3, 7 or 10 classes: the digits analogue of the RF
theory paper's MNIST experiment (Bansal et al. 2024, Sec. 5.2, Fig. 5), with
``--config=configs/rf_digits.py:3``, ``:7`` or ``:10`` (default).

The paper trains a UNet on the MNIST training images of the first c classes (its code selects
``arange(c)``) and reports W2 between Euler samples (T steps) and the test images of those classes.
Here: scikit-learn's 8x8 digits with the small UNet of configs/digits.py, the independent coupling,
sigma 0 (rectified flow), 2,000 steps; exact W2 against all test images of the kept classes (the
300-image stratified test split, so ~90 / ~210 / 300 images), as many samples as test images.
FD-digits is reported for all ten classes only (its reference statistics are of all ten).
"""

from configs.digits import digits_config
from flowjax.data import digits


def get_config(num_classes: str = "10"):
    if num_classes not in ("3", "7", "10"):
        raise ValueError(
            f"configs/rf_digits.py:{num_classes}: the paper's subsets keep the first 3, 7 or 10 "
            "classes (e.g. --config=configs/rf_digits.py:3)."
        )
    config = digits_config("independent")
    config.data.num_classes = int(num_classes)
    config.eval.solvers = ("euler", "dopri5")
    config.eval.nfe = (1, 2, 4, 8, 16, 32)
    config.eval.num_samples = len(digits.from_config(config.data, "test")[1])
    config.eval.num_path_samples = min(config.eval.num_path_samples, config.eval.num_samples)
    return config
