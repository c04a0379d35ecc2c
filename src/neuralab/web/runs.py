"""Run directories as the web app sees them: found under one root folder, named by their
path relative to it, and never a step outside it.

A run is a folder holding config.json. Only the files in ``SERVED`` are ever sent, and every
path, the run's and the file's, goes through ``neuralab.files.inside``, which resolves
symbolic links and refuses whatever lands outside the root.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from neuralab import run_list, runs
from neuralab.errors import NeuralabError, Shown
from neuralab.files import inside, open_plain

# What the app may send from a run directory, and as what: every figure a run's report draws.
SERVED: dict[str, str] = {
    **dict.fromkeys(runs.CLASSIFIER_FIGURES.values(), "image/png"),
    runs.SUMMARY: "text/plain; charset=utf-8",
    runs.REPORT: "text/html; charset=utf-8",
    runs.RESULTS: "application/json",
    runs.FORECAST: "text/csv; charset=utf-8",
    **dict.fromkeys(runs.FORECAST_FIGURES.values(), "image/png"),
}
MAX_TEXT = 200_000       # summary.txt is a few kB; a larger file is cut, not sent whole
# The library's "a symbolic link leading out of the run (to TARGET)", the target cut up to the
# line's last ")": one holding ")" or a newline is still cut whole
LINK_TARGET = re.compile(r"(a symbolic link leading out of the run) \(to .*\)", re.DOTALL)


class NotFound(NeuralabError):
    """A run or file that does not exist or may not be served; the app answers 404."""


def resolve_run(root: Path, run_id: str) -> Path:
    """The run directory named ``run_id`` (a relative path like 'lenet-20250101') under ``root``.

    Absolute paths, '..' parts, backslashes, symbolic links leading out of ``root`` and
    folders without a run's config.json (``run_list.is_run``) are all refused with NotFound."""
    if not run_id or "\x00" in run_id or "\\" in run_id:
        raise _no_run(run_id)
    parts = PurePosixPath(run_id).parts
    if PurePosixPath(run_id).is_absolute() or ".." in parts or len(parts) > run_list.MAX_DEPTH:
        raise _no_run(run_id)
    try:
        path = inside(root, run_id)
        if path == Path(root).resolve() or not run_list.is_run(path):
            raise _no_run(run_id)
    except (NeuralabError, OSError):  # OSError: a name too long for the file system, say
        raise _no_run(run_id) from None
    return path


def run_name(root: Path, run_id: str) -> str:
    """The one name of the run ``run_id`` names, for telling runs apart: './X', 'X/', 'X/.' and
    'X//' all open X, so all are 'X' (and a link inside ``root`` is the folder it leads to). A
    name of no run yet, a training queued before its folder is made, is tidied the same way."""
    try:
        return resolve_run(root, run_id).relative_to(Path(root).resolve()).as_posix()
    except NotFound:
        return PurePosixPath(run_id).as_posix()


def without_root(root: Path, line: str) -> str:
    """``line`` with the runs folder's own path taken out (the app names runs by their id), and
    with no target of a link leading out of a run: the library names it for the user at the
    terminal, but whoever reaches the app from elsewhere has no business knowing the server's
    other paths."""
    if not line:  # most rows' error: no need to find the root's path (a resolve, for each row listed)
        return line
    root = str(Path(root).resolve())
    line = line.replace(f"{root}{os.sep}", "").replace(root, "the runs folder")
    return LINK_TARGET.sub(r"\1", line)


def _no_run(run_id: str) -> NotFound:
    return NotFound(f"run={Shown(run_id)!r}: no such run in the runs folder; give a run that /api/runs lists")


def _no_file(name: str, why: str) -> NotFound:
    return NotFound(f"name={Shown(name)!r}: {why}; give a file that /api/run?run=RUN lists under files")


def run_file(root: Path, run_id: str, name: str) -> tuple[Path, str]:
    """(path, media type) of the served file ``name`` of a run; anything else is NotFound."""
    if name not in SERVED:
        raise _no_file(name, "not a file the app serves")
    run = resolve_run(root, run_id)
    try:
        path = inside(run, name)
    except NeuralabError:
        raise _no_file(name, "not in this run") from None
    if not path.is_file():
        raise _no_file(name, "not in this run")
    return path, SERVED[name]


def open_file(root: Path, run_id: str, name: str) -> tuple[BinaryIO, int, str]:
    """``run_file``'s file, open, with its size and media type. What is sent is read from this
    open file: a run removed or rewritten meanwhile (files are replaced by renames) still sends
    the whole file that was checked, and a file gone before it opened is NotFound."""
    path, media = run_file(root, run_id, name)
    try:  # a named pipe put there since the check would hold a worker thread forever: open_plain refuses it
        f = open_plain(path, "rb")
    except (OSError, NeuralabError):
        raise _no_file(name, "not in this run") from None
    return f, os.fstat(f.fileno()).st_size, media


def _served(root: Path, run_id: str, name: str) -> Path | None:
    """``run_file``'s path, or None where the run has no such file to serve."""
    try:
        return run_file(root, run_id, name)[0]
    except NotFound:
        return None


def find_runs(root: Path) -> list[str]:
    """Relative names of the run directories under ``root`` that resolve inside it."""
    found = []
    for run_id in run_list.find(root):
        try:
            run_id.encode()  # a folder name that is no UTF-8 cannot be named in a URL or in JSON
            resolve_run(root, run_id)
        except (NotFound, UnicodeEncodeError):
            continue
        found.append(run_id)
    return found


def describe(root: Path, run_id: str, rows: run_list.Rows | None = None, local: bool = True) -> dict:
    """The row of the runs table: kind, model, data, status, headline metric, date. A run
    whose files are damaged still gets its row (status "damaged"), so one bad folder never
    breaks the listing. ``rows``: the rows kept from the app's last listing, to read only the
    runs that changed; ``local``: whether the app is reached from this machine only, where a
    folder's or file's whole path is shown (elsewhere, its name)."""
    path = resolve_run(root, run_id)
    row = (rows.row if rows is not None else run_list.describe)(runs.Run(path), run_id).as_dict()
    row["data"] = without_path(row["data"], local)
    if row["status"] == runs.Status.DAMAGED.value:
        _still_there(path, run_id)  # removed while it was read: no run, rather than a damaged one
    row["finished"] = row["status"] == runs.Status.FINISHED.value
    row["error"] = without_root(root, row["error"])  # the page shows it; the app never shows its paths
    return row


def without_path(text: str, local: bool, paths: tuple = ()) -> str:
    """``text`` as the app shows it: on the app others reach (not ``local``), an absolute path
    (``text`` itself, or each of ``paths`` within it: the model file and data folder config.json
    records) cut to its last part, a folder's or file's name, as without_root keeps the runs
    folder's path from them; on the local app, as it is."""
    if local:
        return text
    for path in (text, *paths):
        if isinstance(path, str) and path and Path(path).is_absolute():
            text = text.replace(path, Path(path).name)
    return text


def _still_there(path: Path, run_id: str) -> None:
    """NotFound when the run at ``path`` has gone (runs are deleted while the app lists them)."""
    if not (path / runs.CONFIG).is_file():
        raise _no_run(run_id)


def details(root: Path, run_id: str, local: bool = True) -> dict:
    """Everything the run page shows: the row, the served files present, summary text, results
    (``local``: as describe's)."""
    path = resolve_run(root, run_id)
    run = runs.Run(path)
    row = describe(root, run_id, local=local)
    row["files"] = [name for name in SERVED if _served(root, run_id, name) is not None]
    figures = runs.FORECAST_FIGURES if row.get("kind") == runs.Kind.FORECASTER.value else runs.CLASSIFIER_FIGURES
    row["figures"] = {name: file for name, file in figures.items() if file in row["files"]}  # the page's titles go by name
    summary = _served(root, run_id, runs.SUMMARY)  # a link out of the run is no summary
    row["summary"] = ""
    if summary is not None:
        try:
            with open_plain(summary, errors="replace") as f:
                row["summary"] = f.read(MAX_TEXT)
        except (OSError, NeuralabError):  # removed, or no plain file, since it was found: the page shows none
            pass
        if not local:  # 'Model: "/home/me/net.py:Net"': the model file's path, as config.json records it
            with contextlib.suppress(NeuralabError):
                config = runs.json_object(run.record.get("config"))
                row["summary"] = without_path(row["summary"], local, (config.get("model"), config.get("data")))
    if row["status"] == runs.Status.DAMAGED.value:
        return row
    try:
        results = runs.json_object(run.results()) if row["finished"] else {}
        record = run.record
    except NeuralabError:
        _still_there(path, run_id)
        raise
    if row["kind"] == runs.Kind.FORECASTER.value:
        row["headline"] = runs.json_object(results.get("headline"))
        row["test"] = runs.json_object(results.get("test"))
        row["spans"] = runs.json_object(results.get("spans"))
    else:
        data = runs.json_object(record.get("data"))
        row["best_epoch"] = results.get("best_epoch")
        row["test_loss"] = results.get("test_loss")
        row["train_seconds"] = results.get("train_seconds")
        row["classes"] = data.get("classes", [])
        row["sizes"] = {k: data.get(k) for k in ("train", "val", "test")}
        row["imported"] = bool(results.get("imported"))  # from a Keras file: no epochs to show
    row["device"] = runs.json_object(record.get("environment")).get("device", "")
    return row


def live(root: Path, run_id: str) -> dict:
    """What the run page polls while a run trains: its status, every finished epoch's figures
    and, while it trains, where the current epoch stands (progress.json)."""
    path = resolve_run(root, run_id)
    run = runs.Run(path)
    status = run.status()
    progress = None
    if status is runs.Status.RUNNING:
        try:
            progress = run.read(runs.PROGRESS)  # a plain file inside the run, as its other files
        except NeuralabError:  # not written yet, or between two sessions
            progress = None
    state = {"id": run_id, "status": status.value, "metrics": run.metrics(),
             "progress": progress if isinstance(progress, dict) else None}
    if status is not runs.Status.DAMAGED and run.kind is runs.Kind.FORECASTER:  # what its figures are of
        state["trained_on"] = run_list.trained_figures(runs.json_object(run.record.get("config")))
    return state
