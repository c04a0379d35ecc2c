"""How big is the output of a convolution? The workshop's formula, with its fine print.

    W_out = floor((W_in - K + 2P) / S) + 1          (slide "Formulation to compute the output size")

Padding comes in three spellings, as in Keras and PyTorch:
  "valid"  no padding (P = 0);
  "same"   Keras/TensorFlow rule: W_out = ceil(W_in / S) and the zeros needed for that,
           total = max((W_out - 1) * S + K - W_in, 0), split total // 2 on the top/left and
           the rest (one more when total is odd) on the bottom/right;
  P        an integer (or a (P_h, P_w) pair): P zeros on every side.
Sizes are (H, W) pairs; kernels, strides and paddings accept one int for both axes.

The layers check what they are handed here too: ``as_array`` (numbers, the axes the layout
names) and ``check_size`` (no array over MAX_BYTES is ever allocated).
"""

from __future__ import annotations

import math
import numbers
import operator
import sys
from dataclasses import dataclass

import numpy as np

from neuralab.errors import NeuralabError, ParameterError, by

Pads = tuple[tuple[int, int], tuple[int, int]]  # ((top, bottom), (left, right))

# The largest array a mechanics function makes: the lessons' arrays are kilobytes to a few
# hundred megabytes (a 40-megapixel photo in float64 is 320 MB), while a typo in a padding or
# a filter count asks for terabytes, and NumPy would take whatever part of 24 GB it can.
MAX_BYTES = 2 * 2**30


def check_size(shape, dtype, what: str, fix: str) -> None:
    """Refuse, before it is allocated, an array of ``shape`` and ``dtype`` larger than MAX_BYTES.
    ``what`` names the array ("the padded input"), ``fix`` the parameters that shrink it."""
    size = math.prod(shape) * np.dtype(dtype).itemsize
    if size > MAX_BYTES:
        raise NeuralabError(f"{what} would be {by(shape)} values, {size / 2**30:,.1f} GiB, more than "
                            f"the {MAX_BYTES / 2**30:.0f} GiB one array may take here; {fix}")


def as_array(value, name: str, layout: str, ndim: int | None = None, min_ndim: int = 2) -> np.ndarray:
    """``value`` as an array of numbers with the ``ndim`` axes ``layout`` names ("(N, C, H, W)");
    ``ndim`` None: at least ``min_ndim``, by default the last two, (..., H, W). Anything else names ``name``."""
    torch = sys.modules.get("torch")  # a tensor exists only once torch is imported; mechanics never imports it
    if torch is not None and isinstance(value, torch.Tensor):
        # a model's weights and outputs require grad, and NumPy cannot take them (nor a GPU's, nor
        # bfloat16): the arithmetic here is by hand, no graph to keep. On the CPU .numpy() is a view
        # of the tensor's memory, not a copy: read-only, so that nothing here (or a caller of what
        # it returns, dropout's x in prediction) writes into a model's weights behind autograd;
        # batch_norm_forward, which updates its running statistics in place, takes NumPy arrays alone
        value = value.detach().cpu()
        value = (value.float() if value.dtype == torch.bfloat16 else value).numpy()
        value.flags.writeable = False
    try:
        a = np.asarray(value)
    except ValueError:  # nested lists of unequal lengths
        raise NeuralabError(f"`{name}`: its rows are of unequal lengths; give a rectangular array, shape {layout}") from None
    if a.dtype != bool and not np.issubdtype(a.dtype, np.number):
        raise NeuralabError(f"`{name}` holds {a.dtype} values; give numbers, shape {layout}")
    if np.issubdtype(a.dtype, np.complexfloating):  # NumPy runs on, but max, ReLU and a cast to float mean nothing
        raise ParameterError(name, a.dtype.name, f"give real numbers (its .real part or abs()), shape {layout}")
    if (a.ndim != ndim) if ndim is not None else a.ndim < min_ndim:
        hint = {2: "[None, None]", 3: "[None]"}.get(a.ndim) if layout == "(N, C, H, W)" else None
        hint = f" ({name}{hint} makes a batch of one)" if hint else ""
        raise NeuralabError(f"`{name}` of shape {a.shape} has {a.ndim} axes; give {layout}{hint}")
    return a


def pair(value, name: str = "value") -> tuple[int, int]:
    """3 -> (3, 3); (2, 1) -> (2, 1). Each a whole number, as operator.index takes it (NumPy's
    integers, a 0-d integer array or tensor), not True, 2.5, 2.0 or "2": int() would make 2 of 2.5
    and of "2", and the layer would compute with a size not asked for."""
    try:
        a, b = (value, value) if _whole(value) else value
        if _whole(a) and _whole(b):
            return operator.index(a), operator.index(b)
    except (TypeError, ValueError):
        pass
    raise NeuralabError(f"`{name}` {value!r}: give one whole number or a pair of whole numbers, ints such as 2 "
                        "or (2, 1)")


def _whole(value) -> bool:
    # a tensor's True is 1 to operator.index, and its [3] is 3, where NumPy's are refused
    if isinstance(value, (bool, np.bool_)) or str(getattr(value, "dtype", "")).endswith("bool") \
            or getattr(value, "ndim", 0) != 0:
        return False
    try:
        operator.index(value)
    except TypeError:
        return False
    return True


def _check_step(s, name: str) -> None:
    if s < 1:  # a window that never moves: the formula divides by it
        raise ParameterError(name, s, "the stride is the window's step, at least 1")


def same_size(n: int, s: int) -> int:
    """Keras "same" along one axis: W_out = ceil(W_in / S), whatever the kernel."""
    _check_step(s, "s")
    return -(-n // s)


def same_pads(n: int, k: int, s: int) -> tuple[int, int]:
    """Keras "same" along one axis: (before, after), the odd zero going after (bottom/right).
    A dilated kernel passes its span, dilation * (K - 1) + 1, as ``k``."""
    total = max((same_size(n, s) - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def axis_size(n: int, k: int, s: int = 1, pads: int | tuple[int, int] = (0, 0),
              ceil: bool = False) -> tuple[int, str]:
    """The formula along one axis, W_out = floor((W_in - K + P_before + P_after) / S) + 1, and
    the arithmetic as text ("floor((28 - 5 + 2*0) / 1) + 1 = 24").

    ``pads`` is P, as the formula writes it (P zeros before and after), or (P_before, P_after)
    where they differ ("same" with an odd total). ``k`` is the window's span (dilation * (K - 1) + 1 for a dilated kernel). ``ceil`` rounds
    up instead, as pooling with PyTorch's ``ceil_mode``, which never lets the last window
    start in the bottom/right padding. A result below 1 is returned, not refused: the caller
    says which layer it is (``output_hw`` checks its arguments first)."""
    _check_step(s, "s")
    before, after = pair(pads, "pads")
    span = n - k + before + after
    out = (span + (s - 1 if ceil else 0)) // s + 1
    pad = f"2*{before}" if before == after else f"({before}+{after})"
    text = f"{'ceil' if ceil else 'floor'}(({n} - {k} + {pad}) / {s}) + 1 = {out}"
    if ceil and (out - 1) * s >= n + before:
        out -= 1
        text += f" - 1 = {out} (the last window would start in the padding)"
    return out, text


def resolve_padding(padding, in_hw, kernel, stride) -> Pads:
    """"valid" | "same" | P | (P_h, P_w)  ->  ((top, bottom), (left, right))."""
    (h, w), (kh, kw), (sh, sw) = in_hw, pair(kernel, "kernel"), pair(stride, "stride")
    if min(sh, sw) < 1:
        raise NeuralabError(f"`stride` {sh}x{sw}: each step must be at least 1")
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return (0, 0), (0, 0)
        if mode == "same":
            return same_pads(h, kh, sh), same_pads(w, kw, sw)
        if mode.isdecimal() and mode.isascii():  # "²" is a digit to Python, and no number to int()
            padding = int(mode)
        else:
            raise NeuralabError(f"`padding` {padding!r}: allowed are 'valid', 'same' or a whole number >= 0")
    ph, pw = pair(padding, "padding")
    if ph < 0 or pw < 0:
        raise NeuralabError(f"`padding` {padding!r}: must be 'valid', 'same' or a whole number >= 0")
    return (ph, ph), (pw, pw)


def output_hw(in_hw, kernel, stride=1, padding=0, what="kernel") -> tuple[tuple[int, int], Pads]:
    """((H_out, W_out), pads) for a window of ``kernel`` sliding with ``stride``; checks the settings.

    A window (``what``: "kernel", or "size" for pooling) larger than the padded input, or a
    stride below 1, is a NeuralabError that names the option and the allowed range.
    """
    try:
        in_hw = tuple(operator.index(n) for n in in_hw)
    except TypeError:  # 5.5 rows would give a fractional output size
        in_hw = ()
    if len(in_hw) != 2 or min(in_hw) < 0:
        raise NeuralabError("`in_hw`: give the input's (height, width), two whole numbers from 0")
    kh, kw = pair(kernel, what)
    if min(kh, kw) < 1:
        raise NeuralabError(f"`{what}` {kh}x{kw}: each side must be at least 1")
    pads = resolve_padding(padding, in_hw, (kh, kw), stride)  # checks the stride too
    sh, sw = pair(stride, "stride")
    hp, wp = in_hw[0] + sum(pads[0]), in_hw[1] + sum(pads[1])
    if kh > hp or kw > wp:
        raise NeuralabError(
            # pooling takes no padding here: "the padded input" would send the learner looking for it
            f"`{what}` {kh}x{kw} is larger than the {'padded ' if what == 'kernel' or hp + wp > sum(in_hw) else ''}"
            f"input {hp}x{wp}; "
            f"allowed: 1 to {hp} high and 1 to {wp} wide" + (", or more `padding`" if what == "kernel" else "")
        )
    return (axis_size(in_hw[0], kh, sh, pads[0])[0], axis_size(in_hw[1], kw, sw, pads[1])[0]), pads


@dataclass
class ConvShape:
    """A Conv2D layer's output shape, parameter count and the arithmetic behind them (NCHW)."""

    in_chw: tuple[int, int, int]
    filters: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: object
    out_chw: tuple[int, int, int]
    pads: Pads
    bias: bool = True

    @property
    def params(self) -> int:
        """F * (C * K_h * K_w + 1): one weight per input channel and kernel cell, one bias per filter."""
        c, (kh, kw) = self.in_chw[0], self.kernel
        return self.filters * (c * kh * kw + int(self.bias))

    @property
    def multiply_adds(self) -> int:
        """Each output value is one dot product of length C * K_h * K_w."""
        _, ho, wo = self.out_chw
        return self.filters * ho * wo * self.in_chw[0] * self.kernel[0] * self.kernel[1]

    def explain(self) -> list[str]:
        """The formula with the numbers filled in, axis by axis, plus the fine print."""
        c, h, w = self.in_chw
        f, ho, wo = self.out_chw
        lines = [f"input  {h}x{w}x{c} (H x W x depth)  ->  output {ho}x{wo}x{f} (H x W x filters)"]
        for axis, n, k, s, (p0, p1), out in (
            ("H", h, self.kernel[0], self.stride[0], self.pads[0], ho),
            ("W", w, self.kernel[1], self.stride[1], self.pads[1], wo),
        ):
            lines += _explain_axis(axis, n, k, s, p0, p1, out, self.padding)
        kh, kw = self.kernel
        if self.bias:
            lines.append(f"parameters = F x (C x K_h x K_w + 1) = {f} x ({c} x {kh} x {kw} + 1) = {self.params:,}")
        else:
            lines.append(f"parameters = F x C x K_h x K_w (no bias) = {f} x {c} x {kh} x {kw} = {self.params:,}")
        lines.append(f"multiply-adds = F x H_out x W_out x C x K_h x K_w = {self.multiply_adds:,}")
        return lines


def _explain_axis(axis, n, k, s, p0, p1, out, padding) -> list[str]:
    rows, before, after = ("rows", "top", "bottom") if axis == "H" else ("columns", "left", "right")
    lines = []
    if isinstance(padding, str) and padding.lower() == "same":
        total = p0 + p1
        lines.append(
            f'{axis}: "same" wants {axis}_out = ceil({axis}_in / S) = ceil({n}/{s}) = {out}; '
            f"zeros needed = max(({out} - 1) x {s} + {k} - {n}, 0) = {total}"
        )
        if total % 2:
            lines.append(
                f"   {total} is odd: {p0} on the {before}, {p1} on the {after} (Keras/TensorFlow put the extra one there)"
            )
    two_p = f"2x{p0}" if p0 == p1 else f"({p0}+{p1})"
    span = n - k + p0 + p1
    lines.append(
        f"{axis}_out = floor(({axis}_in - K + {'2P' if p0 == p1 else 'P_before + P_after'}) / S) + 1 = "
        f"floor(({n} - {k} + {two_p}) / {s}) + 1 = floor({span}/{s}) + 1 = {out}"
    )
    if s > k and out > 1:  # the windows do not touch: between two, S - K rows are read by none
        gap = f"the {rows[:-1]} between two windows is" if s - k == 1 else f"the {s - k} {rows} between two windows are"
        lines.append(f"   S > K: each window reads {k} of every {s} {rows}, so {gap} read by none")
    dropped = span % s
    if dropped:
        padded = n + p0 + p1
        first = padded - dropped
        real = [i - p0 for i in range(first, padded) if p0 <= i < p0 + n]
        one = rows[:-1]  # "row", "column"
        if dropped == 1:
            what = f"input {one} {real[0]}" if real else "only padding"
            last = f"the last of {padded} padded {rows} ({what}) is never covered and is dropped"
        else:
            what = f"input {_counted(real, one, rows)}" if real else f"only padding {rows}"
            if real and len(real) < dropped:  # the padding after the input is dropped with it
                zeros = dropped - len(real)
                what += f" and {zeros} {one if zeros == 1 else rows} of padding"
            last = f"the last {dropped} of {padded} padded {rows} ({what}) are never covered and are dropped"
        lines.append(f"   {span}/{s} is not whole: the last window ends at padded index {first - 1}, so {last}")
    return lines


def _ranges(idx: list[int]) -> str:
    return str(idx[0]) if len(idx) == 1 else f"{idx[0]}..{idx[-1]}"


def _counted(idx: list[int], one: str, many: str) -> str:
    """Input rows (or columns) by their indices: "row 5", "rows 4..6"."""
    return f"{one} {idx[0]}" if len(idx) == 1 else f"{many} {_ranges(idx)}"


def refuse_channels_last(chw, parameter: str, kernel=None, typed: bool = False, channels: int | None = None) -> None:
    """Refuse a (C, H, W) shape that reads as Keras's (H, W, C): the workshop's 32x32x3 or
    MNIST's 28x28x1 would be 32 (28) channels of 32x3 (28x1) pixels without a word, and a
    padding="same" layer or a network's pooling computes on it. ``kernel`` (a layer's): one 1
    wide on an input 1 wide is a 1-D convolution over (C, T, 1), the order meant.
    ``channels``: what the layer given the input takes (its in_channels), where it says: C of
    them is the order meant, and another number leaves no 1-D reading of its kernel.
    The shape stays the caller's where the order is known (``guess_order=False``).

    ``typed``: ``chw`` was read from sizes typed HxWxC (the command line's --input), where the
    mirror slip is PyTorch's order, the one a summary's header prints: 3x224x224 would be 224
    channels of 3x224 pixels; the refusal names the sizes as typed. There a kernel 1 high on an
    input 1 high is the 1-D convolution, over (C, 1, T)."""
    c, h, w = chw
    if channels is not None:
        if channels == c:
            return
        kernel = None
    if typed:
        if h in (1, 3) and w == c > 4 and not (h == 1 and kernel is not None and pair(kernel, "kernel")[0] == 1):
            raise ParameterError(parameter, f"{h}x{w}x{c}", f"reads as {c} channels of {h}x{w} pixels; it is height "
                                                            f"x width x channels, channels last: give {w}x{c}x{h}")
        return
    if c == h and w in (1, 3) and c > 4 and not (w == 1 and kernel is not None and pair(kernel, "kernel")[1] == 1):
        raise ParameterError(parameter, chw, f"reads as {c} channels of {h}x{w} pixels; give (C, H, W), channels "
                                             f"first: ({w}, {c}, {h}), not Keras's (H, W, C); if you mean {c} "
                                             f"channels of {h}x{w}, pass guess_order=False")


def conv_shape(in_chw, filters: int, kernel, stride=1, padding="valid", bias: bool = True,
               guess_order: bool = True) -> ConvShape:
    """Output shape and parameter count of Conv2D(filters, kernel, stride, padding) on a (C, H, W) input.

    ``guess_order`` False: ``in_chw`` is (C, H, W) for sure (the command line's, which parsed
    HxWxC itself), and neither refusal nor hint guesses at Keras's (H, W, C)."""
    if not isinstance(filters, numbers.Integral) or isinstance(filters, bool) or filters < 1:
        raise NeuralabError(f"`filters` {filters!r}: give a whole number, at least 1")
    try:
        c, h, w = (operator.index(n) for n in in_chw)
    except (TypeError, ValueError):
        raise NeuralabError(f"`in_chw` {in_chw!r}: give (depth, height, width), three whole numbers") from None
    if min(c, h, w) < 1:
        raise NeuralabError(f"`in_chw` {in_chw!r}: depth, height and width must each be at least 1")
    if guess_order:
        refuse_channels_last((c, h, w), "in_chw", kernel)
    try:
        (ho, wo), pads = output_hw((h, w), kernel, stride, padding)
    except NeuralabError as e:
        if not guess_order or w > 4 or not _fits((c, h), kernel, stride, padding):
            raise
        # a 480x640x3 photo given in the workshop's order: the kernel fits it, not 640x3 pixels
        raise NeuralabError(f"{e.args[0]}; `in_chw` is (depth, height, width), so {in_chw!r} is {h}x{w} pixels "
                            f"{c} deep: a {c}x{h} picture of depth {w} is ({w}, {c}, {h})") from None
    return ConvShape((c, h, w), filters, pair(kernel), pair(stride), padding, (filters, ho, wo), pads, bias)


def _fits(in_hw, kernel, stride, padding) -> bool:
    try:
        output_hw(in_hw, kernel, stride, padding)
    except NeuralabError:
        return False
    return True
