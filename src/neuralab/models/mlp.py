"""The workshop's fully connected baseline: flatten the image, then Dense layers.

Hidden sizes 256-128-100 follow the Fashion-MNIST benchmark's MLPClassifier
(Xiao et al., 2017, https://arxiv.org/abs/1708.07747), which reports 88.3%.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

from torch import nn

from neuralab.errors import ParameterError


class MLP(nn.Module):
    def __init__(self, input_shape: tuple[int, int, int], num_classes: int,
                 hidden: tuple[int, ...] = (256, 128, 100), dropout: float = 0.2):
        super().__init__()
        sizes = tuple(hidden) if isinstance(hidden, Iterable) and not isinstance(hidden, (str, bytes)) else None
        if sizes is None or not all(isinstance(h, numbers.Integral) and not isinstance(h, bool) and h >= 1
                                    for h in sizes):
            raise ParameterError("hidden", hidden, "give the hidden layers' sizes as a tuple of whole numbers of at "
                                                   "least 1, e.g. (256, 128); (64,) for one layer, () for none")
        hidden = tuple(int(h) for h in sizes)  # a NumPy array's sizes too
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
            width = h
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x))  # logits (B, num_classes)


def mlp(input_shape=(1, 28, 28), num_classes: int = 10, **options) -> MLP:
    """Multi-layer perceptron baseline (Rumelhart, Hinton, Williams, 1986)."""
    return MLP(tuple(input_shape), num_classes, **options)
