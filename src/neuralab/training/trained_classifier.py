"""A trained classifier: the ``Classifier`` that takes raw pictures and gives classes and
probabilities, and ``load_classifier``, which rebuilds it from its run folder alone. Reading a
classifier run back lives here too, for a resume as for a prediction: model.json checked field
by field (``checked_meta``), and the untrained network it describes (``network``, or the caller's own
module, ``given_module``).

Apart from training.classify because a finished run is used without training anything: the web
app and `neuralab predict` load a classifier, and training.evaluate judges it on its test set.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import numbers
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from neuralab import runs
from neuralab.data.pictures import MAX_SIDE
from neuralab.errors import NeuralabError, ParameterError, by
from neuralab.models.summary import in_eval_mode
from neuralab.runs import Kind, Run
from neuralab.training.checkpoint import check_fits, load_weights
from neuralab.training.preprocess import Preprocess, described, invert_choice, pixels
from neuralab.training.trainer import nchw


PREDICT_BATCH = 256  # images normalised and classified at a time


def _placement(model: torch.nn.Module) -> tuple[torch.device, torch.dtype]:
    """Where ``model`` computes and in which float type: those of its first floating-point
    weight or buffer (the CPU and float32 for a model without one)."""
    tensors = itertools.chain(model.parameters(), model.buffers())
    t = next((t for t in tensors if t.is_floating_point()), None)
    return (t.device, t.dtype) if t is not None else (torch.device("cpu"), torch.float32)


@dataclass
class Classifier:
    """A trained model with what it needs to take raw images: classes and preprocessing."""
    model: torch.nn.Module
    classes: list[str]
    preprocess: Preprocess
    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.model, torch.nn.Module):
            raise ParameterError("model", type(self.model).__name__, "give the trained torch.nn.Module (a run's: "
                                                                     "load_classifier)")
        if not isinstance(self.classes, (list, tuple, np.ndarray)) or len(self.classes) < 2:
            # a string would be read as its letters, one class each
            raise ParameterError("classes", self.classes, "give the class names as a list, one for each of the "
                                                          "model's outputs, in their order")
        self.classes = list(self.classes)
        outputs = _last_layer_outputs(self.model)
        if outputs is not None and outputs != len(self.classes):
            raise _classes_mismatch(len(self.classes), (outputs,))
        if not isinstance(self.preprocess, Preprocess):
            raise ParameterError("preprocess", type(self.preprocess).__name__, "give a Preprocess: the training "
                                 "images' Preprocess.fit(x), or the run's (load_classifier)")

    @torch.inference_mode()
    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """(N, C, H, W) uint8 -> (N, classes) probabilities (the softmax of the logits), computed
        PREDICT_BATCH images at a time: the normalised floats of 20,000 photos would not fit.
        ``images``: a NumPy array, or a torch tensor of the same (taken as NumPy). The model's
        layers are put back in the modes they had (a module in the middle of its training).
        The images go where the model's weights are (a GPU, after training) and in their float
        type; the probabilities come back as float32 on the CPU."""
        if isinstance(images, torch.Tensor):  # the same pixels as torch holds them
            images = images.numpy(force=True)
        self._check(images)
        with in_eval_mode(self.model):
            return self._probabilities(images)

    def _probabilities(self, images: np.ndarray) -> np.ndarray:
        """predict_proba's, the model in eval mode."""
        device, dtype = _placement(self.model)
        out = []
        for i in range(0, len(images), PREDICT_BATCH):
            # uint8 crosses to the device, a quarter of the floats it becomes there
            x = self.preprocess.normalise(nchw(pixels(images[i:i + PREDICT_BATCH])).to(device))
            logits = self.model(x.to(dtype))
            if isinstance(logits, (tuple, list, dict)):  # (logits, features): refused as training refuses it
                from neuralab.training.module_check import output_refusal

                shape = f"({', '.join(['N', *map(str, self.preprocess.input_shape)])})"
                raise NeuralabError(output_refusal(self.name, shape, logits, len(x), len(self.classes)))
            if logits.dim() == 0 or logits.shape[0] != len(x):
                raise _batch_lost(self.name, len(x), tuple(logits.shape))
            if logits.shape[1:] != (len(self.classes),):
                raise _classes_mismatch(len(self.classes), tuple(logits.shape[1:]))
            out.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
        return np.concatenate(out or [np.empty((0, len(self.classes)), np.float32)])

    def _check(self, images) -> None:
        """Pictures as the model was trained on: pixels 0-255 would be read wrong as floats in
        [0, 1] without an error, so anything but uint8 of the input shape is refused."""
        want = by(self.preprocess.input_shape)
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or \
                tuple(images.shape[1:]) != tuple(self.preprocess.input_shape):
            raise ParameterError("images", described(images), f"give uint8 pixels (0-255) of (N, "
                                 f"{want.replace('x', ', ')}) (channels, height, width), as load_images gives them")

    def predict(self, images: np.ndarray) -> np.ndarray:
        """(N, C, H, W) uint8 -> (N,) class names, the most probable of each image (as scikit-learn's)."""
        return np.asarray(self.classes)[self.predict_proba(images).argmax(1)]

    def load_images(self, paths, invert: str | bool = "no", return_inverted: bool = False,
                    max_pixels: int | None = None):
        """Picture files of any size and colour mode -> (N, C, H, W) uint8 at the model's input size.

        ``paths``: files, or a picture file's bytes (an upload: its errors name it "upload"), as
        the web app's classifier page reads them, so that the page and `neuralab predict` give a
        picture the same input. ``invert`` "yes" (True) inverts every picture, into MNIST's light on
        dark; "no" (False) none; "auto" those drawn dark on light (a photo, a drawing on paper) for a
        model trained on light-on-dark pictures, none of whose classes was mostly drawn so
        (``Preprocess.inverts``), as the web app's upload does (a guess from the picture's border,
        so never the default). With
        ``return_inverted``, also which pictures were inverted, (N,) bool. ``max_pixels``: pictures
        of more pixels are refused from their header (the reader's cap where None).

        Transparent pixels: for a one-channel model laid on black under light strokes and on
        white under dark ones, for a colour model on white, as a folder's pictures are read for
        training (read_image), then inverted or not as for any picture.
        """
        from neuralab.data.pictures import MAX_PIXELS, decode_image, read_image

        invert = invert_choice(invert)
        if isinstance(paths, (str, os.PathLike, bytes)):  # one picture, not its name's letters
            paths = [paths]
        c, h, w = self.preprocess.input_shape
        mode, cap = "L" if c == 1 else "RGB", max_pixels or MAX_PIXELS
        out = np.empty((len(paths), c, h, w), dtype=np.uint8)
        inverted = np.zeros(len(paths), dtype=bool)
        for i, path in enumerate(paths):
            # resized while read, as a folder's pictures are: inverted after, at the model's size
            # (reading the picture again at its own would cost a large photo's decode)
            img = (decode_image(path, "upload", mode, cap, size=(h, w)) if isinstance(path, bytes)
                   else read_image(path, mode, cap, size=(h, w)))
            inverted[i] = self.preprocess.inverts(img, invert)
            img = 255 - img if inverted[i] else img
            out[i] = img[None] if c == 1 else img.transpose(2, 0, 1)
        return (out, inverted) if return_inverted else out

    def drawn_dark_on_light(self, images: np.ndarray) -> np.ndarray:
        """(N, C, H, W) uint8 as load_images gives them -> (N,) bool: the pictures that look drawn
        dark on light for this model, which takes light-on-dark ones (``Preprocess.inverts``'s
        "auto")."""
        return np.array([self.preprocess.inverts(im[0] if im.shape[0] == 1 else im.transpose(1, 2, 0), "auto")
                         for im in images], dtype=bool)

    def __repr__(self) -> str:
        # A cell ending in `clf` shows what the classifier takes and gives, not the network's
        # whole module tree (hundreds of lines for GoogLeNet) and every class name; .model has those
        from neuralab.data.images import listed
        from neuralab.models import count_parameters

        names = listed(self.classes)
        return (f"Classifier({self.name!r}: uint8 images {tuple(self.preprocess.input_shape)} -> classes [{names}], "
                f"{count_parameters(self.model):,} parameters)")

    def top_k(self, probs: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        """The ``k`` most probable (class, probability) of each row of ``probs`` (N, classes), as
        predict_proba gives them; all the classes where there are fewer than ``k``."""
        probs = np.asarray(probs)
        if probs.ndim != 2 or probs.shape[1] != len(self.classes):
            raise ParameterError("probs", f"shape {probs.shape}", f"give (N, {len(self.classes)}) probabilities, as "
                                                                  "predict_proba gives them; one image's as probs[None]")
        if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
            raise ParameterError("k", k, "give how many classes to list for each image, a whole number of at least 1")
        order = np.argsort(-probs, axis=1)[:, :k]
        return [[(self.classes[j], float(p[j])) for j in row] for p, row in zip(probs, order)]


def _last_layer_outputs(model: torch.nn.Module) -> int | None:
    """How many outputs ``model`` gives an image where its structure alone says so, with no images
    to run it on: a Linear layer, or an nn.Sequential (nested or not) ending in one; None where
    only a forward would tell (a module with its own forward, a last layer of any other kind)."""
    # a subclass with a forward of its own may give another layer's outputs (a head beside the last)
    while isinstance(model, torch.nn.Sequential) and type(model).forward is torch.nn.Sequential.forward and len(model):
        model = model[-1]
    return model.out_features if isinstance(model, torch.nn.Linear) else None


def _batch_lost(name: str, batch: int, shape: tuple) -> NeuralabError:
    """The refusal of outputs ``shape`` for ``batch`` images whose first size is not the batch's:
    the model's fault, whatever the class names (a .squeeze() takes a batch of one's axis)."""
    from neuralab.training.module_check import BATCH_FIRST, SQUEEZE

    lost = len(shape) == 1 and batch == 1
    why = (f"its output lost the batch axis: {SQUEEZE}" if lost
           else f"the first size of its output is not the batch's: {BATCH_FIRST}")
    return NeuralabError(f"{name}: the model gives outputs of {shape} for {batch} image{'s' if batch != 1 else ''}, "
                         f"not one row per image; {why}")


def _classes_mismatch(classes: int, outputs: tuple) -> NeuralabError:
    return NeuralabError(f"`classes` names {classes} classes, but the model gives outputs of {outputs} per image; "
                         "give one class name per output")


MAX_CLASSES = 100_000


def checked_meta(run: Run) -> dict:
    """model.json of a classifier run, every field checked for type and bounds (it may come
    from anyone: a downloaded run) before anything is built from it."""
    from neuralab.models import ARCHITECTURES
    from neuralab.training.source import check_record

    path = run / runs.MODEL
    meta = run.model_meta()

    def bad(name: str, why: str) -> NeuralabError:
        return NeuralabError(f"{path}: field {name!r} {why}")

    for name in ("architecture", "input_shape", "num_classes", "classes", "preprocess"):
        if name not in meta:
            raise bad(name, "is missing")
    kind = check_record(meta.get("source"), str(path))["type"]
    if kind == "zoo" and meta["architecture"] not in ARCHITECTURES:
        raise bad("architecture", f"is {meta['architecture']!r}; known: {', '.join(ARCHITECTURES)}")
    if kind != "zoo" and not str(meta["architecture"]).startswith(f"{kind}:"):
        raise bad("architecture", f"is {meta['architecture']!r}; a {kind} model's starts with '{kind}:'")
    shape = meta["input_shape"]
    if not (isinstance(shape, list) and len(shape) == 3 and all(type(v) is int for v in shape)):
        raise bad("input_shape", f"is {shape!r}; expected [channels, height, width] as 3 whole numbers")
    if shape[0] not in (1, 3) or not all(1 <= v <= MAX_SIDE for v in shape[1:]):
        raise bad("input_shape", f"is {shape}; expected 1 or 3 channels and sides of 1 to {MAX_SIDE} pixels")
    k = meta["num_classes"]
    if type(k) is not int or not 2 <= k <= MAX_CLASSES:
        raise bad("num_classes", f"is {k!r}; expected a whole number from 2 to {MAX_CLASSES:,}")
    classes = meta["classes"]
    if not isinstance(classes, list) or len(classes) != k:
        raise bad("classes", f"must list {k} class names (num_classes), found "
                             f"{len(classes) if isinstance(classes, list) else type(classes).__name__}")
    if not all(isinstance(c, str) for c in classes):
        raise bad("classes", "must list the class names as text")
    pre = meta["preprocess"]
    # 'light_borders' is recorded since "auto" invert asks whether the training pictures had light borders
    if not isinstance(pre, dict) or not {"mean", "std"} <= set(pre) <= {"mean", "std", "light_borders"}:
        raise bad("preprocess", "must hold exactly 'mean' and 'std', and 'light_borders' where it was recorded, found "
                                f"{sorted(pre) if isinstance(pre, dict) else pre!r}")
    shares = pre.get("light_borders", 0.0)
    # a share of all the training pictures is how runs recorded it before it was per class
    listed = shares if isinstance(shares, list) else [shares]
    if not (0 < len(listed) <= k and all(type(v) in (int, float) and 0 <= v <= 1 for v in listed)):
        said = json.dumps(shares)  # as JSON spells it: null, "0.5", [0.2, null]
        said = said if len(said) <= 60 else said[:57] + "..."
        if shares is None:  # NaN and Infinity in the file are read as null
            said += " or not a number"
        raise bad("preprocess.light_borders", f"is {said}; expected the share of each class's training pictures "
                                              f"with a light border, from 0 to 1: a list of at most {k} (num_classes)")
    for key in ("mean", "std"):
        values = pre[key]
        if not (isinstance(values, list) and len(values) == shape[0]
                and all(isinstance(v, (int, float)) and np.isfinite(v) for v in values)):
            raise bad(f"preprocess.{key}", f"must be {shape[0]} finite numbers (one per channel)")
    if min(pre["std"]) <= 0:
        raise bad("preprocess.std", f"is {pre['std']}; every standard deviation must be above 0")
    if not isinstance(meta.get("options", {}), dict):
        raise bad("options", "must be an object of model options")
    return meta


def network(meta: dict, run_dir: Path, trust_code: bool = False, device=None):
    """The untrained network of a checked model.json: from the zoo, a Keras spec (no code
    runs), or the run's copy of PyTorch code (only with ``trust_code``)."""
    from neuralab.models import build_model
    from neuralab.training.keras_model import keras_classifier
    from neuralab.training.module_check import checked_module
    from neuralab.training.source import KERAS, ZOO, ModelNeeded, rebuild

    source = meta.get("source") or {"type": ZOO}
    shape, k = tuple(meta["input_shape"]), meta["num_classes"]
    with torch.device(device) if device else contextlib.nullcontext():
        if source["type"] == ZOO:
            return build_model(meta["architecture"], shape, k, **meta.get("options", {}))
        if source["type"] == KERAS:
            return keras_classifier(source["spec"], None, shape, k, meta["architecture"])
    if source.get("file") is None:
        raise ModelNeeded(run_dir)
    return checked_module(rebuild(source, run_dir, trust_code), meta["architecture"], shape, k)


def given_module(model, meta: dict, run_dir: Path, weights: Path | None, prefix: str = ""):
    """The caller's ``model`` for a run whose PyTorch model the run cannot rebuild, checked
    against the run's weights (``training.source.check_given``; ``prefix``: the tensors' in
    the file), then one pass on the run's input shape giving one output per class."""
    from neuralab.training.module_check import checked_module
    from neuralab.training.source import check_given

    check_given(model, meta, run_dir, weights, prefix, "the zoo's", "model")
    shape = tuple(meta["input_shape"])
    device = next((t.device for t in model.state_dict().values()), None)
    return checked_module(model, meta["architecture"], shape, meta["num_classes"], torch.zeros(2, *shape, device=device))


def _checked_model(meta: dict, weights: Path, run_dir: Path, trust_code: bool = False, model=None):
    """The model of ``meta`` with ``weights`` loaded, after the structure (built without
    memory, on the meta device, where it is not the user's code) was matched against the
    shapes in the weights' header; ``model``: the caller's module, for a run that cannot
    rebuild its own, loaded in place and moved to the CPU, where a Classifier computes."""
    if model is not None:
        model = given_module(model, meta, run_dir, weights)
        load_weights(weights, model)
        return model.cpu().eval()
    source = (meta.get("source") or {}).get("type", "zoo")
    try:
        model = network(meta, run_dir, trust_code, device=None if source == "torch" else "meta")
    except NeuralabError as e:
        if source == "torch":  # the run's code, or the trust it needs, names itself
            raise
        raise NeuralabError(f"{run_dir / runs.MODEL}: {e}") from None  # an option or size the model refuses
    check_fits(weights, model, f"{runs.MODEL}'s model")
    if source != "torch":
        model = network(meta, run_dir)
    load_weights(weights, model)
    return model.eval()


def load_classifier(run_dir: str | Path, trust_code: bool = False, model=None) -> Classifier:
    """Rebuild a trained classifier from its run directory alone (JSON + safetensors; a
    Keras model from its stored spec). A run of PyTorch code runs the run's copy of that
    code only with ``trust_code``, after checking its SHA-256 (training.source). A run whose
    PyTorch model it cannot rebuild loads into ``model``, the module it was trained with,
    built the same way (checked against the run first)."""
    run = Run.open(run_dir, Kind.CLASSIFIER)
    meta = checked_meta(run)
    weights = run.weights()
    model = _checked_model(meta, weights, run.path, trust_code, model)
    pre = Preprocess(tuple(meta["input_shape"]), **meta["preprocess"])
    return Classifier(model, meta["classes"], pre, meta["architecture"])

