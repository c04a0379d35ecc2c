"""A space-separated file whose every line is indented, or whose header is right-aligned over its
columns (printed, fixed-width output), read as before R's write.table was handled: the first column
is named as R's row names only where the header starts with a space and the rows do not, one name
short of them. Both were refused with pandas' "Too many columns specified" / "Duplicate names"."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neuralab.data.series import load_series
from neuralab.data.tables import read_table

DAYS = pd.date_range("2020-01-01", periods=60)
VALUES = np.round(20 + np.sin(np.arange(60) / 4) + np.arange(60) / 10, 2)

WRITTEN = {
    "indented": (" date value", lambda i, d, v: f" {d:%Y-%m-%d} {v}"),
    "aligned": ("      date  value", lambda i, d, v: f"{d:%Y-%m-%d}  {v:5.2f}"),
    "r-row-names": (' "date" "value"', lambda i, d, v: f'"{i + 1}" "{d:%Y-%m-%d}" {v}'),
    "r-row-names-unquoted": (" date value", lambda i, d, v: f"{i + 1} {d:%Y-%m-%d} {v}"),
}


@pytest.mark.parametrize("kind", list(WRITTEN))
def test_a_space_separated_file_reads_its_dates_and_values_under_their_names(tmp_path, kind):
    header, row = WRITTEN[kind]
    path = tmp_path / f"{kind}.txt"
    path.write_text("\n".join([header, *(row(i, d, v) for i, (d, v) in enumerate(zip(DAYS, VALUES)))]) + "\n")
    table = read_table(path, sep=" ")[0]
    assert list(table.columns)[-2:] == ["date", "value"] and len(table) == 60
    assert list(table.columns[:-2]) == (["Unnamed: 0"] if kind.startswith("r-") else [])  # R's row numbers
    series = load_series(path, sep=" ")
    assert series.target == "value" and series.features == [] and series.report.frequency == "D"
    assert list(series.times) == list(DAYS) and np.allclose(series.values[:, 0], VALUES)
