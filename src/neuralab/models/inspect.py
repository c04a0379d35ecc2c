"""Looking inside a trained CNN: the feature maps that every convolution and pooling layer
makes of one image, and the first layer's learned filters next to the classic hand-made
kernels they resemble most (``neuralab.mechanics.closest_kernels``, cosine similarity).

    feature_maps(model, x)        forward hooks collect each layer's output, in call order
    first_layer_filters(model)    the weights (F, C, K_h, K_w) of the first Conv2d
    filter_pairs(weights)         each filter and its closest classic kernel, as panels
    inspect_image(clf, path)      all of the above for one picture

The numbers only: ``neuralab.reports.inspect`` draws them and writes the files.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from neuralab.errors import NeuralabError

# The layers whose outputs are pictures (channels of H x W maps). MaxPool2dSame and the
# other "same" variants subclass these, so they are caught too.
MAP_LAYERS = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveMaxPool2d, nn.AdaptiveAvgPool2d)


class FeatureMap(NamedTuple):
    name: str         # the module's path in the model, e.g. "features.1"
    kind: str         # its class, e.g. "Conv2d"
    maps: np.ndarray  # (C, H, W) float32: the layer's output for the one image


def feature_maps(model: nn.Module, x: torch.Tensor) -> list[FeatureMap]:
    """The output of every conv and pooling layer of ``model`` for one preprocessed image
    ``x`` (1, C, H, W), in the order the forward pass calls them. Conv outputs are taken
    before the activation that follows them, as the layer itself computes them."""
    if x.ndim != 4 or x.shape[0] != 1:
        raise NeuralabError(f"feature maps: expected one image shaped (1, C, H, W), got {tuple(x.shape)}")
    found: list[FeatureMap] = []

    def hook(name: str):
        def record(module, inputs, output):
            found.append(FeatureMap(name, type(module).__name__, output[0].detach().float().cpu().numpy()))
        return record

    handles = [m.register_forward_hook(hook(name)) for name, m in model.named_modules() if isinstance(m, MAP_LAYERS)]
    was_training = model.training
    try:
        model.eval()
        with torch.inference_mode():
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return found


def first_layer_filters(model: nn.Module) -> np.ndarray:
    """The learned weights (F, C, K_h, K_w) of the first Conv2d of ``model``."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module.weight.detach().float().cpu().numpy()
    # Filters kept as a bare 4-D nn.Parameter convolve through torch.nn.functional: no layer to hook
    bare = [n for n, p in model.named_parameters() if p.dim() == 4]
    why = (f"; its 4-D weights ({', '.join(bare)}) convolve through torch.nn.functional, which has no layer to look "
           "into: keep them in an nn.Conv2d" if bare else "")
    raise NeuralabError(f"{type(model).__name__}: has no convolution layer (nn.Conv2d), so no filters or feature maps "
                        f"to show{why}")


def filter_pairs(weights: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Panels and titles for ``filters_figure``: each filter (its channels averaged; colour
    filters as RGB) followed by its closest classic kernel, drawn at the filter's size and
    with the match's sign, so that the two pictures look alike when the match is good."""
    from neuralab.mechanics import KERNELS, closest_kernels

    weights = np.asarray(weights, dtype=np.float64)
    f, c, kh, kw = weights.shape
    panels, titles = [], []
    for i, match in enumerate(closest_kernels(weights)):
        if match.name is None:
            kernel, title = np.zeros((kh, kw)), "no classic kernel fits"
        else:
            k = KERNELS[match.name] * np.sign(match.similarity or 1.0)
            dh, dw = kh - k.shape[0], kw - k.shape[1]
            kernel = np.pad(k, ((dh // 2, dh - dh // 2), (dw // 2, dw - dw // 2)))
            title = f"{'-' if match.similarity < 0 else ''}{match.name}\ncos {match.similarity:+.2f}"
        learned = weights[i] if c == 3 else weights[i].mean(axis=0)
        panels += [learned, np.repeat(kernel[None], 3, 0) if c == 3 else kernel]
        titles += [f"filter {i}", title]
    if c == 3:  # RGB panels must lie in [0, 1]: stretch each one on its own
        panels = [_stretch(p) for p in panels]
    return np.array(panels), titles


def _stretch(a: np.ndarray) -> np.ndarray:
    lo, hi = float(a.min()), float(a.max())
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


class Inspection(NamedTuple):
    pixels: np.ndarray         # (C, H, W) uint8: the picture at the model's input size, as it saw it
    layers: list[FeatureMap]
    filters: np.ndarray        # (F, C, K_h, K_w) the first convolution's weights
    pairs: tuple[np.ndarray, list[str]]  # ``filter_pairs(filters)``
    probabilities: np.ndarray  # (classes,)


def inspect_image(clf, image: str | Path, invert: str | bool = "no") -> Inspection:
    """Feed the picture ``image`` to the trained classifier ``clf`` (``load_classifier``):
    what it saw, every conv and pooling layer's output, its first-layer filters and their
    closest classic kernels, and its class probabilities. ``invert`` is ``load_images``'s.
    ``neuralab.reports.inspect.write_inspection`` writes them as pictures."""
    pixels = clf.load_images([image], invert=invert)  # (1, C, H, W) uint8 at the model's input size
    filters = first_layer_filters(clf.model)  # before anything else: an MLP has nothing to show
    layers = feature_maps(clf.model, clf.preprocess(pixels))
    return Inspection(pixels[0], layers, filters, filter_pairs(filters), clf.predict_proba(pixels)[0])
