"""`neuralab summary MODEL [--input 28x28x1] [--classes N] [--layout keras]`: the layer table of a
zoo model, a saved Keras model (.keras, .h5), or a model in a Python file (Keras code or a
torch.nn.Module), which runs as `neuralab train --model FILE.py` runs it."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import NamedTuple

from neuralab.cli._args import at_least, positive_int, shape_hwc

KERAS_FILES = (".keras", ".h5", ".hdf5")


def register(sub) -> None:
    from neuralab.models.zoo import ARCHITECTURES

    def model_name(text: str) -> str:
        if text in ARCHITECTURES or text.lower().endswith(KERAS_FILES) or _python_file(text):
            return text
        raise argparse.ArgumentTypeError(f"{text!r}: neither a zoo model ({', '.join(ARCHITECTURES)}), a "
                                         f"Keras file ({', '.join(KERAS_FILES)}) nor a Python file FILE.py[:NAME]")

    p = sub.add_parser("summary", help="layer table of a zoo model or a Keras file: output shapes, parameters, "
                                       "W_out formula",
                       description="Keras-style summary of a zoo model or of a saved Keras model: one row per layer "
                                   "with its output shape and parameters, and (PyTorch's layout) for every conv/pool "
                                   "layer the output size from W_out = floor((W_in - K + 2P) / S) + 1. Nothing is "
                                   "allocated: any size is instant.")
    p.add_argument("model", metavar="MODEL", type=model_name,
                   help=f"one of {', '.join(ARCHITECTURES)}, a Keras file (model.keras, a full-model .h5), or a "
                        "Python file FILE.py[:NAME] defining a Keras model or a torch.nn.Module (it runs)")
    p.add_argument("--input", metavar="HxWxC", type=input_size,
                   help="input size of a zoo model, e.g. 28x28x1 or 32x32x3 (default: the paper's; HxW: one channel); "
                        "needed for a torch.nn.Module, which takes three sizes as an image and two as an image of one "
                        "channel or as sequences (batch, steps, features), STEPSxFEATURES, e.g. 30x1, as `neuralab "
                        "forecast --model` gives them: whichever it runs on")
    p.add_argument("--classes", metavar="N", type=at_least(2),
                   help="number of classes of a zoo model (default: the paper's at the paper's input size, else 10)")
    p.add_argument("--depth", metavar="N", type=positive_int, help="fold layers nested deeper than N levels into one row")
    p.add_argument("--layout", choices=("torch", "keras"),
                   help="torch: (B, C, H, W) shapes, PyTorch's parameter count, the W_out formulas (a zoo model's "
                        "default); keras: (None, H, W, C) shapes and Keras's count, as model.summary() prints "
                        "(a Keras file's default). The counts differ for LSTM (one bias per gate in Keras, "
                        "two in PyTorch), SimpleRNN (one bias in Keras, two in PyTorch) and BatchNorm (Keras counts the moving statistics)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run_summary)


class InputSize(NamedTuple):
    """--input, read once: an image model reads it as HxWxC (HxW: one channel), a sequence
    module's two sizes are its steps and features."""

    text: str                      # as typed, for messages
    image: tuple[int, int, int]    # (C, H, W)
    sizes: tuple[int, ...]         # as typed: (H, W, C), or two, (H, W) or (steps, features)


def input_size(text: str) -> InputSize:
    c, h, w = shape_hwc(text)
    return InputSize(text, (c, h, w), (h, w) if text.lower().count("x") == 1 else (h, w, c))


def _image_order_checked(given: InputSize | None, module=None) -> None:
    """Refuse three sizes typed in PyTorch's order (3x224x224), as the table's header prints an
    input, which HxWxC reads as another network's input without a word. A ``module`` whose first
    convolution takes the typed channels (28 rows of 1x28, kernel 1 high) says they are meant."""
    if given is not None and len(given.sizes) == 3:
        from neuralab.mechanics.shapes import refuse_channels_last

        channels, kernel = None, None
        if module is not None:
            from neuralab.models.summary import image_layer

            channels, kernel = image_layer(module) or (None, None)
        refuse_channels_last(given.image, "input_shape", kernel, typed=True, channels=channels)


def run_summary(args) -> int:
    import json

    from neuralab.errors import ParameterError, hwc

    if args.model.lower().endswith(KERAS_FILES):
        if args.input or args.classes:
            raise ParameterError("input_shape" if args.input else "num_classes", _given(args),
                                 "a Keras file has its own input and classes; give them for zoo models only")
        return _keras_file(args)
    if _python_file(args.model):
        return _python_model(args)
    _image_order_checked(args.input)
    import torch

    from neuralab.models import ARCHITECTURES, build_model, print_summary, summary

    arch = ARCHITECTURES[args.model]
    input_shape = args.input.image if args.input else arch.paper_input
    classes = args.classes or (arch.paper_classes if input_shape == arch.paper_input else 10)
    try:
        with torch.device("meta"):  # shapes and counts only: no weights are allocated
            model = build_model(args.model, input_shape, classes, guess_order=False)  # --input is HxWxC, ordered
        result = summary(model, input_shape, depth=args.depth, name=args.model)
    except (RuntimeError, TypeError) as e:
        if "overflow" not in str(e).lower():
            raise
        # torch counts a tensor's sizes and elements in 64 bits, even on the meta device
        raise ParameterError("input_shape", hwc(input_shape), f"too large: a tensor of {args.model} would have more "
                             "than 2**63 elements; give a smaller size") from None
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print_summary(result, layout=args.layout or "torch")
    return 0


def _given(args):
    """--input as typed, else --classes: the value a refusal of either names."""
    return args.input.text if args.input else args.classes


def _python_file(text: str) -> bool:
    from neuralab.training.source import split_name

    return split_name(text)[0].suffix.lower() == ".py"


def _python_model(args) -> int:
    """A model defined in a Python file: Keras code as a Keras file is shown, a torch.nn.Module
    as a zoo model is, on the ``--input`` it is given."""
    import json

    from neuralab.errors import NeuralabError, ParameterError
    from neuralab.models import print_summary
    from neuralab.models.summary import sequence_hint, sequence_layer
    from neuralab.training.source import KERAS, resolve, split_name

    with contextlib.redirect_stdout(sys.stderr):  # what the user's code prints as it loads: stdout is --json's
        source = resolve(args.model)
    name = source.name or split_name(args.model)[0].stem
    if source.type == KERAS:
        if args.input or args.classes:
            raise ParameterError("input_shape" if args.input else "num_classes", _given(args),
                                 "a Keras model has its own input and classes; give them for zoo models only")
        return _keras_spec(args, source.spec, source.architecture.removeprefix("keras:"))
    if args.classes:
        raise ParameterError("num_classes", args.classes, "a PyTorch module has its own classes; give them for zoo "
                                                          "models only")
    # the first layer defined: nothing has run the module yet to say which it calls first
    layer = sequence_layer(source.module)
    if not args.input:
        takes = sequence_hint(layer, 30) if layer else ("give `input_shape`: HxWxC for images, e.g. 28x28x1, or "
                                                        "STEPSxFEATURES for sequences (batch, steps, features), e.g. 30x1")
        raise NeuralabError(f"{args.model}: a PyTorch module does not say what it takes; {takes}")
    _image_order_checked(args.input, source.module)
    with contextlib.redirect_stdout(sys.stderr):  # its forward, too
        result = _image_or_sequence(source.module, args.input, args.depth, name, layer is not None)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print_summary(result, layout=args.layout or "torch")
    return 0


def _image_or_sequence(module, given: InputSize, depth, name: str, sequence_first: bool):
    """The summary of a module on ``given`` read as an image (HxWxC; HxW: one channel), or,
    where two sizes fail as a picture and work as (steps, features), on that sequence: a
    module taking (batch, steps, features) need not start with a recurrent layer.
    ``sequence_first``: two sizes are tried as a sequence first (a module that defines a
    recurrent layer first), and its failure is the one said where both fail. Three sizes are
    an image's alone; the failure says what the module's first layer called takes."""
    from neuralab.errors import NeuralabError
    from neuralab.models import summary

    shapes = [given.image] if len(given.sizes) == 3 else \
        [given.sizes, given.image] if sequence_first else [given.image, given.sizes]
    failed = None
    for shape in shapes:
        try:
            return summary(module, shape, depth=depth, name=name)
        except NeuralabError as e:
            failed = failed or e
    raise failed from None


def _keras_file(args) -> int:
    """A Keras file's summary: Keras's own rows from its spec, or the converted module's (torch)."""
    from pathlib import Path

    from neuralab.keras import read

    return _keras_spec(args, read(args.model, weights=False).spec, Path(args.model).stem)  # a table needs no weights


def _keras_spec(args, spec: dict, name: str) -> int:
    """A Keras model's summary from its spec: Keras's own rows, or the converted module's (torch)."""
    import json

    from neuralab.errors import NeuralabError, by
    from neuralab.keras import build, input_shape, keras_summary, parameter_count, summary_text

    if (args.layout or "keras") == "keras":
        if args.json:
            rows = keras_summary(spec)
            print(json.dumps({"model": name, "layout": "keras", "rows": rows, "total_params": parameter_count(spec),
                              "trainable_params": sum(r["trainable"] for r in rows)}, indent=2))
        else:
            print(summary_text(spec, name), end="")
        return 0
    import torch

    from neuralab.models import print_summary, summary

    shape = input_shape(spec)  # (C, H, W) for images, (steps, features) for sequences, as summary takes them
    if len(shape) not in (2, 3):
        raise NeuralabError(f"{args.model}: PyTorch's layout table is drawn for image and sequence models; this "
                            f"model takes vectors of {by(shape)} values: use the keras layout")
    if None in shape:  # the table runs the module on one input of every size
        raise NeuralabError(f"{args.model}: takes inputs of open sizes ({', '.join(map(str, shape))}), and PyTorch's "
                            "layout table runs the module on one of given sizes: use the keras layout")
    with torch.device("meta"):
        net = build(spec)
    result = summary(net, shape, depth=args.depth, name=name)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print_summary(result)
    return 0
