"""R's write.table default (spaces between fields, quoted row numbers before each row, a header one
name short): following the refusal's advice, a header that starts with a space, read the row numbers
as the first data column and the dates under 'value', and forecast the row numbers as 'date'."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from neuralab.data.series import load_series
from neuralab.errors import NeuralabError


def r_write_table(path, header: str | None = None):
    """What R's ``write.table(df, path)`` writes for a frame of daily dates and values."""
    days = pd.date_range("2020-01-01", periods=60)
    values = np.round(20 + np.sin(np.arange(60) / 4) + np.arange(60) / 10, 3)
    rows = [f'"{i + 1}" "{d:%Y-%m-%d}" {v}' for i, (d, v) in enumerate(zip(days, values))]
    path.write_text("\n".join([header or '"date" "value"', *rows]) + "\n")
    return days, values


def test_following_the_advice_for_r_row_names_with_spaces_reads_dates_and_values(tmp_path):
    path = tmp_path / "r.txt"
    days, values = r_write_table(path)
    with pytest.raises(NeuralabError) as e:  # the file as R wrote it: its row names have no name
        load_series(path, sep=" ")
    start = re.search(r"add one to the header \(start it with '(.)'\)", str(e.value))[1]
    r_write_table(path, header=start + '"date" "value"')  # the advice, followed
    series = load_series(path, sep=" ")
    assert series.target == "value" and series.features == []
    assert list(series.times) == list(days) and np.allclose(series.values[:, 0], values)
    # the same header unquoted, as write.table(quote=FALSE) and a hand edit write it
    path.write_text(" date value\n" + "".join(f"{i + 1} {d:%Y-%m-%d} {v}\n"
                                                for i, (d, v) in enumerate(zip(days, values))))
    series = load_series(path, sep=" ")
    assert series.target == "value" and np.allclose(series.values[:, 0], values)
    assert series.report.frequency == "D"
