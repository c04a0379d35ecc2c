"""`neuralab runs [ROOT] [--watch]`: every run under a folder with its status, as a table."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from neuralab.errors import printable

COLUMNS = ("run", "kind", "model", "data", "status", "best metric", "epochs", "created")


def register(sub) -> None:
    from neuralab.cli._args import positive_float

    p = sub.add_parser("runs", help="list the runs under a folder: kind, model, data, status, best metric",
                       description="List every run directory under ROOT (default the runs folder: $NEURALAB_RUNS "
                                   "or ./runs) with its status read from the folder itself: running, finished "
                                   "(\"finished (no report)\" where it was stopped while it wrote its report: "
                                   "`neuralab report RUN` writes it), interrupted (resumable) or damaged.")
    p.add_argument("root", nargs="?", type=Path, metavar="ROOT",
                   help="folder holding runs (default the runs folder: $NEURALAB_RUNS or ./runs)")
    p.add_argument("--watch", nargs="?", type=positive_float, const=2.0, metavar="SECONDS",
                   help="refresh every SECONDS (default %(const)g) until Ctrl-C")
    p.add_argument("--json", action="store_true", help="print JSON for machines")
    p.set_defaults(func=run_runs)


def run_runs(args) -> int:
    import json

    from neuralab.cli import Stopped
    from neuralab.errors import NeuralabError, ParameterError
    from neuralab.runs import default_root

    root = args.root or default_root()
    if args.root is not None and not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "no such folder"
        raise ParameterError("root", str(root), f"{what}; give the folder your runs are in")
    if root.exists() and not root.is_dir():  # where no runs can ever be: not "no runs under" it
        raise NeuralabError(f"{root}: is a file, not a folder of runs; set NEURALAB_RUNS to the folder your runs "
                            "are in, or give it as ROOT")
    if args.json:
        print(json.dumps([row.as_dict() for row in rows(root)], indent=2))
        for note in _linked_out(root):  # beside the JSON, which a script parses
            print(f"neuralab: note: {note}", file=sys.stderr)
        return 0
    if not args.watch:
        print(table(rows(root), root))
        return 0
    from neuralab.models.table import live_terminal

    live, last = live_terminal(sys.stdout), None
    try:
        while True:
            text = table(rows(root), root)
            if live:
                print("\x1b[H\x1b[2J" + text + f"\n\nrefreshing every {args.watch:g} s; Ctrl-C to stop", flush=True)
            elif text != last:  # in a log: print only what changed
                print(time.strftime("%H:%M:%S") + "\n" + text + "\n", flush=True)
            last = text
            time.sleep(args.watch)
    except Stopped:  # SIGTERM, SIGHUP, SIGUSR1: the signal's status, as every command ends with
        raise
    except KeyboardInterrupt:  # Ctrl-C is how --watch is meant to end
        return 0


def rows(root: Path):
    from neuralab.run_list import describe, find, is_run
    from neuralab.runs import Run

    if is_run(root):  # ROOT is a run: its own row, where a folder of runs has its runs'
        return [describe(Run(root), str(root))]
    return [describe(Run(root / run_id), run_id) for run_id in find(root)]


def table(rows, root: Path) -> str:
    if not rows:
        return "\n".join([f"no runs under {root}", *_linked_out(root)])
    cells = [COLUMNS] + [(printable(r.id), r.kind, r.model, r.data, _status(r), _metric(r), str(r.epochs or ""),
                          r.created.replace("T", " ")[:16]) for r in sorted(rows, key=lambda r: r.created)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    damaged = [f"  {r.id}: {r.error}" for r in rows if r.error]
    return "\n".join(lines + (["damaged:", *damaged] if damaged else []) + _left_out(root) + _linked_out(root))


def _left_out(root: Path) -> list[str]:
    """Where ROOT is one run: the pictures its folder's loading left out, which its row's data
    does not say (config.json's data.skipped)."""
    from neuralab.errors import NeuralabError
    from neuralab.run_list import is_run
    from neuralab.runs import Run

    if not is_run(root):
        return []
    from neuralab.data.digest import skipped_sentence

    try:
        sentence = skipped_sentence(Run(root).record.get("data"))
    except NeuralabError:  # a damaged config.json: its row says so
        return []
    return [printable(sentence)] if sentence else []


def _linked_out(root: Path) -> list[str]:
    """The runs under ROOT reached through symbolic links that lead out of it, which the list
    leaves out (run_list.find follows a link only within ROOT, the web app's rule), said in
    one line: the runs of a home folder's links to scratch were missing without a word."""
    import os

    from neuralab.run_list import MAX_DEPTH, find, is_run
    from neuralab.runs import CONFIG

    if is_run(root) or not root.is_dir():
        return []
    real_root, links = root.resolve(), []
    for folder, dirs, files in os.walk(root):  # links to folders are listed in dirs, and not walked
        rel = Path(folder).relative_to(root)
        for name in sorted(dirs):
            link = Path(folder) / name
            if not link.is_symlink():
                continue
            try:
                target = link.resolve()
                outside = target != real_root and real_root not in target.parents
                if outside and (is_run(target) or find(target)):
                    links.append(link)
            except (OSError, RuntimeError):  # a link in a loop leads nowhere to list
                continue
        if (CONFIG in files and is_run(Path(folder))) or len(rel.parts) >= MAX_DEPTH:  # as deep as find looks
            dirs[:] = []
        else:
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    if not links:
        return []
    links.sort()  # as the table's ids sort: group/exp1 before scratch
    shown = ", ".join(f"{printable(str(link.relative_to(root)))} -> {printable(os.readlink(link))}"
                      for link in links[:3])
    more = f" and {len(links) - 3} more" if len(links) > 3 else ""
    from neuralab.runs import shell_word

    many = len(links) > 1
    return [f"left out: {len(links)} symbolic link{'s' if many else ''} to runs outside {printable(str(root))} "
            f"({shown}{more}); list {'each' if many else 'it'} with `neuralab runs {shell_word(links[0])}`"]


def _status(row) -> str:
    """The row's status; a finished run that was stopped while it wrote its report says so
    (`neuralab report RUN` writes it)."""
    return f"{row.status} (no report)" if row.report_missing else row.status


def _metric(row) -> str:
    m = row.metric
    if m.get("value") is None:
        if row.status == "interrupted" and not row.epochs:  # as the web app's list says it
            return "stopped before its first epoch"
        return m.get("note") or ""  # why there is no figure, where the verdict says (not ranked: ...)
    value = f"{m['value'] * 100:.2f}%" if "accuracy" in m["name"] else f"{m['value']:.4g}"
    return f"{m['name']} {value}" + (f" ({m['note']})" if m.get("note") else "")
