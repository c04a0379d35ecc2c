"""Keras's padding="same" for any stride, which PyTorch's layers lack: ``Conv2dSame`` and
``MaxPool2dSame`` (the workshop's sample CNN pools with it; the Keras converter builds both).

PyTorch's ``padding="same"`` works at stride 1 only; TensorFlow pads to an output of
ceil(W / S) at any stride and puts an odd total's extra zero after (bottom / right). The
padding rule is the lesson's, ``neuralab.mechanics.shapes.same_pads``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from neuralab.mechanics.shapes import axis_size, pair, same_pads, same_size


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """(before, after) zeros of padding="same" along one axis; a dilated kernel spans
    dilation * (K - 1) + 1 cells."""
    return same_pads(size, dilation * (kernel - 1) + 1, stride)


def _same_pads(h: int, w: int, kernel, stride, dilation=1) -> tuple[tuple[int, int], tuple[int, int]]:
    """((top, bottom), (left, right)) for an (h, w) input."""
    (kh, kw), (sh, sw), (dh, dw) = pair(kernel), pair(stride), pair(dilation)
    return same_padding(h, kh, sh, dh), same_padding(w, kw, sw, dw)


class Conv2dSame(nn.Conv2d):
    """Conv2d with Keras ``padding="same"`` for any stride: output ceil(W / S), padded like TF."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, dilation=1,
                 groups: int = 1, bias: bool = True):
        super().__init__(in_channels, out_channels, kernel_size, stride, 0, dilation, groups, bias)

    def same_pads(self, h: int, w: int) -> tuple[tuple[int, int], tuple[int, int]]:
        return _same_pads(h, w, self.kernel_size, self.stride, self.dilation)

    def forward(self, x):
        (top, bottom), (left, right) = self.same_pads(*x.shape[-2:])
        return super().forward(F.pad(x, (left, right, top, bottom)))


class MaxPool2dSame(nn.MaxPool2d):
    """MaxPool2d with Keras ``padding="same"``: output ceil(W / S); padded cells never win."""

    def __init__(self, kernel_size, stride=None):
        super().__init__(kernel_size, stride)

    def same_pads(self, h: int, w: int) -> tuple[tuple[int, int], tuple[int, int]]:
        return _same_pads(h, w, self.kernel_size, self.stride)

    def forward(self, x):
        h, w = x.shape[-2:]
        (top, bottom), (left, right) = self.same_pads(h, w)
        if top == left == 0 and self._ceil_is_same(h, w):
            # Zeros only after (bottom / right), or none: PyTorch's ceil_mode runs the last
            # window past the edge over the real cells alone, which is what padding with -inf
            # does, without a padded copy of the map (forward and backward).
            return F.max_pool2d(x, self.kernel_size, self.stride, ceil_mode=True)
        return super().forward(F.pad(x, (left, right, top, bottom), value=float("-inf")))

    def _ceil_is_same(self, h: int, w: int) -> bool:
        """Whether ceil_mode gives as many windows as "same", ceil(W / S), on both axes."""
        return all(axis_size(n, k, s, ceil=True)[0] == same_size(n, s)
                   for n, k, s in zip((h, w), pair(self.kernel_size), pair(self.stride)))


__all__ = ["Conv2dSame", "MaxPool2dSame", "same_padding"]
