"""Test data built from the real datasets: small IDX subsets that train in seconds."""

from __future__ import annotations

import numpy as np

from neuralab.data.idx import read_idx, write_idx


def idx_subset(datasets, name: str, folder, n_train: int, n_test: int):
    """Write the first ``n_train`` / ``n_test`` images of a real IDX dataset to ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        for kind in ("images-idx3", "labels-idx1"):
            arr = read_idx(datasets / name / f"{prefix}-{kind}-ubyte.gz")[:n]
            write_idx(folder / f"{prefix}-{kind}-ubyte.gz", np.ascontiguousarray(arr))
    return folder
