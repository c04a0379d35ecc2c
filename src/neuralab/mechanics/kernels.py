"""The classic hand-made kernels of the workshop's filter slides, and applying them to pictures.

A trained CNN learns its kernels; these are the ones people designed by hand, and the
first-layer filters of a trained network often end up resembling them (``closest_kernels``).
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import numpy as np

from neuralab.errors import NeuralabError, ParameterError
from neuralab.files import marked_encoding
from neuralab.mechanics.conv import conv2d_forward
from neuralab.mechanics.shapes import as_array, check_size, resolve_padding

KERNELS: dict[str, np.ndarray] = {
    "identity": np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]], float),
    "box-blur": np.full((3, 3), 1 / 9),  # slide "Blur filter": every cell 1/9
    "gaussian": np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], float) / 16,
    "sharpen": np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], float),  # slide "Sharp filter"
    # slide "Edge detection": sobel-x is its "Vertical" kernel (d/dx, finds vertical edges),
    # sobel-y its "Horizontal" one (d/dy, finds horizontal edges)
    "sobel-x": np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], float),
    "sobel-y": np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], float),
    "laplacian": np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], float),
    "emboss": np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], float),
}
ALIASES = {"blur": "box-blur", "sharp": "sharpen", "vertical": "sobel-x", "horizontal": "sobel-y"}
MAX_KERNEL_SIDE = 31  # a custom kernel larger than this is almost surely a typo
# Pixels are 0..255 and a window holds at most 31 x 31 of them, so a weight up to 1e6 keeps
# every sum below 1e12, exact enough in float64; far larger weights overflow to infinity.
MAX_KERNEL_VALUE = 1e6


def _number_pattern(digits: str, exponent: str) -> re.Pattern:
    """A kernel value as typed: a decimal or a fraction of two ("1/9", "-0.5", "2e-3")."""
    decimal = rf"[+-]?(?:\d{{1,{digits}}}(?:\.\d{{0,{digits}}})?|\.\d{{1,{digits}}})(?:[eE][+-]?\d{{1,{exponent}}})?"
    return re.compile(f"{decimal}(?:/{decimal})?")


# At most 20 digits before and after the point and exponents of 3 digits: Fraction alone would
# take "1e10000000" and spend a minute building 10**10000000 first.
_NUMBER = _number_pattern("20", "3")
_ANY_LENGTH = _number_pattern("", "")  # the same without limits, to say what is wrong


def parse_kernel(text: str, source: str = "`kernel`") -> np.ndarray:
    """'1,0,-1; 2,0,-2; 1,0,-1' -> 3x3 array.  Rows end at ';' or a new line; values are
    separated by commas or spaces and may be fractions like 1/9. ``source``: what errors name, the
    parameter (marked, which the command line says as its flag) or a file."""
    if not isinstance(text, str):
        raise ParameterError("text", text, "give the kernel as text, rows split by ';', e.g. '1,0,-1;2,0,-2;1,0,-1'")
    example = "give rows of numbers split by ';', e.g. '1,0,-1;2,0,-2;1,0,-1'"
    _refuse_decimal_commas(text, source)
    # a spreadsheet's export ends rows with commas where its used range is wider, and adds rows
    # of commas alone: those are no values; an old Mac's ends its lines with a CR alone
    lines = (row.rstrip().rstrip(",") for line in text.splitlines() for row in line.split(";"))
    rows = [r for r in lines if r.strip()]
    for i, row in enumerate(rows, 1):
        # split() alone drops the empty value of "-1,,1": a narrower kernel than the one meant
        if "," in row and not all(field.strip() for field in row.split(",")):
            raise NeuralabError(f"{source}: row {i} {row.strip()[:60]!r} has an empty value; every comma "
                                "stands between two numbers, e.g. '1,0,-1;2,0,-2;1,0,-1'")
        if "," in row and any(len(field.split()) > 1 for field in row.split(",")):  # '0,0625<TAB>0,125': decimal commas
            raise NeuralabError(f"{source}: row {i} {row.strip()[:60]!r} splits its numbers both by commas and by "
                                f"spaces (decimal commas?); split them by one of the two, with '.' for decimals")
    values = [[_number(v, source, example) for v in r.replace(",", " ").split()] for r in rows]
    if not values or any(len(r) != len(values[0]) for r in values):
        raise NeuralabError(f"{source}: {text.strip()[:60]!r} is not a rectangle of numbers; {example}")
    if max(len(values), len(values[0])) > MAX_KERNEL_SIDE:
        raise NeuralabError(f"{source}: {len(values)}x{len(values[0])} is too large; sides from 1 to {MAX_KERNEL_SIDE}")
    return np.array(values)


def _refuse_decimal_commas(text: str, source: str) -> None:
    """Refuse the text a spreadsheet writes where its decimal mark is a comma: its CSV splits
    values by ';', one row a line ('0;1;0', '0,5;0,25'). Read with ';' ending rows, the command
    line's rule, it gave a tall kernel of one column, or '0,5' as the values 0 and 5, silently.
    Only text of several lines whose ';' fields are each one number, or one comma's pair, is
    refused: rows of the command line's form over several lines ('1,0,-1; 2,0,-2;') read as ever."""
    lines = [line.strip().rstrip(";").strip() for line in text.splitlines()]
    lines = [line for line in lines if line.strip(";, \t")]
    if len(lines) < 2:
        return
    for n, line in enumerate(lines, 1):
        fields = [f.strip() for f in line.split(";")]
        if len(fields) < 2 or not all(fields):
            continue
        if all(len(f.split()) == 1 and f.count(",") <= 1 for f in fields):
            raise NeuralabError(f"{source}: line {n} {line[:60]!r} splits its numbers by ';' (a spreadsheet's CSV "
                                "where the decimal mark is a comma?); in text of several lines give one row a line, "
                                "its numbers split by commas or spaces, with '.' for decimals: '0.5 1 0.5'")


def _number(text: str, source: str, example: str) -> float:
    if not _NUMBER.fullmatch(text) and _ANY_LENGTH.fullmatch(text):
        raise NeuralabError(f"{source}: {text[:20]!r}{'...' if len(text) > 20 else ''} has too many digits; "
                            "at most 20 before and after the point, and exponents of at most 3")
    try:
        if not _NUMBER.fullmatch(text):
            raise ValueError(text)
        value = float(Fraction(text))
    except (ValueError, ZeroDivisionError):
        raise NeuralabError(f"{source}: {text[:20]!r} is not a number; {example}") from None
    except OverflowError:  # 1e400 is a valid Fraction that no float can hold
        value = math.inf
    if not abs(value) <= MAX_KERNEL_VALUE:
        raise NeuralabError(f"{source}: {text[:20]!r} is out of range; "
                            f"kernel values go from -{MAX_KERNEL_VALUE:,.0f} to {MAX_KERNEL_VALUE:,.0f}")
    return value


def get_kernel(spec: str) -> tuple[str, np.ndarray]:
    """A name from KERNELS (or an alias), a file holding a kernel, or the numbers themselves.
    Returns (name, kernel)."""
    if not isinstance(spec, str):
        raise ParameterError("spec", spec, f"give a kernel's name ({', '.join(KERNELS)}), a file, or numbers as "
                                           "text like '1,0,-1;2,0,-2;1,0,-1'")
    name = ALIASES.get(spec.lower(), spec.lower())
    if name in KERNELS:
        return name, KERNELS[name].copy()
    path = Path(spec)
    if _is_file(path):
        if path.stat().st_size > 64_000:
            raise NeuralabError(f"kernel file {path}: larger than 64 kB; a kernel is a few lines of numbers")
        try:
            data = path.read_bytes()
        except OSError as e:
            raise NeuralabError(f"kernel file {path}: cannot be read ({e.strerror})") from None
        return path.stem, parse_kernel(_text(data, path), f"kernel file {path}")
    if not any(ch in ",; " for ch in spec.strip()) and any(ch.isalpha() for ch in spec.lower().replace("e", "")):
        raise NeuralabError(
            f"kernel {spec!r}: not a known name ({', '.join(KERNELS)}), file, or numbers like '1,0,-1;2,0,-2;1,0,-1'"
        )
    return "custom", parse_kernel(spec)


def _text(data: bytes, path: Path) -> str:
    """A kernel file's text: UTF-8, with or without the mark Notepad writes first, or UTF-16 with
    its mark (what PowerShell's > writes). The locale's encoding is not guessed at: the same file
    would read differently on another machine."""
    try:
        return data.decode(marked_encoding(data) or "utf-8")
    except UnicodeDecodeError:
        raise NeuralabError(f"kernel file {path}: not UTF-8 text; save it as plain UTF-8") from None


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a long string of numbers is no file name
        return False


# The padded copy of a picture ``apply_kernel`` makes, in pixels: a picture as large as
# neuralab reads (40 million pixels), padded by a few hundred rows and columns
MAX_PADDED_PIXELS = 50_000_000


def apply_kernel(image: np.ndarray, kernel: np.ndarray, stride=1, padding="valid", depth="per-channel") -> np.ndarray:
    """Slide ``kernel`` over a picture (H, W) or (H, W, C) and return float results.

    depth="per-channel": each colour channel on its own -> (H_out, W_out, C) (or (H_out, W_out)).
    depth="sum": one Conv2D filter spanning the depth, the kernel repeated on every channel and
    the channels summed, as the depth slide shows -> (H_out, W_out).
    """
    x = as_array(image, "image", "(H, W) or (H, W, C)")
    kernel = as_array(kernel, "kernel", "(K_h, K_w)", 2)
    if x.ndim > 3:
        raise NeuralabError(f"`image` of shape {x.shape}: give one picture, (H, W) or (H, W, C)")
    # the NCHW order of the layers, without the N: a picture of 1, 3 or 4 channels whose height and
    # width are both more than a channel count; a small feature map of many channels, (4, 4, 16), is H, W, C
    if x.ndim == 3 and x.shape[0] in (1, 3, 4) and x.shape[1] > 4 and x.shape[2] > 4:
        c, h, w = x.shape
        raise NeuralabError(f"`image` of shape {x.shape} reads as a {c}x{h} picture of {w} channels; give (H, W, C), "
                            f"channels last: np.moveaxis(image, 0, -1) makes ({h}, {w}, {c}) of a ({c}, {h}, {w}) one; "
                            f"if you mean {w} channels of {c}x{h} pixels, apply the kernel to each, image[:, :, i] "
                            "(their sum is depth='sum')")
    if depth not in ("per-channel", "sum"):
        raise ParameterError("depth", depth, "choose per-channel (each colour on its own) or sum (one filter over the depth)")
    check_size(x.shape, np.float64, "the picture in floats", "give a smaller `image`")
    x = x.astype(np.float64)
    (top, bottom), (left, right) = resolve_padding(padding, x.shape[:2], kernel.shape, stride)
    h, w = x.shape[0] + top + bottom, x.shape[1] + left + right
    if h * w > MAX_PADDED_PIXELS:  # the padded copy is made before any window is read
        raise NeuralabError(f"`padding` {padding}: the padded picture would be {h}x{w}, more than the "
                            f"{MAX_PADDED_PIXELS:,} pixels it may have; pad less")
    planes = x[None] if x.ndim == 2 else np.moveaxis(x, -1, 0)  # (C, H, W)
    if depth == "sum":
        w = np.broadcast_to(kernel, (1, planes.shape[0], *kernel.shape))
        return conv2d_forward(planes[None], w, stride=stride, padding=padding)[0][0, 0]
    # per channel: the channels become the batch, each meets the same one-channel kernel
    out = conv2d_forward(planes[:, None], kernel[None, None], stride=stride, padding=padding)[0][:, 0]
    return out[0] if x.ndim == 2 else np.moveaxis(out, 0, -1)


def to_uint8(values: np.ndarray, scale: str = "clip") -> np.ndarray:
    """Floats -> a viewable 0..255 picture.  "clip": round and clip (blur, sharpen: kernels that
    sum to 1 keep the brightness); "abs": |value|, rounded and clipped (edge kernels, which sum
    to 0, give signed responses); "minmax": stretch the range to 0..255."""
    if scale not in ("clip", "abs", "minmax"):  # anything else would clip without a word
        raise ParameterError("scale", scale, "choose clip (round and clip), abs (|value|, for edge kernels) or "
                                             "minmax (stretch the range to 0..255)")
    if scale == "abs":
        values = np.abs(values)
    elif scale == "minmax":
        lo, hi = float(values.min()), float(values.max())
        # divided by the range, not multiplied by 255 / range, which overflows for subnormal ranges (1e-320)
        values = (values - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(values)
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


# How far from 1 a kernel's sum may be for its result to be clipped: 0.11 typed nine times is a
# box blur, and a picture 5% darker or brighter still shows what the kernel did
KEEPS_BRIGHTNESS = 0.05


def default_scale(kernel: np.ndarray, summed_colour: bool = False) -> str:
    """What "auto" shows a kernel's result as: "abs" for kernels that sum to 0 (edges, Laplacian);
    "clip" for kernels that sum to about 1 (blur, sharpen: they keep the brightness); "minmax" for
    any other sum (an unnormalised 1 2 1 / 2 4 2 / 1 2 1, clipped, would be all white) and when
    colour channels were summed (the sum leaves 0..255)."""
    total = float(kernel.sum())
    if abs(total) < 1e-9:
        return "abs"
    return "clip" if abs(total - 1) <= KEEPS_BRIGHTNESS and not summed_colour else "minmax"


def scale_reason(kernel: np.ndarray, summed_colour: bool = False) -> str:
    """Why ``default_scale`` chose what it did, in words for a line of output."""
    total = float(kernel.sum())
    scale = default_scale(kernel, summed_colour)
    if scale == "abs":
        return "the kernel sums to 0: signed responses, shown as |value|"
    if scale == "clip":
        return f"the kernel sums to {total:.4g}: it keeps the brightness"
    if summed_colour:
        return "the colour channels are summed: the values leave 0..255"
    return f"the kernel sums to {total:.4g}, not 1: clipped, the picture would come out too {'bright' if total > 1 else 'dark'}"


class KernelMatch(NamedTuple):
    name: str | None  # the closest classic kernel; None when none fits the filter's size
    similarity: float  # cosine in [-1, 1]; negative means the filter is that kernel turned upside down in sign


def closest_kernels(weights: np.ndarray) -> list[KernelMatch]:
    """For each filter of a (F, C, K_h, K_w) weight array, the most similar classic kernel.

    A filter's channels are averaged (a colour filter compared by its brightness response);
    cosine similarity cos = <a, b> / (|a| |b|) is taken with every KERNELS entry that fits,
    a 3x3 kernel being placed at the centre of a larger filter. The match with the largest
    |cos| wins and keeps its sign: -0.9 with sobel-x is an edge detector of the other direction.
    """
    weights = as_array(weights, "weights", "(F, C, K_h, K_w)", 4)
    if weights.shape[1] == 0:  # the mean over no channels is NaN
        raise NeuralabError(f"`weights` of shape {weights.shape} has no input channels; give (F, C, K_h, K_w), C at least 1")
    check_size(weights.shape, np.float64, "`weights` in floats", "give fewer or smaller filters")
    filters = weights.astype(np.float64).mean(axis=1)  # (F, K_h, K_w)
    kh, kw = filters.shape[1:]
    names, refs = [], []
    for name, k in KERNELS.items():
        dh, dw = kh - k.shape[0], kw - k.shape[1]
        if dh >= 0 and dw >= 0:
            names.append(name)
            refs.append(np.pad(k, ((dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2))).ravel())
    if not names:
        return [KernelMatch(None, 0.0) for _ in filters]
    a = filters.reshape(len(filters), kh * kw)  # -1 is ambiguous when F = 0
    b = np.array(refs)
    norms = np.linalg.norm(a, axis=1, keepdims=True) * np.linalg.norm(b, axis=1)
    cos = np.divide(a @ b.T, norms, out=np.zeros((len(a), len(b))), where=norms > 0)  # (F, kernels)
    best = np.abs(cos).argmax(axis=1)
    return [KernelMatch(names[j], float(cos[i, j])) for i, j in enumerate(best)]
