"""Small pieces the architectures share."""

from __future__ import annotations

import torch
from torch import nn


def flat_size(features: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """Width of ``features``' flattened output for one input of ``input_shape`` (a dry run)."""
    with torch.no_grad():
        return features(torch.zeros(1, *input_shape)).flatten(1).shape[1]
