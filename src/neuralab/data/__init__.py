"""Data: image datasets (IDX, CIFAR binary, folders) and time series; where files come from."""

from __future__ import annotations

import os

from neuralab.data.images import ImageData, Split, load_idx_dataset
from neuralab.data.sources import SOURCES, cache_dir, fetch, locate, verify


def load_image_data(name: str, data_dir: str | os.PathLike | None = None,
                    val_fraction: float = 0.1, seed: int = 0) -> ImageData:
    """Load an image dataset by name with a seeded train/validation split."""
    return load_idx_dataset(name, data_dir, val_fraction=val_fraction, seed=seed)


__all__ = ["ImageData", "Split", "SOURCES", "cache_dir", "fetch", "load_image_data", "locate", "verify"]
