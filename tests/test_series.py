"""Series loading: dates, order, duplicates, gaps, missing values, bad cells, built-ins."""

from __future__ import annotations

import gzip
import hashlib

import numpy as np
import pandas as pd
import pytest

from neuralab.data.series import BUILTIN, add_calendar, load_series, load_series_list
from neuralab.data.tables import builtin_path
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
    with pytest.raises(NeuralabError, match=r"1 duplicate timestamps, first 2020-01-02 \(lines 3, 4\).*pass duplicates first"):
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
    # the dates gaps fill adds have no values, and the default policy is error: named as such, not as the file's
    with pytest.raises(NeuralabError, match=r"^s.csv: 2 dates that gaps fill added to the D grid \(first at "
                                            r"2020-01-03\) have no values; pass missing ffill or interpolate"):
        load_series(path, "v", gaps="fill")


def test_gaps_filled_on_market_data_are_named_as_added_not_as_empty_cells(tmp_path):
    """The S&P 500 with `gaps` fill blamed its 185 holidays on "empty cells and '-' meaning zero",
    which the file does not have; where it also has an empty cell, both are named."""
    with pytest.raises(NeuralabError) as e:
        load_series("sp500", "Close", gaps="fill")
    said = str(e.value)
    assert said.startswith("sp500: 185 dates that gaps fill added to the business-day grid (first at 1999-01-18, on "
                           "a market's calendar most likely its holidays) have no values; pass missing ffill or "
                           "interpolate to fill them, or gaps keep"), said
    assert "empty cells" not in said and "'-'" not in said
    frame = load_series("sp500", "Close").frame[["Close"]].iloc[:40].copy()
    frame.iloc[5, 0] = np.nan
    frame.to_csv(tmp_path / "closes.csv")
    with pytest.raises(NeuralabError, match=r"^closes.csv: 1 missing values \(column 'Close' has 1, first at "
                                            r"1999-01-11; empty cells.*write 0\), and 2 dates that gaps fill added "
                                            r"to the business-day grid \(first at 1999-01-18"):
        load_series(tmp_path / "closes.csv", "Close", gaps="fill")


def test_business_day_data_counts_holidays_not_weekends(tmp_path):
    days = pd.bdate_range("2021-01-04", periods=10).delete(3)  # drop one weekday
    frame = pd.DataFrame({"Date": days, "Close": np.arange(9.0)})
    s = load_series(frame, "Close")
    assert s.report.frequency == "B" and s.report.gaps == 1


def test_dropped_rows_leave_the_grid_of_the_rows_that_remain(tmp_path):
    # closes laid on calendar days, the weekends' cells empty (as a daily export writes them): dropped,
    # they leave the business days the same rows without those lines are, market holidays and all
    closes = load_series("sp500", "Close").frame[["Close"]].iloc[:60]
    days = pd.date_range(closes.index[0], closes.index[-1], freq="D", name="Date")
    closes.reindex(days).to_csv(tmp_path / "calendar.csv")
    closes.to_csv(tmp_path / "closes.csv")
    dropped = load_series(tmp_path / "calendar.csv", "Close", missing="drop").report
    clean = load_series(tmp_path / "closes.csv", "Close").report
    assert dropped.dropped == len(days) - len(closes) and dropped.rows == clean.rows
    assert dropped.frequency == clean.frequency == "B"
    assert (dropped.gaps, dropped.gap_examples, dropped.largest_gap) == (clean.gaps, clean.gap_examples,
                                                                         clean.largest_gap)


def test_missing_values_policies(tmp_path):
    path = write(tmp_path, "date,v,w\n2020-01-01,,1\n2020-01-02,2,1\n2020-01-03,,1\n2020-01-04,4,\n2020-01-05,5,1\n")
    with pytest.raises(NeuralabError, match=r"3 missing values \(column 'v' has 2, first at 2020-01-01;.*pass missing drop"):
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
    assert load_series(path, "a").date_column == "when"  # the column that parses as dates
    with pytest.raises(NeuralabError, match="has 2 numeric columns; choose one: a, b"):
        load_series(path, date_column="when")
    with pytest.raises(NeuralabError, match="target='c': no such column in s.csv; columns are when, a, b"):
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
    assert s.target == "v" and s.calendar == ["dayofyear_sin", "dayofyear_cos", "dayofweek_sin", "dayofweek_cos"]
    assert s.features == [] and s.columns == ["v", *s.calendar]
    assert s.frame["dayofyear_sin"].iloc[0] == 0.0 and s.frame["dayofyear_cos"].iloc[0] == 1.0
    _, added = add_calendar(frame, ["month"])
    assert added == ["month_sin", "month_cos"]


def test_semicolons_and_decimal_commas_are_detected_and_said(tmp_path):
    path = write(tmp_path, "Datum;Temp;Wind\n2020-01-01;1,5;3,25\n2020-01-02;-2,75;4,0\n2020-01-03;0,5;1,0\n")
    s = load_series(path, "temp", date_column="datum")  # names match ignoring case
    assert s.target == "Temp" and s.frame["Temp"].tolist() == [1.5, -2.75, 0.5]
    assert s.report.read_as == "semicolon-separated with decimal commas"
    assert "read as semicolon-separated with decimal commas" in s.report.lines()
    tabs = write(tmp_path, "date\tv\n2020-01-01\t1.5\n2020-01-02\t2.5\n2020-01-03\t3.5\n", "t.tsv")
    assert load_series(tabs).frame["v"].tolist() == [1.5, 2.5, 3.5] and load_series(tabs).report.read_as == \
        "tab-separated"
    assert load_series(write(tmp_path, "date|v\n2020-01-01|1\n2020-01-02|2\n", "b.csv"), sep="|").target == "v"


def test_day_first_dates_are_read_day_first_and_the_report_says_so(tmp_path):
    path = write(tmp_path, "date,v\n01/02/2012,1\n13/01/2012,2\n14/01/2012,3\n")
    s = load_series(path, "v")  # only the day-first reading takes 13/01
    assert s.report.start == "2012-01-13" and s.report.end == "2012-02-01"  # 01/02 is the 1st of February
    assert "dates read day first" in s.report.dates
    assert load_series(path, "v", date_format="%d/%m/%Y").report.end == "2012-02-01"
    bad = write(tmp_path, "date,v\n01/02/2012,1\n13/13/2012,2\n14/01/2012,3\n", "bad.csv")  # neither reading
    with pytest.raises(NeuralabError, match=r"'13/13/2012' in column 'date' is not a date; give date_format, e.g. %d/%m/%Y"):
        load_series(bad, "v")


def test_date_column_prefers_timestamps_over_integer_columns(tmp_path):
    rows = "\n".join(f"2013,1,{d},{h},2013-01-{d:02d} {h:02d}:00:00,{10 + h}" for d in (1, 2) for h in range(3))
    path = write(tmp_path, "year,month,day,hour,time_hour,temp\n" + rows + "\n")
    s = load_series(path, "temp")  # `day` is 1..31, an integer: not the date
    assert s.date_column == "time_hour" and len(s) == 6
    with pytest.raises(NeuralabError, match="no column of .* holds dates"):
        load_series(write(tmp_path, "a,b\n1,2\n3,4\n", "nodate.csv"))


def test_default_target_close_in_prices_and_a_list_when_unclear(tmp_path):
    prices = write(tmp_path, "Date,Open,High,Low,Close,Volume\n2020-01-02,1,2,0.5,1.5,100\n"
                             "2020-01-03,1.5,2,1,1.8,120\n2020-01-06,1.8,2.1,1.7,2.0,90\n", "p.csv")
    assert load_series(prices).target == "Close"
    assert load_series(prices, "close").target == "Close"
    two = write(tmp_path, "date,a,b\n2020-01-01,1,2\n2020-01-02,2,3\n", "two.csv")
    with pytest.raises(NeuralabError, match="has 2 numeric columns; choose one: a, b"):
        load_series(two)


def test_values_too_large_or_infinite_are_refused_with_line_and_column(tmp_path):
    path = write(tmp_path, "date,v\n2020-01-01,1\n2020-01-02,1e300\n2020-01-03,3\n")
    with pytest.raises(NeuralabError, match=r"line 3: .*1e\+?300.* in column 'v' is not a finite number"):
        load_series(path)
    with pytest.raises(NeuralabError, match=r"line 2: 'inf' in column 'v' is not a finite number"):
        load_series(write(tmp_path, "date,v\n2020-01-01,inf\n2020-01-02,2\n", "inf.csv"))


def test_several_series_in_one_file_by_column_or_where(tmp_path):
    weather = load_series("seattle-weather", features=["temp_min", "wind"]).frame
    long = pd.concat([pd.DataFrame({"station": name, "date": weather.index.strftime("%Y-%m-%d"),
                                    "temp": weather[column].to_numpy()})
                      for name, column in [("MAX", "temp_max"), ("MIN", "temp_min"), ("WIND", "wind")]])
    path = tmp_path / "three.csv"
    long.to_csv(path, index=False)
    with pytest.raises(NeuralabError, match="duplicate timestamps.*series_column.*where"):
        load_series(path, "temp")
    many = load_series_list(path, "temp", series_column="Station")
    assert [s.name for s in many] == ["MAX", "MIN", "WIND"] and all(len(s) == 1461 for s in many)
    np.testing.assert_allclose(many[1].frame["temp"], weather["temp_min"])
    one = load_series(path, "temp", where="station=MIN")
    np.testing.assert_allclose(one.frame["temp"], weather["temp_min"])
    with pytest.raises(NeuralabError, match="no row has station = 'HOT'; its values include MAX, MIN, WIND"):
        load_series(path, "temp", where="station=HOT")
    with pytest.raises(NeuralabError, match="COLUMN=VALUE"):
        load_series(path, "temp", where="station")


def test_what_would_not_fit_is_refused_up_front_with_an_estimate(tmp_path, monkeypatch):
    from neuralab.data import tables

    path = write(tmp_path, "date,v\n" + "".join(f"2020-01-01 {h:02d}:00,{h}\n" for h in range(24)))
    said = []
    assert len(load_series(path, announce=said.append)) == 24
    assert said[0].startswith("loading s.csv: 24 rows x 2 columns") and "GiB in memory" in said[0]
    monkeypatch.setattr(tables, "available_memory", lambda: 100 << 20)
    monkeypatch.setattr(tables, "BASE_BYTES", 200 << 20)
    with pytest.raises(NeuralabError, match=r"24 rows would need about 0\.2 GiB of memory and 0\.1 GiB is available"):
        load_series(path)


def test_dates_outside_what_a_timestamp_holds_are_a_clear_error(tmp_path):
    path = write(tmp_path, "date,v\n1620-01-01,1\n1620-01-02,2\n1620-01-03,3\n")
    with pytest.raises(NeuralabError, match="dates from 1620-01-01 .* between 1678 and 2261"):
        load_series(path)


def test_a_few_rows_far_apart_are_counted_not_laid_on_a_grid_of_billions(tmp_path):
    """Five rows at one-second steps, five centuries apart: the grid their gaps are counted on
    would hold 15.8 billion steps (the command asked for 21 GB and stopped with MemoryError)."""
    path = tmp_path / "sparse.csv"
    path.write_text("date,v\n1700-01-01 00:00:00,1\n1700-01-01 00:00:01,2\n1700-01-01 00:00:02,3\n"
                    "2200-01-01 00:00:00,4\n2200-01-01 00:00:01,5\n")
    s = load_series(path)
    assert s.report.frequency == "s" and s.report.gaps == 15_778_454_397 and len(s.frame) == 5
    with pytest.raises(NeuralabError, match="filling its 15,778,454,397 missing steps of s would make a series"):
        load_series(path, gaps="fill")


def test_monthly_day_first_dates_with_every_day_below_13_take_the_regular_reading(tmp_path):
    """01/01/2015, 01/02/2015, ...: month first they are days 1-12 of each month, 2,473 days missing."""
    months = pd.date_range("2015-01-01", periods=96, freq="MS")
    path = write(tmp_path, "date,sales\n" + "".join(f"{d:%d/%m/%Y},{20 + i % 12}\n" for i, d in enumerate(months)))
    s = load_series(path)
    assert s.report.frequency == "MS" and s.report.gaps == 0 and s.report.end == "2022-12-01"
    assert s.report.dates.startswith("dates read day first (01/01/2015 = 2015-01-01): read month first they leave "
                                     "2,473 timestamps off") and s.report.dates in s.report.lines()
    us = write(tmp_path, "date,v\n" + "".join(f"{d:%m/%d/%Y},{i}\n" for i, d in
                                              enumerate(pd.date_range("2021-01-01", periods=40))), "us.csv")
    assert load_series(us).report.end == "2021-02-09"  # month first where that is the only reading


def test_utc_offsets_that_change_with_summer_time_are_read_as_one_utc_time_line(tmp_path):
    times = pd.date_range("2021-03-26", periods=120, freq="h", tz="Europe/Paris")
    text = "time,v\n" + "".join(f"{t.isoformat()},{20 + np.sin(i / 5):.3f}\n" for i, t in enumerate(times))
    assert "+01:00" in text and "+02:00" in text
    path = write(tmp_path, text)
    for fmt in (None, "%Y-%m-%dT%H:%M:%S%z"):
        s = load_series(path, date_format=fmt)
        assert len(s) == 120 and s.report.frequency == "h" and s.report.gaps == 0
        assert s.times[0] == pd.Timestamp("2021-03-25 23:00", tz="UTC") and "converted to UTC" in s.report.dates
    frame = pd.DataFrame({"v": np.arange(120.0)}, index=times)  # a zone-aware DataFrame too
    s = load_series(frame)
    assert len(s) == 120 and s.report.gaps == 0 and s.report.dates == "times in Europe/Paris converted to UTC"


@pytest.mark.parametrize("cell, why", [
    ("-", "a mark for a missing value"), ("12.3%", "a percent sign"), ("$10.00", "a currency sign")])
def test_a_file_without_numbers_says_which_cell_is_not_one_and_why(tmp_path, cell, why):
    rows = [f"2021-01-{d:02d},{cell if d == 1 else ''}" for d in range(1, 5)]
    path = write(tmp_path, "date,price\n" + "\n".join(rows) + "\n")
    with pytest.raises(NeuralabError) as e:
        load_series(path)
    assert str(e.value).startswith("s.csv: no column holds numbers to forecast; line 2: ")
    assert "in column 'price' is not a number (" + why in str(e.value) and "None" not in str(e.value)


@pytest.mark.parametrize("unit, scale", [("seconds", 1), ("milliseconds", 1000)])
def test_unix_epoch_timestamps_are_dates(tmp_path, recwarn, unit, scale):
    days = pd.date_range("2021-01-01", periods=30)
    epoch = (days - pd.Timestamp("1970-01-01")) // pd.Timedelta(seconds=1) * scale
    path = write(tmp_path, "timestamp,value\n" + "".join(f"{e},{1000 + i}\n" for i, e in enumerate(epoch)))
    s = load_series(path)
    assert s.date_column == "timestamp" and s.report.start == "2021-01-01" and s.report.frequency == "D"
    assert s.report.dates == f"dates read as Unix epoch {unit} (UTC)"
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]  # nothing leaks to stderr


def test_files_that_are_no_utf8_csv_say_what_they_are(tmp_path):
    text = "Datum;Temperatur °C\n" + "".join(f"2021-01-{d:02d};{d / 2:.1f}\n" for d in range(1, 21))
    latin = tmp_path / "latin.csv"
    latin.write_bytes(text.encode("cp1252"))
    s = load_series(latin)  # Excel's plain "CSV" on Windows
    assert s.target == "Temperatur °C" and "Windows-1252 text" in s.report.read_as and len(s) == 20
    wide = tmp_path / "wide.csv"
    wide.write_bytes(text.replace(";", ",").encode("utf-16"))
    assert load_series(wide).target == "Temperatur °C"
    png = tmp_path / "chart.csv"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    with pytest.raises(NeuralabError, match=r"chart.csv: a PNG image, not a CSV file; .* save or export it as CSV UTF-8"):
        load_series(png)
    book = tmp_path / "book.xlsx"
    book.write_bytes(b"PK\x03\x04" + bytes(200))
    with pytest.raises(NeuralabError, match=r"book.xlsx: an Excel workbook"):
        load_series(book)
    with pytest.raises(NeuralabError, match=r"data='.*': is a folder; give a CSV file"):
        load_series(tmp_path)


def test_a_gzipped_csv_is_sized_by_what_it_holds(tmp_path):
    from neuralab.data.tables import sniff_csv

    rows = "".join(f"2021-01-01 {h // 60 % 24:02d}:{h % 60:02d},{h % 7};{h}\n" for h in range(5000))
    path = tmp_path / "m.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write("time,v;w\n" + rows)
    shape = sniff_csv(path)
    assert shape.rows == 5000 and shape.columns == ["time", "v;w"] and shape.separator == ","


def test_decimal_commas_after_many_whole_numbers_are_found(tmp_path):
    lines = [f"2021-01-01 {i // 60:02d}:{i % 60:02d};{900 + i}" for i in range(60)] + ["2021-01-01 01:00;972,80"]
    s = load_series(write(tmp_path, "date;v\n" + "\n".join(lines) + "\n"))
    assert s.frame["v"].iloc[-1] == 972.8 and s.report.read_as == "semicolon-separated with decimal commas"


def test_header_without_rows_integer_column_names_and_a_short_series_of_several(tmp_path):
    with pytest.raises(NeuralabError, match=r"s.csv: a header \(date, value\) and no data rows"):
        load_series(write(tmp_path, "date,value\n"))
    days = pd.date_range("2021-01-01", periods=30)
    s = load_series(pd.DataFrame({0: days, 1: np.arange(30.0)}))
    assert s.date_column == "0" and s.target == "1" and len(s) == 30
    from neuralab.forecasting.windows import WindowConfig, prepare_many

    rows = [f"{d:%Y-%m-%d},A,{i}" for i, d in enumerate(days)] + [f"{d:%Y-%m-%d},C,{i}" for i, d in enumerate(days[:4])]
    many = load_series_list(write(tmp_path, "date,station,temp\n" + "\n".join(rows) + "\n", "multi.csv"),
                            "temp", series_column="station")
    with pytest.raises(NeuralabError, match=r"^multi.csv, station = 'C': 4 rows is fewer than lookback 5"):
        prepare_many(many, WindowConfig(lookback=5))


def test_a_damaged_compressed_file_is_one_line(tmp_path):
    import bz2
    import lzma
    import zipfile

    from neuralab.data.tables import sniff_csv

    text = b"date,value\n" + b"".join(b"2020-01-%02d,%d\n" % (d, d) for d in range(1, 29))
    whole = tmp_path / "ok.zip"
    with zipfile.ZipFile(whole, "w") as z:
        z.writestr("x.csv", text)
    assert sniff_csv(whole).rows == 28
    damaged = {"trunc.zip": whole.read_bytes()[:60], "bad.csv.xz": lzma.compress(text)[:40] + bytes(40),
               "bad.csv.bz2": bz2.compress(text)[:30] + bytes(30), "cut.csv.gz": gzip.compress(text)[:30]}
    for name, data in damaged.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(NeuralabError, match=rf"/{name}: cannot be read \(.*\); the file is damaged or not what"):
            load_series(tmp_path / name)


def test_decimals_are_settled_by_the_first_decimal_numbers_and_the_rest_only_counted(tmp_path, monkeypatch):
    """The regexes stop at the first block with a decimal number: they took 2.5 s on 126 MB."""
    from neuralab.data import tables

    monkeypatch.setattr(tables, "SAMPLE", 1024)  # many blocks in a small file
    monkeypatch.setattr(tables, "BLOCK", 4096)
    rows = [f"2021-01-01 {i // 60:02d}:{i % 60:02d};{i}" for i in range(1200)]
    rows[300] = "2021-01-01 05:00;972,80"
    rows[-1] = "2021-01-01 19:59;1.5"  # blocks after the first decimal number are not searched
    path = write(tmp_path, "date;v\n" + "\n".join(rows) + "\n")
    searched = []
    monkeypatch.setattr(tables, "_decimal", lambda sample, f=tables._decimal: searched.append(1) or f(sample))
    shape = tables.sniff_csv(path)
    assert shape.decimal == "," and shape.rows == 1200
    assert len(searched) == 3  # the head and the blocks up to the one holding 972,80, of 7


def test_encodings_judged_on_what_the_file_holds(tmp_path):
    from neuralab.data.tables import sniff_csv

    # a small Windows-1252 file whose only accent is in its last line: no character is cut there
    rows = "".join(f"2020-01-{d:02d},{d},Paris\n" for d in range(1, 28))
    small = tmp_path / "end.csv"
    small.write_bytes(("date,value,city\n" + rows + "2020-01-28,3,Café\n").encode("cp1252"))
    assert sniff_csv(small).encoding == "cp1252" and len(load_series(small, "value")) == 28
    # UTF-8 for 64 KB, then a Windows-1252 byte: the message says where, not "give sep"
    rows = "".join(f"2020-01-{1 + i // 24:02d} {i % 24:02d}:00,{i},{'x' * 100}\n" for i in range(700))
    late = tmp_path / "late.csv"
    late.write_bytes(("date,value,note\n" + rows).encode() + "2020-02-01 00:00,3,Zürich\n".encode("cp1252"))
    with pytest.raises(NeuralabError, match=r"/late.csv: not UTF-8 text from line 702 \(byte 0xFC\) on; save it as "
                                            r"CSV UTF-8 and give that file$"):
        load_series(late, "value")
    # Excel's "Unicode text" where the decimal mark is a comma: UTF-16, tabs, decimal commas
    wide = tmp_path / "u16.txt"
    wide.write_bytes(("date\tvalue\n" + "".join(f"2020-01-{d:02d}\t{d},5\n" for d in range(1, 29))).encode("utf-16"))
    s = load_series(wide)
    assert s.frame["value"].iloc[:2].tolist() == [1.5, 2.5] and s.report.read_as == \
        "tab-separated with decimal commas, UTF-16 text"


@pytest.mark.parametrize("encoding", ["utf-32", "utf-32-be"])
def test_a_csv_in_utf_32_is_said_to_be_that_text(tmp_path, encoding):
    """Its mark says what it is: before, its NULs had it refused as binary data, no text at all."""
    import codecs

    text = "date,value\n" + "".join(f"2020-01-{d:02d},{d}\n" for d in range(1, 29))
    path = tmp_path / "s32.csv"
    path.write_bytes(text.encode(encoding) if encoding == "utf-32" else codecs.BOM_UTF32_BE + text.encode(encoding))
    with pytest.raises(NeuralabError) as e:
        load_series(path, "value")
    assert str(e.value) == f"{path}: text in UTF-32, which neuralab does not read; save it as CSV UTF-8 (comma-separated)"


def test_dates_that_read_as_well_both_ways_are_read_month_first_and_the_hint_fits_their_shape(tmp_path):
    path = write(tmp_path, "date,value\n" + "".join(f"01/02/2015 {h:02d}:00,{h}\n" for h in range(24)))
    s = load_series(path)  # one day's hours: the 1st of February or the 2nd of January alike
    assert s.report.start == "2015-01-02T00:00:00" and s.report.dates == (
        "dates read month first (01/02/2015 00:00 = 2015-01-02), as pandas reads them: day first fits as well; "
        "give `date_format` %d/%m/%Y %H:%M if the day comes first")
    assert load_series(path, date_format="%d/%m/%Y %H:%M").report.start == "2015-02-01T00:00:00"
    with pytest.raises(NeuralabError, match=r"line 2: '01/02/2015 00:00' in column 'date' is not a date \(date_format "
                                            r"is '%d/%m/%Y'; values like this one take %d/%m/%Y %H:%M\)"):
        load_series(path, date_format="%d/%m/%Y")
    bad = write(tmp_path, "date,v\n01/02/2012 10:30,1\n13/13/2012 11:30,2\n", "bad.csv")
    with pytest.raises(NeuralabError, match=r"give date_format, e.g. %d/%m/%Y %H:%M \(day first\) or %m/%d/%Y %H:%M$"):
        load_series(bad, "v")


def test_a_range_of_hours_from_midnight_says_both_ends_as_times(tmp_path):
    hours = pd.date_range("2023-01-01", "2023-01-03 23:00", freq="h")
    path = write(tmp_path, "time,load\n" + "".join(f"{t},{50 + i % 24}\n" for i, t in enumerate(hours)))
    s = load_series(path, "load")
    assert (s.report.start, s.report.end) == ("2023-01-01T00:00:00", "2023-01-03T23:00:00")


def test_a_column_named_twice_among_the_features_is_one_input(tmp_path):
    days = pd.date_range("2020-01-01", periods=60, freq="D")
    path = write(tmp_path, "date,load,Temp\n" + "".join(f"{t.date()},{i % 7},{i % 5}\n" for i, t in enumerate(days)))
    s = load_series(path, "load", features=["temp", "Temp", "TEMP"])
    assert s.features == ["Temp"] and s.columns == ["load", "Temp"]
