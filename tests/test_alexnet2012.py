"""The slides' AlexNet (the 2012 paper's network) against the paper: its maps, its parameter
count, its two towers and its local response normalisation; and against Keras's count."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch import nn

from neuralab.cli import main
from neuralab.models import build_model, parameters_at, summary


def test_maps_follow_the_paper_figure_2():
    """Section 3.5 / figure 2: 55x55x96, 27x27x256, 13x13x384, 13x13x384, 13x13x256, then 4096-4096-1000."""
    s = summary(build_model("alexnet2012", (3, 227, 227), 1000), (3, 227, 227))
    convs = [r.output_shape for r in s.rows if r.kind == "Conv2d"]
    assert convs == [(96, 55, 55), (256, 27, 27), (384, 13, 13), (384, 13, 13), (256, 13, 13)]
    pools = [r.output_shape for r in s.rows if r.kind == "MaxPool2d"]
    assert pools == [(96, 27, 27), (256, 13, 13), (256, 6, 6)]
    assert [r.output_shape for r in s.rows if r.kind == "Linear"] == [(4096,), (4096,), (1000,)]
    assert sum(r.kind == "LocalResponseNorm" for r in s.rows) == 2


def test_parameter_count_is_the_paper_s_60_million():
    """The paper's layers counted by hand (kernel x kernel x inputs seen x filters + biases; the
    second, fourth and fifth convolutions see the 48, 192 and 192 maps of their own GPU)."""
    by_hand = [11 * 11 * 3 * 96 + 96, 5 * 5 * 48 * 256 + 256, 3 * 3 * 256 * 384 + 384, 3 * 3 * 192 * 384 + 384,
               3 * 3 * 192 * 256 + 256, 6 * 6 * 256 * 4096 + 4096, 4096 * 4096 + 4096, 4096 * 1000 + 1000]
    count = parameters_at("alexnet2012", (3, 227, 227), 1000)
    assert count == sum(by_hand) == 60_965_224
    assert abs(count - 60e6) / 60e6 < 0.02  # "60 million parameters" (section 1; the slide's 60M)
    # The zoo's other AlexNet is the single-tower variant, as PyTorch's torchvision builds it.
    assert parameters_at("alexnet", (3, 224, 224), 1000) == 61_100_840


def test_grouped_convolutions_compute_the_two_towers():
    """groups=2 is the paper's split: each half of the filters sees only its own half of the maps."""
    torch.manual_seed(0)
    model = build_model("alexnet2012", (3, 227, 227), 1000)
    conv = model.features[4]
    assert (conv.in_channels, conv.out_channels, conv.groups) == (96, 256, 2)
    x = torch.randn(2, 96, 27, 27)
    towers = [nn.functional.conv2d(x[:, 48 * g:48 * (g + 1)], conv.weight[128 * g:128 * (g + 1)],
                                   conv.bias[128 * g:128 * (g + 1)], padding=2) for g in range(2)]
    torch.testing.assert_close(conv(x), torch.cat(towers, 1), atol=1e-5, rtol=0)


def test_local_response_normalisation_is_the_paper_s_formula():
    """b = a / (k + alpha * sum of a^2 over the n neighbouring maps)^beta, k=2, n=5, alpha=1e-4, beta=0.75."""
    lrn = build_model("alexnet2012", (3, 227, 227), 1000).features[2]
    a = np.random.default_rng(0).standard_normal((1, 96, 3, 3)).astype(np.float32) * 30
    want = np.empty_like(a)
    for i in range(96):
        lo, hi = max(0, i - 2), min(95, i + 2)
        want[:, i] = a[:, i] / (2 + 1e-4 * (a[:, lo:hi + 1] ** 2).sum(1)) ** 0.75
    np.testing.assert_allclose(lrn(torch.from_numpy(a)).numpy(), want, rtol=1e-5, atol=1e-6)


def test_keras_counts_the_same_network_alike():
    """The same layers written in Keras (Conv2D with groups=2) count what neuralab counts."""
    os.environ["KERAS_BACKEND"] = "torch"
    keras = pytest.importorskip("keras", reason="Keras 3 is not installed (pip install neuralab[keras])")
    L = keras.layers
    model = keras.Sequential([
        keras.Input((227, 227, 3)),
        L.Conv2D(96, 11, strides=4, activation="relu"), L.MaxPooling2D(3, 2),
        L.Conv2D(256, 5, padding="same", groups=2, activation="relu"), L.MaxPooling2D(3, 2),
        L.Conv2D(384, 3, padding="same", activation="relu"),
        L.Conv2D(384, 3, padding="same", groups=2, activation="relu"),
        L.Conv2D(256, 3, padding="same", groups=2, activation="relu"), L.MaxPooling2D(3, 2),
        L.Flatten(), L.Dense(4096, activation="relu"), L.Dense(4096, activation="relu"), L.Dense(1000),
    ])
    assert model.count_params() == parameters_at("alexnet2012", (3, 227, 227), 1000)


def test_zoo_says_which_alexnet_is_which(capsys):
    assert main(["zoo"]) == 0
    out = capsys.readouterr().out
    assert "alexnet: single tower, 64 filters" in out and "61,100,840 parameters at 224x224x3" in out
    assert "alexnet2012: the 2012 paper's and the slides': 227x227x3, 96 filters 11x11/4" in out
    assert "60,965,224 parameters at 227x227x3" in out
