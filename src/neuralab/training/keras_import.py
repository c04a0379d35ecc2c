"""A saved Keras model as a neuralab run: ``import_keras("lenet5.keras", out=...)``.

The run is a normal image-classifier run (docs/runs.md): model.json with the Keras spec as
its source (rebuilt without Keras and without running code), the converted weights as
model.safetensors, summary.txt in neuralab's and Keras's layouts, and config.json recording
the file's SHA-256 and the conversion's own check: the largest difference between Keras's
outputs and neuralab's on random images in the range the model takes, when Keras is installed.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import tempfile
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from neuralab import runs
from neuralab.errors import NeuralabError, NotAClassifier, ParameterError, by
from neuralab.runs import Kind, Run
from neuralab.training.config import ClassifierConfig

CHECK_INPUTS = 8  # random images the conversion is checked on
# The parity tests' float32 bound (docs/keras.md, "What the parity tests hold"), of the outputs'
# size where they are above 1: beyond it the two computed different functions
CHECK_TOLERANCE = 1e-5
BACKENDS_DISAGREE = 'docs/keras.md, "Where Keras\'s backends disagree, TensorFlow is the reference"'
# The check runs the images through Keras and neuralab at once; beyond this many bytes of one
# layer's outputs it is left out rather than ask the machine for memory a file made up
MAX_CHECK_BYTES = 2**30
# Keras's error, the reason a check was not made, is kept whole up to this many characters, past them its first
# sentence (or its first words, where that is longer)
MAX_REASON = 300


def import_keras(path: str | Path, out: str | Path | None = None, classes: list[str] | None = None,
                 scale: float | str | None = None, data: str | None = None, data_dir: str | None = None,
                 overwrite: bool = False, image_size: tuple[int, int] | None = None) -> dict:
    """Write a classifier run from the Keras image classifier saved in ``path`` (a .keras, .h5
    or .hdf5 file, whichever of Keras's two formats it holds). ``scale``: what the model's
    inputs were, pixels x scale (None: 1 when the model starts with a Rescaling layer, which
    refuses another, else 1/255); ``classes``: their names (default: the classes of ``data`` when given, else
    0..K-1); ``data`` (and ``data_dir``): the dataset the model is for, so that the run is
    evaluated on its test set (and can be again); its number of classes must be the model's
    outputs, and an image folder's pictures are read at the model's input size and colours.
    ``image_size``: (height, width) to read an image folder's pictures at, for a model that takes
    any size (input (None, None, C)); None reads them as they are, all of one size. Returns what
    was written and the conversion's check."""
    from neuralab.training.device import refuse_distributed

    refuse_distributed("importing a Keras model, which trains nothing,")
    from neuralab.data.sources import sha256
    from neuralab.keras import parameter_count, read, summary_text
    from neuralab.keras.spec import binary_classifier, grey_images, refuse_free_rows, refuse_vectors, with_channel
    from neuralab.models.summary import render_summary, summary
    from neuralab.training.checkpoint import save_weights
    from neuralab.training.classify import classifier_meta
    from neuralab.training.device import environment
    from neuralab.training.evaluate import evaluate_run
    from neuralab.training.keras_model import (keras_classifier, keras_pixels, keras_shape, output_shape,
                                               pictures_too_small, refuse_scale_under_rescaling, too_small)
    from neuralab.training.preprocess import Preprocess
    from neuralab.training.source import KERAS, KERAS_SUFFIXES, ModelSource

    path = Path(path).expanduser()
    if path.suffix.lower() not in KERAS_SUFFIXES:  # as `neuralab train --model` tells a Keras file by its name
        raise ParameterError("model", str(path), "not a Keras model file name; give a .keras, .h5 or .hdf5 file "
                                                 "(model.save('model.keras')), renamed so if it is one")
    model = read(path)  # which refuses NaN weights (a diverged fit, which Keras saves as it is)
    spec = model.spec
    if grey_images(spec, model.compile.get("loss")):  # TensorFlow's first tutorial: Flatten(input_shape=(28, 28))
        spec = with_channel(spec)
    name = f"keras:{path.stem}"
    first = spec["layers"][0]["output_shape"][1:]
    refuse_vectors(spec, str(path))  # Keras's MNIST MLP: Dense(512, input_shape=(784,)) on x.reshape(-1, 784)
    refuse_free_rows(spec, model.compile.get("loss"), str(path))  # an LSTM classifier on rows of any length
    if len(first) != 3:
        raise NotAClassifier(f"{path}: the model takes inputs of {keras_shape(first)}, not images (height, width, "
                             "channels); a sequence model is a forecaster (neuralab.forecasting)")
    h, w, c = first
    if c not in (1, 3):
        raise NeuralabError(f"{path}: the model takes images with {c} channels; neuralab's classifiers take 1 (grey) "
                            "or 3 (colour)")
    out_shape, loss = output_shape(spec), model.compile.get("loss")
    binary = binary_classifier(spec, loss, str(path))  # one sigmoid unit: classes 0 and 1, Keras's labels
    if not binary and (len(out_shape) != 2 or out_shape[1] < 2):
        raise NeuralabError(f"{path}: the model outputs {keras_shape(out_shape[1:])}; an image classifier outputs one "
                            "score per class, (None, K) with K of 2 or more, or one sigmoid unit for 2 classes")
    k = 2 if binary else out_shape[1]
    refuse_scale_under_rescaling(spec, scale)  # before the data is read
    if image_size is not None:
        _check_image_size(image_size, (h, w), data, path)
        small = too_small(spec, (c, *image_size), name)  # before the folder is read at that size
        if small:
            raise ParameterError("image_size", by(image_size), f"too small: {small[0]}; {small[1]}")
    chw, known, recorded, folder = (c, h, w), None, {}, {}
    if data is not None:  # the run takes the dataset's images: LeNet-5's 32x32 pads MNIST's 28x28, as in training
        from neuralab.data import NAMED, load_image_data
        from neuralab.data.digest import split_record

        if data not in NAMED:  # a saved model's input is fixed: a folder's pictures are read at it, or at image_size
            folder = {"color": "grayscale" if c == 1 else "rgb", "image_size": (h, w) if h and w else image_size}
        elif image_size is not None:  # which a named dataset's loader refuses, naming it
            folder = {"image_size": image_size}
        # split as `neuralab evaluate` splits it again from the run's config, which then refuses other data
        # than this (check_same_data), as it refuses it for a trained run
        loaded = load_image_data(data, data_dir, **ClassifierConfig(**folder).data_options)
        chw, known = tuple(loaded.input_shape), list(loaded.classes)
        recorded = split_record(loaded)
        small = pictures_too_small(spec, chw, name) if image_size is None else None  # pictures as they are
        if small:
            raise NeuralabError(f"{data}: {small}")
        if data not in NAMED:  # a folder, recorded whole: the run reads it again from any directory
            data = str(Path(data).expanduser().resolve())
    # as the user wrote it: one sigmoid (or logit) unit, which neuralab reads as 2 classes' logits [0, z]
    last = {e["name"]: e for e in spec["layers"]}[spec["output"]]
    unit = "sigmoid" if last["args"].get("activation") == "sigmoid" else "logit"
    outputs = f"gives 2 classes through one {unit} unit (None, 1)" if binary else f"outputs {keras_shape(out_shape[1:])}"
    classes = _classes(classes, known, k, path, data, outputs)
    # The default resolved here: a model whose Rescaling comes after its augmentation takes raw pixels too
    scale, pixels = keras_pixels(spec, scale, c)
    net = keras_classifier(spec, model.weights, chw, k, name, loss).eval()
    pre = Preprocess(chw, **pixels)
    check = _conversion_check(path, spec, model.weights, (c, h, w) if h and w else chw, scale,  # open sides: the data's
                              model.dtypes)
    config = ClassifierConfig(model=str(path.resolve()), data=data,
                              data_dir=str(Path(data_dir).expanduser().resolve()) if data_dir else None, **folder)
    meta = classifier_meta(name, classes, pre, sum(p.numel() for p in net.parameters()),
                           ModelSource(KERAS, name, spec).record(logits=True))
    text = render_summary(summary(net, chw, name=name), rich=False)
    keras_text = "Keras's layout:\n" + summary_text(spec, name, rich=False)

    target = Path(out) if out is not None else runs.default_dir("import", path.stem)
    with Run.create(target, overwrite, numbered=out is None).written_whole() as run:  # a default name taken: NAME-2
        run.write_record(Kind.CLASSIFIER, asdict(config), environment(torch.device("cpu")),
                         {"name": data, "classes": classes, "input_shape": list(chw), **recorded},
                         imported={"file": str(path.resolve()), "sha256": sha256(path, "file"),
                                   "keras_version": spec.get("keras_version", ""), "scale": scale,
                                   "conversion_check": check, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        run.write_json(runs.MODEL, meta)
        save_weights(run / runs.WEIGHTS, net, meta)
        run.write_text(runs.SUMMARY, text + "\n\n" + keras_text + "\n")
        results = {"imported": True, "epochs_run": 0, "best_epoch": None, "train_seconds": 0.0}
        if data is not None:
            figures = evaluate_run(run.path)
            results.update(test_loss=figures["test_loss"], test_accuracy=figures["test_accuracy"],
                           confusion_matrix=figures["confusion_matrix"].tolist())
        run.write_json(runs.RESULTS, results)
    return {"run_dir": run.path, "classes": classes, "scale": scale, "check": check, "results": results,
            "parameters": parameter_count(spec)}


def _check_image_size(image_size, sides: tuple, data, path: Path) -> None:
    """Refuse ``image_size`` where it reads no pictures (no ``data``) or differs from a size the
    model fixes (its input's ``sides``, height and width, None where open)."""
    given = tuple(image_size) if isinstance(image_size, (tuple, list)) else (image_size,)
    typed = by(given)  # the size as the user gives one, 16x16, not the tuple it was read into
    if data is None:
        raise ParameterError("image_size", typed, "reads the pictures of an image folder at that size; give "
                             "the folder as `data` too")
    if any(sides) and not (len(given) == 2 and all(side is None or g == side for g, side in zip(given, sides))):
        h, w = sides
        if h and w:
            raise ParameterError("image_size", typed, f"{path} takes {h}x{w} pictures, and an image folder's are "
                                 "read at that size; leave `image_size` out (it is for a model whose input leaves "
                                 "a side open, None)")
        # one side open: the option is needed (a folder of several sizes), with the fixed side as the model's
        wanted = f"pictures {w} wide (any height); give `image_size` Hx{w}" if w else \
            f"pictures {h} high (any width); give `image_size` {h}xW"
        raise ParameterError("image_size", typed, f"{path} takes {wanted}")


def _classes(classes, known: list[str] | None, k: int, path: Path, data: str | None, outputs: str) -> list[str]:
    """The run's class names: ``classes`` as given, else the dataset's (``known``), else 0..K-1;
    ``outputs`` says what the model gives, as its Keras code wrote it."""
    if known is not None and len(known) != k:  # its labels index outputs the model does not have, or leave some out
        raise NeuralabError(f"{path}: the model {outputs}, the data {data} has {len(known)} classes; "
                            f"import it with the dataset it was trained on, or one of {k} classes")
    if classes is None:
        return list(known) if known is not None else [str(i) for i in range(k)]
    if len(classes) != k or len(set(classes)) != k:
        raise ParameterError("classes", ",".join(classes), f"the model {outputs}: give {k} distinct names")
    return list(classes)


def _first_sentence(e: Exception) -> str:
    """Keras's error as a reason, whole: its first line (with the next, where the first only leads
    to it with a colon: "... Example error message for object <Dense ...>:"), or where that runs
    on into the config Keras quotes ("Could not locate class 'X'. Make sure ... Full object config:
    {...}"), its first sentence; never more than MAX_REASON characters, cut at a word."""
    from neuralab.training.inputs_check import first_line

    line = first_line(e)
    if line.endswith(":"):  # the cause is on a later line
        line = " ".join([line, *[x.strip() for x in str(e).splitlines()[1:] if x.strip()][:1]])
    if len(line) <= MAX_REASON:
        return line
    # a sentence ends at ". " but for an abbreviation's ("e.g. the kernel")
    end = re.search(r"(?<!\be\.g)(?<!\bi\.e)\. ", line)
    if end is not None and end.end() - 1 <= MAX_REASON:
        return line[:end.start() + 1]
    cut = line[:MAX_REASON - 3]
    space = cut.rfind(" ")
    return (cut[:space] if space > MAX_REASON // 2 else cut) + "..."  # a word that long is cut itself


def _conversion_check(path: Path, spec: dict, weights: dict, chw: tuple, scale: float,
                      dtypes: dict[str, str] | None = None) -> dict:
    """The largest |Keras - neuralab| over random images of whole pixels 0-255 x ``scale``, the
    inputs the run gives the model, through Keras's own loader (safe mode, after neuralab's
    reader has refused anything that would run code). A difference above CHECK_TOLERANCE is
    warned about: where the model has a layer that Keras's PyTorch backend computes otherwise
    than TensorFlow (which neuralab follows), or one that Keras computes in 16 bits (its dtype
    policy, of ``dtypes`` by layer), naming it, else as a possible conversion fault."""
    from neuralab.keras import build, on_pytorch

    try:
        on_pytorch()
        import keras
    except ImportError:
        return {"checked": False, "why": "Keras is not installed (pip install 'neuralab[keras]')"}
    largest = max(math.prod(d or 1 for d in e["output_shape"][1:]) for e in spec["layers"])
    if 4 * CHECK_INPUTS * max(largest, math.prod(chw)) > MAX_CHECK_BYTES:
        return {"checked": False, "why": f"a layer outputs {largest:,} values an image, more than the check of "
                                         f"{CHECK_INPUTS} images runs in {MAX_CHECK_BYTES // 2**20:,} MB"}
    try:
        with _named_for_keras(path) as named:
            reference = keras.saving.load_model(named, compile=False, safe_mode=True)
    except Exception as e:  # noqa: BLE001  Keras's loader: any failure only means "not checked"
        return {"checked": False, "why": f"Keras could not load the file: {_first_sentence(e)}"}
    # Images in [0, 1) would reach a model starting with Rescaling(1/255) as near-black ones, on
    # which a wrong first kernel changes the outputs by less than float32's error
    pixels = np.random.default_rng(0).integers(0, 256, (CHECK_INPUTS, *chw)).astype(np.float32)
    x = pixels * np.float32(scale)
    x_keras = x.transpose(0, 2, 3, 1)
    if len(reference.input_shape) == 3:  # grey images without their channel axis (spec.grey_images)
        x_keras = x_keras[..., 0]
    expected = np.asarray(reference.predict(x_keras, verbose=0), dtype=np.float64)
    with torch.inference_mode():
        got = build(spec, weights).eval()(torch.from_numpy(x)).double().numpy()
    difference = float(np.abs(got - expected).max())
    tolerance = CHECK_TOLERANCE * max(1.0, float(np.abs(expected).max()))
    check = {"checked": True, "inputs": f"{CHECK_INPUTS} random images of pixels 0-255 x {scale:.6g}",
             "max_abs_difference": difference, "tolerance": tolerance, "keras": keras.__version__}
    if not difference <= tolerance:  # NaN included
        disagreeing, halved = _backends_disagree(spec, chw), _in_16_bits(spec, dtypes or {})
        check["explained_by"] = disagreeing + halved
        found = disagreeing or halved
        more = f" (and {len(found) - 1} more like it)" if len(found) > 1 else ""
        if disagreeing:
            why = (f"expected from its {disagreeing[0]}{more}: Keras on PyTorch averages the padding's edge copies in, "
                   f"neuralab follows TensorFlow ({BACKENDS_DISAGREE})")
        elif halved:
            why = (f"expected from its {halved[0]}{more}: Keras computes it in 16-bit floats, neuralab in float32, "
                   "as it trains and predicts")
        else:
            why = ("a possible conversion fault, so the run may not compute what the Keras model does: please "
                   "report it with the file")
        warnings.warn(f"{path}: Keras and neuralab differ by {difference:.1e}, more than the {tolerance:.0e} "
                      f"float32's rounding explains; {why}")
    return check


def _backends_disagree(spec: dict, chw: tuple) -> list[str]:
    """The layers that Keras 3 on PyTorch computes otherwise than TensorFlow: a "same" average
    pooling whose window of 3 or more reaches unevenly into the padding, which Keras on PyTorch
    fills with copies of the edge and averages in (docs/keras.md, BACKENDS_DISAGREE)."""
    from neuralab.keras.spec import with_input
    from neuralab.models.layers import same_padding

    if None in spec["layers"][0]["output_shape"][1:]:  # sides left open: the check's images'
        c, h, w = chw
        spec = with_input(spec, (h, w, c))
    found = []
    for e in spec["layers"]:
        a = e["args"]
        if not e["class"].startswith("AveragePooling") or a.get("padding") != "same":
            continue
        sides, k, s = e["input_shapes"][0][1:-1], a["pool_size"], a["strides"]  # (H, W) or a series' (T,)
        pads = [same_padding(n, kn, sn) for n, kn, sn in zip(sides, k, s)]
        if any(kn >= 3 and before != after for kn, (before, after) in zip(k, pads)):
            found.append(f"layer '{e['name']}' ({e['class']} {by(k)} at strides {by(s)}, padding 'same', "
                         f"on {by(sides)})")
    return found


def _in_16_bits(spec: dict, dtypes: dict[str, str]) -> list[str]:
    """The model's layers that Keras computes in 16-bit floats, by their dtype policy ("float16",
    "mixed_float16", "bfloat16", "mixed_bfloat16"): float16 keeps 11 significant bits, so their
    outputs differ from float32's by about 1e-4 of their size (bfloat16's 8 bits: 1e-3)."""
    return [f"layer '{e['name']}' (dtype policy '{dtypes[e['name']]}')" for e in spec["layers"]
            if dtypes.get(e["name"], "").endswith("float16")]


@contextlib.contextmanager
def _named_for_keras(path: Path):
    """``path`` under a name whose extension says what it holds: Keras's loader picks the format
    by the name (.keras a zip, .h5 HDF5), neuralab's reader by the content, so a file saved as
    .h5 and renamed .keras reads here and would fail there with "File not found"."""
    from neuralab.keras.reader import ZIP_MAGIC

    with open(path, "rb") as f:
        zipped = f.read(4) == ZIP_MAGIC
    suffix = path.suffix.lower()
    if (suffix == ".keras") == zipped:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="neuralab-import-") as folder:
        named = Path(folder) / ("model.keras" if zipped else "model.h5")
        try:
            os.symlink(path.resolve(), named)
        except OSError:  # a file system without links: a copy
            shutil.copyfile(path, named)
        yield named
