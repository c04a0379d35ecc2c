"""`neuralab conv ...`: the convolution mechanics by hand (demo, shape, kernels, apply, pool, train-scratch)."""

from __future__ import annotations

from pathlib import Path

from neuralab.cli._args import at_least, defaults, padding, positive_float, positive_int, shape_hwc, size_pair


def register(subparsers) -> None:
    conv = subparsers.add_parser("conv", help="convolution by hand: worked examples, output sizes, kernels on pictures")
    sub = conv.add_subparsers(dest="conv_command", metavar="SUBCOMMAND", required=True)

    p = sub.add_parser("demo", help="the workshop's worked examples, step by step")
    p.add_argument("example", nargs="?", help="one example by name (default: all); --list shows the names")
    p.add_argument("--list", action="store_true", help="list the examples and their slides")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("shape", help="output shape, formula and parameter count of a Conv2D layer")
    p.add_argument("--input", type=shape_hwc, required=True, help="H x W x depth, e.g. 32x32x3")
    p.add_argument("--filters", type=positive_int, default=1, help="number of filters F (default %(default)s)")
    p.add_argument("--kernel", type=size_pair, required=True, help="K or KhxKw, e.g. 5 or 5x3")
    p.add_argument("--stride", type=size_pair, default=(1, 1), help="S or ShxSw (default 1)")
    p.add_argument("--padding", type=padding, default="valid", help="valid, same, or P zeros per side (default %(default)s)")
    p.add_argument("--no-bias", action="store_true", help="count no bias parameters")
    p.set_defaults(func=cmd_shape)

    p = sub.add_parser("kernels", help="list the named classic kernels")
    p.set_defaults(func=cmd_kernels)

    p = sub.add_parser("apply", help="slide a kernel over a PNG/JPEG picture; writes the result and a figure")
    p.add_argument("image", type=Path, help="a PNG or JPEG picture, grayscale or colour")
    p.add_argument("--kernel", default="sobel-x",
                   help="a name (see `conv kernels`), numbers like '1,0,-1;2,0,-2;1,0,-1', or a file (default sobel-x)")
    _window_options(p)
    p.add_argument("--padding", type=padding, default="valid", help="valid, same, or P zeros per side (default %(default)s)")
    p.add_argument("--depth", choices=("per-channel", "sum"), default="per-channel",
                   help="colour pictures: each channel on its own or one filter summed over the depth (default %(default)s)")
    p.add_argument("--gray", action="store_true", help="turn a colour picture into grayscale first")
    p.add_argument("--scale", choices=("auto", "clip", "abs", "minmax"), default="auto",
                   help="floats to 0..255 (default auto): clip, abs (|value|) or minmax (stretch the range to "
                        "0..255); auto clips a kernel summing to about 1 (blur, sharpen), takes |value| for one summing "
                        "to 0 (edges) and stretches any other sum (under --depth sum on colour, any sum but 0)")
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser("pool", help="max or average pooling of a PNG/JPEG picture; writes the result and a figure")
    p.add_argument("image", type=Path, help="a PNG or JPEG picture, grayscale or colour")
    p.add_argument("--size", type=size_pair, default=(2, 2), help="window N or NxM (default 2)")
    p.add_argument("--mode", choices=("max", "avg"), default="max",
                   help="the largest value of each window, or their mean (default %(default)s)")
    _window_options(p, stride_default="the size")
    p.set_defaults(func=cmd_pool)

    p = sub.add_parser("train-scratch", help="train the from-scratch NumPy CNN on sklearn's 8x8 digits")
    p.defer(_scratch_options)
    p.set_defaults(func=cmd_train_scratch)


def _scratch_options(p) -> None:
    from neuralab.mechanics.scratch_cnn import train_digits

    d = defaults(train_digits)
    p.add_argument("--epochs", type=positive_int, default=d["epochs"], help=f"default {d['epochs']}")
    p.add_argument("--batch-size", type=positive_int, default=d["batch_size"], help=f"default {d['batch_size']}")
    p.add_argument("--lr", type=positive_float, default=d["lr"], help=f"Adam learning rate (default {d['lr']})")
    p.add_argument("--seed", type=at_least(0), default=d["seed"], help=f"default {d['seed']}")


def _window_options(p, stride_default="1") -> None:
    p.add_argument("--stride", type=size_pair, default=None, help=f"S or ShxSw (default {stride_default})")
    # --out and --figure are kept as typed: a name ending in / is a folder, which Path() would not tell
    p.add_argument("--out",
                   help="result picture (.png, .jpg, .bmp, .tif, .webp; .pgm for a grey result, .ppm for a colour one) or raw "
                        "values (.npy), or a folder for it (a new one: end its name with /); default named after IMAGE, in "
                        "this folder")
    figure = p.add_mutually_exclusive_group()  # both at once: one of them would be ignored
    figure.add_argument("--figure", help="side-by-side figure (.png, .svg or .pdf), or a folder for it (default: OUT "
                        "with -figure.png)")
    figure.add_argument("--no-figure", action="store_true", help="write no figure")


def _console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def cmd_demo(args) -> int:
    from neuralab.errors import NeuralabError
    from neuralab.mechanics.demo import EXAMPLES, worked

    if args.list:
        for example in worked():
            print(f"{example.key:<18} {example.title}  (slide: {example.slide})")
        return 0
    if args.example and args.example not in EXAMPLES:
        raise NeuralabError(f"example {args.example!r}: allowed are {', '.join(EXAMPLES)}")
    console = _console()
    for example in worked(args.example):
        console.rule(f"[bold]{example.title}[/]")
        print(f"slide: {example.slide}\n")
        print("\n".join(example.lines))
        print()
    return 0


def cmd_shape(args) -> int:
    from neuralab.mechanics.shapes import conv_shape

    # --input is HxWxC, put in (C, H, W) order by shape_hwc: nothing to guess at
    shape = conv_shape(args.input, args.filters, args.kernel, args.stride, args.padding, bias=not args.no_bias,
                       guess_order=False)
    f, h, w = shape.out_chw
    _console().print(f"[bold]output shape: {h}x{w}x{f}[/]  (H x W x filters; PyTorch NCHW: (N, {f}, {h}, {w}))")
    print("\n".join(shape.explain()))
    return 0


def cmd_kernels(args) -> int:
    from neuralab.mechanics.demo import grid
    from neuralab.mechanics.kernels import ALIASES, KERNELS

    for name, k in KERNELS.items():
        aliases = [a for a, n in ALIASES.items() if n == name]
        print(f"{name}" + (f"  (also: {', '.join(aliases)})" if aliases else ""))
        print("\n".join("  " + row for row in grid(k)))
    print("custom: --kernel '1,0,-1;2,0,-2;1,0,-1' (rows split by ';', fractions like 1/9 allowed) or a file of rows")
    return 0


RAW = ".npy"  # the result's floats as they are, not a picture's 0..255


def _read(args):
    from neuralab.data.pictures import read_image

    return read_image(args.image, mode="L" if getattr(args, "gray", False) else None)


def _paths(args, suffix: str) -> tuple[Path, Path | None]:
    """The result's and the figure's files: a folder given for either gets the default name in
    it. Checked before anything is computed or written: their types are ones written here, and
    neither may replace the picture read, or the other."""
    from neuralab.data.pictures import WRITE_FORMATS
    from neuralab.errors import ParameterError
    from neuralab.reports.plots import FIGURE_FORMATS

    default = Path(f"{args.image.stem}-{suffix}.png")
    out = _placed("out", args.out, default) or default
    if out.suffix.lower() not in (*WRITE_FORMATS, RAW):
        raise ParameterError("out", str(out), f"results are written as {', '.join(WRITE_FORMATS)} pictures or {RAW} "
                                              "values; give a name with one of these endings, or a folder (a new one: "
                                              "end its name with /)")
    figure = None
    if not args.no_figure:
        name = Path(f"{out.stem}-figure.png")
        figure = _placed("figure", args.figure, name) or out.with_name(name.name)
        if figure.suffix.lower() not in FIGURE_FORMATS:
            raise ParameterError("figure", str(figure), f"figures are written as {', '.join(FIGURE_FORMATS)}; "
                                                        "give a name with one of these endings, or a folder (a new one: end "
                                                        "its name with /)")
    for option, path in (("out", out), ("figure", figure)):
        if path is not None and _same_file(path, args.image):
            raise ParameterError(option, str(path), "is the picture read; give another file, so that it is kept")
    if figure is not None and _same_file(figure, out):
        raise ParameterError("figure", str(figure), "is `out`, the result; give the figure another file")
    return out, figure


def _holds(out: Path, ndim: int) -> None:
    """Refuse an ``out`` whose ending cannot hold a result of ``ndim`` dimensions (2 grey, 3 colour):
    Netpbm's .pgm holds grey levels only, .ppm colour only. Called once the picture is read, which
    tells the result's kind, before the work: save_image refuses the same after it."""
    from neuralab.data.pictures import NETPBM
    from neuralab.errors import ParameterError

    suffix = out.suffix.lower()
    if suffix in NETPBM and ndim != NETPBM[suffix][0]:
        _, holds, other = NETPBM[suffix]
        raise ParameterError("out", str(out), f"a {suffix} picture holds {holds} only, and the result is "
                                              f"{'grey' if ndim == 2 else 'in colour'}; give a name ending in {other} "
                                              "or .png")


def _placed(option: str, given: str | None, name: Path) -> Path | None:
    """The file ``option`` (--out, --figure) given as ``given`` names (files.placed); None where it
    was not given."""
    from neuralab.errors import ParameterError
    from neuralab.files import placed

    if given is not None and not given.strip():  # an unset shell variable: no place was meant
        raise ParameterError(option, given, "is empty; give a file or a folder, or leave it out")
    return None if given is None else placed(given, name)


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file: the same path, or, where both exist, one file by
    its links."""
    if a.exists() and b.exists():
        return a.samefile(b)
    return a.resolve() == b.resolve()


def _save(out: Path, values, picture) -> None:
    import numpy as np

    from neuralab.data.pictures import save_image
    from neuralab.files import atomic_write

    if out.suffix.lower() == RAW:
        with atomic_write(out, "wb") as f:
            np.save(f, values)
        return
    save_image(out, picture)  # an ending that cannot hold the result's kind was refused by _holds


def cmd_apply(args) -> int:
    from neuralab.mechanics.kernels import apply_kernel, default_scale, get_kernel, scale_reason, to_uint8

    name, kernel = get_kernel(args.kernel)
    stride = args.stride or (1, 1)
    settings = "".join([f"-s{stride[0]}x{stride[1]}" if tuple(stride) != (1, 1) else "",
                        f"-p{args.padding}" if args.padding != "valid" else ""])
    out, figure = _paths(args, name + settings)
    image = _read(args)
    _holds(out, 3 if image.ndim == 3 and args.depth == "per-channel" else 2)
    values = apply_kernel(image, kernel, stride, args.padding, args.depth)
    summed_colour = image.ndim == 3 and args.depth == "sum"
    scale = default_scale(kernel, summed_colour) if args.scale == "auto" else args.scale
    why = f" (auto: {scale_reason(kernel, summed_colour)})" if args.scale == "auto" else ""
    picture = to_uint8(values, scale)
    _save(out, values, picture)
    kh, kw = kernel.shape
    print(f"kernel {name} ({kh}x{kw}), stride {stride[0]}x{stride[1]}, padding {args.padding}, depth {args.depth}")
    print(f"input {_hwc(image.shape)} -> output {_hwc(values.shape)}; "
          f"values {values.min():.4g} .. {values.max():.4g}, shown as {scale}{why}")
    print(f"wrote {out}")
    if figure:
        from neuralab.reports import plots

        plots.save(plots.side_by_side([(f"input {_hwc(image.shape)}", image), (f"kernel {name}", kernel),
                                       (f"output {_hwc(values.shape)} ({scale})", picture)]), figure)
        print(f"wrote {figure}")
    return 0


def cmd_pool(args) -> int:
    import numpy as np

    from neuralab.mechanics.kernels import to_uint8
    from neuralab.mechanics.pooling import pool2d

    h, w = args.size
    stride = args.stride or args.size
    # the default name tells the settings apart, so that another window or stride keeps its own picture
    square = h == w and tuple(stride) == (h, w)
    name = f"{args.mode}pool{h}" if square else f"{args.mode}pool{h}x{w}-s{stride[0]}x{stride[1]}"
    out, figure = _paths(args, name)
    image = _read(args)
    _holds(out, image.ndim)
    planes = image[None, None] if image.ndim == 2 else np.moveaxis(image, -1, 0)[None]  # (1, C, H, W)
    values = pool2d(planes.astype(np.float64), args.size, args.stride, args.mode)[0]
    values = values[0] if image.ndim == 2 else np.moveaxis(values, 0, -1)
    picture = to_uint8(values)
    _save(out, values, picture)
    print(f"{args.mode} pooling {args.size[0]}x{args.size[1]}, stride {stride[0]}x{stride[1]}: "
          f"input {_hwc(image.shape)} -> output {_hwc(values.shape)}")
    print(f"wrote {out}")
    if figure:
        from neuralab.reports import plots

        panels = [(f"input {_hwc(image.shape)}", image), (f"{args.mode} pooling -> {_hwc(values.shape)}", picture)]
        plots.save(plots.side_by_side(panels), figure)
        print(f"wrote {figure}")
    return 0


def _hwc(shape) -> str:
    """A picture's (H, W) or (H, W, C) as the lesson writes it, its depth always said: 28x28x1."""
    from neuralab.errors import by

    return by(shape if len(shape) == 3 else (*shape, 1))


def cmd_train_scratch(args) -> int:
    from neuralab.mechanics.kernels import closest_kernels
    from neuralab.mechanics.scratch_cnn import train_digits

    console = _console()
    console.rule("[bold]From-scratch CNN (NumPy only) on sklearn's 8x8 digits[/]")
    result = train_digits(epochs=args.epochs, seed=args.seed, lr=args.lr, batch_size=args.batch_size, log=print)
    console.print(
        f"[bold]test accuracy {result['test_accuracy']:.2%}[/] on {result['n_test']} images "
        f"(train {result['train_accuracy']:.2%}), {result['seconds']:.1f} s of training"
    )
    print("first-layer filters and the classic kernel each resembles most (cosine similarity):")
    matches = closest_kernels(result["model"].layers[0].params["w"])
    print("  " + ", ".join(f"{i}: {m.name} {m.similarity:+.2f}" for i, m in enumerate(matches)))
    return 0
