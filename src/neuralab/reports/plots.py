"""Figures shared by every report: learning curves, confusion matrices, image grids.

Each function returns a matplotlib Figure; ``save`` writes it as PNG and returns the bytes
so a report can both keep the file and embed the picture.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on clusters and in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from neuralab.files import atomic_write  # noqa: E402


def save(fig, path: str | Path | None = None, dpi: int = 110) -> bytes:
    """PNG bytes of ``fig``, also written atomically to ``path`` when given; closes the figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    data = buf.getvalue()
    if path is not None:
        with atomic_write(path, "wb") as f:
            f.write(data)
    return data


def learning_curves(history: list[dict], metric: str = "accuracy"):
    """Loss and ``metric`` per epoch, train against validation."""
    epochs = [r["epoch"] for r in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key in zip(axes, ("loss", metric)):
        for prefix, style in (("", "-o"), ("val_", "-s")):
            values = [r.get(prefix + key) for r in history]
            if any(v is not None for v in values):
                ax.plot(epochs, values, style, ms=3, label=("validation" if prefix else "train"))
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Learning curves")
    return fig


def confusion(matrix: np.ndarray, classes: list[str]):
    """Counts with row-normalised colour: the diagonal is each class's recall."""
    matrix = np.asarray(matrix)
    rates = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)
    k = len(classes)
    size = max(4.5, 0.55 * k + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), classes, rotation=45, ha="right")
    ax.set_yticks(range(k), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
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
    fig, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, title in zip(axes.flat, images, titles):
        ax.imshow(img, cmap=cmap if img.ndim == 2 else None)
        ax.set_title(title, fontsize=7)
    fig.tight_layout()
    return fig
