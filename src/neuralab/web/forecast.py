"""The forecast page's data, read from the files a forecasting run leaves behind
(``neuralab.forecasting.pipeline``): results.json for the verdict and the scores,
forecast.csv for every test-span forecast next to the actual value."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from neuralab.errors import NeuralabError
from neuralab.files import read_json
from neuralab.web.runs import NotFound, is_forecast, resolve_run

FIXED = ("split", "origin", "time", "step", "actual")  # the columns before the forecasters'
MAX_ROWS = 200_000


def forecast_view(root: Path, run_id: str) -> dict:
    """Verdict, test scores per forecaster (best first) and the test-span curves by horizon step."""
    run = resolve_run(root, run_id)
    if not is_forecast(read_json(run / "config.json")):
        raise NotFound("not a forecast run")
    if not (run / "results.json").is_file() or not (run / "forecast.csv").is_file():
        raise NeuralabError(f"run {run_id}: still training (no results.json or forecast.csv yet)")
    results = read_json(run / "results.json")
    head = results.get("headline", {})
    persistence = head.get("persistence_mae")
    scores = []
    for name, m in results.get("test", {}).items():
        vs = None if not persistence else (persistence - m["mae"]) / persistence * 100
        scores.append({"name": name, **m, "vs_persistence": vs, "network": name == head.get("network"),
                       "fitted": results.get("forecasters", {}).get(name, "")})
    scores.sort(key=lambda r: r["mae"])
    steps, future, names = _read_csv(run / "forecast.csv")
    return {
        "id": run_id,
        "target": results.get("target", ""),
        "headline": head,
        "scores": scores,
        "spans": results.get("spans", {}),
        "forecasters": names,
        "steps": steps,
        "future": future,
        "plots": [p for p in ("series", "forecast", "error_by_step", "learning_curves")
                  if (run / "plots" / f"{p}.png").is_file()],
    }


def _read_csv(path: Path) -> tuple[dict, dict, list[str]]:
    """forecast.csv -> ({step: {"time", "actual", name: values}}, future rows, forecaster names)."""
    steps: dict[str, dict[str, list]] = {}
    future: dict[str, list] = {"time": []}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        names = [c for c in (reader.fieldnames or []) if c not in FIXED]
        for i, row in enumerate(reader):
            if i >= MAX_ROWS:
                break
            if row.get("split") == "future":
                future["time"].append(row["time"])
                for n in names:
                    future.setdefault(n, []).append(_number(row.get(n)))
                continue
            step = steps.setdefault(str(row.get("step", "1")), {"time": [], "actual": [], **{n: [] for n in names}})
            step["time"].append(row["time"])
            step["actual"].append(_number(row.get("actual")))
            for n in names:
                step[n].append(_number(row.get(n)))
    future = {k: v for k, v in future.items() if k == "time" or any(x is not None for x in v)}
    return steps, future, names


def _number(text):
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None
