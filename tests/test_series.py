"""Series loading: dates, order, duplicates, gaps, missing values, bad cells, built-ins."""

from __future__ import annotations

import gzip
import hashlib

import numpy as np
import pandas as pd
import pytest

from neuralab.data.series import BUILTIN, add_calendar, builtin_path, load_series
from neuralab.errors import NeuralabError


def write(tmp_path, text: str, name: str = "s.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_builtin_series_load_offline_with_their_default_targets():
    sp = load_series("sp500")
    assert sp.target == "Close" and len(sp) == 5031
    assert sp.report.start == "1999-01-04" and sp.report.end == "2018-12-31"
    assert sp.report.frequency == "B" and sp.report.gaps > 100  # market holidays, reported, kept
    weather = load_series("seattle-weather", features=["precipitation", "temp_min", "wind"])
    assert weather.target == "temp_max" and weather.columns == ["temp_max", "precipitation", "temp_min", "wind"]
    assert len(weather) == 1461 and weather.report.frequency == "D" and weather.report.gaps == 0
    assert load_series("nasdaq").frame.index.is_monotonic_increasing


# SHA-256 of each CSV as its source publishes it (the `arch` package's sp500.csv and nasdaq.csv,
# `vega_datasets`' seattle-weather.csv): the files in builtin/ are those, gzipped, unchanged.
PUBLISHED_SHA256 = {
    "sp500": "7c7192df6210a7664388841af540891bcaff7a689107f9cf2eea61676622d67c",
    "nasdaq": "985188bb95e7fec234cd621c3d3350a711f3827cae1c9993a41369fc42f5f8a1",
    "seattle-weather": "5c822be5f9b70c9180dff922d1b43bcfaff89b48250215bef9a4d9465f356a89",
}


def test_builtin_files_are_the_published_files_unchanged():
    assert set(BUILTIN) == set(PUBLISHED_SHA256)
    for name, spec in BUILTIN.items():
        with builtin_path(name).open("rb") as f:
            assert hashlib.sha256(gzip.decompress(f.read())).hexdigest() == PUBLISHED_SHA256[name], spec.file


def test_unsorted_rows_are_sorted_and_reported(tmp_path):
    path = write(tmp_path, "date,v\n2020-01-03,3\n2020-01-01,1\n2020-01-02,2\n2020-01-04,4\n")
    s = load_series(path, "v")
    assert s.frame["v"].tolist() == [1, 2, 3, 4]
    assert s.report.unsorted > 0
    assert any("out of order" in line for line in s.report.lines())


def test_duplicate_timestamps_are_rejected_with_their_lines(tmp_path):
    path = write(tmp_path, "date,v\n2020-01-01,1\n2020-01-02,2\n2020-01-02,5\n2020-01-03,3\n")
    with pytest.raises(NeuralabError, match=r"1 duplicate timestamps, first 2020-01-02 \(lines 3, 4\); pass duplicates first, last or mean"):
        load_series(path, "v")


@pytest.mark.parametrize("policy, value", [("first", 2.0), ("last", 5.0), ("mean", 3.5)])
def test_duplicate_policies(tmp_path, policy, value):
    path = write(tmp_path, "date,v\n2020-01-01,1\n2020-01-02,2\n2020-01-02,5\n2020-01-03,3\n")
    s = load_series(path, "v", duplicates=policy)
    assert s.frame.loc["2020-01-02", "v"] == value and len(s) == 3 and s.report.duplicates == 1


def test_gaps_are_reported_and_kept_or_filled(tmp_path):
    path = write(tmp_path, "date,v\n2020-01-01,1\n2020-01-02,2\n2020-01-05,5\n2020-01-06,6\n")
    kept = load_series(path, "v")
    assert kept.report.gaps == 2 and kept.report.gap_examples == ["2020-01-03", "2020-01-04"] and len(kept) == 4
    filled = load_series(path, "v", gaps="fill", missing="interpolate")
    assert len(filled) == 6 and filled.frame["v"].tolist() == [1, 2, 3, 4, 5, 6]
    with pytest.raises(NeuralabError, match="missing values"):
        load_series(path, "v", gaps="fill")  # filled gaps are missing values, and the default policy is error


def test_business_day_data_counts_holidays_not_weekends(tmp_path):
    days = pd.bdate_range("2021-01-04", periods=10).delete(3)  # drop one weekday
    frame = pd.DataFrame({"Date": days, "Close": np.arange(9.0)})
    s = load_series(frame, "Close")
    assert s.report.frequency == "B" and s.report.gaps == 1


def test_missing_values_policies(tmp_path):
    path = write(tmp_path, "date,v,w\n2020-01-01,,1\n2020-01-02,2,1\n2020-01-03,,1\n2020-01-04,4,\n2020-01-05,5,1\n")
    with pytest.raises(NeuralabError, match=r"3 missing values \(column 'v' has 2, first at 2020-01-01\); pass missing drop"):
        load_series(path, "v", ["w"])
    assert load_series(path, "v", ["w"], missing="drop").frame.index.strftime("%d").tolist() == ["02", "05"]
    ffill = load_series(path, "v", ["w"], missing="ffill")
    assert ffill.frame["v"].tolist() == [2, 2, 4, 5] and ffill.report.dropped == 1  # the leading NaN has no past
    interp = load_series(path, "v", ["w"], missing="interpolate")
    assert interp.frame["v"].tolist() == [2, 3, 4, 5] and interp.report.filled == 2
    assert interp.report.missing == {"v": 2, "w": 1}


def test_non_numeric_cell_names_column_line_and_value(tmp_path):
    path = write(tmp_path, "date,v\n2020-01-01,1\n2020-01-02,abc\n2020-01-03,3\n")
    with pytest.raises(NeuralabError, match=r"line 3: 'abc' in column 'v' is not a number"):
        load_series(path, "v")


def test_bad_date_names_the_line(tmp_path):
    path = write(tmp_path, "date,v\n2020-01-01,1\nnot-a-date,2\n2020-01-03,3\n")
    with pytest.raises(NeuralabError, match=r"line 3: 'not-a-date' in column 'date' is not a date"):
        load_series(path, "v")


def test_unknown_columns_and_files_are_clear_errors(tmp_path):
    path = write(tmp_path, "when,a,b\n2020-01-01,1,2\n2020-01-02,2,3\n2020-01-03,3,4\n")
    with pytest.raises(NeuralabError, match="no date column found.*; pass date_column"):
        load_series(path, "a")
    with pytest.raises(NeuralabError, match="pass target, one of a, b"):
        load_series(path, date_column="when")
    with pytest.raises(NeuralabError, match="column 'c' not in s.csv; columns are when, a, b"):
        load_series(path, "c", date_column="when")
    assert load_series(path, "a", ["b"], date_column="when").columns == ["a", "b"]
    with pytest.raises(NeuralabError, match="no such file and not a built-in series"):
        load_series(tmp_path / "nope.csv")
    with pytest.raises(NeuralabError, match="the file is empty"):
        load_series(write(tmp_path, "", "empty.csv"))
    with pytest.raises(NeuralabError, match=r"missing='zero': choose one of error, drop, ffill, interpolate"):
        load_series(path, "a", missing="zero")


def test_dataframe_source_and_calendar_encodings():
    frame = pd.DataFrame({"v": np.arange(10.0)}, index=pd.date_range("2020-01-01", periods=10, name="date"))
    s = load_series(frame, calendar=["dayofyear", "dayofweek"])
    assert s.target == "v" and s.features == ["dayofyear_sin", "dayofyear_cos", "dayofweek_sin", "dayofweek_cos"]
    assert s.frame["dayofyear_sin"].iloc[0] == 0.0 and s.frame["dayofyear_cos"].iloc[0] == 1.0
    _, added = add_calendar(frame, ["month"])
    assert added == ["month_sin", "month_cos"]
