"""The model zoo: every architecture by name, with its paper, built for any input shape.

Every builder takes ``input_shape`` as (channels, height, width) and ``num_classes`` and
returns a module whose forward gives logits; the softmax lives in the loss and in predict.
This module imports torch only to build a model, so that listing the zoo is instant.
"""

from __future__ import annotations

import importlib
import numbers
import operator
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from neuralab.errors import NeuralabError, ParameterError, did_you_mean, out_of_memory

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class Architecture:
    name: str
    source: str                        # "module:builder" in neuralab.models, imported when a model is built
    paper: str
    year: int
    paper_input: tuple[int, int, int]  # (C, H, W) of the reference parameter count
    paper_classes: int
    introduced: str = ""               # what the architecture brought, in a few words
    variant: str = ""                  # which form of the paper's network, where the zoo has two
    flattens: bool = False             # its first layer flattens the input: any order of its axes builds one network
    set_by_builder: tuple[str, ...] = ()  # the module's parameters its builder passes itself: no options

    @property
    def builder(self) -> Callable[..., nn.Module]:
        module, function = self.source.split(":")
        return getattr(importlib.import_module(f"neuralab.models.{module}"), function)


ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in [
        Architecture("mlp", "mlp:mlp", "Rumelhart, Hinton, Williams: Learning representations by back-propagating errors",
                     1986, (1, 28, 28), 10, "dense layers trained by backpropagation", flattens=True),
        Architecture("cnn", "cnn:cnn", "The workshop's sample CNN (Conv2D, BatchNorm, MaxPool, Dropout; Ioffe & Szegedy 2015)",
                     2015, (1, 28, 28), 10, "batch normalisation and dropout in a small conv net"),
        Architecture("lenet5", "lenet:lenet5", "LeCun et al.: Gradient-based learning applied to document recognition",
                     1998, (1, 32, 32), 10, "convolution + pooling stacks trained end to end"),
        Architecture("alexnet", "alexnet:alexnet", "Krizhevsky, Sutskever, Hinton: ImageNet classification with deep CNNs",
                     2012, (3, 224, 224), 1000, "ReLU, dropout, overlapping pooling, GPU training",
                     "single tower, 64 filters in the first layer, no LRN (Krizhevsky 2014, as torchvision)"),
        Architecture("alexnet2012", "alexnet2012:alexnet2012",
                     "Krizhevsky, Sutskever, Hinton: ImageNet classification with deep CNNs",
                     2012, (3, 227, 227), 1000, "ReLU, dropout, overlapping pooling, GPU training",
                     "the 2012 paper's and the slides': 227x227x3, 96 filters 11x11/4, two towers, LRN"),
        Architecture("vgg16", "vgg:vgg16", "Simonyan, Zisserman: Very deep convolutional networks for large-scale image recognition",
                     2014, (3, 224, 224), 1000, "depth from stacked 3x3 convolutions",
                     set_by_builder=("config",)),  # configuration D's layer list
        Architecture("googlenet", "googlenet:googlenet", "Szegedy et al.: Going deeper with convolutions (Inception v1)",
                     2014, (3, 224, 224), 1000, "Inception modules, 1x1 bottlenecks, global average pooling"),
    ]
}

# `neuralab zoo` lists each architecture's parameters at its paper's input and classes, then at
# these sizes with 10 classes (MNIST-like and CIFAR-like inputs). The counts are written down so
# that listing them builds nothing; tests/test_cli_zoo.py builds every model and holds each
# count equal to the built model's.
ZOO_SIZES = ((1, 28, 28), (3, 32, 32))
ZOO_COUNTS: dict[str, tuple[int, int, int]] = {  # paper, 28x28x1, 32x32x3
    "mlp": (247_766, 247_766, 833_494),
    "cnn": (421_834, 421_834, 545_290),
    "lenet5": (61_706, 61_706, 62_006),
    "alexnet": (61_100_840, 7_703_242, 7_706_442),
    "alexnet2012": (60_965_224, 7_556_810, 7_561_610),
    "vgg16": (138_357_544, 15_243_978, 15_245_130),
    "googlenet": (6_624_904, 5_601_322, 5_602_474),
}


def build_model(name: str, input_shape, num_classes: int, *, guess_order: bool = True, **options) -> nn.Module:
    """Build architecture ``name`` for inputs of ``input_shape`` (C, H, W) and ``num_classes``.

    An input on which a feature map would vanish gives a NeuralabError naming the layer and
    the nearest inputs that work. Build under ``torch.device("meta")`` to get the structure
    and the parameter count without allocating the weights. A convolutional network refuses
    Keras's (H, W, C), (28, 28, 1) say, unless ``guess_order`` is False: the order is known (the
    command line's, which parsed HxWxC itself, or 28 channels of 28x1 meant).
    """
    if name not in ARCHITECTURES:
        raise NeuralabError(f"unknown model {name!r}; choose one of: {', '.join(ARCHITECTURES)}")
    try:  # operator.index: 10, NumPy's or a tensor's 10, not 10.5 or True
        if isinstance(num_classes, bool):
            raise TypeError
        num_classes = operator.index(num_classes)
    except TypeError:
        raise ParameterError("num_classes", num_classes, "give the number of classes as a whole number, "
                                                         "e.g. 10") from None
    if num_classes < 2:
        raise ParameterError("num_classes", num_classes, "a classifier needs at least 2 classes")
    input_shape = checked_shape(input_shape)
    if guess_order and not ARCHITECTURES[name].flattens:
        from neuralab.mechanics.shapes import refuse_channels_last

        refuse_channels_last(input_shape, "input_shape")
    import torch

    from neuralab.models.geometry import MapVanishes
    from neuralab.models.summary import too_small

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
    except NeuralabError:
        raise
    except (TypeError, ValueError, RuntimeError) as e:
        if out_of_memory(e):  # a size too large for this machine, no option's fault
            raise
        unknown = re.search(r"unexpected keyword argument '(\w+)'", str(e))
        if unknown:
            raise NeuralabError(f"{name}: unknown model option {unknown[1]!r}; "
                                f"{_options_said(name, unknown[1])}") from None
        culprit = _failing_option(builder, input_shape, num_classes, options)
        if culprit is None:
            raise
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        module = ARCHITECTURES[name].source.split(":")[0]
        raise ParameterError(culprit, options[culprit], f"{name} cannot be built with it ({reason}); the options "
                                                        f"and their types are in neuralab.models.{module}") from None


def _options_said(name: str, unknown: str) -> str:
    """The keyword options architecture ``name`` takes, as a sentence, the one closest to ``unknown`` first."""
    options = _options(name)
    if not options:
        return "it takes none"
    return f"{did_you_mean(unknown, options)}it takes {', '.join(options)}"


def _options(name: str) -> list[str]:
    """The keyword options of architecture ``name``, read from signatures, nothing built: the
    builder's own keyword parameters, or where it passes ``**options`` on, those with defaults of
    the module it returns (a config dataclass's fields where one is a parameter's default), less
    the ones the builder sets itself."""
    import dataclasses
    import inspect

    arch = ARCHITECTURES[name]
    signature = inspect.signature(arch.builder, eval_str=True)
    parameters = list(signature.parameters.values())[2:]  # after input_shape, num_classes
    if any(p.kind is p.VAR_KEYWORD for p in parameters) and inspect.isclass(signature.return_annotation):
        parameters = list(inspect.signature(signature.return_annotation).parameters.values())[2:]
    options = []
    for p in parameters:
        if p.name in arch.set_by_builder or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        if dataclasses.is_dataclass(p.default):  # CNN(..., config=CNNConfig()): cnn(**options) makes the config
            options += [f.name for f in dataclasses.fields(p.default)]
        elif p.default is not inspect.Parameter.empty:
            options.append(p.name)
    return options


def _failing_option(builder, input_shape, num_classes: int, options: dict) -> str | None:
    """The first option that fails a build on its own, where the build without options works
    (None: the fault is not an option's, a size too large to count, say)."""
    import torch

    def builds(**chosen) -> bool:
        try:
            with torch.device("meta"):
                builder(input_shape, num_classes, **chosen)
        except Exception:  # noqa: BLE001 - whatever the builder raises, the build failed
            return False
        return True

    if not options or not builds():
        return None
    return next((key for key, value in options.items() if not builds(**{key: value})), None)


def checked_shape(input_shape, images: bool = True) -> tuple[int, ...]:
    """``input_shape`` as (channels, height, width), three whole numbers of at least 1; with
    ``images`` False, one input of any model without the batch: (steps, features) for a
    recurrent one, say."""
    try:  # 28.5 or "28" is no size, where int() would take it; 28.0 (from JSON, say) is
        shape = () if isinstance(input_shape, str) else tuple(_whole(v) for v in input_shape)
    except TypeError:
        shape = ()
    if not shape or min(shape) < 1 or (len(shape) != 3 if images else len(shape) > 4):
        expected = "(channels, height, width)" if images else \
            "one input's shape without the batch: (channels, height, width) for images, (steps, features) for sequences"
        raise ParameterError("input_shape", input_shape, f"expected {expected}, each a whole number of at least 1, "
                                                         "e.g. (1, 28, 28)")
    return shape


def parameters_at(name: str, input_shape, num_classes: int, **options) -> int:
    """The parameter count of ``name`` built for ``input_shape``, without allocating weights."""
    import torch

    with torch.device("meta"):
        return count_parameters(build_model(name, input_shape, num_classes, **options))


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """The number of ``model``'s parameters (``trainable_only``: those that train). A model whose
    lazy layers (nn.LazyLinear) have not yet seen a batch has no count, and is refused naming them."""
    from torch.nn.parameter import is_lazy

    lazy = [f"{name or 'the model'} ({type(m).__name__})" for name, m in model.named_modules()
            if any(is_lazy(p) for p in m.parameters(recurse=False))]
    if lazy:
        are = "is a lazy layer" if len(lazy) == 1 else "are lazy layers"
        raise ParameterError("model", type(model).__name__, f"{', '.join(lazy)} {are}, sized by the model's first "
                             "forward pass: run one batch through it first (model(x)), or call "
                             "summary(model, input_shape), which does")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _whole(v) -> int:
    """``v`` as a whole number: an int of any kind, or a float without a fraction; TypeError else."""
    if isinstance(v, bool):
        raise TypeError
    if isinstance(v, numbers.Real) and not isinstance(v, numbers.Integral) and float(v).is_integer():
        return int(v)
    return operator.index(v)
