"""The classifier page's work: load a run's model once, take a drawing or an uploaded
picture, and answer with the top classes and every conv and pooling layer's feature maps."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

from neuralab.errors import NeuralabError
from neuralab.runs import Run
from neuralab.web.images import (MAX_CANVAS_PIXELS, MAX_CANVAS_SIDE, MAX_UPLOAD_PIXELS, center_like_mnist, check_size,
                                 decode, png_url, stretch)
from neuralab.web.inputs import choice

MAPS_PER_LAYER = 16  # the page shows the first 16 channels of each layer
TOP_K = 5
# One forward pass at a time, on one thread: a single 28 x 28 picture gains nothing from
# intra-op threads, and on a busy machine their spinning barriers turn GoogLeNet's 70 small
# layers from 0.07 s into seconds. One at a time also keeps two requests' feature-map hooks
# apart, and the thread setting of the process is restored before the next one starts.
INFERENCE = threading.Lock()


class Models:
    """Loaded classifiers by run directory, reloaded when model.safetensors changes; the
    least recently used is dropped beyond ``keep``. A run made from PyTorch code runs its copy
    of that code only with ``trust_code`` (`neuralab serve --trust-code`); without, it is a
    NeuralabError saying so, answered with 400."""

    def __init__(self, keep: int = 4, trust_code: bool = False):
        self.keep, self.trust_code = keep, trust_code
        self._items: OrderedDict[Path, tuple[float | None, object]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, run_dir: Path):
        """The run's classifier; a run that is not one, or is damaged, is a NeuralabError
        naming it (``load_classifier`` checks the run's kind and model.json), which the app
        answers with 400."""
        from neuralab.training import load_classifier
        from neuralab.training.source import CodeNotTrusted, ModelNeeded, used_from_python

        try:
            stamp = Run(run_dir).weights().stat().st_mtime
        except (NeuralabError, OSError):  # no weights to load: load_classifier names why, after the run's kind
            stamp = None
        with self._lock:
            item = self._items.get(run_dir)
            if item is None or item[0] != stamp:
                try:
                    item = (stamp, load_classifier(run_dir, trust_code=self.trust_code))
                except CodeNotTrusted:  # it names Python's `trust_code`: the app's user starts a server
                    raise NeuralabError("run: this run's model is PyTorch code, which runs only when "
                                        "trusted; start the app with `neuralab serve --trust-code` after reading "
                                        "the run's model.py") from None
                except ModelNeeded as e:  # no page passes a module: the Python call that does, with its class
                    raise used_from_python(run_dir) or e from None
                self._items[run_dir] = item
            self._items.move_to_end(run_dir)
            while len(self._items) > self.keep:
                self._items.popitem(last=False)
        return item[1]


def model_input(clf, data: bytes, source: str, invert: str = "auto") -> np.ndarray:
    """The picture in ``data`` as the model's (1, C, H, W) uint8 input.

    source "canvas": a light-on-dark drawing of at most MAX_CANVAS_SIDE a side and MAX_CANVAS_PIXELS
    as it declares them (a one-scan JPEG too, which an upload may declare larger), centred like MNIST
    for one-channel models, and given dark on light to one trained on pictures on paper; ``invert``
    is for uploads (the page's "Invert uploads") and leaves it.
    source "upload": any picture, read by ``Classifier.load_images`` as `neuralab predict` reads a
    file (the same input for the same file and ``invert``); ``invert`` "auto" inverts a
    dark-on-light picture only for a model that expects light-on-dark ones and hardly saw any
    like it (``Preprocess.inverts``)."""
    from neuralab.data.pictures import INVERT, resize

    choice("source", source, ("canvas", "upload"))
    choice("invert", invert, INVERT)
    if source == "upload":
        check_size(data)
        return clf.load_images([data], invert, max_pixels=MAX_UPLOAD_PIXELS)
    c, h, w = clf.preprocess.input_shape
    # The canvas is drawn light on dark, MNIST's way, already: a "yes" left from an upload turned a
    # clear drawn 7 into a dark 7 on a light square inside the black frame of the centring, an 8.
    picture = decode(data, "L" if c == 1 else "RGB", MAX_CANVAS_PIXELS, "canvas", MAX_CANVAS_SIDE)
    if c == 1:
        side = min(h, w)
        picture = resize(center_like_mnist(picture, side, round(side * 20 / 28)), h, w)
        if not clf.preprocess.expects_light_on_dark():  # the page draws only one way; the model knows another
            picture = 255 - picture
    else:
        picture = resize(picture, h, w)
    return (picture[None] if c == 1 else picture.transpose(2, 0, 1))[None]


def _pictures(maps: np.ndarray) -> dict:
    """The first MAPS_PER_LAYER maps as pictures; 1 x 1 maps (one number per filter) all in one
    picture instead (``vector_grid``), stretched together."""
    from neuralab.reports.inspect import vector_grid

    c, h, w = maps.shape
    if h * w > 1:
        return {"maps": [png_url(stretch(m)) for m in maps[:MAPS_PER_LAYER]], "vector": False}
    return {"maps": [png_url(stretch(vector_grid(maps)))], "vector": True}


def classify(models: Models, run_dir: Path, data: bytes, source: str, invert: str = "auto") -> dict:
    """Top classes and feature maps of the picture in ``data`` for the model of ``run_dir``."""
    import torch

    from neuralab.models.inspect import feature_maps
    from neuralab.training.device import cpu_threads

    t0 = time.perf_counter()
    clf = models.get(run_dir)
    pixels = model_input(clf, data, source, invert)
    with INFERENCE, torch.inference_mode(), cpu_threads(1):
        probs = clf.predict_proba(pixels)[0]
        layers = feature_maps(clf.model, clf.preprocess(pixels))
    top = clf.top_k(probs[None], min(TOP_K, len(clf.classes)))[0]
    # an answer for nothing, said: a fully transparent upload, an empty canvas sent by a tap
    blank = "The picture is one flat colour at the model's input size: there is nothing in it for the model to see." \
        if pixels.min() == pixels.max() else ""
    shown = [{"name": fm.name, "kind": fm.kind, "shape": list(fm.maps.shape), **_pictures(fm.maps)} for fm in layers]
    return {
        "model": clf.name,
        "input": png_url(pixels[0, 0] if pixels.shape[1] == 1 else pixels[0].transpose(1, 2, 0)),
        "top": [{"class": c, "probability": p} for c, p in top],
        "layers": shown,
        "blank": blank,
        "ms": round((time.perf_counter() - t0) * 1000, 1),
    }
