"""Listing runs: which run directories lie under a folder (``find``) and the row each shows
in the runs table (``describe``, ``Row``), as `neuralab runs` and the web app's list show them.
It reads runs through neuralab.runs, which owns their format, and imports nothing heavier than
the standard library, so that `neuralab runs` and the web app's listing start at once.
A listing asked for again and again (the web app's runs page asks every few seconds) keeps its
rows (``Rows``) and reads a run again only where its files changed.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable

from neuralab.errors import NeuralabError
from neuralab.runs import CHECKPOINTS, CONFIG, KERAS_FIT, LAST, METRICS, MODEL, REPORT, RESULTS, WEIGHTS, Kind, Run, Status, \
    json_object

MAX_DEPTH = 3  # runs/<group>/<run>/config.json at most
# What ``describe`` reads: these files, and the folders whose entries it looks up ("" the run's own)
READS = (CONFIG, MODEL, RESULTS, WEIGHTS, METRICS, LAST, REPORT, "", CHECKPOINTS)
# What an unfinished forecast run's figures are of, said wherever they are shown: metrics.jsonl's are the
# network's, on the target as it trains on it, and a val MAE of 0.23 beside a test MAE of 0.99 in degrees
# read as four times better
SCALED = "of the scaled target"


def trained_figures(config: dict) -> str:
    """``trained_on`` for a forecast run of ``config`` (config.json's): nothing for Keras's fit,
    whose figures are of the user's own arrays as they gave them."""
    if config.get("trained_by") == KERAS_FIT:
        return ""
    return trained_on(json_object(config.get("windows")))


def trained_on(windows) -> str:
    """What a forecast network's training figures (each epoch's loss and MAE) are of, where not the
    data in its units: the scaled target, or its change. ``windows``: the run's window settings
    (config.json's, or a WindowConfig), with the transform the run chose."""
    get = windows.get if isinstance(windows, dict) else lambda name, default: getattr(windows, name, default)
    if get("scaler", "standard") != "none":
        return SCALED
    return "" if get("transform", "none") == "none" else "of the target's change"
STILL_NS = 2 * 10**9  # how long a run's files stay unchanged before its row is kept (FAT's clock ticks in 2 s)


def is_run(folder: Path) -> bool:
    """Whether ``folder`` holds a run's config.json: one naming a kind (a run's, or one no Kind
    has: a run of another version), or one that cannot be read (a run's cut short or garbled, or
    a link out of the folder: the runs list shows the run damaged). A config.json that is a JSON
    object naming no kind is someone else's (a dataset's, a project's with its runs below it)."""
    from neuralab.files import read_json

    config = folder / CONFIG
    if not config.is_file():
        return False
    try:
        # a link out of the folder is not followed (the run is damaged); a plain file is read at once:
        # the runs page asks for every run's at each listing
        config = Run(folder).read(CONFIG) if config.is_symlink() else read_json(config)
    except NeuralabError:
        return True
    return not isinstance(config, dict) or "kind" in config


def run_within(folder: Path, depth: int = MAX_DEPTH) -> Path | None:
    """The first run folder at or below ``folder`` (``depth`` levels at most, as `neuralab runs`
    looks), told by its run.lock or its config.json (``is_run``); None where there is none.
    Links are not followed."""
    from neuralab.runs import LOCK

    if (folder / LOCK).is_file() or is_run(folder):
        return folder
    if depth == 0:
        return None
    try:
        inside = sorted(entry.path for entry in os.scandir(folder) if entry.is_dir(follow_symlinks=False))
    except OSError:
        return None
    return next((found for found in (run_within(Path(p), depth - 1) for p in inside) if found), None)


def find(root: str | os.PathLike) -> list[str]:
    """Relative names of the run directories (``is_run``) under ``root`` (depth at most
    MAX_DEPTH); symbolic links are followed only when they stay inside ``root``."""
    root = Path(root)
    if not root.is_dir():
        return []
    real_root = root.resolve()
    found = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        rel = Path(folder).relative_to(root)
        run = CONFIG in files and is_run(Path(folder))
        candidates = [rel] if run and rel.parts else []
        for d in dirs:
            target = (Path(folder) / d).resolve() if (Path(folder) / d).is_symlink() else None
            if target is not None and (target == real_root or real_root in target.parents) and is_run(target):
                candidates.append(rel / d)
        found += [cand.as_posix() for cand in candidates]
        if run or len(rel.parts) >= MAX_DEPTH:
            dirs[:] = []  # a run's own folders (checkpoints/, plots/) hold no runs
        else:
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not (Path(folder) / d).is_symlink())
    return sorted(set(found))


@dataclass
class Row:
    """A run as the runs table shows it (the web app and `neuralab runs`)."""
    id: str
    kind: str        # a Kind's value, or "" when config.json cannot say
    model: str
    data: str
    status: str
    metric: dict     # {"name", "value", "note"}
    epochs: int | None
    created: str
    error: str = ""  # why a damaged run is damaged
    report_missing: bool = False  # finished, but stopped while it wrote report.html (Run.report_missing)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def describe(run: Run, id: str | None = None) -> Row:
    """The row of ``run``; a damaged run still gets one, saying what is wrong."""
    id = id or run.path.name
    status = run.status()
    try:
        run.owner()  # a lock that is a link or a pipe: the run is damaged, and the row says why
        record = run.record
        kind = run.kind
        results = run.results() if status == Status.FINISHED else None
    except NeuralabError as e:
        return Row(id, "", "", "", Status.DAMAGED.value, {"name": "", "value": None, "note": ""}, None, "",
                   _named(str(e), run, id))
    config = json_object(record.get("config"))
    # an unfinished run's epochs are those its last checkpoint commits, which metrics.jsonl may lag behind
    metrics = (None if results else run.committed()) or run.metrics()
    epochs = results.get("epochs_run") if results else len(metrics) or None
    if kind == Kind.FORECASTER:
        model = config.get("model", {})
        model = model.get("architecture", "") if isinstance(model, dict) else str(model)
        data = f"{Path(str(config.get('data') or '')).name} {config.get('target') or ''}".strip()
        head = json_object((results or {}).get("headline"))
        # the verdict's metric: MAE, or MASE where series in different units were pooled
        ranked = str(head.get("metric") or "mae")
        score = head.get("network_mae") if ranked == "mae" else head.get("network_score")
        if head or not results:
            metric = ({"name": f"test {ranked.upper()}", "value": _finite(score), "note": _versus(head)} if results
                      else _best_so_far(metrics, "mae", min, trained_figures(config)))
        elif _finite(results.get("test_mae")) is not None:  # Keras's fit (RunLogger): compile()'s MAE on its
            metric = {"name": "test MAE", "value": _finite(results["test_mae"]), "note": ""}  # test set, if given
        else:  # without one, the figures of the epoch whose weights fit ended with (RunLogger's best_epoch)
            metric = _epoch_kept(metrics, "mae", results.get("best_epoch"))
    else:
        # a model from a file shows the file's name: the whole path is in config.json
        model, data = Path(str(config.get("model") or "")).name, str(config.get("data") or "")
        metric = ({"name": "test accuracy", "value": _finite(results.get("test_accuracy")), "note": ""} if results
                  else _best_so_far(metrics, "accuracy", max, samples="images"))
    if run.by_keras_fit and not results:
        # Keras's fit saves the model as each epoch ends: an unfinished run holds its last epoch's
        # weights, whichever epoch's validation figure was best
        metric = _figure(metrics[-1] if metrics else {}, "mae" if kind == Kind.FORECASTER else "accuracy",
                         "last epoch")
    error = run.damage() if status == Status.DAMAGED else ""  # damaged weights or results: the row says which
    return Row(id, kind.value, model, data, status.value, metric, epochs, str(record.get("created", "")),
               _named(error, run, id), report_missing=status == Status.FINISHED and run.report_missing())


class Rows:
    """``describe``'s rows kept from one listing to the next: a run whose files are as they were
    (``_looks``) is not read again, so a page that asks for the list every few seconds costs a few
    stat calls a run, where reading them all again took most of a second at 200 runs. One per
    app; its listings may run in several threads at once."""

    def __init__(self):
        self._kept: dict[tuple[Path, str], tuple[tuple, Row]] = {}
        self._lock = threading.Lock()

    def row(self, run: Run, id: str) -> Row:
        """``describe(run, id)``, read again only where the run changed since it was last read."""
        key, looks = (run.path, id), _looks(run)
        with self._lock:
            kept = self._kept.get(key)
        if kept is None or kept[0] != looks:
            kept = looks, describe(run, id)
            # a file changed within the last tick of the file system's clock may change again with
            # the same time and size, unseen: such a run is read again until it has been still a while
            changed = max((seen[1] for seen in looks[1:] if seen is not None), default=0)
            if time.time_ns() - changed > STILL_NS:
                with self._lock:
                    self._kept[key] = kept
        return replace(kept[1], metric=dict(kept[1].metric))  # the caller's to change, not the row kept

    def keep_only(self, ids: Iterable[str]) -> None:
        """Forget the rows of every run but those named ``ids``: runs deleted or renamed since."""
        keep = set(ids)
        with self._lock:
            self._kept = {key: kept for key, kept in self._kept.items() if key[1] in keep}


def _looks(run: Run) -> tuple:
    """What ``describe`` reads of ``run`` as stat calls see it (inode, modification time and size
    of each of READS: files are replaced by renames, so a rewrite is a new inode), and whether a
    live process holds its lock, which no stat shows: a training killed leaves run.lock as it was."""
    try:
        held = run.owner() is not None
    except NeuralabError:  # a lock that is a link or a pipe: describe says the run is damaged
        held = None
    seen: list = [held]
    folder = os.fspath(run.path)
    for name in READS:
        try:
            st = os.stat(os.path.join(folder, name))
            seen.append((st.st_ino, st.st_mtime_ns, st.st_size))
        except OSError:
            seen.append(None)
    return tuple(seen)


def _best_so_far(metrics: list[dict], name: str, best, of: str = "", samples: str = "windows") -> dict:
    """The best epoch's validation figure of a run still training (or stopped), else the training
    figure of its last epoch, whose weights a run without validation keeps (training figures of
    different epochs are not comparable: with focus, epochs after the first train on the hardest
    images only); ``of``: what the figures are of, where not the data itself (trained_on); ``samples``:
    what the run trains on, as its figure's note names them."""
    shown = f"{name.upper()} {of}" if of else name
    values = [v for r in metrics if (v := _finite(r.get(f"val_{name}"))) is not None]
    if values:
        return {"name": f"val {shown}", "value": best(values), "note": "best so far"}
    if metrics and _finite(metrics[-1].get(name)) is not None:
        first, last = metrics[0].get("samples"), metrics[-1].get("samples")
        hardest = isinstance(first, int) and isinstance(last, int) and last < first
        return {"name": f"train {shown}", "value": metrics[-1][name],
                "note": f"last epoch, on its {last:,} hardest {samples}" if hardest else "last epoch"}
    return {"name": "", "value": None, "note": ""}


def _epoch_kept(metrics: list[dict], name: str, epoch) -> dict:
    """The figure (validation, else training) of ``epoch``, whose weights a finished run of Keras's
    fit holds; none where they are no epoch's (``epoch`` None: the optimizer's moving average)."""
    record = next((r for r in metrics if r.get("epoch") == epoch), {}) if isinstance(epoch, int) else {}
    return _figure(record, name, f"epoch {epoch}, the weights kept")


def _figure(record: dict, name: str, note: str) -> dict:
    """``record``'s (an epoch's in metrics.jsonl) validation figure ``name``, else its training one."""
    for key, label in ((f"val_{name}", f"val {name}"), (name, f"train {name}")):
        if (value := _finite(record.get(key))) is not None:
            return {"name": label, "value": value, "note": note}
    return {"name": "", "value": None, "note": ""}


def _versus(head: dict) -> str:
    """The network against the best baseline (results' verdict); runs from before the verdict
    existed only knew persistence. A verdict that ranks nothing, or finds nothing to learn, says so."""
    if head.get("ranked") is False:
        why = ("every series constant over its training span" if head.get("outcome") == "constant"
               else "no series has a naive error to scale by")
        return f"not ranked: {why}"
    if head.get("outcome") == "constant":
        return "nothing to learn: the target is constant over its training span"
    ratio, best = _finite(head.get("ratio_to_best_baseline")), head.get("best_baseline")
    if ratio is not None and best:
        return f"{ratio:.3f} x the best baseline's {head.get('metric', 'mae').upper()} ({best})"
    pct = _finite(head.get("percent_better"))
    if pct is None:
        return ""
    return f"{abs(pct):.1f}% {'better' if pct >= 0 else 'worse'} than persistence"


def _named(error: str, run: Run, id: str) -> str:
    """``error`` with the run's folder said as ``id``, as the rest of its row names it: a listing of
    runs under an absolute folder would otherwise repeat that folder in every damaged run's line."""
    return error.replace(str(run.path), id)


def _finite(value):
    return value if isinstance(value, (int, float)) and value == value and abs(value) != float("inf") else None
