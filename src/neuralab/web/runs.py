"""Run directories as the web app sees them: found under one root folder, named by their
path relative to it, and never a step outside it.

A run is a folder holding config.json. Only the files in ``SERVED`` are ever sent, and every
path, the run's and the file's, goes through ``neuralab.files.inside``, which resolves
symbolic links and refuses whatever lands outside the root.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from neuralab.errors import NeuralabError
from neuralab.files import inside, read_json

# What the app may send from a run directory, and as what.
SERVED: dict[str, str] = {
    "learning_curves.png": "image/png",
    "confusion_matrix.png": "image/png",
    "mistakes.png": "image/png",
    "summary.txt": "text/plain; charset=utf-8",
    "report.html": "text/html; charset=utf-8",
    "results.json": "application/json",
    "forecast.csv": "text/csv; charset=utf-8",
    "plots/series.png": "image/png",
    "plots/forecast.png": "image/png",
    "plots/error_by_step.png": "image/png",
    "plots/learning_curves.png": "image/png",
}
MAX_DEPTH = 3            # runs/<group>/<run>/config.json at most
MAX_TEXT = 200_000       # summary.txt is a few kB; a larger file is cut, not sent whole


class NotFound(NeuralabError):
    """A run or file that does not exist or may not be served; the app answers 404."""


def resolve_run(root: Path, run_id: str) -> Path:
    """The run directory named ``run_id`` (a relative path like 'lenet-20250101') under ``root``.

    Absolute paths, '..' parts, backslashes, symbolic links leading out of ``root`` and
    folders without config.json are all refused with NotFound."""
    if not run_id or "\x00" in run_id or "\\" in run_id:
        raise NotFound("no such run")
    parts = PurePosixPath(run_id).parts
    if PurePosixPath(run_id).is_absolute() or ".." in parts or len(parts) > MAX_DEPTH:
        raise NotFound("no such run")
    try:
        path = inside(root, run_id)
    except NeuralabError:
        raise NotFound("no such run") from None
    if path == Path(root).resolve() or not (path / "config.json").is_file():
        raise NotFound("no such run")
    return path


def run_file(root: Path, run_id: str, name: str) -> tuple[Path, str]:
    """(path, media type) of the served file ``name`` of a run; anything else is NotFound."""
    if name not in SERVED:
        raise NotFound("no such file")
    run = resolve_run(root, run_id)
    try:
        path = inside(run, name)
    except NeuralabError:
        raise NotFound("no such file") from None
    if not path.is_file():
        raise NotFound("no such file")
    return path, SERVED[name]


def find_runs(root: Path) -> list[str]:
    """Relative names of the run directories under ``root`` (depth at most MAX_DEPTH);
    symbolic links are listed only when they stay inside ``root``."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        rel = Path(folder).relative_to(root)
        depth = len(rel.parts)
        candidates = [rel] if "config.json" in files and depth else []
        # a symlinked run folder is not walked into, but may be a run itself
        candidates += [rel / d for d in dirs if (Path(folder) / d).is_symlink()]
        for cand in candidates:
            try:
                resolve_run(root, cand.as_posix())
            except NotFound:
                continue
            found.append(cand.as_posix())
        if "config.json" in files or depth >= MAX_DEPTH:
            dirs[:] = []  # a run's own folders (checkpoints/, plots/) hold no runs
        else:
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not (Path(folder) / d).is_symlink())
    return sorted(set(found))


def is_forecast(record: dict) -> bool:
    return "forecast" in str(record.get("kind", ""))


def describe(root: Path, run_id: str) -> dict:
    """The row of the runs table: kind, model, data, headline metric, date."""
    path = resolve_run(root, run_id)
    record = _json(path / "config.json") or {}
    results = _json(path / "results.json")
    config = record.get("config", {})
    row = {"id": run_id, "created": record.get("created", ""), "finished": results is not None,
           "kind": "forecast" if is_forecast(record) else "classifier"}
    if row["kind"] == "forecast":
        model = config.get("model", {})
        row["model"] = model.get("architecture", "") if isinstance(model, dict) else str(model)
        row["data"] = f"{Path(str(config.get('data', ''))).name} {config.get('target') or ''}".strip()
        head = (results or {}).get("headline", {})
        row["metric"] = {"name": "test MAE", "value": head.get("network_mae"),
                         "note": _vs_persistence(head)}
    else:
        row["model"] = str(config.get("model", ""))
        row["data"] = str(config.get("data", ""))
        value = (results or {}).get("test_accuracy")
        row["metric"] = {"name": "test accuracy", "value": value, "note": ""}
    row["epochs"] = (results or {}).get("epochs_run")
    return row


def details(root: Path, run_id: str) -> dict:
    """Everything the run page shows: the row, the served files present, summary text, results."""
    path = resolve_run(root, run_id)
    row = describe(root, run_id)
    row["files"] = [name for name in SERVED if (path / name).is_file()]
    summary = path / "summary.txt"
    row["summary"] = summary.read_text(errors="replace")[:MAX_TEXT] if summary.is_file() else ""
    results = _json(path / "results.json") or {}
    record = _json(path / "config.json") or {}
    if row["kind"] == "forecast":
        row["headline"] = results.get("headline", {})
        row["test"] = results.get("test", {})
        row["spans"] = results.get("spans", {})
    else:
        row["best_epoch"] = results.get("best_epoch")
        row["test_loss"] = results.get("test_loss")
        row["train_seconds"] = results.get("train_seconds")
        row["classes"] = record.get("data", {}).get("classes", [])
        row["sizes"] = {k: record.get("data", {}).get(k) for k in ("train", "val", "test")}
    row["device"] = record.get("environment", {}).get("device", "")
    return row


def _vs_persistence(head: dict) -> str:
    pct = head.get("percent_better")
    if pct is None:
        return ""
    return f"{abs(pct):.1f}% {'better' if pct >= 0 else 'worse'} than persistence"


def _json(path: Path):
    """A run's JSON file, or None when it is missing or damaged (a run still training)."""
    if not path.is_file():
        return None
    try:
        return read_json(path)
    except NeuralabError:
        return None
