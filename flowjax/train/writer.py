"""TensorBoard scalars without TensorFlow.

clu's `metric_writers` package imports TensorFlow when it is imported (its TF summary writer is
imported by the package itself), which would put TensorFlow into every install. This writer keeps
clu's `MetricWriter` method names (``write_scalars``, ``flush``, ``close``) and writes the same event
files through tensorboardX, logging the scalars as clu's default writer does.
"""

from __future__ import annotations

from typing import Mapping

from absl import logging


class MetricWriter:
    """Scalars to ``<logdir>/events.out.tfevents.*`` (tensorboardX) and to the log; ``just_logging`` skips
    the event file (every process but the first of a multi-process run)."""

    def __init__(self, logdir: str, just_logging: bool = False):
        self._events = None
        if not just_logging:
            from tensorboardX import SummaryWriter  # imported here: pure modules never need it

            self._events = SummaryWriter(logdir, flush_secs=30)

    def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        logging.info("[%d] %s", step, ", ".join(f"{k}={v:.6g}" for k, v in sorted(scalars.items())))
        if self._events is not None:
            for name, value in scalars.items():
                self._events.add_scalar(name, float(value), step)

    def flush(self) -> None:
        if self._events is not None:
            self._events.flush()

    def close(self) -> None:
        if self._events is not None:
            self._events.close()
