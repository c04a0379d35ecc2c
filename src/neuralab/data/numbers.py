"""Numbers in text cells as people write them: 1.234,56 and 1,234.56, a decimal comma, an
exponent as Excel writes it (1,5E-05); a cell whose mark the column does not settle is
refused, never guessed (``read_numbers``). ``numeric_column`` makes a chosen column float64, naming
the line and the cell it cannot read and what to do (``why_not_a_number``).

Apart from data.series because a cell reads the same in any column: series chooses which
columns are read.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from neuralab.errors import NeuralabError, ParameterError


# Cells that say a value is missing, read as missing like an empty cell (the `missing` policy fills
# them): pandas' read_csv reads its own (NA, n/a, #N/A, NULL, ...) so in a file, but keeps the dashes
# that spreadsheets and reports write for "none" as text, which made a column of numbers text
MISSING_MARKS = frozenset({"-", "--", "\u2013", "\u2014", "NA", "N/A", "n/a", "#N/A", "#NA", "NULL", "null",
                           "NaN", "nan", "None", "<NA>"})
# A person's marks that are not read as missing: "." and "?" also stand for a value not yet known (a
# logger's "?" is as often a fault), and Excel's #VALUE! is a formula's error; each is named, with its line
NOT_READ_MARKS = (".", "?", "#VALUE!")


def holds_numbers(column: pd.Series) -> bool:
    """Whether ``column`` holds numbers, but for missing cells (empty, or MISSING_MARKS), and at least one."""
    if pd.api.types.is_bool_dtype(column) or column.isna().all():
        return False
    if pd.api.types.is_numeric_dtype(column):
        return True
    values, text, _ = read_numbers(column)  # 1.234,56 or 1,234.56: numbers as a person wrote them
    return values.notna().any() and not (values.isna() & text.notna() & (text != "")).any()


def why_not_a_number(cell: str) -> str:
    """What keeps a cell that a person reads as a number from being one, and what to do about it."""
    cell = str(cell).strip()
    if cell in MISSING_MARKS:  # read as missing: named only in a column that holds no number at all
        return " (a mark for a missing value, and the column holds no number)"
    if cell in NOT_READ_MARKS:
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


# Beyond this a value's square overflows a float64, so no mean, variance or RMSE of it exists.
LARGEST = 1e150


def numeric_column(column: pd.Series, lines: pd.Series, name: str, label: str, parameter: str,
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
        if values.isna().all() and not why_not_a_number(column.iloc[at]):  # words (a category such as 'sun')
            raise ParameterError(parameter, label, f"holds text ({column.iloc[at]!r} on line {lines.iloc[at]} of "
                                                   f"{name}), not numbers; give a column of numbers")
        raise NeuralabError(f"{name}: line {lines.iloc[at]}: {column.iloc[at]!r} in column {label!r} is not a number"
                            f"{why_not_a_number(column.iloc[at])} ({int(bad.sum()):,} such cells); fix the file or "
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
    the stripped text, NA where a cell is missing or a MISSING_MARKS mark; the position of the first cell whose
    decimal mark the column does not settle, or -1).

    The column settles the marks when all its numbers read one way only: 1.234,56 or 0,5 or
    12,5 have a decimal comma, 1,234.56 or 999.87 a decimal point, 1.234.567 groups thousands.
    Where each cell fits both (1.002 and 999: 1002 or 1.002?), ``decimal``, the file's decimal
    mark, settles it only when the file has decimal commas (its points then group thousands) or
    when every number is written with that mark (as a logger writes 12.345 with three decimals);
    otherwise the first such cell is returned as ambiguous, never guessed. A non-breaking space
    (U+00A0, U+202F), as French and Swiss spreadsheets group thousands, reads as a space."""
    text = column.astype("string").str.replace(NO_BREAK, " ", regex=True).str.strip()
    text = text.mask(text.isin(MISSING_MARKS))  # missing, as an empty cell
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


def decimal_marks(column: pd.Series, decimal: str = ".") -> str:
    """"decimal commas and thousands points" or "decimal commas" where ``column``'s numbers,
    written as text, read with a decimal comma (``read_numbers``), as a run says how it read
    a file; "" otherwise. Judged on the cells that usually settle the mark (SETTLE)."""
    if pd.api.types.is_numeric_dtype(column):
        return ""
    text = column.iloc[:SETTLE].astype("string").str.replace(NO_BREAK, " ", regex=True).str.strip()
    cells = text[text.notna() & (text != "") & ~text.isin(MISSING_MARKS)]
    if _decimal_mark(cells, decimal) != ",":
        return ""
    return "decimal commas and thousands points" if cells.str.contains(r"\d\.\d{3}", regex=True).any() \
        else "decimal commas"


NO_BREAK = "[\u00a0\u202f]"  # 12\u202f020,74: Excel's and LibreOffice's thousands in fr and de-CH
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
