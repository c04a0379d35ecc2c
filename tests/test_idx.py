"""The IDX reader on files the tests write, and on the real MNIST and Fashion-MNIST."""

import gzip

import numpy as np
import pytest

from neuralab.data.idx import parse_idx, read_idx, write_idx
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
