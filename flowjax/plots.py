"""Figures of the evaluation (`flowjax.evaluate`): samples of 2-D toys and images, and 2-D trajectories.

Every function writes one PNG with matplotlib's non-interactive Agg backend and closes its figure.
"""

from __future__ import annotations

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_samples(path: str, target: np.ndarray, samples: dict[str, np.ndarray]) -> None:
    """A scatter panel of 2-D points [n, 2] per entry: the target, then each solver x NFE (`samples_figure`)."""
    fig = samples_figure(target, samples)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def samples_figure(target: np.ndarray, samples: dict[str, np.ndarray]) -> plt.Figure:
    """The figure of `plot_samples`. Every panel has the same axes, the target's bounding box with a margin, and
    shows the target faintly (grey) under its samples, so that the panels can be compared with the target and
    with each other by eye. Samples outside the box are drawn on its edge rather than widening it: a diverged
    model's samples do not shrink the others."""
    panels = {"target (test set)": target, **samples}
    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    low, high = target.min(0), target.max(0)
    centre, half = (low + high) / 2, (high - low).max() / 2 * 1.15  # a square box: the axes are equal
    lim = (centre - half, centre + half)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False, sharex=True, sharey=True)
    for ax in axes.flat:
        ax.axis("off")
    for i, (ax, (title, x)) in enumerate(zip(axes.flat, panels.items())):
        if i:
            ax.scatter(target[:, 0], target[:, 1], s=1, c="0.8", alpha=0.5, linewidths=0)
        x = np.clip(x, lim[0], lim[1])
        ax.scatter(x[:, 0], x[:, 1], s=1, alpha=0.5, c="tab:blue" if i else "tab:orange", linewidths=0)
        ax.set(title=title, xlim=(lim[0][0], lim[1][0]), ylim=(lim[0][1], lim[1][1]), aspect="equal")
    fig.tight_layout()
    return fig


def plot_image_samples(
    path: str, target: np.ndarray, samples: dict[str, np.ndarray], per_panel: int = 36, target_title: str = "test set"
) -> None:
    """A grid of the first ``per_panel`` images [n, H, W, 1 or 3] in [-1, 1] per panel (the target, then each
    solver x NFE); grey or RGB, panels with fewer images are filled with black."""
    panels = {target_title: target, **samples}
    side = int(np.sqrt(per_panel))
    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, x) in zip(axes.flat, panels.items()):
        x = np.clip(np.asarray(x[: side * side]), -1, 1)
        x = np.concatenate([x, np.full((side * side - x.shape[0],) + x.shape[1:], -1.0, x.dtype)])
        h, w, c = x.shape[1:]
        grid = x.reshape(side, side, h, w, c).transpose(0, 2, 1, 3, 4).reshape(side * h, side * w, c)
        if c == 1:
            ax.imshow(grid[..., 0], cmap="gray", vmin=-1, vmax=1)
        else:
            ax.imshow((grid + 1) / 2)
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_trajectories(path: str, traj: np.ndarray, target: np.ndarray) -> None:
    """traj [steps+1, n, 2]: noise in black, paths in grey, endpoints in blue."""
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(target[:, 0], target[:, 1], s=1, c="tab:orange", alpha=0.3, label="target")
    ax.plot(traj[:, :, 0], traj[:, :, 1], c="grey", lw=0.4, alpha=0.6)
    ax.scatter(traj[0, :, 0], traj[0, :, 1], s=3, c="black", label="x0")
    ax.scatter(traj[-1, :, 0], traj[-1, :, 1], s=3, c="tab:blue", label="x1")
    ax.set(aspect="equal", title="Euler trajectories")
    ax.legend(loc="upper right", markerscale=3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
