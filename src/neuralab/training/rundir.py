"""Run directories: one folder per training run, holding everything needed to reproduce
it (config.json with seed, versions and device), follow it (metrics.jsonl), use it
(model.safetensors + model.json) and read it (summary.txt, report.html)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from neuralab.errors import NeuralabError, ParameterError
from neuralab.files import read_json

RUNS = Path("runs")


def default_run_dir(*parts: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return RUNS / "-".join([*(p.replace("/", "_") for p in parts), stamp])


def create_run_dir(out: str | Path, overwrite: bool = False) -> Path:
    """Make ``out`` ready for a new run. An existing run is replaced only with ``overwrite``;
    a non-empty folder that is not a run is never touched."""
    out = Path(out)
    if out.exists():
        if not out.is_dir():
            raise ParameterError("out", str(out), "exists and is not a directory; choose another `out`")
        if (out / "config.json").exists():
            if not overwrite:
                raise ParameterError("out", str(out), "already holds a run; pass `overwrite` to replace it or choose another `out`")
            shutil.rmtree(out)
        elif any(out.iterdir()):
            raise ParameterError("out", str(out), "folder is not empty and holds no run; choose another `out`")
    out.mkdir(parents=True, exist_ok=True)
    return out


def read_metrics(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def open_run(run_dir: str | Path) -> dict:
    """The run's config.json, with a clear error when ``run_dir`` is not a run."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise NeuralabError(f"{run_dir}: not a run directory (no config.json); give a folder made by `neuralab train`")
    return read_json(run_dir / "config.json")
