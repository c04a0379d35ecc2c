"""SimpleRNN and LSTM unrolled by hand against torch.nn.RNN / nn.LSTM (float64), plus finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from neuralab.mechanics import lstm_backward, lstm_forward, rnn_backward, rnn_forward
from neuralab.mechanics.gradcheck import numeric_gradient, relative_error


def assert_rel(actual, expected, tol=1e-7):
    assert relative_error(actual, expected) < tol


def torch_layer(kind, d, h, w_ih, w_hh, b):
    """nn.RNN/nn.LSTM holding our weights; our one bias is PyTorch's b_ih, with b_hh = 0."""
    layer = (nn.RNN if kind == "rnn" else nn.LSTM)(d, h, batch_first=True).double()
    with torch.no_grad():
        layer.weight_ih_l0.copy_(torch.tensor(w_ih))
        layer.weight_hh_l0.copy_(torch.tensor(w_hh))
        layer.bias_ih_l0.copy_(torch.tensor(b))
        layer.bias_hh_l0.zero_()
    return layer


def params(rng, gates, n, d, h):
    return (rng.normal(size=(n, h)), rng.normal(scale=0.5, size=(gates * h, d)),
            rng.normal(scale=0.5, size=(gates * h, h)), rng.normal(size=gates * h))


@pytest.mark.parametrize("n,t,d,h", [(1, 1, 1, 1), (2, 5, 3, 4), (4, 12, 2, 8), (3, 7, 6, 3)])
def test_rnn_matches_torch(n, t, d, h):
    rng = np.random.default_rng(t)
    x = rng.normal(size=(n, t, d))
    h0, w_ih, w_hh, b = params(rng, 1, n, d, h)
    hs, cache = rnn_forward(x, h0, w_ih, w_hh, b)
    layer = torch_layer("rnn", d, h, w_ih, w_hh, b)
    tx, th0 = torch.tensor(x, requires_grad=True), torch.tensor(h0[None], requires_grad=True)
    ths, _ = layer(tx, th0)
    assert_rel(hs, ths.detach().numpy())
    g = rng.normal(size=hs.shape)
    ths.backward(torch.tensor(g))
    dx, dh0, dw_ih, dw_hh, db = rnn_backward(g, cache)
    assert_rel(dx, tx.grad.numpy())
    assert_rel(dh0, th0.grad[0].numpy())
    assert_rel(dw_ih, layer.weight_ih_l0.grad.numpy())
    assert_rel(dw_hh, layer.weight_hh_l0.grad.numpy())
    assert_rel(db, layer.bias_ih_l0.grad.numpy())


@pytest.mark.parametrize("use_last_cell", [False, True])
@pytest.mark.parametrize("n,t,d,h", [(1, 1, 1, 1), (2, 5, 3, 4), (4, 12, 2, 8), (3, 7, 6, 3)])
def test_lstm_matches_torch(n, t, d, h, use_last_cell):
    rng = np.random.default_rng(t + 100)
    x, c0 = rng.normal(size=(n, t, d)), rng.normal(size=(n, h))
    h0, w_ih, w_hh, b = params(rng, 4, n, d, h)
    hs, cs, cache = lstm_forward(x, h0, c0, w_ih, w_hh, b)
    layer = torch_layer("lstm", d, h, w_ih, w_hh, b)
    tx = torch.tensor(x, requires_grad=True)
    th0, tc0 = torch.tensor(h0[None], requires_grad=True), torch.tensor(c0[None], requires_grad=True)
    ths, (_, tc) = layer(tx, (th0, tc0))
    assert_rel(hs, ths.detach().numpy())
    assert_rel(cs[:, -1], tc[0].detach().numpy())
    g, gc = rng.normal(size=hs.shape), rng.normal(size=(n, h))
    loss = (ths * torch.tensor(g)).sum() + (use_last_cell and (tc[0] * torch.tensor(gc)).sum())
    loss.backward()
    dx, dh0, dc0, dw_ih, dw_hh, db = lstm_backward(g, cache, gc if use_last_cell else None)
    assert_rel(dx, tx.grad.numpy())
    assert_rel(dh0, th0.grad[0].numpy())
    assert_rel(dc0, tc0.grad[0].numpy())
    assert_rel(dw_ih, layer.weight_ih_l0.grad.numpy())
    assert_rel(dw_hh, layer.weight_hh_l0.grad.numpy())
    assert_rel(db, layer.bias_ih_l0.grad.numpy())


def test_lstm_many_to_one_gradient_matches_finite_differences():
    rng = np.random.default_rng(5)
    x, c0 = rng.normal(size=(2, 4, 3)), np.zeros((2, 2))
    h0, w_ih, w_hh, b = params(rng, 4, 2, 3, 2)
    g = np.zeros((2, 4, 2))
    g[:, -1] = rng.normal(size=(2, 2))  # only the last step's output is used (many to one)

    def loss():
        return float((lstm_forward(x, h0, c0, w_ih, w_hh, b)[0] * g).sum())

    dx, dh0, _, dw_ih, dw_hh, db = lstm_backward(g, lstm_forward(x, h0, c0, w_ih, w_hh, b)[2])
    for analytic, a in ((dx, x), (dh0, h0), (dw_ih, w_ih), (dw_hh, w_hh), (db, b)):
        assert_rel(analytic, numeric_gradient(loss, a), 1e-6)
