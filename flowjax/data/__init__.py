"""Data: toy 2-D samplers (`toy2d`), the offline digits (`digits`), image datasets (`images`), and
the step-indexed input stream (`stream`). `images` imports tensorflow-datasets / grain lazily."""
from flowjax.data import digits, images, stream, toy2d

__all__ = ["digits", "images", "stream", "toy2d"]
