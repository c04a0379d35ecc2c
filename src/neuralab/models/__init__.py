"""The model zoo: one file per architecture, built by name for any input shape.

Every builder takes ``input_shape`` as (channels, height, width) and ``num_classes`` and
returns a module whose forward gives logits; the softmax lives in the loss and in predict.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from neuralab.errors import NeuralabError
from neuralab.models.alexnet import alexnet
from neuralab.models.cnn import cnn
from neuralab.models.googlenet import googlenet
from neuralab.models.geometry import MapVanishes
from neuralab.models.lenet import lenet5
from neuralab.models.mlp import mlp
from neuralab.models.summary import ModelSummary, print_summary, render_summary, summary, too_small
from neuralab.models.vgg import vgg16


@dataclass(frozen=True)
class Architecture:
    name: str
    builder: Callable[..., nn.Module]
    paper: str
    year: int
    paper_input: tuple[int, int, int]  # (C, H, W) of the reference parameter count
    paper_classes: int
    introduced: str = ""  # what the architecture brought, in a few words


ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in [
        Architecture("mlp", mlp, "Rumelhart, Hinton, Williams: Learning representations by back-propagating errors",
                     1986, (1, 28, 28), 10, "dense layers trained by backpropagation"),
        Architecture("cnn", cnn, "The workshop's sample CNN (Conv2D, BatchNorm, MaxPool, Dropout; Ioffe & Szegedy 2015)",
                     2015, (1, 28, 28), 10, "batch normalisation and dropout in a small conv net"),
        Architecture("lenet5", lenet5, "LeCun et al.: Gradient-based learning applied to document recognition",
                     1998, (1, 32, 32), 10, "convolution + pooling stacks trained end to end"),
        Architecture("alexnet", alexnet, "Krizhevsky, Sutskever, Hinton: ImageNet classification with deep CNNs",
                     2012, (3, 224, 224), 1000, "ReLU, dropout, overlapping pooling, GPU training"),
        Architecture("vgg16", vgg16, "Simonyan, Zisserman: Very deep convolutional networks for large-scale image recognition",
                     2014, (3, 224, 224), 1000, "depth from stacked 3x3 convolutions"),
        Architecture("googlenet", googlenet, "Szegedy et al.: Going deeper with convolutions (Inception v1)",
                     2014, (3, 224, 224), 1000, "Inception modules, 1x1 bottlenecks, global average pooling"),
    ]
}


def build_model(name: str, input_shape, num_classes: int, **options) -> nn.Module:
    """Build architecture ``name`` for inputs of ``input_shape`` (C, H, W) and ``num_classes``.

    An input on which a feature map would vanish gives a NeuralabError naming the layer and
    the smallest input that works. Build under ``torch.device("meta")`` to get the structure
    and the parameter count without allocating the weights.
    """
    if name not in ARCHITECTURES:
        raise NeuralabError(f"unknown model {name!r}; choose one of: {', '.join(ARCHITECTURES)}")
    if num_classes < 2:
        raise NeuralabError(f"--classes {num_classes}: a classifier needs at least 2 classes")
    input_shape = tuple(int(v) for v in input_shape)
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise NeuralabError(f"--input {input_shape}: expected (channels, height, width), each at least 1")
    builder = ARCHITECTURES[name].builder
    try:
        return builder(input_shape, num_classes, **options)
    except MapVanishes as e:
        def works(shape) -> bool:
            try:
                with torch.device("meta"):
                    builder(shape, num_classes, **options)
            except MapVanishes:
                return False
            return True
        raise too_small(name, input_shape, e, works) from None
    except TypeError as e:
        unknown = re.search(r"unexpected keyword argument '(\w+)'", str(e))
        if unknown:
            raise NeuralabError(f"{name}: unknown model option {unknown[1]!r}") from None
        raise


def parameters_at(name: str, input_shape, num_classes: int, **options) -> int:
    """The parameter count of ``name`` built for ``input_shape``, without allocating weights."""
    with torch.device("meta"):
        return count_parameters(build_model(name, input_shape, num_classes, **options))


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


__all__ = ["ARCHITECTURES", "Architecture", "ModelSummary", "build_model", "count_parameters", "parameters_at",
           "print_summary", "render_summary", "summary"]
