"""Data: toy 2-D samplers (`toy2d`), the offline digits (`digits`), image datasets (`images`), stored pairs
(`pairs`), the step-indexed data order (`stream`), and `dataset`, which decides a config's kind of data once
and hands the rest of the code one `Dataset`. `images` imports tensorflow-datasets / grain lazily."""

from flowjax.data import dataset, digits, images, pairs, stream, toy2d

__all__ = ["dataset", "digits", "images", "pairs", "stream", "toy2d"]
