"""A researcher's own CSV series, as spreadsheets and pandas write them: thousands separators,
a separator at the end of every row, no header line, pandas' row numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neuralab.cli import main
from neuralab.data.series import load_series
from neuralab.errors import NeuralabError
from neuralab.training.device import cpu_threads

DAYS = pd.date_range("2023-01-01", periods=120)
SALES = np.round(1000 + np.cumsum(np.random.default_rng(0).normal(0, 20, 120)), 2)  # about 1,000: some above


def german(x: float) -> str:
    """1002.51 as German Excel writes it with its thousands separator: 1.002,51."""
    return f"{x:,.2f}".replace(",", " ").replace(".", ",").replace(" ", ".")


def write(tmp_path, name: str, lines: list[str]) -> str:
    path = tmp_path / name
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("utf-8"))
    return str(path)


@pytest.mark.parametrize("header, row", [
    ("Datum;Umsatz", lambda d, x: f"{d:%d.%m.%Y};{german(x)}"),             # Excel, German locale
    ("Date,Sales", lambda d, x: f'{d:%m/%d/%Y},"{x:,.2f}"'),                 # Excel, US locale
    ("date,value", lambda d, x: f'{d:%Y-%m-%d},"{x:.2f}"'.replace(".", ",")),  # Google Sheets, European locale
    ("date;value", lambda d, x: f"{d:%Y-%m-%d};{x:,.2f}"),                   # US thousands in a semicolon file
])
def test_numbers_with_thousands_separators_or_quoted_decimal_commas_read_as_written(tmp_path, header, row):
    path = write(tmp_path, "sales.csv", [header] + [row(d, x) for d, x in zip(DAYS, SALES)])
    series = load_series(path)
    assert series.target == header.replace(";", ",").split(",")[1]
    assert np.array_equal(series.values[:, 0], SALES) and series.times.equals(DAYS)


def test_a_column_that_does_not_settle_thousands_or_decimals_is_refused_not_misread(tmp_path):
    visitors = [int(x) for x in SALES]  # 999, 1.002, 1.012: 1002 visitors, or one and a bit?
    lines = ["Datum;Besucher"] + [f"{d:%d.%m.%Y};{v:,}".replace(",", ".") for d, v in zip(DAYS, visitors)]
    with pytest.raises(NeuralabError) as e:
        load_series(write(tmp_path, "visits.csv", lines))
    at = next(i for i, v in enumerate(visitors) if v >= 1000)
    assert str(e.value).startswith(f"visits.csv: line {at + 2}: '{visitors[at]:,}'".replace(",", "."))
    assert "column 'Besucher'" in str(e.value) and "without thousands separators" in str(e.value)


@pytest.mark.parametrize("group", [" ", "'"])
def test_thousands_grouped_by_spaces_or_apostrophes_are_whole_numbers(tmp_path, group):
    """French and Swiss exports group thousands with a space or an apostrophe, which no decimal
    mark can be: the column reads as whole numbers, where a traceback came out."""
    visitors = [int(x) for x in SALES]
    lines = ["date;visitors"] + [f"{d:%Y-%m-%d};{v:,}".replace(",", group) for d, v in zip(DAYS, visitors)]
    series = load_series(write(tmp_path, "visits.csv", lines))
    assert series.values[:, 0].tolist() == visitors


def test_numbers_in_scientific_notation_keep_a_decimal_comma_column_readable(tmp_path):
    """European Excel writes small numbers as 1,5E-05: one such cell left the column's decimal
    mark unsettled, every 0,25 unread, and a good cell named as the bad one."""
    lines = ["date;value"] + [f"{d:%Y-%m-%d};{x:.2f}".replace(".", ",") for d, x in zip(DAYS, SALES)]
    lines[5] = f"{DAYS[4]:%Y-%m-%d};1,5E-05"
    series = load_series(write(tmp_path, "small.csv", lines))
    assert series.values[4, 0] == 1.5e-05 and np.array_equal(np.delete(series.values[:, 0], 4), np.delete(SALES, 4))
    lines[5] = f"{DAYS[4]:%Y-%m-%d};12%"  # a cell that is no number is the one named
    with pytest.raises(NeuralabError, match="line 6: '12%' in column 'value' is not a number \\(a percent sign"):
        load_series(write(tmp_path, "small.csv", lines))


def test_a_separator_ending_every_row_is_no_column_and_a_value_after_it_is_refused(tmp_path):
    rows = [f"{d:%Y-%m-%d},{x:.2f}," for d, x in zip(DAYS, SALES)]
    for header in ("date,value,", "date,value"):  # the header with or without its own trailing comma
        series = load_series(write(tmp_path, "trailing.csv", [header] + rows))
        assert series.target == "value" and np.array_equal(series.values[:, 0], SALES)
    semicolons = [r.replace(",", ";").replace(".", ",") for r in rows]
    series = load_series(write(tmp_path, "excel.csv", ["date;value;"] + semicolons))
    assert np.array_equal(series.values[:, 0], SALES)
    rows[60] += "7"  # one row has a value after its last column: nothing is dropped silently
    with pytest.raises(NeuralabError, match=r"trailing.csv: line 62 has a value after its last column \('7'\)"):
        load_series(write(tmp_path, "trailing.csv", ["date,value"] + rows))


def test_a_file_without_a_header_line_is_refused_not_read_from_its_second_row(tmp_path):
    path = write(tmp_path, "export.csv", [f"{d:%Y-%m-%d},{x:.2f}" for d, x in zip(DAYS, SALES)])
    with pytest.raises(NeuralabError, match=r"^export.csv: its first line \(2023-01-01, 1002.51\) holds values, not "
                                            "column names; add a header line"):
        load_series(path)


def test_the_row_numbers_pandas_writes_are_no_target(tmp_path):
    path = tmp_path / "frame.csv"
    pd.DataFrame({"date": DAYS, "value": SALES}).to_csv(path)  # with its index: ",date,value" then "0,2023-..."
    series = load_series(path)
    assert series.target == "value" and series.features == [] and np.array_equal(series.values[:, 0], SALES)


def test_german_excel_export_forecasts_and_predicts_from_the_command_line(tmp_path, capsys):
    lines = ["Datum;Umsatz"] + [f"{d:%d.%m.%Y};{german(x)}" for d, x in zip(DAYS, SALES)]
    path = write(tmp_path, "umsatz.csv", lines)
    small = ["--lookback", "5", "--model", "rnn", "--hidden", "2", "--epochs", "1", "--backtest-folds", "1", "--quiet"]
    with cpu_threads(1):
        assert main(["forecast", "--data", path, *small, "--out", str(tmp_path / "run")]) == 0
        capsys.readouterr()
        assert main(["forecast", "predict", str(tmp_path / "run"), "--csv", path]) == 0
    assert "2023-05-01" in capsys.readouterr().out
    visits = write(tmp_path, "visits.csv", ["Datum;Besucher"] + [f"{d:%d.%m.%Y};{int(x):,}".replace(",", ".")
                                                                  for d, x in zip(DAYS, SALES)])
    assert main(["forecast", "--data", visits, *small, "--out", str(tmp_path / "r2")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("neuralab: error: visits.csv: line ") and "\n" not in err


def test_a_date_column_and_a_time_column_make_one_timestamp(tmp_path):
    """Loggers write Date;Time;value (the household power consumption data: 16/12/2006;17:24:00):
    the date alone made each day's rows duplicate timestamps. The two columns are read as one
    timestamp, and the run says so; the time column is never taken for the dates."""
    stamps = pd.date_range("2006-12-16 17:24", periods=300, freq="min")
    power = np.round(4 + np.sin(np.arange(300) / 30), 3)
    lines = ["Date;Time;Global_active_power;Voltage"] + [
        f"{t.day}/{t.month}/{t.year};{t:%H:%M:%S};{p:.3f};{240 + p:.2f}" for t, p in zip(stamps, power)]
    series = load_series(write(tmp_path, "household_power_consumption.txt", lines), "Global_active_power")
    assert series.times.equals(pd.DatetimeIndex(stamps)) and series.report.duplicates == 0
    assert series.report.frequency == "min" and np.array_equal(series.values[:, 0], power)
    assert series.report.dates.startswith("dates and times from columns 'Date' and 'Time'")
    # the day-first format the loader's note suggests for 01.03.2023 keeps the times of day
    dotted = ["Date;Time;kWh"] + [f"{t:%d.%m.%Y};{t:%H:%M};" + f"{p:.2f}".replace(".", ",")
                                  for t, p in zip(pd.date_range("2023-03-01", periods=60, freq="h"), power)]
    series = load_series(write(tmp_path, "euro.csv", dotted), "kWh", date_format="%d.%m.%Y")
    assert series.times[0] == pd.Timestamp("2023-03-01") and series.times[-1] == pd.Timestamp("2023-03-03 11:00")
    # with '?' for missing values and no target named, the message names the '?', not the times of day
    lines[3] = lines[3].replace(f";{power[2]:.3f};", ";?;")
    with pytest.raises(NeuralabError, match=r"line 4: '\?' in column 'Global_active_power' is not a number"):
        load_series(write(tmp_path, "gap.txt", [line.rsplit(";", 1)[0] for line in lines]))


def test_what_is_no_time_of_day_or_excel_day_is_not_read_as_one(tmp_path):
    """A run's durations under `Time` (not rising within a day), hours past 24 and a logger's
    `timestamp` counter of seconds since boot are read as before: no times of day, no Excel days."""
    runs = ["Date,Time,Distance"] + [f"2023-05-0{1 + i // 2},{t},{5 + i}" for i, t in
                                     enumerate(["0:45:12", "0:22:05", "1:02:40", "0:31:00", "0:50:10", "0:20:00"])]
    series = load_series(write(tmp_path, "runs.csv", runs), "Distance", duplicates="mean")
    assert len(series) == 3 and series.report.frequency == "D"
    long = ["date,time,v"] + [f"2023-05-0{1 + i // 2},{t},{i}" for i, t in enumerate(["10:00", "47:30", "11:00",
                                                                                        "95:00", "12:00", "13:00"])]
    assert len(load_series(write(tmp_path, "long.csv", long), "v", duplicates="mean")) == 3
    counter = ["timestamp,temp"] + [f"{30000 + i},{20 + i / 10}" for i in range(60)]
    with pytest.raises(NeuralabError, match="holds dates"):
        load_series(write(tmp_path, "logger.csv", counter))


def test_dates_excel_saved_as_numbers_are_read_as_its_days(tmp_path):
    """A spreadsheet's date column formatted as General is saved as Excel's serial day numbers
    (44927 is 2023-01-01): it got "no column holds dates". A fraction is the time of day."""
    lines = ["Date,Sales"] + [f"{44927 + i},{x:.2f}" for i, x in enumerate(SALES)]
    series = load_series(write(tmp_path, "export.csv", lines))
    assert series.times.equals(DAYS) and series.target == "Sales" and np.array_equal(series.values[:, 0], SALES)
    assert series.report.dates == "dates read as Excel's serial day numbers (days since 1899-12-30)"
    hours = ["Date,Load"] + [f"{44927 + i / 24:.6f},{x:.2f}" for i, x in enumerate(SALES)]
    assert load_series(write(tmp_path, "hourly.csv", hours)).report.frequency == "h"
    days = ["day,value"] + [f"{i % 28 + 1},{x:.2f}" for i, x in enumerate(SALES)]  # a day of the month is no date
    with pytest.raises(NeuralabError, match="no column of days.csv holds dates"):
        load_series(write(tmp_path, "days.csv", days))


def test_day_first_dates_are_said_as_they_are_written():
    """31.01.2024 was said to be read as DD/MM/YYYY."""
    from neuralab.data.dates import _day_or_month_first

    for sep in "./-":
        _, note, _ = _day_or_month_first(pd.Series([f"{d:%d}{sep}{d:%m}{sep}{d:%Y}" for d in DAYS[:40]], dtype="string"))
        assert note.startswith(f"dates read day first (DD{sep}MM{sep}YYYY)"), note


def test_what_only_looks_like_times_excel_days_or_grouped_numbers_is_read_as_before(tmp_path):
    """A lap's duration (1:13) is no time of day, a `downtime` of 30,100 minutes is no Excel date,
    1.234E-05 is one and a bit: each read as it was before those readings existed. A blank time
    of day is named by its line and column."""
    laps = ["date,duration,km"] + [f"{d:%Y-%m-%d},{i % 3 + 1}:{13 + i % 40:02d},{x:.2f}"
                                   for i, (d, x) in enumerate(zip(DAYS, SALES))]
    series = load_series(write(tmp_path, "laps.csv", laps), "km")
    assert series.times.equals(DAYS) and series.report.frequency == "D"
    down = ["Month,downtime,sales"] + [f"{d:%Y-%m-%d},{30100 + i},{x:.2f}" for i, (d, x) in enumerate(zip(DAYS, SALES))]
    series = load_series(write(tmp_path, "down.csv", down), "sales")
    assert series.date_column == "Month" and series.times.equals(DAYS)
    tiny = ["date,v"] + [f"{d:%Y-%m-%d},{'1.234E-05' if i == 0 else i}" for i, d in enumerate(DAYS)]
    assert load_series(write(tmp_path, "tiny.csv", tiny)).values[0, 0] == 1.234e-05
    from neuralab.data.numbers import read_numbers  # in a file whose decimal mark is a comma: not 1000 times it

    assert read_numbers(pd.Series(["1.234E-05", "2", "3"]), ",")[0].tolist() == [1.234e-05, 2, 3]

    stamps = pd.date_range("2006-12-16 17:24", periods=100, freq="min")
    logged = ["Date;Time;power"] + [f"{t:%d/%m/%Y};{'' if i == 7 else f'{t:%H:%M}'};{i}" for i, t in enumerate(stamps)]
    with pytest.raises(NeuralabError, match=r"line 9: an empty cell in column 'Time' is not a time of day"):
        load_series(write(tmp_path, "logged.csv", logged), "power")


def test_dates_written_with_dots_are_read_day_first_where_both_readings_fit(tmp_path):
    """A German logger's Datum;Zeit of 01.03.2023 to 03.03.2023: its three dates lie on a grid
    both ways (daily, or monthly from January 3rd), and pandas' month first read the hours as
    January to March. Dates written with dots are day first; slashes keep pandas' reading."""
    hours = pd.date_range("2023-03-01", periods=60, freq="h")
    dotted = ["Datum;Zeit;Last"] + [f"{t:%d.%m.%Y};{t:%H:%M};{i}" for i, t in enumerate(hours)]
    series = load_series(write(tmp_path, "last.csv", dotted))
    assert series.times.equals(pd.DatetimeIndex(hours)) and series.report.frequency == "h"
    assert "dates read day first (01.03.2023 = 2023-03-01), as dates written with dots are" in series.report.dates
    assert "give `date_format` %m.%d.%Y if the month comes first" in series.report.dates
    slashed = ["date,time,load"] + [f"{t:%d/%m/%Y},{t:%H:%M},{i}" for i, t in enumerate(hours)]
    assert load_series(write(tmp_path, "load.csv", slashed)).times[0] == pd.Timestamp("2023-01-03")
