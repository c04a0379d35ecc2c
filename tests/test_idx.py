"""The IDX reader on files the tests write, and on the real MNIST and Fashion-MNIST."""

import gzip
import struct

import numpy as np
import pytest

from neuralab.data.idx import load_idx, parse_idx, read_idx, write_idx
from neuralab.data.sources import SOURCES, file_in, verify
from neuralab.errors import NeuralabError


@pytest.mark.parametrize("dtype", ["u1", "i1", "i2", "i4", "f4", "f8"])
@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_round_trip(tmp_path, dtype, name):
    arr = (np.arange(2 * 3 * 4) - 5).astype(dtype).reshape(2, 3, 4)
    write_idx(tmp_path / name, arr)
    back = read_idx(tmp_path / name)
    assert back.dtype == arr.dtype and back.shape == (2, 3, 4)
    np.testing.assert_array_equal(back, arr)


def test_gzip_detected_by_content_not_name(tmp_path):
    write_idx(tmp_path / "labels", np.array([3, 1, 4], dtype=np.uint8), compress=True)
    assert (tmp_path / "labels").read_bytes()[:2] == b"\x1f\x8b"
    np.testing.assert_array_equal(read_idx(tmp_path / "labels"), [3, 1, 4])


def _valid():
    return b"\x00\x00\x08\x02" + (2).to_bytes(4, "big") + (3).to_bytes(4, "big") + bytes(range(6))


@pytest.mark.parametrize("data, message", [
    (b"\x01\x00\x08\x02" + _valid()[4:], "not an IDX file"),
    (b"\x00\x00\x07\x02" + _valid()[4:], "not an IDX file"),
    (_valid()[:-1], "truncated"),
    (_valid() + b"\x00", "trailing bytes"),
    (_valid()[:7], "truncated IDX header"),
    (b"\x00\x00", "too short"),
])
def test_damaged_files_are_refused(data, message):
    with pytest.raises(NeuralabError, match=message):
        parse_idx(data, "f.idx")


def test_damaged_gzip_names_the_file(tmp_path):
    path = tmp_path / "x-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(_valid())[:-6])
    with pytest.raises(NeuralabError, match=str(path)):
        read_idx(path)


def test_real_mnist_files(mnist):
    x = read_idx(file_in(mnist, "train-images-idx3-ubyte.gz"))
    y = read_idx(file_in(mnist, "train-labels-idx1-ubyte.gz"))
    assert x.shape == (60000, 28, 28) and x.dtype == np.uint8 and y.shape == (60000,)
    assert np.bincount(y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert read_idx(file_in(mnist, "t10k-images-idx3-ubyte.gz")).shape == (10000, 28, 28)
    assert verify("mnist", mnist) == {name: True for name in SOURCES["mnist"].files}  # the pinned SHA-256s


def test_real_fashion_mnist_files(fashion_mnist):
    y_train = read_idx(file_in(fashion_mnist, "train-labels-idx1-ubyte.gz"))
    y_test = read_idx(file_in(fashion_mnist, "t10k-labels-idx1-ubyte.gz"))
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10


# --- load_idx: mapped from disk, gzip decompressed once into a cache -------------------------------

def test_load_idx_maps_a_raw_file_read_only(tmp_path):
    arr = np.arange(24, dtype=">i4").reshape(2, 3, 4)
    write_idx(tmp_path / "a.idx", arr)
    back = load_idx(tmp_path / "a.idx", tmp_path / "cache")
    np.testing.assert_array_equal(back, arr)
    assert not (tmp_path / "cache").exists()  # a raw file needs no copy
    u8 = np.arange(6, dtype=np.uint8).reshape(2, 3)
    write_idx(tmp_path / "b.idx", u8)
    mapped = load_idx(tmp_path / "b.idx")
    assert isinstance(mapped, np.memmap) and not mapped.flags.writeable


def test_load_idx_decompresses_a_gzip_file_once(tmp_path, monkeypatch):
    arr = np.arange(60, dtype=np.uint8).reshape(5, 3, 4)
    write_idx(tmp_path / "x-idx3-ubyte.gz", arr)
    first = load_idx(tmp_path / "x-idx3-ubyte.gz", tmp_path / "cache")
    copies = _copies(tmp_path / "cache")
    assert len(copies) == 1 and copies[0].name.startswith("x-idx3-ubyte.")
    assert read_idx(copies[0]).tobytes() == arr.tobytes()

    import neuralab.data.idx as idx

    def no_decompression(path):
        raise AssertionError(f"decompressed {path} again")

    monkeypatch.setattr(idx, "read_bytes", no_decompression)
    again = load_idx(tmp_path / "x-idx3-ubyte.gz", tmp_path / "cache")
    assert isinstance(again, np.memmap)
    np.testing.assert_array_equal(again, arr)
    np.testing.assert_array_equal(first, arr)


def test_load_idx_takes_a_new_copy_when_the_file_changes(tmp_path):
    path = tmp_path / "y-idx1-ubyte.gz"
    write_idx(path, np.array([1, 2, 3], dtype=np.uint8))
    load_idx(path, tmp_path / "cache")
    write_idx(path, np.array([7, 8, 9, 10], dtype=np.uint8))
    np.testing.assert_array_equal(load_idx(path, tmp_path / "cache"), [7, 8, 9, 10])
    (copy,) = _copies(tmp_path / "cache")  # the older version's copy went (its stamp too)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [f".{copy.name}.stamp", copy.name]
    assert copy.stat().st_size == 8 + 4


def _copies(cache) -> list:
    """The decompressed copies in ``cache``, without their stamps (hidden files)."""
    return [p for p in cache.iterdir() if not p.name.startswith(".")]


def _gzipped_sets(root, n: int) -> list:
    """``n`` folders of one gzipped IDX file each (1,000 bytes decompressed, all ``i``s)."""
    files = []
    for i in range(n):
        files.append(root / f"set{i}" / "x-idx3-ubyte.gz")
        files[-1].parent.mkdir()
        write_idx(files[-1], np.full((10, 10, 10), i, np.uint8))
    return files


def test_the_cache_keeps_the_copies_used_last_within_its_size(tmp_path, monkeypatch):
    """Folders that come and go (subsets, other checkouts) must not fill the disk with copies."""
    import os

    from neuralab.data import idx

    monkeypatch.setattr(idx, "MAX_CACHE", 3 * (16 + 1000))  # room for three copies of 1,000 bytes
    cache = tmp_path / "cache"
    files = _gzipped_sets(tmp_path, 5)

    def copy_of(path):
        return next((c for c in cache.glob("*") if c.name.split(".")[1] ==
                     idx.hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]), None)

    for i, path in enumerate(files[:3]):
        load_idx(path, cache)
        os.utime(copy_of(path), (0, 1_000_000 + i))  # used in this order, seconds apart
    load_idx(files[0], cache)  # used again: now the most recent
    load_idx(files[3], cache)  # the cache is full: set1's copy goes, then set2's
    load_idx(files[4], cache)
    assert [copy_of(f) is not None for f in files] == [True, False, False, True, True]
    assert sum(c.stat().st_size for c in _copies(cache)) <= idx.MAX_CACHE
    assert len(list(cache.iterdir())) == 2 * 3  # the stamps of the copies that went went with them


def test_load_idx_rewrites_a_damaged_copy(tmp_path):
    path = tmp_path / "y-idx1-ubyte.gz"
    write_idx(path, np.array([1, 2, 3], dtype=np.uint8))
    load_idx(path, tmp_path / "cache")
    (copy,) = _copies(tmp_path / "cache")
    copy.write_bytes(copy.read_bytes()[:-1])  # truncated behind neuralab's back
    np.testing.assert_array_equal(load_idx(path, tmp_path / "cache"), [1, 2, 3])
    assert copy.stat().st_size == 8 + 3


def test_load_idx_checks_a_copy_changed_since_its_stamp_and_only_then(tmp_path, monkeypatch):
    """A copy of the right size whose bytes changed on disk passed the header and size checks and
    was read in the file's place. Its stamp (size, modification time) now tells it changed, its
    content is checked and it is written again; an unchanged copy is not hashed."""
    from neuralab.data import idx
    from neuralab.data.sources import CopyMended

    (path,) = _gzipped_sets(tmp_path, 1)
    cache = tmp_path / "cache"
    intact = np.array(load_idx(path, cache))
    (copy,) = _copies(cache)
    damaged = bytearray(copy.read_bytes())
    damaged[100:200] = b"\xff" * 100
    copy.write_bytes(damaged)
    with pytest.warns(CopyMended, match=f"{copy}: the cache's decompressed copy of {path} held other bytes"):
        np.testing.assert_array_equal(load_idx(path, cache), intact)
    assert copy.read_bytes() == idx.read_bytes(path)

    def hashed(*args, **kwargs):
        raise AssertionError("an unchanged copy was hashed")

    monkeypatch.setattr(idx, "_sha256_of", hashed)
    monkeypatch.setattr(idx, "read_bytes", hashed)
    for _ in range(2):  # marked as used, and stamped again so
        np.testing.assert_array_equal(load_idx(path, cache), intact)


def test_a_copy_touched_but_not_changed_is_hashed_once_not_decompressed(tmp_path, monkeypatch):
    import os

    from neuralab.data import idx

    (path,) = _gzipped_sets(tmp_path, 1)
    cache = tmp_path / "cache"
    intact = np.array(load_idx(path, cache))
    (copy,) = _copies(cache)
    os.utime(copy, (0, 1_000_000))  # copied back with its content, say

    def read_again(*args, **kwargs):
        raise AssertionError("the file was read again")

    monkeypatch.setattr(idx, "read_bytes", read_again)
    hashes = []
    real = idx._sha256_of
    monkeypatch.setattr(idx, "_sha256_of", lambda p: hashes.append(p) or real(p))
    for _ in range(2):
        np.testing.assert_array_equal(load_idx(path, cache), intact)
    assert hashes == [copy]


def test_a_mended_copy_is_said_at_the_users_line_in_the_words_of_verify(mnist, tmp_path, monkeypatch):
    """The warning of a copy written again pointed at neuralab's own line (images.py) when the
    data came through ``load_image_data``; it now points at the user's, and calls the copy
    damaged on disk as ``verify`` does."""
    from helpers import idx_subset

    from neuralab.data import load_image_data
    from neuralab.data.sources import CopyMended

    monkeypatch.setenv("NEURALAB_DATA", str(tmp_path / "cache"))
    folder = idx_subset(mnist, tmp_path / "m", 50, 20)
    load_image_data("mnist", folder)
    (copy,) = (tmp_path / "cache").glob("decompressed/t10k-labels-*")
    damaged = bytearray(copy.read_bytes())
    damaged[10] ^= 1
    copy.write_bytes(damaged)
    with pytest.warns(CopyMended, match="than the file \\(damaged on disk\\); written again") as said:
        load_image_data("mnist", folder)
    assert [w.filename for w in said] == [__file__]


def test_copies_cached_before_stamps_are_checked_once_against_the_file(tmp_path):
    """A cache written before copies had stamps: its damaged copy is caught, an intact one stamped."""
    from neuralab.data.sources import CopyMended

    paths = _gzipped_sets(tmp_path, 2)
    cache = tmp_path / "cache"
    intact = [np.array(load_idx(p, cache)) for p in paths]
    for stamp in cache.glob(".*.stamp"):
        stamp.unlink()
    damaged = next(c for c in _copies(cache) if c.read_bytes()[-1] == 1)
    damaged.write_bytes(damaged.read_bytes()[:-1] + b"\x07")
    with pytest.warns(CopyMended) as said:
        for p, a in zip(paths, intact):
            np.testing.assert_array_equal(load_idx(p, cache), a)
    assert [str(w.message).split(":")[0] for w in said] == [str(damaged)]
    assert len(list(cache.glob(".*.stamp"))) == 2


def test_load_idx_reads_into_memory_when_the_cache_is_not_writable(tmp_path):
    path = tmp_path / "y-idx1-ubyte.gz"
    write_idx(path, np.array([4, 5], dtype=np.uint8))
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder would go")
    np.testing.assert_array_equal(load_idx(path, blocker / "sub"), [4, 5])


def test_load_idx_names_the_damaged_file_not_its_copy(tmp_path):
    path = tmp_path / "x-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(_valid()[:-1]))
    with pytest.raises(NeuralabError, match=f"{path}: truncated"):
        load_idx(path, tmp_path / "cache")
    assert not (tmp_path / "cache").exists()
    raw = tmp_path / "raw-idx1-ubyte"
    raw.write_bytes(_valid() + b"\x00")
    with pytest.raises(NeuralabError, match=f"{raw}: has trailing bytes"):
        load_idx(raw, tmp_path / "cache")


def test_real_fashion_mnist_through_the_cache_equals_the_gzip_files(fashion_mnist, tmp_path):
    gz = file_in(fashion_mnist, "train-images-idx3-ubyte.gz")
    cached = load_idx(gz, tmp_path / "cache")
    assert isinstance(load_idx(gz, tmp_path / "cache"), np.memmap)
    np.testing.assert_array_equal(cached, read_idx(gz))


def test_sizes_in_a_header_or_a_gzip_stream_are_checked_before_they_are_allocated(tmp_path, monkeypatch):
    from neuralab.data import idx

    # 65536^4 bytes: NumPy's int64 product wraps to 0, and the header passed as describing 20 bytes
    with pytest.raises(NeuralabError, match=r"truncated: header says \(65536, 65536, 65536, 65536\)"):
        parse_idx(struct.pack(">HBB4i", 0, 8, 4, 65536, 65536, 65536, 65536))
    bomb = tmp_path / "bomb-idx3-ubyte.gz"
    with gzip.open(bomb, "wb") as f:  # 3 MB of zeros squeeze into a few KB
        f.write(struct.pack(">HBB3i", 0, 8, 3, 3000, 1000, 1) + bytes(3_000_000))
    assert bomb.stat().st_size < 10_000
    monkeypatch.setattr(idx, "MAX_DECOMPRESSED", 2**20)
    with pytest.raises(NeuralabError, match="decompresses to more than 1 MB"):
        read_idx(bomb)


def test_copies_left_by_killed_decompressions_are_removed_and_live_ones_counted(tmp_path, monkeypatch):
    """A kill mid-copy leaves a ``.NAME.*.tmp`` of the whole decompressed file (47 MB for MNIST's
    training images) on every kill: it goes once its writer is gone, and a copy still being
    written counts against the cache's size."""
    import fcntl
    import os

    from neuralab.data import idx

    monkeypatch.setattr(idx, "MAX_CACHE", 2 * (16 + 1000))  # room for two copies of 1,000 bytes
    cache = tmp_path / "cache"
    files = _gzipped_sets(tmp_path, 2)
    load_idx(files[0], cache)
    killed, old, live = (cache / f".x-idx3-ubyte.{name}.tmp" for name in ("killed", "old", "live"))
    for tmp in (killed, old, live):
        tmp.write_bytes(bytes(1016))
    writers = [os.open(tmp, os.O_RDONLY) for tmp in (old, live)]
    for fd in writers:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as another process writing the copy holds it
    os.utime(old, (0, 0))  # an hour untouched: gone even where a flock seems held (or flocks tell nothing)
    try:
        load_idx(files[1], cache)
        names = sorted(p.name for p in cache.iterdir())
    finally:
        for fd in writers:
            os.close(fd)
    # the live copy and set1's fill the cache: set0's copy, used longer ago, went to make room
    copies = [name for name in names if not name.startswith(".")]
    assert names == [f".{copies[0]}.stamp", live.name, *copies] and len(copies) == 1
    np.testing.assert_array_equal(read_idx(cache / copies[0]), np.full((10, 10, 10), 1, np.uint8))


def test_a_read_only_cache_still_serves_its_copies(tmp_path, monkeypatch):
    """Marking a copy as used is bookkeeping: where the cache cannot be written, the copy is read
    all the same, not decompressed again from the file."""
    from neuralab.data import idx

    (path,) = _gzipped_sets(tmp_path, 1)
    first = load_idx(path, tmp_path / "cache")

    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    def read_again(*args, **kwargs):
        raise AssertionError("the file was read again")

    monkeypatch.setattr(idx.os, "utime", refused)
    monkeypatch.setattr(idx, "read_bytes", read_again)
    np.testing.assert_array_equal(load_idx(path, tmp_path / "cache"), first)


def test_a_read_only_cache_of_copies_without_stamps_serves_them_without_decompressing(tmp_path, monkeypatch):
    """A shared read-only cache filled before copies had stamps: no stamp can record a check, so
    every load decompressed the file to check its copy, slower than no cache. Its copies are
    trusted on their header and size, as they were before stamps."""
    from helpers import read_only

    from neuralab.data import idx

    (path,) = _gzipped_sets(tmp_path, 1)
    cache = tmp_path / "cache"
    intact = np.array(load_idx(path, cache))
    for stamp in cache.glob(".*.stamp"):
        stamp.unlink()

    reads = []
    real = idx.read_bytes
    monkeypatch.setattr(idx, "read_bytes", lambda p: reads.append(p) or real(p))
    with read_only(cache):
        # noted, not asserted, within: the mount cannot go while an error's frames hold a map of its file
        served = [np.array_equal(load_idx(path, cache), intact) for _ in range(2)]
    assert served == [True, True] and reads == []


def test_a_copy_whose_stamp_cannot_be_written_is_checked_once_per_process(tmp_path, monkeypatch):
    """Where the stamp cannot be written (a full disk), the check of a copy's content is
    remembered by the process, not done again on every load."""
    from neuralab.data import idx

    (path,) = _gzipped_sets(tmp_path, 1)
    cache = tmp_path / "cache"
    intact = np.array(load_idx(path, cache))
    for stamp in cache.glob(".*.stamp"):
        stamp.unlink()

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(idx, "atomic_write", full)
    reads = []
    real = idx.read_bytes
    monkeypatch.setattr(idx, "read_bytes", lambda p: reads.append(p) or real(p))
    for _ in range(3):
        np.testing.assert_array_equal(load_idx(path, cache), intact)
    assert reads == [path]
