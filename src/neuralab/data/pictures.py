"""Reading users' picture files (PNG, JPEG, ...) safely into NumPy arrays."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from neuralab.errors import NeuralabError

# Pillow refuses images above this many pixels instead of decoding them (decompression bombs).
MAX_PIXELS = 40_000_000


def read_image(path: str | os.PathLike, mode: str | None = None, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """The image at ``path`` as uint8, (H, W) for mode "L" or (H, W, 3) for "RGB".

    ``mode=None`` keeps grayscale images grayscale and turns everything else into RGB.
    Unreadable, empty, non-image and oversized files give a NeuralabError naming the file.
    """
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise NeuralabError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise NeuralabError(f"{path}: file is empty; give a PNG or JPEG image")
    try:
        with Image.open(path) as img:
            if img.width * img.height > max_pixels:
                raise NeuralabError(
                    f"{path}: {img.width}x{img.height} pixels is more than the {max_pixels:,} allowed; resize it first"
                )
            if mode is None:
                mode = "L" if img.mode in ("1", "L", "LA", "I", "I;16", "F") else "RGB"
            img.load()
            return np.asarray(img.convert(mode), dtype=np.uint8).copy()
    except NeuralabError:
        raise
    except Image.DecompressionBombError:
        raise NeuralabError(f"{path}: image is too large to decode safely; resize it first") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise NeuralabError(f"{path}: not a readable image ({e}); give a PNG or JPEG file") from None


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a (H, W) or (H, W, C) uint8 image with antialiasing."""
    from PIL import Image

    if image.shape[:2] == (height, width):
        return image
    return np.asarray(Image.fromarray(image).resize((width, height), Image.Resampling.LANCZOS))


def save_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write a uint8 (H, W) or (H, W, 3) array as PNG/JPEG, atomically."""
    from PIL import Image

    from neuralab.files import atomic_write

    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise NeuralabError(f"{path}: unknown image type {path.suffix!r}; use .png or .jpg")
    with atomic_write(path, "wb") as f:
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(f, format=fmt)
