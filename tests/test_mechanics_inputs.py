"""What a notebook hands the lessons besides float64 arrays: lists, complex numbers, float16,
bool and uint8 pictures, views of terabytes, a misspelt option. Each gets PyTorch's number or
one NeuralabError naming the parameter, never a traceback, a silent wrong result or a machine
out of memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import handwritten_digit

from neuralab import mechanics as M
from neuralab.errors import NeuralabError, ParameterError

N, D, H = 3, 5, 4


def digits(n: int, start: int = 0) -> np.ndarray:
    """``n`` real handwritten digits, (n, 28, 28) uint8."""
    return np.stack([handwritten_digit(start + i)[0] for i in range(n)])


def cell(kind: str):
    """A torch RNNCell / LSTMCell in float64 with its weights as lists, our one bias = b_ih + b_hh."""
    torch.manual_seed(0)
    layer = (torch.nn.RNNCell if kind == "rnn" else torch.nn.LSTMCell)(D, H).double()
    weights = [p.detach().numpy() for p in (layer.weight_ih, layer.weight_hh, layer.bias_ih + layer.bias_hh)]
    return layer, [w.tolist() for w in weights]


def sequence_step():
    """Step t of a real series: rows of digit pictures as (N, D) inputs, scaled to 0..1."""
    return digits(N)[:, 10, 10 : 10 + D] / 255


def test_an_rnn_step_takes_lists_and_equals_torch():
    layer, (w_ih, w_hh, b) = cell("rnn")
    x_t, h_prev = sequence_step(), np.random.default_rng(0).normal(size=(N, H))
    h, cache = M.rnn_step_forward(x_t.tolist(), h_prev.tolist(), w_ih, w_hh, b)
    tx, th = torch.tensor(x_t, requires_grad=True), torch.tensor(h_prev, requires_grad=True)
    expected = layer(tx, th)
    np.testing.assert_allclose(h, expected.detach().numpy(), rtol=1e-12)
    dh = np.ones((N, H))
    expected.backward(torch.tensor(dh))
    dx, dh_prev, dw_ih, dw_hh, db = M.rnn_step_backward(dh.tolist(), cache, w_ih, w_hh)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(dh_prev, th.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(dw_ih, layer.weight_ih.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(dw_hh, layer.weight_hh.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(db, layer.bias_ih.grad.numpy(), rtol=1e-12)


def test_an_lstm_step_takes_lists_and_equals_torch():
    layer, (w_ih, w_hh, b) = cell("lstm")
    rng = np.random.default_rng(1)
    x_t, h_prev, c_prev = sequence_step(), rng.normal(size=(N, H)), rng.normal(size=(N, H))
    h, c, cache = M.lstm_step_forward(x_t.tolist(), h_prev.tolist(), c_prev.tolist(), w_ih, w_hh, b)
    tx = torch.tensor(x_t, requires_grad=True)
    th, tc = layer(tx, (torch.tensor(h_prev), torch.tensor(c_prev)))
    np.testing.assert_allclose(h, th.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(c, tc.detach().numpy(), rtol=1e-12)
    th.sum().backward()
    dx, *_ = M.lstm_step_backward(np.ones((N, H)).tolist(), np.zeros((N, H)).tolist(), cache, w_ih, w_hh)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-12)


def test_a_step_given_another_cells_weights_names_the_weight_rather_than_broadcasting():
    _, (w_ih, w_hh, b) = cell("rnn")  # a SimpleRNN's weights handed to the LSTM step
    x_t, h = sequence_step(), np.zeros((N, H))
    with pytest.raises(NeuralabError, match=r"w_ih of shape \(4, 5\): expected \(4\*H, D\) = \(16, 5\)"):
        M.lstm_step_forward(x_t, h, h, w_ih, w_hh, b)
    _, cache = M.rnn_step_forward(x_t, h, w_ih, w_hh, b)
    with pytest.raises(NeuralabError, match=r"dh of shape \(3, 5\): expected \(N, H\) = \(3, 4\)"):
        M.rnn_step_backward(np.ones((N, D)), cache, w_ih, w_hh)


def _conv_cache():
    return M.conv2d_forward(np.ones((1, 1, 4, 4)), np.ones((1, 1, 3, 3)))[1]


COMPLEX = [
    ("x", lambda z: M.conv2d_forward(z, np.ones((1, 1, 3, 3)))),
    ("w", lambda z: M.conv2d_forward(np.ones((1, 1, 4, 4)), z[:, :, :3, :3])),
    ("dout", lambda z: M.conv2d_backward(z[:, :, :2, :2], _conv_cache())),
    ("image", lambda z: M.correlate2d(z[0, 0], np.ones((3, 3)))),
    ("x", lambda z: M.max_pool2d_forward(z)),
    ("x", lambda z: M.pool2d(z, mode="avg")),
    ("x", lambda z: M.dense_forward(z[0], np.ones((2, 4)))),
    ("x", lambda z: M.relu_forward(z)),
    ("x", lambda z: M.sigmoid(z)),
    ("z", lambda z: M.softmax(z)),
    ("logits", lambda z: M.cross_entropy_forward(z[0, 0], [0, 1, 2, 3])),
    ("x", lambda z: M.batch_norm_forward(z, np.zeros(1), np.ones(1), np.ones(1), np.zeros(1), True)),
    ("x", lambda z: M.dropout_forward(z, 0.5, seed=0)),
    ("x", lambda z: M.rnn_forward(z[0], np.zeros((1, 2)), np.ones((2, 4)), np.eye(2), np.zeros(2))),
    ("x_t", lambda z: M.rnn_step_forward(z[0, 0], np.zeros((4, 2)), np.ones((2, 4)), np.eye(2), np.zeros(2))),
    ("image", lambda z: M.apply_kernel(z[0, 0], np.ones((3, 3)))),
    ("weights", lambda z: M.closest_kernels(z)),
    ("actual", lambda z: M.relative_error(z, np.ones(z.shape))),
]


@pytest.mark.parametrize("parameter, call", COMPLEX)
def test_complex_numbers_are_refused_naming_the_parameter(parameter, call):
    picture = digits(1)[:, None, :4, 8:12] / 255  # (1, 1, 4, 4)
    with pytest.raises(ParameterError) as e:
        call(picture * np.exp(1j * np.pi / 4))  # a phase: cast to float, only its real part would remain
    assert e.value.parameter == parameter and "complex128" in str(e.value) and "\n" not in str(e.value)


def float16_steps(ours, exact) -> float:
    """How far ``ours`` (float16) is from the exact result, in float16 steps at its largest value:
    rounding the exact sum once is half a step at most; summing in float16 rounds at every term."""
    step = float(np.spacing(np.float16(np.abs(exact).max())))
    return float(np.abs(ours.astype(np.float64) - exact).max()) / step


def test_a_float16_convolution_is_summed_in_float32_and_returned_as_float16():
    # 64 channels of real digits and a 3x3x64 kernel per filter: 576 products an output
    x = (digits(64)[None] / 255).astype(np.float16)
    w = np.random.default_rng(2).normal(0, np.sqrt(2 / 576), (8, 64, 3, 3)).astype(np.float16)
    out, cache = M.conv2d_forward(x, w, padding="same")
    tx, tw = torch.tensor(x, dtype=torch.float64, requires_grad=True), torch.tensor(w, dtype=torch.float64, requires_grad=True)
    exact = F.conv2d(tx, tw, padding=1)
    assert out.dtype == np.float16
    assert float16_steps(out, exact.detach().numpy()) <= 0.55  # rounded once; summed in float16, 1.6 steps off
    dout = np.random.default_rng(3).normal(size=out.shape).astype(np.float16)
    exact.backward(torch.tensor(dout, dtype=torch.float64))
    dx, dw, _ = M.conv2d_backward(dout, cache)
    assert dx.dtype == dw.dtype == np.float16
    assert float16_steps(dx, tx.grad.numpy()) <= 0.55
    assert float16_steps(dw, tw.grad.numpy()) <= 0.55


def test_a_float16_average_pooling_is_summed_in_float32():
    x = (digits(4)[:, None] / 255).astype(np.float16)
    ours = M.pool2d(x, 7, mode="avg")  # 49 values a window
    exact = F.avg_pool2d(torch.tensor(x, dtype=torch.float64), 7).numpy()
    assert ours.dtype == np.float16
    assert float16_steps(ours, exact) <= 0.55


@pytest.mark.parametrize("kind", ["bool", "uint8"])
def test_max_pooling_gradients_of_masks_and_pixels_equal_torch(kind):
    pictures = digits(2)[:, None]
    x = pictures > 127 if kind == "bool" else pictures  # an ink mask, or the pixels themselves
    out, cache = M.max_pool2d_forward(x, 3, 1)  # overlapping windows: one pixel wins several
    dout = np.full(out.shape, 200, np.uint8) if kind == "uint8" else np.ones(out.shape, bool)
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    F.max_pool2d(tx, 3, 1).backward(torch.tensor(dout, dtype=torch.float64))
    dx = M.max_pool2d_backward(dout, cache)
    np.testing.assert_array_equal(dx, tx.grad.numpy())  # uint8 wrapped 400 to 144; bool refused to add


def test_conv_gradients_of_whole_number_kernels_equal_torch():
    x = digits(2)[:, None]
    sobel = M.KERNELS["sobel-x"].astype(np.int8)[None, None]  # a kernel typed as small whole numbers
    out, cache = M.conv2d_forward(x, sobel)
    dout = np.full(out.shape, 100, np.int8)
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    tw = torch.tensor(sobel, dtype=torch.float64, requires_grad=True)
    F.conv2d(tx, tw).backward(torch.tensor(dout, dtype=torch.float64))
    dx, dw, _ = M.conv2d_backward(dout, cache)
    np.testing.assert_array_equal(dx, tx.grad.numpy())  # int8 wrapped 800 around
    np.testing.assert_array_equal(dw, tw.grad.numpy())


HUGE = np.broadcast_to(np.float64(1), (10**6, 10**6))  # 8 bytes, 7 TiB as NumPy counts it


@pytest.mark.parametrize("what, call", [
    ("output", lambda: M.dense_forward(HUGE[:, :1], HUGE[:, :1])),
    ("flattened", lambda: M.flatten_forward(HUGE.T)),
    ("as floats", lambda: M.relu_forward(HUGE)),
    ("as floats", lambda: M.softmax(HUGE)),
    ("dropout mask", lambda: M.dropout_forward(HUGE, 0.5, training=False)),
    ("normalised", lambda: M.batch_norm_forward(HUGE, *[HUGE[0]] * 4, training=False)),
    ("gradient dx", lambda: M.max_pool2d_forward(HUGE[None, None])),
    ("picture in floats", lambda: M.apply_kernel(HUGE, np.ones((1, 1)))),
    ("weights in floats", lambda: M.closest_kernels(HUGE[:, None, None, :])),
])
def test_an_array_of_terabytes_is_refused_before_it_is_allocated(what, call):
    tracemalloc.start()
    try:
        with pytest.raises(NeuralabError, match=f"{what}.* GiB") as e:
            call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "\n" not in str(e.value) and peak < 10 * 2**20


@pytest.mark.parametrize("parameter, call", [
    ("axis", lambda: M.softmax(np.ones((2, 10)), axis=2)),
    ("axis", lambda: M.log_softmax(np.ones((2, 10)), axis="classes")),
    ("dloss", lambda: M.cross_entropy_backward(M.cross_entropy_forward(np.ones((2, 3)), [0, 1])[1], [1.0, 1.0])),
    ("momentum", lambda: M.batch_norm_forward(np.ones((4, 3)), np.zeros(3), np.ones(3), np.ones(3), np.zeros(3),
                                              True, momentum="0.1")),
    ("eps", lambda: M.batch_norm_forward(np.ones((4, 3)), np.zeros(3), np.ones(3), np.ones(3), np.zeros(3),
                                         False, eps=None)),
    ("eps", lambda: M.numeric_gradient(lambda: 0.0, np.ones(3), eps=0)),
    ("spec", lambda: M.get_kernel(None)),
    ("text", lambda: M.parse_kernel(3)),
    ("s", lambda: M.axis_size(28, 3, 0)),
    ("s", lambda: M.same_pads(28, 3, 0)),
])
def test_a_bad_setting_is_a_parameter_error_naming_it(parameter, call):
    with pytest.raises(ParameterError) as e:
        call()
    assert e.value.parameter == parameter


@pytest.mark.parametrize("parameter, call", [
    ("`x`", lambda: M.batch_norm_forward(np.ones((4, 0)), *[np.zeros(0)] * 4, True)),  # no features: divided by 0
    ("`weights`", lambda: M.closest_kernels(np.ones((2, 0, 3, 3)))),  # the mean of no channels is NaN
    ("`stride`", lambda: M.resolve_padding("same", (28, 28), 3, 0)),
    ("`in_hw`", lambda: M.output_hw((27.5, 28), 3)),  # gave 12.75 rows
    ("`f`", lambda: M.numeric_gradient(lambda: np.ones(2), np.ones(3))),
    ("`a`", lambda: M.numeric_gradient(lambda: 0.0, np.broadcast_to(np.ones(1), (3,)))),
    ("`actual`", lambda: M.relative_error(np.ones(2), np.ones(3))),
    ("`actual`", lambda: M.relative_error(["a"], [1.0])),
    ("`dout`", lambda: M.dropout_backward(np.ones((4, 1)), M.dropout_forward(np.ones(4), 0.5, seed=0)[1])),
])
def test_a_bad_input_is_one_line_naming_the_parameter(parameter, call):
    with pytest.raises(NeuralabError) as e:
        call()
    assert parameter in e.value.args[0] and "\n" not in e.value.args[0]


def test_batch_norm_told_training_as_text_does_not_train():
    x = digits(4).reshape(4, -1)[:, 300:303] / 255
    mean, var = np.zeros(3), np.ones(3)
    with pytest.raises(ParameterError) as e:  # "False" is truthy: it used to train and move the statistics
        M.batch_norm_forward(x, mean, var, np.ones(3), np.zeros(3), training="False")
    assert e.value.parameter == "training"
    np.testing.assert_array_equal(mean, 0)
    np.testing.assert_array_equal(var, 1)


def test_apply_kernel_refuses_a_misspelt_depth_rather_than_filtering_per_channel():
    picture = np.stack([digits(1)[0]] * 3, axis=-1)  # an RGB picture
    assert M.apply_kernel(picture, M.KERNELS["sobel-x"], depth="sum").ndim == 2
    with pytest.raises(ParameterError) as e:
        M.apply_kernel(picture, M.KERNELS["sobel-x"], depth="summed")
    assert e.value.parameter == "depth"


def test_closest_kernels_of_no_filters_is_no_matches():
    assert M.closest_kernels(np.zeros((0, 3, 3, 3))) == []


def test_activation_gradients_take_lists_as_their_forward_passes_do():
    x = (digits(1)[0, 12, 8:16].astype(np.float64) - 128) / 64  # values around 0, both signs
    tx = torch.tensor(x, requires_grad=True)
    dout = np.linspace(-1, 1, len(x))
    for forward, backward, torch_fn in ((M.relu_forward, M.relu_backward, torch.relu),
                                        (M.tanh_forward, M.tanh_backward, torch.tanh),
                                        (M.sigmoid_forward, M.sigmoid_backward, torch.sigmoid)):
        _, cache = forward(x.tolist())
        tx.grad = None
        torch_fn(tx).backward(torch.tensor(dout))
        np.testing.assert_allclose(backward(dout.tolist(), np.asarray(cache).tolist()), tx.grad.numpy(), rtol=1e-12)
    _, cache = M.softmax_forward([x.tolist()])
    tz = torch.tensor(x[None], requires_grad=True)
    F.softmax(tz, dim=1).backward(torch.tensor(dout[None]))
    np.testing.assert_allclose(M.softmax_backward([dout.tolist()], cache.tolist()), tz.grad.numpy(), rtol=1e-12)
