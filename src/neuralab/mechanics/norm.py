"""Batch normalization and dropout by hand, the workshop's two "other useful layers".

Batch norm works per feature: axis 1 of (N, D) after a Dense layer, or of (N, C, H, W) after
a Conv2D (statistics then pool over N, H and W), like nn.BatchNorm1d/2d.
"""

from __future__ import annotations

import numbers

import numpy as np

from neuralab.errors import NeuralabError, ParameterError
from neuralab.mechanics.conv import float_dtype
from neuralab.mechanics.shapes import as_array, check_size


def _stat_axes(x):
    return (0,) + tuple(range(2, x.ndim))  # every axis but the feature axis 1


def _per_feature(v, x):
    return v.reshape((1, -1) + (1,) * (x.ndim - 2))  # (C,) -> broadcastable against x


def batch_norm_forward(x, running_mean, running_var, gamma, beta, training, momentum=0.1, eps=1e-5):
    """y = gamma * (x - mu) / sqrt(var + eps) + beta, per feature.

    training=True:  mu, var are this batch's mean and (biased) variance, and the running
                    statistics move toward them in place:
                        running = (1 - momentum) * running + momentum * batch
                    (running_var gets the unbiased batch variance, as PyTorch does).
    training=False: mu, var are the running statistics (inference mode).
    Same arguments as torch.nn.functional.batch_norm. Returns (y, cache).

    Keras's BatchNormalization(momentum=m) is momentum=1 - m here (its 0.99 is 0.01: a Keras
    momentum typed as it is would keep almost only the last batch); Keras's eps defaults to
    1e-3, and its moving variance is the biased one.
    """
    x = as_array(x, "x", "(N, C) or (N, C, H, W)")
    if x.shape[1] == 0:
        raise NeuralabError(f"`x` of shape {x.shape} has no features on axis 1; give (N, C) or (N, C, H, W), C at least 1")
    check_size(x.shape, float_dtype(x), "the normalised `x`", "give a smaller `x`")
    if not isinstance(training, (bool, np.bool_)):  # "False" or 0.0 would train, as any truthy value
        raise ParameterError("training", training, "give True (batch statistics) or False (running statistics)")
    for name, value in (("momentum", momentum), ("eps", eps)):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ParameterError(name, value, "give a number")
    if not 0 <= momentum <= 1:  # outside, the running statistics overshoot the batch's and diverge
        raise ParameterError("momentum", momentum, "the running statistics' step is from 0 to 1 (PyTorch's default 0.1)")
    if not 0 < eps < np.inf:
        raise ParameterError("eps", eps, "give a small number above 0 (default 1e-5) that keeps the division finite")
    for name, v in (("running_mean", running_mean), ("running_var", running_var), ("gamma", gamma), ("beta", beta)):
        if np.shape(v) != (x.shape[1],):
            raise NeuralabError(f"`{name}` of shape {np.shape(v)}: give one value per feature, shape ({x.shape[1]},), "
                                f"for `x` of shape {x.shape} (features on axis 1)")
    for name, v in (("running_mean", running_mean), ("running_var", running_var)):
        if training and not (isinstance(v, np.ndarray) and np.issubdtype(v.dtype, np.floating)):
            raise NeuralabError(f"`{name}`: give a float NumPy array; training updates it in place")
    gamma, beta = as_array(gamma, "gamma", "(C,)", 1), as_array(beta, "beta", "(C,)", 1)
    # as_array returns a NumPy array itself, not a copy: training updates it in place
    running_mean = as_array(running_mean, "running_mean", "(C,)", 1)
    running_var = as_array(running_var, "running_var", "(C,)", 1)
    if not training and (running_var < 0).any():  # a variance is never negative: a sign slipped somewhere
        raise NeuralabError(f"`running_var` holds {running_var.min():g}: a variance is 0 or more; give the "
                            "layer's running variances (PyTorch's running_var)")
    axes = _stat_axes(x)
    if training:
        m = x.size // x.shape[1]  # values per feature
        if m < 2:  # its variance is 0 and x_hat all zeros; PyTorch refuses it too
            raise NeuralabError(f"`x` of shape {x.shape}: training needs more than one value per feature "
                                "to take a batch's mean and variance; give a batch of 2 or more, or training=False")
        mu, var = x.mean(axis=axes), x.var(axis=axes)
        running_mean *= 1 - momentum
        running_mean += momentum * mu
        running_var *= 1 - momentum
        running_var += momentum * var * m / max(m - 1, 1)
    else:
        mu, var = running_mean, running_var
    inv_std = 1 / np.sqrt(var + eps)
    x_hat = (x - _per_feature(mu, x)) * _per_feature(inv_std, x)
    y = _per_feature(gamma, x) * x_hat + _per_feature(beta, x)
    return y, (x_hat, inv_std, gamma, training)


def batch_norm_backward(dout, cache):
    """Returns (dx, dgamma, dbeta).

        dbeta  = sum dout,   dgamma = sum dout * x_hat
    training:   dx = gamma / sqrt(var + eps) * (dout - mean(dout) - x_hat * mean(dout * x_hat))
                (the batch mean and variance depend on x too, hence the two mean terms)
    inference:  dx = gamma / sqrt(var + eps) * dout
    """
    x_hat, inv_std, gamma, training = cache
    dout = as_array(dout, "dout", str(x_hat.shape), x_hat.ndim)
    if dout.shape != x_hat.shape:
        raise NeuralabError(f"`dout` of shape {dout.shape}: give dL/dy of the forward pass's shape {x_hat.shape}")
    axes = _stat_axes(dout)
    dbeta = dout.sum(axis=axes)
    dgamma = (dout * x_hat).sum(axis=axes)
    scale = _per_feature(gamma * inv_std, dout)
    if not training:
        return scale * dout, dgamma, dbeta
    mean_d = dout.mean(axis=axes, keepdims=True)
    mean_dx = (dout * x_hat).mean(axis=axes, keepdims=True)
    return scale * (dout - mean_d - x_hat * mean_dx), dgamma, dbeta


def dropout_forward(x, rate, training=True, seed=None):
    """Inverted dropout: zero each value with probability ``rate``, scale the rest by 1/(1 - rate).

    The scaling keeps the expected value of every output equal to its input, so prediction
    (training=False) simply passes x through, as the slide says: no dropout after training.
    ``seed`` (an int or a numpy Generator) makes the mask reproducible. Returns (out, mask).
    """
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)) or not 0 <= rate < 1:
        raise NeuralabError(f"`rate` {rate!r}: the dropout rate is a number, 0 <= rate < 1")
    x = as_array(x, "x", "any shape", min_ndim=0)
    check_size(x.shape, np.float64, "the dropout mask", "give a smaller `x`")
    if not training or rate == 0:
        return x, np.ones_like(x)
    try:
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    except (TypeError, ValueError):
        raise NeuralabError(f"`seed` {seed!r}: give a whole number >= 0, a numpy Generator or None") from None
    mask = (rng.random(x.shape) >= rate) / (1 - rate)
    return x * mask, mask


def dropout_backward(dout, mask):
    """Gradient flows only through the kept values, with the same 1/(1 - rate) scale."""
    mask = as_array(mask, "mask", "the shape of the forward pass's `x`", min_ndim=0)
    dout = as_array(dout, "dout", str(mask.shape), min_ndim=0)
    if dout.shape != mask.shape:
        raise NeuralabError(f"`dout` of shape {dout.shape}: give dL/dout of the forward pass's shape {mask.shape}")
    return dout * mask
