"""forecast.csv, the file in which a forecasting run leaves its forecasts: its columns
(``FORECAST_COLUMNS``, then one per forecaster; first ``SERIES_COLUMN`` for a run on several
series; the network's intervals after, ``INTERVAL_PREFIXES``), written in long format, one row
per window and horizon step, the test span and then the forecast past the data
(``write_forecast_csv``), and read back for the web app's forecast page (``read_forecast_csv``).

Apart from forecasting.pipeline because the file is written once and read by what trains
nothing (a report written again, the app): this module imports no torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from neuralab.data.series import Series
from neuralab.errors import NeuralabError
from neuralab.files import atomic_write
from neuralab.forecasting.intervals import label
from neuralab.forecasting.windows import Prepared, Windows


FORECAST_COLUMNS = ("split", "origin", "time", "step", "actual")  # then one column per forecaster
SERIES_COLUMN = "series"       # first, when the run holds several series
INTERVAL_PREFIXES = ("lower_", "upper_")  # the network's intervals: lower_80, upper_80, lower_95, ...


def write_forecast_csv(path: Path, many: list[Series], prepared: list[Prepared], evaluated: list[dict],
                       aheads: list[Windows], futures: list[np.ndarray], network: str, intervals) -> None:
    """Long format: one row per (window, step); the test span, then the forecast past the
    data. The network's prediction intervals follow as lower_80, upper_80, lower_95, ...
    With several series, a first column names the series of each row."""
    frames = []
    for k, (s, p, e, ahead, future) in enumerate(zip(many, prepared, evaluated, aheads, futures)):
        test = p.test
        n, h = test.future.shape
        fixed = ("test", np.repeat(test.origins, h), test.times.ravel(), np.tile(np.arange(1, h + 1), n),
                 test.future.ravel())
        frame = pd.DataFrame({**dict(zip(FORECAST_COLUMNS, fixed)), **{name: pred.ravel() for name, pred in e["test"].items()}})
        tail = pd.DataFrame({"split": "future", "origin": s.times[-1], "time": ahead.times[0],
                             "step": np.arange(1, h + 1), "actual": np.nan, network: future[0]})
        if intervals is not None:
            for level, (lower, upper) in intervals[k].test.items():
                frame[f"lower_{label(level)}"], frame[f"upper_{label(level)}"] = lower.ravel(), upper.ravel()
            for level, half in intervals[k].future.items():
                tail[f"lower_{label(level)}"], tail[f"upper_{label(level)}"] = future[0] - half, future[0] + half
        part = pd.concat([frame, tail], ignore_index=True)
        if len(many) > 1:
            part.insert(0, SERIES_COLUMN, s.name)
        frames.append(part)
    table = pd.concat(frames, ignore_index=True)
    for column in ("origin", "time"):
        if isinstance(table[column].dtype, pd.DatetimeTZDtype):
            table[column] = _with_offset(table[column])
    with atomic_write(path) as f:
        # every digit: rounded values of a large level (12,345,678.3) would make the file disagree with results.json
        table.to_csv(f, index=False, date_format="%Y-%m-%d %H:%M:%S")


def _with_offset(times: pd.Series) -> pd.Series:
    """Times of a series read with UTC offsets as results.json writes them, 2023-11-29
    23:00:00+00:00: without its offset a UTC time reads as the file's local time, hours off."""
    text = times.dt.strftime("%Y-%m-%d %H:%M:%S%z")  # +0000: ISO 8601 writes +00:00
    return text.str[:-2] + ":" + text.str[-2:]


def read_forecast_csv(path: Path, max_rows: int = 200_000,
                      series: str | None = None) -> tuple[dict, dict, list[str], list[str]]:
    """forecast.csv -> ({step: {"time", "actual", name: values}}, the future rows, forecaster names,
    series names); values that are missing or not finite are None. The network's interval columns
    (lower_80, ...) come with each step and the future rows but are not forecasters. Of a run on
    several series, the rows of ``series`` (default the first); the series names are [] for a
    run on one series. Only the first ``max_rows`` rows are read."""
    import csv

    steps: dict[str, dict[str, list]] = {}
    future: dict[str, list] = {"time": []}
    from neuralab.files import open_plain

    seen: dict[str, None] = {}  # in the file's order
    with open_plain(path, newline="") as f:
        reader = csv.DictReader(f)
        columns = [c for c in (reader.fieldnames or []) if c not in FORECAST_COLUMNS and c != SERIES_COLUMN]
        names = [c for c in columns if not c.startswith(INTERVAL_PREFIXES)]
        for i, row in enumerate(reader):
            if i >= max_rows:
                break
            if SERIES_COLUMN in row:
                seen.setdefault(row[SERIES_COLUMN])
                series = row[SERIES_COLUMN] if series is None else series
                if row[SERIES_COLUMN] != series:
                    continue
            if row.get("split") == "future":
                future["time"].append(row["time"])
                for n in columns:
                    future.setdefault(n, []).append(_number(row.get(n)))
                continue
            step = steps.setdefault(str(row.get("step", "1")), {"time": [], "actual": [], **{n: [] for n in columns}})
            step["time"].append(row["time"])
            step["actual"].append(_number(row.get("actual")))
            for n in columns:
                step[n].append(_number(row.get(n)))
    if series is not None and series not in seen:
        # NeuralabError, not ParameterError: `series` is the web app's choice, no flag of the command line
        shown = repr(series) if len(series) <= 40 else repr(series[:37]) + "..."  # a web query may be of any length
        if not seen:
            raise NeuralabError(f"series={shown}: the run forecast one series, so there is none to choose by name; "
                                "give no series")
        raise NeuralabError(f"series={shown}: no such series in {path.name}; choose one of "
                            f"{', '.join(list(seen)[:20])}")
    future = {k: v for k, v in future.items() if k == "time" or any(x is not None for x in v)}
    return steps, future, names, list(seen)


def _number(text):
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None
