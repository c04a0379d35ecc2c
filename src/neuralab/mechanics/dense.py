"""The classifier end of a CNN by hand: flatten, dense, activations, softmax, cross-entropy.

Every ``*_forward`` returns (out, cache) and every ``*_backward(dout, cache)`` returns the
gradient of the loss with respect to the inputs (and parameters), given dL/dout.
Weights follow PyTorch's nn.Linear: W (out_features, in_features), so y = x W^T + b.
"""

from __future__ import annotations

import numpy as np

from neuralab.errors import NeuralabError


def flatten_forward(x):
    """(N, C, H, W) -> (N, C*H*W), row-major like Keras Flatten / torch.flatten(x, 1)."""
    return x.reshape(x.shape[0], -1), x.shape


def flatten_backward(dout, shape):
    return dout.reshape(shape)


def dense_forward(x, w, b=None):
    """y = x W^T + b.  x (N, D_in), W (D_out, D_in), b (D_out,) -> (N, D_out)."""
    out = x @ w.T
    if b is not None:
        out = out + b
    return out, (x, w, b is not None)


def dense_backward(dout, cache):
    """dx = dout W,  dW = dout^T x,  db = sum_n dout.  Returns (dx, dW, db)."""
    x, w, has_bias = cache
    return dout @ w, dout.T @ x, (dout.sum(axis=0) if has_bias else None)


def relu_forward(x):
    """ReLU(x) = max(0, x)."""
    return np.maximum(x, 0), x


def relu_backward(dout, x):
    """d ReLU / dx = 1 where x > 0, else 0 (0 at x = 0, as PyTorch)."""
    return dout * (x > 0)


def tanh_forward(x):
    """tanh(x) = (e^x - e^-x) / (e^x + e^-x)."""
    out = np.tanh(x)
    return out, out


def tanh_backward(dout, out):
    """d tanh / dx = 1 - tanh(x)^2."""
    return dout * (1 - out**2)


def sigmoid(x):
    """sigma(x) = 1 / (1 + e^-x), computed without overflow for large |x|."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_forward(x):
    out = sigmoid(x)
    return out, out


def sigmoid_backward(dout, out):
    """d sigma / dx = sigma(x) (1 - sigma(x))."""
    return dout * out * (1 - out)


def softmax(z, axis=-1):
    """softmax(z)_k = e^{z_k} / sum_j e^{z_j}; subtracting max(z) first changes nothing but avoids overflow."""
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(z, axis=-1):
    """log softmax(z)_k = z_k - log sum_j e^{z_j}."""
    shifted = z - z.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def softmax_forward(z):
    s = softmax(z)
    return s, s


def softmax_backward(dout, s):
    """dz_k = s_k (dout_k - sum_j dout_j s_j): the softmax Jacobian times dout, row by row."""
    return s * (dout - (dout * s).sum(axis=-1, keepdims=True))


def cross_entropy_forward(logits, labels):
    """Mean cross-entropy of softmax(logits) (N, K) against integer labels (N,):

        L = -(1/N) sum_n log softmax(logits_n)[labels_n]

    Softmax and loss together, as Keras' from_logits and nn.CrossEntropyLoss do.
    """
    logp = log_softmax(logits)
    n, k = logits.shape
    labels = np.asarray(labels)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise NeuralabError(f"`labels` of shape {labels.shape} and type {labels.dtype}: give one class index per "
                            f"row of `logits`, whole numbers, shape ({n},)")
    outside = labels[(labels < 0) | (labels >= k)]
    if outside.size:  # -1 would silently pick the last class, as NumPy indexes from the end
        raise NeuralabError(f"`labels` holds {outside[0]}: class indices go from 0 to {k - 1}, one per column of `logits`")
    return -logp[np.arange(n), labels].mean(), (np.exp(logp), labels)


def cross_entropy_backward(cache, dloss=1.0):
    """dL/dlogits = (softmax(logits) - one_hot(labels)) / N."""
    probs, labels = cache
    grad = probs.copy()
    grad[np.arange(len(labels)), labels] -= 1
    return grad * (dloss / len(labels))
