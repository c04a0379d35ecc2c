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

from neuralab.errors import NeuralabError
from neuralab.mechanics.shapes import as_array, check_size, output_hw, pair


def float_dtype(*arrays) -> np.dtype:
    """The dtype a sum of products is computed in: the inputs' own floating type, or float64
    for whole numbers (nine uint8 pixels of 200 summed in uint8 give 8), as PyTorch's conv2d
    takes floats only."""
    dtype = np.result_type(*arrays)
    return dtype if np.issubdtype(dtype, np.inexact) else np.dtype(np.float64)


def sum_dtype(dtype) -> np.dtype:
    """The dtype to add up products in, for results of ``dtype``: float16's 11 bits lose about
    three of the four digits of a 3x3x64 dot product, so float32 at least, as PyTorch sums
    half precision; the result is rounded to ``dtype`` once, at the end."""
    return np.promote_types(dtype, np.float32)


def pad(x: np.ndarray, pads) -> np.ndarray:
    """Zero-pad the last two axes of (..., H, W): pads = ((top, bottom), (left, right))."""
    x = as_array(x, "x", "(..., H, W)")
    try:
        (top, bottom), (left, right) = (pair(p, "pads") for p in pads)
    except (TypeError, ValueError):
        raise NeuralabError(f"`pads` {pads!r}: give ((top, bottom), (left, right)), whole numbers") from None
    if min(top, bottom, left, right) < 0:
        raise NeuralabError(f"`pads` {pads!r}: zeros to add, each at least 0")
    shape = (*x.shape[:-2], x.shape[-2] + top + bottom, x.shape[-1] + left + right)
    check_size(shape, x.dtype, "the padded input", "use less `padding`")
    return np.pad(x, [(0, 0)] * (x.ndim - 2) + [(top, bottom), (left, right)])


def tap(x_pad: np.ndarray, u: int, v: int, out_hw, stride) -> np.ndarray:
    """The (..., H_out, W_out) values that kernel cell (u, v) multiplies, one per window."""
    (ho, wo), (sh, sw) = out_hw, stride
    return x_pad[..., u : u + (ho - 1) * sh + 1 : sh, v : v + (wo - 1) * sw + 1 : sw]


def windows(x: np.ndarray, kernel, stride=1) -> np.ndarray:
    """Every K_h x K_w window of (..., H, W) as a read-only view (..., H_out, W_out, K_h, K_w).

    Handy for showing the windows (the demo); the layers use ``tap`` instead.
    """
    x = as_array(x, "x", "(..., H, W)")
    output_hw(x.shape[-2:], kernel, stride)  # a window larger than the input, a stride below 1: said here
    (kh, kw), (sh, sw) = pair(kernel), pair(stride)
    view = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(-2, -1))
    return view[..., ::sh, ::sw, :, :]


def conv2d_forward(x, w, b=None, stride=1, padding=0):
    """out = conv2d(x, w) + b.  x (N, C, H, W), w (F, C, K_h, K_w), b (F,) -> out (N, F, H_out, W_out).

    ``padding``: "valid", "same" (Keras: odd extra zero at bottom/right), P or (P_h, P_w).
    Whole-number inputs (uint8 pixels) are computed in float64; float16 is summed in float32 and
    returned as float16. Returns (out, cache) for ``conv2d_backward``.
    """
    x, w = as_array(x, "x", "(N, C, H, W)", 4), as_array(w, "w", "(F, C, K_h, K_w)", 4)
    f, c, kh, kw = w.shape
    if x.shape[1] != c:
        raise NeuralabError(f"`w` of shape {w.shape} is for {c} input channel(s) but `x` of shape {x.shape} has "
                            f"{x.shape[1]}: axis 1 of both is the depth C and must agree")
    if b is not None:
        b = as_array(b, "b", f"({f},), one bias per filter", 1)
        if b.shape != (f,):
            raise NeuralabError(f"`b` of shape {b.shape}: give one bias per filter of `w`, shape ({f},)")
    dtype = float_dtype(x, w) if b is None else float_dtype(x, w, b)
    acc = sum_dtype(dtype)
    stride = pair(stride, "stride")
    out_hw, pads = output_hw(x.shape[2:], (kh, kw), stride, padding)
    check_size((x.shape[0], f, *out_hw), acc, "the output (N, F, H_out, W_out)",
               "give fewer images in `x` or filters in `w`, less `padding` or a larger `stride`")
    x_pad = pad(x.astype(dtype, copy=False), pads)
    w_acc = w.astype(acc, copy=False)  # an einsum with it multiplies and sums in acc
    out = np.zeros((x.shape[0], f, *out_hw), dtype=acc)
    for u in range(kh):
        for v in range(kw):
            # (F, C) . (N, C, H_out, W_out) summed over C -> (N, F, H_out, W_out)
            out += np.einsum("fc,nchw->nfhw", w_acc[:, :, u, v], tap(x_pad, u, v, out_hw, stride), optimize=True)
    if b is not None:
        out += b.reshape(1, f, 1, 1)
    return out.astype(dtype, copy=False), (x_pad, w, b is not None, stride, pads, out_hw)


def conv2d_backward(dout, cache):
    """Gradients of a loss L given dL/dout (N, F, H_out, W_out): returns (dx, dw, db).

        dw[f, c, u, v] = sum_{n, i, j} dout[n, f, i, j] * x_pad[n, c, i*S_h + u, j*S_w + v]
        dx_pad[n, c, i*S_h + u, j*S_w + v] += sum_f dout[n, f, i, j] * w[f, c, u, v]
        db[f] = sum_{n, i, j} dout[n, f, i, j]

    dx is dx_pad with the padding cut off (zeros added by padding get no gradient).
    db is None when the layer had no bias. Whole numbers give float64 gradients, float16
    ones are summed in float32, as in the forward pass.
    """
    x_pad, w, has_bias, stride, pads, out_hw = cache
    _, _, kh, kw = w.shape
    dout = as_array(dout, "dout", "(N, F, H_out, W_out)", 4)
    if dout.shape != (x_pad.shape[0], w.shape[0], *out_hw):
        raise NeuralabError(f"`dout` of shape {dout.shape}: give dL/dout of the forward pass's output shape "
                            f"{(x_pad.shape[0], w.shape[0], *out_hw)}")
    dtype = float_dtype(dout, x_pad, w)  # bool or int8 gradients would wrap around or truncate
    acc = sum_dtype(dtype)
    dout, w_acc = dout.astype(acc, copy=False), w.astype(acc, copy=False)
    dx_pad = np.zeros(x_pad.shape, dtype=acc)
    dw = np.zeros(w.shape, dtype=acc)
    for u in range(kh):
        for v in range(kw):
            dw[:, :, u, v] = np.einsum("nfhw,nchw->fc", dout, tap(x_pad, u, v, out_hw, stride), optimize=True)
            tap(dx_pad, u, v, out_hw, stride)[...] += np.einsum("nfhw,fc->nchw", dout, w_acc[:, :, u, v], optimize=True)
    (top, bottom), (left, right) = pads
    dx = dx_pad[:, :, top : x_pad.shape[2] - bottom, left : x_pad.shape[3] - right]
    db = dout.sum(axis=(0, 2, 3)).astype(dtype, copy=False) if has_bias else None
    return dx.astype(dtype, copy=False), dw.astype(dtype, copy=False), db


def correlate2d(image: np.ndarray, kernel: np.ndarray, stride=1, padding=0) -> np.ndarray:
    """One 2-D image (H, W) with one 2-D kernel (K_h, K_w) -> (H_out, W_out): the slides' picture."""
    x = as_array(image, "image", "(H, W)", 2).astype(np.float64)[None, None]
    k = as_array(kernel, "kernel", "(K_h, K_w)", 2).astype(np.float64)[None, None]
    return conv2d_forward(x, k, stride=stride, padding=padding)[0][0, 0]
