"""What a learner hands the from-scratch mechanics and neuralab rnn by mistake: pictures as
uint8, arrays of the wrong shape, labels of -1, sizes of terabytes, seeds past 64 bits. Each
gets the right number (as PyTorch's on floats) or one line naming the parameter, never a
traceback, a silently wrong result or a machine out of memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from neuralab.cli import main
from neuralab.errors import NeuralabError
from neuralab.mechanics import (
    avg_pool2d_forward,
    batch_norm_forward,
    conv2d_forward,
    conv_shape,
    cross_entropy_forward,
    lstm_forward,
    numeric_gradient,
    pool2d,
    rnn_forward,
)


@pytest.fixture
def picture():
    """A bright grayscale picture as read_image returns it: uint8, (H, W), values 180..255."""
    return np.random.default_rng(0).integers(180, 256, (12, 15), dtype=np.uint8)


def test_conv2d_on_uint8_pixels_equals_torch_on_floats(picture):
    box = np.ones((1, 1, 3, 3), dtype=np.uint8)  # a 3x3 sum: nine pixels of ~200 pass 255
    ours, _ = conv2d_forward(picture[None, None], box)
    theirs = F.conv2d(torch.tensor(picture[None, None], dtype=torch.float64), torch.ones(1, 1, 3, 3, dtype=torch.float64))
    assert ours.dtype == np.float64
    np.testing.assert_array_equal(ours, theirs.numpy())


def test_average_pooling_of_a_uint8_picture_is_the_mean(picture):
    ours = pool2d(picture[None, None], 2, mode="avg")
    theirs = F.avg_pool2d(torch.tensor(picture[None, None], dtype=torch.float64), 2)
    np.testing.assert_allclose(ours, theirs.numpy())
    assert ours.min() >= 180  # uint8 sums wrapped around to values far below every pixel


def test_float32_stays_float32():
    x = np.random.default_rng(1).normal(size=(1, 2, 6, 6)).astype(np.float32)
    assert conv2d_forward(x, np.ones((3, 2, 3, 3), np.float32))[0].dtype == np.float32
    assert avg_pool2d_forward(x)[0].dtype == np.float32


def test_a_padding_of_terabytes_is_refused_before_any_allocation():
    x = np.random.default_rng(2).normal(size=(2, 3, 28, 28))
    w = np.ones((4, 3, 3, 3))
    tracemalloc.start()
    try:
        with pytest.raises(NeuralabError) as e:
            conv2d_forward(x, w, padding=100_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "padding" in str(e.value) and "GiB" in str(e.value) and "\n" not in str(e.value)
    assert peak < 10 * 2**20


def test_an_output_of_many_gigabytes_is_refused_before_any_allocation():
    x = np.zeros((8, 1, 256, 256))  # 4 MB of input, 2,048 1x1 filters: 8 GiB of output
    w = np.ones((2048, 1, 1, 1))
    tracemalloc.start()
    try:
        with pytest.raises(NeuralabError, match="the output .* GiB.*filters in w") as e:
            conv2d_forward(x, w)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "\n" not in str(e.value)
    assert peak < 10 * 2**20


@pytest.mark.parametrize("x_shape,w_shape,b,message", [
    ((2, 3, 8, 8), (4, 1, 3, 3), None, r"w of shape \(4, 1, 3, 3\) is for 1 input channel.* x of shape \(2, 3, 8, 8\) has 3"),
    ((3, 8, 8), (4, 3, 3, 3), None, r"x of shape \(3, 8, 8\) has 3 axes; give \(N, C, H, W\) \(x\[None\] makes a batch"),
    ((8, 8), (1, 1, 3, 3), None, r"x\[None, None\]"),
    ((2, 3, 8, 8), (3, 3), None, r"w of shape \(3, 3\) has 2 axes; give \(F, C, K_h, K_w\)"),
    ((2, 3, 8, 8), (4, 3, 3, 3), np.zeros(3), r"b of shape \(3,\): give one bias per filter of w, shape \(4,\)"),
])
def test_conv2d_shapes_that_do_not_fit_name_the_parameter(x_shape, w_shape, b, message):
    with pytest.raises(NeuralabError, match=message):
        conv2d_forward(np.zeros(x_shape), np.zeros(w_shape), b)


def test_conv2d_on_text_says_numbers():
    with pytest.raises(NeuralabError, match="x holds <U1 values; give numbers"):
        conv2d_forward(np.array([[[["a"]]]]), np.ones((1, 1, 1, 1)))


def test_a_label_of_minus_one_is_refused_not_scored_as_the_last_class():
    logits = np.random.default_rng(3).normal(size=(4, 10))
    labels = np.array([3, 7, -1, 0])  # -1: "no label" in many data sets
    with pytest.raises(IndexError):  # PyTorch refuses it too
        F.cross_entropy(torch.tensor(logits), torch.tensor(labels))
    with pytest.raises(NeuralabError, match=r"labels holds -1: class indices go from 0 to 9"):
        cross_entropy_forward(logits, labels)
    with pytest.raises(NeuralabError, match="labels holds 10"):
        cross_entropy_forward(logits, np.array([3, 7, 10, 0]))
    with pytest.raises(NeuralabError, match="whole numbers"):
        cross_entropy_forward(logits, np.array([3.0, 7.0, 1.0, 0.0]))


def test_recurrent_shapes_that_do_not_fit_name_the_parameter():
    rng = np.random.default_rng(4)
    n, t, d, h = 2, 5, 3, 4
    x, h0 = rng.normal(size=(n, t, d)), np.zeros((n, h))
    rnn = torch.nn.RNN(d, h, batch_first=True)  # a SimpleRNN's weights handed to the LSTM
    w_ih, w_hh = rnn.weight_ih_l0.detach().numpy(), rnn.weight_hh_l0.detach().numpy()
    b = (rnn.bias_ih_l0 + rnn.bias_hh_l0).detach().numpy()
    with pytest.raises(NeuralabError, match=r"w_ih of shape \(4, 3\): expected \(4\*H, D\) = \(16, 3\)"):
        lstm_forward(x, h0, h0, w_ih, w_hh, b)
    with pytest.raises(NeuralabError, match=r"x of shape \(2, 0, 3\) has no time steps"):
        rnn_forward(x[:, :0], h0, w_ih, w_hh, b)
    with pytest.raises(NeuralabError, match=r"w_ih of shape \(4, 3\): expected \(H, D\) = \(4, 2\)"):
        rnn_forward(x[:, :, :2], h0, w_ih, w_hh, b)
    with pytest.raises(NeuralabError, match=r"h0 of shape \(3, 4\): expected \(N, H\) = \(2, 4\)"):
        rnn_forward(x, np.zeros((3, h)), w_ih, w_hh, b)
    ours, _ = rnn_forward(x.astype(np.float32), h0, w_ih, w_hh, b)  # and fitting shapes still run
    theirs, _ = rnn(torch.tensor(x, dtype=torch.float32))
    np.testing.assert_allclose(ours, theirs.detach().numpy(), atol=1e-5)


def test_states_of_many_gigabytes_are_refused_before_the_loop():
    x = np.zeros((1000, 1000, 1))  # 8 MB of input, 4,096 hidden units: 30 GiB of states kept
    w_hh = np.zeros((4096, 4096))
    with pytest.raises(NeuralabError, match="backpropagation through time .* GiB"):
        rnn_forward(x, np.zeros((1000, 4096)), np.zeros((4096, 1)), w_hh, np.zeros(4096))


def test_batch_norm_training_on_one_value_per_feature_is_refused_as_in_pytorch():
    x = np.random.default_rng(5).normal(size=(1, 3))  # a batch of one after a Dense layer
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        F.batch_norm(torch.tensor(x), torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64),
                     training=True)
    with pytest.raises(NeuralabError, match="more than one value per feature"):
        batch_norm_forward(x, np.zeros(3), np.ones(3), np.ones(3), np.zeros(3), training=True)
    y, _ = batch_norm_forward(x, np.zeros(3), np.ones(3), np.ones(3), np.zeros(3), training=False)  # inference is fine
    assert y.shape == (1, 3)
    with pytest.raises(NeuralabError, match=r"gamma of shape \(2,\): give one value per feature, shape \(3,\)"):
        batch_norm_forward(np.zeros((4, 3)), np.zeros(3), np.ones(3), np.ones(2), np.zeros(3), training=True)


def test_numeric_gradient_refuses_an_integer_array_whose_nudges_round_away():
    a = np.arange(6).reshape(2, 3)  # a learner's first try: integers
    with pytest.raises(NeuralabError, match="float64"):
        numeric_gradient(lambda: float((a**2).sum()), a)
    b = a.astype(np.float64)
    np.testing.assert_allclose(numeric_gradient(lambda: float((b**2).sum()), b), 2 * b, atol=1e-6)


@pytest.mark.parametrize("filters,in_chw,message", [
    (2.5, (3, 32, 32), "filters 2.5: give a whole number"),
    (8, (3, -32, 32), r"in_chw \(3, -32, 32\): depth, height and width must each be at least 1"),
    (8, (32, 32), r"in_chw \(32, 32\): give \(depth, height, width\)"),
])
def test_conv_shape_refuses_impossible_layers(filters, in_chw, message):
    with pytest.raises(NeuralabError, match=message):
        conv_shape(in_chw, filters, 3)


def rnn_cli(capsys, *argv):
    try:
        code = main(["rnn", *argv])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("command", [["topologies", "--train", "--steps", "1"], ["gradients", "--train-steps", "0"]])
def test_rnn_seed_past_64_bits_is_a_usage_error(capsys, tmp_path, command):
    code, out, err = rnn_cli(capsys, *command, "--seed", "99999999999999999999", *(
        ["--out", str(tmp_path / "g")] if command[0] == "gradients" else []))
    assert code == 2
    assert "--seed" in err and "0 to 4294967295" in err and "Traceback" not in err


@pytest.mark.parametrize("option", ["--steps", "--hidden", "--batch"])
def test_rnn_gradients_sizes_of_terabytes_are_refused_before_torch_allocates(capsys, tmp_path, option):
    code, out, err = rnn_cli(capsys, "gradients", option, "100000000", "--out", str(tmp_path / "g"))
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"neuralab: error: {option} 100000000: the run would keep") and "about 2 GB" in line
    assert not (tmp_path / "g").exists()  # refused before anything was made
