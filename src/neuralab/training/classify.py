"""Image classification end to end: load a dataset, build a zoo model, train it on the
trainer, evaluate on the test set and leave a complete run directory behind."""

from __future__ import annotations

import contextlib
import itertools
import numbers
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from neuralab import runs
from neuralab.data.digest import SPLITS, data_digest, listing_sha256, split_record
from neuralab.data.pictures import MAX_SIDE
from neuralab.errors import NeuralabError, ParameterError
from neuralab.runs import Kind, Run
from neuralab.training.checkpoint import check_fits, load_weights
from neuralab.training.config import RECIPES, TrainConfig  # noqa: F401  (re-exported; torch-free there)
from neuralab.training.config import (RESUME_FROM, ClassifierConfig, Diverged, before_compile, check_config, given_fields,
                                      replaced,
                                      with_compile)
from neuralab.training.trainer import (CLASSIFICATION, ModelFailed, Trainer, check_train_config, generators_kept, nchw,
                                      seed_everything)


@dataclass
class Preprocess:
    """How raw uint8 images become model input; stored with the model."""
    input_shape: tuple[int, int, int]  # (C, H, W)
    mean: list[float]
    std: list[float]
    _stats: dict = field(default_factory=dict, init=False, repr=False, compare=False)  # device -> (mean, std)

    @classmethod
    def fit(cls, x: np.ndarray) -> "Preprocess":
        """Per-channel mean and std of the training images (N, C, H, W) uint8, on [0, 1]."""
        if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 4 or not len(x):
            raise ParameterError("x", _described(x), "give the training images as uint8 pixels (0-255) of "
                                                     "(N, C, H, W), at least one, as load_image_data gives them")
        sample = x[: 20_000]
        # From each channel's histogram of the 256 levels: the same mean and std as over the
        # pixels in float64, without a float copy of the images (0.5 s on MNIST, start-up).
        # torch counts uint8 as it is; NumPy's bincount first widens it to int64 (0.2 s).
        counts = np.stack([torch.bincount(torch.from_numpy(np.array(sample[:, c]).ravel()), minlength=256).numpy()
                           for c in range(x.shape[1])])
        levels = np.arange(256) / 255.0
        n = counts.sum(1)
        mean = counts @ levels / n
        std = np.sqrt((counts * (levels - mean[:, None]) ** 2).sum(1) / n)
        return cls(tuple(x.shape[1:]), mean.tolist(), np.maximum(std, 1e-3).tolist())

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
        ``invert`` "auto" where it is drawn dark on light (``looks_dark_on_light``) and the model
        expects light on dark (``expects_light_on_dark``); always with "yes", never with "no".
        True and False are "yes" and "no"."""
        from neuralab.data.pictures import looks_dark_on_light

        invert = invert_choice(invert)
        if invert != "auto":
            return invert == "yes"
        return self.expects_light_on_dark() and looks_dark_on_light(picture)


def invert_choice(invert) -> str:
    """``invert`` as one of INVERT: True and False, which callers of old passed, are "yes" and "no"."""
    from neuralab.data.pictures import INVERT

    if isinstance(invert, (bool, np.bool_)):
        return "yes" if invert else "no"
    if not isinstance(invert, str) or invert not in INVERT:
        raise ParameterError("invert", invert, "choose auto (invert a picture drawn dark on light for a model "
                                               "trained on light-on-dark pictures), yes or no")
    return invert


def _described(images) -> str:
    """What was given as images, for an error: "float32 of (2, 28, 28)", or its type."""
    if isinstance(images, np.ndarray):
        return f"{images.dtype} of {tuple(images.shape)}"
    return type(images).__name__


def pixels(x: np.ndarray) -> torch.Tensor:
    """Images as a tensor of the same dtype: NumPy's memory where torch may share it, a copy
    where it may not (a dataset's read-only memory-mapped cache, a flipped view)."""
    shareable = x.flags.writeable and min(x.strides, default=0) >= 0
    return torch.from_numpy(x if shareable else np.array(x))


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
        The images go where the model's weights are (a GPU, after training) and in their float
        type; the probabilities come back as float32 on the CPU."""
        self._check(images)
        self.model.eval()
        device, dtype = _placement(self.model)
        out = []
        for i in range(0, len(images), PREDICT_BATCH):
            # uint8 crosses to the device, a quarter of the floats it becomes there
            x = self.preprocess.normalise(nchw(pixels(images[i:i + PREDICT_BATCH])).to(device))
            logits = self.model(x.to(dtype))
            if logits.shape[1:] != (len(self.classes),):
                raise _classes_mismatch(len(self.classes), tuple(logits.shape[1:]))
            out.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
        return np.concatenate(out or [np.empty((0, len(self.classes)), np.float32)])

    def _check(self, images) -> None:
        """Pictures as the model was trained on: pixels 0-255 would be read wrong as floats in
        [0, 1] without an error, so anything but uint8 of the input shape is refused."""
        want = "x".join(map(str, self.preprocess.input_shape))
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or \
                tuple(images.shape[1:]) != tuple(self.preprocess.input_shape):
            raise ParameterError("images", _described(images), f"give uint8 pixels (0-255) of (N, "
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
        model trained on light-on-dark pictures, as the web app's upload does
        (``drawn_dark_on_light``: a guess from the picture's border, so never the default). With
        ``return_inverted``, also which pictures were inverted, (N,) bool. ``max_pixels``: pictures
        of more pixels are refused from their header (the reader's cap where None).

        Transparent pixels: for a model trained on light-on-dark pictures, laid on black under light
        strokes and on white under dark ones (read_image's ``background="contrast"``), then
        inverted or not as for any picture: white strokes on a transparent page were a blank on
        white. For other models on white, as a folder's pictures were read for training.
        """
        from neuralab.data.pictures import MAX_PIXELS, decode_image, read_image

        invert = invert_choice(invert)
        if isinstance(paths, (str, os.PathLike, bytes)):  # one picture, not its name's letters
            paths = [paths]
        c, h, w = self.preprocess.input_shape
        mode, cap = "L" if c == 1 else "RGB", max_pixels or MAX_PIXELS
        background = "contrast" if self.preprocess.expects_light_on_dark() else "white"
        out = np.empty((len(paths), c, h, w), dtype=np.uint8)
        inverted = np.zeros(len(paths), dtype=bool)
        for i, path in enumerate(paths):
            # resized while read, as a folder's pictures are: inverted after, at the model's size
            # (reading the picture again at its own would cost a large photo's decode)
            img = (decode_image(path, "upload", mode, cap, size=(h, w), background=background) if isinstance(path, bytes)
                   else read_image(path, mode, cap, size=(h, w), background=background))
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


def _classes_mismatch(classes: int, outputs: tuple) -> NeuralabError:
    return NeuralabError(f"`classes` names {classes} classes, but the model gives outputs of {outputs} per image; "
                         "give one class name per output")


SHOWN_EPOCHS = 12  # a result's display lists this many epochs at most: the first and the last half


@dataclass
class RunResult:
    run_dir: Path
    history: list[dict]
    test: dict
    best_epoch: int
    seconds: float
    params: int

    def __repr__(self) -> str:
        # What a notebook cell ending in `result` shows (and the REPL): the figures a reader looks
        # for and one line per epoch, as the training printed them, not a dump of every float
        from neuralab.training.progress import format_metrics

        test = format_metrics({f"test_{k}": v for k, v in self.test.items()})
        lines = [f"RunResult {self.run_dir}: {test}, best epoch {self.best_epoch} of {len(self.history)}, "
                 f"{self.params:,} parameters, {self.seconds:.1f} s of training"]
        epochs = [f"  epoch {r.get('epoch', '?')}  {format_metrics(r)}" for r in self.history]
        if len(epochs) > SHOWN_EPOCHS:
            half = SHOWN_EPOCHS // 2
            epochs[half:-half] = [f"  ... {len(epochs) - 2 * half} more epochs in .history"]
        lines += epochs
        lines.append("fields: run_dir, history (one dict per epoch), test, best_epoch, seconds, params")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        """Jupyter's display: the text above, then the run's learning curves and confusion matrix
        as its report drew them (nothing is drawn again), where they are still on disk."""
        from neuralab.reports.html import notebook_display

        figures = runs.CLASSIFIER_FIGURES
        return notebook_display(repr(self), Run(self.run_dir), [(figures["learning_curves"], "learning curves"),
                                                               (figures["confusion_matrix"], "confusion matrix")])


def classifier_meta(architecture: str, classes, pre: Preprocess, num_params: int, source: dict | None = None,
                    options: dict | None = None) -> dict:
    """model.json of a classifier run: what rebuilds the model and feeds it raw images.
    ``source`` (training.source's record) says where a model not from the zoo came from;
    ``options`` are a zoo model's (ClassifierConfig.model_options)."""
    meta = {
        "architecture": architecture,
        "options": dict(options or {}),
        "input_shape": list(pre.input_shape),
        "num_classes": len(classes),
        "classes": list(classes),
        "preprocess": {"mean": pre.mean, "std": pre.std},
        "parameters": num_params,
    }
    if source is not None and source.get("type") != "zoo":
        meta["source"] = source
    return meta


@generators_kept()  # the run seeds the generators; the caller's come back after
def train_classifier(config: ClassifierConfig, out: str | Path | None = None, overwrite: bool = False,
                     verbose: bool = True, callbacks=(), optimizer=None) -> RunResult:
    """Train ``config.model`` on ``config.data``, test it, and leave a run folder; returns the
    run's results and figures (RunResult).

    Parameters:
        config: a ClassifierConfig: the model, the data and the budget (``config.train``).
            ``config.model`` is a zoo name, a Keras file, "FILE.py[:NAME]" (a Keras model or a
            torch.nn.Module), or such a model object. A Keras model trains with its compile()'s
            optimizer, loss and learning rate (and fit()'s epochs and batch size) in the
            TrainConfig fields you did not name: one you named, as ``TrainConfig(epochs=10)``,
            wins at any value.
        out: the run's folder. None: a new one, runs/MODEL-DATA-YYYYmmdd-HHMMSS (under
            $NEURALAB_RUNS where that is set).
        overwrite: replace a finished run already in ``out``; without it such a run is refused.
        verbose: print the model's summary, one line per epoch and the results.
        callbacks: objects the trainer calls as training goes (neuralab.training.callbacks).
        optimizer: an optimizer class or factory in place of ``config.train.optimizer``; the
            run records its name, and is resumed with the same one.

    The run is seeded with ``config.train.seed``; Python's, NumPy's and PyTorch's generators
    are yours again afterwards, as they were before the call."""
    return _train(config, out, overwrite, verbose, callbacks, optimizer)


def _train(config: ClassifierConfig, out, overwrite: bool, verbose: bool, callbacks, optimizer,
           resumed: bool = False, device: str | None = None) -> RunResult:
    """``train_classifier``; ``resumed``: a resume starting its run again in place (Run.create's),
    on ``device``, the session's (``session_device``), while config.json keeps the run's."""
    from neuralab.data import load_image_data
    from neuralab.models import count_parameters
    from neuralab.training.device import dist_info, on_rank_0

    check_config(config, ClassifierConfig)
    if out is not None:
        runs.folder_path(out, "out")
    config.check()
    split_given = _split_given(config)  # before _resolved's copy forgets it
    config = _resolved(config)
    if optimizer is not None:
        from neuralab.training.compile import python_name

        config.train.optimizer = python_name(optimizer)
    given = given_fields(config.train) | split_given  # what the caller gave, read before the copies below forget it
    checked = before_compile(config.train, given)  # before the model file is read
    checked.check()  # which makes NumPy numbers Python's
    config = replace(config, train=replace(checked, momentum=config.train.momentum))
    if config.train.patience > 0 and config.val_fraction == 0:
        raise ParameterError("patience", config.train.patience, "early stopping watches the validation set; "
                             "give `val_fraction` above 0")
    seed_everything(config.train.seed)  # a PyTorch module from a file is built as it is read
    source = model_source(config.model)
    config = run_config(config, source, given)
    split_taken = bool(_split_from_fit(source, given))
    said = None if resumed else _settings_said(source, given)  # a resume's are the run's own, whatever gave them
    config.train.check()
    data = load_image_data(config.data, config.data_dir, **config.data_options)
    check_data(data)
    pre = _keras_inputs(source, data.input_shape) or Preprocess.fit(data.train.x)
    seed_everything(config.train.seed)
    model = source.classifier(data.input_shape, len(data.classes), config.model_options, pre(data.train.x[:2]))
    meta = classifier_meta(source.architecture, data.classes, pre, count_parameters(model), source.record(),
                           config.model_options)

    path = Path(out) if out is not None else runs.default_dir(source.architecture, Path(config.data).name)
    train = replace(config.train, device=device) if device else config.train
    trainer = Trainer(model, train, CLASSIFICATION, path, meta, verbose=verbose, callbacks=callbacks,
                      optimizer=optimizer, inputs=pre.normalise)
    # A model that fails in training mode is refused here, not in a run left behind half-made;
    # the first full batch is all the check reads.
    first = data.train.x[:config.train.batch_size]
    trainer.check_model(pixels(first), torch.from_numpy(data.train.y[:len(first)]), size=len(data.train))
    summary_text = _summary_text(trainer, config, data)

    # Inputs are valid: only now does anything touch the disk.
    is_main = dist_info().is_main
    fresh = out is None or not path.exists()
    made = []

    def create() -> str:
        made.append(Run.create(path, overwrite, numbered=out is None, resumed=resumed))
        return str(made[0].path)

    # every process takes rank 0's folder (a default name's time, or its NAME-2, may differ), or its refusal
    where = on_rank_0(create, trainer.device)
    run = made[0] if made else Run(Path(where))
    trainer.run_dir = run.path
    try:
        if is_main:
            source.copy_code(run.path)
            run.write_record(Kind.CLASSIFIER, asdict(config), trainer.environment, _images_record(data))
            run.write_json(runs.MODEL, meta)
        # a resume of a run stopped before its first checkpoint: the trainer says it starts again
        return _fit_and_finish(trainer, run, config, data, resume=resumed, verbose=verbose,
                               summary_text=summary_text, split_taken=split_taken, settings_said=said)
    except Diverged:  # NaN weights: nothing to resume, test or report; a folder that was there stays, empty
        if is_main:
            run.discard(made=fresh)
        raise
    except ModelFailed as e:  # the user's model raised: a run that kept no epoch goes as a diverged one does
        if is_main and not runs.epoch_kept(run.path):
            run.discard(made=fresh)
        raise e.in_run(run.path, Kind.CLASSIFIER) from e.__cause__
    finally:
        run.unlock()


def _keras_inputs(source, input_shape) -> Preprocess | None:
    """What a Keras model's inputs are where its weights or its first layer fix them: a
    saved model (fine-tuned) keeps the pixels x scale it was trained on, and a model starting
    with Rescaling takes raw pixels; neuralab's own normalisation would change what it
    computes. A fresh model from code trains on neuralab's, as the zoo does (None)."""
    from neuralab.training.keras_model import keras_pixels
    from neuralab.training.source import KERAS

    if source.type != KERAS:
        return None
    from neuralab.keras.spec import rescales  # the Keras package loads h5py: only for Keras models

    if source.weights is None and not rescales(source.spec):
        return None
    _, pixels = keras_pixels(source.spec, None, input_shape[0])
    return Preprocess(tuple(input_shape), **pixels)


def model_source(model):
    """The model's ModelSource: a zoo name, a Keras file, FILE.py[:NAME], or a model object."""
    from neuralab.models import ARCHITECTURES
    from neuralab.training.source import resolve

    return resolve(model, zoo=tuple(ARCHITECTURES))


def run_config(config: ClassifierConfig, source, given: frozenset[str] | None = None) -> ClassifierConfig:
    """The config a run of ``config`` trains with and keeps in config.json, its model read as
    ``source``: folders absolute, the model as stored, and a Keras model's compile() and fit()
    settings in the fields not ``given`` (TrainConfig's, and ClassifierConfig's val_fraction; by
    default those ``config.train`` and ``config`` give, given_fields)."""
    given = given_fields(config.train) | _split_given(config) if given is None else given
    config = _resolved(config)
    return replace(config, model=_model_name(config.model, source),
                   train=with_compile(config.train, source.compile, given), **_split_from_fit(source, given))


COMPILE_FIELDS = ("optimizer", "lr", "momentum", "loss")  # what a Keras run's header says it trains with


def _settings_said(source, given: frozenset[str]) -> str:
    """Where a Keras model's optimizer, lr, momentum and loss come from, in the training header's
    words: an option ``given`` wins; the others are compile()'s where the model was compiled, and
    neuralab's defaults where it was not (a model built in a file that never calls compile())."""
    if any(k in source.compile for k in COMPILE_FIELDS):
        return "compile()'s where no option sets them"
    if given & set(COMPILE_FIELDS):
        return "neuralab's defaults where no option sets them: the model was not compiled"
    return "neuralab's defaults: the model was not compiled"


def _split_given(config: ClassifierConfig) -> frozenset[str]:
    """{"val_fraction"} where ``config``'s maker gave it (a recipe's included), else none."""
    return given_fields(config) & {"val_fraction"}


def _split_from_fit(source, given: frozenset[str]) -> dict:
    """A Keras model's fit(validation_split=...) as the run's val_fraction, where not ``given``."""
    taken = source.compile.get("val_fraction")
    return {"val_fraction": taken} if taken is not None and "val_fraction" not in given else {}


def _model_name(model, source) -> str:
    """What config.json keeps as the model: the zoo name, the file as given (absolute), or the
    architecture of a model object."""
    if source.type == "zoo" or not isinstance(model, (str, Path)):
        return source.architecture
    from neuralab.training.source import split_name

    path, name = split_name(str(model))
    return str(path.resolve()) + (f":{name}" if name else "")


def _resolved(config: ClassifierConfig) -> ClassifierConfig:
    """A copy whose folders are absolute, so that the stored config works from any folder."""
    from neuralab.data import NAMED, check_data_name

    check_data_name(config.data, "data")
    data = config.data
    if Path(data).expanduser().is_dir() and data not in NAMED:
        data = str(Path(data).expanduser().resolve())
    data_dir = str(Path(config.data_dir).expanduser().resolve()) if config.data_dir else None
    check_train_config(config.train, "train")
    return replace(config, data=data, data_dir=data_dir, train=replaced(config.train))


def check_data(data) -> None:
    """Refuse, before any training, data a classifier cannot learn from or be tested on."""
    if len(data.train) == 0:
        raise NeuralabError(f"{data.name}: the training set is empty")
    if len(data.test) == 0:  # a folder of a few pictures a class: its share for testing rounds to none
        raise NeuralabError(f"{data.name}: the test set is empty ({len(data.train) + len(data.val)} images in all); "
                            "give more images per class, or a larger `test_fraction`")
    if len(data.test) and data.test.x.shape[1:] != data.train.x.shape[1:]:
        shape = lambda x: "x".join(map(str, x.shape[1:]))  # noqa: E731
        raise NeuralabError(f"{data.name}: test images are {shape(data.test.x)} but training images are "
                            f"{shape(data.train.x)} (channels x height x width); give images of one size")
    k = len(data.classes)
    for split in ("train", "val", "test"):
        y = getattr(data, split).y
        if len(y) and (y.min() < 0 or y.max() >= k):
            bad = y.min() if y.min() < 0 else y.max()
            raise NeuralabError(f"{data.name}: {split} label {bad} is out of range for {k} classes (0..{k - 1})")
    if len(np.unique(data.train.y)) < 2:
        raise NeuralabError(f"{data.name}: every training image has the same label; a classifier needs "
                            "at least 2 classes to learn")


def _images_record(data) -> dict:
    return {"name": data.name, "classes": data.classes, "input_shape": list(data.input_shape), **split_record(data)}


@generators_kept()  # the run seeds the generators; the caller's come back after
def resume_classifier(run_dir: str | Path, verbose: bool = True, checkpoint: str = "last",
                      options: dict | None = None, callbacks=(), optimizer=None,
                      trust_code: bool = False, model=None) -> RunResult:
    """Continue an interrupted run with its stored config, from its last checkpoint or, with
    ``checkpoint="best"``, from its best epoch (when last.safetensors is damaged, say).

    Parameters:
        run_dir: the run's folder.
        verbose: print one line per epoch and the results.
        checkpoint: "last" (the default) or "best".
        options: config fields you ask for (``{"epochs": 20}``, ``{"train": ...}`` flattened):
            a resumed run keeps its config, so any that differ from it are refused, but
            ``threads`` and ``device`` (``{"device": "cpu"}``), which belong to this session: a
            job started again may land on a node with other cores, or without the GPU it started
            on; config.json keeps the run's, and its ``sessions`` records this one's.
        callbacks, optimizer: as train_classifier's; a run given an optimizer needs it again.
        trust_code: run the run's own copy of its PyTorch code (checked against its SHA-256).
        model: for a run whose PyTorch model it cannot rebuild (model.json's source has file
            null): the module it was trained with, built the same way (checked first).

    A run stopped before its first checkpoint starts again from epoch 1 in the same folder.
    Python's, NumPy's and PyTorch's generators are yours again afterwards."""
    from neuralab.data import load_image_data
    from neuralab.training.device import dist_info, on_rank_0, session_device, session_threads

    options = dict(options or {})
    device = options.pop("device", None)
    threads = TrainConfig(threads=options.pop("threads", 0))
    threads.check()  # refused as a new run's would be, before the run is read
    threads = session_threads(threads.threads)
    if checkpoint not in RESUME_FROM:
        raise ParameterError("checkpoint", checkpoint, f"choose one of: {', '.join(RESUME_FROM)}")
    run = Run.open(run_dir, Kind.CLASSIFIER)
    if run.by_keras_fit:
        raise NeuralabError(f"{run.path}: {runs.KERAS_FIT_WAY_ON}")
    _refuse_changes(run, options)
    run.refuse_finished()
    device = session_device(device, stored_config(run).train.device, run.path)
    if not (run / runs.LAST).exists():  # stopped before its first checkpoint: start it again, in place
        config = stored_config(run)
        meta = run.read(runs.MODEL) if (run / runs.MODEL).is_file() else {}
        if model is not None:  # no weights yet: the run starts again from the module's own
            config = replace(config, model=_given_module(model, checked_meta(run), run.path, None))
        elif isinstance(meta, dict) and isinstance(meta.get("source"), dict) and meta["source"].get("type") != "zoo":
            config = replace(config, model=_rebuilt(checked_meta(run), run.path, trust_code))
        elif _names_code(config.model) and not trust_code:
            from neuralab.training.source import CodeNotTrusted

            # config.json names the code and the run holds no checked copy of it yet: a run
            # from elsewhere could name any file here
            raise CodeNotTrusted(f"{run / runs.CONFIG}: the run's model is the Python code in {config.model}, which "
                                 "runs only when you trust it: read the file, then pass `trust_code`")
        with threads:
            return _train(config, run.path, True, verbose, callbacks, optimizer, resumed=True, device=device)
    # Everything that may refuse the resume comes before the lock and the files it changes
    start = _best_checkpoint(run) if checkpoint == "best" else run / runs.LAST
    config = stored_config(run)
    data = load_image_data(config.data, config.data_dir, **config.data_options)
    meta = checked_meta(run)
    check_same_data(run, data, meta["classes"], config.data_dir)
    pre = Preprocess(tuple(meta["input_shape"]), **meta["preprocess"])
    seed_everything(config.train.seed)
    if model is not None:
        model = _given_module(model, meta, run.path, start, prefix="model.")
    else:
        model = _network(meta, run.path, trust_code)
    main = dist_info().is_main

    def claim() -> None:
        run.lock()
        try:  # checked again now that no other resume can finish it while this one trains it
            run.refuse_finished()
        except BaseException:
            run.unlock()
            raise

    on_rank_0(claim, device)  # held by another process, or finished since: every process stops
    try:
        if checkpoint == "best":
            from neuralab.files import atomic_write

            with atomic_write(run.file(runs.LAST), "wb") as f:  # training goes on from the best epoch
                f.write(start.read_bytes())
        with threads:
            trainer = Trainer(model, replace(config.train, device=device), CLASSIFICATION, run.path, meta,
                              verbose=verbose, callbacks=[*callbacks, runs.SessionRecorder(run)] if main else callbacks,
                              optimizer=optimizer, inputs=pre.normalise)
            return _fit_and_finish(trainer, run, config, data, resume=True, verbose=verbose)
    except Diverged as e:  # a resumed run keeps its settings: the lower rate is a new run's
        raise e.resumed(run.path) from None
    except ModelFailed as e:  # the epochs it went on from stay
        raise e.in_run(run.path, Kind.CLASSIFIER) from e.__cause__
    finally:
        run.unlock()


def _names_code(model) -> bool:
    """Whether a stored ``config.model`` names a Python file ("net.py", "net.py:Net")."""
    from neuralab.training.source import split_name

    return isinstance(model, str) and split_name(model)[0].suffix.lower() == ".py"


def _refuse_changes(run: Run, options: dict) -> None:
    """Refuse ``options`` that differ from the run's stored config, naming each with both values."""
    stored = asdict(stored_config(run))
    flat = {**{k: v for k, v in stored.items() if k != "train"}, **stored["train"]}
    unknown = sorted(set(options) - set(flat))
    if unknown:
        raise ParameterError(unknown[0], options[unknown[0]], "is no setting of a classifier run")
    def same(name: str, a, b) -> bool:
        if name in ("data", "data_dir") and a and b and Path(a).is_dir():
            return str(Path(a).resolve()) == str(Path(b).resolve())
        return a == b or name == "model" and same_code(a, b, run)

    changed = [f"`{k}` {v!r} (the run has {flat[k]!r})" for k, v in options.items() if not same(k, v, flat[k])]
    if changed:
        raise NeuralabError(f"{run.path}: " + ", ".join(changed) + "; a resumed run keeps the settings it was "
                            "started with: resume without them, or start a new run to change them")


def same_code(typed, recorded, run: Run) -> bool:
    """Whether `model` typed again to resume ``run``, FILE.py[:NAME] (relative to the current
    folder), names the code the run was made from as the run records it, rather than as text:
    ``recorded`` is config.json's model, its file made absolute (FILE.py[:NAME]), or an
    architecture, "torch:FILE.py:NAME" (a forecaster's), which keeps the file's name alone;
    model.json's source holds the module's name in the file and the SHA-256 of the run's copy
    of it (``file``: model.py, or the file's own name). That file changed since is refused: the
    run goes on with the code it was trained with, not with the file as it is now."""
    from neuralab.data.sources import sha256
    from neuralab.training.source import CODE_FILE, TORCH, split_name

    if not isinstance(typed, (str, os.PathLike)) or not isinstance(recorded, str):
        return False
    path, name = split_name(os.fspath(typed))
    kind, _, file = recorded.partition(":")
    own, own_name = split_name(file if kind == TORCH else recorded)
    if path.suffix.lower() != ".py" or own.suffix.lower() != ".py":
        return False
    meta = runs.json_object(run.read(runs.MODEL)) if (run / runs.MODEL).is_file() else {}
    source = runs.json_object(meta.get("source"))
    module = source.get("name") if source.get("type") == TORCH else None  # its name in the file, given or found
    if kind == TORCH:  # an architecture names the module whether or not the run was given its name
        module, own_name = own_name, None
    same_file = path.resolve() == own.resolve() if own.is_absolute() else path.name == own.name
    if not same_file or (name or module) != (own_name or module):
        return False
    if path.is_file() and source.get("sha256") is not None and sha256(path, "file") != source["sha256"]:
        copy = run.path / (source.get("file") or CODE_FILE)
        raise NeuralabError(f"{run.path}: `model` {os.fspath(typed)!r} has changed since the run was made (its "
                            f"SHA-256 differs from the run's copy, {copy}); the run goes on with the code it was "
                            "trained with: put the file back as it was to resume it, or start a new run to train the "
                            "file as it is now")
    return True


def _best_checkpoint(run: Run) -> Path:
    """The best epoch's checkpoint, which a resume from it puts in place of the last one."""
    from neuralab.training.checkpoint import load_tensors

    best = run.file(runs.BEST)
    if not best.exists():
        raise NeuralabError(f"{best}: missing; the run has no best checkpoint to resume from (resume from its "
                            "`checkpoint` \"last\" or start a new run)")
    load_tensors(best)  # a damaged best is named before the last checkpoint is replaced
    return best


def stored_config(run: Run) -> ClassifierConfig:
    """The ClassifierConfig a run was made with, from its config.json; for a run of Keras's
    fit, its model and the dataset it names (RunLogger's ``data``)."""
    from neuralab.data import NAMED

    if run.by_keras_fit:
        config = run.record["config"]
        data = str(config.get("data") or "")
        if not data:  # Path("") is the current folder: no data is no folder
            raise NeuralabError(f"{run.path}: Keras's fit wrote this run (RunLogger) without naming its data; give "
                                "RunLogger `data` (mnist, fashion-mnist, cifar10 or an image folder) in the next "
                                "fit, or evaluate the model in Python")
        if data not in NAMED and not Path(data).is_dir():
            raise NeuralabError(f"{run.path}: Keras's fit wrote this run (RunLogger), and its data {data!r} is "
                                "neither a dataset's name (mnist, fashion-mnist, cifar10) nor an image folder here")
        return ClassifierConfig(model=str(config.get("model")), data=data)
    try:
        return ClassifierConfig.from_dict(run.record["config"])
    except (KeyError, TypeError) as e:
        raise NeuralabError(f"{run / runs.CONFIG}: not a config neuralab wrote ({e}); the file is damaged") from None


def _summary_text(trainer: Trainer, config, data) -> str:
    from neuralab.models.summary import render_summary, summary

    return render_summary(summary(trainer.model, data.input_shape, name=config.model), rich=False)


def _fit_and_finish(trainer: Trainer, run: Run, config, data, resume: bool, verbose: bool,
                    summary_text: str | None = None, split_taken: bool = False,
                    settings_said: str | None = None) -> RunResult:
    """Train, test and report; ``summary_text`` when the caller made it before the run existed;
    ``split_taken``: config.val_fraction is a Keras model's fit(validation_split=...);
    ``settings_said``: where a Keras model's training settings came from (``_settings_said``;
    None: a resume, which trains with the run's)."""
    from neuralab.models import count_parameters

    main = trainer.dist.is_main
    summary_text = summary_text if summary_text is not None else _summary_text(trainer, config, data)
    if main:
        run.write_text(runs.SUMMARY, summary_text + "\n")
    if verbose and main:
        print(summary_text, flush=True)
        print(_training_header(config, data, trainer, split_taken, settings_said), flush=True)
    try:  # until results.json, an interrupted run is one a resume finishes
        history = trainer.fit(pixels(data.train.x), torch.from_numpy(data.train.y),
                              val=(pixels(data.val.x), torch.from_numpy(data.val.y)) if len(data.val) else None,
                              resume=resume)
        # One pass over the test set: the report's probabilities and the test scores from the same logits.
        logits = trainer.predict(pixels(data.test.x))
        test = trainer.score(logits, torch.from_numpy(data.test.y))
    except KeyboardInterrupt:
        raise runs.Interrupted(run.path, Kind.CLASSIFIER) from None
    seconds = trainer.elapsed
    result = RunResult(run.path, history, test, trainer.best_epoch(), seconds, count_parameters(trainer.model))
    if main:
        probs = torch.softmax(logits, dim=1).numpy()
        results = {
            "test_loss": test["loss"], "test_accuracy": test["accuracy"], "best_epoch": result.best_epoch,
            "train_seconds": seconds, "epochs_run": len(history),
            "confusion_matrix": confusion_matrix(probs.argmax(1), data.test.y, len(data.classes)).tolist(),
        }
        run.write_json(runs.RESULTS, results)
        if verbose:  # the answer before the report, whose figures take about a second to draw
            print(f"test accuracy {test['accuracy'] * 100:.2f}%  (best epoch {result.best_epoch}, "
                  f"{seconds:.1f}s of training)  run: {run.path}", flush=True)
        _report(run, results, history, probs, data.test, summary_text)
    return result


def confusion_matrix(pred: np.ndarray, true: np.ndarray, k: int) -> np.ndarray:
    """Rows are true classes, columns predicted ones; ``pred`` and ``true`` are class numbers
    0..k-1, one prediction per label."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ParameterError("k", k, "give the number of classes, a whole number of at least 1")
    pred, true = np.asarray(pred), np.asarray(true)
    if pred.ndim != 1 or pred.shape != true.shape:
        raise ParameterError("pred", f"shape {pred.shape}", f"give one predicted class per label of `true` "
                                                            f"(shape {true.shape}), both 1-D")
    for name, values in (("pred", pred), ("true", true)):
        if not len(values):
            continue
        if not np.issubdtype(values.dtype, np.integer):
            raise ParameterError(name, f"{values.dtype} values", "give class numbers (integers), e.g. "
                                                                 "probabilities.argmax(1)")
        if values.min() < 0 or values.max() >= k:  # a class k would be counted in the next row's first column
            bad = values.min() if values.min() < 0 else values.max()
            raise ParameterError(name, int(bad), f"a class number out of range for `k`={k} classes (0..{k - 1})")
    return np.bincount(true.astype(np.int64) * k + pred.astype(np.int64), minlength=k * k).reshape(k, k)


def _training_header(config: ClassifierConfig, data, trainer: Trainer, split_taken: bool = False,
                     settings_said: str | None = None) -> str:
    from neuralab.models import count_parameters

    header = (f"{config.model} on {data.name}: {len(data.train):,} train / {len(data.val):,} val / "
              f"{len(data.test):,} test images {'x'.join(map(str, data.input_shape))}, "
              f"{count_parameters(trainer.model):,} parameters, device {trainer.device_text}, seed {config.train.seed}, "
              f"run {trainer.run_dir}")  # named first: a job killed outright leaves its log saying which run to resume
    if (trainer.model_meta.get("source") or {}).get("type") != "keras":
        return header
    # A Keras model trains with its compile()'s settings where no option is given, or neuralab's
    # defaults where it was not compiled, which the command line shows nowhere else
    t = config.train
    momentum = f", momentum {t.momentum:g}" if t.optimizer in ("sgd", "rmsprop") else ""
    split = ""
    if split_taken:
        from neuralab.training.keras_script import VAL_FROM_FIT

        split = f"; val_fraction {config.val_fraction:g} (fit()'s validation_split: {VAL_FROM_FIT})"
    said = settings_said or "the run's, as its config.json keeps them"
    # compile()'s rate is constant, as Keras steps it; neuralab's default schedule is said where it stands
    schedule = f", schedule {t.schedule}"
    return (f"{header}\noptimizer {t.optimizer}, lr {t.lr:g}{momentum}{schedule}, loss {t.loss or 'cross_entropy'} "
            f"({said}){split}")


# --- using a finished run --------------------------------------------------------------

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
    if not isinstance(pre, dict) or set(pre) != {"mean", "std"}:
        raise bad("preprocess", f"must hold exactly 'mean' and 'std', found {sorted(pre) if isinstance(pre, dict) else pre!r}")
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


def _rebuilt(meta: dict, run_dir: Path, trust_code: bool):
    """The model object a run of a Keras or PyTorch model was made from (for training again)."""
    from neuralab.training.source import KERAS, ModelSource

    source = meta["source"]
    if source["type"] == KERAS:
        return ModelSource(KERAS, meta["architecture"], source["spec"])
    return _network(meta, run_dir, trust_code)


def _network(meta: dict, run_dir: Path, trust_code: bool = False, device=None):
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


def _given_module(model, meta: dict, run_dir: Path, weights: Path | None, prefix: str = ""):
    """The caller's ``model`` for a run whose PyTorch model the run cannot rebuild, checked
    against the run before anything is loaded, trained or written: the names and shapes of
    the tensors in ``weights`` (``prefix``: theirs in the file; None for a run stopped before
    its first checkpoint, which has only its parameter count), then one pass on the run's
    input shape giving one output per class. A run that rebuilds its model refuses it: the
    run's files, not a module with the same shapes, say what its network computes."""
    from neuralab.models import count_parameters
    from neuralab.training.module_check import checked_module
    from neuralab.training.source import TORCH, ZOO

    source = meta.get("source") or {"type": ZOO}
    if source["type"] != TORCH or source.get("file") is not None:
        how = {ZOO: f"as the zoo's {meta['architecture']}", TORCH: f"from its copy of the code, {source.get('file')} "
               "(with `trust_code`)"}.get(source["type"], "from its Keras spec")
        raise NeuralabError(f"{run_dir}: the run rebuilds its model {how}; leave out `model`, which is for runs "
                            "whose PyTorch model they cannot rebuild")
    if not isinstance(model, torch.nn.Module):
        raise NeuralabError(f"`model` is a {type(model).__name__}; give the torch.nn.Module object the run was "
                            "trained with, built the same way (Net(hidden=32), say)")
    fix = "give the module the run was trained with, built the same way (the same class and arguments)"
    if weights is not None:
        check_fits(weights, model, "the `model` given", prefix, fix)
    elif count_parameters(model) != meta.get("parameters"):
        raise NeuralabError(f"{run_dir / runs.MODEL}: the run's model has {meta.get('parameters')} parameters, the "
                            f"`model` given {count_parameters(model)}; {fix}")
    shape = tuple(meta["input_shape"])
    device = next((t.device for t in model.state_dict().values()), None)
    return checked_module(model, meta["architecture"], shape, meta["num_classes"], torch.zeros(2, *shape, device=device))


def _checked_model(meta: dict, weights: Path, run_dir: Path, trust_code: bool = False, model=None):
    """The model of ``meta`` with ``weights`` loaded, after the structure (built without
    memory, on the meta device, where it is not the user's code) was matched against the
    shapes in the weights' header; ``model``: the caller's module, for a run that cannot
    rebuild its own, loaded in place and moved to the CPU, where a Classifier computes."""
    if model is not None:
        model = _given_module(model, meta, run_dir, weights)
        load_weights(weights, model)
        return model.cpu().eval()
    source = (meta.get("source") or {}).get("type", "zoo")
    try:
        model = _network(meta, run_dir, trust_code, device=None if source == "torch" else "meta")
    except NeuralabError as e:
        if source == "torch":  # the run's code, or the trust it needs, names itself
            raise
        raise NeuralabError(f"{run_dir / runs.MODEL}: {e}") from None  # an option or size the model refuses
    check_fits(weights, model, f"{runs.MODEL}'s model")
    if source != "torch":
        model = _network(meta, run_dir)
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


def evaluate_run(run_dir: str | Path, data_dir: str | None = None, trust_code: bool = False, model=None) -> dict:
    """Test-set loss, accuracy and confusion matrix of a run, rebuilt from its directory
    (``model``: as load_classifier's)."""
    clf, data, probs = _test_set_probabilities(run_dir, data_dir, trust_code, model)
    return {**figures_on_test_set(probs, data.test.y, len(clf.classes)), "classes": clf.classes}


def figures_on_test_set(probs: np.ndarray, labels: np.ndarray, num_classes: int) -> dict:
    """Test loss (cross-entropy of the probabilities), accuracy and confusion matrix."""
    pred = probs.argmax(1)
    loss = float(-np.log(np.clip(probs[np.arange(len(pred)), labels], 1e-12, None)).mean())
    return {"test_loss": loss, "test_accuracy": float((pred == labels).mean()),
            "confusion_matrix": confusion_matrix(pred, labels, num_classes)}


def _test_set_probabilities(run_dir: str | Path, data_dir: str | None, trust_code: bool = False, model=None):
    """The run's classifier, its data and the test set's probabilities (N, classes)."""
    from neuralab.data import NAMED, load_image_data

    clf = load_classifier(run_dir, trust_code, model)
    run = Run(run_dir)
    config = stored_config(run)
    if config.data is None:
        raise NeuralabError(f"{run_dir}: an imported model with no dataset to test it on; import it again "
                            "naming its `data`")
    name, where = config.data, data_dir or config.data_dir
    if config.data not in NAMED and data_dir is not None:  # an image folder that moved: `data_dir` is where it is now
        name, where = data_dir, None
    elif config.data not in NAMED and not Path(config.data).expanduser().is_dir():
        raise NeuralabError(f"{config.data}: the run's image folder is not there any more; if it moved, give its "
                            "new place as `data_dir`")
    data = load_image_data(name, where, **config.data_options)  # check_same_data below: the same pictures
    if tuple(data.input_shape) != tuple(clf.preprocess.input_shape):
        raise NeuralabError(f"{data.name}: images of {'x'.join(map(str, data.input_shape))} (channels x height x "
                            f"width), the run's model takes {'x'.join(map(str, clf.preprocess.input_shape))}")
    check_same_data(run, data, clf.classes, where)
    return clf, data, clf.predict_proba(data.test.x)


def _changed_classes(record: dict, data, digest: dict | None = None) -> str:
    """" in class folder(s) 3, 7": the classes of a picture folder whose listing differs from the
    one config.json's data ``record`` keeps (``digest``: the data's ``data_digest``, where the
    caller has it); "" for other data, or a run recorded before runs kept each class's."""
    then = runs.json_object(record.get("class_listing_sha256"))
    if not then or not getattr(data, "root", None):
        return ""
    now = (digest or data_digest(data)).get("class_listing_sha256", {})
    changed = [c for c in then if then[c] != now.get(c)]
    return f" in class folder(s) {', '.join(changed[:5])}{' ...' if len(changed) > 5 else ''}" if changed else ""


def check_same_data(run: Run, data, classes, data_dir: str | None = None) -> None:
    """Refuse data that is no longer what the run was trained on: other classes (label k would
    be scored as another class's), a folder with pictures added or taken away since (its
    seeded split would differ, and put training pictures in the test set), or other images of
    the same classes and sizes (another dataset's files in ``data_dir``, where a named dataset
    was read): the digest config.json records (``data_digest``), where it records one."""
    if list(data.classes) != list(classes):
        added = [c for c in data.classes if c not in classes]
        missing = [c for c in classes if c not in data.classes]
        what = "; ".join(f"{k}: {', '.join(map(str, v[:5]))}{' ...' if len(v) > 5 else ''}"
                         for k, v in (("added", added), ("missing", missing)) if v) or "in another order"
        raise NeuralabError(f"{data.name}: its classes are not the {len(classes)} the run was trained on ({what}); "
                            "give the data the run was trained on")
    record = run.record.get("data")  # Keras's fit records no split sizes: its folder's digest, where it read one
    if not isinstance(record, dict):
        return
    then = {split: record.get(split) for split in SPLITS}
    now = {split: len(getattr(data, split)) for split in SPLITS}
    if all(isinstance(n, int) for n in then.values()) and then != now:
        raise NeuralabError(f"{data.name}: {sum(now.values())} images now, {sum(then.values())} when the run was "
                            f"trained ({', '.join(f'{k} {then[k]} -> {now[k]}' for k in now if then[k] != now[k])})"
                            f"{_changed_classes(record, data)}; the split would put other images in the test set: "
                            "give the data as it was")
    if not {"sha256", "listing_sha256"} & set(record):  # recorded before runs kept a digest of their data
        return
    digest = data_digest(data)
    listing = record.get("listing_sha256")
    # runs of 2026-12-06 and before counted the pictures the loading skipped in their listing too
    if listing is not None and listing != digest.get("listing_sha256") and not (
            getattr(data, "root", None) and listing == listing_sha256(Path(data.root))):
        raise NeuralabError(f"{data.root}: not the pictures the run was trained on: the same classes and number of "
                            f"pictures, but files renamed, moved or replaced since{_changed_classes(record, data, digest)} "
                            "(their names and sizes are not those config.json records); put the folder back as it "
                            "was, or start a new run")
    then, now = runs.json_object(record.get("sha256")), digest.get("sha256", {})
    changed = [split for split in SPLITS if split in then and then[split] != now.get(split)]
    if changed:
        from neuralab.data.sources import locate

        raise NeuralabError(f"{data.name} in {locate(data.name, data_dir)}: not the images the run was trained on: "
                            f"the same classes and counts, but other {', '.join(changed)} images or labels (their "
                            "SHA-256 is not the one config.json records); give the files the run was trained on, or "
                            "start a new run")


def write_report(run_dir: str | Path, data_dir: str | None = None, trust_code: bool = False, model=None) -> Path:
    """Write report.html and its pictures again from the run directory alone: the model is
    loaded and the test set evaluated again (after a full disk stopped the report, say);
    ``model``: as load_classifier's."""
    from neuralab.models.summary import render_summary, summary

    run = Run.open(run_dir, Kind.CLASSIFIER)
    results = run.results()
    if results is None:
        way_on = runs.KERAS_FIT_WAY_ON if run.by_keras_fit else runs.way_on(run.path, Kind.CLASSIFIER)
        raise NeuralabError(f"{run / runs.RESULTS}: missing; the run did not finish, so there is no report "
                            f"to write: {way_on}")
    with run:  # the report's files are the run's: one writer at a time, and a killed write's leftovers go
        clf, data, probs = _test_set_probabilities(run.path, data_dir, trust_code, model)
        text = render_summary(summary(clf.model, data.input_shape, name=stored_config(run).model), rich=False)
        return _report(run, results, run.metrics(), probs, data.test, text)


def _report(run: Run, results: dict, history: list[dict], probs: np.ndarray, test, summary_text: str) -> Path:
    from neuralab.reports.classifier import write_classifier_report

    return write_classifier_report(run.path, record=run.record, results=results, history=history,
                                   matrix=np.asarray(results["confusion_matrix"]), probabilities=probs,
                                   images=test.x, labels=test.y, summary_text=summary_text)
