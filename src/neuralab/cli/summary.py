"""`neuralab summary MODEL --input 28x28x1 [--classes N]`: the Keras-style layer table."""

from __future__ import annotations

import argparse

from neuralab.errors import NeuralabError


def register(sub) -> None:
    p = sub.add_parser("summary", help="layer table of a zoo model: output shapes, parameters, W_out formula",
                       description="Keras-style summary of a zoo model: one row per layer with its output shape and "
                                   "parameters, and for every conv/pool layer the output size from "
                                   "W_out = floor((W_in - K + 2P) / S) + 1. Nothing is allocated: any size is instant.")
    p.add_argument("model", help="architecture (see `neuralab zoo`)")
    p.add_argument("--input", metavar="HxWxC", help="input size, e.g. 28x28x1 or 32x32x3 (default: the paper's)")
    p.add_argument("--classes", metavar="N",
                   help="number of classes (default: the paper's at the paper's input size, else 10)")
    p.add_argument("--depth", metavar="N", help="fold layers nested deeper than N levels into one row")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run_summary)


def input_option(text: str, option: str = "--input") -> tuple[int, int, int]:
    """'28x28x1' -> (1, 28, 28), with a one-line error naming the option."""
    from neuralab.cli._args import shape_hwc

    try:
        return shape_hwc(text)
    except argparse.ArgumentTypeError as e:
        raise NeuralabError(f"{option} {e}") from None


def int_option(text: str, option: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise NeuralabError(f"{option} {text!r}: not a whole number") from None
    if value < minimum:
        raise NeuralabError(f"{option} {value}: must be at least {minimum}")
    return value


def run_summary(args) -> int:
    import json

    import torch

    from neuralab.models import ARCHITECTURES, build_model, print_summary, summary

    if args.model not in ARCHITECTURES:
        raise NeuralabError(f"MODEL {args.model!r}: unknown; choose one of: {', '.join(ARCHITECTURES)}")
    arch = ARCHITECTURES[args.model]
    input_shape = input_option(args.input) if args.input else arch.paper_input
    if args.classes is not None:
        classes = int_option(args.classes, "--classes", 2)
    else:
        classes = arch.paper_classes if input_shape == arch.paper_input else 10
    depth = int_option(args.depth, "--depth", 1) if args.depth is not None else None
    with torch.device("meta"):  # shapes and counts only: no weights are allocated
        model = build_model(args.model, input_shape, classes)
    result = summary(model, input_shape, depth=depth, name=args.model)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print_summary(result)
    return 0
