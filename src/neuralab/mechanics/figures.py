"""Side-by-side figures of an operation: input, kernel (with its numbers), output."""

from __future__ import annotations

import numpy as np


def save_side_by_side(path, panels: list[tuple[str, np.ndarray]], title: str = "") -> None:
    """One PNG with a panel per (caption, array): pictures (uint8, (H, W) or (H, W, 3)) are shown
    as they are; small float matrices such as kernels are drawn as a grid with their values."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from neuralab.files import atomic_write

    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4.2))
    for ax, (caption, a) in zip(np.atleast_1d(axes), panels):
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
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)


def _draw_matrix(ax, a: np.ndarray) -> None:
    lim = float(np.abs(a).max()) or 1.0
    ax.imshow(a, cmap="coolwarm", vmin=-lim, vmax=lim)
    if a.size <= 81:  # numbers stay readable up to 9x9
        for (i, j), v in np.ndenumerate(a):
            ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=9)
