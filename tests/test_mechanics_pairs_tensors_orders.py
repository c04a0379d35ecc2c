"""The mechanics take what a learner hands them by hand, or refuse it by name: sizes in pairs,
the order of a shape's axes, a model's own tensors, a misspelt scale, infinite scores."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from neuralab.errors import NeuralabError, ParameterError
from neuralab.mechanics import conv, dense, kernels, pooling, recurrent, shapes

X, W = np.ones((1, 1, 8, 8)), np.ones((1, 1, 3, 3))


@pytest.mark.parametrize("call, parameter, value", [
    (lambda: conv.conv2d_forward(X, W, stride=(2.5, 1)), "stride", "(2.5, 1)"),
    (lambda: conv.conv2d_forward(X, W, padding=(1.7, 0)), "padding", "(1.7, 0)"),
    (lambda: conv.conv2d_forward(X, W, stride=("2", 1)), "stride", "('2', 1)"),
    (lambda: conv.conv2d_forward(X, W, stride=(True, 1)), "stride", "(True, 1)"),
    (lambda: pooling.max_pool2d_forward(X, (2.9, 2)), "size", "(2.9, 2)"),
    (lambda: shapes.conv_shape((3, 32, 32), 16, (5.5, 5)), "kernel", "(5.5, 5)"),
])
def test_a_pair_of_sizes_is_refused_as_one_size_is_when_not_whole(call, parameter, value):
    # int() made 2 of 2.5 and of "2": the layer computed with a stride nobody asked for
    with pytest.raises(NeuralabError) as e:
        call()
    assert str(e.value) == f"{parameter} {value}: give one whole number or a pair of whole numbers, ints such as 2 or (2, 1)"


def test_whole_numbers_in_a_pair_are_taken_numpys_too():
    assert shapes.pair((np.int64(2), 1), "stride") == (2, 1)
    assert shapes.pair(np.int32(3), "kernel") == (3, 3)
    assert conv.conv2d_forward(X, W, stride=(2, np.int8(1)))[0].shape == (1, 1, 3, 6)
    with pytest.raises(NeuralabError, match="^stride 2.0: give one whole number"):  # as one size: no floats
        shapes.pair(2.0, "stride")


def test_conv_shape_refuses_the_workshops_height_width_depth_order():
    with pytest.raises(ParameterError) as e:
        shapes.conv_shape((32, 32, 3), filters=16, kernel=3)
    assert str(e.value) == ("in_chw=(32, 32, 3): reads as 32 channels of 32x3 pixels; give (C, H, W), "
                            "channels first: (3, 32, 32), not Keras's (H, W, C); if you mean 32 channels of 32x3, "
                            "pass guess_order=False")
    assert e.value.parameter == "in_chw"
    assert shapes.conv_shape((3, 32, 32), 16, 3).out_chw == (16, 30, 30)
    assert shapes.conv_shape((64, 56, 56), 64, 3, padding="same").params == 36_928  # a layer deep inside, as before


def test_a_kernel_larger_than_a_photo_read_in_the_wrong_order_says_the_order():
    with pytest.raises(NeuralabError) as e:
        shapes.conv_shape((480, 640, 3), 16, 5)  # a 480x640 photo, depth 3, in the workshop's order
    assert str(e.value) == ("kernel 5x5 is larger than the padded input 640x3; allowed: 1 to 640 high and 1 to 3 wide, "
                            "or more padding; in_chw is (depth, height, width), so (480, 640, 3) is 640x3 pixels 480 deep: "
                            "a 480x640 picture of depth 3 is (3, 480, 640)")
    with pytest.raises(NeuralabError) as e:  # a kernel too large in either order: nothing about the order
        shapes.conv_shape((1, 4, 4), 1, 5)
    assert "in_chw" not in str(e.value)


def test_apply_kernel_refuses_a_channels_first_picture():
    sharpen = kernels.get_kernel("sharpen")[1]
    with pytest.raises(NeuralabError) as e:
        kernels.apply_kernel(np.zeros((3, 5, 5), np.uint8), sharpen)
    assert str(e.value) == ("image of shape (3, 5, 5) reads as a 3x5 picture of 5 channels; give (H, W, C), channels "
                            "last: np.moveaxis(image, 0, -1) makes (5, 5, 3) of a (3, 5, 5) one; if you mean 5 channels "
                            "of 3x5 pixels, apply the kernel to each, image[:, :, i] (their sum is depth='sum')")
    assert kernels.apply_kernel(np.zeros((5, 5, 3), np.uint8), sharpen).shape == (3, 3, 3)
    assert kernels.apply_kernel(np.zeros((3, 5), np.uint8), np.ones((3, 3))).shape == (1, 3)  # a 3-row grey picture


def test_a_models_own_tensors_are_taken_as_they_require_grad():
    torch.manual_seed(0)
    conv_layer = torch.nn.Conv2d(3, 8, 3)
    assert conv_layer.weight.requires_grad
    matches = kernels.closest_kernels(conv_layer.weight)
    assert matches == kernels.closest_kernels(conv_layer.weight.detach().numpy()) and len(matches) == 8

    logits = torch.nn.Linear(4, 3)(torch.randn(2, 4))
    np.testing.assert_allclose(dense.softmax(logits), torch.softmax(logits, -1).detach().numpy(), rtol=1e-6)

    lstm = torch.nn.LSTM(2, 4, batch_first=True)
    x = torch.randn(1, 5, 2)
    zeros = np.zeros((1, 4), np.float32)
    hs, _, _ = recurrent.lstm_forward(x, zeros, zeros, lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0 + lstm.bias_hh_l0)
    np.testing.assert_allclose(hs, lstm(x)[0].detach().numpy(), atol=1e-6)


def test_a_bfloat16_tensor_is_taken_as_float32():
    z = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.bfloat16, requires_grad=True)
    np.testing.assert_allclose(dense.softmax(z), torch.softmax(z.float(), -1).detach().numpy(), rtol=1e-6)


def test_to_uint8_refuses_a_misspelt_scale():
    values = np.array([-5.0, 300.0])
    assert kernels.to_uint8(values, "abs").tolist() == [5, 255]
    for scale in ("absolute", "min-max", None):
        with pytest.raises(ParameterError) as e:
            kernels.to_uint8(values, scale)
        assert e.value.parameter == "scale" and all(s in str(e.value) for s in ("clip", "abs", "minmax"))


def test_softmax_of_an_infinite_score_is_nan_without_numpys_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NumPy's "invalid value encountered in subtract" pointed into dense.py
        got = dense.softmax([np.inf, 0.0]), dense.log_softmax([np.inf, 0.0])
    expected = torch.softmax(torch.tensor([float("inf"), 0.0]), -1).numpy()
    assert np.isnan(expected).all()
    for g in got:
        assert np.isnan(g).all()
