"""Pictures in and out of the web app: uploads read safely, arrays sent back as PNG data URLs,
the bundled sample pictures, and drawings centred the way MNIST digits are."""

from __future__ import annotations

import base64
import threading
import uuid
from collections import OrderedDict
from pathlib import Path

import numpy as np

from neuralab.errors import NeuralabError
from neuralab.web.inputs import choice

MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # 10 MB
MAX_UPLOAD_PIXELS = 16_000_000       # 4000 x 4000; larger files are refused before decoding
# A drawing sent as source=canvas: the page's canvas is 280 x 280. It is decoded at full size and
# centred from there (a photo goes as source=upload, read at the model's size): at 16 Mpixels
# that cost 1 GB and seconds for 24 KB of PNG. Held to its size as declared, a one-scan JPEG
# too: drawn down to fit the pixels, as an upload is, it would be no drawing of the page's.
MAX_CANVAS_PIXELS = 1024 * 1024
MAX_CANVAS_SIDE = 1024
PLAYGROUND_SIDE = 256                # the playground works on at most 256 x 256 (a 31x31 kernel stays fast)
SAMPLES_DIR = Path(__file__).parent / "static" / "samples"


def decode(data: bytes, mode: str | None = "L", max_pixels: int = MAX_UPLOAD_PIXELS,
           name: str = "upload", max_side: int | None = None) -> np.ndarray:
    """Uploaded bytes -> uint8 (H, W) or (H, W, 3), through ``decode_image`` and its pixel cap
    (and ``max_side``, the longest side it may declare, where given); errors name the picture
    ``name``. Decoded from memory: a server whose temporary folder is full or read-only still
    reads them."""
    from neuralab.data.pictures import decode_image

    check_size(data)
    sides = {} if max_side is None else {"max_side": max_side}
    return decode_image(data, name, mode=mode, max_pixels=max_pixels, **sides)


def check_size(data: bytes) -> None:
    """A NeuralabError for an upload of more than MAX_UPLOAD_BYTES, before anything decodes it."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise NeuralabError(f"upload: {len(data):,} bytes is more than the {MAX_UPLOAD_BYTES:,} allowed")


def fit_within(image: np.ndarray, side: int = PLAYGROUND_SIDE) -> np.ndarray:
    """Shrink ``image`` so that its longer side is at most ``side`` pixels (never enlarge)."""
    from neuralab.data.pictures import resize

    h, w = image.shape[:2]
    scale = side / max(h, w)
    if scale >= 1:
        return image
    return resize(image, max(1, round(h * scale)), max(1, round(w * scale)))


def png_url(image: np.ndarray) -> str:
    """A uint8 (H, W) or (H, W, 3) array as a data: URL the browser shows directly."""
    from neuralab.data.pictures import encode_image

    png = encode_image(image, "PNG", compress_level=1)  # made on every request: speed over size
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def stretch(values: np.ndarray) -> np.ndarray:
    """Floats -> uint8, the minimum black and the maximum white (a constant map is mid-grey)."""
    lo, hi = float(values.min()), float(values.max())
    if hi - lo < 1e-12:
        return np.full(values.shape, 128, np.uint8)
    return np.rint((values - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def center_like_mnist(image: np.ndarray, size: int = 28, box: int = 20) -> np.ndarray:
    """A light-on-dark drawing (H, W) -> (size, size) the way MNIST was made: the ink's bounding
    box scaled to fit ``box`` x ``box``, then placed so its centre of mass is the centre."""
    from neuralab.data.pictures import resize

    inked = image > 30
    # the ink's rows and columns, not every inked pixel's place (np.argwhere: 16 bytes a pixel)
    rows, cols = np.flatnonzero(inked.any(axis=1)), np.flatnonzero(inked.any(axis=0))
    if not len(rows):
        return np.zeros((size, size), np.uint8)
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    crop = image[r0:r1, c0:c1]
    scale = box / max(crop.shape)
    h, w = max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale))
    small = resize(crop, h, w).astype(np.float64)
    mass = small.sum()
    cy, cx = ((np.indices(small.shape) * small).reshape(2, -1).sum(1) / mass) if mass else (h / 2, w / 2)
    top, left = int(round(size / 2 - cy)), int(round(size / 2 - cx))
    top, left = min(max(top, 0), size - h), min(max(left, 0), size - w)
    out = np.zeros((size, size), np.float64)
    out[top:top + h, left:left + w] = small
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


# --- the pictures a playground can start from --------------------------------------------

SAMPLES: dict[str, str] = {
    "digit": "a handwritten 7 from the MNIST test set (28 x 28)",
    "shapes": "a square, a disc, a triangle and stripes (96 x 96)",
    "photo": "Grace Hopper, the photograph shipped with matplotlib (gray, 256 high)",
}


def sample(name: str) -> np.ndarray:
    """The bundled sample ``name`` as a uint8 grayscale (H, W) array."""
    from neuralab.data.pictures import read_image

    choice("sample", name, tuple(SAMPLES))
    if name == "photo":
        from matplotlib import cbook

        path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    else:
        path = SAMPLES_DIR / f"{name}.png"
    return fit_within(read_image(path, mode="L"))


class Uploads:
    """Recently uploaded playground pictures, by a random token; the oldest are forgotten."""

    def __init__(self, keep: int = 32):
        self.keep = keep
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, image: np.ndarray) -> str:
        token = uuid.uuid4().hex
        with self._lock:
            self._items[token] = image
            while len(self._items) > self.keep:
                self._items.popitem(last=False)
        return token

    def get(self, token: str) -> np.ndarray:
        with self._lock:
            if token not in self._items:
                raise NeuralabError("uploaded picture: no longer kept by the server; upload it again")
            self._items.move_to_end(token)
            return self._items[token]
