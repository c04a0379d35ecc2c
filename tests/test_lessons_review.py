"""A learner's and a hostile notebook user's review of the lessons: the NumPy mechanics held to
torch.nn.functional where a wrong input used to give a silently wrong number, and every bad
input one NeuralabError naming the parameter, never a NumPy traceback."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from neuralab import mechanics as M
from neuralab.errors import NeuralabError, ParameterError
from neuralab.forecasting.gradients import GradientConfig
from neuralab.forecasting.topologies import train_toy

rng = np.random.default_rng(0)


def test_softmax_of_uint8_scores_equals_torch_not_a_wrapped_difference():
    z = np.array([[1, 200, 3], [250, 0, 7]], np.uint8)  # z - max(z) wraps around in uint8
    expected = F.softmax(torch.tensor(z, dtype=torch.float64), dim=1).numpy()
    assert M.relative_error(M.softmax(z), expected) < 1e-12
    assert M.relative_error(M.log_softmax(z), F.log_softmax(torch.tensor(z, dtype=torch.float64), 1).numpy()) < 1e-12


def test_cross_entropy_of_int8_logits_equals_torch():
    logits = np.array([[100, -100, 0], [-128, 127, 5]], np.int8)
    labels = np.array([1, 0])
    expected = F.cross_entropy(torch.tensor(logits, dtype=torch.float64), torch.tensor(labels)).item()
    assert M.cross_entropy_forward(logits, labels)[0] == pytest.approx(expected, rel=1e-12)


def test_dense_of_int8_values_equals_torch_without_overflow():
    x = rng.integers(-100, 100, size=(4, 5)).astype(np.int8)
    w = rng.integers(-100, 100, size=(3, 5)).astype(np.int8)
    expected = F.linear(torch.tensor(x, dtype=torch.float64), torch.tensor(w, dtype=torch.float64)).numpy()
    assert M.relative_error(M.dense_forward(x, w)[0], expected) < 1e-12


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_backpropagation_through_time_with_whole_number_dhs_equals_float_dhs(cell):
    n, t, d, h = 2, 4, 3, 5
    x = rng.normal(size=(n, t, d))
    gates = 4 if cell == "lstm" else 1
    w_ih, w_hh, b = rng.normal(size=(gates * h, d)), rng.normal(size=(gates * h, h)) * 0.5, rng.normal(size=gates * h)
    h0 = np.zeros((n, h))
    if cell == "lstm":
        *_, cache = M.lstm_forward(x, h0, h0, w_ih, w_hh, b)
        backward = M.lstm_backward
    else:
        _, cache = M.rnn_forward(x, h0, w_ih, w_hh, b)
        backward = M.rnn_backward
    dhs = np.zeros((n, t, h), dtype=int)
    dhs[:, -1] = 1  # many-to-one: dL/dh_T = 1, the gradient a learner types as ints
    assert M.relative_error(backward(dhs, cache)[0], backward(dhs.astype(float), cache)[0]) < 1e-12


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_backpropagation_through_time_with_whole_number_weights_equals_torch(cell):
    """np.eye weights, as a learner types them for a step by hand: the sums over the steps are floats."""
    n, t, d, h = 2, 3, 2, 2
    x = rng.normal(size=(n, t, d))
    gates = 4 if cell == "lstm" else 1
    w_ih, w_hh = np.tile(np.eye(h, d, dtype=int), (gates, 1)), np.tile(np.eye(h, dtype=int), (gates, 1))
    b = np.zeros(gates * h, dtype=int)
    h0 = np.zeros((n, h))
    dhs = rng.normal(size=(n, t, h))
    if cell == "lstm":
        *_, cache = M.lstm_forward(x, h0, h0, w_ih, w_hh, b)
        dx, dh0, _, dw_ih, dw_hh, db = M.lstm_backward(dhs, cache)
        layer = torch.nn.LSTM(d, h, batch_first=True, dtype=torch.float64)
    else:
        _, cache = M.rnn_forward(x, h0, w_ih, w_hh, b)
        dx, dh0, dw_ih, dw_hh, db = M.rnn_backward(dhs, cache)
        layer = torch.nn.RNN(d, h, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        layer.weight_ih_l0.copy_(torch.from_numpy(w_ih.astype(float)))
        layer.weight_hh_l0.copy_(torch.from_numpy(w_hh.astype(float)))
        layer.bias_ih_l0.zero_()
        layer.bias_hh_l0.zero_()
    xt = torch.from_numpy(x).requires_grad_()
    out, _ = layer(xt)
    out.backward(torch.from_numpy(dhs))
    assert dw_ih.dtype == dw_hh.dtype == db.dtype == np.float64
    np.testing.assert_allclose(dx, xt.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(dw_ih, layer.weight_ih_l0.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(dw_hh, layer.weight_hh_l0.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(db, layer.bias_ih_l0.grad.numpy(), atol=1e-12)


def test_the_shape_explanation_says_which_rows_a_stride_over_the_kernel_skips():
    lines = M.conv_shape((1, 7, 7), filters=1, kernel=(1, 2), stride=(3, 3), bias=False).explain()
    assert "   S > K: each window reads 1 of every 3 rows, so the 2 rows between two windows are read by none" in lines
    assert "   S > K: each window reads 2 of every 3 columns, so the column between two windows is read by none" in lines
    assert lines[-2] == "parameters = F x C x K_h x K_w (no bias) = 1 x 1 x 1 x 2 = 2"
    touching = M.conv_shape((1, 7, 7), filters=1, kernel=(3, 3), stride=(3, 3)).explain()
    assert not any("S > K" in line for line in touching) and "+ 1) = 10" in touching[-2]


@pytest.mark.parametrize("call, parameter", [
    (lambda: M.conv2d_forward([[[[1, 2], [3]]]], np.ones((1, 1, 1, 1))), "`x`"),  # ragged nested lists
    (lambda: M.dense_forward(np.ones((4, 5)), np.ones((5, 3))), "`w`"),            # weight transposed
    (lambda: M.dense_forward(np.ones((4, 5)), np.ones((3, 5)), np.ones(4)), "`b`"),
    (lambda: M.dense_backward(np.ones((4, 4)), M.dense_forward(np.ones((4, 5)), np.ones((3, 5)))[1]), "`dout`"),
    (lambda: M.flatten_forward(np.float64(3)), "`x`"),
    (lambda: M.flatten_backward(np.ones((2, 7)), (2, 3, 2, 2)), "`dout`"),
    (lambda: M.softmax(np.zeros((2, 0))), "`z`"),
    (lambda: M.cross_entropy_forward(np.array([1.0, 2.0]), [1]), "`logits`"),
    (lambda: M.cross_entropy_forward(np.zeros((0, 3)), np.array([], int)), "`logits`"),
    (lambda: M.max_pool2d_backward(np.ones((1, 1, 3, 3)), M.max_pool2d_forward(np.ones((1, 1, 4, 4)))[1]), "`dout`"),
    (lambda: M.avg_pool2d_backward(np.ones((1, 1, 3, 3)), M.avg_pool2d_forward(np.ones((1, 1, 4, 4)))[1]), "`dout`"),
    (lambda: M.pool2d(np.ones((1, 1, 4, 4)), mode=["max"]), "`mode`"),
    (lambda: M.pad(np.ones((3, 3)), ((-1, -1), (0, 0))), "`pads`"),
    (lambda: M.pad(np.ones(3), ((1, 1), (1, 1))), "`x`"),
    (lambda: M.windows(np.ones(5), 2), "`x`"),
    (lambda: M.rnn_backward(np.ones((1, 3, 2)), M.rnn_forward(np.ones((1, 2, 1)), np.zeros((1, 2)), np.ones((2, 1)),
                                                              np.eye(2), np.zeros(2))[1]), "`dhs`"),
    (lambda: M.dropout_forward(np.ones(3), "0.5"), "`rate`"),
    (lambda: M.dropout_forward(np.ones(3), 0.5, seed=-1), "`seed`"),
    (lambda: M.batch_norm_forward(np.ones((4, 3)), np.zeros(3), np.ones(3), [1, 1, 1], [0, 0, 0], True, momentum=2),
     "`momentum`"),
    (lambda: M.batch_norm_forward(np.ones((4, 3)), np.zeros(3), np.ones(3), [1, 1, 1], [0, 0, 0], False, eps=-1),
     "`eps`"),
])
def test_a_hostile_input_is_one_error_naming_the_parameter(call, parameter):
    with pytest.raises(NeuralabError) as e:
        call()
    assert parameter in e.value.args[0]


def test_batch_norm_in_eval_mode_takes_lists_and_equals_torch():
    x = rng.normal(size=(5, 3))
    mean, var, gamma, beta = [0.5, -1.0, 2.0], [1.0, 0.25, 4.0], [1.0, 2.0, 0.5], [0.0, 1.0, -1.0]
    expected = F.batch_norm(torch.tensor(x), *(torch.tensor(v, dtype=torch.float64) for v in (mean, var, gamma, beta)), training=False)
    assert M.relative_error(M.batch_norm_forward(x, mean, var, gamma, beta, training=False)[0], expected.numpy()) < 1e-12


def test_a_dropout_mask_of_hundreds_of_gigabytes_is_refused_before_allocation():
    x = np.broadcast_to(np.ones(1), (10**6, 10**5))  # a view: 8 bytes
    with pytest.raises(NeuralabError, match="dropout mask"):
        M.dropout_forward(x, 0.5, seed=0)


@pytest.mark.parametrize("field, value", [("lr", 0.0), ("lr", -1.0), ("lr", float("inf")), ("clip", float("inf")),
                                          ("steps", 2.5), ("train_steps", 1.5)])
def test_gradient_config_refuses_values_that_mislabel_or_break_the_measurement(field, value):
    with pytest.raises(ParameterError) as e:
        GradientConfig(**{field: value}).check()
    assert e.value.parameter == field


@pytest.mark.parametrize("kwargs, parameter", [({"name": "nope"}, "name"), ({"steps": 0}, "steps"),
                                               ({"lr": -1.0}, "lr"), ({"batch": 0}, "batch")])
def test_train_toy_refuses_a_bad_setting_naming_it(kwargs, parameter):
    with pytest.raises(ParameterError) as e:
        train_toy(**{"name": "one-to-one", **kwargs})
    assert e.value.parameter == parameter


def test_rnn_gradients_without_training_says_so_rather_than_a_norm_of_zero(tmp_path, capsys):
    from neuralab.cli import main

    assert main(["rnn", "gradients", "--train-steps", "0", "--steps", "10", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("not trained (--train-steps 0)") == 4 and "largest gradient norm in training" not in out


def test_batch_norm_in_eval_refuses_a_negative_running_variance():
    from neuralab.errors import NeuralabError
    from neuralab.mechanics import batch_norm_forward

    x = np.arange(8.0).reshape(4, 2)
    with pytest.raises(NeuralabError, match=r"running_var holds -1: a variance is 0 or more"):
        batch_norm_forward(x, np.zeros(2), np.array([1.0, -1.0]), np.ones(2), np.zeros(2), training=False)


def test_rnn_gradients_says_its_largest_norms_are_measured_before_clipping(tmp_path, capsys):
    from neuralab.cli import main

    assert main(["rnn", "gradients", "--steps", "8", "--hidden", "4", "--batch", "4", "--train-steps", "2",
                 "--out", str(tmp_path)]) == 0
    norms = [line for line in capsys.readouterr().out.splitlines() if "largest gradient norm" in line]
    # a clipped run's norm above its clip read as a clip that failed
    assert len(norms) == 4 and all(line.endswith("(before clipping)") for line in norms), norms
