"""Closed-form references for the rectified-flow theory (Bansal et al. 2024): `mixtures` holds the exact
1-rectified-flow drift from N(0, I) to isotropic Gaussian mixtures and the coupling it induces.
"""

from flowjax.theory import mixtures

__all__ = ["mixtures"]
