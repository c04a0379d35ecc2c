"""The arrays load_image_data hands out are plain (N, C, H, W) in C order, strides and all, so
that a user's own PyTorch code on them (``x.view(len(x), -1)`` after a convolution, as the
PyTorch tutorials write it) works as on any tensor of that shape."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import digits_folder, idx_subset
from torch import nn

from neuralab.data import load_image_data


def _natural_strides(x: np.ndarray) -> tuple[int, ...]:
    return tuple(int(np.prod(x.shape[i + 1:])) * x.itemsize for i in range(x.ndim))


def _flattened_after_a_conv(x: np.ndarray) -> torch.Size:
    conv = nn.Conv2d(x.shape[1], 4, 3)
    torch.manual_seed(0)
    y = conv(torch.tensor(x[:8]).float() / 255)
    return y.view(y.size(0), -1).shape  # fails on channels-last maps


@pytest.fixture(scope="module")
def fashion_subset(fashion_mnist, tmp_path_factory):
    return idx_subset(fashion_mnist, tmp_path_factory.mktemp("fashion"), 600, 100)


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_idx_grey_images_have_nchw_strides(fashion_subset, split):
    x = getattr(load_image_data("fashion-mnist", fashion_subset), split).x
    assert x.shape[1:] == (1, 28, 28)
    assert x.strides == _natural_strides(x)
    assert _flattened_after_a_conv(x) == (8, 4 * 26 * 26)


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_grey_folder_images_have_nchw_strides(tmp_path, split):
    x = getattr(load_image_data(str(digits_folder(tmp_path / "digits", 300))), split).x
    assert x.shape[1:] == (1, 8, 8)
    assert x.strides == _natural_strides(x)
    assert _flattened_after_a_conv(x) == (len(x[:8]), 4 * 6 * 6)
