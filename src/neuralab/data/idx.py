"""A strict reader and writer for the IDX format of MNIST and Fashion-MNIST.

Layout (LeCun et al.): two zero bytes, a type code, the number of dimensions, then one
big-endian int32 per dimension, then the data in C order, big-endian.

``load_idx`` reads a file as ``read_idx`` does, but maps it from disk instead of reading it
into memory, and decompresses a gzip file only once: into ``cache``, where later loads find
it (MNIST's training images: 0.3 s of decompression saved on every run). The cache keeps one
copy per file and at most ``MAX_CACHE`` bytes, the copies used last.

Beside each copy a stamp (``.NAME.stamp``) records its size, its modification time and the
SHA-256 of its content as written or last checked. A load compares the copy's ``stat`` with the
stamp (microseconds); only a copy changed since (or one without a stamp) has its content checked,
and is written again from the file where it differs: hashing MNIST's training images on every
load would cost 30-70 ms, more than the load. Where no stamp can be written (a full disk), the
process remembers the copies it checked; a read-only cache's copies without a stamp (filled by
an older neuralab) are trusted on their header and size, as they were before stamps.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import io
import math
import os
import struct
import time
import zlib
from pathlib import Path

import numpy as np

from neuralab.errors import NeuralabError, user_stacklevel
from neuralab.files import WriteError, atomic_write

_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_MAX_HEADER = 4 + 4 * 255  # magic, then up to 255 dimensions
REFETCH = "delete it and fetch it again"  # what to do about a dataset's file that is damaged
# Bytes of decompressed copies ``load_idx`` keeps: MNIST's and Fashion-MNIST's take 55 MB each,
# so a few datasets stay while folders that come and go (a subset, a test's) cannot fill the disk
MAX_CACHE = 512 * 2**20
# Seconds after which a copy being written, untouched since, was left by a killed process even where
# flocks do not tell: writing one takes seconds (EMNIST's largest, 550 MB), so an hour is never a live one
STALE_TMP = 3600
# Seconds within which a copy used again is not marked again: the order of use the cache keeps
# needs no finer time, and the stamp written again with each mark costs more than the load itself
USED_AGAIN = 60
# Bytes a gzipped file may decompress to: EMNIST's largest file takes 550 MB
MAX_DECOMPRESSED = 2 * 2**30
_CODES = {dt.newbyteorder("=") if dt.itemsize > 1 else dt: code for code, dt in _DTYPES.items()}
# copy -> (its state, its SHA-256) as this process checked it where its stamp could not be
# written: a copy checked once is not checked again on every load
_CHECKED: dict[Path, tuple[tuple[int, ...], str]] = {}


def read_bytes(path: str | os.PathLike) -> bytes:
    """The file's bytes, decompressed when it is gzip (detected by its magic, not its name)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise NeuralabError(f"{path}: file not found") from None
    except OSError as e:
        raise NeuralabError(f"{path}: cannot read ({e.strerror})") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
                data = stream.read(MAX_DECOMPRESSED + 1)  # a few KB of gzip can claim gigabytes
        except (OSError, EOFError, zlib.error) as e:
            raise NeuralabError(f"{path}: damaged gzip data ({e}); {REFETCH}") from None
        if len(data) > MAX_DECOMPRESSED:
            raise NeuralabError(f"{path}: decompresses to more than {MAX_DECOMPRESSED // 2**20:,} MB, more than an "
                                "image dataset's file holds; it is not one")
        return data
    return raw


def _header(head: bytes, size: int, name: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, header length) of IDX data of ``size`` bytes starting with ``head``,
    checking the magic, the type and that the size matches the header exactly."""
    if size < 4:
        raise NeuralabError(f"{name}: too short for an IDX header ({size} bytes); {REFETCH}")
    zero, code, ndim = struct.unpack(">HBB", head[:4])
    if zero != 0 or code not in _DTYPES:
        raise NeuralabError(f"{name}: not an IDX file (magic bytes {head[:4].hex()}, expected 0000 08 0N); {REFETCH}")
    if ndim == 0:
        raise NeuralabError(f"{name}: IDX header declares 0 dimensions; {REFETCH}")
    header = 4 + 4 * ndim
    if size < header:
        raise NeuralabError(f"{name}: truncated IDX header ({size} of {header} bytes); {REFETCH}")
    shape = struct.unpack(f">{ndim}i", head[4:header])
    if any(d < 0 for d in shape):
        raise NeuralabError(f"{name}: IDX header has a negative dimension {shape}; {REFETCH}")
    dtype = _DTYPES[code]
    expected = header + math.prod(shape) * dtype.itemsize  # Python's integers: NumPy's int64 would wrap
    if size != expected:
        what = "truncated" if size < expected else "has trailing bytes"
        raise NeuralabError(
            f"{name}: {what}: header says {shape} ({expected} bytes), file has {size} bytes; {REFETCH}"
        )
    return shape, dtype, header


def _native(arr: np.ndarray) -> np.ndarray:
    return arr.astype(arr.dtype.newbyteorder("="), copy=False) if arr.dtype.itemsize > 1 else arr


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse IDX bytes, checking the magic, the type and that the size matches the header exactly."""
    shape, dtype, header = _header(data[:_MAX_HEADER], len(data), name)
    return _native(np.frombuffer(data, dtype=dtype, offset=header).reshape(shape))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (raw or gzip) into a NumPy array."""
    return parse_idx(read_bytes(path), str(path))


def load_idx(path: str | os.PathLike, cache: str | os.PathLike | None = None) -> np.ndarray:
    """The array of an IDX file, read-only and mapped from disk: the file itself when it is
    raw, else its decompressed copy in ``cache`` (written atomically on the first load; each
    version of the compressed file gets its own copy). Without ``cache``, or when the copy
    cannot be written there, the file is read into memory as by ``read_idx``."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            gzipped = f.read(2) == b"\x1f\x8b"
        stat = path.stat()
    except FileNotFoundError:
        raise NeuralabError(f"{path}: file not found") from None
    except OSError as e:
        raise NeuralabError(f"{path}: cannot read ({e.strerror})") from None
    if not gzipped:
        return _map_idx(path, str(path))
    if cache is None:
        return read_idx(path)
    copy, stem = _copy_of(path, stat, Path(cache))
    data, damaged = None, False
    if copy.is_file():
        try:
            array = _map_idx(copy, str(copy))
        except (NeuralabError, OSError):
            pass  # a damaged copy is written again from the file
        else:
            unstamped = not _stamp_of(copy).exists()
            digest = _stamped_digest(copy)
            if digest is None and unstamped and not os.access(copy.parent, os.W_OK):
                # a read-only cache filled before stamps (a shared NEURALAB_DATA): no stamp can
                # record a check, which would then cost every load a decompression and a read
                return array
            if digest is None:  # changed since its stamp, or never stamped: its content tells
                data = read_bytes(path)
                digest = _digest_if_intact(copy, data)
            if digest is not None:
                _used(copy, digest)
                return array
            damaged = True
    if data is None:
        data = read_bytes(path)
    array = parse_idx(data, str(path))  # a damaged file is named as the user gave it
    try:
        _write_copy(copy, data)
    except (WriteError, OSError):  # a read-only or full cache: this run keeps the array in memory
        if damaged:
            with contextlib.suppress(OSError):  # the damaged copy must not serve again
                copy.unlink()
        return array
    if damaged:
        _say_mended(copy, path)
    _trim(Path(cache), keep=copy, older=[p for p in Path(cache).glob(f"{stem}.*") if p != copy])
    return _map_idx(copy, str(copy))


def _copy_of(path: Path, stat: os.stat_result, cache: Path) -> tuple[Path, str]:
    """The decompressed copy of the gzip file ``path`` in ``cache``, and the start of the name
    its every version's copy has. One copy per file, named by its path and its version (size and
    time): a newer version replaces the older one's copy."""
    source = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    version = hashlib.sha256(f"{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:8]
    stem = f"{path.name.removesuffix('.gz')}.{source}"
    return cache / f"{stem}.{version}", stem


def _write_copy(copy: Path, data: bytes) -> None:
    with atomic_write(copy, "wb") as f:
        # held while written, so that ``_trim`` tells a live copy from a killed one's leftover
        with contextlib.suppress(OSError):  # a file system without flocks: the age tells
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        f.write(data)
    _write_stamp(copy, hashlib.sha256(data).hexdigest())


def _stamp_of(copy: Path) -> Path:
    """The stamp of ``copy``: hidden, so that ``_trim`` counts it as no copy."""
    return copy.with_name(f".{copy.name}.stamp")


def _state(info: os.stat_result) -> tuple[int, ...]:
    """What a stamp records of a copy's ``stat``: any change to the copy changes it."""
    return info.st_size, info.st_mtime_ns


def _write_stamp(copy: Path, digest: str) -> None:
    """Stamp ``copy``, whose content has the SHA-256 ``digest``, as it is on disk now. Without a
    stamp (a read-only cache, a full disk) the next process checks the content: nothing is lost."""
    try:
        state = _state(copy.stat())
    except OSError:
        return
    try:
        # no fsync: a stamp lost to a power cut, or left empty, costs the next load one check
        with atomic_write(_stamp_of(copy), "w", durable=False) as f:
            f.write(" ".join(map(str, (*state, digest))) + "\n")
    except (WriteError, OSError):
        _CHECKED[copy] = state, digest
    else:
        _CHECKED.pop(copy, None)


def _stamped_digest(copy: Path) -> str | None:
    """The SHA-256 of ``copy``'s content where its stamp shows it unchanged since written or
    checked (the same size and modification time); else None. A copy changed with a stamp
    that tells its former content is checked here against it, without the file."""
    try:
        state = _state(copy.stat())
    except OSError:
        return None
    checked = _CHECKED.get(copy)
    if checked is not None and checked[0] == state:
        return checked[1]
    try:
        *stamped, digest = _stamp_of(copy).read_text().split()
        stamped = tuple(map(int, stamped))
    except (OSError, ValueError, UnicodeDecodeError):  # no stamp, or one cut short
        return None
    if stamped == state:
        return digest
    if _sha256_of(copy) == digest:  # touched, not changed (copied back with its content)
        _write_stamp(copy, digest)
        return digest
    with contextlib.suppress(OSError):  # damaged: the file's content, read next, is what to compare
        _stamp_of(copy).unlink()
    return None


def _sha256_of(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def _digest_if_intact(copy: Path, data: bytes) -> str | None:
    """The SHA-256 of ``data``, the file's decompressed bytes, where ``copy`` holds them (and
    is stamped so now); None where it holds other bytes."""
    view = memoryview(data)
    try:
        with open(copy, "rb") as f:
            if os.fstat(f.fileno()).st_size != len(data):
                return None
            # in chunks: the whole copy read beside the file's bytes would double the memory held
            for offset, chunk in enumerate(iter(lambda: f.read(1 << 20), b"")):
                if view[offset << 20:(offset << 20) + len(chunk)] != chunk:
                    return None
    except OSError:
        return None
    digest = hashlib.sha256(data).hexdigest()
    _write_stamp(copy, digest)
    return digest


def _used(copy: Path, digest: str) -> None:
    """Mark ``copy`` as used now (the cache keeps the copies used last), stamped again with
    its new modification time; one marked less than ``USED_AGAIN`` seconds ago stays as it is."""
    try:
        if time.time() - copy.stat().st_mtime < USED_AGAIN:
            return
        os.utime(copy)
    except OSError:  # a read-only cache still serves its copies
        return
    _write_stamp(copy, digest)


def _say_mended(copy: Path, path: Path) -> None:
    import warnings

    from neuralab.data.sources import CopyMended

    warnings.warn(f"{copy}: the cache's decompressed copy of {path} held other bytes than the file (damaged on "
                  "disk); written again from the file", CopyMended, stacklevel=user_stacklevel())


def mend_copy(path: str | os.PathLike, cache: str | os.PathLike | None, data: bytes) -> Path | None:
    """The decompressed copy in ``cache`` of the gzip IDX file ``path`` (whose decompressed
    bytes are ``data``) where it held other bytes and was written again from ``data``; None where
    it is intact (and stamped so now), or there is none. ``load_idx`` checks the content of a copy
    changed since its stamp only: one damaged keeping its size and modification time (a disk
    error, a tool that puts the time back) is caught where the file's content is read anyway, as
    ``neuralab data verify`` does."""
    path = Path(path)
    if cache is None:
        return None
    try:
        copy, _ = _copy_of(path, path.stat(), Path(cache))
    except OSError:
        return None
    if not copy.is_file():  # no copy: the next load writes one
        return None
    if _digest_if_intact(copy, data) is not None:
        return None
    try:
        _write_copy(copy, data)
    except (WriteError, OSError):  # a cache no longer writable: the damaged copy must not serve again
        with contextlib.suppress(OSError):
            copy.unlink()
    return copy


def _trim(cache: Path, keep: Path, older: list[Path]) -> None:
    """Remove ``older`` copies of the file just cached, then the least recently used copies
    of others until the cache holds at most ``MAX_CACHE`` bytes (``keep`` always stays).

    A copy being written (``.NAME.*.tmp``) counts, and stays while its writer lives; one that a
    process killed mid-copy left behind goes."""
    for stale in older:
        _remove_copy(stale)
    copies, writing, now = [], 0, time.time()
    for p in cache.iterdir():
        if p == keep:
            continue
        try:
            info = p.stat()
            if p.name.startswith("."):
                if p.name.endswith(".tmp") and _abandoned(p, now - info.st_mtime):
                    p.unlink()
                elif p.name.endswith(".tmp"):
                    writing += info.st_size
                elif p.name.endswith(".stamp") and not (cache / p.name[1:-len(".stamp")]).exists():
                    p.unlink()  # its copy went (a cache trimmed before copies had stamps, or by hand)
                continue
        except OSError:
            continue  # removed meanwhile by another process
        copies.append((info.st_mtime, info.st_size, p))
    total = keep.stat().st_size + writing + sum(size for _, size, _ in copies)
    for _, size, p in sorted(copies):
        if total <= MAX_CACHE:
            break
        _remove_copy(p)
        total -= size


def _remove_copy(copy: Path) -> None:
    copy.unlink(missing_ok=True)
    _stamp_of(copy).unlink(missing_ok=True)


def _abandoned(tmp: Path, age: float) -> bool:
    """Whether no process writes ``tmp`` any more: its writer's flock is gone (it dies with the
    process, kill -9 included), or, where the file system keeps no flocks, it is ``STALE_TMP`` old.
    Taking a live copy by mistake costs its writer only the cache: it keeps its array in memory."""
    if age > STALE_TMP:
        return True
    try:
        fd = os.open(tmp, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _map_idx(path: Path, name: str) -> np.ndarray:
    """The array of a raw IDX file, mapped read-only after the same checks as ``parse_idx``."""
    with open(path, "rb") as f:
        head = f.read(_MAX_HEADER)
        size = os.fstat(f.fileno()).st_size
    shape, dtype, header = _header(head, size, name)
    if 0 in shape:  # nothing to map
        return _native(np.zeros(shape, dtype))
    return _native(np.memmap(path, dtype=dtype, mode="r", offset=header, shape=shape))


def write_idx(path: str | os.PathLike, array: np.ndarray, compress: bool | None = None) -> None:
    """Write ``array`` as IDX; gzip when ``compress`` or when the name ends in .gz."""
    path = Path(path)
    array = np.ascontiguousarray(array)
    native = array.dtype.newbyteorder("=") if array.dtype.itemsize > 1 else array.dtype
    if native not in _CODES:
        raise NeuralabError(f"{path}: IDX cannot store dtype {array.dtype}")
    code = _CODES[native]
    body = struct.pack(f">HBB{array.ndim}i", 0, code, array.ndim, *array.shape)
    body += array.astype(_DTYPES[code], copy=False).tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        body = gzip.compress(body, mtime=0)
    with atomic_write(path, "wb") as f:
        f.write(body)
