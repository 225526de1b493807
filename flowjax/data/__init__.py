"""Data: toy 2-D samplers (`toy2d`)."""
from flowjax.data import toy2d

__all__ = ["toy2d"]
