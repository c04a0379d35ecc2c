"""Checking a backward pass by hand: central finite differences, the way to trust a gradient.

    df/da_i ~ (f(a + eps e_i) - f(a - eps e_i)) / (2 eps)      error O(eps^2)
"""

from __future__ import annotations

import numbers

import numpy as np

from neuralab.errors import NeuralabError, ParameterError
from neuralab.mechanics.shapes import as_array


def numeric_gradient(f, a: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """The gradient of the scalar ``f()`` with respect to every entry of ``a``, which f reads.

    Each entry is nudged up and down in place and restored; two calls of f per entry, so
    keep ``a`` small. ``a`` must be float64, as for PyTorch's gradcheck: in an integer array the
    nudge is rounded away (every gradient would read 0), in float32 mostly so.
    """
    if not (isinstance(a, np.ndarray) and a.dtype == np.float64):
        raise NeuralabError(f"`a` of type {getattr(a, 'dtype', type(a).__name__)}: give a float64 NumPy array "
                            "(a.astype(np.float64)) that f reads, so that a nudge of `eps` is not rounded away")
    if not a.flags.writeable:  # a broadcast view: one entry nudged would be every entry
        raise NeuralabError("`a` is read-only (a view such as np.broadcast_to gives); give a writable copy, a.copy()")
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not 0 < eps < np.inf:
        raise ParameterError("eps", eps, "give the nudge, a small number above 0 such as 1e-6")
    grad = np.zeros_like(a, dtype=np.float64)
    for i in np.ndindex(a.shape):
        old = a[i]
        a[i] = old + eps
        up = _loss(f)
        a[i] = old - eps
        down = _loss(f)
        a[i] = old
        grad[i] = (up - down) / (2 * eps)
    return grad


def _loss(f) -> float:
    value = f()
    if np.ndim(value) != 0 or np.iscomplexobj(value):
        raise NeuralabError(f"`f` returned {type(value).__name__} of shape {np.shape(value)}: give a function that "
                            "returns one real number, the loss, such as (out * dout).sum()")
    return float(value)


def relative_error(actual, expected) -> float:
    """max |actual - expected| / max |expected|: 1e-7 or less means the two agree."""
    actual = as_array(actual, "actual", "any shape", min_ndim=0).astype(np.float64)
    expected = as_array(expected, "expected", "any shape", min_ndim=0).astype(np.float64)
    if actual.shape != expected.shape:
        raise NeuralabError(f"`actual` of shape {actual.shape} and `expected` of shape {expected.shape}: give two "
                            "arrays of the same shape")
    scale = max(float(np.abs(expected).max(initial=0)), 1e-12)
    return float(np.abs(actual - expected).max(initial=0)) / scale
