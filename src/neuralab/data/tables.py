"""A CSV file as a table: what its bytes are (compressed, or a file that is no CSV at all), how
its text is encoded and written (separator, decimal mark, an empty field that ends every row),
how many rows it holds and how much memory a forecast of it takes, all judged before pandas
reads it (``sniff_csv``, ``CsvShape``); then the read itself (``read_table``), a built-in
series' packaged file included.

Apart from data.series because a file is read the same way whatever series it holds: series
chooses the columns and cleans the rows read here.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import itertools
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from neuralab.data.dates import DATE_NAMES, TIME_NAMES, WORDS_FOR_DATE
from neuralab.data.series_names import BUILTIN
from neuralab.errors import NeuralabError, ParameterError, closest, did_you_mean
from neuralab.files import marked_encoding


def builtin_path(name: str):
    """The packaged file of built-in series ``name`` (a Traversable inside the wheel)."""
    return resources.files("neuralab.data").joinpath("builtin", BUILTIN[name].file)


SEPARATORS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "bar"}
TEXT_NAMES = {"utf-8": "UTF-8", "utf-8-sig": "UTF-8", "utf-16": "UTF-16", "cp1252": "Windows-1252",
              "latin-1": "Latin-1"}
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
    row_names: bool = False   # the header starts with a separator no row starts with, one name short: R's row names

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
        return self.said()

    def said(self, marks: str = "") -> str:
        """``how``, with ``marks`` for the decimal marks where the values tell more than the file's
        first decimal number (numbers.decimal_marks: "decimal commas and thousands points")."""
        how = SEPARATORS.get(self.separator, repr(self.separator)) + "-separated"
        marks = marks or ("decimal commas" if self.decimal == "," else "")
        if marks:
            how += f" with {marks}"
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
    marked = marked_encoding(head)
    if marked:
        return marked
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):  # text, whose NULs below would call it binary
        raise NeuralabError(f"{path}: text in UTF-32, which neuralab does not read; save it as CSV UTF-8 (comma-separated)")
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
    if sep == "\\t":  # a tab typed as the two characters \t, as a shell passes on '\t'
        sep = "\t"
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
            numbered = [(k + 1, line) for k, line in enumerate(text.splitlines()[:50]) if line.strip()]
            if more and len(numbered) > 1:
                numbered = numbered[:-1]  # the last line may be cut
            lines = [line for _, line in numbered]
            if sep is not None and lines and not any(sep in line for line in lines):
                # read with it, the file is one column, blamed for its dates, not for `sep`. Only a `sep`
                # found in no line is blamed: one that splits some lines unevenly may be right (a trailing
                # separator, a title above the table, a name holding a comma), which later checks name
                seen, steady = _separator(lines)
                if steady and seen != sep:
                    raise ParameterError("sep", sep, f"does not separate the columns of {path} (header "
                                         f"{lines[0].strip()[:60]!r}), which looks {SEPARATORS[seen]}-separated, as "
                                         "it is read without `sep`; leave `sep` out")
            _refuse_title(path, numbered, sep)
            if sep is None and lines:
                sep, _ = _separator(lines)
                if not any(sep in line for line in lines):
                    _refuse_spaced(path, lines)
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
    # R's write.table: ' "date" "value"' over '"1" "2020-01-01" 20.5', the header one name short of the rows
    # as pandas reads them (a line's first spaces skipped). Not a file whose every line is indented (its rows
    # start with the separator too), nor a header right-aligned over its columns ('      date  value')
    padded = [len(r) for r in csv.reader(lines, delimiter=sep, skipinitialspace=True)]
    row_names = (bool(rows_read) and lines[0].startswith(sep) and not any(line.startswith(sep) for line in lines[1:])
                 and all(n - trailing == padded[0] + 1 for n in padded[1:]))
    return CsvShape(max(0, rows - 1), [h.strip() for h in header], sep, decimal or ".", size, encoding, trailing,
                    row_names)


def _separator(lines: list[str]) -> tuple[str, bool]:
    """The separator of ``lines``, a file's first: the one of SEPARATORS that splits every line
    into as many fields as the first, the most of them, else the one the first line holds most;
    and whether it splits every line so."""
    counts = {c: [line.count(c) for line in lines] for c in SEPARATORS}
    steady = [c for c, n in counts.items() if n[0] > 0 and all(k == n[0] for k in n)]
    return max(steady or counts, key=lambda c: counts[c][0]), bool(steady)


def _refuse_title(path: Path, numbered: list[tuple[int, str]], sep: str | None) -> None:
    """Refuse a file whose table starts below a title block (an export's name, a date, a blank
    line: lines with fewer fields than the rows, or with nothing after their first field), naming
    the line where the table starts: read
    from the top, pandas takes the title for the header and fails on the first row, and the
    separator cannot be told from the title's lines."""
    best = unnamed = None
    for c in [sep] if sep is not None else list(SEPARATORS):
        rows = list(csv.reader((line for _, line in numbered), delimiter=c))
        counts = [len(fields) - 1 for fields in rows]
        # the first line from which every line has the same number of separators, at least one
        start = next((i for i in range(min(len(counts) - 2, 10) + 1) if counts[i] > 0 and
                      all(k == counts[i] for k in counts[i:])), None)
        if start == 0:  # Excel pads a title to the table's width (Umsatzbericht;;): the header names a second column
            start = next((i for i, fields in enumerate(rows[:11]) if any(f.strip() for f in fields[1:])), 0)
            if start == 0 or any(_numbers_at(rows[start])):
                return  # a separator reads the whole head as one table
            best = min(best or (start, c), (start, c))
            continue
        if start is None:
            continue
        ends = all(line.rstrip().endswith(c) for _, line in numbered[start:])  # a header without the rows' last
        if start == 1 and ends and counts[0] == counts[1] - 1:                  # empty field: the trailing read
            return
        if start == 1 and counts[0] == counts[1] - 1 and _numbers_at(rows[1]) == _numbers_at(rows[2]):
            # the line under the header is a row like the next: the header is one name short
            unnamed = unnamed or (c, counts[0], _row_names(rows[1:], [line for _, line in numbered[1:]]) or
                                  _dated(rows[0], rows[1:]), rows[1][0].strip(), rows[0])
        if all(k < counts[start] for k in counts[:start]) and (best is None or start < best[0]):
            best = (start, c)
    if unnamed is not None:
        c, n, row_names, first, names = unnamed
        if row_names == "dates":
            header = numbered[0][1].strip()
            taken = {name.strip().lower() for name in names}
            date = next(name for name in DATE_NAMES + ("row_date",) if name not in taken)  # no name twice
            raise NeuralabError(f"{path}: the header (line {numbered[0][0]}) names {n + 1} columns and the rows hold "
                                f"{n + 2}, the first of them dates ({first!r}, ...): that column, a "
                                "frame's row names as R's write.table writes them, has no name; start the header "
                                f"with one ({(date + c + header)[:60]!r}), or write the file with "
                                "row.names=FALSE (the dates as a column of their own)")
        if row_names:
            raise NeuralabError(f"{path}: the header (line {numbered[0][0]}) names {n + 1} columns and the rows hold "
                                f"{n + 2}: their first column, row names as R's write.table and pandas' "
                                "to_csv(index_label=False) write them, has no name; add one to the header (start "
                                f"it with {c!r}) or write the file without row names")
        # which field is the unnamed one (a note after the value, as loggers write) cannot be told: a
        # name put first would shift every column's name one place
        raise NeuralabError(f"{path}: the rows hold {n + 2} fields and the header (line {numbered[0][0]}) names "
                            f"{n + 1}: name every column in the header, in the rows' order")
    if best is not None:
        line, header = numbered[best[0]]
        above = "line" if line == 2 else f"{line - 1} lines"
        raise NeuralabError(f"{path}: the table seems to start at line {line} ({header.strip()[:60]!r}), below a "
                            f"title; delete the {above} above it and give that file")


def _refuse_spaced(path: Path, lines: list[str]) -> None:
    """Refuse a file that no detected separator splits but spaces do, as R's ``write.table``
    writes by default ("date" "y", its rows after their row numbers): read as one column, it
    would be blamed for dates or numbers it does hold. Spaces are never guessed as the separator
    (a time of day, 2015-01-01 12:00, holds one): quoted names, or every line the same number of
    fields, say so here only to name `sep`."""
    fields = [len(r) for r in csv.reader(lines, delimiter=" ", skipinitialspace=True)]
    quoted = lines[0].lstrip().startswith('"') and fields[0] > 1
    if quoted or (fields[0] > 1 and len(set(fields)) == 1 and len(fields) > 1):
        raise NeuralabError(f"{path}: no comma, semicolon, tab or bar separates its columns, and spaces seem to "
                            f"(header {lines[0].strip()[:60]!r}, as R's write.table writes); give `sep` ' ' (a "
                            "space), or write the file with commas")


def _row_names(rows: list[list[str]], lines: list[str]) -> bool:
    """Whether the rows' first fields are row names: 1, 2, 3... (R's write.table; pandas' 0, 1,
    2...; 1, 2, 4... after a filter) or distinct labels in quotes (R's names of a frame's rows). Dates or values there, as
    a file whose unnamed field is the last one holds, are not."""
    first = [r[0].strip() for r in rows if r]
    if all(f.isdigit() for f in first) and first:  # rising, with gaps where rows were filtered out
        return all(int(b) > int(a) for a, b in zip(first, first[1:]))
    quoted = all(line.lstrip().startswith('"') for line in lines)
    return quoted and len(set(first)) == len(first) and not any(_numbers_at(first)) and not any(
        re.match(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}", f) for f in first)


def _dated(header: list[str], rows: list[list[str]]) -> str:
    """"dates" where every row's first field is a date, each a different one, and the other
    fields are numbers, under a ``header`` whose first name is no date column's: a frame's row
    names as R writes a series (its dates, the frame's columns named). Under date,sales the
    dates have their name, and the unnamed field is another after them (a note, or a number as
    a spreadsheet's column without a heading is exported), which cannot be told; else ""."""
    low = header[0].strip().lower() if header else ""
    if low in DATE_NAMES + WORDS_FOR_DATE + TIME_NAMES or "date" in low or "time" in low:
        return ""
    first = [r[0].strip() for r in rows if r]
    dated = all(re.fullmatch(r"\d{4}-\d{2}-\d{2}([ T][\d:.]+)?|\d{1,2}[/.]\d{1,2}[/.]\d{2,4}", f) for f in first)
    numbers = all(all(_numbers_at(r[1:])) for r in rows if r)
    return "dates" if first and dated and numbers and len(set(first)) == len(first) else ""


def _numbers_at(fields: list[str]) -> list[bool]:
    """Which of a line's fields are numbers (1, 100.95, 1.234,5): a header's names are not."""
    return [bool(re.fullmatch(r"[-+]?[\d.,' ]*\d[\d.,' ]*", f.strip())) for f in fields]


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
    refuse_missing(path, text)
    shape = shape or sniff_csv(path, sep)
    options = dict(sep=shape.separator, decimal=shape.decimal, skipinitialspace=True, encoding=shape.encoding,
                   nrows=nrows, dtype=dict.fromkeys(as_text or [], str))
    # A header that starts with the separator leaves its first column (R's row names) unnamed, as
    # ' "date" "value"' does (``CsvShape.row_names``); pandas skips a line's first spaces like those after a
    # separator, so it would take the rows' first field for an index and, with usecols, give each name to the
    # column after its own. Named as pandas names such a column where it sees it (after a comma, a tab), so
    # that row numbers there are no target
    named = shape.separator == " " and shape.row_names
    try:
        if not shape.trailing and not named:
            return pd.read_csv(path, usecols=columns, **options), path.name, 2  # line 1 is the header
        names = list(pd.read_csv(path, **{**options, "nrows": 0}).columns)
        names = ["Unnamed: 0", *names] if named else names
        if not shape.trailing:
            return pd.read_csv(path, header=0, names=names, usecols=columns, **options), path.name, 2
        # A separator ends every row but not the header: the empty last field gets a name, and is checked
        options["dtype"] = {**options["dtype"], TRAILING: str}
        table = pd.read_csv(path, header=0, names=[*names, TRAILING], usecols=[*(columns or names), TRAILING],
                            **options)
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


def refuse_missing(path: Path, text: str) -> None:
    if path.is_dir():
        raise ParameterError("data", text, "is a folder; give a CSV file (or a built-in series)")
    if not path.is_file():
        near = did_you_mean(text, BUILTIN) or _near_file(path)
        raise ParameterError("data", text, f"no such file and not a built-in series; {near}"
                                           f"the built-in ones are {', '.join(BUILTIN)}")


LISTED = 1000  # entries of a folder looked at for a misspelt file's name: a folder of millions is not read through


def _near_file(path: Path) -> str:
    """"did you mean 'data/stations_grids.csv'? " where a file in ``path``'s folder (only there) has
    a name close to its name, else ""."""
    try:
        with os.scandir(path.parent if str(path.parent) else ".") as entries:
            names = [e.name for e in itertools.islice(entries, LISTED) if e.is_file()]
    except OSError:  # no such folder, or not one that may be read
        return ""
    name = closest(path.name, names)
    return f"did you mean {str(path.with_name(name))!r}? " if name else ""
