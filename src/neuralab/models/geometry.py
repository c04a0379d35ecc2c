"""How big every feature map is: the workshop's output-size formula applied to each conv,
pooling and padding layer of a model (``geometry``), a guard that names the layer where a map
would shrink below 1x1 (``shape_guard``, ``MapVanishes``), the width of a flattened
feature stack (``flat_size``), and when an input counts as small (``is_small``).

The formula itself is the lesson's, ``neuralab.mechanics.shapes.axis_size``; this module
only reads each layer's kernel, stride, padding and rounding.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from neuralab.errors import NeuralabError
from neuralab.mechanics.shapes import axis_size, pair
from neuralab.models.layers import Conv2dSame, MaxPool2dSame

# Inputs whose shorter side is below this many pixels (MNIST's 28, CIFAR's 32) get the
# small-input variant of AlexNet, VGG and GoogLeNet; at or above it, the paper's layers.
SMALL_INPUT = 64


def is_small(input_shape: tuple[int, int, int]) -> bool:
    return min(input_shape[1:]) < SMALL_INPUT


@dataclass(frozen=True)
class Geometry:
    """How one conv/pool/pad layer maps an (H, W) input to its output, with the arithmetic."""

    out: tuple[int, int]
    formula: str  # e.g. "floor((28 - 3 + 2*0) / 1) + 1 = 26", or "H: ...; W: ..." when they differ


def _join(h: tuple[int, str], w: tuple[int, str]) -> Geometry:
    return Geometry((h[0], w[0]), h[1] if h[1] == w[1] else f"H: {h[1]}; W: {w[1]}")


def _spans(kernel, dilation) -> list[int]:
    """The input cells one window covers along H and W: dilation * (K - 1) + 1."""
    return [d * (k - 1) + 1 for k, d in zip(pair(kernel), pair(dilation))]


def geometry(module: nn.Module, h: int, w: int) -> Geometry | None:
    """The output size of ``module`` for an (h, w) input and the formula that gives it; None
    for layers that keep or do not have a spatial size."""
    if isinstance(module, (Conv2dSame, MaxPool2dSame)):
        pads = module.same_pads(h, w)
        k, s = _spans(module.kernel_size, getattr(module, "dilation", 1)), pair(module.stride)
        axes = [axis_size(n, kk, ss, p) for n, kk, ss, p in zip((h, w), k, s, pads)]
        return _join(*((out, f"{text} = ceil({n}/{ss})") for (out, text), n, ss in zip(axes, (h, w), s)))
    if isinstance(module, nn.Conv2d):
        rev = module._reversed_padding_repeated_twice  # (left, right, top, bottom), also for padding="same"
        pads = ((rev[2], rev[3]), (rev[0], rev[1]))
        k = _spans(module.kernel_size, module.dilation)
        return _join(*(axis_size(n, kk, s, p) for n, kk, s, p in zip((h, w), k, module.stride, pads)))
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        k = _spans(module.kernel_size, getattr(module, "dilation", 1))
        stride, padding = pair(module.stride or module.kernel_size), pair(module.padding)
        return _join(*(axis_size(n, kk, s, (p, p), module.ceil_mode) for n, kk, s, p in zip((h, w), k, stride, padding)))
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        size = module.output_size
        oh, ow = size if isinstance(size, tuple) else (size, size)
        oh, ow = oh or h, ow or w  # None keeps the input's size
        return Geometry((oh, ow), f"adaptive: {h}x{w} -> {oh}x{ow}")
    if isinstance(module, nn.ZeroPad2d):
        left, right, top, bottom = module.padding
        return _join((h + top + bottom, f"{h} + {top} + {bottom} = {h + top + bottom}"),
                     (w + left + right, f"{w} + {left} + {right} = {w + left + right}"))
    return None


class MapVanishes(NeuralabError):
    """A conv or pooling layer would turn its feature map into less than 1x1."""

    def __init__(self, layer: str, kind: str, in_hw: tuple[int, int], geo: Geometry):
        self.layer, self.kind, self.in_hw, self.geometry = layer, kind, in_hw, geo
        super().__init__(
            f"{layer} ({kind}) would shrink the {in_hw[0]}x{in_hw[1]} feature map to "
            f"{geo.out[0]}x{geo.out[1]} [{geo.formula}]"
        )


@contextlib.contextmanager
def shape_guard(model: nn.Module, prefix: str = "") -> Iterator[None]:
    """While active, every conv/pool layer in ``model`` checks its output size before it runs
    and raises MapVanishes, naming the layer, when a side would drop below 1."""

    def check(name):
        def hook(module, args):
            h, w = args[0].shape[-2:]
            geo = geometry(module, h, w)
            if geo is not None and min(geo.out) < 1:
                raise MapVanishes(name, type(module).__name__, (h, w), geo)
        return hook

    handles = [m.register_forward_pre_hook(check(".".join(filter(None, (prefix, n)))))
               for n, m in model.named_modules() if geometry(m, 8, 8) is not None]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def flat_size(features: nn.Module, input_shape: tuple[int, int, int], prefix: str = "features") -> int:
    """Width of ``features``' flattened output for inputs of ``input_shape`` (a dry run on an
    empty batch, so it costs nothing); MapVanishes names the layer if the input is too small."""
    with torch.no_grad(), shape_guard(features, prefix):
        return math.prod(features(torch.zeros(0, *input_shape)).shape[1:])
