"""Dates and times of day read from a table's columns: text in the formats pandas reads, day
or month first chosen by the reading that lies on a regular grid (and said), Unix epoch
seconds, Excel's serial days, and a separate time-of-day column as loggers write it; a
summary row's word among the dates is refused by its line (``parse_dates``). Also the
regular grid timestamps lie on (``time_grid``: its step as a pandas alias, the timestamps
missing from it), by which day or month first is chosen and a series' gaps are counted, and
timestamps written back as text (``stamps``).

Apart from data.series so that reading a date is one module's work: series chooses the date
column and puts the rows in order.
"""

from __future__ import annotations

import datetime
import re
import warnings
import zoneinfo
from types import SimpleNamespace

import numpy as np
import pandas as pd

from neuralab.errors import NeuralabError


TIME_OF_DAY = r"(?:[01]?\d|2[0-4]):[0-5]\d(?::[0-5]\d(?:\.\d+)?)?"  # 17:24, 17:24:00, 17:24:00.5 (47:30 is no time)
TIME_NAMES = ("time", "hour", "clock", "time of day", "heure", "uhrzeit", "zeit", "hora", "ora", "tijd", "tid")
# The names a date column goes by (lower case), which the loader takes it by before columns of other names
DATE_NAMES = ("date", "datetime", "timestamp", "time", "ds", "day", "date_time", "time_hour", "period")
# Other languages' names, as Excel users name the column: for dates written as text only, as "data" and
# "datum" in English name values (a column of byte counts near 2e9 is no epoch seconds)
WORDS_FOR_DATE = ("datum", "zeitstempel", "fecha", "data", "date_heure", "horodatage", "tijdstip")


def time_of_day_column(table: pd.DataFrame, date_column: str, date_format: str | None) -> str | None:
    """The column that holds the times of day of a date column written without them (Date;Time
    as loggers write), or None: without it, a day's many rows were duplicate timestamps. Only a
    column named as a time, only where the dates repeat (a day's many rows), and only where the
    times rise within each day, as a logger writes them (a run's 0:45:12 is a duration), but for
    the hour that clocks repeat as summer time ends (02:00 twice on 29 October 2023), which the
    merged timestamps then name as such; not where ``date_format`` reads a time itself."""
    if date_format is not None and re.search(r"%[HIMSXTcsfp]", date_format):
        return None
    sample = table.head(200)
    dates = sample[date_column].dropna().astype("string").str.strip()
    if dates.empty or pd.api.types.is_datetime64_any_dtype(sample[date_column]) or dates.str.contains(":").any() \
            or not dates.duplicated().any():
        return None
    for column in sample.columns:
        if column == date_column or str(column).strip().lower() not in TIME_NAMES:
            continue
        values = sample[column].astype("string").str.strip()
        known = values.notna() & sample[date_column].notna()
        if not known.any() or not bool(values[known].str.fullmatch(TIME_OF_DAY).all()):
            continue
        since = pd.to_timedelta(values[known].where(values[known].str.count(":") == 2, values[known] + ":00"))
        day = sample[date_column][known].astype("string").str.strip()
        by_day = since.groupby(day.to_numpy(), sort=False)
        back = (by_day.diff() <= pd.Timedelta(0)).to_numpy()  # a day's first row: NaT, no step
        if not back.any() or _repeated_hours(day[back], since[back], by_day.shift()[back], date_format):
            return column
    return None


def _repeated_hours(days: pd.Series, times: pd.Series, before: pd.Series, date_format: str | None) -> bool:
    """Whether each time of day in ``times`` that does not rise from the one ``before`` it on its
    date (``days``, as written) lies, with that one, in an hour that one of CLOCK_ZONES' clocks
    repeat on that date: 02:00 after 02:00 (hourly), or 02:00 after 02:45 (quarter hours)."""
    hours = times.dt.floor("h")
    if not bool((before.dt.floor("h") == hours).all()):
        return False
    readings = [to_datetime(days, format=date_format)] if date_format else \
        [to_datetime(days, dayfirst=first) for first in (True, False)]  # the date's own reading is made later
    for dates in readings:
        walls = (dates + hours).dropna()
        if len(walls) == len(days) and all(
                any(all(_changes(wall.to_pydatetime() + datetime.timedelta(minutes=m), zoneinfo.ZoneInfo(zone),
                                 "repeat") for m in (0, 59)) for zone in CLOCK_ZONES) for wall in walls):
            return True
    return False


def times_of_day(column: pd.Series, lines: pd.Series, name: str, label: str) -> pd.Series:
    """17:24 or 17:24:00 as durations since midnight; a cell that is none is refused by its line."""
    text = column.astype("string").str.strip()
    bad = ~text.str.fullmatch(TIME_OF_DAY).fillna(False)
    if bad.any():
        at = int(np.flatnonzero(bad.to_numpy())[0])
        cell = "an empty cell" if pd.isna(text.iloc[at]) or not text.iloc[at] else repr(text.iloc[at])
        raise NeuralabError(f"{name}: line {lines.iloc[at]}: {cell} in column {label!r} is not a time of day "
                            "(HH:MM or HH:MM:SS); every row needs one")
    return pd.to_timedelta(text.where(text.str.count(":") == 2, text + ":00"))


DAY_MONTH = r"\d{1,2}([/.-])\d{1,2}\1\d{2,4}([ T].*)?"  # 01/02/2015: the 1st of February, or the 2nd of January
# The parts of such a date and its time, each with the strftime code that reads it
DATE_SHAPE = re.compile(r"\d{1,2}(?P<sep>[/.-])\d{1,2}[/.-](?P<year>\d{2,4})"
                        r"(?:(?P<T>[ T])\d{1,2}:\d{2}(?P<S>:\d{2})?(?P<f>\.\d+)?(?P<p> ?[AaPp][Mm])?"
                        r"(?P<z> ?(?:Z|[+-]\d{2}(?::?\d{2})?))?)?")
EPOCH_RANGES = (("s", 1e8, 4.2e9), ("ms", 1e11, 4.2e12))  # 1973 to 2103, in seconds or milliseconds


EXCEL_ORIGIN = "1899-12-30"  # Excel's day 0, as its serial numbers count (44927 is 2023-01-01)
EXCEL_DAYS = (25569, 73051)     # 1970-01-01 to 2099-12-31: a date column saved from Excel as General


def excel_days(values: pd.Series) -> bool:
    """Whether every value is one of Excel's serial day numbers from 1970 to 2099 (a fraction
    is the time of day): dates a spreadsheet saved as numbers."""
    v = pd.to_numeric(values, errors="coerce")
    return not (v.empty or v.isna().any() or pd.api.types.is_bool_dtype(values)) and \
        EXCEL_DAYS[0] <= v.min() and v.max() <= EXCEL_DAYS[1]


def epoch_unit(values: pd.Series) -> str | None:
    """"s" or "ms" when every value is a whole number of Unix epoch seconds (or milliseconds)
    between 1973 and 2103; None otherwise (a day of the month, a year, YYYYMMDD are not)."""
    v = pd.to_numeric(values, errors="coerce")
    if v.isna().any() or v.empty or pd.api.types.is_bool_dtype(values) or (v % 1 != 0).any():
        return None
    return next((unit for unit, lo, hi in EPOCH_RANGES if lo <= v.min() and v.max() <= hi), None)


def to_datetime(text: pd.Series, **options) -> pd.Series:
    """pandas' reading, quietly (no UserWarning on stderr); UTC offsets that change within the
    column (summer time) are read as instants in UTC, which the run's rule (OFFSET_RULES) then settles."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            return pd.to_datetime(text, errors="coerce", **options)
        except (ValueError, TypeError):  # mixed UTC offsets, or what pandas cannot read at all
            pass
        try:
            return pd.to_datetime(text, errors="coerce", utc=True, **options)
        except (ValueError, TypeError):
            return pd.Series(pd.NaT, index=text.index)


# 2021-01-01T00:00:00+01:00, 00:00:00 +0100, PostgreSQL's 00:00:00+01: an offset after a clock time
_OFFSET = re.compile(r"\d:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:(?P<z>Z)|(?P<sign>[+-])(?P<h>\d{2})(?::?(?P<m>\d{2}))?)$")

# How times written with UTC offsets are read, each run by the rule it was made with (recorded with it),
# so that new rows take the times and calendar encodings its training rows had:
LOCAL_DATES = "local-dates"  # times all at local midnight keep their local dates; finer times in UTC
AS_WRITTEN = "as-written"    # one offset throughout kept as written, changing offsets in UTC (runs not recording theirs)
OFFSET_RULES = (LOCAL_DATES, AS_WRITTEN)
# The end of every note on times read from UTC offsets other than zero into UTC: the hour and weekday
# encodings of such times are UTC's, and new rows must be on that clock too (forecasting.finished)
IN_UTC = "converted to UTC"


def read_in_utc(note: str) -> bool:
    """Whether a series' ``dates`` note (its SeriesReport's, recorded with a run) says that its
    times had UTC offsets other than zero and were converted to UTC."""
    return IN_UTC in note


def _with_offsets(parsed: pd.Series, local: pd.Series | None) -> tuple[pd.Series, str]:
    """Times read with UTC offsets (``parsed``, zone-aware) on one time line, by one rule for
    training data and new data alike (LOCAL_DATES): where every time is at midnight on its own
    clock (``local``, the wall-clock times, or None where the text does not tell them), a daily
    or coarser series, its local dates are kept and the offsets dropped, so that a day is not
    named as the day before (23:00 UTC); finer times are converted to UTC, where a summer-time
    change is no step of 23 or 25 hours. The note says which, where an offset was not zero."""
    utc = parsed.dt.tz_convert("UTC")
    shifted = local is not None and bool((utc.dt.tz_localize(None) != local).any())
    if local is not None and bool((local == local.dt.normalize()).all()):
        return local, "dates written at local midnight with UTC offsets: read as their local dates, " \
            "the offsets dropped" if shifted else ""
    return utc, f"times with UTC offsets, {IN_UTC}" if shifted or local is None else ""


def _as_written(parsed: pd.Series, local: pd.Series | None) -> tuple[pd.Series, str]:
    """AS_WRITTEN, the reading of runs made before LOCAL_DATES: pandas' own, one offset
    throughout kept as written (UTC+01:00, its hours the file's), several (summer time) in UTC."""
    changing = str(parsed.dt.tz) == "UTC" and (local is None or bool((parsed.dt.tz_localize(None) != local).any()))
    return parsed, f"times with changing UTC offsets, {IN_UTC}" if changing else ""


def _local_clock(text: pd.Series, parsed: pd.Series) -> pd.Series | None:
    """The wall-clock times of ``parsed`` (instants read from ``text``), by each cell's own
    offset (Z, +01:00, -0500, +01); None where a cell's offset does not end it."""
    parts = text.str.extract(_OFFSET)
    if (parts["z"].isna() & parts["sign"].isna()).any():
        return None
    minutes = (parts["h"].astype(float) * 60 + parts["m"].astype(float).fillna(0)).fillna(0)  # +01: no minutes
    minutes = minutes.where(parts["sign"] != "-", -minutes)
    return parsed.dt.tz_convert("UTC").dt.tz_localize(None) + pd.to_timedelta(minutes.to_numpy(), unit="min")


# Time-zone abbreviations whose offset is not in doubt, as pandas' format codes cannot read them (%Z takes
# UTC and GMT alone); and those that name zones on several continents (IST: India, Ireland, Israel; CST:
# Central America, China, Cuba), refused. Any other word is no zone: the date is not read, and says so
_ZONES = {"UTC": "+00:00", "GMT": "+00:00", "UT": "+00:00", "WET": "+00:00", "WEST": "+01:00", "CET": "+01:00",
          "CEST": "+02:00", "MEZ": "+01:00", "MESZ": "+02:00", "EET": "+02:00", "EEST": "+03:00"}
_IN_DOUBT = ("EST", "EDT", "CST", "CDT", "MST", "MDT", "PST", "PDT", "IST", "BST", "AST", "ADT", "SST", "CAT")
_ZONE_WORD = re.compile(r"(\d:\d{2}(?::\d{2}(?:\.\d+)?)?(?:\s*[AaPp][Mm])?\s*)([A-Z]{2,5})$")  # 00:00:00 CEST


def _zone_words(text: pd.Series, lines: pd.Series, name: str, label: str) -> pd.Series:
    """``text`` with a time-zone abbreviation after a clock time (00:00:00 CEST, 00:00 UTC)
    written as its offset, the space before it kept (as ' %Z' in a date format becomes ' %z');
    one whose offset is in doubt (EST, IST) is refused by its line, saying what to write instead."""
    words = text.str.extract(_ZONE_WORD)[1]
    if not words.notna().any():
        return text
    doubtful = words.isin(_IN_DOUBT)
    if doubtful.any():
        at = int(np.flatnonzero(doubtful.to_numpy())[0])
        raise NeuralabError(f"{name}: line {lines.iloc[at]}: {text.iloc[at]!r} in column {label!r} names its time "
                            f"zone as {words.iloc[at]!r}, whose offset is in doubt (no date format reads it); write "
                            "the times with UTC offsets (2023-10-25T00:00:00-05:00) or in UTC")
    return text.str.replace(_ZONE_WORD, lambda m: m[1] + _ZONES[m[2]] if m[2] in _ZONES else m[0], regex=True)


def _grid_gaps(parsed: pd.Series) -> int:
    index = pd.DatetimeIndex(parsed.dropna().unique()).sort_values()
    report = SimpleNamespace(gaps=0)  # what time_grid counts into a series' SeriesReport, its gaps alone wanted
    time_grid(index, report)
    return report.gaps + (len(parsed) - len(index))  # a reading that makes duplicates is less regular too


def parse_dates(column: pd.Series, lines: pd.Series, name: str, label: str,
                 date_format: str | None = None, offsets: str = LOCAL_DATES,
                 day_first: bool | None = None) -> tuple[pd.Series, str, bool | None]:
    """The column as timestamps, how they were read when that is worth saying ("" if not), and
    whether dates such as 01/02/2015 were read day first (True) or month first (False) where the
    two readings differ (None where nothing was chosen): a run keeps it as ``day_first``, by which
    new rows that both readings fit (their days all 12 or less) are read its way, while rows that
    tell their order themselves (13/02/2015, 2015-02-01) are read as they say; times with UTC
    offsets by the rule ``offsets`` (one of OFFSET_RULES: a run's own)."""
    if isinstance(column.dtype, pd.DatetimeTZDtype):  # a DataFrame's zone-aware times: one rule, as for text
        # before LOCAL_DATES they all went to UTC, which _with_offsets does without their clock times
        times, note = _with_offsets(column, column.dt.tz_localize(None) if offsets == LOCAL_DATES else None)
        return times, f"times in {column.dt.tz} {IN_UTC}" if note.startswith("times with") \
            and str(column.dt.tz) != "UTC" else note, None
    if pd.api.types.is_datetime64_dtype(column):
        return column, "", None
    if pd.api.types.is_numeric_dtype(column) and date_format in (None, "%s"):
        unit = epoch_unit(column)
        if unit is not None:
            what = "seconds" if unit == "s" else "milliseconds"
            return pd.to_datetime(column.astype(np.int64), unit=unit), f"dates read as Unix epoch {what} (UTC)", None
        if date_format is None and excel_days(column):
            days = pd.to_datetime(column.astype(np.float64), unit="D", origin=EXCEL_ORIGIN).dt.round("s")
            return days, "dates read as Excel's serial day numbers (days since 1899-12-30)", None
        if date_format == "%s":
            raise NeuralabError(f"{name}: column {label!r} holds numbers that are not Unix epoch seconds or "
                                "milliseconds between 1973 and 2103; give `date_format` for them, e.g. %Y%m%d")
    text = column.astype("string").str.strip()
    empty = text.isna() | (text == "")
    if empty.any():
        at = int(np.flatnonzero(empty.to_numpy())[0])
        raise NeuralabError(f"{name}: line {lines.iloc[at]}: empty date in column {label!r}; every row needs a date")
    # No format reads a cell without a digit (Total, Summe): the dates are read without such rows,
    # so that a label at the end does not spoil the reading of the rest and take the blame off itself
    words = ~text.str.contains(r"\d").to_numpy(bool)
    labelled = bool(words.any() and not words.all())
    dates, date_lines = (text[~words], lines[~words]) if labelled else (text, lines)
    written = dates  # the cells as the file has them, for errors
    if date_format is None or "%Z" in date_format:
        dates = _zone_words(dates, date_lines, name, label)
        date_format = date_format and date_format.replace("%Z", "%z")
    shaped = dates.str.fullmatch(DAY_MONTH).to_numpy(bool)
    # pandas reads every date in the format of the first: one written otherwise (20.01.20222, 2022-01-20)
    # among 01.01.2022's is blamed itself, not the first of them that month first cannot read (13.01.2022)
    chosen = None
    if date_format is None and shaped[0]:
        parsed, note, chosen = _day_or_month_first(dates, day_first)
    else:
        parsed, note = to_datetime(dates, format=None if date_format == "%s" else date_format), ""
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        settle = _with_offsets if offsets == LOCAL_DATES else _as_written
        parsed, zone_note = settle(parsed, _local_clock(dates, parsed))
        note = join_notes(note, zone_note)
    if parsed.isna().any():
        at = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        value = written.iloc[at]
        hint = ""
        if date_format:
            hint = f" (`date_format` is {date_format!r})"
            if DATE_SHAPE.match(value):
                like = _format_like(value, _first(written, date_format))
                if like != date_format:
                    hint = f" (`date_format` is {date_format!r}; values like this one take {like})"
        elif shaped[0] and not shaped[at]:
            hint = f", unlike the dates before it ({written.iloc[at - 1]!r}); correct it or delete its row"
        elif re.fullmatch(r"\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}.*", value):
            day, month = _format_like(value, "day"), _format_like(value, "month")
            hint = f"; give `date_format`, e.g. {day} (day first) or {month}"
        elif re.fullmatch(r"\d{9,13}", value):
            hint = " (whole Unix epoch seconds or milliseconds between 1973 and 2103 are read as dates)"
        else:
            hint = " (or not in the format of the first rows); give `date_format`, e.g. %Y-%m-%d %H:%M"
        raise NeuralabError(f"{name}: line {date_lines.iloc[at]}: {value!r} in column {label!r} is not a date{hint}")
    if labelled:
        _refuse_labels(text, lines, words, name, label)
    return parsed, note, chosen


def _refuse_labels(text: pd.Series, lines: pd.Series, words: np.ndarray, name: str, label: str) -> None:
    """Refuse the rows whose date is a word, where the other dates read: the rows of a summary
    (Total, Summe, Mittelwert) that a spreadsheet adds below the data are named as such. They
    are not dropped: their values are no step of the series, and nothing else says so."""
    at = np.flatnonzero(words)
    values, where = text.iloc[at], lines.iloc[at]
    if at[0] != len(text) - len(at):  # a word among the dates: that row, not the format
        more = f" ({len(at):,} such rows)" if len(at) > 1 else ""
        raise NeuralabError(f"{name}: line {where.iloc[0]}: {values.iloc[0]!r} in column {label!r} is not a date, "
                            f"which no `date_format` reads{more}; give the row its date or delete it")
    shown = ", ".join(map(repr, values.iloc[:5])) + (", ..." if len(at) > 5 else "")
    if len(at) == 1:
        raise NeuralabError(f"{name}: line {where.iloc[0]} ({shown}) in column {label!r} is not a date: a summary "
                            "row at the end of the file; delete it")
    span = where.astype(int).to_numpy()
    lines_named = f"{span[0]}-{span[-1]}" if (np.diff(span) == 1).all() else ", ".join(map(str, span[:5]))
    raise NeuralabError(f"{name}: lines {lines_named} ({shown}) in column {label!r} are not dates: summary rows at "
                        "the end of the file; delete them")


def _first(dates: pd.Series, date_format: str) -> str:
    """"day" or "month": which comes first in ``dates`` (01.01.2021, 13/01/2021), as the column
    tells (a first number above 12 is a day, a second one a month; dots are written day first),
    else as ``date_format`` has it."""
    parts = dates.str.extract(r"^(\d{1,2})([/.-])(\d{1,2})[/.-]\d{2,4}").dropna()
    if len(parts):
        if (parts[0].astype(int) > 12).any():
            return "day"
        if (parts[2].astype(int) > 12).any():
            return "month"
        if (parts[1] == ".").all():
            return "day"
    return "day" if date_format.strip().startswith("%d") else "month"


def _format_like(value: str, first: str) -> str:
    """The `date_format` that reads ``value`` (01/02/2015 13:45) ``first`` "day" or "month" first,
    time and all: %d/%m/%Y %H:%M; the codes of a time it does not know are left to the user."""
    shape = DATE_SHAPE.match(value.strip())
    if shape is None:
        return "%d/%m/%Y" if first == "day" else "%m/%d/%Y"
    sep = shape["sep"]
    out = sep.join(("%d", "%m") if first == "day" else ("%m", "%d")) + sep + ("%Y" if len(shape["year"]) == 4 else "%y")
    if shape["T"]:
        out += shape["T"] + ("%I" if shape["p"] else "%H") + ":%M" + ":%S" * bool(shape["S"]) + ".%f" * bool(shape["f"])
        out += (" " * shape["p"].startswith(" ") + "%p") if shape["p"] else ""
        out += (" " * shape["z"].startswith(" ") + "%z") if shape["z"] else ""
    rest = value.strip()[shape.end():]
    return f"{out} and codes for {rest!r}" if rest else out


def _day_or_month_first(text: pd.Series, day_first: bool | None = None) -> tuple[pd.Series, str, bool | None]:
    """Dates such as 01/02/2015 read both ways: the reading that parses every row, and of two
    that do, ``day_first``'s (a run's own order, where the rows do not tell theirs), else the one
    that lies on a regular grid (monthly 01/MM/2015 read month first would be days 1-12 of each
    month, thousands of days missing); where both fit as well, day first for dates written with
    dots (01.03.2023, as only day-first countries write them), else pandas' own (month first).
    Which reading was used is said, and returned as True (day first), False, or None where the
    two do not differ or neither reads every row."""
    month, day = to_datetime(text, dayfirst=False), to_datetime(text, dayfirst=True)
    month_ok, day_ok = not month.isna().any(), not day.isna().any()
    if not (month_ok and day_ok):
        if day_ok:
            sep = re.match(DAY_MONTH, text.iloc[0])[1]
            return day, f"dates read day first (DD{sep}MM{sep}YYYY): some days are above 12", True
        if not month_ok and day.isna().sum() < month.isna().sum():  # 31.02.2021 among day-first dates: blame it,
            return day, "", None                                    # not the good 13.01.2021 before it
        return month, "", False if month_ok else None
    if (month == day).all():  # day and month equal on every row: nothing to choose
        return month, "", None
    if day_first is not None:  # a few new rows' grid tells less than the run's whole series did
        return (day if day_first else month), "", day_first
    month_gaps, day_gaps = _grid_gaps(month), _grid_gaps(day)
    example = text.iloc[0]
    if month_gaps == day_gaps and re.match(DAY_MONTH, example)[1] == ".":  # 01.03.2023: dots are Europe's, day first
        return day, (f"dates read day first ({example} = {stamp(day.iloc[0])}), as dates written with dots "
                     f"are: month first fits as well; give `date_format` {_format_like(example, 'month')} if "
                     "the month comes first"), True
    if month_gaps == day_gaps:  # a day's hours, say: nothing in the dates tells, so as pandas (and neuralab before)
        return month, (f"dates read month first ({example} = {stamp(month.iloc[0])}), as pandas reads them: "
                       f"day first fits as well; give `date_format` {_format_like(example, 'day')} if the day "
                       "comes first"), False
    first, (chosen, other, gaps) = ("day", (day, "month", month_gaps)) if day_gaps < month_gaps \
        else ("month", (month, "day", day_gaps))
    return chosen, (f"dates read {first} first ({example} = {stamp(chosen.iloc[0])}): read {other} first "
                    f"they leave {gaps:,} timestamps off a regular grid; give `date_format` "
                    f"{_format_like(example, other)} to read them {other} first"), first == "day"


def join_notes(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


MAX_GRID = 10_000_000  # steps of the regular grid a series' gaps are counted (and filled) on


def time_grid(index: pd.DatetimeIndex, report) -> pd.DatetimeIndex | None:
    """The regular time grid the index lives on (counting its gaps into ``report``, a series'
    SeriesReport: its frequency, gaps, largest_gap and gap_examples), or None."""
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
        report.largest_gap = duration(pd.Timedelta(int(steps.max()), "ns"))
        return None
    if weekdays_only and (steps == pd.Timedelta(days=3).value).any():
        grid, report.frequency = pd.bdate_range(index[0], index[-1]), "B"
    elif ((index.asi8 - index.asi8[0]) % step.value == 0).all():
        grid = pd.date_range(index[0], index[-1], freq=step)
        report.frequency = _alias(step)
    else:
        with warnings.catch_warnings():  # pandas 3 warns that infer_freq will return an offset: take its text
            warnings.simplefilter("ignore")  # Pandas4Warning is no FutureWarning
            inferred = pd.infer_freq(index)
        inferred = getattr(inferred, "freqstr", inferred)
        calendar = _month_grid(index) if inferred is None else None
        if calendar is None:
            report.frequency = inferred or "irregular"
            largest = int(steps.max())
            report.largest_gap = duration(pd.Timedelta(largest, "ns"))
            if inferred is None:  # no grid, so no timestamps missing from one: the steps well above the usual
                usual = pd.Timedelta(int(np.median(steps)), "ns")
                long = steps > 1.5 * usual.value
                usual = usual.round("s") if usual >= pd.Timedelta(seconds=10) else usual  # a logger's jitter unsaid
                report.gaps = int(long.sum())
                report.step = duration(usual)
                report.gap_examples = stamps(*index[:-1][long][:5]) if long.any() else []
            else:
                report.gaps = 0
            return None
        report.frequency, grid = calendar  # months on their day, gaps and all: counted on that grid below
    absent = grid.difference(index)
    report.gaps = len(absent)
    if report.gaps:
        report.largest_gap = duration(pd.Timedelta(int(steps.max()), "ns"))
        report.gap_examples = [stamp(t) for t in absent[:5]]
    return grid


# A series one or more months apart on a fixed day other than the 1st or the last (pandas has no alias for
# it: DateOffset(months=n) from its first date), or twice a month on two days other than pandas' SMS and
# SME pairs (the 10th and the 25th), as its frequency is written and read back
MONTHS_ON_DAY = re.compile(r"(?:monthly|every (?P<n>\d+) months) on day (?P<day>\d{1,2})"
                           r"|twice a month on days (?P<first>\d{1,2}) and (?P<second>\d{1,2})")


def months_on_day(frequency: str | None) -> tuple[int, int | tuple[int, int]] | None:
    """(months apart, day of the month) of a frequency such as "monthly on day 15", (1, (10, 25)) of
    "twice a month on days 10 and 25" (its steps are half months: ``on_day``); None for any other."""
    found = MONTHS_ON_DAY.fullmatch(frequency or "")
    if found is None:
        return None
    if found["first"]:
        return 1, (int(found["first"]), int(found["second"]))
    return int(found["n"] or 1), int(found["day"])


def twice_a_month(days: tuple[int, int]) -> str:
    """The frequency of dates on ``days`` (the 10th and the 25th) of every month, as ``months_on_day`` reads it."""
    return f"twice a month on days {days[0]} and {days[1]}"


def on_day(anchor: pd.Timestamp, months, day: int | tuple[int, int]) -> pd.DatetimeIndex:
    """The dates ``months`` (whole numbers) after ``anchor``'s month on ``day``, or on the month's
    last day where it is shorter (the 30th: 28 February, then 30 March), at ``anchor``'s time of day
    and in its zone. ``day`` two days (10, 25), a month's two dates: ``months`` counts half months
    from ``anchor``'s (the 10th's or the 25th's), so that 1 after the 25th is the next month's 10th."""
    # months are counted on the wall clock: a Period drops a zone (and pandas warns so); the zone is put back
    # after, exactly, as the loader's zones are UTC or one fixed offset
    wall = anchor.tz_localize(None)
    steps = np.asarray(months, dtype=np.int64)
    if isinstance(day, tuple):
        halves = 2 * wall.to_period("M").ordinal + int(wall.day > day[0]) + steps
        ordinals, day = halves // 2, np.where(halves % 2 == 0, day[0], day[1])
    else:
        ordinals = wall.to_period("M").ordinal + steps
    periods = pd.PeriodIndex.from_ordinals(ordinals, freq="M")
    days = np.minimum(day, periods.days_in_month.to_numpy()) - 1
    return (periods.to_timestamp() + pd.to_timedelta(days, unit="D") + (wall - wall.normalize())).tz_localize(anchor.tz)


def months_grid(first: pd.Timestamp, last: pd.Timestamp, n: int, day: int | tuple[int, int]) -> pd.DatetimeIndex:
    """Every ``n`` months on ``day`` (``on_day``: two days, twice a month) from ``first``'s month to
    ``last``'s: the grid of a series of months on fixed days, as loading lays it and a run's new rows
    are checked on."""
    span = (last.year * 12 + last.month) - (first.year * 12 + first.month)  # wall-clock months, as on_day's
    if isinstance(day, tuple):  # in half months, from first's half to last's
        span = 2 * span + int(last.day > day[0]) - int(first.day > day[0])
    return on_day(first, np.arange(0, span + 1, n), day)


def _month_grid(index: pd.DatetimeIndex) -> tuple[str, pd.DatetimeIndex] | None:
    """The calendar grid of months that ``index`` (sorted, no repeats) lies on, where equal steps
    do not: every n months on one day (the 15th; the 30th, or the month's end where it is shorter),
    or twice a month (pandas' SMS-15: the 1st and the 15th; SME-15: the 15th and the month's end;
    "twice a month on days 10 and 25" for other days); as (pandas alias or "monthly on day 15", the
    grid from its first date to its last), or None."""
    months = (index.year * 12 + index.month).to_numpy()
    apart = np.diff(months)
    # Twice a month where both days recur: two rows in at least a quarter of the months spanned, so that a
    # monthly series with one extra row (a revision on the 10th) or whose day moved once is no grid of half
    # holes; a whole month missing (one outage) leaves it twice a month, its two gaps counted
    spanned = int(apart.sum()) + 1
    monthly, twice = bool((apart >= 1).all()), len(index) <= 2 * spanned and 4 * int((apart == 0).sum()) >= spanned
    if not (monthly or twice) or (index - index.normalize()).nunique() != 1:  # one time of day throughout
        return None
    if monthly:
        n, day = int(np.gcd.reduce(apart)), int(index.day.max())
        grid = months_grid(index[0], index[-1], n, day)
        if not index.isin(grid).all():
            return None
        if day == 1 or bool(index.is_month_end.all()):  # pandas' own: MS, 3MS, ME (the grid is theirs)
            return ("MS" if day == 1 else "ME") if n == 1 else f"{n}{'MS' if day == 1 else 'ME'}", grid
        return ("monthly" if n == 1 else f"every {n} months") + f" on day {day}", grid
    if index[0] == index[0].normalize():
        for day in sorted(set(index.day) - {1}):
            for alias in (f"SMS-{day}", f"SME-{day}"):
                try:
                    grid = pd.date_range(index[0], index[-1], freq=alias)
                except ValueError:  # SMS takes days 2 to 27
                    continue
                if len(grid) and index.isin(grid).all():
                    return alias, grid
    # any other two days (the 10th and the 25th; the 30th on 28 February), each month's earlier one the
    # same day throughout, which the later one, however short the month, falls after
    days = (int(index.day.min()), int(index.day.max()))
    if days[0] < days[1] and days[0] < 28:
        grid = months_grid(index[0], index[-1], 1, days)
        if index.isin(grid).all():
            return twice_a_month(days), grid
    return None


# Zones whose clock changes a file of local times most likely crossed, in this order of naming; every zone
# of the tz database would take ~30 ms and find a change at some midnight of many dates (an outage's hour)
CLOCK_ZONES = ("Europe/Berlin", "Europe/London", "Europe/Helsinki", "America/New_York", "America/Chicago",
               "America/Denver", "America/Los_Angeles", "Australia/Sydney", "Pacific/Auckland")


def clock_hour(times: pd.DatetimeIndex, step: pd.Timedelta, change: str) -> tuple[pd.Timestamp, str] | None:
    """The start of the one clock hour that ``times`` (missing or doubled timestamps of a grid of
    ``step``) fill exactly, on local clock times without offsets, and the first of CLOCK_ZONES
    whose clocks ``change`` ("skip" as summer time begins, "repeat" as it ends) that hour on that
    date (02:00 on 26 March 2023 in Europe/Berlin). None for any other hour: an outage, or rows
    sent twice, with no guess at a zone."""
    hour = pd.Timedelta(hours=1)
    if times.tz is not None or not len(times) or step > hour or hour % step or len(times) != hour // step:
        return None
    start = times.min()
    if start != start.floor("h") or times.max() >= start + hour:
        return None
    wall = start.to_pydatetime()
    for name in CLOCK_ZONES:  # the whole hour, not a half-hour change's (Lord Howe)
        if all(_changes(wall + datetime.timedelta(minutes=m), zoneinfo.ZoneInfo(name), change) for m in (0, 59)):
            return start, name
    return None


def _changes(wall: datetime.datetime, zone: zoneinfo.ZoneInfo, change: str) -> bool:
    """Whether ``zone``'s clocks skip (or repeat) the wall-clock time ``wall`` by one hour: such a
    time reads with the offset before the change (fold 0) and the one after it (fold 1), the later
    one larger where clocks skip, the earlier where they repeat."""
    first, second = (wall.replace(tzinfo=zone, fold=f).utcoffset() for f in (0, 1))
    return (second - first if change == "skip" else first - second) == datetime.timedelta(hours=1)


def duration(step: pd.Timedelta) -> str:
    """A length of time in words: "7 days", "2 h", "30 min 16 s", not pandas' "0 days 00:30:16"."""
    c = pd.Timedelta(step).components
    seconds = c.seconds + c.milliseconds / 1e3 + c.microseconds / 1e6 + c.nanoseconds / 1e9
    parts = [f"{c.days} day{'s' if c.days != 1 else ''}" if c.days else "", f"{c.hours} h" if c.hours else "",
             f"{c.minutes} min" if c.minutes else "", f"{seconds:g} s" if seconds else ""]
    return " ".join(p for p in parts if p) or "0 s"


def _alias(step: pd.Timedelta) -> str:
    if step % pd.Timedelta(days=1) == pd.Timedelta(0):
        days = step // pd.Timedelta(days=1)
        return "D" if days == 1 else f"{days}D"
    return pd.tseries.frequencies.to_offset(step).freqstr


def stamp(t) -> str:
    return stamps(t)[0]


def stamps(*times) -> list[str]:
    """Days as days, times as times, all in one style: a range of hourly rows from midnight to
    23:00 reads 2023-01-01T00:00:00 .. 2023-04-30T23:00:00, not a day beside a time."""
    times = [pd.Timestamp(t) for t in times]
    if all(t == t.normalize() for t in times):
        return [t.strftime("%Y-%m-%d") for t in times]
    return [t.isoformat() for t in times]
