"""A Keras model as neuralab trains it: its compile() settings as TrainConfig's fields, and
its spec fitted to a dataset's images as a PyTorch classifier.

``compile_settings`` maps the optimizer, rate and loss a Keras ``compile()`` names onto
neuralab's trainer (``KERAS_OPTIMIZERS``, ``KERAS_LOSSES``), and warns about what it does not
keep. ``keras_classifier`` builds the spec (neuralab.keras) for images of the data's shape,
padding them by up to ``MAX_PAD`` pixels, and ``keras_pixels`` gives the Preprocess that feeds
it the inputs it was trained on.

Apart from training.source, which reads a model from what the user gives, because these read
only plain data (a spec, a compile config): no Keras, no torch at import, no user code runs.
"""

from __future__ import annotations

import math
import warnings
from collections import OrderedDict

from neuralab.errors import NeuralabError, NotAClassifier, ParameterError, by, hwc
from neuralab.training.config import OPTIMIZERS
from neuralab.training.module_check import read_as

MAX_PAD = 4                         # pixels a model's input may exceed the data's by (28 -> 32, as LeNet-5 pads)
# Keras's names (string or class, lower case) -> TrainConfig's: the optimizers and losses
# a compile() call may name that neuralab's trainer runs the same way
KERAS_OPTIMIZERS = {name: name for name in OPTIMIZERS}
# Keras's own settings, for a compile() that names its optimizer by a string alone ("adam")
KERAS_DEFAULTS = {"adam": {"learning_rate": 0.001}, "adamw": {"learning_rate": 0.001, "weight_decay": 0.004},
                  "sgd": {"learning_rate": 0.01}, "rmsprop": {"learning_rate": 0.001}}
# keyed as keras.spec.loss_name reads them: a name, a function or a loss object, in lower case
# without underscores
KERAS_LOSSES = {
    "sparsecategoricalcrossentropy": "sparse_categorical_crossentropy",
    "categoricalcrossentropy": "categorical_crossentropy",
    # one sigmoid unit's, which a classifier trains as cross-entropy on [0, z] (spec.binary_classifier)
    "binarycrossentropy": "binary_crossentropy",
    "mse": "mse", "meansquarederror": "mse",
    "mae": "mae", "meanabsoluteerror": "mae",
    "huber": "huber", "huberloss": "huber",
}


# --- fitting a network to the data ---------------------------------------------------------

def parse_scale(text) -> float:
    """"1/255" or "0.5" -> a positive number."""
    from fractions import Fraction

    try:
        value = float(Fraction(str(text).strip()))
    except (ValueError, ZeroDivisionError):
        raise ParameterError("scale", text, "give a number or a fraction such as 1/255") from None
    if not value > 0:
        raise ParameterError("scale", text, "must be greater than 0")
    return value


def keras_pixels(spec: dict, scale, channels: int) -> tuple[float, dict]:
    """What a Keras image model's inputs were, pixels x ``scale`` (None: keras.spec.pixel_scale,
    1 under a Rescaling layer, else the workshop's 1/255), and the Preprocess fields that give
    a neuralab run those inputs: Preprocess maps uint8 pixels p to (p / 255 - mean) / std, so
    mean 0 and std 1 / (255 scale) give p x scale."""
    from neuralab.keras.spec import pixel_scale

    scale = parse_scale(pixel_scale(spec) if scale is None else scale)
    return scale, {"mean": [0.0] * channels, "std": [1 / (255 * scale)] * channels}


def refuse_scale_under_rescaling(spec: dict, scale) -> None:
    """Refuse a ``scale`` other than 1 given for a saved model that starts with a Rescaling layer
    (``keras.spec.rescales``): the layer scales the pixels itself, so the run would scale them
    twice, and the conversion check, fed the same inputs, could not tell. RunLogger, which sees
    the pixels given to fit, keeps a scale they bear out; a saved model shows none."""
    from neuralab.keras.spec import raw_pixel_rescaling

    layer = raw_pixel_rescaling(spec)
    if layer is None or scale is None or parse_scale(scale) == 1:
        return
    if not isinstance(scale, str):  # 1/255 and 1/127.5 as typed, not 0.00392157
        per = 1 / scale
        scale = f"1/{per:g}" if per >= 100 and abs(2 * per - round(2 * per)) < 1e-6 else f"{scale:g}"
    raise ParameterError("scale", scale, f"the model starts with the Rescaling layer {layer['name']!r}, which scales "
                         "the pixels itself (its inputs are pixels 0-255), so they would be scaled twice; leave "
                         "`scale` out or give 1 (a model fitted on pixels / 255 through its Rescaling saw them scaled "
                         "twice: fit it again on raw pixels)")


def keras_classifier(spec: dict, weights, input_shape, num_classes: int, name: str, loss=None):
    """The Keras model as a PyTorch classifier giving logits (a final softmax left out) for
    images of ``input_shape`` (C, H, W); one sigmoid unit (compile()'s ``loss`` tells, see
    keras.spec.binary_classifier) classifies 2 classes, as logits [0, z]. A model wanting up
    to MAX_PAD more pixels per side (LeNet-5's 32x32 on 28x28 digits) gets the data
    zero-padded around, as the zoo's LeNet-5.
    A model leaving its height or width free (``keras.Input((None, None, 1))``, a fully
    convolutional network) takes the data's: a dataset gives it, and the run keeps it.
    Sides are at most data.pictures.MAX_SIDE pixels, as every classifier run's."""
    from torch import nn

    from neuralab.data.pictures import MAX_SIDE
    from neuralab.keras import build, check
    from neuralab.keras import input_shape as keras_input
    from neuralab.keras.spec import (
        binary_classifier,
        ends_in_softmax,
        loss_name,
        refuse_free_rows,
        refuse_vectors,
        with_input,
    )

    want = tuple(keras_input(check(spec, name)))
    out = output_shape(spec)
    refuse_vectors(spec, name)  # Keras's MNIST MLP: no forecaster, an image classifier flattened by hand
    refuse_free_rows(spec, loss, name)  # an LSTM classifier on rows of any length: no forecaster either
    if len(want) != 3:
        raise NotAClassifier(f"{name}: the model takes {keras_shape(want)} inputs, not images (height, width, "
                             "channels); a sequence model is a forecaster (neuralab.forecasting)")
    if any(v is None for v in input_shape):
        raise NeuralabError(f"{name}: the model takes images of any height and width, and needs a fixed size "
                            "here: train it on a dataset (`data`), which gives one, or save it with "
                            "keras.Input((height, width, channels))")
    have = tuple(int(v) for v in input_shape)
    if None in want[1:]:  # sides the model leaves free: the data's
        want = (want[0], *(h if w is None else w for w, h in zip(want[1:], have[1:])))
    if any(v > MAX_SIDE for v in want[1:]):
        raise NeuralabError(f"{name}: the model takes images of {hwc(want)}, larger than the {MAX_SIDE} pixels a "
                            "side that neuralab's classifiers take; change the model's input shape")
    pad_h, pad_w = want[1] - have[1], want[2] - have[2]
    padded = 0 <= pad_h <= MAX_PAD and 0 <= pad_w <= MAX_PAD
    if want[0] != have[0] or not padded:
        instead = read_as(f"pictures of {hwc(want)}", want[0] if want[0] != have[0] else None,
                           None if padded else want[1:])
        raise NeuralabError(f"{name}: the model takes images of {hwc(want)} (height x width x channels), the data "
                            f"has {hwc(have)}; change the model's input shape to {hwc(have)}{instead}")
    k = 2 if binary_classifier(spec, loss, name) else out[1] if len(out) == 2 else None
    if k != num_classes:
        got = " (2 classes, one sigmoid unit)" if k == 2 and out[1] == 1 else ""
        raise NeuralabError(f"{name}: the model outputs {keras_shape(out[1:])}{got}, the data has {num_classes} "
                            f"classes; end the model in Dense({num_classes}, activation='softmax')")
    key, options = loss_name(loss)
    categorical = (k != 2 or out[1] != 1) and key in ("sparsecategoricalcrossentropy", "categoricalcrossentropy")
    if categorical and options.get("from_logits") is not True and not ends_in_softmax(spec):
        # A learner's usual slip; Keras would train on log(outputs) clipped to [1e-7, 1], which stalls.
        warnings.warn(f"{name}: ends without a softmax and is compiled with a cross-entropy on probabilities "
                      "(from_logits=False): Keras would read its outputs as probabilities, neuralab reads them as "
                      "logits, as from_logits=True would; end it in a softmax or compile with from_logits=True to "
                      "make that explicit")
    if categorical and options.get("from_logits") is True and ends_in_softmax(spec):
        # The converse slip: Keras would take the softmax of its probabilities, squashed twice, which trains slowly
        warnings.warn(f"{name}: ends in a softmax and is compiled with a cross-entropy on logits (from_logits=True): "
                      "Keras would read its probabilities as logits and squash them twice, neuralab trains on the "
                      "logits before the softmax, as from_logits=False would; compile with from_logits=False (the "
                      "default) or leave the softmax out to make that explicit")
    if None in keras_input(spec):
        small = pictures_too_small(spec, want, name)
        if small:  # the sides are the data's: a folder's own, or `image_size`
            raise NeuralabError(small)
        spec = with_input(spec, (want[1], want[2], want[0]), name)
    net = build(spec, weights, logits=True)
    if pad_h or pad_w:  # as models/lenet.py: the top/left border gets the smaller half
        pad = nn.ZeroPad2d((pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        net = nn.Sequential(OrderedDict(pad=pad, keras=net))
    return net


def too_small(spec: dict, chw: tuple, name: str) -> tuple[NeuralabError, str] | None:
    """Where pictures of ``chw`` are too small for a model whose input leaves a side open (a
    window wider than a layer's input): the layer's refusal, and the smallest size that works,
    found over the open sides (its words); None where they fit, or where the model fixes its sides."""
    from neuralab.keras.layers import InputTooSmall
    from neuralab.keras.spec import with_input
    from neuralab.models.summary import MAX_SIDE, smallest_input

    fixed = spec["layers"][0]["output_shape"][1:3]
    if None not in fixed or None in chw:
        return None

    def fits(c: int, h: int, w: int) -> InputTooSmall | None:
        try:
            with_input(spec, (h, w, c), name)
        except InputTooSmall as e:
            return e
        return None

    err = fits(*chw)
    if err is None:
        return None

    def sides(side: int) -> tuple:  # the open sides at ``side``, the fixed one as the model fixes it
        return tuple(f or side for f in fixed)

    up = smallest_input(lambda shape: fits(shape[0], *sides(shape[1])) is None, chw[0])
    return err, (f"the smallest size that works is {by(sides(up[1]))}" if up else
                 f"no size up to {MAX_SIDE}x{MAX_SIDE} works")


def pictures_too_small(spec: dict, chw: tuple, name: str) -> str | None:
    """``too_small``'s refusal of pictures of ``chw`` as the data's (a named dataset's size is its
    own, a folder's is `image_size`'s), with the way on; None where they fit."""
    small = too_small(spec, chw, name)
    if small is None:
        return None
    size = by(chw[1:])
    way = ("change the model's layers" if small[1].startswith("no size") else
           f"read an image folder at that size (`image_size`), or make the model's layers fit {size}")
    return f"pictures of {size} are too small: {small[0]}; {small[1]}: {way}"


def output_shape(spec: dict) -> list:
    """The Keras model's output shape, (None, ...)."""
    return {e["name"]: e for e in spec["layers"]}[spec["output"]]["output_shape"]


def keras_shape(shape) -> str:
    return "(" + ", ".join(["None", *("None" if v is None else str(v) for v in shape)]) + ")"


# --- Keras's compile() settings -------------------------------------------------------------

def compile_settings(config: dict | None, logits: bool = True, where: str | None = None) -> dict:
    """The optimizer, learning rate, momentum and loss given to Keras's compile() (its
    ``get_compile_config()``, or a .keras file's compile_config) as TrainConfig's fields;
    the trainer applies those its TrainConfig has. Cross-entropies on a softmax model trained
    on its logits are neuralab's cross-entropy (the same loss, computed stably). Keras's
    optimizers keep their learning rate constant: the schedule is "constant". A learning-rate
    schedule is no rate neuralab's trainer can run: its initial rate is taken, under neuralab's
    own schedule, and a warning says so. ``where``: what the warnings name the compile() by,
    the model's file (FILE.py:LINE for a script's call)."""
    from neuralab.keras.spec import loss_name

    said = f"{where}: " if where else ""
    out: dict = {}
    opt = (config or {}).get("optimizer")
    # a name where the config keeps one (a legacy .h5's), else the object Keras holds, which is what
    # compile() made of a name too: Nadam(...), as the warnings below write it
    given = repr(opt) if isinstance(opt, str) else None
    if isinstance(opt, str):
        opt = {"class_name": opt, "config": {}}
    if isinstance(opt, dict):
        cls = str(opt.get("class_name", "")).lower()
        if cls not in KERAS_OPTIMIZERS:
            given = given or f"{str(opt.get('class_name'))[:40]}(...)"
            raise NeuralabError(f"compile(optimizer={given}): neuralab trains with "
                                f"{', '.join(KERAS_OPTIMIZERS)}; compile with one of those")
        out["optimizer"] = KERAS_OPTIMIZERS[cls]
        c = {**KERAS_DEFAULTS.get(cls, {}), **(opt.get("config") or {})}
        rate = c.get("learning_rate")
        if isinstance(rate, dict):  # a schedule: {"class_name": "ExponentialDecay", "config": {...}}
            rate = _scheduled(opt.get("class_name"), rate, said)
        else:  # Keras's fit steps at this rate throughout; onecycle would warm it up from a 25th and anneal it to ~0
            out["schedule"] = "constant"
        if isinstance(rate, (int, float)) and not isinstance(rate, bool):
            out["lr"] = float(f"{rate:.7g}")  # Keras keeps it in float32
        if isinstance(c.get("momentum"), (int, float)) and cls in ("sgd", "rmsprop"):
            out["momentum"] = float(f"{c['momentum']:.7g}")
        if isinstance(c.get("weight_decay"), (int, float)) and c["weight_decay"]:
            out["weight_decay"] = float(f"{c['weight_decay']:.7g}")
        if isinstance(c.get("global_clipnorm"), (int, float)) and c["global_clipnorm"] > 0:
            out["grad_clip"] = float(f"{c['global_clipnorm']:.7g}")  # the norm over every gradient: clip_grad_norm_'s
        _warn_not_kept(f"{said}compile(optimizer={str(opt.get('class_name'))[:40]}(...))", c, _KERAS_OPTIMIZER_DEFAULTS,
                       f"neuralab's {out['optimizer']} keeps its own values of them (global_clipnorm alone is "
                       "kept, as grad_clip)")
    loss = (config or {}).get("loss")
    if isinstance(loss, dict) and isinstance(loss.get("config"), dict):
        _warn_not_kept(f"{said}compile(loss={str(loss.get('class_name'))[:40]}(...))", loss["config"],
                       _KERAS_LOSS_DEFAULTS, "neuralab's loss is the plain one, averaged over the batch")
    key = loss_name(loss)[0]
    if key is not None:
        if key not in KERAS_LOSSES:
            known = ", ".join(sorted(set(KERAS_LOSSES.values())))
            raise NeuralabError(f"compile(loss={key!r}): neuralab trains with {known}")
        ours = KERAS_LOSSES[key]
        out["loss"] = "cross_entropy" if logits and "crossentropy" in ours.replace("_", "") else ours
    return out


# Keras's defaults of the compile() settings neuralab's trainer has no field for: one set
# otherwise would be dropped without a word (a warning says so instead)
_KERAS_OPTIMIZER_DEFAULTS = {"nesterov": False, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7, "amsgrad": False,
                             "rho": 0.9, "centered": False, "clipnorm": None, "clipvalue": None, "use_ema": False,
                             "gradient_accumulation_steps": None}
_KERAS_LOSS_DEFAULTS = {"label_smoothing": 0.0, "ignore_class": None, "reduction": "sum_over_batch_size", "axis": -1}


def _warn_not_kept(call: str, config: dict, defaults: dict, instead: str) -> None:
    """One warning naming the settings of ``config`` that differ from Keras's ``defaults``, and
    what neuralab does ``instead``."""
    def differs(value, default) -> bool:
        if isinstance(value, (int, float)) and isinstance(default, (int, float)) and not isinstance(value, bool):
            return not math.isclose(value, default, rel_tol=1e-6)  # Keras stores its numbers in float32
        return value != default

    given = [f"{k}={config[k]!r}" for k in defaults if k in config and differs(config[k], defaults[k])]
    if given:
        warnings.warn(f"{call}: {', '.join(given)[:200]}: not kept; {instead}")


def _scheduled(optimizer, schedule: dict, said: str = ""):
    """The rate a Keras learning-rate schedule starts from (None where it names none), which the
    run takes as its rate under neuralab's own schedule; a warning (``said`` first: the file)
    says so, since neuralab's schedules (onecycle, cosine, constant over the whole run) are none
    of Keras's."""
    kind = str(schedule.get("class_name"))[:40]
    c = schedule.get("config") if isinstance(schedule.get("config"), dict) else {}
    rate = c.get("initial_learning_rate")
    rate = rate if isinstance(rate, (int, float)) and not isinstance(rate, bool) and 0 < rate < math.inf else None
    used = (f"its initial_learning_rate, {rate:.7g}, as the rate" if rate is not None
            else "neuralab's default rate")
    warnings.warn(f"{said}compile(optimizer={str(optimizer)[:40]}(learning_rate={kind}(...))): neuralab does not run "
                  f"Keras's learning-rate schedules; the run trains with {used} (unless given one) under "
                  "neuralab's own schedule (onecycle unless another is given)")
    return rate
