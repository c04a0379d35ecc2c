"""Pictures of what a trained CNN computes for one image (``neuralab.models.inspect`` finds
the numbers): one image grid per convolution and pooling layer, the first layer's filters
beside the classic kernels they resemble, and the files `neuralab inspect` writes.

    feature_map_figure(fm)            a panel per channel of one layer's output
    filters_figure(weights, pairs)    each learned filter beside its closest classic kernel
    write_inspection(out, ...)        input.png, a grid per layer, filters.png, feature_maps.npz

A feature map here is anything with ``name`` ("features.1"), ``kind`` ("Conv2d") and
``maps`` (C, H, W), such as ``neuralab.models.inspect.FeatureMap``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from neuralab.errors import ParameterError
from neuralab.reports import plots

MAX_PANELS = 64  # a figure beyond 8 x 8 panels is unreadable; the .npz keeps every channel
VECTOR_ROW = 12  # 1 x 1 maps are drawn together, this many values to a row


def feature_map_figure(fm, limit: int = MAX_PANELS):
    """An image grid with one panel per channel (the first ``limit``), each panel scaled from
    its own minimum (black) to its maximum (white). Maps of 1 x 1 (one number per filter, as
    after LeNet-5's last convolution) share one panel instead: ``vector_grid``."""
    c, h, w = fm.maps.shape
    title = f"{fm.name} ({fm.kind}) output {c}x{h}x{w} (C x H x W)"
    if h * w == 1:
        grid = vector_grid(fm.maps)
        fig = plots.image_grid(grid[None], [f"the {c} values, {VECTOR_ROW} to a row"], columns=1)
        fig.set_size_inches(6, 1.2 + 0.5 * len(grid))
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


def filters_figure(weights: np.ndarray, pairs: tuple[np.ndarray, list[str]], limit: int = MAX_PANELS // 2):
    """The first ``limit`` first-layer filters ``weights`` (F, C, K_h, K_w), each beside the
    classic kernel it resembles most: ``pairs`` is ``neuralab.models.inspect.filter_pairs(weights)``."""
    panels, titles = pairs
    f, c, kh, kw = weights.shape
    fig = plots.image_grid(panels[:2 * limit], titles[:2 * limit], columns=min(8, len(panels[:2 * limit])),
                           cmap="RdBu_r")
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


def file_stem(index: int, fm) -> str:
    """'01-features.1-conv2d': call order, module path and kind, safe as a file name."""
    return f"{index:02d}-{fm.name.replace('/', '_')}-{fm.kind.lower()}"


def write_inspection(out: str | Path, *, pixels: np.ndarray, layers: list, filters: np.ndarray,
                     pairs: tuple[np.ndarray, list[str]], probabilities: np.ndarray) -> list[Path]:
    """Write to ``out``: input.png (the (C, H, W) uint8 ``pixels`` the model saw), one grid per
    layer of ``layers`` in order, filters.png, and feature_maps.npz with every value (keys: the
    layer stems, "input", "filters", "probabilities"). Returns the files in that order."""
    from neuralab.data.pictures import save_image
    from neuralab.files import atomic_write

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ParameterError("out", str(out), "is a file; give a folder for the pictures")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ParameterError("out", str(out), f"cannot create the folder ({e.strerror}); give a writable folder") from None
    stale = _earlier_grids(out / "feature_maps.npz")
    files = [out / "input.png"]
    save_image(files[0], pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0))
    for i, fm in enumerate(layers, 1):
        files.append(out / f"{file_stem(i, fm)}.png")
        plots.save(feature_map_figure(fm), files[-1])
    files.append(out / "filters.png")
    plots.save(filters_figure(filters, pairs), files[-1])
    files.append(out / "feature_maps.npz")
    with atomic_write(files[-1], "wb") as f:
        np.savez_compressed(f, input=pixels, filters=filters, probabilities=probabilities,
                            **{file_stem(i, fm): fm.maps for i, fm in enumerate(layers, 1)})
    for path in stale - set(files):  # another model's layers beside these would pass for this one's
        path.unlink(missing_ok=True)
    return files


def _earlier_grids(npz: Path) -> set[Path]:
    """The layer grids an earlier inspection wrote beside ``npz``, its feature_maps.npz: the
    stems are its keys, so no file of the user's is taken for one."""
    try:
        with np.load(npz, allow_pickle=False) as earlier:
            stems = [k for k in earlier.files if k not in ("input", "filters", "probabilities")]
    except (OSError, ValueError, zipfile.BadZipFile):  # none, or not ours: nothing to tidy
        return set()
    return {npz.parent / f"{stem}.png" for stem in stems if "/" not in stem and not stem.startswith(".")}
