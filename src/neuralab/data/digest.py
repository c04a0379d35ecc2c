"""Digests that tell the data a run was made on from other data in the same place: another
dataset's files copied over a dataset's, pictures renamed or replaced in a folder."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

SPLITS = ("train", "val", "test")
# Of the pictures a folder's loading left out, config.json names this many: the count says how
# many in all, and a folder of 100,000 broken files must not make config.json megabytes
SKIPPED_LISTED = 20
SKIPPED_SAID = 5      # of those, the report's and `neuralab runs RUN`'s one line names this many
MAX_CLASSES = 200     # a folder of more classes records the digest of its whole listing alone
MAX_REASON = 200      # characters of a reason kept: a decoder's message may quote the file's bytes


def split_record(data) -> dict:
    """What config.json records of the images a run was made on for ``check_same_data``: the
    size of each split and the digest; for a folder, the pictures its loading left out (``skipped``)."""
    from neuralab.data import FolderData

    record = {**{split: len(getattr(data, split)) for split in SPLITS}, **data_digest(data)}
    if isinstance(data, FolderData):
        record["skipped"] = skipped_record(data)
    return record


def skipped_record(data) -> dict:
    """The pictures of a folder that its loading could not read and left out (`on_error` skip,
    ``FolderData.skipped``), as config.json keeps them: ``count``, and the first SKIPPED_LISTED
    as ``pictures``, each its ``path`` in the folder and the ``reason``."""
    root = Path(data.root)

    def in_folder(path: str) -> str:
        try:
            return Path(path).relative_to(root).as_posix()
        except ValueError:  # not under the folder as given: said as the loading said it
            return str(path)

    return {"count": len(data.skipped),
            "pictures": [{"path": in_folder(path), "reason": str(why)[:MAX_REASON]}
                         for path, why in data.skipped[:SKIPPED_LISTED]]}


def skipped_sentence(record) -> str:
    """One line saying what config.json's data record (``record``) lists as left out of the
    folder: "12 pictures of the folder were left out: cat/a.jpg (file is empty), ... and 7
    more"; "" where none was, or the record is from before runs kept the list."""
    skipped = record.get("skipped") if isinstance(record, dict) else None
    count = skipped.get("count") if isinstance(skipped, dict) else None
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        return ""
    pictures = [p for p in skipped.get("pictures") or [] if isinstance(p, dict)][:SKIPPED_SAID]
    # the reason's first clause: what is wrong, not the advice after it (the warning gave that)
    named = [f"{p.get('path')} ({str(p.get('reason') or 'unreadable').split('; ')[0]})" for p in pictures]
    more = f" and {count - len(named):,} more" if count > len(named) else ""
    # not "could not be read": a picture beside the class folders, or in a format neuralab does not
    # open, is left out unread; each one's reason says which
    were = "picture of the folder was" if count == 1 else "pictures of the folder were"
    return f"{count:,} {were} left out" + (f": {', '.join(named)}{more}" if named else "")


def data_digest(data) -> dict:
    """What tells the data a run trains on from other data of the same classes and sizes (another
    dataset's files put in its folder), for ``training.evaluate.check_same_data``. A dataset's
    images and labels as read, a SHA-256 for each split (MNIST's 55 MB: about 40 ms); a folder's pictures by their
    paths and sizes, so that none is read again and no newer decoder's pixels refuse the run."""
    from neuralab.data import FolderData

    if isinstance(data, FolderData):
        whole, by_class = listing_digests(Path(data.root), [path for path, _ in data.skipped])
        # each class's too, for a refusal to name where the folder changed; not for a thousand classes
        return {"listing_sha256": whole, **({"class_listing_sha256": by_class} if len(by_class) <= MAX_CLASSES else {})}
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
    return listing_digests(root, left_out)[0]


def listing_digests(root: Path, left_out=()) -> tuple[str, dict[str, str]]:
    """``listing_sha256``, and the same digest of each class folder's pictures alone, which
    tells a refusal the classes a folder changed in."""
    import warnings

    from neuralab.data.folders import list_images

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # what the loading left out, it said already
        classes, files, _ = list_images(root)
    left_out = set(map(str, left_out))
    digest, by_class = hashlib.sha256(), [hashlib.sha256() for _ in classes]
    for path, label in files:
        if str(path) in left_out:
            continue
        try:
            size = path.stat().st_size
        except OSError:  # a link to nothing: the loading refused it, or left it out
            size = -1
        entry = os.fsencode(path.relative_to(root).as_posix()) + f"\0{size}\n".encode()
        digest.update(entry)
        by_class[label].update(entry)
    return digest.hexdigest(), {name: d.hexdigest() for name, d in zip(classes, by_class)}
