"""What a classifier run does to pictures before its model: ``Preprocess`` keeps the training
images' per-channel mean and std and how many of each class's have a light border (stored with the
model, in model.json: ``stored``) and turns uint8 pixels into the normalised floats the model
takes; it also says whether a picture is to be inverted for a model trained on light-on-dark
pictures (``inverts``, ``invert_choice``). ``pixels``
makes images a tensor without copying them where torch may share NumPy's memory.

Apart from training.classify because training a classifier and using a trained one
(training.trained_classifier) both feed pictures to the model this one way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from neuralab.errors import ParameterError
from neuralab.training.trainer import nchw

# Training pictures are counted from an evenly spaced sample of at most this many: start-up
# stays short on a large set, and a folder's, sorted by class, is counted over every class
SAMPLE = 20_000
# The share of a class's training pictures with a light border from which a picture with one is
# the model's own kind, taken as it is by "auto": microscopy's class of dark cells on a light field
# has them all; a few photos on paper among MNIST-like digits leave each class far below
MOSTLY = 0.5


@dataclass
class Preprocess:
    """How raw uint8 images become model input; stored with the model."""
    input_shape: tuple[int, int, int]  # (C, H, W)
    mean: list[float]
    std: list[float]
    # The share of each class's training images with a light border (pictures.light_bordered), in
    # the order of the labels; one share of them all where fit had no labels, or as runs recorded
    # it before it was per class; None where it was not recorded: a run trained before it was, a
    # Keras model's raw pixels
    light_borders: list[float] | float | None = None
    _stats: dict = field(default_factory=dict, init=False, repr=False, compare=False)  # device -> (mean, std)

    def __post_init__(self):
        shares = self.light_borders
        if shares is None:
            return
        listed = shares if isinstance(shares, list) else [shares]
        if not listed or not all(isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_))
                                 and 0 <= v <= 1 for v in listed):
            raise ParameterError("light_borders", shares, "give the share of the training pictures with a light "
                                                          "border, from 0 to 1, or a list of them, one per class "
                                                          "(Preprocess.fit), or None")

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray | None = None) -> "Preprocess":
        """Per-channel mean and std of the first 20,000 training images (N, C, H, W) uint8, on
        [0, 1], and the share of each class's images with a light border, by their labels ``y``
        (N,), or of them all without labels, from an evenly spaced sample."""
        from neuralab.data.pictures import light_bordered

        if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 4 or not len(x):
            raise ParameterError("x", described(x), "give the training images as uint8 pixels (0-255) of "
                                                     "(N, C, H, W), at least one, as load_image_data gives them")
        if y is not None and not (isinstance(y, np.ndarray) and y.shape == (len(x),)
                                  and np.issubdtype(y.dtype, np.integer) and y.min() >= 0):
            raise ParameterError("y", described(y), f"give the {len(x)} training labels as whole numbers from 0, "
                                                     "one per image, as load_image_data gives them, or None")
        step = -(-len(x) // SAMPLE)
        sample = x[::step]  # every class of a folder read in class order
        # The mean and std are of the first SAMPLE images, as every run's have been: other ones
        # change every run's numbers (the fast recipe's test accuracy 99.22% -> 99.06% with the
        # evenly spaced sample's). In a folder read in class order they are the first classes':
        # the run trains and predicts with the same ones (model.json), so nothing mismatches.
        # From each channel's histogram of the 256 levels: the same mean and std as over the
        # pixels in float64, without a float copy of the images (0.5 s on MNIST, start-up).
        # torch counts uint8 as it is; NumPy's bincount first widens it to int64 (0.2 s).
        counts = np.stack([torch.bincount(torch.from_numpy(np.array(x[:SAMPLE, c]).ravel()), minlength=256).numpy()
                           for c in range(x.shape[1])])
        levels = np.arange(256) / 255.0
        n = counts.sum(1)
        mean = counts @ levels / n
        std = np.sqrt((counts * (levels - mean[:, None]) ** 2).sum(1) / n)
        light = light_bordered(sample)
        if y is None:
            shares = [float(light.mean())]
        else:
            labels = y[::step].astype(np.int64)
            shares = (np.bincount(labels, weights=light) / np.maximum(np.bincount(labels), 1)).tolist()
        return cls(tuple(x.shape[1:]), mean.tolist(), np.maximum(std, 1e-3).tolist(), shares)

    def stored(self) -> dict:
        """What model.json keeps of it under "preprocess", which ``Preprocess(input_shape, **stored)``
        takes back: the mean and std, and the shares of light borders where they are known."""
        kept = {"mean": self.mean, "std": self.std}
        if self.light_borders is not None:
            kept["light_borders"] = self.light_borders
        return kept

    def __call__(self, x: np.ndarray) -> torch.Tensor:
        """(N, C, H, W) uint8 -> normalised float32 tensor with (N, C, H, W) strides, as any
        PyTorch model takes it (the trainer picks its own layout for ``normalise``)."""
        return self.normalise(nchw(pixels(x)))

    def normalise(self, t: torch.Tensor) -> torch.Tensor:
        """A batch (N, C, H, W) of uint8 pixels, on any device -> a new normalised float32 tensor:
        the trainer's ``inputs``, so that a run holds its images as uint8."""
        # Made once per device: on a GPU, tensors made from lists at every batch would be blocking
        # copies, each waiting for every step queued before it.
        if t.device not in self._stats:
            self._stats[t.device] = tuple(torch.tensor(v, device=t.device).view(1, -1, 1, 1) for v in (self.mean, self.std))
        mean, std = self._stats[t.device]
        return t.to(torch.float32, copy=True).div_(255.0).sub_(mean).div_(std)

    def expects_light_on_dark(self) -> bool:
        """Whether the model was trained on light-on-dark pictures, MNIST's way, so that a picture on
        paper must be inverted for it. The training data's mean tells: MNIST's is 0.13, digits on
        paper 0.69. A colour model never is: a light border is only a light background there. Keras
        runs keep no statistics (mean 0, std 1) and are taken to be MNIST-like, as one-channel
        classifiers mostly are."""
        return self.input_shape[0] == 1 and self.mean[0] <= 0.5

    def inverts(self, picture: np.ndarray, invert: str | bool = "auto") -> bool:
        """Whether ``picture`` (H, W) or (H, W, 3) uint8 is to be inverted for this model: with
        ``invert`` "auto" where it is drawn dark on light (``looks_dark_on_light``), the model
        expects light on dark (``expects_light_on_dark``) and no class of its training pictures
        was mostly drawn so too (``saw_light_borders``); always with "yes", never with "no". True and False are
        "yes" and "no". The one rule for `neuralab predict`'s note and the web app's "auto"."""
        from neuralab.data.pictures import looks_dark_on_light

        invert = invert_choice(invert)
        if invert != "auto":
            return invert == "yes"
        return self.expects_light_on_dark() and not self.saw_light_borders() and looks_dark_on_light(picture)

    def saw_light_borders(self) -> bool:
        """Whether MOSTLY or more of some class's training pictures had a light border: a picture
        with one is then like those the model learnt from, not a drawing on paper for an MNIST-like
        model (one-channel microscopy, dark cells on a light field in one class, light ones on a
        dark one in another). MNIST and Fashion-MNIST have none, a few photos on paper among
        MNIST-like digits far fewer. A share of them all (fit without labels, a run recorded before
        it was per class) tells where it is MOSTLY or more. Where none was recorded, the training
        mean alone decides (``expects_light_on_dark``), as it did before it was."""
        shares = self.light_borders
        if shares is None:
            return False
        return max(shares if isinstance(shares, list) else [shares]) >= MOSTLY


def invert_choice(invert) -> str:
    """``invert`` as one of INVERT: True and False, which callers of old passed, are "yes" and "no"."""
    from neuralab.data.pictures import INVERT

    if isinstance(invert, (bool, np.bool_)):
        return "yes" if invert else "no"
    if not isinstance(invert, str) or invert not in INVERT:
        raise ParameterError("invert", invert, "choose auto (invert a picture drawn dark on light for a model "
                                               "trained on light-on-dark pictures), yes or no")
    return invert


def described(images) -> str:
    """What was given as images, for an error: "float32 of (2, 28, 28)", or its type."""
    if isinstance(images, np.ndarray):
        return f"{images.dtype} of {tuple(images.shape)}"
    return type(images).__name__


def pixels(x: np.ndarray) -> torch.Tensor:
    """Images as a tensor of the same dtype: NumPy's memory where torch may share it, a copy
    where it may not (a dataset's read-only memory-mapped cache, a flipped view)."""
    shareable = x.flags.writeable and min(x.strides, default=0) >= 0
    return torch.from_numpy(x if shareable else np.array(x))
