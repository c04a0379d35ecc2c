"""The classifier end of a CNN by hand: flatten, dense, activations, softmax, cross-entropy.

Every ``*_forward`` returns (out, cache) and every ``*_backward(dout, cache)`` returns the
gradient of the loss with respect to the inputs (and parameters), given dL/dout.
Weights follow PyTorch's nn.Linear: W (out_features, in_features), so y = x W^T + b.
"""

from __future__ import annotations

import numbers
import operator

import numpy as np

from neuralab.errors import NeuralabError, ParameterError
from neuralab.mechanics.conv import float_dtype
from neuralab.mechanics.shapes import as_array, check_size


def _floats(value, name: str, layout: str = "any shape", ndim: int | None = None) -> np.ndarray:
    """``value`` as a floating array; whole numbers in float64, where int8 logits minus their
    maximum would wrap around and int8 products overflow without a word. Every function here
    makes arrays of its inputs' size, so one over MAX_BYTES (a broadcast view) is refused."""
    a = as_array(value, name, layout, ndim, min_ndim=0)
    check_size(a.shape, float_dtype(a), f"`{name}` as floats", f"give a smaller `{name}`")
    return a.astype(float_dtype(a), copy=False)


def _same_shape(dout, shape, what: str) -> np.ndarray:
    dout = _floats(dout, "dout")
    if dout.shape != tuple(shape):
        raise NeuralabError(f"`dout` of shape {dout.shape}: give dL/dout of the shape of {what}, {tuple(shape)}")
    return dout


def flatten_forward(x):
    """(N, C, H, W) -> (N, C*H*W), row-major like Keras Flatten / torch.flatten(x, 1)."""
    x = as_array(x, "x", "(N, ...), a batch")
    if not x.flags.c_contiguous:  # reshaped, it is a copy
        check_size(x.shape, x.dtype, "the flattened copy of `x`", "give a smaller `x`")
    return x.reshape(x.shape[0], int(np.prod(x.shape[1:]))), x.shape  # -1 is ambiguous when N = 0


def flatten_backward(dout, shape):
    dout = as_array(dout, "dout", "(N, D)")
    if dout.shape != (shape[0], int(np.prod(shape[1:]))):
        raise NeuralabError(f"`dout` of shape {dout.shape}: give dL/dout of the flattened shape "
                            f"{(shape[0], int(np.prod(shape[1:])))}")
    return dout.reshape(shape)


def dense_forward(x, w, b=None):
    """y = x W^T + b.  x (N, D_in), W (D_out, D_in), b (D_out,) -> (N, D_out)."""
    x, w = _floats(x, "x", "(N, D_in)", 2), _floats(w, "w", "(D_out, D_in)", 2)
    if x.shape[1] != w.shape[1]:
        raise NeuralabError(f"`w` of shape {w.shape} takes {w.shape[1]} inputs but `x` of shape {x.shape} has "
                            f"{x.shape[1]}: give `w` as (D_out, D_in), as nn.Linear's weight")
    if b is not None:
        b = _floats(b, "b", f"({w.shape[0]},), one bias per output", 1)
        if b.shape != w.shape[:1]:
            raise NeuralabError(f"`b` of shape {b.shape}: give one bias per row of `w`, shape ({w.shape[0]},)")
    check_size((x.shape[0], w.shape[0]), np.result_type(x, w), "the output (N, D_out)",
               "give fewer samples in `x` or rows in `w`")
    out = x @ w.T
    if b is not None:
        out = out + b
    return out, (x, w, b is not None)


def dense_backward(dout, cache):
    """dx = dout W,  dW = dout^T x,  db = sum_n dout.  Returns (dx, dW, db)."""
    x, w, has_bias = cache
    dout = _same_shape(dout, (x.shape[0], w.shape[0]), "the forward pass's output")
    return dout @ w, dout.T @ x, (dout.sum(axis=0) if has_bias else None)


def relu_forward(x):
    """ReLU(x) = max(0, x)."""
    x = _floats(x, "x")
    return np.maximum(x, 0), x


def relu_backward(dout, x):
    """d ReLU / dx = 1 where x > 0, else 0 (0 at x = 0, as PyTorch)."""
    x = _floats(x, "x")
    dout = _same_shape(dout, x.shape, "the forward pass's input")
    return dout * (x > 0)


def tanh_forward(x):
    """tanh(x) = (e^x - e^-x) / (e^x + e^-x)."""
    out = np.tanh(_floats(x, "x"))
    return out, out


def tanh_backward(dout, out):
    """d tanh / dx = 1 - tanh(x)^2."""
    out = _floats(out, "out")
    dout = _same_shape(dout, out.shape, "the forward pass's output")
    return dout * (1 - out**2)


def sigmoid(x):
    """sigma(x) = 1 / (1 + e^-x), computed without overflow for large |x|."""
    x = _floats(x, "x")
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_forward(x):
    out = sigmoid(x)
    return out, out


def sigmoid_backward(dout, out):
    """d sigma / dx = sigma(x) (1 - sigma(x))."""
    out = _floats(out, "out")
    dout = _same_shape(dout, out.shape, "the forward pass's output")
    return dout * out * (1 - out)


def _scores(z, axis):
    z = _floats(z, "z", "(..., K)")
    if z.ndim == 0:
        raise NeuralabError(f"`z` of shape {z.shape} has 0 axes; give (..., K)")
    try:
        size = z.shape[operator.index(axis)]
    except (TypeError, IndexError):
        raise ParameterError("axis", axis, f"give the axis of the classes, a whole number from {-z.ndim} to {z.ndim - 1}, "
                                           f"for `z` of shape {z.shape}") from None
    if size == 0:
        raise NeuralabError(f"`z` of shape {z.shape} has no classes along axis {axis}; give at least one score")
    return z


def _shifted(z, axis):
    """z - max(z): every score <= 0, so e^{z - max} cannot overflow."""
    # The subtraction itself can, downwards only: -1e308 - 1e308 is -inf. That is harmless and
    # exact: e^-inf = 0 is what e^-2e308 rounds to (and -inf what log softmax is, rounded), as
    # PyTorch gives. An infinite score makes inf - inf = NaN, and the row NaN, as PyTorch's, which
    # says nothing either: the NaN is the answer, and NumPy's warning would point here, not at the score.
    with np.errstate(over="ignore", invalid="ignore"):
        return z - z.max(axis=axis, keepdims=True)


def softmax(z, axis=-1):
    """softmax(z)_k = e^{z_k} / sum_j e^{z_j}; subtracting max(z) first changes nothing but avoids overflow."""
    e = np.exp(_shifted(_scores(z, axis), axis))
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(z, axis=-1):
    """log softmax(z)_k = z_k - log sum_j e^{z_j}."""
    shifted = _shifted(_scores(z, axis), axis)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def softmax_forward(z):
    s = softmax(z)
    return s, s


def softmax_backward(dout, s):
    """dz_k = s_k (dout_k - sum_j dout_j s_j): the softmax Jacobian times dout, row by row."""
    s = _floats(s, "s")
    dout = _same_shape(dout, s.shape, "the forward pass's output")
    return s * (dout - (dout * s).sum(axis=-1, keepdims=True))


def cross_entropy_forward(logits, labels):
    """Mean cross-entropy of softmax(logits) (N, K) against integer labels (N,):

        L = -(1/N) sum_n log softmax(logits_n)[labels_n]

    Softmax and loss together, as Keras' from_logits and nn.CrossEntropyLoss do.
    """
    logits = _floats(logits, "logits", "(N, K), one row of scores per sample", 2)
    n, k = logits.shape
    if n == 0:
        raise NeuralabError(f"`logits` of shape {logits.shape}: the mean loss needs at least one sample")
    logp = log_softmax(logits)
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
    if isinstance(dloss, bool) or not isinstance(dloss, numbers.Real):
        raise ParameterError("dloss", dloss, "give dL/dloss, one real number (1.0 when the loss is L itself)")
    probs, labels = cache
    grad = probs.copy()
    grad[np.arange(len(labels)), labels] -= 1
    return grad * (dloss / len(labels))
