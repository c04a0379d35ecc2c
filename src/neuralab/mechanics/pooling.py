"""Pooling by hand: max and average over each window, forward and backward (NCHW).

    max:  out[n, c, i, j] = max_{u, v}  x[n, c, i*S + u, j*S + v]
    avg:  out[n, c, i, j] = mean_{u, v} x[n, c, i*S + u, j*S + v]

No weights; the stride defaults to the window size (Keras MaxPool2D((2, 2)) and PyTorch alike),
and rows/columns that do not fill a whole window are dropped (floor), as in both libraries.
"""

from __future__ import annotations

import numpy as np

from neuralab.errors import NeuralabError, ParameterError
from neuralab.mechanics.conv import float_dtype, sum_dtype, tap
from neuralab.mechanics.shapes import as_array, check_size, output_hw, pair


def _setup(x, size, stride):
    x = as_array(x, "x", "(N, C, H, W)")
    size = pair(size, "size")
    stride = size if stride is None else pair(stride, "stride")
    out_hw, _ = output_hw(x.shape[-2:], size, stride, "valid", what="size")
    # the backward pass's dx has x's shape: a broadcast view of terabytes is refused here, not there
    check_size(x.shape, sum_dtype(float_dtype(x)), "the gradient dx, of the shape of `x`,", "give a smaller `x`")
    return x, size, stride, out_hw


def _dout(dout, shape):
    dout = as_array(dout, "dout", "(N, C, H_out, W_out)")
    if dout.shape != shape:
        raise NeuralabError(f"`dout` of shape {dout.shape}: give dL/dout of the forward pass's output shape {shape}")
    return dout


def max_pool2d_forward(x, size=2, stride=None):
    """(N, C, H, W) -> (N, C, H_out, W_out), the largest value of each window; returns (out, cache)."""
    x, (kh, kw), stride, out_hw = _setup(x, size, stride)
    out = tap(x, 0, 0, out_hw, stride).copy()
    for u in range(kh):
        for v in range(kw):
            np.maximum(out, tap(x, u, v, out_hw, stride), out=out)
    return out, (x, out, (kh, kw), stride, out_hw)


def max_pool2d_backward(dout, cache):
    """dx: each window's gradient goes to the one input that was its maximum (the first, on ties)."""
    x, out, (kh, kw), stride, out_hw = cache
    dout = _dout(dout, out.shape)
    dx = np.zeros(x.shape, dtype=float_dtype(x, dout))  # bool or uint8 would wrap where windows overlap
    taken = np.zeros(out.shape, dtype=bool)  # window already routed its gradient
    for u in range(kh):
        for v in range(kw):
            cell = tap(x, u, v, out_hw, stride)
            winner = ((cell == out) | (np.isnan(cell) & np.isnan(out))) & ~taken  # NaN is a window's maximum, as in PyTorch
            taken |= winner
            tap(dx, u, v, out_hw, stride)[...] += np.where(winner, dout, 0)
    return dx


def avg_pool2d_forward(x, size=2, stride=None):
    """(N, C, H, W) -> (N, C, H_out, W_out), the mean of each window; returns (out, cache).
    Whole numbers (uint8 pixels) are averaged in float64: summed in uint8 they would wrap around;
    float16 is summed in float32 and returned as float16."""
    x, (kh, kw), stride, out_hw = _setup(x, size, stride)
    dtype = float_dtype(x)
    out = np.zeros(x.shape[:-2] + out_hw, dtype=sum_dtype(dtype))
    for u in range(kh):
        for v in range(kw):
            out += tap(x, u, v, out_hw, stride)
    return (out / (kh * kw)).astype(dtype, copy=False), (x.shape, (kh, kw), stride, out_hw)


def avg_pool2d_backward(dout, cache):
    """dx: each window shares its gradient equally, dout / (K_h * K_w), among its cells."""
    shape, (kh, kw), stride, out_hw = cache
    dout = _dout(dout, shape[:-2] + out_hw)
    dtype = float_dtype(dout)
    dx = np.zeros(shape, dtype=sum_dtype(dtype))
    for u in range(kh):
        for v in range(kw):
            tap(dx, u, v, out_hw, stride)[...] += dout / (kh * kw)
    return dx.astype(dtype, copy=False)


def pool2d(x, size=2, stride=None, mode="max"):
    """Forward only, "max" or "avg": the shortcut the CLI and the demo use."""
    forwards = {"max": max_pool2d_forward, "avg": avg_pool2d_forward}
    if not isinstance(mode, str) or mode not in forwards:
        raise ParameterError("mode", mode, "choose max or avg")
    return forwards[mode](x, size, stride)[0]
