"""`neuralab inspect RUN_DIR IMAGE`: the feature maps of a trained CNN and its first-layer filters."""

from __future__ import annotations

import sys
from pathlib import Path

from neuralab.cli._args import run_folder
from neuralab.cli.predict import INVERT_HELP, dark_on_light_said
from neuralab.cli.train import TRUST_HELP


def register(sub) -> None:
    p = sub.add_parser(
        "inspect", help="save a trained CNN's feature maps for a picture and its first-layer filters",
        description="Feed IMAGE to the model of RUN_DIR and save, as image grids, the output of every "
                    "convolution and pooling layer and the learned first-layer filters next to the classic "
                    "kernels (blur, sharpen, Sobel, ...) they resemble most by cosine similarity. "
                    "feature_maps.npz keeps every value.")
    p.add_argument("run_dir", type=run_folder, metavar="RUN_DIR",
                   help="a CNN image classifier's run directory (from neuralab train or import)")
    p.add_argument("image", type=Path, metavar="IMAGE", help="a PNG or JPEG picture of any size")
    p.add_argument("--out", type=Path, help="folder for the pictures (default inspect-RUN-IMAGE in this folder)")
    p.add_argument("--invert", action="store_true", help=INVERT_HELP)
    p.add_argument("--trust-code", action="store_true", help=TRUST_HELP)
    p.set_defaults(func=run_inspect)


def run_inspect(args) -> int:
    from neuralab.errors import NeuralabError
    from neuralab.models.inspect import first_layer_filters, inspect_image
    from neuralab.reports.inspect import write_inspection
    from neuralab.training import load_classifier

    clf = load_classifier(args.run_dir, trust_code=args.trust_code)
    try:
        first_layer_filters(clf.model)
    except NeuralabError as e:  # said of the model's PyTorch class ("Sequential: ..."), which the user never named
        said, torch_class = e.args[0], f"{type(clf.model).__name__}: "
        why = f"the run's model, {clf.name}, {said.removeprefix(torch_class)}" if said.startswith(torch_class) else said
        raise NeuralabError(f"{args.run_dir}: {why}") from None
    out = args.out or Path(f"inspect-{Path(args.run_dir).resolve().name}-{args.image.stem}")
    # the default folder is named by the picture's stem: my_shoe.jpg's would replace my_shoe.png's
    replaced = args.out is None and out.is_dir() and any(out.iterdir())
    result = inspect_image(clf, args.image, invert=args.invert)
    files = write_inspection(out, pixels=result.pixels, layers=result.layers, filters=result.filters,
                             pairs=result.pairs, probabilities=result.probabilities)
    top = clf.top_k(result.probabilities[None], min(3, len(clf.classes)))[0]
    print(f"{args.image}: " + ", ".join(f"{c} {p * 100:.1f}%" for c, p in top))
    if not args.invert and clf.drawn_dark_on_light(result.pixels[None])[0]:
        print(f"neuralab: note: {dark_on_light_said(1, 1)}", file=sys.stderr, flush=True)
    width = max(len(fm.name) + len(fm.kind) for fm in result.layers) + 3
    for fm, path in zip(result.layers, files[1:]):
        c, h, w = fm.maps.shape
        print(f"  {fm.name} ({fm.kind})".ljust(width + 2) + f" {c:>4} x {h:>3} x {w:<3}  {path.name}")
    matches = _matches(result.filters)
    print(f"first-layer filters and the closest classic kernel: {matches}")
    print(f"wrote {len(files)} files to {out}" + (" (over an earlier inspection there; give --out to keep both)"
                                                  if replaced else ""))
    return 0


def _matches(filters) -> str:
    from neuralab.mechanics import closest_kernels

    return ", ".join(f"{i}: {m.name or '-'} {m.similarity:+.2f}" for i, m in enumerate(closest_kernels(filters)))
