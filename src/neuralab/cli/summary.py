"""`neuralab summary MODEL --input 28x28x1 [--classes N]`: the Keras-style layer table."""

from __future__ import annotations

from neuralab.cli._args import at_least, positive_int, shape_hwc


def register(sub) -> None:
    from neuralab.models.zoo import ARCHITECTURES

    p = sub.add_parser("summary", help="layer table of a zoo model: output shapes, parameters, W_out formula",
                       description="Keras-style summary of a zoo model: one row per layer with its output shape and "
                                   "parameters, and for every conv/pool layer the output size from "
                                   "W_out = floor((W_in - K + 2P) / S) + 1. Nothing is allocated: any size is instant.")
    p.add_argument("model", metavar="MODEL", choices=tuple(ARCHITECTURES), help=f"one of {', '.join(ARCHITECTURES)}")
    p.add_argument("--input", metavar="HxWxC", type=shape_hwc,
                   help="input size, e.g. 28x28x1 or 32x32x3 (default: the paper's)")
    p.add_argument("--classes", metavar="N", type=at_least(2),
                   help="number of classes (default: the paper's at the paper's input size, else 10)")
    p.add_argument("--depth", metavar="N", type=positive_int, help="fold layers nested deeper than N levels into one row")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run_summary)


def run_summary(args) -> int:
    import json

    import torch

    from neuralab.models import ARCHITECTURES, build_model, print_summary, summary

    arch = ARCHITECTURES[args.model]
    input_shape = args.input or arch.paper_input
    classes = args.classes or (arch.paper_classes if input_shape == arch.paper_input else 10)
    with torch.device("meta"):  # shapes and counts only: no weights are allocated
        model = build_model(args.model, input_shape, classes)
    result = summary(model, input_shape, depth=args.depth, name=args.model)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print_summary(result)
    return 0
