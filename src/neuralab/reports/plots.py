"""Figures shared by every report: learning curves, runs compared epoch by epoch, confusion
matrices, image grids, an operation's input, kernel and output side by side; and the one way
a figure is made and saved.

Every figure is a ``matplotlib.figure.Figure`` on its own Agg canvas, never pyplot's: no
backend is switched, no figure is registered anywhere, and a server or a notebook that uses
pyplot for its own figures is left alone. Importing this module imports no matplotlib; the
first figure does (``figure``), after making sure matplotlib has a folder it can write.
``save`` writes a figure atomically, as PNG or in the format its file's name asks, and returns
the bytes, so a report can both keep the file and embed the picture.
"""

from __future__ import annotations

import functools
import io
import os
import stat
import sys
import tempfile
from pathlib import Path

import numpy as np

from neuralab.errors import ParameterError
from neuralab.files import atomic_write

DPI = 110  # one resolution for every PNG a report writes: sharp on screen, small on disk
# The formats a figure is written in, by its file's ending (matplotlib's names): PNG for reports
# and screens, SVG and PDF that stay sharp at any size on a slide or in a paper
FIGURE_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}


def figure(width: float, height: float):
    """An empty Figure of ``width`` x ``height`` inches, drawn by Agg (PNG, no display). As a
    notebook cell's last expression it shows as its PNG: pyplot, whose import would make
    Jupyter draw figures, never knew it."""
    _give_matplotlib_a_writable_folder()
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = _shown_figure()(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


@functools.cache
def _shown_figure() -> type:
    """matplotlib's Figure with the PNG display Jupyter asks objects for, made with the first
    figure: importing this module imports no matplotlib."""
    from matplotlib.figure import Figure

    class ShownFigure(Figure):
        def _repr_png_(self) -> bytes:
            return save(self)

    return ShownFigure


def save(fig, path: str | Path | None = None, dpi: int = DPI) -> bytes:
    """The bytes of ``fig`` as a file in the format ``path``'s ending names (``FIGURE_FORMATS``),
    also written atomically to ``path``; PNG where no ``path`` is given.

    A figure that pyplot made (a user's, a tutorial's) is closed, so pyplot does not keep it."""
    fmt = "png" if path is None else FIGURE_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ParameterError("path", str(path), f"figures are written as {', '.join(FIGURE_FORMATS)}; "
                                                "give a name with one of these endings")
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight")
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close(fig)  # does nothing to a figure from ``figure``: pyplot never knew it
    data = buf.getvalue()
    if path is not None:
        with atomic_write(path, "wb") as f:
            f.write(data)
    return data


def _give_matplotlib_a_writable_folder() -> None:
    """Point MPLCONFIGDIR at a private folder when matplotlib's own (under HOME) cannot be
    written, before matplotlib is first imported: otherwise it warns on every start (a
    read-only HOME on a cluster, a sandbox) and rebuilds its font cache each time."""
    if "matplotlib" in sys.modules:
        return  # too late to matter, and its folder is already chosen
    if all(_writable(d) for d in _matplotlib_folders()):
        return
    try:
        os.environ["MPLCONFIGDIR"] = _private_folder()
    except OSError:
        pass  # no writable temporary folder either: matplotlib's own message says what to do


def _matplotlib_folders() -> list[Path | None]:
    """Where matplotlib will keep its config and cache (its own rules; None: no home)."""
    if os.environ.get("MPLCONFIGDIR"):
        return [Path(os.environ["MPLCONFIGDIR"])]
    try:
        home = Path.home()
    except RuntimeError:
        home = None
    if sys.platform.startswith(("linux", "freebsd")):
        config, cache = os.environ.get("XDG_CONFIG_HOME"), os.environ.get("XDG_CACHE_HOME")
        if home is None and not (config and cache):
            return [None]
        return [Path(config or home / ".config", "matplotlib"), Path(cache or home / ".cache", "matplotlib")]
    if sys.platform == "win32":
        return []  # under %LOCALAPPDATA%, which Windows keeps writable
    return [home / ".matplotlib" if home else None]


def _writable(folder: Path | None) -> bool:
    if folder is None:
        return False
    try:
        folder.mkdir(parents=True, exist_ok=True)  # what matplotlib does first
    except OSError:
        return False
    return folder.is_dir() and os.access(folder, os.W_OK)


def _private_folder() -> str:
    """One folder per user under the temporary folder, kept between runs so that matplotlib's
    font cache is built once; used only if this user alone owns and can open it."""
    uid = getattr(os, "getuid", lambda: None)()
    if uid is not None:
        path = Path(tempfile.gettempdir()) / f"neuralab-matplotlib-{uid}"
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            pass
        info = os.lstat(path)
        if stat.S_ISDIR(info.st_mode) and info.st_uid == uid and not info.st_mode & 0o077:
            return str(path)
    return tempfile.mkdtemp(prefix="neuralab-matplotlib-")


# --- figures --------------------------------------------------------------------------------

def learning_curves(history: list[dict], metrics: tuple[str, ...] = ("loss", "accuracy"),
                    labels: dict[str, str] | None = None, log: bool = False):
    """One panel per metric of ``history`` (one record per epoch), train against validation.
    ``labels`` names a metric's axis ("MSE of the scaled target"); ``log`` for losses over decades."""
    epochs = [r["epoch"] for r in history]
    shown = [m for m in metrics if any(m in r or f"val_{m}" in r for r in history)] or list(metrics[:1])
    fig = figure(5 * len(shown), 3.6)
    for ax, key in zip(np.atleast_1d(fig.subplots(1, len(shown))), shown):
        for prefix, style in (("", "-o"), ("val_", "-s")):
            values = [r.get(prefix + key) for r in history]
            if any(v is not None for v in values):
                ax.plot(epochs, values, style, ms=3, label=("validation" if prefix else "train"))
        _epoch_axis(ax)
        ax.set_ylabel((labels or {}).get(key, key))
        if log and all(v > 0 for line in ax.lines for v in line.get_ydata() if v is not None):
            ax.set_yscale("log")  # a constant target's zero losses stay on a linear axis
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    fig.suptitle("Learning curves")
    return fig


def per_epoch(panels: dict[str, dict[str, list[dict]]], key: str, label: str = "", sharey: bool = False):
    """Runs compared epoch by epoch: a panel per title of ``panels``, in it a line per run
    (name -> history, one record per epoch) of the metric ``key`` ("val_accuracy"), which
    ``label`` names on the axis."""
    fig = figure(5.5 * len(panels), 3.7)
    axes = np.atleast_1d(fig.subplots(1, len(panels), sharey=sharey))
    for ax, (title, runs) in zip(axes, panels.items()):
        for name, history in runs.items():
            ax.plot([r["epoch"] for r in history], [r.get(key) for r in history], "-o", ms=3, label=name)
        ax.set_title(title)
        _epoch_axis(ax)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(label or key)
    if axes[0].lines:
        axes[0].legend()
    return fig


def _epoch_axis(ax) -> None:
    """The x axis of ``ax`` counts epochs: ticks on whole ones only."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("epoch")
    # no epoch 2.5 between epochs 2 and 3, and a run of one epoch ticked 1, not 0.945 ... 1.050
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def confusion(matrix: np.ndarray, classes: list[str]):
    """Counts with row-normalised colour: the diagonal is each class's recall."""
    matrix = np.asarray(matrix)
    rates = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    k = len(classes)
    # A figure grows with the classes up to a page: at 1,000 classes an unbounded one was 550
    # inches across and its drawing took more memory than the machine had
    size = min(max(4.5, 0.55 * k + 2), 24)
    fig = figure(size, size * 0.85)
    ax = fig.subplots()
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    if k <= 60:  # names beyond that overlap: the axes count the classes in the order of the table below
        ax.set_xticks(range(k), classes, rotation=45, ha="right")
        ax.set_yticks(range(k), classes)
    ax.set_xlabel("predicted" if k <= 60 else "predicted (class number)")
    ax.set_ylabel("true" if k <= 60 else "true (class number)")
    if k <= 20:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if rates[i, j] > 0.5 else "black")
    ax.set_title("Confusion matrix (test set)")
    return fig


def image_grid(images: np.ndarray, titles: list[str], columns: int = 8, cmap: str = "gray"):
    """A grid of (N, C, H, W) or (N, H, W) images with a title under each."""
    images = np.asarray(images)
    if images.ndim == 4:
        images = images[:, 0] if images.shape[1] == 1 else images.transpose(0, 2, 3, 1)
    n = max(1, len(images))
    rows = (n + columns - 1) // columns
    fig = figure(1.6 * columns, 1.9 * rows)
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, title in zip(axes.flat, images, titles):
        ax.imshow(img, cmap=cmap if img.ndim == 2 else None)
        ax.set_title(title, fontsize=7)
    fig.tight_layout()
    return fig


def picture_grid(pictures: np.ndarray, titles: list[str], columns: int = 8):
    """Pictures (N, C, H, W) or (N, H, W) of uint8, on their common 0-255 scale, with a title
    above each: tiled into one image on one axes, which draws in a third of the time of
    ``image_grid``'s axes per panel (0.3 s less for every classifier report). ``image_grid``
    is for panels that each need their own scale (feature maps, filters)."""
    pictures = np.asarray(pictures)
    if pictures.ndim == 4:
        pictures = pictures[:, 0] if pictures.shape[1] == 1 else pictures.transpose(0, 2, 3, 1)
    n = len(pictures)
    columns = max(1, min(columns, n))
    rows = max(1, -(-n // columns))
    h, w = pictures.shape[1:3] if n else (1, 1)
    gap_x, gap_y = max(1, w // 4), max(1, h // 2)  # between tiles, and above each for its title
    tiles = np.full((rows * (h + gap_y), columns * (w + gap_x), *pictures.shape[3:]), 255, dtype=np.uint8)
    for k, picture in enumerate(pictures):
        r, c = divmod(k, columns)
        tiles[r * (h + gap_y) + gap_y:][:h, c * (w + gap_x):][:, :w] = picture
    fig = figure(1.6 * columns, 1.9 * rows)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.axis("off")
    ax.imshow(tiles, cmap="gray" if tiles.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest", aspect="auto")
    for k, title in enumerate(titles[:n]):
        r, c = divmod(k, columns)
        ax.text(c * (w + gap_x) + w / 2, r * (h + gap_y) + gap_y - 0.5, title, fontsize=7, ha="center", va="bottom")
    return fig


def side_by_side(panels: list[tuple[str, np.ndarray]], title: str = ""):
    """A panel per (caption, array), as `neuralab conv` shows an operation: pictures (uint8,
    (H, W) or (H, W, 3)) as they are; small float matrices such as kernels as a grid of
    colours with their values written in."""
    fig = figure(4 * len(panels), 4.2)
    for ax, (caption, a) in zip(np.atleast_1d(fig.subplots(1, len(panels))), panels):
        if a.dtype == np.uint8:
            ax.imshow(a, cmap="gray" if a.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
        else:
            _draw_matrix(ax, a)
        ax.set_title(caption, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _draw_matrix(ax, a: np.ndarray) -> None:
    lim = float(np.abs(a).max()) or 1.0
    ax.imshow(a, cmap="coolwarm", vmin=-lim, vmax=lim)
    if a.size <= 81:  # numbers stay readable up to 9x9
        for (i, j), v in np.ndenumerate(a):
            ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=9)
