"""Keras's layers that are random in training only, as PyTorch modules: data augmentation on
(N, C, H, W) images, and noise (GaussianNoise, GaussianDropout, SpatialDropout1D).

As in Keras, they pass inputs through unchanged at inference (``eval()``, what Keras's
``predict`` does) and change each image by its own random draw in training, from the ranges
the Keras layer was given. The draws are PyTorch's (seeded by the trainer), not Keras's: a
model trained here sees the same kinds of transforms, not the same pictures.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# Keras's fill_mode -> grid_sample's padding_mode: "reflect" (d c b a | a b c d | d c b a)
# is reflection about the pixels' outer edges, "nearest" repeats the edge pixel
_PADDING = {"reflect": "reflection", "nearest": "border", "constant": "zeros"}


def _uniform(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """One draw per image, shaped (N, 1, 1, 1)."""
    return torch.empty(x.shape[0], 1, 1, 1, device=x.device).uniform_(low, high)


class RandomFlip(nn.Module):
    """Each image flipped left-right and/or upside down, each with probability 1/2."""

    def __init__(self, mode: str):
        super().__init__()
        self.dims = {"horizontal": (3,), "vertical": (2,), "horizontal_and_vertical": (3, 2)}[mode]

    def forward(self, x):
        if not self.training:
            return x
        for dim in self.dims:
            x = torch.where(_uniform(x, 0, 1) < 0.5, x.flip(dim), x)
        return x


class RandomResample(nn.Module):
    """RandomRotation, RandomZoom and RandomTranslation: each image resampled through its own
    affine map of the output's pixel centres onto the input, points outside filled as Keras's
    ``fill_mode`` says."""

    def __init__(self, kind: str, args: dict):
        super().__init__()
        self.kind, self.args = kind, args

    def forward(self, x):
        if not self.training:
            return x
        n, _, h, w = x.shape
        a = self.args
        theta = x.new_zeros(n, 2, 3)  # output (x, y) in [-1, 1] -> input (x, y), as affine_grid takes it
        if self.kind == "RandomRotation":
            angle = _uniform(x, *a["factor"]).view(n) * 2 * math.pi
            cos, sin = angle.cos(), angle.sin()
            # a rotation of pixel coordinates, in coordinates scaled to the sides
            theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin * h / w, sin * w / h, cos
        elif self.kind == "RandomZoom":  # a zoom above 1 reads a larger region: the picture shrinks
            zh = 1 + _uniform(x, *a["height_factor"]).view(n)
            zw = 1 + _uniform(x, *a["width_factor"]).view(n) if "width_factor" in a else zh
            theta[:, 0, 0], theta[:, 1, 1] = zw, zh
        else:  # RandomTranslation: fractions of the sides; [-1, 1] spans 2
            theta[:, 0, 0] = theta[:, 1, 1] = 1
            theta[:, 0, 2] = -2 * _uniform(x, *a["width_factor"]).view(n)
            theta[:, 1, 2] = -2 * _uniform(x, *a["height_factor"]).view(n)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        mode, padding = a["interpolation"], _PADDING[a["fill_mode"]]
        out = F.grid_sample(x, grid, mode=mode, padding_mode=padding, align_corners=False)
        if a["fill_mode"] == "constant" and a["fill_value"]:  # zeros outside -> fill_value
            inside = F.grid_sample(x.new_ones(n, 1, h, w), grid, mode=mode, padding_mode="zeros", align_corners=False)
            out = out + a["fill_value"] * (1 - inside)
        return out


class RandomContrast(nn.Module):
    """Each image's distance from its mean (per channel) scaled by a factor from
    1 - lower to 1 + upper, then clipped to value_range."""

    def __init__(self, factor, value_range):
        super().__init__()
        self.factor, self.value_range = tuple(factor), tuple(value_range)

    def forward(self, x):
        if not self.training:
            return x
        mean = x.mean((2, 3), keepdim=True)
        f = _uniform(x, 1 - self.factor[0], 1 + self.factor[1])
        return ((x - mean) * f + mean).clamp(*self.value_range)


class RandomBrightness(nn.Module):
    """Each image shifted by a fraction (from ``factor``) of value_range's width, then clipped."""

    def __init__(self, factor, value_range):
        super().__init__()
        self.factor, self.value_range = tuple(factor), tuple(value_range)

    def forward(self, x):
        if not self.training:
            return x
        low, high = self.value_range
        return (x + _uniform(x, *self.factor) * (high - low)).clamp(low, high)


class Noise(nn.Module):
    """GaussianNoise (adds N(0, stddev)) and GaussianDropout (multiplies by N(1, rate / (1 - rate)))."""

    def __init__(self, add: float = 0.0, multiply: float = 0.0):
        super().__init__()
        self.add, self.multiply = add, multiply

    def forward(self, x):
        if not self.training:
            return x
        if self.multiply:
            return x * (1 + self.multiply * torch.randn_like(x))
        return x + self.add * torch.randn_like(x)


class SpatialDropout1d(nn.Module):
    """Keras's SpatialDropout1D on (N, T, F): whole features dropped, the same at every step."""

    def __init__(self, rate: float):
        super().__init__()
        self.rate = rate

    def forward(self, x):
        if not self.training or not self.rate:
            return x
        return x * F.dropout(x.new_ones(x.shape[0], 1, x.shape[2]), self.rate)


def noise(e: dict) -> nn.Module:
    """The module of a GaussianNoise, GaussianDropout or SpatialDropout layer's spec entry."""
    cls, a = e["class"], e["args"]
    if cls == "GaussianNoise":
        return Noise(add=a["stddev"])
    if cls == "GaussianDropout":
        return Noise(multiply=math.sqrt(a["rate"] / (1 - a["rate"])))
    return SpatialDropout1d(a["rate"]) if cls == "SpatialDropout1D" else nn.Dropout2d(a["rate"])


def augmentation(e: dict) -> nn.Module:
    """The module of one augmentation layer's spec entry."""
    cls, a = e["class"], e["args"]
    if cls == "RandomFlip":
        return RandomFlip(a["mode"])
    if cls == "RandomContrast":
        return RandomContrast(a["factor"], a["value_range"])
    if cls == "RandomBrightness":
        return RandomBrightness(a["factor"], a["value_range"])
    return RandomResample(cls, a)
