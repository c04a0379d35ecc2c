"""CIFAR-10 from binary archives the tests build in the official layout (label byte + 3072
pixel bytes per record, in cifar-10-batches-bin/ inside a tar.gz), including damaged ones."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

import neuralab.data.cifar as cifar
from neuralab.data import SOURCES, load_image_data
from neuralab.data.cifar import ARCHIVE, RECORD, load_cifar10, parse_batch, read_archive
from neuralab.data.sources import fetch, verify
from neuralab.data.sources import cache_dir
from neuralab.errors import NeuralabError

BATCHES = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]


def records(n: int, start: int = 0) -> bytes:
    """n records: label (start + i) % 10; red plane 0..255 in row-major order, green all
    equal to the record number, blue all 200."""
    out = bytearray()
    for i in range(start, start + n):
        red = (np.arange(1024) % 256).astype(np.uint8)
        green = np.full(1024, i % 256, np.uint8)
        blue = np.full(1024, 200, np.uint8)
        out += bytes([i % 10]) + red.tobytes() + green.tobytes() + blue.tobytes()
    return bytes(out)


def build_archive(path: Path, members: dict[str, bytes] | None = None, per_batch: int = 4,
                  compress: bool = True, extra: list[tarfile.TarInfo] = ()) -> Path:
    if members is None:
        members = {f"cifar-10-batches-bin/{b}": records(per_batch, k * per_batch) for k, b in enumerate(BATCHES)}
        members["cifar-10-batches-bin/batches.meta.txt"] = b"airplane\nautomobile\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info)
    raw = gzip.compress(buf.getvalue(), mtime=0) if compress else buf.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    return path


@pytest.fixture
def archive(tmp_path) -> Path:
    return build_archive(tmp_path / "cifar" / ARCHIVE)


def test_load_from_archive(archive):
    data = load_image_data("cifar10", archive.parent, val_fraction=0.25, seed=1)
    assert data.name == "cifar10" and data.classes[0] == "airplane" and data.classes[9] == "truck"
    assert (len(data.train), len(data.val), len(data.test)) == (15, 5, 4)
    assert data.input_shape == (3, 32, 32) and data.train.x.dtype == np.uint8
    full_y = np.concatenate([data.train.y, data.val.y])
    assert sorted(full_y.tolist()) == sorted(i % 10 for i in range(20))
    assert data.test.y.tolist() == [0, 1, 2, 3]  # test_batch holds records 20..23


def test_record_layout_planes_and_row_major(archive):
    data = load_cifar10(archive.parent, val_fraction=0.0)
    x, y = data.train.x, data.train.y
    red, green, blue = x[7, 0], x[7, 1], x[7, 2]
    assert red[0, 1] == 1 and red[1, 0] == 32 and red[3, 31] == (3 * 32 + 31) % 256  # rows of 32
    assert (green == 7).all() and (blue == 200).all() and y[7] == 7


def test_plain_tar_is_read_too(tmp_path):
    path = build_archive(tmp_path / ARCHIVE.removesuffix(".gz"), compress=False)
    assert len(load_cifar10(path.parent).test) == 4


def test_nothing_is_extracted_and_unsafe_members_are_ignored(tmp_path):
    members = {f"cifar-10-batches-bin/{b}": records(2) for b in BATCHES}
    members["../cifar-10-batches-bin/data_batch_1.bin"] = b"x" * RECORD
    members["/tmp/evil.bin"] = b"evil"
    link = tarfile.TarInfo("cifar-10-batches-bin/readme.html")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    path = build_archive(tmp_path / "d" / ARCHIVE, members, extra=[link])
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert set(read_archive(path)) == set(BATCHES)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_a_link_in_place_of_a_batch_is_not_followed(tmp_path):
    members = {f"cifar-10-batches-bin/{b}": records(2) for b in BATCHES if b != "test_batch.bin"}
    link = tarfile.TarInfo("cifar-10-batches-bin/test_batch.bin")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    path = build_archive(tmp_path / ARCHIVE, members, extra=[link])
    with pytest.raises(NeuralabError, match="missing cifar-10-batches-bin/test_batch.bin"):
        read_archive(path)


def test_truncated_record(tmp_path):
    members = {f"cifar-10-batches-bin/{b}": records(2) for b in BATCHES}
    members["cifar-10-batches-bin/data_batch_3.bin"] = records(2)[:-5]
    build_archive(tmp_path / ARCHIVE, members)
    with pytest.raises(NeuralabError, match=r"data_batch_3\.bin: 6141 bytes is not a whole number of 3073-byte records"):
        load_cifar10(tmp_path)


def test_label_out_of_range():
    bad = bytearray(records(3))
    bad[RECORD] = 10
    with pytest.raises(NeuralabError, match="record 1 has label 10"):
        parse_batch(bytes(bad), "x.bin")


def test_missing_batches(tmp_path):
    members = {f"cifar-10-batches-bin/{b}": records(1) for b in BATCHES[:3]}
    build_archive(tmp_path / ARCHIVE, members)
    with pytest.raises(NeuralabError, match=r"missing cifar-10-batches-bin/data_batch_4\.bin, .*test_batch\.bin"):
        load_cifar10(tmp_path)


def test_duplicate_member(tmp_path):
    path = build_archive(tmp_path / ARCHIVE)
    raw = gzip.decompress(path.read_bytes())
    buf = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(raw)) as src, tarfile.open(fileobj=buf, mode="w") as dst:
        for m in src.getmembers():
            dst.addfile(m, src.extractfile(m))
        m = src.getmember("cifar-10-batches-bin/data_batch_2.bin")
        dst.addfile(m, src.extractfile(m))
    path.write_bytes(gzip.compress(buf.getvalue()))
    with pytest.raises(NeuralabError, match="data_batch_2.bin appears twice"):
        read_archive(path)


def test_oversized_member_is_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar, "MAX_RECORDS", 3)
    path = build_archive(tmp_path / ARCHIVE, per_batch=4)
    with pytest.raises(NeuralabError, match="more than 3 records"):
        read_archive(path)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_damaged_archive(tmp_path, damage):
    path = build_archive(tmp_path / ARCHIVE)
    raw = path.read_bytes()
    path.write_bytes({"truncated": raw[: len(raw) // 2], "garbage": b"not a tar at all" * 100, "empty": b""}[damage])
    with pytest.raises(NeuralabError, match=rf"{ARCHIVE}: (damaged|missing)"):
        load_cifar10(tmp_path)


def test_not_found_names_the_ways_to_get_it(tmp_path):
    with pytest.raises(NeuralabError, match=f"data_dir='{tmp_path}': missing {ARCHIVE} for cifar10"):
        load_cifar10(tmp_path)
    with pytest.raises(NeuralabError, match="dataset cifar10 not found"):
        load_cifar10()


def test_folder_options_are_refused_for_cifar(archive):
    with pytest.raises(NeuralabError, match="image_size: applies to image folders only"):
        load_image_data("cifar10", archive.parent, image_size=(16, 16))


def _serve(tmp_path, monkeypatch, digest: str | None = None) -> Path:
    """A mirror on the local disk (file:// URL) holding a test archive, pinned to ``digest``."""
    mirror = build_archive(tmp_path / "mirror" / ARCHIVE)
    real = hashlib.sha256(mirror.read_bytes()).hexdigest()
    source = SOURCES["cifar10"]
    monkeypatch.setitem(SOURCES, "cifar10", dataclasses.replace(
        source, mirrors=(mirror.parent.as_uri() + "/",), files={ARCHIVE: digest or real}))
    return mirror


def test_fetch_verifies_and_caches(tmp_path, monkeypatch):
    _serve(tmp_path, monkeypatch)
    target = fetch("cifar10")
    assert target == cache_dir() / "cifar10" and (target / ARCHIVE).is_file()
    assert verify("cifar10") == {ARCHIVE: True}
    assert len(load_image_data("cifar10").test) == 4  # found in the cache without --data-dir
    assert fetch("cifar10") == target  # already there: nothing downloaded


def test_fetch_refuses_a_checksum_mismatch_and_keeps_nothing(tmp_path, monkeypatch):
    _serve(tmp_path, monkeypatch, digest="0" * 64)
    with pytest.raises(NeuralabError, match="checksum mismatch"):
        fetch("cifar10")
    assert not list((cache_dir() / "cifar10").glob("*"))


def test_verify_archive_detects_other_bytes(archive, monkeypatch):
    assert verify("cifar10", archive.parent) == {ARCHIVE: False}  # a test archive is not the published one
    source = SOURCES["cifar10"]
    assert source.files[ARCHIVE] == "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"
    monkeypatch.setitem(SOURCES, "cifar10", dataclasses.replace(
        source, files={ARCHIVE: hashlib.sha256(archive.read_bytes()).hexdigest()}))
    assert verify("cifar10", archive.parent) == {ARCHIVE: True}


def test_fetch_without_network_says_what_to_do(monkeypatch, tmp_path):
    source = SOURCES["cifar10"]
    monkeypatch.setitem(SOURCES, "cifar10", dataclasses.replace(source, mirrors=((tmp_path / "none").as_uri() + "/",)))
    with pytest.raises(NeuralabError, match="could not download cifar-10-binary.tar.gz .*point data_dir at the folder"):
        fetch("cifar10")
