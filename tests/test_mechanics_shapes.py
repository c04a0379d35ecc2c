"""The output-size formula against the shapes PyTorch produces, and its explanations."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from neuralab.errors import NeuralabError
from neuralab.mechanics.shapes import conv_shape, output_hw, resolve_padding, same_pads


def torch_out_hw(h, w, kernel, stride, padding):
    """PyTorch's output (H, W); "same" with any stride as F.pad with the extra zero at the bottom/right."""
    x = torch.zeros(1, 1, h, w)
    weight = torch.zeros(1, 1, *kernel)
    if padding == "same":
        (top, bottom), (left, right) = same_pads(h, kernel[0], stride[0]), same_pads(w, kernel[1], stride[1])
        x, padding = F.pad(x, (left, right, top, bottom)), 0
    elif padding == "valid":
        padding = 0
    return tuple(F.conv2d(x, weight, stride=stride, padding=padding).shape[2:])


@pytest.mark.parametrize("padding", ["valid", 0, 1, 2, "same"])
@pytest.mark.parametrize("kernel", [(1, 1), (2, 2), (3, 3), (5, 5), (3, 2)])
def test_output_size_equals_torch(kernel, padding):
    for n, stride in itertools.product([1, 4, 5, 8, 9], [(1, 1), (2, 2), (3, 3), (2, 1)]):
        h, w = n, n + 1  # odd and even sides at once
        (p_h, _), (p_w, _) = resolve_padding(padding, (h, w), kernel, stride)
        fits = padding == "same" or (kernel[0] <= h + 2 * p_h and kernel[1] <= w + 2 * p_w)
        if fits:
            assert output_hw((h, w), kernel, stride, padding)[0] == torch_out_hw(h, w, kernel, stride, padding), (n, stride)
            continue
        with pytest.raises(NeuralabError, match="larger than the padded input"):
            output_hw((h, w), kernel, stride, padding)
        with pytest.raises(RuntimeError):
            torch_out_hw(h, w, kernel, stride, padding)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("n,k", [(7, 3), (8, 2), (10, 4), (5, 1)])
def test_same_with_stride_1_keeps_the_size_like_torch_padding_same(n, k):
    x, weight = torch.zeros(1, 1, n, n), torch.zeros(1, 1, k, k)
    assert output_hw((n, n), k, 1, "same")[0] == tuple(F.conv2d(x, weight, padding="same").shape[2:]) == (n, n)


def test_same_puts_the_odd_zero_at_bottom_right():
    assert same_pads(32, 5, 2) == (1, 2)  # total 3
    assert same_pads(8, 2, 1) == (0, 1)
    assert same_pads(7, 3, 1) == (1, 1)
    assert same_pads(5, 1, 3) == (0, 0)


@pytest.mark.parametrize("c,f,k,bias", [(3, 16, 5, True), (1, 6, 5, True), (16, 120, 5, True), (3, 8, 3, False)])
def test_parameter_count_equals_torch(c, f, k, bias):
    layer = nn.Conv2d(c, f, k, bias=bias)
    assert conv_shape((c, 32, 32), f, k, bias=bias).params == sum(p.numel() for p in layer.parameters())


def test_issue_example_explained():
    shape = conv_shape((3, 32, 32), 16, 5, 2, "same")
    assert shape.out_chw == (16, 16, 16)
    assert shape.params == 1216
    text = "\n".join(shape.explain())
    assert "ceil(32/2) = 16" in text
    assert "max((16 - 1) x 2 + 5 - 32, 0) = 3" in text
    assert "1 on the top, 2 on the bottom" in text and "1 on the left, 2 on the right" in text
    assert "floor((32 - 5 + (1+2)) / 2) + 1 = floor(30/2) + 1 = 16" in text
    assert "16 x (3 x 5 x 5 + 1) = 1,216" in text


def test_floor_case_names_the_dropped_rows():
    shape = conv_shape((1, 28, 28), 4, 3, 2)
    assert shape.out_chw == (4, 13, 13)
    text = "\n".join(shape.explain())
    assert "floor(25/2) + 1 = 13" in text
    assert "the last of 28 padded rows (input row 27) is never covered" in text
    text = "\n".join(conv_shape((1, 10, 10), 1, 3, 4, 1).explain())  # padded 12: windows at 0, 4, 8 cover 0..10
    assert "the last of 12 padded rows (only padding) is never covered" in text
    text = "\n".join(conv_shape((1, 11, 11), 1, 2, 4).explain())  # windows at 0, 4, 8 cover 0..9
    assert "the last of 11 padded columns (input column 10) is never covered" in text
    # padded 8: windows at 0 and 4 cover 0..5; padded 6 is input row 5, padded 7 a zero of padding
    text = "\n".join(conv_shape((1, 6, 6), 1, 2, 4, 1).explain())
    assert "the last 2 of 8 padded rows (input row 5 and 1 row of padding) are never covered" in text
    text = "\n".join(conv_shape((1, 9, 9), 1, 2, 5, 1).explain())  # padded 11: windows at 0 and 5 cover 0..6
    assert "the last 4 of 11 padded columns (input columns 6..8 and 1 column of padding) are never covered" in text


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"kernel": 6}, "kernel 6x6 is larger than the padded input 5x5; allowed: 1 to 5 high and 1 to 5 wide"),
        ({"kernel": 3, "stride": 0}, "stride 0x0: each step must be at least 1"),
        ({"kernel": 3, "stride": (1, -2)}, "stride 1x-2: each step must be at least 1"),
        ({"kernel": 3, "padding": -1}, "padding -1: must be 'valid', 'same' or a whole number >= 0"),
        ({"kernel": 3, "padding": "full"}, "padding 'full': allowed are 'valid', 'same'"),
    ],
)
def test_bad_settings_name_the_option_and_range(kwargs, message):
    with pytest.raises(NeuralabError) as e:
        output_hw((5, 5), **kwargs)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_padding_given_as_a_superscript_digit_is_refused_in_one_line():
    from neuralab.mechanics.shapes import resolve_padding

    with pytest.raises(NeuralabError, match="padding '²': allowed are 'valid', 'same' or a whole number"):
        resolve_padding("²", (28, 28), 3, 1)  # a digit to str.isdigit, and a ValueError to int()
