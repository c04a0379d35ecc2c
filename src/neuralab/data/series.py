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

import csv
import os
import re
import warnings
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
DATE_NAMES = ("date", "datetime", "timestamp", "time", "ds", "day", "date_time", "time_hour", "period")


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
    read_as: str = ""               # how the file was read: "semicolon-separated with decimal commas"

    def lines(self) -> list[str]:
        out = [f"{self.rows:,} rows, {self.start} .. {self.end}, frequency {self.frequency}"]
        if self.read_as:
            out.append(f"read as {self.read_as}")
        if self.unsorted:
            out.append(f"{self.unsorted:,} rows were out of order: sorted by date")
        if self.duplicates:
            out.append(f"{self.duplicates:,} duplicate timestamps resolved by `duplicates` {self.duplicate_policy}")
        if self.gaps:
            what = "filled by the missing-value policy" if self.gaps_filled else "kept as they are (one row = one step)"
            grid = "business-day" if self.frequency == "B" else self.frequency
            out.append(f"{self.gaps:,} missing timestamps on the {grid} grid (largest gap {self.largest_gap}, "
                       f"e.g. {', '.join(self.gap_examples[:3])}): {what}")
        n_missing = sum(self.missing.values())
        if n_missing:
            per = ", ".join(f"{k} {v}" for k, v in self.missing.items() if v)
            out.append(f"{n_missing:,} missing values ({per}): `missing` {self.missing_policy} "
                       f"dropped {self.dropped:,} rows and filled {self.filled:,} values")
        return out


@dataclass
class Series:
    """A cleaned series: a DatetimeIndex and float columns ``[target, *features, *calendar]``."""
    name: str
    frame: pd.DataFrame
    target: str
    features: list[str]          # the input columns the user named
    report: SeriesReport
    calendar: list[str] = field(default_factory=list)  # the date encodings added: dayofyear_sin, ...

    @property
    def columns(self) -> list[str]:
        return [self.target, *self.features, *self.calendar]

    @property
    def values(self) -> np.ndarray:
        return self.frame[self.columns].to_numpy(np.float64)  # (T, 1 + features + calendar)

    @property
    def times(self) -> pd.DatetimeIndex:
        return self.frame.index

    @property
    def date_column(self) -> str:
        return self.frame.index.name

    def __len__(self) -> int:
        return len(self.frame)


def builtin_path(name: str):
    """The packaged file of built-in series ``name`` (a Traversable inside the wheel)."""
    return resources.files("neuralab.data").joinpath("builtin", BUILTIN[name].file)


SEPARATORS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "bar"}
PRICE_TARGETS = ("adj close", "adj_close", "adjclose", "close", "price")  # in order of preference
ROW_BYTES = 250          # memory per row while loading, beyond the values (dates as text, then parsed)
VALUE_BYTES = 48         # memory per value held through windowing, scaling and the forecasts
BASE_BYTES = 600 << 20   # the libraries themselves (torch, pandas)


@dataclass
class CsvShape:
    """What a CSV holds before it is read: how it is written, and how much memory it will take."""
    rows: int
    columns: list[str]
    separator: str
    decimal: str
    bytes_on_disk: int

    def estimate(self, used: int | None = None) -> int:
        """Bytes a forecasting run needs for this file, ``used`` columns of it read."""
        used = used or len(self.columns)
        return BASE_BYTES + self.rows * (ROW_BYTES + VALUE_BYTES * (used + 2))

    def describe(self, used: int | None = None) -> str:
        how = SEPARATORS.get(self.separator, repr(self.separator)) + "-separated"
        if self.decimal == ",":
            how += " with decimal commas"
        return (f"{self.rows:,} rows x {len(self.columns)} columns ({self.bytes_on_disk / 1e6:.1f} MB on disk, {how}), "
                f"about {self.estimate(used) / 2**30:.2f} GiB in memory to forecast")


def available_memory() -> int | None:
    """Bytes the system can still give this process (MemAvailable, or the cgroup's limit)."""
    limits = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    limits.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                text = f.read().strip()
            if text.isdigit() and int(text) < 1 << 60:
                limits.append(int(text))
        except OSError:
            continue
    return min(limits) if limits else None


def sniff_csv(path: Path, sep: str | None = None) -> CsvShape:
    """The separator (given, or the one that splits the first lines into the same number of
    fields), decimal commas, the header and the number of rows, read without loading the file."""
    if sep is not None and (len(sep) != 1 or sep in "\r\n\"."):
        raise ParameterError("sep", sep, "give one character that separates the columns, such as , or ;")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(1 << 16)
        rows = head.count(b"\n")
        for block in iter(lambda: f.read(1 << 24), b""):
            rows += block.count(b"\n")
    if size and not head.endswith(b"\n") and size <= len(head):
        rows += 1
    elif size > len(head):
        with open(path, "rb") as f:
            f.seek(size - 1)
            rows += f.read(1) != b"\n"
    text = head.decode("utf-8", errors="replace")
    lines = [line for line in text.splitlines()[:50] if line.strip()]
    if len(head) == 1 << 16 and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut
    if not lines:
        return CsvShape(0, [], sep or ",", ".", size)
    if sep is None:
        counts = {c: [line.count(c) for line in lines] for c in SEPARATORS}
        steady = [c for c, n in counts.items() if n[0] > 0 and all(k == n[0] for k in n)]
        sep = max(steady or counts, key=lambda c: counts[c][0])
    header = next(csv.reader([lines[0]], delimiter=sep))
    decimal = "."
    if sep != ",":
        cells = [cell for line in lines[1:] for cell in next(csv.reader([line], delimiter=sep))]
        if any(re.fullmatch(r"-?\d+,\d+", c.strip()) for c in cells) and \
                not any(re.fullmatch(r"-?\d+\.\d+", c.strip()) for c in cells):
            decimal = ","
    return CsvShape(max(0, rows - 1), [h.strip() for h in header], sep, decimal, size)


def read_table(source: str | os.PathLike | pd.DataFrame, sep: str | None = None,
               columns: list[str] | None = None, shape: CsvShape | None = None,
               nrows: int | None = None) -> tuple[pd.DataFrame, str, int]:
    """The raw table, a display name and the offset from row position to file line.
    A DataFrame's DatetimeIndex becomes its first column (named ``date`` if unnamed).
    ``columns`` reads only those (a large file's other columns never take memory)."""
    if isinstance(source, pd.DataFrame):
        if isinstance(source.index, pd.DatetimeIndex):
            return source.rename_axis(source.index.name or "date").reset_index(), "DataFrame", 0
        return source.reset_index(drop=source.index.name is None), "DataFrame", 0
    text = str(source)
    if text in BUILTIN:
        with builtin_path(text).open("rb") as f:
            return pd.read_csv(f, compression="gzip", usecols=columns), text, 2
    path = Path(source)
    if not path.is_file():
        known = ", ".join(BUILTIN)
        raise ParameterError("data", text, f"no such file and not a built-in series ({known})")
    shape = shape or sniff_csv(path, sep)
    try:
        return pd.read_csv(path, sep=shape.separator, decimal=shape.decimal, usecols=columns, nrows=nrows,
                           skipinitialspace=True), path.name, 2  # line 1 is the header
    except pd.errors.EmptyDataError:
        raise NeuralabError(f"{path}: the file is empty; give a CSV with a header and rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as e:
        first = str(e).strip().splitlines()[-1]
        raise NeuralabError(f"{path}: not a readable CSV ({first}); it was read as "
                            f"{SEPARATORS.get(shape.separator, shape.separator)}-separated: give `sep` if that is "
                            "wrong") from None


def resolve_column(name: str, columns, what: str, source: str) -> str:
    """``name`` as the table spells it: exact, else the one column equal ignoring case and
    surrounding spaces; a clear error listing the columns otherwise."""
    columns = [str(c) for c in columns]
    if name in columns:
        return name
    folded = [c for c in columns if c.strip().lower() == str(name).strip().lower()]
    if len(folded) == 1:
        return folded[0]
    listing = ", ".join(columns[:20]) + (" ..." if len(columns) > 20 else "")
    raise ParameterError(what, name, f"no such column in {source}; columns are {listing}")


def load_series(source: str | os.PathLike | pd.DataFrame, target: str | None = None,
                features: list[str] | tuple[str, ...] = (), date_column: str | None = None,
                missing: str = "error", duplicates: str = "error", gaps: str = "keep",
                calendar: list[str] | tuple[str, ...] = (), date_format: str | None = None,
                sep: str | None = None, where: str | None = None, announce=None) -> Series:
    """Load ``source`` (a built-in name, a CSV path or a DataFrame) as a clean ``Series``.

    ``target`` defaults to the built-in's target, the only numeric column, or the closing
    price in price data; ``features`` are extra input columns; ``calendar`` adds sine/cosine
    encodings of the date (``dayofyear``, ``dayofweek``, ``month``, ``hour``). ``where``
    ("COLUMN=VALUE") keeps the rows of one series in a file that holds several. Column
    names match ignoring case. Problems a user can fix raise NeuralabError naming the
    column, the line and what to pass instead.
    """
    many = load_series_list(source, target, features, date_column, missing, duplicates, gaps, calendar,
                            date_format, sep, None, where, announce)
    return many[0]


def load_series_list(source: str | os.PathLike | pd.DataFrame, target: str | None = None,
                     features: list[str] | tuple[str, ...] = (), date_column: str | None = None,
                     missing: str = "error", duplicates: str = "error", gaps: str = "keep",
                     calendar: list[str] | tuple[str, ...] = (), date_format: str | None = None,
                     sep: str | None = None, series_column: str | None = None, where: str | None = None,
                     announce=None) -> list[Series]:
    """``load_series`` for a file that may hold several series: one ``Series`` per value of
    ``series_column`` (each cleaned on its own: its duplicates, gaps and missing values), or
    the one series when ``series_column`` is None. ``announce`` (print, say) is told what is
    being loaded and how much memory it will take before anything large is read."""
    for name in calendar:
        _choose("calendar", name, tuple(CALENDAR))
    _choose("missing", missing, MISSING)
    _choose("duplicates", duplicates, DUPLICATES)
    _choose("gaps", gaps, GAPS)
    where_column, where_value = _parse_where(where)
    builtin = BUILTIN.get(str(source)) if not isinstance(source, pd.DataFrame) else None
    shape, columns = None, None
    if not isinstance(source, pd.DataFrame) and builtin is None:
        path = Path(source)
        if not path.is_file():
            raise ParameterError("data", str(source), f"no such file and not a built-in series ({', '.join(BUILTIN)})")
        shape = sniff_csv(path, sep)
        if not shape.columns:
            raise NeuralabError(f"{path}: the file is empty; give a CSV with a header and rows")
        sample, name, _ = read_table(path, shape=shape, nrows=1000)
        wanted = _choose_columns(sample, name, target, features, date_column, date_format, series_column,
                                 where_column)
        date, value, inputs, group, filtered = wanted
        columns = list(dict.fromkeys(c for c in [date, value, *inputs, group, filtered] if c is not None))
        estimate = shape.estimate(len(columns))
        if announce is not None:
            announce(f"loading {name}: {shape.describe(len(columns))}")
        free = available_memory()
        if free is not None and estimate > free:
            raise NeuralabError(f"{name}: {shape.rows:,} rows would need about {estimate / 2**30:.1f} GiB of memory "
                                f"and {free / 2**30:.1f} GiB is available; use a shorter stretch of the file (or "
                                f"fewer columns), or a machine with more memory")
    table, name, line0 = read_table(source, sep, columns, shape)
    if len(table) == 0:
        raise NeuralabError(f"{name}: no data rows")
    if date_column is None and isinstance(source, pd.DataFrame) and isinstance(source.index, pd.DatetimeIndex):
        date_column = table.columns[0]
    date_column, target, features, series_column, where_column = _choose_columns(
        table, name, target, features, date_column, date_format, series_column, where_column,
        builtin=builtin)
    table = table.assign(_line=np.arange(len(table)) + line0)
    if where_column is not None:
        keep = table[where_column].astype("string").str.strip() == where_value
        if not keep.any():
            values = table[where_column].astype("string").str.strip().dropna().unique()[:20]
            raise ParameterError("where", where, f"no row has {where_column} = {where_value!r}; its values include "
                                 f"{', '.join(map(str, values))}")
        table = table[keep]
    if series_column is None:
        groups = [(name, table)]
    else:
        keys = table[series_column].astype("string").str.strip().fillna("")
        groups = [(str(k), part) for k, part in table.groupby(keys, sort=True)]
        if len(groups) > 1000:
            raise ParameterError("series_column", series_column,
                                 f"{len(groups):,} different values; a series column names a few series")
    many = [_clean(part, label, target, features, date_column, date_format, missing, duplicates, gaps, calendar,
                   single=series_column is None) for label, part in groups]
    if shape is not None and (shape.separator != "," or shape.decimal != "."):
        for series in many:
            series.report.read_as = shape.describe().split("(", 1)[1].split(")")[0].split(", ", 1)[1]
    return many


def _parse_where(where: str | None) -> tuple[str | None, str | None]:
    if where is None:
        return None, None
    column, eq, value = str(where).partition("=")
    if not eq or not column.strip():
        raise ParameterError("where", where, "write it as COLUMN=VALUE, e.g. station=SEATTLE")
    return column.strip(), value.strip()


def _choose_columns(table: pd.DataFrame, name: str, target, features, date_column, date_format, series_column,
                    where_column, builtin=None):
    """The table's spelling of every column a run uses, with the defaults filled in:
    (date column, target, features, series column, where column)."""
    columns = list(table.columns)
    series_column = resolve_column(series_column, columns, "series_column", name) if series_column else None
    where_column = resolve_column(where_column, columns, "where", name) if where_column else None
    if date_column is not None:
        date_column = resolve_column(date_column, columns, "date_column", name)
    else:
        date_column = builtin.date_column if builtin else _find_date_column(table, name, date_format)
    skip = {date_column, series_column, where_column}
    if target is not None:
        target = resolve_column(target, columns, "target", name)
    else:
        target = builtin.target if builtin else _default_target(table, skip, name)
    features = [resolve_column(f, columns, "features", name) for f in dict.fromkeys(features)]
    features = [f for f in features if f != target]
    for column in [target, *features]:
        if column == date_column:
            raise ParameterError("target" if column == target else "features", column,
                                 "is the date column; choose a value column")
    return date_column, target, features, series_column, where_column


def _clean(table: pd.DataFrame, name: str, target: str, features: list[str], date_column: str, date_format,
           missing: str, duplicates: str, gaps: str, calendar, single: bool = True) -> Series:
    report = SeriesReport(duplicate_policy=duplicates, missing_policy=missing)
    frame = pd.DataFrame({"_time": _parse_dates(table[date_column], table["_line"], name, date_column,
                                                date_format).to_numpy(),
                          "_line": table["_line"].to_numpy()})
    for column in [target, *features]:
        frame[column] = _numeric(table[column], table["_line"], name, column).to_numpy()
    order = np.argsort(frame["_time"].to_numpy(), kind="stable")
    report.unsorted = int((order != np.arange(len(order))).sum())
    frame = frame.iloc[order].reset_index(drop=True)
    frame = _resolve_duplicates(frame, duplicates, report, name, single)
    frame = frame.set_index("_time").drop(columns="_line")
    try:
        frame.index = frame.index.as_unit("ns")
    except pd.errors.OutOfBoundsDatetime:
        raise NeuralabError(f"{name}: dates from {_stamp(frame.index[0])} to {_stamp(frame.index[-1])} in column "
                            f"{date_column!r}; neuralab handles dates between 1678 and 2261") from None
    frame.index.name = date_column

    grid = _grid(frame.index, report)
    if gaps == "fill" and grid is None and report.gaps and report.frequency != "irregular":
        raise NeuralabError(f"{name}: filling its {report.gaps:,} missing steps of {report.frequency} would make a series "
                            f"of more than {MAX_GRID:,} rows; keep the gaps (`gaps` keep) or resample the file first")
    if gaps == "fill" and grid is not None and report.gaps:
        frame = frame.reindex(grid)
        frame.index.name = date_column
        report.gaps_filled = True
    frame = _apply_missing(frame, missing, report, name)
    if len(frame) < 2:
        raise NeuralabError(f"{name}: fewer than 2 rows left after cleaning; a series needs more data")
    report.rows = len(frame)
    report.start, report.end = _stamp(frame.index[0]), _stamp(frame.index[-1])
    frame, added = add_calendar(frame.astype(np.float64), calendar)
    return Series(name, frame, target, list(features), report, added)


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


def _find_date_column(table: pd.DataFrame, name: str, date_format: str | None = None) -> str:
    """The column that holds the dates: of the columns whose values parse as timestamps
    (text, not plain numbers: a ``day`` of 1..31 is no date), the one named date/time/...,
    then one whose name contains "date" or "time", then the first."""
    sample = table.head(200)
    parsed = {}
    for column in table.columns:
        values = sample[column].dropna()
        if values.empty or pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            continue
        text = values.astype("string").str.strip()
        try:
            with warnings.catch_warnings():  # text columns that are no dates make pandas guess element by element
                warnings.simplefilter("ignore", UserWarning)
                ok = float(pd.to_datetime(text, errors="coerce", format=date_format).notna().mean())
        except (ValueError, TypeError):
            ok = 0.0
        looks = text.str.fullmatch(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}([ T].*)?").mean()
        if ok >= 0.5 or looks >= 0.9 or str(column).strip().lower() in DATE_NAMES:
            parsed[str(column)] = ok  # dates in an unexpected format get their own error, with a hint
    if not parsed:
        raise ParameterError("date_column", None, f"no column of {name} holds dates (columns: {_names(table)}); "
                             "name the column, and give `date_format` if its dates are written unusually")

    def rank(column: str) -> tuple:
        low = column.strip().lower()
        named = 0 if low in DATE_NAMES else 1 if ("date" in low or "time" in low) else 2
        return named, -parsed[column], list(parsed).index(column)

    return min(parsed, key=rank)


def _default_target(table: pd.DataFrame, skip: set, name: str) -> str:
    """The only numeric column, or the closing price in price data; else a clear error."""
    numeric = [str(c) for c in table.columns if c not in skip and pd.api.types.is_numeric_dtype(table[c])
               and not pd.api.types.is_bool_dtype(table[c])]
    if len(numeric) == 1:
        return numeric[0]
    lowered = {c.strip().lower(): c for c in numeric}
    for candidate in PRICE_TARGETS:
        if candidate in lowered:
            return lowered[candidate]
    raise ParameterError("target", None, f"{name} has {len(numeric)} numeric columns; choose one: "
                         f"{', '.join(numeric) or _names(table)}")


def _parse_dates(column: pd.Series, lines: pd.Series, name: str, label: str,
                 date_format: str | None = None) -> pd.Series:
    text = column.astype("string").str.strip()
    empty = text.isna() | (text == "")
    if empty.any():
        at = int(np.flatnonzero(empty.to_numpy())[0])
        raise NeuralabError(f"{name}: line {lines.iloc[at]}: empty date in column {label!r}; every row needs a date")
    try:
        parsed = pd.to_datetime(text, errors="coerce", format=date_format)
    except (ValueError, TypeError):  # mixed time zones and the like
        parsed = pd.Series(pd.NaT, index=column.index)
    if parsed.isna().any():
        at = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        value = text.iloc[at]
        hint = ""
        if date_format:
            hint = f" (`date_format` is {date_format!r})"
        elif re.fullmatch(r"\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}.*", value):
            hint = "; give `date_format`, e.g. %d/%m/%Y for 13/01/2012 (day first) or %m/%d/%Y"
        else:
            hint = " (or not in the format of the first rows); give `date_format`, e.g. %Y-%m-%d %H:%M"
        raise NeuralabError(f"{name}: line {lines.iloc[at]}: {value!r} in column {label!r} is not a date{hint}")
    return parsed


# Beyond this a value's square overflows a float64, so no mean, variance or RMSE of it exists.
LARGEST = 1e150


def _numeric(column: pd.Series, lines: pd.Series, name: str, label: str) -> pd.Series:
    values = pd.to_numeric(column, errors="coerce")
    bad = values.isna() & column.notna() & (column.astype("string").str.strip() != "")
    if bad.any():
        at = int(np.flatnonzero(bad.to_numpy())[0])
        raise NeuralabError(f"{name}: line {lines.iloc[at]}: {column.iloc[at]!r} in column {label!r} is not a number "
                            f"({int(bad.sum())} such cells); fix the file or leave the cell empty to mark it missing")
    values = values.astype(np.float64)
    huge = ~np.isfinite(values.to_numpy()) & values.notna().to_numpy() | (np.abs(values.to_numpy()) > LARGEST)
    if huge.any():
        at = int(np.flatnonzero(huge)[0])
        raise NeuralabError(f"{name}: line {lines.iloc[at]}: '{column.iloc[at]}' in column {label!r} is not a finite "
                            f"number of usable size (|value| up to {LARGEST:.0e}; {int(huge.sum())} such cells); fix "
                            "the file or leave the cell empty to mark it missing")
    return values


def _resolve_duplicates(frame: pd.DataFrame, policy: str, report: SeriesReport, name: str,
                        single: bool = True) -> pd.DataFrame:
    repeated = frame["_time"].duplicated(keep="first")
    report.duplicates = int(repeated.sum())
    if not report.duplicates:
        return frame
    if policy == "error":
        when = frame["_time"][repeated].iloc[0]
        lines = frame["_line"][frame["_time"] == when].tolist()
        several = ("; if the file holds several series (one per station, say), name their column as "
                   "`series_column` or pick one with `where`") if single else ""
        raise NeuralabError(f"{name}: {report.duplicates} duplicate timestamps, first {_stamp(when)} "
                            f"(lines {', '.join(map(str, lines[:5]))}); pass `duplicates` first, last or mean{several}")
    if policy == "mean":
        return frame.groupby("_time", as_index=False, sort=True).mean()
    return frame.drop_duplicates("_time", keep=policy)


MAX_GRID = 10_000_000  # steps of the regular grid a series' gaps are counted (and filled) on


def _grid(index: pd.DatetimeIndex, report: SeriesReport) -> pd.DatetimeIndex | None:
    """The regular time grid the index lives on (counting its gaps into ``report``), or None."""
    if len(index) < 3:
        return None
    index = index.as_unit("ns")
    steps = np.diff(index.asi8)
    step = pd.Timedelta(int(pd.Series(steps).mode().iloc[0]), "ns")
    weekdays_only = step == pd.Timedelta(days=1) and bool((index.day_of_week < 5).all())
    cells = (int(index.asi8[-1]) - int(index.asi8[0])) // step.value + 1  # the grid's length, before it is built
    if cells > MAX_GRID:  # a few rows far apart: counted, not laid on a grid of billions
        report.frequency = _alias(step)
        report.gaps = int(cells - len(index))
        report.largest_gap = _duration(pd.Timedelta(int(steps.max()), "ns"))
        return None
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
