"""Image datasets as arrays: (N, C, H, W) uint8 images and int64 labels, with a seeded
validation split taken from the training set."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neuralab.data import VAL_FRACTION
from neuralab.data.idx import REFETCH, load_idx
from neuralab.data.sources import NoCacheFolder, cache_dir, file_in, get_source, locate
from neuralab.errors import NeuralabError, ParameterError


def decompressed_dir() -> Path | None:
    """Where decompressed copies of gzip IDX files are kept: in the user's data cache,
    whichever folder the files came from (a read-only system folder, ``data_dir``); None
    where the cache has no folder, and the files are read into memory."""
    try:
        return cache_dir() / "decompressed"
    except NoCacheFolder:  # the files of `data_dir` need no cache: a run goes on without one
        return None


def listed(names, shown: int = 5) -> str:
    """The first ``shown`` of ``names`` as a display lists them: "'0', '1', ... (10 in all)"."""
    names = list(names)
    return ", ".join(map(repr, names[:shown])) + (f", ... ({len(names)} in all)" if len(names) > shown else "")


def _images_summary(x) -> str:
    """"uint8 images (1, 28, 28)": what a display says of a set of images, not their pixels."""
    return f"{getattr(x, 'dtype', type(x).__name__)} images {tuple(np.shape(x)[1:])}"


@dataclass
class Split:
    x: np.ndarray  # (N, C, H, W) uint8
    y: np.ndarray  # (N,) int64

    def __len__(self) -> int:
        return len(self.y)

    def __repr__(self) -> str:
        # A cell ending in `data.train` shows what it holds, not thousands of pixels
        return f"Split({len(self):,} {_images_summary(self.x)}, {getattr(self.y, 'dtype', '')} labels)"


@dataclass
class ImageData:
    name: str
    classes: list[str]
    train: Split
    val: Split
    test: Split

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.x.shape[1:])

    def __repr__(self) -> str:
        # A cell ending in `data` shows what the dataset holds, as a Classifier's does, not its
        # pixels (6,900 characters for the 8x8 digits, a NumPy summary for MNIST)
        return (f"{type(self).__name__}({self.name!r}: {_images_summary(self.train.x)}, "
                f"{getattr(self.train.y, 'dtype', '')} labels of classes [{listed(self.classes)}]; "
                f"train {len(self.train):,}, val {len(self.val):,}, test {len(self.test):,})")


def _images_and_labels(directory, images_file: str, labels_file: str) -> Split:
    images_path, labels_path = file_in(directory, images_file), file_in(directory, labels_file)
    # Mapped from a decompressed copy in the user's cache after the first run (data/idx.py)
    cache = decompressed_dir()
    x, y = load_idx(images_path, cache), load_idx(labels_path, cache)
    if x.ndim != 3:
        raise NeuralabError(f"{images_path}: expected 3 dimensions (N, H, W), found shape {x.shape}")
    if y.ndim != 1:
        raise NeuralabError(f"{labels_path}: expected 1 dimension (N,), found shape {y.shape}")
    if len(x) != len(y):
        raise NeuralabError(
            f"{labels_path}: {len(y)} labels for {len(x)} images in {images_path.name}; the files do not belong together"
        )
    # (N, H, W) -> (N, 1, H, W) by reshape, a view with C order's strides: x[:, None] would give the
    # channel stride 0 (1 once indexed), which PyTorch takes as channels-last, so a user's
    # x.view(len(x), -1) after a convolution fails
    x = check_images(x, images_path)
    return Split(x.reshape(len(x), 1, *x.shape[1:]), checked_labels(y, labels_path))


def check_images(x: np.ndarray, path) -> np.ndarray:
    """``x`` if it holds 8-bit pixels (0..255), as every image dataset stores them; an IDX file
    of floats or wider integers would be scaled wrongly without a word, so it is refused."""
    if x.dtype != np.uint8:
        raise NeuralabError(f"{path}: images are stored as {x.dtype}; neuralab reads 8-bit pixels (IDX type "
                            "0x08, values 0..255): convert the images to uint8 first")
    return x


MAX_LABEL = 2**31 - 1  # more classes than any dataset has: a label beyond it is damage


def checked_labels(y: np.ndarray, path) -> np.ndarray:
    """``y`` as int64 class indices, refusing fractional, non-finite or negative labels (which a
    cast would silently turn into other classes), naming the file and the first bad label."""
    if y.dtype.kind == "f":
        bad = ~np.isfinite(y) | (y != np.round(y))
        if bad.any():
            i = int(np.argmax(bad))
            raise NeuralabError(f"{path}: label {y[i]} (at index {i}) is not a whole number; labels are "
                                "class indices 0, 1, 2, ...")
    elif y.dtype.kind not in "iu":
        raise NeuralabError(f"{path}: labels are stored as {y.dtype}; expected whole numbers (class indices)")
    if len(y) and y.min() < 0:
        i = int(np.argmin(y))
        raise NeuralabError(f"{path}: label {y[i]:g} (at index {i}) is negative; labels are class indices "
                            "0, 1, 2, ...")
    if len(y) and y.max() > MAX_LABEL:  # cast to int64, 1e30 would become a negative number
        i = int(np.argmax(y))
        raise NeuralabError(f"{path}: label {y[i]:g} (at index {i}) is no class index a dataset has; labels are "
                            "class indices 0, 1, 2, ...")
    return y.astype(np.int64)


def split_validation(train: Split, val_fraction: float, seed: int) -> tuple[Split, Split]:
    """Hold out ``val_fraction`` of ``train``, chosen by a permutation seeded with ``seed``."""
    if not 0.0 <= val_fraction < 1.0:
        raise ParameterError("val_fraction", val_fraction, "must be in [0, 1)")
    order = np.random.default_rng(seed).permutation(len(train))
    n_val = int(round(len(train) * val_fraction))
    val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
    return Split(train.x[train_idx], train.y[train_idx]), Split(train.x[val_idx], train.y[val_idx])


def load_idx_dataset(name: str, data_dir: str | os.PathLike | None = None,
                     val_fraction: float = VAL_FRACTION, seed: int = 0) -> ImageData:
    """MNIST or Fashion-MNIST from wherever ``sources.locate`` finds them."""
    source = get_source(name)
    directory = locate(name, data_dir)
    full_train = _images_and_labels(directory, "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
    test = _images_and_labels(directory, "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    for split, f in ((full_train, "train-labels-idx1-ubyte.gz"), (test, "t10k-labels-idx1-ubyte.gz")):
        if len(split) and split.y.max() >= len(source.classes):
            raise NeuralabError(f"{file_in(directory, f)}: label {split.y.max()} out of range for {len(source.classes)} "
                                f"classes (0..{len(source.classes) - 1}); the file does not belong to {name}: "
                                f"{REFETCH}")
    train, val = split_validation(full_train, val_fraction, seed)
    return ImageData(name, list(source.classes), train, val, test)
