"""Conv2D by hand: the kernel's dot product with every window of the input, forward and backward.

Layout is NCHW, as in PyTorch: x (N, C, H, W), weights w (F, C, K_h, K_w), bias b (F,).
Like every deep-learning library (and the workshop's slides) this is cross-correlation:
the kernel is not flipped.

    out[n, f, i, j] = b[f] + sum_{c, u, v} w[f, c, u, v] * x_pad[n, c, i*S_h + u, j*S_w + v]

Vectorised "one kernel tap at a time": for each of the K_h*K_w cells (u, v) of the kernel,
the strided slice x_pad[:, :, u::S_h, v::S_w] holds the input value that cell meets in
every window at once, so the loop runs over kernel cells, never over pixels. Summing the
taps gives exactly what im2col + one matrix product gives, with memory the size of the output.
"""

from __future__ import annotations

import numpy as np

from neuralab.mechanics.shapes import output_hw, pair


def pad(x: np.ndarray, pads) -> np.ndarray:
    """Zero-pad the last two axes of (..., H, W): pads = ((top, bottom), (left, right))."""
    return np.pad(x, [(0, 0)] * (x.ndim - 2) + [tuple(pads[0]), tuple(pads[1])])


def tap(x_pad: np.ndarray, u: int, v: int, out_hw, stride) -> np.ndarray:
    """The (..., H_out, W_out) values that kernel cell (u, v) multiplies, one per window."""
    (ho, wo), (sh, sw) = out_hw, stride
    return x_pad[..., u : u + (ho - 1) * sh + 1 : sh, v : v + (wo - 1) * sw + 1 : sw]


def windows(x: np.ndarray, kernel, stride=1) -> np.ndarray:
    """Every K_h x K_w window of (..., H, W) as a read-only view (..., H_out, W_out, K_h, K_w).

    Handy for showing the windows (the demo); the layers use ``tap`` instead.
    """
    (kh, kw), (sh, sw) = pair(kernel), pair(stride)
    view = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(-2, -1))
    return view[..., ::sh, ::sw, :, :]


def conv2d_forward(x, w, b=None, stride=1, padding=0):
    """out = conv2d(x, w) + b.  x (N, C, H, W), w (F, C, K_h, K_w), b (F,) -> out (N, F, H_out, W_out).

    ``padding``: "valid", "same" (Keras: odd extra zero at bottom/right), P or (P_h, P_w).
    Returns (out, cache) for ``conv2d_backward``.
    """
    f, _, kh, kw = w.shape
    stride = pair(stride, "stride")
    out_hw, pads = output_hw(x.shape[2:], (kh, kw), stride, padding)
    x_pad = pad(x, pads)
    out = np.zeros((x.shape[0], f, *out_hw), dtype=np.result_type(x, w))
    for u in range(kh):
        for v in range(kw):
            # (F, C) . (N, C, H_out, W_out) summed over C -> (N, F, H_out, W_out)
            out += np.einsum("fc,nchw->nfhw", w[:, :, u, v], tap(x_pad, u, v, out_hw, stride), optimize=True)
    if b is not None:
        out += b.reshape(1, f, 1, 1)
    return out, (x_pad, w, b is not None, stride, pads, out_hw)


def conv2d_backward(dout, cache):
    """Gradients of a loss L given dL/dout (N, F, H_out, W_out): returns (dx, dw, db).

        dw[f, c, u, v] = sum_{n, i, j} dout[n, f, i, j] * x_pad[n, c, i*S_h + u, j*S_w + v]
        dx_pad[n, c, i*S_h + u, j*S_w + v] += sum_f dout[n, f, i, j] * w[f, c, u, v]
        db[f] = sum_{n, i, j} dout[n, f, i, j]

    dx is dx_pad with the padding cut off (zeros added by padding get no gradient).
    db is None when the layer had no bias.
    """
    x_pad, w, has_bias, stride, pads, out_hw = cache
    _, _, kh, kw = w.shape
    dx_pad = np.zeros(x_pad.shape, dtype=np.result_type(dout, w))
    dw = np.zeros_like(w, dtype=np.result_type(dout, w))
    for u in range(kh):
        for v in range(kw):
            dw[:, :, u, v] = np.einsum("nfhw,nchw->fc", dout, tap(x_pad, u, v, out_hw, stride), optimize=True)
            tap(dx_pad, u, v, out_hw, stride)[...] += np.einsum("nfhw,fc->nchw", dout, w[:, :, u, v], optimize=True)
    (top, bottom), (left, right) = pads
    dx = dx_pad[:, :, top : x_pad.shape[2] - bottom, left : x_pad.shape[3] - right]
    db = dout.sum(axis=(0, 2, 3)) if has_bias else None
    return dx, dw, db


def correlate2d(image: np.ndarray, kernel: np.ndarray, stride=1, padding=0) -> np.ndarray:
    """One 2-D image (H, W) with one 2-D kernel (K_h, K_w) -> (H_out, W_out): the slides' picture."""
    x = np.asarray(image, dtype=np.float64)[None, None]
    k = np.asarray(kernel, dtype=np.float64)[None, None]
    return conv2d_forward(x, k, stride=stride, padding=padding)[0][0, 0]
