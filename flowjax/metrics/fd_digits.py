"""FD-digits: the Fréchet distance of digit samples to the held-out digits, in classifier features.

The digits counterpart of FID: features are the 64-d penultimate activations of the small CNN
`flowjax.models.digits_classifier`, and the reference statistics are those of the 300 test
images of `flowjax.data.digits` (split seed 0). Both ship with the package in ``assets/``,
written by ``python scripts/train_digits_classifier.py`` (deterministic: running it again
regenerates the same files). With 300 reference images the score has a sample-size bias (the
1,497 training images score about the value printed by the script, not 0); compare scores
computed from the same number of samples.
"""

from __future__ import annotations

import os

import numpy as np

from flowjax.metrics import fid
from flowjax.models import digits_classifier, weights

ASSETS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
WEIGHTS_PATH = os.path.join(ASSETS_DIR, "digits_classifier.npz")
STATS_PATH = os.path.join(ASSETS_DIR, "digits_test_stats.npz")


def _require(path: str) -> str:
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"FD-digits asset {path} is missing; regenerate the classifier weights and reference "
            "statistics with `python scripts/train_digits_classifier.py` (it trains on a CPU)."
        )
    return path


def load_classifier() -> weights.Variables:
    """The committed digits-classifier variables ``{"params": ...}``."""
    return weights.load_variables(_require(WEIGHTS_PATH))


def load_reference_stats() -> fid.Stats:
    """(mu [64], sigma [64, 64]) of the classifier features of the digits test split."""
    return fid.load_stats(_require(STATS_PATH))


def fd_digits(samples: np.ndarray, batch_size: int = 500) -> float:
    """FD-digits of ``samples`` [n, S, S, 1] in [-1, 1] (S = 8, or 16 for upsampled digits).

    Raises FileNotFoundError (saying how to regenerate them) if the assets are missing.
    """
    variables, ref_stats = load_classifier(), load_reference_stats()
    return fid.fd_score(lambda x: digits_classifier.features(variables, x), samples, ref_stats, batch_size)


def class_accuracy(samples: np.ndarray, labels: np.ndarray, batch_size: int = 500) -> float:
    """Fraction of class-conditional ``samples`` [n, S, S, 1] that the digits classifier assigns to the class
    they were drawn for (``labels`` [n]): how much a conditional model follows its labels (the classifier's
    own accuracy on the test split bounds it from above)."""
    variables = load_classifier()
    predicted = np.concatenate(
        [
            np.argmax(np.asarray(digits_classifier.logits(variables, samples[i : i + batch_size])), axis=-1)
            for i in range(0, len(samples), batch_size)
        ]
    )
    return float(np.mean(predicted == np.asarray(labels)))
