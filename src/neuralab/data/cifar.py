"""CIFAR-10 from the official *binary* archive, cifar-10-binary.tar.gz (never the pickled
Python version: unpickling a downloaded file can run code).

Layout (Krizhevsky, https://www.cs.toronto.edu/~kriz/cifar.html): cifar-10-batches-bin/
holds data_batch_1.bin ... data_batch_5.bin (training, 10,000 images each) and
test_batch.bin; each is a run of 3073-byte records: one label byte (0-9), then 1024 red,
1024 green and 1024 blue bytes, each plane a 32x32 image in row-major order.

The archive is read in memory with ``tarfile``: nothing is extracted, so member paths
(absolute, ``..``, links) can never write anywhere; only regular files with the expected
names are read, each checked for size before it is read.
"""

from __future__ import annotations

import os
import tarfile
import zlib
from pathlib import Path

import numpy as np

from neuralab.data import VAL_FRACTION
from neuralab.data.idx import REFETCH
from neuralab.data.images import ImageData, Split, split_validation
from neuralab.data.sources import file_in, get_source, locate
from neuralab.errors import NeuralabError

NAME = "cifar10"
ARCHIVE = "cifar-10-binary.tar.gz"
FOLDER = "cifar-10-batches-bin"
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILE = "test_batch.bin"
RECORD = 1 + 3 * 32 * 32           # label byte + 3 colour planes of 32x32
MAX_RECORDS = 10_000               # per batch file, as published


def parse_batch(data: bytes, name: str = "<bytes>", num_classes: int = 10) -> Split:
    """Records of one batch file -> (N, 3, 32, 32) uint8 images and (N,) int64 labels."""
    if len(data) % RECORD:
        raise NeuralabError(
            f"{name}: {len(data)} bytes is not a whole number of {RECORD}-byte records; the archive is damaged: "
            f"{REFETCH}"
        )
    records = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD)
    y = records[:, 0].astype(np.int64)
    if len(y) and y.max() >= num_classes:
        bad = int(np.argmax(y >= num_classes))
        raise NeuralabError(f"{name}: record {bad} has label {y[bad]}, but CIFAR-10 has {num_classes} classes (0-9); "
                            f"the archive is damaged: {REFETCH}")
    x = records[:, 1:].reshape(-1, 3, 32, 32).copy()  # planes R, G, B, each row-major
    return Split(x, y)


def read_archive(path: str | os.PathLike) -> dict[str, bytes]:
    """The six batch files of the archive (.tar.gz or .tar), read without extracting anything."""
    path = Path(path)
    wanted = {f"{FOLDER}/{f}" for f in (*TRAIN_FILES, TEST_FILE)}
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if name not in wanted or not member.isfile():
                    continue
                base = name.rsplit("/", 1)[1]
                if base in found:
                    raise NeuralabError(f"{path}: {name} appears twice; the archive is not the official one")
                if member.size > MAX_RECORDS * RECORD:
                    raise NeuralabError(f"{path}: {name} is {member.size:,} bytes, more than "
                                        f"{MAX_RECORDS:,} records; the archive is not the official one")
                found[base] = tar.extractfile(member).read()
    except FileNotFoundError:
        raise NeuralabError(f"{path}: file not found") from None
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise NeuralabError(f"{path}: damaged or not a tar archive ({e}); {REFETCH}") from None
    missing = [f for f in (*TRAIN_FILES, TEST_FILE) if f not in found]
    if missing:
        raise NeuralabError(f"{path}: missing {', '.join(f'{FOLDER}/{m}' for m in missing)}; "
                            "give the official binary archive cifar-10-binary.tar.gz")
    return found


def load_cifar10(data_dir: str | os.PathLike | None = None, val_fraction: float = VAL_FRACTION, seed: int = 0) -> ImageData:
    """CIFAR-10 (50,000 train + 10,000 test, 32x32x3) with a seeded validation split."""
    source = get_source(NAME)
    path = file_in(locate(NAME, data_dir), ARCHIVE)
    batches = read_archive(path)
    parts = [parse_batch(batches[f], f"{path}:{f}", len(source.classes)) for f in TRAIN_FILES]
    full_train = Split(np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts]))
    test = parse_batch(batches[TEST_FILE], f"{path}:{TEST_FILE}", len(source.classes))
    train, val = split_validation(full_train, val_fraction, seed)
    return ImageData(NAME, list(source.classes), train, val, test)
