"""`neuralab data list | path NAME | verify NAME | fetch NAME`."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("data", help="list, locate, verify and fetch datasets")
    dsub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = dsub.add_parser("list", help="known datasets, where each was found and the paper to cite")
    listing.set_defaults(func=run_list)
    for action, func, text in (("path", run_path, "print the folder holding NAME"),
                               ("verify", run_verify, "check NAME's files against their SHA-256"),
                               ("fetch", run_fetch, "the folder of NAME, downloaded into the cache where no copy is found (needs internet)")):
        a = dsub.add_parser(action, help=text)
        a.add_argument("name", metavar="NAME", help="a dataset's name, as `neuralab data list` shows it")
        if action != "fetch":
            a.add_argument("--data-dir", help="look only in this folder")
        a.set_defaults(func=func)


def run_list(args) -> int:
    from neuralab.data import SOURCES, locate
    from neuralab.errors import NeuralabError

    for name, source in SOURCES.items():
        try:
            where = str(locate(name))
        except NeuralabError:
            where = "not found (neuralab data fetch " + name + ")"
        print(f"{name:<15} {source.title}\n{'':<15} {where}")
        if source.citation:  # the datasets' authors ask that work using them cite this
            print(f"{'':<15} cite: {source.citation}")
    return 0


def run_path(args) -> int:
    from neuralab.data import locate

    print(locate(args.name, args.data_dir))
    return 0


def run_verify(args) -> int:
    import sys

    from neuralab.data import verify

    results = verify(args.name, args.data_dir)
    for f, ok in results.items():
        print(f"{'ok ' if ok else 'BAD'} {f}")
    if not all(results.values()):
        print(f"neuralab: error: {args.name}: some files do not match their SHA-256; delete them and fetch again",
              file=sys.stderr)
        return 2
    return 0


def run_fetch(args) -> int:
    from neuralab.cli._args import flag_for
    from neuralab.data import fetch
    from neuralab.errors import NAMING, NeuralabError

    try:
        print(fetch(args.name))
    except NeuralabError as e:
        # its advice names `data_dir`, the folder the commands that read the data take (`train`,
        # `data path`): --data-dir there, though `data fetch`, which only fills the cache, has none
        naming = NAMING.get()
        raise NeuralabError(e.render(lambda p: flag_for(p) if p == "data_dir" else naming(p))) from None
    return 0
