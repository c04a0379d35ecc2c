"""`neuralab predict` and `neuralab export`."""

from __future__ import annotations

from pathlib import Path

from neuralab.cli._args import positive_int, run_folder
from neuralab.errors import printable
from neuralab.cli.train import TRUST_HELP

INVERT_HELP = ("invert every picture: one drawn dark on light (a photo, a drawing on paper) for a model trained "
               "on light-on-dark pictures, MNIST's way")


def register(sub) -> None:
    from neuralab.data import ON_ERROR

    p = sub.add_parser("predict", help="classify picture files with a trained run")
    p.add_argument("run_dir", type=run_folder, metavar="RUN_DIR", help="an image classifier's run directory (from neuralab train or import)")
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help="picture files, or folders: every picture in them and their sub-folders, sorted")
    p.add_argument("--top-k", type=positive_int, default=3, help="classes listed per picture, most likely first (default %(default)s)")
    p.add_argument("--invert", action="store_true", help=INVERT_HELP)
    p.add_argument("--json", action="store_true", help="print JSON for machines")
    p.add_argument("--on-error", choices=ON_ERROR, default=ON_ERROR[0],
                   help="a picture that cannot be read: every other one is answered, then refuse ends with the "
                        "names of those that cannot (exit status 2), skip with a warning (default %(default)s)")
    p.add_argument("--trust-code", action="store_true", help=TRUST_HELP)
    p.set_defaults(func=run_predict)

    e = sub.add_parser("export", help="export a run's model (ONNX), checked with onnxruntime")
    e.add_argument("run_dir", type=run_folder, metavar="RUN_DIR", help="an image classifier's run directory (from neuralab train or "
                                                      "import), or a forecaster's (from neuralab forecast)")
    e.add_argument("--onnx", action="store_true", required=True, help="write model.onnx")
    e.add_argument("--out", help="where to write (default RUN_DIR/model.onnx)")
    e.add_argument("--trust-code", action="store_true", help=TRUST_HELP)
    e.set_defaults(func=run_export)


def run_predict(args) -> int:
    import json
    import sys
    import warnings

    import numpy as np

    from neuralab.data.folders import SkippedImagesWarning
    from neuralab.errors import NeuralabError
    from neuralab.training import load_classifier
    from neuralab.training.trained_classifier import PREDICT_BATCH

    clf = load_classifier(args.run_dir, trust_code=args.trust_code)  # a module object's: main() names the call
    k = min(args.top_k, len(clf.classes))
    paths = pictures(args.images)
    answers, unreadable = [], []  # for --json, in the order given; (path, the reader's error, which names it)
    dark_on_light = 0  # pictures the model would take inverted, which --invert was not given for
    for i in range(0, len(paths), PREDICT_BATCH):  # a batch at a time: 20,000 photos need not all be in memory
        batch = paths[i:i + PREDICT_BATCH]
        read = [read_one(clf, path, args.invert) for path in batch]
        pixels = [r for r in read if not isinstance(r, NeuralabError)]
        tops = iter(clf.top_k(clf.predict_proba(np.concatenate(pixels)), k) if pixels else ())
        if pixels and not args.invert:
            dark_on_light += int(clf.drawn_dark_on_light(np.concatenate(pixels)).sum())
        for path, r in zip(batch, read):
            if isinstance(r, NeuralabError):
                unreadable.append((path, r))
                answers.append({"image": str(path), "error": why(path, r)})
                continue
            top = next(tops)
            if args.json:
                answers.append({"image": str(path), "top": [{"class": c, "probability": p} for c, p in top]})
            else:  # one line per picture, for grep and scripts, printed as they come: a broken file loses none
                print(f"{printable(str(path))}: " + ", ".join(f"{c} {p * 100:.1f}%" for c, p in top))
    if args.json:
        print(json.dumps(answers, indent=2))
    if dark_on_light:  # on stderr, after the answers: a script reading them sees no change
        print(f"neuralab: note: {dark_on_light_said(dark_on_light, len(paths) - len(unreadable))}", file=sys.stderr,
              flush=True)
    if unreadable:
        if len(paths) == 1 and args.on_error == "refuse":  # the reader's own line
            raise unreadable[0][1]
        listed = "; ".join(f"{printable(str(p))} ({why(p, e)})" for p, e in unreadable[:3])
        listed += "; ..." if len(unreadable) > 3 else ""
        others = ", the others are answered" if len(unreadable) < len(paths) else ""
        if args.on_error == "refuse":
            raise NeuralabError(f"{len(unreadable)} of {len(paths)} pictures cannot be read{others}: "
                                f"{listed}; fix or remove them, or pass --on-error skip to leave them out")
        warnings.warn(f"skipped {len(unreadable)} of {len(paths)} pictures that cannot be read: {listed}",
                      SkippedImagesWarning, stacklevel=1)
    return 0


def dark_on_light_said(n: int, of: int) -> str:
    """Advice for ``n`` of the ``of`` pictures answered (n > 0) that look drawn dark on light, given
    to a model that takes light-on-dark pictures, without --invert."""
    why = "the model takes light-on-dark pictures (MNIST's way)"
    if of == 1:
        return f"the picture looks drawn dark on light, and {why}: `--invert` inverts it, as the web app does"
    return f"{n} of {of} pictures look drawn dark on light, and {why}: `--invert` inverts them, as the web app does"


def why(path, error) -> str:
    """What the reader said of the picture at ``path``, without its name (which leads its line)."""
    from pathlib import Path

    return str(error).removeprefix(f"{Path(path)}: ")


def read_one(clf, path, invert: bool):
    """The picture at ``path`` as ``clf.load_images`` gives it (1, C, H, W), or the reader's
    NeuralabError, which names it: one that cannot be read must not cost the others."""
    from pathlib import Path

    from neuralab.errors import NeuralabError

    if Path(path).is_symlink() and Path(path).is_dir():  # met in a folder given: as training says it
        return NeuralabError(f"{Path(path)}: a link to a folder, which is not followed; give the folder itself")
    try:
        return clf.load_images([path], invert=invert)
    except NeuralabError as e:
        return e


def pictures(given: list[str]) -> list:
    """The pictures named on the command line, each folder among them replaced by the pictures
    in it and below it (as a class folder's are found for training); other names stay as they
    are, for the reader to accept or name."""
    from pathlib import Path

    from neuralab.data.folders import list_pictures
    from neuralab.data.pictures import FORMAT_NAMES
    from neuralab.errors import NeuralabError

    paths = []
    for name in given:
        if not name.strip():  # Path("") is this folder: an unset $PICTURE would classify all below it
            raise NeuralabError(f"IMAGE {name!r}: an empty name; give picture files, or folders of them")
        if not Path(name).is_dir():
            paths.append(name)
            continue
        found, links, others = list_pictures(Path(name))
        if not found and not others and not links:
            raise NeuralabError(f"{name}: is a folder, not a picture, and holds no {FORMAT_NAMES} file; "
                                "give pictures, or folders of them")
        paths += sorted([*found, *others, *links])  # pictures in other formats and links to folders: named by read_one
    return paths


def run_export(args) -> int:
    from neuralab.training.source import from_python_only
    from neuralab.runs import Kind, Run
    from neuralab.training.export import weights_beside

    if Run.open(args.run_dir).kind is Kind.FORECASTER:
        from neuralab.cli.forecast import finished_run_only
        from neuralab.forecasting.onnx import export_onnx

        with finished_run_only(), from_python_only(args.run_dir, "it can only be exported",
                                                   "neuralab.forecasting.onnx.export_onnx", *filter(None, [args.out])):
            path, diff = export_onnx(args.run_dir, args.out, trust_code=args.trust_code)
        matches = f"onnxruntime matches neuralab's forecasts within {diff:.1e}, in the target's units"
    else:
        from neuralab.training.export import export_onnx

        with from_python_only(args.run_dir, "it can only be exported", "neuralab.training.export.export_onnx",
                              *filter(None, [args.out])):
            path, diff = export_onnx(args.run_dir, args.out, trust_code=args.trust_code)
        matches = f"onnxruntime matches PyTorch within {diff:.1e}"
    # a graph past 2 GiB is two files, and copying model.onnx alone leaves its weights behind
    data = weights_beside(Path(path))
    weights = f", its weights in {data}, which must stay beside it" if data.exists() else ""
    print(f"wrote {path}{weights} ({matches})")
    return 0
