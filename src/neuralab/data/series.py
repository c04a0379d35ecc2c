"""Time series from a CSV file, a pandas DataFrame or a built-in dataset.

Loading is where a series goes wrong, so every step is explicit and reported: dates are
parsed and sorted, duplicate timestamps are rejected (or resolved by a named policy),
gaps in the time grid are counted, and missing values follow one declared policy
(``drop``, ``ffill``, ``interpolate`` or ``error``). What happened is kept in a
``SeriesReport`` that the CLI prints and the run directory stores.

Each row is one step: gaps are reported, not filled, unless ``gaps="fill"`` puts the
missing timestamps back on the grid for the ``missing`` policy to fill.

What it reads with lives beside it: the file as a table, its encoding, separator and size
(data.tables), the dates and the time grid they lie on (data.dates), and numbers as people
write them (data.numbers).
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from neuralab.data import tables
from neuralab.data.dates import (
    DATE_NAMES,
    LOCAL_DATES,
    MAX_GRID,
    OFFSET_RULES,
    TIME_OF_DAY,
    WORDS_FOR_DATE,
    clock_hour,
    duration,
    epoch_unit,
    excel_days,
    join_notes,
    months_grid,
    months_on_day,
    parse_dates,
    stamp,
    stamps,
    time_grid,
    time_of_day_column,
    times_of_day,
    to_datetime,
)
from neuralab.data.numbers import decimal_marks, holds_numbers, numeric_column, read_numbers, why_not_a_number
from neuralab.data.series_names import BUILTIN, CALENDAR, DUPLICATES, GAPS, MISSING
from neuralab.data.series_names import BuiltinSeries as BuiltinSeries  # its old import path
from neuralab.data.tables import read_table, refuse_missing, sniff_csv
from neuralab.errors import NeuralabError, ParameterError, Shown


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
    step: str = ""                  # the median step of an irregular series, in words: "10 min"
    gap_examples: list[str] = field(default_factory=list)
    gaps_filled: bool = False
    missing: dict[str, int] = field(default_factory=dict)  # missing values per column, before the policy
    missing_policy: str = "error"
    dropped: int = 0                # rows the policy removed
    filled: int = 0                 # values the policy filled
    read_as: str = ""               # how the file was read: "semicolon-separated with decimal commas"
    dates: str = ""                 # how the dates were read, where a choice was made: "dates read day first ..."
    day_first: bool | None = None   # dates such as 01/02/2015 read day first (True) or month first, where they differ

    def lines(self) -> list[str]:
        out = [f"{self.rows:,} rows, {self.start} .. {self.end}, frequency {self.frequency}"]
        if self.read_as:
            out.append(f"read as {self.read_as}")
        if self.dates:
            out.append(self.dates)
        if self.unsorted:
            out.append(f"{self.unsorted:,} rows were out of order: sorted by date")
        if self.duplicates:
            out.append(f"{self.duplicates:,} duplicate timestamps resolved by `duplicates` {self.duplicate_policy}")
        if self.gaps and self.frequency == "irregular" and self.step:  # no grid: no timestamps are missing from one
            shown = ", ".join(self.gap_examples[:3]) + (", ..." if self.gaps > 3 else "")
            out.append(f"{self.gaps:,} steps longer than 1.5 times the median step ({self.step}; the largest "
                       f"{self.largest_gap}), after {shown}: kept as they are (one row = one step)")
        elif self.gaps:
            what = "filled by the missing-value policy" if self.gaps_filled else "kept as they are (one row = one step)"
            grid = "business-day" if self.frequency == "B" else self.frequency
            example = f", e.g. {', '.join(self.gap_examples[:3])}" if self.gap_examples else ""
            out.append(f"{self.gaps:,} missing timestamps on the {grid} grid (largest gap {self.largest_gap}"
                       f"{example}): {what}")
        n_missing = sum(self.missing.values())
        if n_missing:
            per = ", ".join(f"{k} {v}" for k, v in self.missing.items() if v)
            out.append(f"{n_missing:,} missing values ({per}): `missing` {self.missing_policy} "
                       f"dropped {self.dropped:,} rows and filled {self.filled:,} values")
        return out  # parameters marked as `missing`: who prints them names them (errors.named)


@dataclass
class Series:
    """A cleaned series: a DatetimeIndex and float columns ``[target, *features, *calendar]``."""
    name: str
    frame: pd.DataFrame
    target: str
    features: list[str]          # the input columns the user named
    report: SeriesReport
    calendar: list[str] = field(default_factory=list)  # the date encodings added: dayofyear_sin, ...
    where: str = ""              # for errors, where the rows came from: "multi.csv, station = 'C'" of several series
    # (T,) the target values the `missing` policy filled, and the rows where `missing` interpolate took a value
    # from a later observation; None: none (arrays: left out of ==, which would compare them element by element)
    filled: np.ndarray | None = field(default=None, compare=False)
    ahead: np.ndarray | None = field(default=None, compare=False)

    def filled_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """(T,) masks: the target values neuralab filled, and the rows interpolated from later ones."""
        none = np.zeros(len(self.frame), dtype=bool)
        return (none if self.filled is None else self.filled), (none if self.ahead is None else self.ahead)

    @property
    def label(self) -> str:
        return self.where or self.name

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

    def __repr__(self) -> str:  # a line, not the frame's dump: .frame shows the rows
        def day(t) -> str:
            return str(t.date()) if t == t.normalize() else str(t)

        inputs = ", ".join([*self.features, *self.calendar]) or "none"
        span = f", {day(self.times[0])} .. {day(self.times[-1])}" if len(self) else ""
        return (f"Series({self.label!r}, target={self.target!r}, {len(self):,} rows{span}, "
                f"frequency {self.report.frequency}, inputs: {inputs})")


PRICE_TARGETS = ("adj close", "adj_close", "adjclose", "close", "close/last", "price")  # in order of preference


def find_column(name: str, columns) -> str | None:
    """``name`` as the table spells it: exact, else the one column equal ignoring case and
    surrounding spaces; None if there is no such column."""
    columns = [str(c) for c in columns]
    if name in columns:
        return name
    folded = [c for c in columns if c.strip().lower() == str(name).strip().lower()]
    return folded[0] if len(folded) == 1 else None


def resolve_column(name: str, columns, what: str, source: str) -> str:
    """``name`` as the table spells it (``find_column``); a clear error listing the columns otherwise."""
    found = find_column(name, columns)
    if found is not None:
        return found
    columns = [str(c) for c in columns]
    listing = ", ".join(columns[:20]) + (" ..." if len(columns) > 20 else "")
    raise ParameterError(what, name, f"no such column in {source}; columns are {listing}")


def load_series(source: str | os.PathLike | pd.DataFrame, target: str | None = None,
                features: list[str] | tuple[str, ...] = (), date_column: str | None = None,
                missing: str = "error", duplicates: str = "error", gaps: str = "keep",
                calendar: list[str] | tuple[str, ...] = (), date_format: str | None = None,
                sep: str | None = None, where: str | None = None, announce=None,
                offsets: str = LOCAL_DATES, day_first: bool | None = None) -> Series:
    """Load ``source`` (a built-in name, a CSV path or a DataFrame) as a clean ``Series``.

    ``target`` defaults to the built-in's target, the only numeric column, or the closing
    price in price data; ``features`` are extra input columns; ``calendar`` adds sine/cosine
    encodings of the date (``dayofyear``, ``dayofweek``, ``month``, ``hour``). ``where``
    ("COLUMN=VALUE") keeps the rows of one series in a file that holds several. ``offsets``:
    how times with UTC offsets are read, one of dates.OFFSET_RULES; a run's model.json
    records its own (``series.offsets``), to read new rows with the dates its data had.
    ``day_first``: dates such as 01/02/2015 that both readings fit (days all 12 or less) read
    day first (True) or month first (False), as a run's model.json records its own
    (``series.day_first``); None: by the reading that lies on a regular grid. Column
    names match ignoring case. Problems a user can fix raise NeuralabError naming the
    column, the line and what to pass instead.
    """
    many = load_series_list(source, target, features, date_column, missing, duplicates, gaps, calendar,
                            date_format, sep, None, where, announce, offsets=offsets, day_first=day_first)
    return many[0]


def load_series_list(source: str | os.PathLike | pd.DataFrame, target: str | None = None,
                     features: list[str] | tuple[str, ...] = (), date_column: str | None = None,
                     missing: str = "error", duplicates: str = "error", gaps: str = "keep",
                     calendar: list[str] | tuple[str, ...] = (), date_format: str | None = None,
                     sep: str | None = None, series_column: str | None = None, where: str | None = None,
                     announce=None, suggest_series: bool = True, offsets: str = LOCAL_DATES,
                     day_first: bool | None = None) -> list[Series]:
    """``load_series`` for a file that may hold several series: one ``Series`` per value of
    ``series_column`` (each cleaned on its own: its duplicates, gaps and missing values), or
    the one series when ``series_column`` is None. ``announce`` (print, say) is told what is
    being loaded and how much memory it will take before anything large is read.
    ``suggest_series``: duplicate timestamps suggest `series_column` and `where` (False where
    the caller has fixed which series is read: a stored run's `where`, whose left-out series
    new rows need not hold). ``offsets``: how times with UTC offsets are
    read, one of dates.OFFSET_RULES (a stored run's own, to read new rows as it read its data);
    ``day_first``: as load_series'."""
    for parameter, names in (("features", features), ("calendar", calendar)):
        if isinstance(names, str):  # each letter would be taken for a column or an encoding
            raise ParameterError(parameter, names, f"give a list of names, e.g. [{names!r}]")
    for name in calendar:
        _choose("calendar", name, tuple(CALENDAR))
    _choose("missing", missing, MISSING)
    _choose("duplicates", duplicates, DUPLICATES)
    _choose("offsets", offsets, OFFSET_RULES)  # a typo would read the dates by the other rule, without a word
    _choose("gaps", gaps, GAPS)
    where_column, where_value, where_keep = parse_where(where)
    builtin = BUILTIN.get(str(source)) if not isinstance(source, pd.DataFrame) else None
    shape, columns = None, None
    if not isinstance(source, pd.DataFrame) and builtin is None:
        path = Path(source)
        refuse_missing(path, str(source))
        shape = sniff_csv(path, sep)
        if not shape.columns:
            raise NeuralabError(f"{path}: the file is empty; give a CSV with a header and rows")
        sample, name, _ = read_table(path, shape=shape, nrows=1000)
        if len(sample) == 0:
            raise NeuralabError(f"{name}: a header ({', '.join(map(str, sample.columns[:20]))}) and no data rows; "
                                "give a CSV with rows under its header")
        _refuse_headless(sample, name)
        wanted = _choose_columns(sample, name, target, features, date_column, date_format, series_column,
                                 where_column, decimal=shape.decimal)
        date, value, inputs, group, filtered, clock = wanted
        columns = list(dict.fromkeys(c for c in [date, clock, value, *inputs, group, filtered] if c is not None))
        estimate = shape.estimate(len(columns))
        if announce is not None:
            announce(f"loading {name}: {shape.describe(len(columns))}")
        free = tables.available_memory()  # looked up there, where a test stands in a smaller machine
        if free is not None and estimate > free:
            raise NeuralabError(f"{name}: {shape.rows:,} rows would need about {estimate / 2**30:.1f} GiB of memory "
                                f"and {free / 2**30:.1f} GiB is available; use a shorter stretch of the file (or "
                                f"fewer columns), or a machine with more memory")
    # Value columns are read as written (1.234,56), except where commas separate the columns: there a
    # comma in a number is quoted, so pandas leaves its column as text anyway, and a point is a decimal point
    values = [c for c in [value, *inputs] if c not in (date, group, filtered)] \
        if columns and shape.separator != "," else None
    table, name, line0 = read_table(source, sep, columns, shape, as_text=values)
    if len(table) == 0:
        raise NeuralabError(f"{name}: no data rows")
    if date_column is None and isinstance(source, pd.DataFrame) and isinstance(source.index, pd.DatetimeIndex):
        date_column = table.columns[0]
    date_column, target, features, series_column, where_column, clock = _choose_columns(
        table, name, target, features, date_column, date_format, series_column, where_column,
        builtin=builtin, decimal=shape.decimal if shape is not None else ".")
    table = table.assign(_line=np.arange(len(table)) + line0)
    if where_column is not None:
        table = select_where(table, where, where_column, where_value, where_keep, stored=not suggest_series)
    if series_column is None:
        groups = [(name, table)]
    else:
        keys = table[series_column].astype("string").str.strip().fillna("")
        groups = [(str(k), part) for k, part in table.groupby(keys, sort=True)]
        if len(groups) > 1000:
            raise ParameterError("series_column", series_column,
                                 f"{len(groups):,} different values; a series column names a few series")
    decimal = shape.decimal if shape is not None else "."
    many = [_clean(part, label, target, features, date_column, date_format, missing, duplicates, gaps, calendar,
                   single=series_column is None and suggest_series, decimal=decimal, time_column=clock,
                   sep=shape.separator if shape is not None else ",", offsets=offsets, day_first=day_first)
            for label, part in groups]
    if series_column is not None:
        for series in many:
            series.where = f"{name}, {series_column} = {series.name!r}"
    marks = decimal_marks(table[target], decimal) if shape is not None else ""  # 2.025,89 read as 2025.89
    if shape is not None and (not shape.plain or marks):
        for series in many:
            series.report.read_as = shape.said(marks)
    return many


def _refuse_headless(sample: pd.DataFrame, name: str) -> None:
    """A file whose first line is data (2023-01-01,1002.51), not column names, would lose that row
    and be known by names such as '1002.51'."""
    header = pd.Series([re.sub(r"\.\d+$", "", str(c)) for c in sample.columns], dtype="string")  # 1.0.1: a repeat
    numbers = pd.to_numeric(header, errors="coerce").notna()
    dates = header.str.fullmatch(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}([ T].*)?")
    if len(header) > 1 and bool((numbers | dates).all()) and numbers.any():
        raise NeuralabError(f"{name}: its first line ({', '.join(map(str, sample.columns[:5]))}) holds values, not "
                            "column names; add a header line that names the columns, e.g. date,value")


def parse_where(where: str | None) -> tuple[str | None, str | None, bool]:
    """"station=C" -> ("station", "C", True): keep those rows; "station!=C" or "station!=C,D"
    -> ("station", "C,D", False): leave those out (a series too short among several); None ->
    (None, None, True)."""
    if where is None:
        return None, None, True
    column, eq, value = str(where).partition("=")
    keep = not column.endswith("!")
    column = column.removesuffix("!")
    if not eq or not column.strip() or not value.strip():
        raise ParameterError("where", where, "write it as COLUMN=VALUE to keep one series, or COLUMN!=VALUE (or "
                             "COLUMN!=VALUE,VALUE) to leave series out, e.g. station=SEATTLE or station!=NEW")
    return column.strip(), value.strip(), keep


def where_values(value: str, keep: bool, present) -> list[str]:
    """The values a parsed `where` names, given those its column holds: one to keep; to leave
    out, one or several separated by commas, each read as the longest value the column holds
    that the text goes on with up to a comma or its end, so "Portland, OR,Salem, OR" is two
    values; text that starts no value runs to the next comma (and is then refused as absent)."""
    if keep:
        return [value]
    longest = sorted({str(v) for v in present if str(v)}, key=len, reverse=True)
    named, at = [], 0
    while True:
        rest = value[at:].lstrip()
        at = len(value) - len(rest)
        match = next((v for v in longest if rest.startswith(v) and rest[len(v):].lstrip()[:1] in ("", ",")), None)
        comma = value.find(",", at + len(match or ""))
        piece = match or value[at:comma if comma >= 0 else len(value)].strip()
        if piece:
            named.append(piece)
        if comma < 0:
            return named
        at = comma + 1


def select_where(table: pd.DataFrame, where: str, column: str, value: str, keep: bool,
                 stored: bool = False) -> pd.DataFrame:
    """The rows of ``table`` that ``where`` (parsed by ``parse_where``, ``column`` as the table spells
    it) keeps. Every value it names must be one of the column's: a typo would keep a series unsaid;
    but a stored run's ``where`` (``stored``), reading new rows, may leave out series they lack."""
    values = table[column].astype("string").str.strip()
    present = values.dropna().unique()
    named = where_values(value, keep, present)
    absent = [v for v in named if v not in set(present)]
    if absent and (keep or not stored):
        raise ParameterError("where", where, f"no row has {column} = {absent[0]!r}; its values include "
                             f"{', '.join(map(str, present[:20]))}")
    chosen = values.isin(named).fillna(False).to_numpy(bool)
    if not keep and chosen.all():
        raise ParameterError("where", where, f"leaves out every row (every {column} is one it names); leave out "
                             "fewer series")
    return table[chosen if keep else ~chosen]


def _choose_columns(table: pd.DataFrame, name: str, target, features, date_column, date_format, series_column,
                    where_column, builtin=None, decimal: str = "."):
    """The table's spelling of every column a run uses, with the defaults filled in:
    (date column, target, features, series column, where column, time-of-day column or None)."""
    columns = list(table.columns)
    series_column = resolve_column(series_column, columns, "series_column", name) if series_column else None
    where_column = resolve_column(where_column, columns, "where", name) if where_column else None
    if date_column is not None:
        date_column = resolve_column(date_column, columns, "date_column", name)
    else:
        date_column = builtin.date_column if builtin else _find_date_column(table, name, date_format, decimal)
    clock = time_of_day_column(table, date_column, date_format)  # part of the dates, no value
    skip = {date_column, clock, series_column, where_column}
    if target is not None:
        target = resolve_column(target, columns, "target", name)
    else:
        target = builtin.target if builtin else _default_target(table, skip, name)
    # names that find one column ("temp", "Temp") count once: a column twice is the same input twice
    # the target among them counts once: a new run refuses it (refuse_idle_inputs), a stored run's is read as it was
    features = [f for f in dict.fromkeys(resolve_column(f, columns, "features", name) for f in features) if f != target]
    for column in [target, *features]:
        if column == date_column:
            raise ParameterError("target" if column == target else "features", column,
                                 "is the date column; choose a value column")
    return date_column, target, features, series_column, where_column, clock


def _clean(table: pd.DataFrame, name: str, target: str, features: list[str], date_column: str, date_format,
           missing: str, duplicates: str, gaps: str, calendar, single: bool = True, decimal: str = ".",
           time_column: str | None = None, sep: str = ",", offsets: str = LOCAL_DATES,
           day_first: bool | None = None) -> Series:
    report = SeriesReport(duplicate_policy=duplicates, missing_policy=missing)
    # ';' and 01.01.2022 are how a day-first locale writes a file, and there 5.008 is five thousand as often
    points_group = sep == ";" and decimal == "." and bool(
        table[date_column].astype("string").str.strip().str.fullmatch(r"\d{1,2}\.\d{1,2}\.\d{2,4}(?:[ T].*)?").all())
    times, report.dates, report.day_first = parse_dates(table[date_column], table["_line"], name, date_column,
                                                        date_format, offsets, day_first)
    if time_column is not None:  # Date;Time;... as loggers write (the household power data): one timestamp
        times = times + times_of_day(table[time_column], table["_line"], name, time_column).to_numpy()
        report.dates = join_notes(f"dates and times from columns {date_column!r} and {time_column!r}", report.dates)
    frame = pd.DataFrame({"_time": times.to_numpy(), "_line": table["_line"].to_numpy()})
    for column in [target, *features]:
        parameter = "target" if column == target else "features"
        frame[column] = numeric_column(table[column], table["_line"], name, column, parameter, decimal,
                                 points_group).to_numpy()
    order = np.argsort(frame["_time"].to_numpy(), kind="stable")
    report.unsorted = int((order != np.arange(len(order))).sum())
    frame = frame.iloc[order].reset_index(drop=True)
    frame = _resolve_duplicates(frame, duplicates, report, name, single)
    frame = frame.set_index("_time").drop(columns="_line")
    try:
        frame.index = frame.index.as_unit("ns")
    except pd.errors.OutOfBoundsDatetime:
        raise NeuralabError(f"{name}: dates from {' to '.join(stamps(frame.index[0], frame.index[-1]))} in column "
                            f"{date_column!r}; neuralab handles dates between 1678 and 2261") from None
    frame.index.name = date_column

    grid = time_grid(frame.index, report)
    if grid is not None and report.gaps and len(grid) > 1:
        skipped = clock_hour(grid.difference(frame.index), grid[1] - grid[0], "skip")
        if skipped is not None:
            report.dates = join_notes(report.dates, f"the missing hour from {stamp(skipped[0])} is the one local "
                                      f"clocks skip as summer time begins (in {skipped[1]}, for one): times without "
                                      "UTC offsets, it seems; write them with their offsets (or in UTC) to keep each "
                                      "step one length of time")
    if gaps == "fill" and grid is None and report.gaps and report.frequency != "irregular":
        raise NeuralabError(f"{name}: filling its {report.gaps:,} missing steps of {report.frequency} would make a series "
                            f"of more than {MAX_GRID:,} rows; keep the gaps (`gaps` keep) or resample the file first")
    added = None  # the timestamps `gaps` fill puts in, without values: the file's own cells are not to blame
    if gaps == "fill" and grid is not None and report.gaps:
        added = grid.difference(frame.index)
        frame = frame.reindex(grid)
        frame.index.name = date_column
        report.gaps_filled = True
    isna = frame.isna()
    # a value interpolated between observations holds the next one: a forecast from it sees that far ahead
    later = isna & frame.notna()[::-1].cummax()[::-1] if missing == "interpolate" else isna & False
    frame = _apply_missing(frame, missing, report, name, added)
    if report.dropped:  # the rows left are the series: a daily file's empty weekend cells leave business days
        left = SeriesReport()
        time_grid(frame.index, left)
        for grid_field in ("frequency", "gaps", "largest_gap", "step", "gap_examples"):
            setattr(report, grid_field, getattr(left, grid_field))
    if len(frame) < 2:
        raise NeuralabError(f"{name}: fewer than 2 rows left after cleaning; a series needs more data")
    report.rows = len(frame)
    report.start, report.end = stamps(frame.index[0], frame.index[-1])
    frame, added = add_calendar(frame.astype(np.float64), calendar)
    filled, ahead = isna[target].loc[frame.index].to_numpy(), later.loc[frame.index].any(axis=1).to_numpy()
    return Series(name, frame, target, list(features), report, added, filled=filled if filled.any() else None,
                  ahead=ahead if ahead.any() else None)


# The span over which each encoding takes every value: one constant over a longer span is so for the
# series' frequency (hour of daily rows), not for a short stretch (month of three weeks' rows to predict from)
CYCLES = {"hour": pd.Timedelta(days=1), "dayofweek": pd.Timedelta(days=7), "month": pd.Timedelta(days=366),
          "dayofyear": pd.Timedelta(days=366)}


def refuse_idle_inputs(many: list[Series], features, calendar) -> None:
    """Refuse a new run's inputs that add nothing: the target named again among ``features``
    (already the model's first input), or a ``calendar`` encoding the same on every row for a
    series' frequency (hour of a daily or monthly series, dayofweek of a weekly one). Only where
    a run is made: a stored run's settings, read again to predict, report or resume, are fixed."""
    for series in many:
        again = [f for f in features if find_column(f, series.frame.columns) == series.target]
        if again:
            raise ParameterError("features", again[0], "is the target, already the model's first input; leave it "
                                 "out of the features")
        times = series.times
        for name in dict.fromkeys(calendar):
            values = getattr(times, CALENDAR[name][0])
            # the cycle taken from the last time: a span of centuries overflows a Timedelta
            if len(times) > 1 and times[-1] - CYCLES[name] >= times[0] and (values == values[0]).all():
                raise ParameterError("calendar", name, f"every row has the same {name} ({values[0]}) in "
                                     f"{series.label}, of frequency {series.report.frequency}, so its encoding is "
                                     "constant; leave it out")


def seasonal_encodings(series: Series) -> list[str]:
    """The calendar encodings that can tell a series' seasons apart: those whose cycle spans at
    least two of its median steps (a yearly series' month is the same, or aliased, at every row)."""
    times = series.times
    if len(times) < 2:
        return []
    step = pd.Series(times).diff().median()
    return [name for name, cycle in CYCLES.items() if step * 2 <= cycle]


def add_calendar(frame: pd.DataFrame, names) -> tuple[pd.DataFrame, list[str]]:
    """Cyclic date encodings as columns NAME_sin and NAME_cos: known for any date, so a
    network can tell the season from a 60-day window. Darts calls these cyclic encoders.

    ``frame`` is indexed by its dates (``pd.read_csv(FILE, parse_dates=[DATE], index_col=DATE)``);
    ``names`` is a list of CALENDAR's names (an ONNX file's ``calendar`` metadata, once ``json.loads``).
    Dates written with changing UTC offsets (summer time), which pandas leaves as text, are read
    as a run reads them by ``load_series`` (its ``.frame``)."""
    if not isinstance(frame, pd.DataFrame):
        raise NeuralabError(f"`frame` is a {type(frame).__module__.split('.')[0]} {type(frame).__name__}, not a "
                            "DataFrame; give a pandas DataFrame indexed by its dates: "
                            "pd.read_csv(FILE, parse_dates=[DATE], index_col=DATE)")
    if isinstance(names, str):  # each letter would be taken for a name; the ONNX metadata holds JSON text
        raise ParameterError("names", Shown(names), "give a list of names, e.g. ['dayofyear'] (an ONNX file's "
                             "calendar metadata is JSON text: json.loads it)")
    try:
        names = list(names)
    except TypeError:
        raise ParameterError("names", Shown(names), "give a list of names, e.g. ['dayofyear'], or [] for "
                             "none") from None
    for name in names:
        _choose("names", name, tuple(CALENDAR))
    if names and not isinstance(frame.index, pd.DatetimeIndex):
        first = f" ({frame.index[0]!r}, ...)" if len(frame.index) else ""
        text = pd.Series(frame.index, dtype="string") \
            if pd.api.types.is_string_dtype(frame.index.dtype) and len(frame.index) else None
        # pandas reads one offset throughout as dates; text it reads as times in several zones is summer time
        if text is not None and isinstance(to_datetime(text).dtype, pd.DatetimeTZDtype):
            raise NeuralabError(f"`frame` is indexed by dates with changing UTC offsets{first}, which pandas leaves "
                                "as text; read the file as the run read it: neuralab.data.series.load_series(FILE, "
                                "TARGET, FEATURES, offsets=its model.json's series.offsets) and give its .frame")
        raise NeuralabError(f"`frame` is indexed by {type(frame.index).__name__}{first}, not by dates; give its dates "
                            "as the index: pd.read_csv(FILE, parse_dates=[DATE], index_col=DATE)")
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


def _find_date_column(table: pd.DataFrame, name: str, date_format: str | None = None, decimal: str = ".") -> str:
    """The column that holds the dates: of the columns whose values parse as timestamps
    (text, not plain numbers: a ``day`` of 1..31 is no date, nor 3,3 written with the file's
    ``decimal`` mark), those that read as dates before those that do not, the one named
    date/time/..., then one whose name contains "date" or "time", then the first."""
    sample = table.head(200)
    parsed, excel, epoch = {}, set(), set()
    for column in table.columns:
        values = sample[column].dropna()
        low = str(column).strip().lower()
        if pd.api.types.is_numeric_dtype(values) and not values.empty and date_format in (None, "%s") and \
                (low in DATE_NAMES or "time" in low or "date" in low or "epoch" in low) and epoch_unit(values):
            parsed[str(column)] = 1.0  # whole epoch seconds under a date's name: a date, unlike a `day` of 1..31
            epoch.add(str(column))
            continue
        if pd.api.types.is_numeric_dtype(values) and date_format is None and low in ("date", "datetime") and \
                excel_days(values):  # a logger's `timestamp` of 30,000 seconds since boot is no Excel day
            parsed[str(column)] = 1.0  # Excel's days under a date's own name (not a `downtime` of 30,100)
            excel.add(str(column))
            continue
        if values.empty or holds_numbers(values) or pd.api.types.is_bool_dtype(values):
            continue  # 1.002,51 would parse as a date
        text = values.astype("string").str.strip()
        if float(read_numbers(text, decimal)[0].notna().mean()) >= 0.5:
            continue  # numbers but for a mark such as '-': pandas reads 3,3 as 0001-03-03
        ok = float(to_datetime(text, format=date_format).notna().mean())  # quiet: no dates warn element-wise
        looks = text.str.fullmatch(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}([ T].*)?").mean()
        if ok >= 0.5 or looks >= 0.9 or low in DATE_NAMES + WORDS_FOR_DATE:
            # dates in an unexpected format (31.01.2021 read month first) count as they look: they get
            # their own error, with a hint
            parsed[str(column)] = max(ok, float(looks))
    if not parsed:
        raise NeuralabError(f"no column of {name} holds dates (columns: {_names(table)}); name the column as "
                            "`date_column`, and give `date_format` if its dates are written unusually")

    def rank(column: str) -> tuple:
        low = column.strip().lower()
        named = 0 if low in DATE_NAMES + WORDS_FOR_DATE else 1 if ("date" in low or "time" in low) else 2
        clock = bool(sample[column].dropna().astype("string").str.strip().str.fullmatch(TIME_OF_DAY).all())
        # a time of day alone is the last choice, Excel's numbers the one before, then numbers taken for epoch
        # seconds by their name: dates written as dates win
        readable = parsed[column] >= 0.5 or column in excel  # a name alone does not beat dates that read
        return (clock, column in excel, not readable, column in epoch, named, -parsed[column],
                list(parsed).index(column))

    return min(parsed, key=rank)


def _default_target(table: pd.DataFrame, skip: set, name: str) -> str:
    """The only numeric column, or the closing price in price data; else a clear error. Columns
    that hold nothing (after a separator that ends the header) and the row numbers that pandas'
    ``to_csv`` writes as an unnamed first column are no candidates."""
    numeric = [str(c) for c in table.columns if c not in skip and holds_numbers(table[c])
               and not _row_numbers(c, table[c])]
    lowered = {c.strip().lower(): c for c in numeric}
    price = next((lowered[c] for c in PRICE_TARGETS if c in lowered), None)
    if price is not None:
        return price
    if numeric:
        _refuse_unread_prices(table, skip, numeric, name)
    if len(numeric) == 1:
        return numeric[0]
    if numeric:
        raise NeuralabError(f"{name} has {len(numeric)} numeric columns; choose one: {', '.join(numeric[:20])} "
                            "(give it as `target`)")
    reasons = []
    for column in table.columns:
        if column in skip or table[column].dropna().empty:
            continue
        values = read_numbers(table[column])[0]
        text = table[column].astype("string").str.strip()  # with the marks of missing values, as written
        bad = values.isna() & text.notna() & (text != "")
        if bad.any():
            at = int(np.flatnonzero(bad.to_numpy())[0])
            where = f"row {at}" if name == "DataFrame" else f"line {at + 2}"  # a file: line 1 is the header
            reasons.append(f"{where}: {text.iloc[at]!r} in column {str(column)!r} is not a number"
                           f"{why_not_a_number(text.iloc[at])}")
    why = f"; {reasons[0]}" if reasons else ""
    raise NeuralabError(f"{name}: no column holds numbers to forecast{why}; fix the file")


CURRENCY = r"\s*[$€£¥]\s*"


def _refuse_unread_prices(table: pd.DataFrame, skip: set, numeric: list[str], name: str) -> None:
    """Refuse to default to another column where the prices are left out as no numbers: columns
    that are numbers but for a currency sign ($282.59, as nasdaq.com exports them), or that a
    price column's name (Close, Price) shows to be the one meant; else Volume wins unsaid."""
    unread, signed = [], []
    for column in table.columns:
        if column in skip or str(column) in numeric or table[column].dropna().empty:
            continue
        text = table[column].astype("string").str.strip()
        if text.str.contains(CURRENCY, regex=True).any() and \
                holds_numbers(text.str.replace(CURRENCY, "", regex=True)):
            unread.append(column)
            signed.append(column)
        elif str(column).strip().lower() in PRICE_TARGETS:
            unread.append(column)
    if not unread:
        return
    values, text, _ = read_numbers(table[unread[0]])
    at = int(np.flatnonzero((values.isna() & text.notna() & (text != "")).to_numpy())[0])
    where = f"row {at}" if name == "DataFrame" else f"line {at + 2}"  # a file: line 1 is the header
    columns = ", ".join(repr(str(c)) for c in unread)
    plural = len(unread) > 1
    if len(signed) == len(unread):
        why = f"carr{'y' if plural else 'ies'} a currency sign ({text.iloc[at]!r} on {where}), so " \
              f"{'they are' if plural else 'it is'} not numeric"
        fix = "write the numbers without the sign"
    else:
        why = (f"{'are' if plural else 'is'} not numeric ({text.iloc[at]!r} in {unread[0]!r} on {where} is not a "
               f"number{why_not_a_number(text.iloc[at])})")
        fix = "write the prices as plain numbers"
    if len(numeric) == 1:
        rest, other = f"the only numeric column is {numeric[0]!r}", f"{numeric[0]!r} as `target` to forecast it"
    else:
        rest, other = f"the numeric columns are {', '.join(numeric[:20])}", "one of those as `target`"
    raise NeuralabError(f"{name}: column{'s' if plural else ''} {columns} {why}, and {rest}; {fix}, or give {other}")


def _row_numbers(name, column: pd.Series) -> bool:
    """Whether ``column`` is row numbers under no name, which pandas reads as "Unnamed: 0": the
    0, 1, 2, ... of pandas' ``to_csv``, or the 1, 2, 3, ... of R's ``write.csv`` (its header's "")."""
    if not (re.fullmatch(r"Unnamed: \d+", str(name)) and pd.api.types.is_integer_dtype(column)):
        return False
    values = column.to_numpy()
    return bool((values == np.arange(len(values))).all() or (values == np.arange(1, len(values) + 1)).all())


def _resolve_duplicates(frame: pd.DataFrame, policy: str, report: SeriesReport, name: str,
                        single: bool = True) -> pd.DataFrame:
    repeated = frame["_time"].duplicated(keep="first")
    report.duplicates = int(repeated.sum())
    if not report.duplicates:
        return frame
    when = frame["_time"][repeated].iloc[0]
    lines = frame["_line"][frame["_time"] == when].tolist()
    unique = pd.DatetimeIndex(frame["_time"].drop_duplicates())
    steps = unique[1:] - unique[:-1]
    fold = clock_hour(pd.DatetimeIndex(frame["_time"][repeated].unique()), steps.to_series().mode().iloc[0],
                      "repeat") if len(steps) and report.duplicates == repeated.groupby(frame["_time"]).sum().gt(0).sum() \
        else None
    if fold is not None:  # two distinct hours, not one recorded twice: averaging them loses one
        doubled = (f"{report.duplicates:,} duplicate timestamps, all in the hour from {stamp(fold[0])} (lines "
                   f"{', '.join(map(str, lines[:5]))}): the hour that local clocks repeat as summer time ends (in "
                   f"{fold[1]}, for one), in times without UTC offsets, it seems")
        if policy == "error":
            raise NeuralabError(f"{name}: {doubled}; write the times with their offsets (or in UTC), or pass "
                                "`duplicates` mean if merging the two hours into one is acceptable")
        report.dates = join_notes(report.dates, f"{doubled}: merged by `duplicates` {policy}")
    if policy == "error":
        several = SEVERAL if single else ""
        raise NeuralabError(f"{name}: {report.duplicates:,} duplicate timestamps, first {stamp(when)} "
                            f"(lines {', '.join(map(str, lines[:5]))}); pass `duplicates` first, last or mean{several}")
    if policy == "mean":
        return frame.groupby("_time", as_index=False, sort=True).mean()
    return frame.drop_duplicates("_time", keep=policy)


# What a file of duplicate timestamps may be; left out where the caller fixed which series is read (`suggest_series`)
SEVERAL = ("; if the file holds several series (one per station, say), name their column as `series_column` or pick "
           "one with `where`")


def calendar_holes(times: pd.DatetimeIndex, frequency: str) -> SeriesReport | None:
    """The timestamps missing from ``times`` on the calendar grid of ``frequency`` (a pandas
    alias, months included, where ``time_grid`` lays equal steps), as a report whose last line says
    them; None where none are missing, or where the times lie on no such grid."""
    if len(times) < 2:
        return None
    months = months_on_day(frequency)
    if months is not None:  # no pandas alias: months on their day from the first date, as loading lays them
        grid = months_grid(times[0], times[-1], *months)
    else:
        try:
            step = pd.tseries.frequencies.to_offset(frequency)
            # a fixed step tells the grid's length before it is built: a mistyped year among a
            # window's minutes would lay millions of cells (months and business days are never that many)
            cells = (times[-1] - times[0]) // pd.Timedelta(step.nanos) + 1 if isinstance(step, pd.offsets.Tick) else 0
            grid = pd.date_range(times[0], times[-1], freq=step) if cells <= min(MAX_GRID, 1000 * len(times)) else None
        except ValueError:  # a frequency pandas does not read back
            return None
    if grid is None:
        if ((times.as_unit("ns").asi8 - times.as_unit("ns").asi8[0]) % step.nanos).any():
            return None  # rows off the grid: no holes on it to count
        after = [t + step for t in times[:-1] if t + step not in times]  # where each hole begins
        return SeriesReport(frequency=frequency, gaps=int(cells - len(times)), gap_examples=stamps(*after[:3]),
                            largest_gap=duration(times.to_series().diff().max()))
    absent = grid.difference(times)
    if not len(absent) or not times.isin(grid).all():
        return None
    return SeriesReport(frequency=frequency, gaps=len(absent), gap_examples=stamps(*absent[:3]),
                        largest_gap=duration(times.to_series().diff().max()))


def _apply_missing(frame: pd.DataFrame, policy: str, report: SeriesReport, name: str,
                   added: pd.DatetimeIndex | None = None) -> pd.DataFrame:
    """``frame`` with its missing values dealt with by ``policy`` (counted into ``report``);
    ``added``: the timestamps `gaps` fill put in, which have no values of the file's."""
    isna = frame.isna()
    report.missing = {str(c): int(n) for c, n in isna.sum().items()}
    total = int(isna.to_numpy().sum())
    if total == 0:
        return frame
    if policy == "error":
        put_in = frame.index.isin(added) if added is not None else np.zeros(len(frame), dtype=bool)
        own = isna[~put_in]
        filling = ""
        if put_in.any():
            grid = "business-day" if report.frequency == "B" else report.frequency
            holidays = ", on a market's calendar most likely its holidays" if report.frequency == "B" else ""
            filling = (f"{int(put_in.sum()):,} dates that `gaps` fill added to the {grid} grid (first at "
                       f"{stamp(frame.index[int(np.flatnonzero(put_in)[0])])}{holidays}) have no values")
        if not own.to_numpy().any():
            raise NeuralabError(f"{name}: {filling}; pass `missing` ffill or interpolate to fill them, or `gaps` "
                                "keep to leave them out (one row = one step)")
        column = next(c for c, n in own.sum().items() if n)
        first = stamp(own.index[int(np.flatnonzero(own[column].to_numpy())[0])])
        # a mark such as '-' is read as missing (numbers.MISSING_MARKS), and an accounting export's '-' is a
        # zero: said here, before a policy fills it with neighbours' values
        raise NeuralabError(f"{name}: {int(own.to_numpy().sum())} missing values (column {column!r} has "
                            f"{int(own[column].sum())}, first at {first}; empty cells and marks such as NA or '-' "
                            "count as missing, and where '-' means zero, write 0)" + (f", and {filling}" if filling
                            else "") + "; pass `missing` drop, ffill or interpolate")
    before = len(frame)
    if policy == "ffill":
        frame = frame.ffill()
    elif policy == "interpolate":  # linear in time inside the series; the tail carries the last value
        frame = frame.interpolate(method="time", limit_area="inside").ffill()
    frame = frame.dropna()  # drop: every row with a gap; ffill/interpolate: a leading run with no past
    report.dropped = before - len(frame)
    report.filled = int(isna.loc[frame.index].to_numpy().sum())  # the cells in kept rows were filled
    return frame


def report_dict(series: Series) -> dict:
    return {"name": series.name, "target": series.target, "features": series.features, **asdict(series.report)}
