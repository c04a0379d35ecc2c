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

import codecs
import contextlib
import csv
import itertools
import os
import re
import warnings
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from neuralab.data.series_names import BUILTIN, CALENDAR, DUPLICATES, GAPS, MISSING
from neuralab.data.series_names import BuiltinSeries as BuiltinSeries  # its old import path
from neuralab.errors import NeuralabError, ParameterError

DATE_NAMES = ("date", "datetime", "timestamp", "time", "ds", "day", "date_time", "time_hour", "period")


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
    dates: str = ""                 # how the dates were read, where a choice was made: "dates read day first ..."

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
    where: str = ""              # for errors, where the rows came from: "multi.csv, station = 'C'" of several series

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


def builtin_path(name: str):
    """The packaged file of built-in series ``name`` (a Traversable inside the wheel)."""
    return resources.files("neuralab.data").joinpath("builtin", BUILTIN[name].file)


SEPARATORS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "bar"}
TEXT_NAMES = {"utf-8": "UTF-8", "utf-8-sig": "UTF-8", "utf-16": "UTF-16", "cp1252": "Windows-1252",
              "latin-1": "Latin-1"}
PRICE_TARGETS = ("adj close", "adj_close", "adjclose", "close", "close/last", "price")  # in order of preference
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
    encoding: str = "utf-8"   # of the text, after decompression
    trailing: bool = False    # every row ends with a separator the header does not: an empty last field

    def estimate(self, used: int | None = None) -> int:
        """Bytes a forecasting run needs for this file, ``used`` columns of it read."""
        used = used or len(self.columns)
        return BASE_BYTES + self.rows * (ROW_BYTES + VALUE_BYTES * (used + 2))

    @property
    def plain(self) -> bool:
        """Written as pandas reads a CSV unless told otherwise: commas, decimal points, UTF-8."""
        return self.separator == "," and self.decimal == "." and self.encoding in ("utf-8", "utf-8-sig")

    @property
    def how(self) -> str:
        """How the text is written: "semicolon-separated with decimal commas, Windows-1252 text"."""
        how = SEPARATORS.get(self.separator, repr(self.separator)) + "-separated"
        if self.decimal == ",":
            how += " with decimal commas"
        if self.encoding not in ("utf-8", "utf-8-sig"):
            how += f", {TEXT_NAMES.get(self.encoding, self.encoding)} text"
        return how

    def describe(self, used: int | None = None) -> str:
        return (f"{self.rows:,} rows x {len(self.columns)} columns ({self.bytes_on_disk / 1e6:.1f} MB on disk, "
                f"{self.how}), about {self.estimate(used) / 2**30:.2f} GiB in memory to forecast")


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


COMPRESSED = {".gz": "gzip", ".bz2": "bz2", ".xz": "lzma", ".zip": "zip"}  # what pandas decompresses by suffix
# The first bytes of files that are often renamed .csv or picked by mistake: what they are, and what to do
SIGNATURES = ((b"\x89PNG", "a PNG image"), (b"%PDF", "a PDF document"), (b"\xff\xd8\xff", "a JPEG image"),
              (b"\xd0\xcf\x11\xe0", "an Excel 97-2003 workbook (.xls)"),
              (b"PK\x03\x04", "an Excel workbook (.xlsx) or another zip archive"))
DECIMAL_CELL = re.compile(rb"(?:^|[;\t|])[ \"]*-?\d+[.,]\d+[ \"]*(?=[;\t|\r\n]|$)", re.M)
DECIMAL_POINT = re.compile(rb"(?:^|[;\t|])[ \"]*-?\d+\.\d+[ \"]*(?=[;\t|\r\n]|$)", re.M)
TRAILING = "_trailing"  # the name of the empty field after a row's last separator
SAMPLE, BLOCK = 1 << 16, 1 << 24  # bytes: the head that the encoding and separator are judged on; a read's size


@contextlib.contextmanager
def _open_bytes(path: Path):
    """The bytes pandas will read: a compressed file's content, not its compressed bytes."""
    kind = COMPRESSED.get(path.suffix.lower())
    with contextlib.ExitStack() as stack:
        if kind == "gzip":
            import gzip
            yield stack.enter_context(gzip.open(path, "rb"))
        elif kind == "bz2":
            import bz2
            yield stack.enter_context(bz2.open(path, "rb"))
        elif kind == "lzma":
            import lzma
            yield stack.enter_context(lzma.open(path, "rb"))
        elif kind == "zip":
            import zipfile
            archive = stack.enter_context(zipfile.ZipFile(path))
            names = [n for n in archive.namelist() if not n.endswith("/")]
            if len(names) != 1:
                raise NeuralabError(f"{path}: a zip archive of {len(names)} files; pandas reads one CSV per archive, "
                                    "so unpack it and give the CSV")
            yield stack.enter_context(archive.open(names[0]))
        else:
            yield stack.enter_context(open(path, "rb"))


def _damaged() -> tuple[type[Exception], ...]:
    """What a truncated or corrupt compressed file raises while it is read (bz2's errors are OSError)."""
    import lzma
    import zipfile
    import zlib

    return OSError, EOFError, zipfile.BadZipFile, lzma.LZMAError, zlib.error


def _encoding(path: Path, head: bytes, cut: bool = False) -> str:
    """How the text is encoded: UTF-8 (with or without its mark), UTF-16 with its mark, or
    Windows-1252 (what Excel's plain "CSV" writes on Windows); a file that is no text is refused.
    ``cut``: more of the file follows ``head``, whose last character may be cut in two."""
    for magic, what in SIGNATURES:
        if head.startswith(magic):
            if magic == b"PK\x03\x04" and path.suffix.lower() == ".zip":
                break
            raise NeuralabError(f"{path}: {what}, not a CSV file; open it in its program and save or export it as "
                                "CSV UTF-8 (comma-separated), then give that file")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    if head.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    if b"\x00" in head:
        raise NeuralabError(f"{path}: binary data, not a CSV text file; save it as CSV UTF-8 (comma-separated)")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        if not (cut and e.start >= len(head) - 3):  # not a UTF-8 character cut at the end of the sample
            try:
                head.decode("cp1252")
                return "cp1252"
            except UnicodeDecodeError:
                return "latin-1"
    return "utf-8"


def sniff_csv(path: Path, sep: str | None = None) -> CsvShape:
    """The separator (given, or the one that splits the first lines into the same number of
    fields), decimal commas (looked for up to the first decimal number), the encoding, the
    header and the number of rows, read without loading the file; a compressed file's content
    is what is sniffed."""
    if sep is not None and (len(sep) != 1 or sep in "\r\n\"."):
        raise ParameterError("sep", sep, "give one character that separates the columns, such as , or ;")
    size = path.stat().st_size
    with open(path, "rb") as f:
        magic = f.read(8)
    if path.suffix.lower() in COMPRESSED and not magic.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"PK\x03\x04")):
        raise NeuralabError(f"{path}: named {path.suffix} but not compressed that way; give the file its real name")
    try:
        with _open_bytes(path) as f:
            head = f.read(SAMPLE)
            more = f.read(BLOCK)
            encoding = _encoding(path, head, cut=bool(more))
            text = head.decode(encoding, errors="replace")
            lines = [line for line in text.splitlines()[:50] if line.strip()]
            if more and len(lines) > 1:
                lines = lines[:-1]  # the last line may be cut
            if sep is None and lines:
                counts = {c: [line.count(c) for line in lines] for c in SEPARATORS}
                steady = [c for c, n in counts.items() if n[0] > 0 and all(k == n[0] for k in n)]
                sep = max(steady or counts, key=lambda c: counts[c][0])
            # Whole numbers may fill the first lines, so decimals are looked for block by block until
            # one is found; past that the rows are only counted (a regex over 100 MB takes seconds).
            wide = encoding == "utf-16"
            decoder = codecs.getincrementaldecoder(encoding)("replace") if wide else None  # the regexes read bytes
            decimal = "." if sep in (",", None) else None
            # Old Macs end lines with a CR alone, which pandas reads as lines too: counting only
            # LFs made a file of millions of rows one row, and let it past the memory estimate
            ending = b"\r" if b"\r" in head and b"\n" not in head + more[:1] else b"\n"
            rows, last, tail = 0, b"", b""
            for block in filter(None, itertools.chain((head, more), iter(lambda: f.read(BLOCK), b""))):
                rows += block.count(ending)
                last = block[-2:]
                if decimal is None:
                    sample = tail + (decoder.decode(block).encode("utf-8") if wide else block)
                    decimal = _decimal(sample)
                    tail = sample[sample.rfind(b"\n") + 1:][-256:]  # a cell cut at the block's end
    except _damaged() as e:
        raise NeuralabError(f"{path}: cannot be read ({e}); the file is damaged or not what its name says") from None
    if last and not last.endswith(ending) and not (wide and last in (ending + b"\x00", b"\x00" + ending)):
        rows += 1  # a last line without its newline
    if not lines:
        return CsvShape(0, [], sep or ",", ".", size, encoding)
    header, *rows_read = csv.reader(lines, delimiter=sep)
    trailing = bool(rows_read) and all(len(r) == len(header) + 1 and r[-1] == "" for r in rows_read)
    return CsvShape(max(0, rows - 1), [h.strip() for h in header], sep, decimal or ".", size, encoding, trailing)


def _decimal(sample: bytes) -> str | None:
    """"," or "." as the first number with decimals in ``sample`` writes it, unless the 64 KB from
    its line on hold a decimal point (then commas there are no decimals); None if it holds none."""
    if b"," not in sample and b"." not in sample:  # whole numbers only: no regex over the block
        return None
    first = DECIMAL_CELL.search(sample)
    if first is None:
        return None
    start = sample.rfind(b"\n", 0, first.start()) + 1
    return "." if DECIMAL_POINT.search(sample, start, first.end() + SAMPLE) else ","


def read_table(source: str | os.PathLike | pd.DataFrame, sep: str | None = None,
               columns: list[str] | None = None, shape: CsvShape | None = None,
               nrows: int | None = None, as_text: list[str] | None = None) -> tuple[pd.DataFrame, str, int]:
    """The raw table, a display name and the offset from row position to file line.
    A DataFrame's DatetimeIndex becomes its first column (named ``date`` if unnamed); its
    column names are read as text (0 and "0" name the same column).
    ``columns`` reads only those (a large file's other columns never take memory); ``as_text``
    columns of a file are kept as written, for ``read_numbers`` to read 1.234,56 as people do."""
    if isinstance(source, pd.DataFrame):
        if isinstance(source.index, pd.DatetimeIndex):
            source = source.rename_axis(source.index.name or "date").reset_index()
        else:
            source = source.reset_index(drop=source.index.name is None)
        return source.rename(columns=str), "DataFrame", 0
    text = str(source)
    if text in BUILTIN:
        with builtin_path(text).open("rb") as f:
            return pd.read_csv(f, compression="gzip", usecols=columns), text, 2
    path = Path(source)
    _refuse_missing(path, text)
    shape = shape or sniff_csv(path, sep)
    options = dict(sep=shape.separator, decimal=shape.decimal, skipinitialspace=True, encoding=shape.encoding,
                   nrows=nrows, dtype=dict.fromkeys(as_text or [], str))
    try:
        if not shape.trailing:
            return pd.read_csv(path, usecols=columns, **options), path.name, 2  # line 1 is the header
        # A separator ends every row but not the header: the empty last field gets a name, and is checked
        names = [*pd.read_csv(path, **{**options, "nrows": 0}).columns, TRAILING]
        options["dtype"] = {**options["dtype"], TRAILING: str}
        table = pd.read_csv(path, header=0, names=names, usecols=[*(columns or names[:-1]), TRAILING], **options)
    except pd.errors.EmptyDataError:
        raise NeuralabError(f"{path}: the file is empty; give a CSV with a header and rows") from None
    except UnicodeDecodeError as e:  # the encoding was judged on the first 64 KB: the rest says otherwise
        where = _undecodable(path, shape.encoding)
        where = f"from {where} on" if where else f"({e.reason})"
        raise NeuralabError(f"{path}: not {TEXT_NAMES.get(shape.encoding, shape.encoding)} text {where}; save it as "
                            "CSV UTF-8 and give that file") from None
    except (pd.errors.ParserError, ValueError) as e:
        first = str(e).strip().splitlines()[-1]
        raise NeuralabError(f"{path}: not a readable CSV ({first}); it was read as "
                            f"{SEPARATORS.get(shape.separator, shape.separator)}-separated: give `sep` if that is "
                            "wrong") from None
    filled = table[TRAILING].notna().to_numpy()
    if filled.any():
        at = int(np.flatnonzero(filled)[0])
        raise NeuralabError(f"{path}: line {at + 2} has a value after its last column ({table[TRAILING].iloc[at]!r}), "
                            "where the other rows end with an empty field; name that column in the header or "
                            "remove the value")
    return table.drop(columns=TRAILING), path.name, 2


def _undecodable(path: Path, encoding: str) -> str:
    """Where the file stops being ``encoding`` text: "line 1,204 (byte 0xE9)"; "" if it does not."""
    decoder = codecs.getincrementaldecoder(encoding)()
    line = 1
    with _open_bytes(path) as f:
        for block in iter(lambda: f.read(BLOCK), b""):
            pending = decoder.getstate()[0]  # a character's first bytes, left from the block before
            try:
                decoder.decode(block)
            except UnicodeDecodeError as e:  # e.start counts from the pending bytes
                data = pending + block
                line += data.count(b"\n", len(pending), e.start)
                return f"line {line:,} (byte 0x{data[e.start]:02X})"
            line += block.count(b"\n")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return f"line {line:,} (its end)"
    return ""


def _refuse_missing(path: Path, text: str) -> None:
    if path.is_dir():
        raise ParameterError("data", text, "is a folder; give a CSV file (or a built-in series)")
    if not path.is_file():
        raise ParameterError("data", text, f"no such file and not a built-in series ({', '.join(BUILTIN)})")


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
                     announce=None, suggest_series: bool = True) -> list[Series]:
    """``load_series`` for a file that may hold several series: one ``Series`` per value of
    ``series_column`` (each cleaned on its own: its duplicates, gaps and missing values), or
    the one series when ``series_column`` is None. ``announce`` (print, say) is told what is
    being loaded and how much memory it will take before anything large is read.
    ``suggest_series``: duplicate timestamps suggest `series_column` and `where` (False where
    the caller has fixed which series is read)."""
    for parameter, names in (("features", features), ("calendar", calendar)):
        if isinstance(names, str):  # each letter would be taken for a column or an encoding
            raise ParameterError(parameter, names, f"give a list of names, e.g. [{names!r}]")
    for name in calendar:
        _choose("calendar", name, tuple(CALENDAR))
    _choose("missing", missing, MISSING)
    _choose("duplicates", duplicates, DUPLICATES)
    _choose("gaps", gaps, GAPS)
    where_column, where_value = parse_where(where)
    builtin = BUILTIN.get(str(source)) if not isinstance(source, pd.DataFrame) else None
    shape, columns = None, None
    if not isinstance(source, pd.DataFrame) and builtin is None:
        path = Path(source)
        _refuse_missing(path, str(source))
        shape = sniff_csv(path, sep)
        if not shape.columns:
            raise NeuralabError(f"{path}: the file is empty; give a CSV with a header and rows")
        sample, name, _ = read_table(path, shape=shape, nrows=1000)
        if len(sample) == 0:
            raise NeuralabError(f"{name}: a header ({', '.join(map(str, sample.columns[:20]))}) and no data rows; "
                                "give a CSV with rows under its header")
        _refuse_headless(sample, name)
        wanted = _choose_columns(sample, name, target, features, date_column, date_format, series_column,
                                 where_column)
        date, value, inputs, group, filtered, clock = wanted
        columns = list(dict.fromkeys(c for c in [date, clock, value, *inputs, group, filtered] if c is not None))
        estimate = shape.estimate(len(columns))
        if announce is not None:
            announce(f"loading {name}: {shape.describe(len(columns))}")
        free = available_memory()
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
    decimal = shape.decimal if shape is not None else "."
    many = [_clean(part, label, target, features, date_column, date_format, missing, duplicates, gaps, calendar,
                   single=series_column is None and suggest_series, decimal=decimal, time_column=clock,
                   sep=shape.separator if shape is not None else ",")
            for label, part in groups]
    if series_column is not None:
        for series in many:
            series.where = f"{name}, {series_column} = {series.name!r}"
    if shape is not None and not shape.plain:
        for series in many:
            series.report.read_as = shape.how
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


def parse_where(where: str | None) -> tuple[str | None, str | None]:
    """"station=C" -> ("station", "C"); None -> (None, None)."""
    if where is None:
        return None, None
    column, eq, value = str(where).partition("=")
    if not eq or not column.strip():
        raise ParameterError("where", where, "write it as COLUMN=VALUE, e.g. station=SEATTLE")
    return column.strip(), value.strip()


def _choose_columns(table: pd.DataFrame, name: str, target, features, date_column, date_format, series_column,
                    where_column, builtin=None):
    """The table's spelling of every column a run uses, with the defaults filled in:
    (date column, target, features, series column, where column, time-of-day column or None)."""
    columns = list(table.columns)
    series_column = resolve_column(series_column, columns, "series_column", name) if series_column else None
    where_column = resolve_column(where_column, columns, "where", name) if where_column else None
    if date_column is not None:
        date_column = resolve_column(date_column, columns, "date_column", name)
    else:
        date_column = builtin.date_column if builtin else _find_date_column(table, name, date_format)
    clock = _time_of_day_column(table, date_column, date_format)  # part of the dates, no value
    skip = {date_column, clock, series_column, where_column}
    if target is not None:
        target = resolve_column(target, columns, "target", name)
    else:
        target = builtin.target if builtin else _default_target(table, skip, name)
    # names that find one column ("temp", "Temp") count once: a column twice is the same input twice
    features = [f for f in dict.fromkeys(resolve_column(f, columns, "features", name) for f in features) if f != target]
    for column in [target, *features]:
        if column == date_column:
            raise ParameterError("target" if column == target else "features", column,
                                 "is the date column; choose a value column")
    return date_column, target, features, series_column, where_column, clock


def _clean(table: pd.DataFrame, name: str, target: str, features: list[str], date_column: str, date_format,
           missing: str, duplicates: str, gaps: str, calendar, single: bool = True, decimal: str = ".",
           time_column: str | None = None, sep: str = ",") -> Series:
    report = SeriesReport(duplicate_policy=duplicates, missing_policy=missing)
    # ';' and 01.01.2022 are how a day-first locale writes a file, and there 5.008 is five thousand as often
    points_group = sep == ";" and decimal == "." and bool(
        table[date_column].astype("string").str.strip().str.fullmatch(r"\d{1,2}\.\d{1,2}\.\d{2,4}(?:[ T].*)?").all())
    times, report.dates = _parse_dates(table[date_column], table["_line"], name, date_column, date_format)
    if time_column is not None:  # Date;Time;... as loggers write (the household power data): one timestamp
        times = times + _times_of_day(table[time_column], table["_line"], name, time_column).to_numpy()
        report.dates = _join(f"dates and times from columns {date_column!r} and {time_column!r}", report.dates)
    frame = pd.DataFrame({"_time": times.to_numpy(), "_line": table["_line"].to_numpy()})
    for column in [target, *features]:
        parameter = "target" if column == target else "features"
        frame[column] = _numeric(table[column], table["_line"], name, column, parameter, decimal,
                                 points_group).to_numpy()
    order = np.argsort(frame["_time"].to_numpy(), kind="stable")
    report.unsorted = int((order != np.arange(len(order))).sum())
    frame = frame.iloc[order].reset_index(drop=True)
    frame = _resolve_duplicates(frame, duplicates, report, name, single)
    frame = frame.set_index("_time").drop(columns="_line")
    try:
        frame.index = frame.index.as_unit("ns")
    except pd.errors.OutOfBoundsDatetime:
        raise NeuralabError(f"{name}: dates from {' to '.join(_stamps(frame.index[0], frame.index[-1]))} in column "
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
    report.start, report.end = _stamps(frame.index[0], frame.index[-1])
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


TIME_OF_DAY = r"(?:[01]?\d|2[0-4]):[0-5]\d(?::[0-5]\d(?:\.\d+)?)?"  # 17:24, 17:24:00, 17:24:00.5 (47:30 is no time)
TIME_NAMES = ("time", "hour", "clock", "time of day", "heure", "uhrzeit", "zeit", "hora", "ora", "tijd", "tid")


def _time_of_day_column(table: pd.DataFrame, date_column: str, date_format: str | None) -> str | None:
    """The column that holds the times of day of a date column written without them (Date;Time
    as loggers write), or None: without it, a day's many rows were duplicate timestamps. Only a
    column named as a time, only where the dates repeat (a day's many rows), and only where the
    times rise within each day, as a logger writes them (a run's 0:45:12 is a duration); not
    where ``date_format`` reads a time itself."""
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
        if bool((since.groupby(day.to_numpy(), sort=False).diff().dropna() > pd.Timedelta(0)).all()):
            return column
    return None


def _times_of_day(column: pd.Series, lines: pd.Series, name: str, label: str) -> pd.Series:
    """17:24 or 17:24:00 as durations since midnight; a cell that is none is refused by its line."""
    text = column.astype("string").str.strip()
    bad = ~text.str.fullmatch(TIME_OF_DAY).fillna(False)
    if bad.any():
        at = int(np.flatnonzero(bad.to_numpy())[0])
        cell = "an empty cell" if pd.isna(text.iloc[at]) or not text.iloc[at] else repr(text.iloc[at])
        raise NeuralabError(f"{name}: line {lines.iloc[at]}: {cell} in column {label!r} is not a time of day "
                            "(HH:MM or HH:MM:SS); every row needs one")
    return pd.to_timedelta(text.where(text.str.count(":") == 2, text + ":00"))


def _find_date_column(table: pd.DataFrame, name: str, date_format: str | None = None) -> str:
    """The column that holds the dates: of the columns whose values parse as timestamps
    (text, not plain numbers: a ``day`` of 1..31 is no date), the one named date/time/...,
    then one whose name contains "date" or "time", then the first."""
    sample = table.head(200)
    parsed, excel = {}, set()
    for column in table.columns:
        values = sample[column].dropna()
        low = str(column).strip().lower()
        if pd.api.types.is_numeric_dtype(values) and not values.empty and date_format in (None, "%s") and \
                (low in DATE_NAMES or "time" in low or "date" in low or "epoch" in low) and _epoch_unit(values):
            parsed[str(column)] = 1.0  # whole epoch seconds under a date's name: a date, unlike a `day` of 1..31
            continue
        if pd.api.types.is_numeric_dtype(values) and date_format is None and low in ("date", "datetime") and \
                _excel_days(values):  # a logger's `timestamp` of 30,000 seconds since boot is no Excel day
            parsed[str(column)] = 1.0  # Excel's days under a date's own name (not a `downtime` of 30,100)
            excel.add(str(column))
            continue
        if values.empty or _holds_numbers(values) or pd.api.types.is_bool_dtype(values):
            continue  # 1.002,51 would parse as a date
        text = values.astype("string").str.strip()
        ok = float(_to_datetime(text, format=date_format)[0].notna().mean())  # quiet: no dates warn element-wise
        looks = text.str.fullmatch(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}([ T].*)?").mean()
        if ok >= 0.5 or looks >= 0.9 or str(column).strip().lower() in DATE_NAMES:
            parsed[str(column)] = ok  # dates in an unexpected format get their own error, with a hint
    if not parsed:
        raise NeuralabError(f"no column of {name} holds dates (columns: {_names(table)}); name the column as "
                            "`date_column`, and give `date_format` if its dates are written unusually")

    def rank(column: str) -> tuple:
        low = column.strip().lower()
        named = 0 if low in DATE_NAMES else 1 if ("date" in low or "time" in low) else 2
        clock = bool(sample[column].dropna().astype("string").str.strip().str.fullmatch(TIME_OF_DAY).all())
        # a time of day alone is the last choice, Excel's numbers the one before: dates written as dates win
        return clock, column in excel, named, -parsed[column], list(parsed).index(column)

    return min(parsed, key=rank)


def _default_target(table: pd.DataFrame, skip: set, name: str) -> str:
    """The only numeric column, or the closing price in price data; else a clear error. Columns
    that hold nothing (after a separator that ends the header) and the row numbers that pandas'
    ``to_csv`` writes as an unnamed first column are no candidates."""
    numeric = [str(c) for c in table.columns if c not in skip and _holds_numbers(table[c])
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
        values, text, _ = read_numbers(table[column])
        bad = values.isna() & text.notna() & (text != "")
        if bad.any():
            at = int(np.flatnonzero(bad.to_numpy())[0])
            where = f"row {at}" if name == "DataFrame" else f"line {at + 2}"  # a file: line 1 is the header
            reasons.append(f"{where}: {text.iloc[at]!r} in column {str(column)!r} is not a number"
                           f"{_why_not_a_number(text.iloc[at])}")
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
                _holds_numbers(text.str.replace(CURRENCY, "", regex=True)):
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
               f"number{_why_not_a_number(text.iloc[at])})")
        fix = "write the prices as plain numbers"
    if len(numeric) == 1:
        rest, other = f"the only numeric column is {numeric[0]!r}", f"{numeric[0]!r} as `target` to forecast it"
    else:
        rest, other = f"the numeric columns are {', '.join(numeric[:20])}", "one of those as `target`"
    raise NeuralabError(f"{name}: column{'s' if plural else ''} {columns} {why}, and {rest}; {fix}, or give {other}")


def _holds_numbers(column: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(column) or column.isna().all():
        return False
    if pd.api.types.is_numeric_dtype(column):
        return True
    values, text, _ = read_numbers(column)  # 1.234,56 or 1,234.56: numbers as a person wrote them
    return not (values.isna() & text.notna() & (text != "")).any()


def _row_numbers(name, column: pd.Series) -> bool:
    """Whether ``column`` is the 0, 1, 2, ... that pandas' ``to_csv`` writes as "Unnamed: 0"."""
    return bool(re.fullmatch(r"Unnamed: \d+", str(name))) and pd.api.types.is_integer_dtype(column) and \
        bool((column.to_numpy() == np.arange(len(column))).all())


def _why_not_a_number(cell: str) -> str:
    """What keeps a cell that a person reads as a number from being one, and what to do about it."""
    cell = str(cell).strip()
    if cell in ("-", ".", "--", "?", "n/a", "N/A", "#N/A", "#VALUE!"):
        return " (a mark for a missing value: leave the cell empty instead)"
    if re.fullmatch(r"[-+]?\d{1,3}([,.' ]\d{3})+([.,]\d+)?", cell):
        return " (thousands separators: write the numbers without them)"
    if cell.endswith("%"):
        return " (a percent sign: write the number alone)"
    if re.fullmatch(r"[-+]?\s*[$€£¥]\s*[-+]?[\d.,]+|[-+]?[\d.,]+\s*[$€£¥]|\(\s*[$€£¥]?[\d.,]+\)", cell):
        return " (a currency sign or accounting brackets: write the number alone)"
    if re.fullmatch(r"[-+]?\d+,\d+", cell):
        return (" (a decimal comma, where the file was read with decimal points: write all its numbers one way; "
                "in a comma-separated file, give `sep`)")
    return ""


DAY_MONTH = r"\d{1,2}([/.-])\d{1,2}\1\d{2,4}([ T].*)?"  # 01/02/2015: the 1st of February, or the 2nd of January
# The parts of such a date and its time, each with the strftime code that reads it
DATE_SHAPE = re.compile(r"\d{1,2}(?P<sep>[/.-])\d{1,2}[/.-](?P<year>\d{2,4})"
                        r"(?:(?P<T>[ T])\d{1,2}:\d{2}(?P<S>:\d{2})?(?P<f>\.\d+)?(?P<p> ?[AaPp][Mm])?"
                        r"(?P<z> ?(?:Z|[+-]\d{2}:?\d{2}))?)?")
EPOCH_RANGES = (("s", 1e8, 4.2e9), ("ms", 1e11, 4.2e12))  # 1973 to 2103, in seconds or milliseconds


EXCEL_ORIGIN = "1899-12-30"  # Excel's day 0, as its serial numbers count (44927 is 2023-01-01)
EXCEL_DAYS = (25569, 73051)     # 1970-01-01 to 2099-12-31: a date column saved from Excel as General


def _excel_days(values: pd.Series) -> bool:
    """Whether every value is one of Excel's serial day numbers from 1970 to 2099 (a fraction
    is the time of day): dates a spreadsheet saved as numbers."""
    v = pd.to_numeric(values, errors="coerce")
    return not (v.empty or v.isna().any() or pd.api.types.is_bool_dtype(values)) and \
        EXCEL_DAYS[0] <= v.min() and v.max() <= EXCEL_DAYS[1]


def _epoch_unit(values: pd.Series) -> str | None:
    """"s" or "ms" when every value is a whole number of Unix epoch seconds (or milliseconds)
    between 1973 and 2103; None otherwise (a day of the month, a year, YYYYMMDD are not)."""
    v = pd.to_numeric(values, errors="coerce")
    if v.isna().any() or v.empty or pd.api.types.is_bool_dtype(values) or (v % 1 != 0).any():
        return None
    return next((unit for unit, lo, hi in EPOCH_RANGES if lo <= v.min() and v.max() <= hi), None)


def _to_datetime(text: pd.Series, **options) -> tuple[pd.Series, str]:
    """pandas' reading, quietly (no UserWarning on stderr); UTC offsets that change within the
    column (summer time) are all converted to UTC, the one time line both readings share."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            return pd.to_datetime(text, errors="coerce", **options), ""
        except (ValueError, TypeError):  # mixed UTC offsets, or what pandas cannot read at all
            pass
        try:
            parsed = pd.to_datetime(text, errors="coerce", utc=True, **options)
        except (ValueError, TypeError):
            return pd.Series(pd.NaT, index=text.index), ""
        return parsed, "times with changing UTC offsets, converted to UTC"


def _grid_gaps(parsed: pd.Series) -> int:
    index = pd.DatetimeIndex(parsed.dropna().unique()).sort_values()
    report = SeriesReport()
    _grid(index, report)
    return report.gaps + (len(parsed) - len(index))  # a reading that makes duplicates is less regular too


def _parse_dates(column: pd.Series, lines: pd.Series, name: str, label: str,
                 date_format: str | None = None) -> tuple[pd.Series, str]:
    """The column as timestamps, and how they were read when that is worth saying ("" if not)."""
    if isinstance(column.dtype, pd.DatetimeTZDtype):  # a DataFrame's zone-aware times: one time line, as above
        return column.dt.tz_convert("UTC"), "" if str(column.dt.tz) == "UTC" else f"times in {column.dt.tz} converted to UTC"
    if pd.api.types.is_datetime64_dtype(column):
        return column, ""
    if pd.api.types.is_numeric_dtype(column) and date_format in (None, "%s"):
        unit = _epoch_unit(column)
        if unit is not None:
            what = "seconds" if unit == "s" else "milliseconds"
            return pd.to_datetime(column.astype(np.int64), unit=unit), f"dates read as Unix epoch {what} (UTC)"
        if date_format is None and _excel_days(column):
            days = pd.to_datetime(column.astype(np.float64), unit="D", origin=EXCEL_ORIGIN).dt.round("s")
            return days, "dates read as Excel's serial day numbers (days since 1899-12-30)"
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
    if date_format is None and bool(dates.str.fullmatch(DAY_MONTH).all()):
        parsed, note = _day_or_month_first(dates)
    else:
        parsed, note = _to_datetime(dates, format=None if date_format == "%s" else date_format)
    if parsed.isna().any():
        at = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        value = dates.iloc[at]
        hint = ""
        if date_format:
            hint = f" (`date_format` is {date_format!r})"
            if DATE_SHAPE.match(value):
                like = _format_like(value, _first(dates, date_format))
                if like != date_format:
                    hint = f" (`date_format` is {date_format!r}; values like this one take {like})"
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
    return parsed, note


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


def _day_or_month_first(text: pd.Series) -> tuple[pd.Series, str]:
    """Dates such as 01/02/2015 read both ways: the reading that parses every row, and of two
    that do, the one that lies on a regular grid (monthly 01/MM/2015 read month first would be
    days 1-12 of each month, thousands of days missing); where both fit as well, day first for
    dates written with dots (01.03.2023, as only day-first countries write them), else pandas'
    own (month first). Which reading was used is said."""
    month, month_note = _to_datetime(text, dayfirst=False)
    day, day_note = _to_datetime(text, dayfirst=True)
    month_ok, day_ok = not month.isna().any(), not day.isna().any()
    if not (month_ok and day_ok):
        if day_ok:
            sep = re.match(DAY_MONTH, text.iloc[0])[1]
            return day, _join(f"dates read day first (DD{sep}MM{sep}YYYY): some days are above 12", day_note)
        if not month_ok and day.isna().sum() < month.isna().sum():  # 31.02.2021 among day-first dates: blame it,
            return day, day_note                                    # not the good 13.01.2021 before it
        return month, month_note
    if (month == day).all():  # day and month equal on every row: nothing to choose
        return month, month_note
    month_gaps, day_gaps = _grid_gaps(month), _grid_gaps(day)
    example = text.iloc[0]
    if month_gaps == day_gaps and re.match(DAY_MONTH, example)[1] == ".":  # 01.03.2023: dots are Europe's, day first
        return day, _join(f"dates read day first ({example} = {_stamp(day.iloc[0])}), as dates written with dots "
                          f"are: month first fits as well; give `date_format` {_format_like(example, 'month')} if "
                          "the month comes first", day_note)
    if month_gaps == day_gaps:  # a day's hours, say: nothing in the dates tells, so as pandas (and neuralab before)
        return month, _join(f"dates read month first ({example} = {_stamp(month.iloc[0])}), as pandas reads them: "
                            f"day first fits as well; give `date_format` {_format_like(example, 'day')} if the day "
                            "comes first", month_note)
    first, (chosen, note, other, gaps) = ("day", (day, day_note, "month", month_gaps)) if day_gaps < month_gaps \
        else ("month", (month, month_note, "day", day_gaps))
    return chosen, _join(f"dates read {first} first ({example} = {_stamp(chosen.iloc[0])}): read {other} first "
                         f"they leave {gaps:,} timestamps off a regular grid; give `date_format` "
                         f"{_format_like(example, other)} to read them {other} first", note)


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


# Beyond this a value's square overflows a float64, so no mean, variance or RMSE of it exists.
LARGEST = 1e150


def _numeric(column: pd.Series, lines: pd.Series, name: str, label: str, parameter: str,
             decimal: str = ".", points_group: bool = False) -> pd.Series:
    """``column`` as float64; ``parameter`` (target, features) is what chose it; ``decimal`` is
    the file's decimal mark, for numbers written as text (``read_numbers``); ``points_group``:
    the file is written as where a point groups thousands, so that a column of 5.008 alone is
    no logger's three decimals but ambiguous."""
    if pd.api.types.is_numeric_dtype(column):
        values, text = pd.to_numeric(column, errors="coerce"), column.astype("string")
    else:
        values, text, ambiguous = read_numbers(column, decimal)
        why = ""
        if ambiguous < 0 and points_group:
            thousands = text.str.fullmatch(r"[-+]?[1-9]\d{0,2}\.\d{3}").fillna(False).to_numpy(bool)
            given = (text.notna() & (text != "")).to_numpy(bool)
            if given.any() and thousands[given].all():
                ambiguous = int(np.flatnonzero(given)[0])
                why = " (in a semicolon-separated file with dates such as 01.01.2022, a point groups thousands as often)"
        if ambiguous >= 0:
            cell = text.iloc[ambiguous]
            mark = "a decimal point" if "." in cell else "a decimal comma"
            grouped, decimal_read = re.sub(r"[.,' ]", "", cell), re.sub(r"[' ]", "", cell).replace(",", ".")
            raise NeuralabError(f"{name}: line {lines.iloc[ambiguous]}: {cell!r} in column {label!r} reads as "
                                f"{grouped} (a thousands separator) or as {decimal_read} ({mark}), and no number "
                                f"in the column tells which{why}; write the numbers without thousands separators, or "
                                "one of them with one or two decimals (12.5), which only a decimal mark reads")
    bad = values.isna() & text.notna() & (text.str.strip() != "")
    if bad.any():
        at = int(np.flatnonzero(bad.to_numpy())[0])
        if values.isna().all() and not _why_not_a_number(column.iloc[at]):  # words (a category such as 'sun')
            raise ParameterError(parameter, label, f"holds text ({column.iloc[at]!r} on line {lines.iloc[at]} of "
                                                   f"{name}), not numbers; give a column of numbers")
        raise NeuralabError(f"{name}: line {lines.iloc[at]}: {column.iloc[at]!r} in column {label!r} is not a number"
                            f"{_why_not_a_number(column.iloc[at])} ({int(bad.sum()):,} such cells); fix the file or "
                            "leave the cell empty to mark it missing")
    values = values.astype(np.float64)
    huge = ~np.isfinite(values.to_numpy()) & values.notna().to_numpy() | (np.abs(values.to_numpy()) > LARGEST)
    if huge.any():
        at = int(np.flatnonzero(huge)[0])
        raise NeuralabError(f"{name}: line {lines.iloc[at]}: '{column.iloc[at]}' in column {label!r} is not a finite "
                            f"number of usable size (|value| up to {LARGEST:.0e}; {int(huge.sum()):,} such cells); fix "
                            "the file or leave the cell empty to mark it missing")
    return values


# A number whose decimal mark is "," (thousands ".", "'" or a space) or "." (thousands ","): 1.234,5 / 1,234.5;
# an exponent, as Excel writes small numbers (1,5E-05), only without thousands separators: 1.234E-05
# is one and a bit, never 1234E-05
WRITTEN = {",": re.compile(r"[-+]?(?:[1-9]\d{0,2}(?:([.' ])\d{3})(?:\1\d{3})*(?:,\d+)?|\d*(?:,\d+)?(?:[eE][-+]?\d+)?)"),
           ".": re.compile(r"[-+]?(?:[1-9]\d{0,2}(?:([,' ])\d{3})(?:\1\d{3})*(?:\.\d+)?|\d*(?:\.\d+)?(?:[eE][-+]?\d+)?)")}


def read_numbers(column: pd.Series, decimal: str = ".") -> tuple[pd.Series, pd.Series, int]:
    """Numbers written as text, as people write them: (float values, NaN where a cell is no number;
    the stripped text; the position of the first cell whose
    decimal mark the column does not settle, or -1).

    The column settles the marks when all its numbers read one way only: 1.234,56 or 0,5 or
    12,5 have a decimal comma, 1,234.56 or 999.87 a decimal point, 1.234.567 groups thousands.
    Where each cell fits both (1.002 and 999: 1002 or 1.002?), ``decimal``, the file's decimal
    mark, settles it only when the file has decimal commas (its points then group thousands) or
    when every number is written with that mark (as a logger writes 12.345 with three decimals);
    otherwise the first such cell is returned as ambiguous, never guessed."""
    text = column.astype("string").str.strip()
    cells = text[text.notna() & (text != "")]
    mark = _decimal_mark(cells.iloc[:SETTLE], decimal)
    if mark not in (",", "."):  # the first rows do not settle it: the whole column may
        mark = _decimal_mark(cells, decimal)
    if mark is None:  # a cell that is no number (12%): the others read with the mark most of them fit,
        # so that the caller names that cell, not a good 0,25 (a tie: the file's mark)
        fits = {m: int(cells.str.fullmatch(WRITTEN[m]).sum()) for m in (decimal, "," if decimal == "." else ".")}
        mark = max(fits, key=fits.get)
    if mark in ("", None):  # 12, 1e5, or no numbers at all (the caller says which cell and why)
        return pd.to_numeric(text, errors="coerce"), text, -1
    if not isinstance(mark, str):
        return pd.to_numeric(text, errors="coerce"), text, int(text.index.get_indexer([mark])[0])
    grouping = r"[.' ]" if mark == "," else r"[,' ]"
    normal = text
    grouped = text.str.contains(grouping, regex=True).fillna(False)
    if grouped.any():  # only whole groups of three are grouping: 1.2345,6 is no number
        normal = text.mask(grouped & ~text.str.fullmatch(WRITTEN[mark]).fillna(False)).str.replace(grouping, "",
                                                                                                   regex=True)
    if mark == ",":
        normal = normal.str.replace(",", ".", regex=False)
    return pd.to_numeric(normal, errors="coerce"), text, -1


SETTLE = 10_000  # cells that usually settle a column's decimal mark; only a column they do not is read whole


def _decimal_mark(cells: pd.Series, decimal: str):
    """"," or "." where ``cells`` settle the decimal mark (``read_numbers``), "" where no cell has a
    mark, None where they do not read as numbers either way, else the label of an ambiguous cell."""
    marked = cells.str.contains(r"\d[.,' ]\d", regex=True)
    if not marked.any():
        return ""
    fits = {mark: bool(cells.str.fullmatch(pattern).all()) for mark, pattern in WRITTEN.items()}
    if fits[","] != fits["."]:
        return "," if fits[","] else "."
    if not fits[","]:
        return None
    marks = set(cells[marked].str.extract(r"([.,])", expand=False).dropna())  # each marked cell: 1.002 or 5,678
    if not marks:  # only spaces or apostrophes (1 234, 1'234): whole numbers, grouped, whichever the mark
        return decimal
    if marks == {"."} and decimal == ",":
        return ","
    if marks == {decimal} and marked.all():
        return decimal
    return cells[marked].index[0]


def _resolve_duplicates(frame: pd.DataFrame, policy: str, report: SeriesReport, name: str,
                        single: bool = True) -> pd.DataFrame:
    repeated = frame["_time"].duplicated(keep="first")
    report.duplicates = int(repeated.sum())
    if not report.duplicates:
        return frame
    if policy == "error":
        when = frame["_time"][repeated].iloc[0]
        lines = frame["_line"][frame["_time"] == when].tolist()
        several = SEVERAL if single else ""
        raise NeuralabError(f"{name}: {report.duplicates:,} duplicate timestamps, first {_stamp(when)} "
                            f"(lines {', '.join(map(str, lines[:5]))}); pass `duplicates` first, last or mean{several}")
    if policy == "mean":
        return frame.groupby("_time", as_index=False, sort=True).mean()
    return frame.drop_duplicates("_time", keep=policy)


# What a file of duplicate timestamps may be; left out where the caller fixed which series is read (`suggest_series`)
SEVERAL = ("; if the file holds several series (one per station, say), name their column as `series_column` or pick "
           "one with `where`")
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
        with warnings.catch_warnings():  # pandas 3 warns that infer_freq will return an offset: take its text
            warnings.simplefilter("ignore")  # Pandas4Warning is no FutureWarning
            inferred = pd.infer_freq(index)
        inferred = getattr(inferred, "freqstr", inferred)
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


def calendar_holes(times: pd.DatetimeIndex, frequency: str) -> SeriesReport | None:
    """The timestamps missing from ``times`` on the calendar grid of ``frequency`` (a pandas
    alias, months included, where ``_grid`` lays equal steps), as a report whose last line says
    them; None where none are missing, or where the times lie on no such grid."""
    if len(times) < 2:
        return None
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
        return SeriesReport(frequency=frequency, gaps=int(cells - len(times)), gap_examples=_stamps(*after[:3]),
                            largest_gap=_duration(times.to_series().diff().max()))
    absent = grid.difference(times)
    if not len(absent) or not times.isin(grid).all():
        return None
    return SeriesReport(frequency=frequency, gaps=len(absent), gap_examples=_stamps(*absent[:3]),
                        largest_gap=_duration(times.to_series().diff().max()))


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
    return _stamps(t)[0]


def _stamps(*times) -> list[str]:
    """Days as days, times as times, all in one style: a range of hourly rows from midnight to
    23:00 reads 2023-01-01T00:00:00 .. 2023-04-30T23:00:00, not a day beside a time."""
    times = [pd.Timestamp(t) for t in times]
    if all(t == t.normalize() for t in times):
        return [t.strftime("%Y-%m-%d") for t in times]
    return [t.isoformat() for t in times]


def report_dict(series: Series) -> dict:
    return {"name": series.name, "target": series.target, "features": series.features, **asdict(series.report)}
