"""Evaluation metrics: exact W2 (point clouds, Gaussians), trajectory straightness/curvature,
DANSM's inter-path distances (`paths`), FID (`fid`) and the digits Fréchet distance (`fd_digits`).

``metrics.straightness`` and ``metrics.fd_digits`` are modules (their functions are
``metrics.straightness.straightness`` and ``metrics.fd_digits.fd_digits``); the functions are not
re-exported here because they would shadow the modules of the same names.
"""

from flowjax.metrics import fd_digits, fid, paths, straightness, wasserstein
from flowjax.metrics.straightness import (
    acceleration,
    acceleration_trajectory,
    average_straightness,
    curvature,
    curvature_from_path,
    euler_trajectory,
    loom_curvature,
    loom_curvature_from_velocities,
    piecewise_straightness,
    rectified_straightness,
    straightness_from_path,
    trajectory_metrics,
)
from flowjax.metrics.wasserstein import gaussian_w2, w2

__all__ = [
    "acceleration",
    "acceleration_trajectory",
    "average_straightness",
    "curvature",
    "curvature_from_path",
    "euler_trajectory",
    "fd_digits",
    "fid",
    "gaussian_w2",
    "loom_curvature",
    "loom_curvature_from_velocities",
    "paths",
    "piecewise_straightness",
    "rectified_straightness",
    "straightness",
    "straightness_from_path",
    "trajectory_metrics",
    "w2",
    "wasserstein",
]
