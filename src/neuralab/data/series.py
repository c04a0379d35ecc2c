"""Time series from a CSV file, a pandas DataFrame or a built-in dataset.

Loading is where a series goes wrong, so every step is explicit and reported: dates are
parsed and sorted, duplicate timestamps are rejected (or resolved by a named policy),
gaps in the time grid are counted, and missing values follow one declared policy
(``drop``, ``ffill``, ``interpolate`` or ``error``). What happened is kept in a
``SeriesReport`` that the CLI prints and the run directory stores.

Each row is one step: gaps are reported, not filled, unless ``gaps="fill"`` puts the
missing timestamps back on the grid for the ``missing`` policy to fill.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from neuralab.errors import NeuralabError, ParameterError

MISSING = ("error", "drop", "ffill", "interpolate")
DUPLICATES = ("error", "first", "last", "mean")
GAPS = ("keep", "fill")
CALENDAR = {"dayofyear": ("day_of_year", 365.25), "dayofweek": ("day_of_week", 7),  # (attribute, cycle)
            "month": ("month", 12), "hour": ("hour", 24)}
DATE_NAMES = ("date", "datetime", "timestamp", "time", "ds", "day")


@dataclass(frozen=True)
class BuiltinSeries:
    file: str             # inside neuralab/data/builtin/
    date_column: str
    target: str           # the default target column
    title: str
    source: str


BUILTIN: dict[str, BuiltinSeries] = {
    "sp500": BuiltinSeries("sp500.csv.gz", "Date", "Close", "S&P 500 index, daily OHLCV 1999-2018",
                           "arch package (arch.data.sp500), from Yahoo! Finance"),
    "nasdaq": BuiltinSeries("nasdaq.csv.gz", "Date", "Close", "NASDAQ Composite, daily OHLCV 1999-2018",
                            "arch package (arch.data.nasdaq), from Yahoo! Finance"),
    "seattle-weather": BuiltinSeries("seattle-weather.csv.gz", "date", "temp_max",
                                     "Seattle daily weather 2012-2015 (temperatures in degrees C)",
                                     "vega_datasets package (seattle_weather), from NOAA GHCN"),
}


@dataclass
class SeriesReport:
    """What loading found and did; ``lines()`` says it in words."""
    rows: int = 0                   # rows kept
    start: str = ""
    end: str = ""
    frequency: str = "irregular"    # pandas alias of the time grid: D, B (business days), h, ...
    unsorted: int = 0               # rows that were out of chronological order
    duplicates: int = 0             # rows sharing a timestamp with an earlier row
    duplicate_policy: str = "error"
    gaps: int = 0                   # timestamps missing from the grid
    largest_gap: str = ""
    gap_examples: list[str] = field(default_factory=list)
    gaps_filled: bool = False
    missing: dict[str, int] = field(default_factory=dict)  # missing values per column, before the policy
    missing_policy: str = "error"
    dropped: int = 0                # rows the policy removed
    filled: int = 0                 # values the policy filled

    def lines(self) -> list[str]:
        out = [f"{self.rows:,} rows, {self.start} .. {self.end}, frequency {self.frequency}"]
        if self.unsorted:
            out.append(f"{self.unsorted:,} rows were out of order: sorted by date")
        if self.duplicates:
            out.append(f"{self.duplicates:,} duplicate timestamps resolved with duplicates={self.duplicate_policy}")
        if self.gaps:
            what = "filled by the missing-value policy" if self.gaps_filled else "kept as they are (one row = one step)"
            grid = "business-day" if self.frequency == "B" else self.frequency
            out.append(f"{self.gaps:,} missing timestamps on the {grid} grid (largest gap {self.largest_gap}, "
                       f"e.g. {', '.join(self.gap_examples[:3])}): {what}")
        n_missing = sum(self.missing.values())
        if n_missing:
            per = ", ".join(f"{k} {v}" for k, v in self.missing.items() if v)
            out.append(f"{n_missing:,} missing values ({per}): missing={self.missing_policy} "
                       f"dropped {self.dropped:,} rows and filled {self.filled:,} values")
        return out


@dataclass
class Series:
    """A cleaned series: a DatetimeIndex and float columns ``[target, *features]``."""
    name: str
    frame: pd.DataFrame
    target: str
    features: list[str]
    report: SeriesReport

    @property
    def columns(self) -> list[str]:
        return [self.target, *self.features]

    @property
    def values(self) -> np.ndarray:
        return self.frame[self.columns].to_numpy(np.float64)  # (T, 1 + features)

    @property
    def times(self) -> pd.DatetimeIndex:
        return self.frame.index

    def __len__(self) -> int:
        return len(self.frame)


def builtin_path(name: str):
    """The packaged file of built-in series ``name`` (a Traversable inside the wheel)."""
    return resources.files("neuralab.data").joinpath("builtin", BUILTIN[name].file)


def read_table(source: str | os.PathLike | pd.DataFrame) -> tuple[pd.DataFrame, str, int]:
    """The raw table, a display name and the offset from row position to file line.
    A DataFrame's DatetimeIndex becomes its first column (named ``date`` if unnamed)."""
    if isinstance(source, pd.DataFrame):
        if isinstance(source.index, pd.DatetimeIndex):
            return source.rename_axis(source.index.name or "date").reset_index(), "DataFrame", 0
        return source.reset_index(drop=source.index.name is None), "DataFrame", 0
    text = str(source)
    if text in BUILTIN:
        with builtin_path(text).open("rb") as f:
            return pd.read_csv(f, compression="gzip"), text, 2
    path = Path(source)
    if not path.is_file():
        known = ", ".join(BUILTIN)
        raise ParameterError("data", text, f"no such file and not a built-in series ({known})")
    try:
        return pd.read_csv(path), path.name, 2  # line 1 is the header
    except pd.errors.EmptyDataError:
        raise NeuralabError(f"{path}: the file is empty; give a CSV with a header and rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        first = str(e).strip().splitlines()[-1]
        raise NeuralabError(f"{path}: not a readable CSV ({first})") from None


def load_series(source: str | os.PathLike | pd.DataFrame, target: str | None = None,
                features: list[str] | tuple[str, ...] = (), date_column: str | None = None,
                missing: str = "error", duplicates: str = "error", gaps: str = "keep",
                calendar: list[str] | tuple[str, ...] = ()) -> Series:
    """Load ``source`` (a built-in name, a CSV path or a DataFrame) as a clean ``Series``.

    ``target`` defaults to the built-in's target or the only numeric column; ``features``
    are extra input columns; ``calendar`` adds sine/cosine encodings of the date
    (``dayofyear``, ``dayofweek``, ``month``, ``hour``) as further features. Problems a user
    can fix raise NeuralabError naming the column, the line and what to pass instead.
    """
    for name in calendar:
        _choose("calendar", name, tuple(CALENDAR))
    _choose("missing", missing, MISSING)
    _choose("duplicates", duplicates, DUPLICATES)
    _choose("gaps", gaps, GAPS)
    table, name, line0 = read_table(source)
    if len(table) == 0:
        raise NeuralabError(f"{name}: no data rows")
    builtin = BUILTIN.get(str(source)) if not isinstance(source, pd.DataFrame) else None
    if date_column is None and isinstance(source, pd.DataFrame) and isinstance(source.index, pd.DatetimeIndex):
        date_column = table.columns[0]
    date_column = date_column or (builtin.date_column if builtin else _find_date_column(table, name))
    if date_column not in table.columns:
        raise ParameterError("date_column", date_column, f"no such column in {name}; columns are {_names(table)}")
    target = target or (builtin.target if builtin else _only_numeric(table, date_column, name))
    features = [f for f in dict.fromkeys(features) if f != target]
    for column in [target, *features]:
        if column not in table.columns:
            raise NeuralabError(f"column {column!r} not in {name}; columns are {_names(table)}")
        if column == date_column:
            raise NeuralabError(f"column {column!r} is the date column; choose a value column as target or feature")

    report = SeriesReport(duplicate_policy=duplicates, missing_policy=missing)
    table = table.assign(_line=np.arange(len(table)) + line0)
    table["_time"] = _parse_dates(table[date_column], table["_line"], name, date_column)
    frame = table[["_time", "_line", target, *features]].copy()
    for column in [target, *features]:
        frame[column] = _numeric(frame[column], frame["_line"], name, column)

    order = np.argsort(frame["_time"].to_numpy(), kind="stable")
    report.unsorted = int((order != np.arange(len(order))).sum())
    frame = frame.iloc[order].reset_index(drop=True)
    frame = _resolve_duplicates(frame, duplicates, report, name)
    frame = frame.set_index("_time").drop(columns="_line")
    frame.index = frame.index.as_unit("ns")
    frame.index.name = date_column

    grid = _grid(frame.index, report)
    if gaps == "fill" and grid is not None and report.gaps:
        frame = frame.reindex(grid)
        report.gaps_filled = True
    frame = _apply_missing(frame, missing, report, name)
    if len(frame) < 2:
        raise NeuralabError(f"{name}: fewer than 2 rows left after cleaning; a series needs more data")
    report.rows = len(frame)
    report.start, report.end = _stamp(frame.index[0]), _stamp(frame.index[-1])
    frame, added = add_calendar(frame.astype(np.float64), calendar)
    return Series(name, frame, target, [*features, *added], report)


def add_calendar(frame: pd.DataFrame, names) -> tuple[pd.DataFrame, list[str]]:
    """Cyclic date encodings as columns NAME_sin and NAME_cos: known for any date, so a
    network can tell the season from a 60-day window. Darts calls these cyclic encoders."""
    added = []
    for name in dict.fromkeys(names):
        attribute, cycle = CALENDAR[name]
        value = getattr(frame.index, attribute).to_numpy(np.float64)
        if name in ("dayofyear", "month"):
            value = value - 1  # 1-based: the first day or month at angle 0
        angle = 2 * np.pi * value / cycle
        frame = frame.assign(**{f"{name}_sin": np.sin(angle), f"{name}_cos": np.cos(angle)})
        added += [f"{name}_sin", f"{name}_cos"]
    return frame, added


def _choose(parameter: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ParameterError(parameter, value, f"choose one of {', '.join(allowed)}")


def _names(table: pd.DataFrame) -> str:
    return ", ".join(map(str, table.columns[:20])) + (" ..." if len(table.columns) > 20 else "")


def _find_date_column(table: pd.DataFrame, name: str) -> str:
    for column in table.columns:
        if str(column).strip().lower() in DATE_NAMES:
            return column
    raise NeuralabError(f"{name}: no date column found (looked for {', '.join(DATE_NAMES)}); pass `date_column`")


def _only_numeric(table: pd.DataFrame, date_column: str, name: str) -> str:
    numeric = [c for c in table.columns if c != date_column and pd.api.types.is_numeric_dtype(table[c])]
    if len(numeric) == 1:
        return numeric[0]
    raise NeuralabError(f"{name}: pass `target`, one of {', '.join(map(str, numeric)) or _names(table)}")


def _parse_dates(column: pd.Series, lines: pd.Series, name: str, label: str) -> pd.Series:
    text = column.astype("string").str.strip()
    if text.isna().any() or (text == "").any():
        at = int(np.flatnonzero((text.isna() | (text == "")).to_numpy())[0])
        raise NeuralabError(f"{name}: line {lines.iloc[at]}: empty date in column {label!r}; every row needs a date")
    try:
        parsed = pd.to_datetime(text, errors="coerce")
    except (ValueError, TypeError):  # mixed time zones and the like
        parsed = pd.Series(pd.NaT, index=column.index)
    if parsed.isna().any():
        at = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise NeuralabError(f"{name}: line {lines.iloc[at]}: {text.iloc[at]!r} in column {label!r} is not a date "
                            "(or not in the format of the first rows)")
    return parsed


def _numeric(column: pd.Series, lines: pd.Series, name: str, label: str) -> pd.Series:
    values = pd.to_numeric(column, errors="coerce")
    bad = values.isna() & column.notna() & (column.astype("string").str.strip() != "")
    if bad.any():
        at = int(np.flatnonzero(bad.to_numpy())[0])
        raise NeuralabError(f"{name}: line {lines.iloc[at]}: {column.iloc[at]!r} in column {label!r} is not a number "
                            f"({int(bad.sum())} such cells); fix the file or leave the cell empty to mark it missing")
    return values.astype(np.float64).replace([np.inf, -np.inf], np.nan)


def _resolve_duplicates(frame: pd.DataFrame, policy: str, report: SeriesReport, name: str) -> pd.DataFrame:
    repeated = frame["_time"].duplicated(keep="first")
    report.duplicates = int(repeated.sum())
    if not report.duplicates:
        return frame
    if policy == "error":
        when = frame["_time"][repeated].iloc[0]
        lines = frame["_line"][frame["_time"] == when].tolist()
        raise NeuralabError(f"{name}: {report.duplicates} duplicate timestamps, first {_stamp(when)} "
                            f"(lines {', '.join(map(str, lines))}); pass `duplicates` first, last or mean")
    if policy == "mean":
        return frame.groupby("_time", as_index=False, sort=True).mean()
    return frame.drop_duplicates("_time", keep=policy)


def _grid(index: pd.DatetimeIndex, report: SeriesReport) -> pd.DatetimeIndex | None:
    """The regular time grid the index lives on (counting its gaps into ``report``), or None."""
    if len(index) < 3:
        return None
    index = index.as_unit("ns")
    steps = np.diff(index.asi8)
    step = pd.Timedelta(int(pd.Series(steps).mode().iloc[0]), "ns")
    weekdays_only = step == pd.Timedelta(days=1) and bool((index.day_of_week < 5).all())
    if weekdays_only and (steps == pd.Timedelta(days=3).value).any():
        grid, report.frequency = pd.bdate_range(index[0], index[-1]), "B"
    elif ((index.asi8 - index.asi8[0]) % step.value == 0).all():
        grid = pd.date_range(index[0], index[-1], freq=step)
        report.frequency = _alias(step)
    else:
        inferred = pd.infer_freq(index)
        report.frequency = inferred or "irregular"
        largest = int(steps.max())
        report.largest_gap = _duration(pd.Timedelta(largest, "ns"))
        report.gaps = int((steps > 1.5 * step.value).sum()) if inferred is None else 0
        return None
    absent = grid.difference(index)
    report.gaps = len(absent)
    if report.gaps:
        report.largest_gap = _duration(pd.Timedelta(int(steps.max()), "ns"))
        report.gap_examples = [_stamp(t) for t in absent[:5]]
    return grid


def _duration(step: pd.Timedelta) -> str:
    """"7 days" rather than "7 days 00:00:00"."""
    if step % pd.Timedelta(days=1) == pd.Timedelta(0):
        days = step // pd.Timedelta(days=1)
        return f"{days} day{'s' if days != 1 else ''}"
    return str(step)


def _alias(step: pd.Timedelta) -> str:
    if step % pd.Timedelta(days=1) == pd.Timedelta(0):
        days = step // pd.Timedelta(days=1)
        return "D" if days == 1 else f"{days}D"
    return pd.tseries.frequencies.to_offset(step).freqstr


def _apply_missing(frame: pd.DataFrame, policy: str, report: SeriesReport, name: str) -> pd.DataFrame:
    isna = frame.isna()
    report.missing = {str(c): int(n) for c, n in isna.sum().items()}
    total = int(isna.to_numpy().sum())
    if total == 0:
        return frame
    if policy == "error":
        column = next(c for c, n in report.missing.items() if n)
        first = _stamp(frame.index[int(np.flatnonzero(isna[column].to_numpy())[0])])
        raise NeuralabError(f"{name}: {total} missing values (column {column!r} has {report.missing[column]}, "
                            f"first at {first}); pass `missing` drop, ffill or interpolate")
    before = len(frame)
    if policy == "ffill":
        frame = frame.ffill()
    elif policy == "interpolate":  # linear in time inside the series; the tail carries the last value
        frame = frame.interpolate(method="time", limit_area="inside").ffill()
    frame = frame.dropna()  # drop: every row with a gap; ffill/interpolate: a leading run with no past
    report.dropped = before - len(frame)
    report.filled = int(isna.loc[frame.index].to_numpy().sum())  # the cells in kept rows were filled
    return frame


def _stamp(t) -> str:
    t = pd.Timestamp(t)
    return t.strftime("%Y-%m-%d") if t == t.normalize() else t.isoformat()


def report_dict(series: Series) -> dict:
    return {"name": series.name, "target": series.target, "features": series.features, **asdict(series.report)}
