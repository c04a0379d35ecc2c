"""Every layer by hand against PyTorch autograd in float64: conv2d, pooling, flatten, dense,
activations, softmax, cross-entropy, batch norm, dropout; plus finite-difference checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from neuralab.errors import NeuralabError
from neuralab.mechanics import dense as d
from neuralab.mechanics import norm
from neuralab.mechanics.conv import conv2d_backward, conv2d_forward
from neuralab.mechanics.gradcheck import numeric_gradient, relative_error
from neuralab.mechanics.pooling import avg_pool2d_backward, avg_pool2d_forward, max_pool2d_backward, max_pool2d_forward
from neuralab.mechanics.shapes import resolve_padding


def assert_rel(actual, expected, tol=1e-7):
    """Largest difference relative to the largest reference value: the issue's 'relative error'."""
    assert relative_error(actual, expected) < tol


def t(a):
    return torch.tensor(a, dtype=torch.float64, requires_grad=True)


def against_torch(forward, backward, torch_fn, inputs, rng):
    """Run ours and PyTorch's on the same inputs (None for an absent bias); compare the output,
    then backpropagate the same random dL/dout and compare the gradient of every input."""
    out, cache = forward(*inputs)
    leaves = [None if a is None else t(a) for a in inputs]
    tout = torch_fn(*leaves)
    assert_rel(out, tout.detach().numpy())
    g = rng.normal(size=out.shape)
    tout.backward(torch.tensor(g))
    grads = backward(g, cache)
    for ours, leaf in zip(grads if isinstance(grads, tuple) else (grads,), leaves):
        if leaf is None:
            assert ours is None
        else:
            assert_rel(ours, leaf.grad.numpy())


def torch_conv(x, w, b, stride, padding):
    """PyTorch's answer; "same" (any stride) as explicit zeros at (top, bottom, left, right) then a valid conv."""
    (top, bottom), (left, right) = resolve_padding(padding, x.shape[2:], w.shape[2:], stride)
    return F.conv2d(F.pad(x, (left, right, top, bottom)), w, b, stride=stride)


CASES = [
    # (N, C, F, H, W, kernel, stride, padding)
    (1, 1, 1, 5, 5, (3, 3), (1, 1), "valid"),
    (2, 3, 4, 6, 7, (3, 3), (1, 1), "same"),
    (2, 3, 4, 6, 7, (3, 3), (2, 2), "same"),
    (1, 2, 3, 8, 8, (2, 2), (2, 2), "valid"),
    (1, 2, 3, 8, 8, (2, 2), (1, 1), "same"),  # even kernel: odd total padding
    (2, 1, 2, 9, 6, (5, 3), (2, 1), 1),
    (1, 3, 2, 7, 9, (1, 1), (3, 3), 0),
    (2, 2, 5, 5, 8, (4, 2), (1, 3), (2, 1)),
    (1, 4, 1, 10, 11, (3, 3), (3, 2), "same"),
    (3, 1, 6, 4, 4, (4, 4), (1, 1), 2),
    (1, 3, 16, 32, 32, (5, 5), (2, 2), "same"),
    (2, 2, 2, 3, 3, (3, 3), (2, 2), "same"),
]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("n,c,f,h,w,kernel,stride,padding", CASES)
def test_conv2d_matches_torch(n, c, f, h, w, kernel, stride, padding, bias):
    rng = np.random.default_rng(hash((n, c, f, h, w)) % 2**32)
    inputs = rng.normal(size=(n, c, h, w)), rng.normal(size=(f, c, *kernel)), (rng.normal(size=f) if bias else None)
    against_torch(
        lambda x, w, b: conv2d_forward(x, w, b, stride, padding),
        conv2d_backward,
        lambda x, w, b: torch_conv(x, w, b, stride, padding),
        inputs,
        rng,
    )


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("kernel", [(1, 1), (3, 3), (2, 4)])
def test_conv2d_same_stride_1_matches_torch_padding_same(kernel):
    rng = np.random.default_rng(1)
    x, w = rng.normal(size=(2, 3, 7, 8)), rng.normal(size=(4, 3, *kernel))
    out, _ = conv2d_forward(x, w, padding="same")
    assert out.shape[2:] == (7, 8)
    assert_rel(out, F.conv2d(torch.tensor(x), torch.tensor(w), padding="same").numpy())


def test_conv2d_gradients_match_finite_differences():
    rng = np.random.default_rng(2)
    x, w, b = rng.normal(size=(2, 2, 5, 6)), rng.normal(size=(3, 2, 3, 2)), rng.normal(size=3)
    g = rng.normal(size=conv2d_forward(x, w, b, (2, 1), "same")[0].shape)

    def loss():
        return float((conv2d_forward(x, w, b, (2, 1), "same")[0] * g).sum())

    dx, dw, db = conv2d_backward(g, conv2d_forward(x, w, b, (2, 1), "same")[1])
    assert_rel(dx, numeric_gradient(loss, x), 1e-6)
    assert_rel(dw, numeric_gradient(loss, w), 1e-6)
    assert_rel(db, numeric_gradient(loss, b), 1e-6)


def test_conv2d_refuses_kernel_larger_than_padded_input():
    with pytest.raises(NeuralabError, match="kernel 5x5 is larger than the padded input 4x4"):
        conv2d_forward(np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 5, 5)))
    with pytest.raises(NeuralabError, match="stride"):
        conv2d_forward(np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 3, 3)), stride=0)


POOLS = [
    # (N, C, H, W, size, stride)
    (2, 3, 8, 8, 2, None),
    (1, 2, 7, 9, 2, None),  # odd sizes: last row/column dropped
    (2, 1, 9, 9, 3, None),
    (1, 2, 6, 7, 3, 1),  # overlapping windows
    (2, 2, 8, 6, (2, 3), (1, 2)),
    (1, 1, 5, 5, 2, 3),
]


@pytest.mark.parametrize("mode", ["max", "avg"])
@pytest.mark.parametrize("n,c,h,w,size,stride", POOLS)
def test_pooling_matches_torch(n, c, h, w, size, stride, mode):
    rng = np.random.default_rng(h * 10 + w)
    forward, backward, torch_pool = {
        "max": (max_pool2d_forward, max_pool2d_backward, F.max_pool2d),
        "avg": (avg_pool2d_forward, avg_pool2d_backward, F.avg_pool2d),
    }[mode]
    against_torch(lambda x: forward(x, size, stride), backward, lambda x: torch_pool(x, size, stride),
                  [rng.normal(size=(n, c, h, w))], rng)


def test_max_pool_ties_route_gradient_to_one_cell():
    x = np.ones((1, 1, 4, 4))
    out, cache = max_pool2d_forward(x, 2)
    dx = max_pool2d_backward(np.ones_like(out), cache)
    assert dx.sum() == 4 and dx[0, 0, 0, 0] == 1 and dx[0, 0, 0, 1] == 0  # the first maximum of each window


def test_pool_window_larger_than_input_names_size():
    with pytest.raises(NeuralabError, match="size 6x6 is larger"):
        max_pool2d_forward(np.zeros((1, 1, 5, 5)), 6)


ACTIVATIONS = {
    "relu": (d.relu_forward, d.relu_backward, torch.relu),
    "tanh": (d.tanh_forward, d.tanh_backward, torch.tanh),
    "sigmoid": (d.sigmoid_forward, d.sigmoid_backward, torch.sigmoid),
    "softmax": (d.softmax_forward, d.softmax_backward, lambda z: torch.softmax(z, dim=-1)),
    "flatten": (d.flatten_forward, d.flatten_backward, lambda z: torch.flatten(z, 1)),
}


@pytest.mark.parametrize("shape", [(4, 7), (3, 2, 5), (2, 3, 4, 5)])
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_matches_torch(name, shape):
    rng = np.random.default_rng(len(shape))
    forward, backward, torch_fn = ACTIVATIONS[name]
    against_torch(forward, backward, torch_fn, [rng.normal(scale=3, size=shape)], rng)


def test_sigmoid_and_softmax_do_not_overflow():
    assert np.isfinite(d.sigmoid(np.array([-1000.0, 1000.0]))).all()
    assert np.allclose(d.softmax(np.array([[1000.0, 1000.0]])), 0.5)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("n,d_in,d_out", [(1, 3, 2), (5, 8, 10), (16, 64, 1)])
def test_dense_matches_torch(n, d_in, d_out, bias):
    rng = np.random.default_rng(n + d_in)
    inputs = rng.normal(size=(n, d_in)), rng.normal(size=(d_out, d_in)), (rng.normal(size=d_out) if bias else None)
    against_torch(d.dense_forward, d.dense_backward, F.linear, inputs, rng)


@pytest.mark.parametrize("n,k", [(1, 2), (8, 10), (32, 3)])
def test_cross_entropy_matches_torch(n, k):
    rng = np.random.default_rng(k)
    logits, labels = rng.normal(scale=4, size=(n, k)), rng.integers(0, k, n)
    loss, cache = d.cross_entropy_forward(logits, labels)
    tl = t(logits)
    tloss = F.cross_entropy(tl, torch.tensor(labels))
    assert_rel(loss, tloss.item())
    tloss.backward()
    assert_rel(d.cross_entropy_backward(cache), tl.grad.numpy())
    assert_rel(d.log_softmax(logits), F.log_softmax(tl, dim=-1).detach().numpy())


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(6, 4), (5, 3, 4, 4), (2, 1, 3, 5)])
def test_batch_norm_matches_torch(shape, training):
    rng = np.random.default_rng(shape[0])
    c = shape[1]
    x = rng.normal(loc=2, scale=3, size=shape)
    gamma, beta = rng.normal(size=c), rng.normal(size=c)
    mean, var = rng.normal(size=c), rng.uniform(0.5, 2, size=c)
    t_mean, t_var = torch.tensor(mean), torch.tensor(var)
    against_torch(
        lambda x, g, b: norm.batch_norm_forward(x, mean, var, g, b, training, momentum=0.1, eps=1e-5),
        norm.batch_norm_backward,
        lambda x, g, b: F.batch_norm(x, t_mean, t_var, g, b, training=training, momentum=0.1, eps=1e-5),
        [x, gamma, beta],
        rng,
    )
    assert_rel(mean, t_mean.numpy())  # running statistics updated the same way
    assert_rel(var, t_var.numpy())


def test_batch_norm_gradient_matches_finite_differences():
    rng = np.random.default_rng(3)
    x, gamma, beta, g = rng.normal(size=(4, 2, 3, 3)), rng.normal(size=2), rng.normal(size=2), rng.normal(size=(4, 2, 3, 3))

    def loss():
        return float((norm.batch_norm_forward(x, np.zeros(2), np.ones(2), gamma, beta, True)[0] * g).sum())

    dx = norm.batch_norm_backward(g, norm.batch_norm_forward(x, np.zeros(2), np.ones(2), gamma, beta, True)[1])[0]
    assert_rel(dx, numeric_gradient(loss, x), 1e-6)


def test_dropout_is_inverted_seeded_and_matches_torch_given_the_mask():
    x = np.random.default_rng(0).normal(size=(200, 50))
    out, mask = norm.dropout_forward(x, 0.2, seed=7)
    again, _ = norm.dropout_forward(x, 0.2, seed=7)
    assert np.array_equal(out, again)
    assert abs((mask == 0).mean() - 0.2) < 0.02  # about the rate is dropped
    assert set(np.unique(mask)) == {0.0, 1 / 0.8}  # the rest scaled by 1/(1 - rate)
    tx = t(x)
    tout = tx * torch.tensor(mask)
    g = np.ones_like(x)
    tout.backward(torch.tensor(g))
    assert_rel(out, tout.detach().numpy())
    assert_rel(norm.dropout_backward(g, mask), tx.grad.numpy())
    same, _ = norm.dropout_forward(x, 0.2, training=False)
    assert same is x  # no dropout when predicting


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5])
def test_dropout_rate_out_of_range(rate):
    with pytest.raises(NeuralabError, match="0 <= rate < 1"):
        norm.dropout_forward(np.ones(3), rate)


def test_max_pooling_sends_a_nan_windows_gradient_to_the_nan_as_pytorch_does():
    import torch

    from neuralab.mechanics.pooling import max_pool2d_backward, max_pool2d_forward, pool2d
    from neuralab.errors import ParameterError

    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    x[0, 0, 0, 1] = np.nan
    out, cache = max_pool2d_forward(x, 2)
    dx = max_pool2d_backward(np.ones_like(out), cache)
    t = torch.tensor(x, requires_grad=True)
    torch.nn.functional.max_pool2d(t, 2).sum().backward()
    np.testing.assert_array_equal(dx, t.grad.numpy())
    assert dx[0, 0, 0, 1] == 1  # the gradient went to the NaN, not nowhere
    with pytest.raises(ParameterError, match="mode='min': choose max or avg"):
        pool2d(x, 2, mode="min")
