"""Digests that tell the data a run was made on from other data in the same place: another
dataset's files copied over a dataset's, pictures renamed or replaced in a folder."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

SPLITS = ("train", "val", "test")


def split_record(data) -> dict:
    """What config.json records of the images a run was made on for ``check_same_data``: the
    size of each split and the digest."""
    return {**{split: len(getattr(data, split)) for split in SPLITS}, **data_digest(data)}


def data_digest(data) -> dict:
    """What tells the data a run trains on from other data of the same classes and sizes (another
    dataset's files put in its folder), for ``training.classify.check_same_data``. A dataset's
    images and labels as read, a SHA-256 for each split (MNIST's 55 MB: about 40 ms); a folder's pictures by their
    paths and sizes, so that none is read again and no newer decoder's pixels refuse the run."""
    from neuralab.data import FolderData

    if isinstance(data, FolderData):
        return {"listing_sha256": listing_sha256(Path(data.root), [path for path, _ in data.skipped])}
    digests = {}
    for split in SPLITS:
        digest = hashlib.sha256()
        for array in (getattr(data, split).x, getattr(data, split).y):
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            digest.update(np.ascontiguousarray(array))
        digests[split] = digest.hexdigest()
    return {"sha256": digests}


def listing_sha256(root: Path, left_out=()) -> str:
    """SHA-256 of the sorted (path in ``root``, size) of a folder's pictures, but those
    ``left_out``: the ones the loading could not read and skipped (`on_error` skip), which the
    run never used; the warning that names them invites their removal."""
    import warnings

    from neuralab.data.folders import list_images

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # what the loading left out, it said already
        _, files, _ = list_images(root)
    left_out = set(map(str, left_out))
    digest = hashlib.sha256()
    for path, _ in files:
        if str(path) in left_out:
            continue
        try:
            size = path.stat().st_size
        except OSError:  # a link to nothing: the loading refused it, or left it out
            size = -1
        digest.update(os.fsencode(path.relative_to(root).as_posix()) + f"\0{size}\n".encode())
    return digest.hexdigest()
