"""The convolution playground's arithmetic: one request, one kernel (or pooling window) slid
over a grayscale picture by ``neuralab.mechanics``, answered with the output picture, the
output-size formula filled in, and a small crop with every window's numbers for the step view.
"""

from __future__ import annotations

import numpy as np

from neuralab.errors import ParameterError, Shown
from neuralab.mechanics import KERNELS, conv_shape, correlate2d, pad, parse_kernel, pool2d
from neuralab.mechanics.kernels import ALIASES, default_scale, to_uint8
from neuralab.web.images import png_url
from neuralab.web.inputs import choice, text, whole

STEP_MAX_KERNEL = 7   # the step view shows windows up to 7 x 7
STEP_MAX_CELLS = 12   # and crops up to 12 x 12 input cells
MAX_STRIDE = 8
MAX_PADDING = 8
MAX_POOL = 16
# A pooling window's stride reaches its largest size: the stride follows the window, as in
# Keras, and the page sets it so (capped at MAX_STRIDE, sizes 9 to 16 were refused by default).
MAX_POOL_STRIDE = MAX_POOL
# The settings' ranges, [lowest, highest], as the page reads them (GET /api/kernels), so that it
# offers what run() takes: "stride" for a kernel, "pool_stride" for a pooling window.
LIMITS = {"stride": [1, MAX_STRIDE], "pool_stride": [1, MAX_POOL_STRIDE], "padding": [0, MAX_PADDING],
          "size": [1, MAX_POOL]}
SCALE_WORDS = {"clip": "values clipped to 0..255", "abs": "|value| clipped to 0..255",
               "minmax": "stretched: minimum black, maximum white"}


def kernel_from(spec) -> tuple[str, np.ndarray]:
    """A KERNELS name (or alias) or typed numbers. Unlike ``get_kernel`` this never opens a
    file: the text comes from a browser."""
    spec = text("kernel", spec)
    name = ALIASES.get(spec.strip().lower(), spec.strip().lower())
    if name in KERNELS:
        return name, KERNELS[name].copy()
    return "custom", parse_kernel(spec, "kernel")


def _padding(value):
    if isinstance(value, str) and value.lower() in ("valid", "same"):
        return value.lower()
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PADDING:
        raise ParameterError("padding", Shown(value), f"allowed are valid, same or a whole number from 0 to {MAX_PADDING}")
    return value


def _pixel(at, h: int, w: int) -> tuple[int, int]:
    """``at`` as (row, column) of one of the h x w input's pixels."""
    where = f"give [row, column] of a pixel of the {h} x {w} input: row 0 to {h - 1}, column 0 to {w - 1}"
    if not isinstance(at, list) or len(at) != 2:
        raise ParameterError("at", Shown(at), where)
    for value in at:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParameterError("at", Shown(value), f"must be a whole number; {where}")
    if not (0 <= at[0] < h and 0 <= at[1] < w):
        raise ParameterError("at", Shown(at), where)
    return at[0], at[1]


def run(image: np.ndarray, op="conv", kernel="sobel-x", stride=1, padding="valid", size=2,
        scale="auto", at=None) -> dict:
    """Apply ``op`` ("conv", "max" or "avg") to the grayscale uint8 ``image`` (H, W).

    ``scale`` turns values into grey levels: "auto" (``default_scale``: |value| for kernels summing
    to 0, clipped for those summing to about 1, else stretched), "clip", "abs" or "minmax". ``at`` (row, column) of the input picks where the step
    view's crop sits (default: where the output is strongest). The settings come as JSON gave
    them: a bad type or value raises a ParameterError naming the setting and what is allowed."""
    op = choice("op", op, ("conv", "max", "avg"))
    scale = choice("scale", scale, ("auto", *SCALE_WORDS))
    stride = whole("stride", stride, 1, MAX_STRIDE if op == "conv" else MAX_POOL_STRIDE)
    x = image.astype(np.float64)
    h, w = x.shape
    if at is not None:
        at = _pixel(at, h, w)
    if op == "conv":
        name, k = kernel_from(kernel)
        padding = _padding(padding)
        shape = conv_shape((1, h, w), 1, k.shape, stride, padding)  # checks the kernel fits
        values = correlate2d(x, k, stride, padding)
        scale = default_scale(k) if scale == "auto" else scale
        lines = shape.explain()
        window, pads = k.shape, shape.pads
    else:
        side = whole("size", size, 1, MAX_POOL)
        name, k = f"{op} pooling", None
        shape = conv_shape((1, h, w), 1, side, stride, "valid")
        values = pool2d(x[None, None], side, stride, op)[0, 0]
        scale = "clip" if scale == "auto" else scale
        lines = [f"input {h}x{w}  ->  output {values.shape[0]}x{values.shape[1]} "
                 f"({op} of each {side}x{side} window; pooling has no weights and keeps the depth)"]
        lines += [line for line in shape.explain()[1:] if not line.startswith(("parameters", "multiply"))]
        window, pads = (side, side), ((0, 0), (0, 0))
    ho, wo = values.shape
    return {
        "op": op,
        "kernel_name": name,
        "kernel": None if k is None else k.tolist(),
        "input": {"url": png_url(image), "h": h, "w": w},
        "output": {"url": png_url(to_uint8(values, scale)), "h": ho, "w": wo,
                   "min": float(values.min()), "max": float(values.max()), "scale": SCALE_WORDS[scale]},
        "size": f"{ho} x {wo}",
        "formula": lines,
        "step": step_view(x, values, window, stride, pads, op, at),
    }


def step_view(x: np.ndarray, values: np.ndarray, window, stride: int, pads, op: str, at) -> dict | None:
    """A crop of the padded input holding up to 4 x 4 whole windows around ``at``, with the
    output values those windows give (taken from the full result, so the two always agree)."""
    kh, kw = window
    if max(kh, kw) > STEP_MAX_KERNEL:
        return None
    ho, wo = values.shape
    (top, _), (left, _) = pads
    if at is None:  # where the output is strongest: the window worth looking at
        i, j = np.unravel_index(np.abs(values).argmax(), values.shape)
        at = (i * stride - top + kh // 2, j * stride - left + kw // 2)
    row, col = at
    cells = []
    for n_out, k, centre, before in ((ho, kh, row, top), (wo, kw, col, left)):
        m = max(1, min(4, n_out, (STEP_MAX_CELLS - k) // stride + 1))  # windows along this axis
        first = min(max((int(centre) + before) // stride - m // 2, 0), n_out - m)
        cells.append((first, m))
    (i0, mi), (j0, mj) = cells
    padded = pad(x, pads)
    r0, c0 = i0 * stride, j0 * stride
    crop = padded[r0:r0 + (mi - 1) * stride + kh, c0:c0 + (mj - 1) * stride + kw]
    return {
        "op": op,
        "crop": crop.tolist(),
        "crop_origin": [r0 - top, c0 - left],  # the crop's top-left in input coordinates (< 0: padding)
        "window": [kh, kw],
        "stride": stride,
        "out_origin": [i0, j0],
        "out": values[i0:i0 + mi, j0:j0 + mj].tolist(),
    }
