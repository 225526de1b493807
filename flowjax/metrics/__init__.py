"""Evaluation metrics: exact W2 (point clouds, Gaussians) and trajectory straightness/curvature.

``metrics.straightness`` is the module (its function is ``metrics.straightness.straightness``);
the function is not re-exported here because it would shadow the module of the same name.
"""
from flowjax.metrics import paths, straightness, wasserstein
from flowjax.metrics.straightness import (
    curvature,
    curvature_from_path,
    euler_trajectory,
    loom_curvature,
    loom_curvature_from_velocities,
    straightness_from_path,
    trajectory_metrics,
)
from flowjax.metrics.wasserstein import gaussian_w2, w2

__all__ = [
    "curvature",
    "curvature_from_path",
    "euler_trajectory",
    "gaussian_w2",
    "loom_curvature",
    "loom_curvature_from_velocities",
    "paths",
    "straightness",
    "straightness_from_path",
    "trajectory_metrics",
    "w2",
    "wasserstein",
]
