"""Looking inside a trained CNN: the feature maps that every convolution and pooling layer
makes of one image, and the first layer's learned filters next to the classic hand-made
kernels they resemble most (``neuralab.mechanics.closest_kernels``, cosine similarity).

    feature_maps(model, x)        forward hooks collect each layer's output, in call order
    first_layer_filters(model)    the weights (F, C, K_h, K_w) of the first Conv2d
    feature_map_figure(...)       one image grid per layer, a panel per channel
    filters_figure(weights)       each learned filter beside its closest classic kernel
    inspect_image(clf, path, out) all of the above for one picture, written to a folder
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
MAX_PANELS = 64  # a figure beyond 8 x 8 panels is unreadable; the .npz keeps every channel
VECTOR_ROW = 12  # 1 x 1 maps are drawn together, this many values to a row


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
    raise NeuralabError(f"{type(model).__name__}: has no convolution layer, so no filters or feature maps to show")


def feature_map_figure(fm: FeatureMap, limit: int = MAX_PANELS):
    """An image grid with one panel per channel (the first ``limit``), each panel scaled from
    its own minimum (black) to its maximum (white). Maps of 1 x 1 (one number per filter, as
    after LeNet-5's last convolution) share one panel instead: ``vector_grid``."""
    from neuralab.reports import plots

    c, h, w = fm.maps.shape
    title = f"{fm.name} ({fm.kind}) output {c}x{h}x{w} (C x H x W)"
    if h * w == 1:
        fig = plots.image_grid(vector_grid(fm.maps)[None], [f"the {c} values, {VECTOR_ROW} to a row"], columns=1)
        fig.set_size_inches(6, 1.2 + 0.5 * len(vector_grid(fm.maps)))
        fig.suptitle(title, fontsize=9)
        return _framed(fig)
    shown = min(c, limit)
    fig = plots.image_grid(fm.maps[:shown], [f"map {i}" for i in range(shown)], columns=min(8, shown))
    more = f", first {shown} of {c} maps" if shown < c else ""
    fig.suptitle(title + more, fontsize=9)
    return _framed(fig)


def vector_grid(maps: np.ndarray, row: int | None = None) -> np.ndarray:
    """C maps of 1 x 1 -> one (ceil(C / row), row) picture of their values, read like text; the
    cells past the last value repeat the minimum so they draw black."""
    row = row or VECTOR_ROW
    values = maps.reshape(-1)
    grid = np.full(-(-len(values) // row) * row, values.min(), dtype=values.dtype)
    grid[: len(values)] = values
    return grid.reshape(-1, row)


def _framed(fig):
    """A thin grey frame around every panel, so that a white map still shows its edges."""
    for ax in fig.axes:
        if ax.images:
            ax.set_axis_on()
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_color("#b0b0b0")
    fig.tight_layout()
    return fig


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


def filters_figure(weights: np.ndarray, limit: int = MAX_PANELS // 2):
    """The first layer's filters, each beside the classic kernel it resembles most."""
    from neuralab.reports import plots

    panels, titles = filter_pairs(weights[:limit])
    f, c, kh, kw = weights.shape
    fig = plots.image_grid(panels, titles, columns=min(8, len(panels)), cmap="RdBu_r")
    if c != 3:  # signed weights: white is 0, red positive, blue negative, each panel on its own scale
        for ax in fig.axes:
            for im in ax.images:
                top = float(np.abs(im.get_array()).max()) or 1.0
                im.set_clim(-top, top)
    more = f", first {limit} of {f}" if f > limit else ""
    colours = "" if c == 3 else "; red > 0 > blue"
    fig.suptitle(f"first-layer filters {kh}x{kw}x{c} and the closest classic kernel (cosine similarity{colours}){more}",
                 fontsize=9)
    return _framed(fig)


def file_stem(index: int, fm: FeatureMap) -> str:
    """'01-features.1-conv2d': call order, module path and kind, safe as a file name."""
    return f"{index:02d}-{fm.name.replace('/', '_')}-{fm.kind.lower()}"


class Inspection(NamedTuple):
    layers: list[FeatureMap]
    filters: np.ndarray
    probabilities: np.ndarray  # (classes,)
    files: list[Path]


def inspect_image(clf, image: str | Path, out: str | Path, invert: bool = False) -> Inspection:
    """Feed the picture ``image`` to the trained classifier ``clf`` (``load_classifier``) and
    write to ``out``: input.png (what the model sees), one feature-map grid per conv and pooling
    layer, filters.png, and feature_maps.npz with every value (keys: the layer names, "input",
    "filters"). ``invert`` turns dark-on-light drawings into MNIST's light on dark."""
    from neuralab.data.pictures import save_image
    from neuralab.files import atomic_write
    from neuralab.reports import plots

    pixels = clf.load_images([image], invert=invert)  # (1, C, H, W) uint8 at the model's input size
    filters = first_layer_filters(clf.model)  # before any writing: an MLP has nothing to show
    x = clf.preprocess(pixels)
    layers = feature_maps(clf.model, x)
    probabilities = clf.predict_proba(pixels)[0]

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "input.png"]
    save_image(files[0], pixels[0, 0] if pixels.shape[1] == 1 else pixels[0].transpose(1, 2, 0))
    for i, fm in enumerate(layers, 1):
        files.append(out / f"{file_stem(i, fm)}.png")
        plots.save(feature_map_figure(fm), files[-1])
    files.append(out / "filters.png")
    plots.save(filters_figure(filters), files[-1])
    files.append(out / "feature_maps.npz")
    with atomic_write(files[-1], "wb") as f:
        np.savez_compressed(f, input=pixels[0], filters=filters, probabilities=probabilities,
                            **{file_stem(i, fm): fm.maps for i, fm in enumerate(layers, 1)})
    return Inspection(layers, filters, probabilities, files)
