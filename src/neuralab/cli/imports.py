"""`neuralab import MODEL.keras|MODEL.h5`: a saved Keras image classifier as a neuralab run."""

from __future__ import annotations

from neuralab.cli._args import height_width, names


def register(sub) -> None:
    p = sub.add_parser(
        "import", help="make a run from a saved Keras image classifier (.keras, .h5 or .hdf5)",
        description="Read a saved Keras model as data (nothing in it runs), convert it to PyTorch and write a "
                    "classifier run: evaluate, predict, inspect, export --onnx and serve then work on it. With Keras "
                    "installed, the conversion is checked against Keras's own outputs on random images (Keras's "
                    "loader in safe mode, given the file only after neuralab's reader accepted it).")
    p.add_argument("model", metavar="MODEL", help="a .keras, .h5 or .hdf5 file (Keras 3's or TF-Keras 2's model.save); "
                                                  "the format is read from the content")
    p.add_argument("--out", help="run directory (default import-NAME-TIME in the runs folder: $NEURALAB_RUNS or ./runs)")
    p.add_argument("--classes", type=names, help="class names in the model's output order, comma-separated "
                                                 "(default: the dataset's, an image folder's sub-folder "
                                                 "names, else 0..K-1)")
    p.add_argument("--scale", help="the model's inputs are pixels x SCALE, e.g. 1/255 (default 1/255, or 1 when "
                                   "the model starts with a Rescaling layer)")
    p.add_argument("--data", help="the dataset the model is for (e.g. fashion-mnist, or an image folder, whose "
                                  "pictures are read at the model's input size and colours): the run is evaluated "
                                  "on its test set")
    p.add_argument("--image-size", metavar="HxW",  # import reads pictures in the model's own colours
                   type=lambda text: height_width(text, "the model's: pictures are read in its colours"),
                   help="for a model whose input takes any size (None, None, C): the size an image folder's "
                        "pictures are read at (default: as they are, all of one size); a model of one size reads "
                        "them at its own")
    p.add_argument("--data-dir", help="folder holding the dataset files")
    p.add_argument("--overwrite", action="store_true", help="replace what is already in --out")
    p.set_defaults(func=run_import)


def run_import(args) -> int:
    from neuralab.training.keras_import import import_keras
    from neuralab.training.keras_model import parse_scale

    scale = parse_scale(args.scale) if args.scale is not None else None
    r = import_keras(args.model, args.out, args.classes, scale, args.data, args.data_dir, args.overwrite,
                     image_size=args.image_size)
    check = r["check"]
    checked = (f"Keras and neuralab differ by at most {check['max_abs_difference']:.1e} on {check['inputs']}"
               + (" (beyond float32's rounding: see the warning above)"
                  if not check["max_abs_difference"] <= check["tolerance"] else "")
               if check["checked"] else f"not checked against Keras: {check['why']}")
    print(f"{args.model}: {r['parameters']:,} parameters, {len(r['classes'])} classes, inputs = pixels x "
          f"{r['scale']:.6g}; {checked}")
    if "test_accuracy" in r["results"]:
        print(f"test accuracy {r['results']['test_accuracy'] * 100:.2f}% on {args.data}")
    print(f"run: {r['run_dir']}")
    return 0
