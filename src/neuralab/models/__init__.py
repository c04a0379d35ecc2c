"""The model zoo: one file per architecture, built by name for any input shape.

Every builder takes ``input_shape`` as (channels, height, width) and ``num_classes`` and
returns a module whose forward gives logits; the softmax lives in the loss and in predict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from neuralab.errors import NeuralabError
from neuralab.models.lenet import lenet5
from neuralab.models.mlp import mlp


@dataclass(frozen=True)
class Architecture:
    name: str
    builder: Callable[..., nn.Module]
    paper: str
    year: int
    paper_input: tuple[int, int, int]  # (C, H, W) of the reference parameter count
    paper_classes: int


ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in [
        Architecture("mlp", mlp, "Rumelhart, Hinton, Williams: Learning representations by back-propagating errors",
                     1986, (1, 28, 28), 10),
        Architecture("lenet5", lenet5, "LeCun et al.: Gradient-based learning applied to document recognition",
                     1998, (1, 32, 32), 10),
    ]
}


def build_model(name: str, input_shape, num_classes: int, **options) -> nn.Module:
    """Build architecture ``name`` for inputs of ``input_shape`` (C, H, W) and ``num_classes``."""
    if name not in ARCHITECTURES:
        raise NeuralabError(f"unknown model {name!r}; choose one of: {', '.join(ARCHITECTURES)}")
    if num_classes < 2:
        raise NeuralabError(f"--classes {num_classes}: a classifier needs at least 2 classes")
    return ARCHITECTURES[name].builder(tuple(input_shape), num_classes, **options)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


__all__ = ["ARCHITECTURES", "Architecture", "build_model", "count_parameters"]
