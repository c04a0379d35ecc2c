"""The workshop's worked examples, computed by ``neuralab.mechanics`` and printed step by step.

Each example returns a ``Worked`` record: the slide it comes from, the lines to print (every
window, its element-wise products with the kernel, and their sum) and the numeric result
that the tests pin to the slide's numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neuralab.mechanics.conv import correlate2d, pad, windows
from neuralab.mechanics.pooling import pool2d
from neuralab.mechanics.shapes import conv_shape, output_hw

# slide "Hyper-Parameters of Conv2D: filter & kernel - dot product"
DOT_INPUT = np.arange(9).reshape(3, 3)
DOT_KERNEL = np.array([[0, 1], [2, 3]])
# slide "Convolved Feature with filter": the image and its x1/x0 subscripts (the kernel)
BINARY_IMAGE = np.array([[1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1], [0, 0, 1, 1, 0], [0, 1, 1, 0, 0]])
X_KERNEL = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 1]])
# slide "Hyper-Parameters of Conv2D: padding", padded with P = 2
PADDING_IMAGE = np.array([[3, 5, 9, 1, 10], [13, 2, 4, 6, 11], [16, 24, 9, 13, 1], [7, 1, 6, 8, 3], [8, 4, 9, 1, 9]])
# slide "Formulation to compute the output size": the top-left 2x2 of each channel of a
# 5x5 RGB image padded with P = 1 (red as on the slide; green, blue and the three kernels
# and bias 1 from the figure the slide shows), giving the -25 in the "Convolved features"
DEPTH_CORNERS = np.array([[[156, 155], [153, 154]], [[167, 166], [164, 165]], [[163, 162], [160, 161]]])
DEPTH_KERNELS = np.array(
    [[[-1, -1, 1], [0, 1, -1], [0, 1, 1]], [[1, 0, 0], [1, -1, -1], [1, 0, -1]], [[0, 1, 1], [0, 1, 0], [1, -1, 1]]]
)
DEPTH_BIAS = 1


@dataclass
class Worked:
    key: str
    title: str
    slide: str
    result: object
    lines: list[str] = field(default_factory=list)


def _num(v) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.3g}"


def grid(a) -> list[str]:
    """A matrix as right-aligned rows of text."""
    cells = [[_num(v) for v in row] for row in np.asarray(a)]
    width = max(len(c) for row in cells for c in row)
    return [" ".join(c.rjust(width) for c in row) for row in cells]


def beside(*blocks: tuple[str, list[str]], gap: str = "   ") -> list[str]:
    """Put captioned text blocks next to each other: beside(("window", grid(w)), ("kernel", grid(k)))."""
    widths = [max(len(caption), *map(len, rows)) for caption, rows in blocks]
    height = max(len(rows) for _, rows in blocks)
    out = [gap.join(caption.ljust(w) for (caption, _), w in zip(blocks, widths))]
    for i in range(height):
        out.append(gap.join((rows[i] if i < len(rows) else "").ljust(w) for (_, rows), w in zip(blocks, widths)).rstrip())
    return out


def dot_steps(image, kernel, stride=1) -> list[str]:
    """For every output position: the window, the kernel, their element-wise products and the sum."""
    lines, view = [], windows(image, kernel.shape, stride)  # (H_out, W_out, K, K)
    for i, j in np.ndindex(view.shape[:2]):
        window = view[i, j]
        products = window * kernel
        lines += beside((f"window ({i},{j})", grid(window)), ("x kernel", grid(kernel)), ("= products", grid(products)))
        lines.append(f"sum = {' + '.join(_num(p) for p in products.ravel())} = {_num(products.sum())}")
        lines.append("")
    return lines


def dot_product() -> Worked:
    out = correlate2d(DOT_INPUT, DOT_KERNEL)
    lines = beside(("input", grid(DOT_INPUT)), ("kernel", grid(DOT_KERNEL))) + [""] + dot_steps(DOT_INPUT, DOT_KERNEL)
    lines += beside(("output", grid(out)))
    slide = "Hyper-Parameters of Conv2D: filter & kernel - dot product"
    return Worked("dot-product", "Input * kernel = output, one dot product per window", slide, out, lines)


def convolved_feature() -> Worked:
    out = correlate2d(BINARY_IMAGE, X_KERNEL)
    lines = beside(("image", grid(BINARY_IMAGE)), ("kernel (the x1/x0 marks)", grid(X_KERNEL))) + [""]
    lines += dot_steps(BINARY_IMAGE, X_KERNEL) + beside(("convolved feature", grid(out)))
    return Worked("convolved-feature", "A 3x3 kernel over a 5x5 binary image", "Convolved Feature with filter", out, lines)


def stride() -> Worked:
    out = correlate2d(BINARY_IMAGE, X_KERNEL, stride=2)
    lines = ["The same image and kernel with stride (2,2): the window jumps two cells, skipping every other position.", ""]
    lines += dot_steps(BINARY_IMAGE, X_KERNEL, stride=2) + beside(("convolved feature, stride 2", grid(out)))
    return Worked("stride", "Stride (2,2) on the Convolved Feature image", "Hyper-Parameters of Conv2D : stride", out, lines)


def padding() -> Worked:
    out = pad(PADDING_IMAGE, ((2, 2), (2, 2)))
    h, w = PADDING_IMAGE.shape
    lines = beside(("image (W, H) = (5, 5)", grid(PADDING_IMAGE)), ("padding P=2 -> (W + 2P, H + 2P) = (9, 9)", grid(out)))
    lines += ["", "With P=2 a 3x3 kernel meets a corner pixel in 9 windows, as often as a middle one; "
              "'valid' means P=0, 'same' pads so that stride 1 keeps the size."]
    (ho, wo), _ = output_hw((h, w), 3, 1, 2)
    lines.append(f"A 3x3 kernel on the padded image: W_out = (5 - 3 + 2x2)/1 + 1 = {wo}")
    return Worked("padding", "Zero padding with P = 2", "Hyper-Parameters of Conv2D : padding", out, lines)


def depth() -> Worked:
    padded = pad(DEPTH_CORNERS, ((1, 0), (1, 0)))  # the top-left 3x3 window of each padded channel
    products = padded * DEPTH_KERNELS
    sums = products.sum(axis=(1, 2))
    total = sums.sum() + DEPTH_BIAS
    lines = []
    for c, name in enumerate(("red", "green", "blue")):
        lines += beside(
            (f"{name} window", grid(padded[c])), ("x kernel", grid(DEPTH_KERNELS[c])), ("= products", grid(products[c]))
        )
        lines += [f"{name} sum = {_num(sums[c])}", ""]
    terms = " ".join(f"{'-' if s < 0 else '+'} {_num(abs(s))}" for s in sums).lstrip("+ ")
    lines.append(f"output (0,0) = {terms} + bias {DEPTH_BIAS} = {_num(total)}")
    lines.append("One filter spans the whole depth: one kernel per channel, the channel sums added, plus one bias.")
    return Worked("depth", "Depth 3: one filter over an RGB image", "Convolved features", total, lines)


# (W_in, K, P, S) settings the slides use, with what each describes
SIZE_SETTINGS = [
    (3, 2, 0, 1, "dot-product slide"),
    (5, 3, 0, 1, "Convolved Feature slide"),
    (5, 3, 0, 2, "the same with stride (2,2)"),
    (5, 3, 2, 1, "padding slide, P=2, 3x3 kernel"),
    (5, 3, 1, 1, "output-size slide: 5x5 channel, border of zeros, -25 example"),
    (28, 3, 0, 1, "Batch Normalization slide: Conv2D(75, (3,3), strides=1), input 28x28x1"),
    (32, 5, 0, 1, "LeNet-5 slide: first Conv2D(6, (5,5)), input 32x32x1"),
]


def output_size() -> Worked:
    lines, outs = ["W_out = (W_in - K + 2P)/S + 1   (rounded down when not whole)", ""], []
    for n, k, p, s, what in SIZE_SETTINGS:
        (_, out), _ = output_hw((n, n), k, s, p)
        outs.append(out)
        exact = (n - k + 2 * p) / s + 1
        value = f"{out}" if exact == out else f"{_num(exact)} -> floor {out}"
        lines.append(f"W_in={n:>2} K={k} P={p} S={s}: ({n} - {k} + 2x{p})/{s} + 1 = {value}   [{what}]")
    keras = conv_shape((3, 32, 32), 16, 5, 2, "same")
    lines += ["", "Keras Conv2D(16, (5,5), strides=(2,2), padding='same', input_shape=(32,32,3)):"]
    lines += ["  " + x for x in keras.explain()]
    slide = "Formulation to compute the output size"
    return Worked("output-size", "The output-size formula on the slides' settings", slide, outs, lines)


def lenet5() -> Worked:
    """LeNet-5 from the slide's Keras code, layer by layer: the formula chained, and 61,706 parameters."""
    layers = [("conv", 6, 5), ("pool", 2, 2), ("conv", 16, 5), ("pool", 2, 2), ("conv", 120, 5)]
    c, h = 1, 32
    total, lines = 0, [f"{'input':<24} 32x32x1"]
    for kind, n, k in layers:
        if kind == "conv":
            shape = conv_shape((c, h, h), n, k)
            total += shape.params
            c, h = n, shape.out_chw[1]
            formula = f"{c} x ({shape.in_chw[0]} x {k}x{k} + 1) = {shape.params:,}"
            lines.append(f"{f'Conv2D({n}, ({k},{k}))':<24} {h}x{h}x{c}   params {formula}")
        else:
            (h, _), _ = output_hw((h, h), n, k)
            lines.append(f"{'AveragePooling2D((2,2))':<24} {h}x{h}x{c}   params 0")
    c *= h * h
    lines.append(f"{'Flatten()':<24} {c}   params 0")
    for units in (84, 10):
        params = units * (c + 1)
        total += params
        lines.append(f"{f'Dense({units})':<24} {units}   params {units} x ({c} + 1) = {params:,}")
        c = units
    lines.append(f"total parameters = {total:,}  (the slide: 60k)")
    return Worked("lenet5", "LeNet-5 shapes and parameters", "Lenet-5 (1998) by Yann LeCun", total, lines)


def pooling() -> Worked:
    x = PADDING_IMAGE[None, None].astype(float)  # (1, 1, 5, 5)
    mx, av = pool2d(x, 2, mode="max")[0, 0], pool2d(x, 2, mode="avg")[0, 0]
    lines = ["2x2 pooling with stride 2 on the padding slide's 5x5 image: the last row and column",
             "do not fill a window and are dropped.", ""]
    view = windows(PADDING_IMAGE, 2, 2)
    for i, j in np.ndindex(mx.shape):
        lines.append(f"window ({i},{j}) {view[i, j].ravel().tolist()}: max = {_num(mx[i, j])}, average = {_num(av[i, j])}")
    lines += [""] + beside(("max pooling", grid(mx)), ("average pooling", grid(av)))
    return Worked("pooling", "Max and average pooling, 2x2", "Pooling Layer", {"max": mx, "avg": av}, lines)


EXAMPLES = {
    "dot-product": dot_product,
    "convolved-feature": convolved_feature,
    "stride": stride,
    "padding": padding,
    "depth": depth,
    "output-size": output_size,
    "lenet5": lenet5,
    "pooling": pooling,
}


def worked(key: str | None = None) -> list[Worked]:
    """All worked examples, or the one named ``key``."""
    return [f() for k, f in EXAMPLES.items() if key in (None, k)]
