"""CSV series as exports write them, read as what they are: a Date;Time meter export across the
autumn clock change, months dated on the 15th or the 30th and twice a month, one mistyped date
among German ones, an Excel title padded with separators, and R's dates as row names."""

import warnings

import numpy as np
import pandas as pd
import pytest

from neuralab.data.series import load_series
from neuralab.errors import NeuralabError
from neuralab.forecasting.finished import predict_run
from neuralab.forecasting.models import ModelConfig, series_train_config
from neuralab.forecasting.pipeline import ForecastConfig, run_forecast
from neuralab.forecasting.windows import WindowConfig, future_times

pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def comma(x: float) -> str:
    return f"{x:.2f}".replace(".", ",")


def berlin_hours(start: str, periods: int, freq: str = "h") -> pd.DatetimeIndex:
    """Local Berlin clock times as a meter writes them, without offsets: 02:00 twice in late October."""
    return pd.date_range(start, periods=periods, freq=freq, tz="Europe/Berlin").tz_localize(None)


def meter(path, times, time_name="Time"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"Datum;{time_name};Verbrauch\n" + "".join(
        f"{t:%d.%m.%Y};{t:%H:%M};{comma(10 + i / 4)}\n" for i, t in enumerate(times)), encoding="cp1252")
    return path


def test_a_date_and_time_export_across_the_autumn_clock_change_keeps_its_hours(tmp_path):
    """The repeated 02:00 made the times not rise within 29.10.2023: the time column was dropped,
    every hour of a day was a duplicate, and the advice (`duplicates` mean) made 240 hours 10 days."""
    times = berlin_hours("2023-10-25", 240)
    assert times.duplicated().sum() == 1
    split = meter(tmp_path / "split" / "verbrauch.csv", times)
    one = tmp_path / "one" / "verbrauch.csv"
    one.parent.mkdir()
    one.write_text("Zeitstempel;Verbrauch\n" + "".join(f"{t:%d.%m.%Y %H:%M};{comma(10 + i / 4)}\n"
                                                       for i, t in enumerate(times)), encoding="cp1252")
    with pytest.raises(NeuralabError) as as_one:
        load_series(one)
    with pytest.raises(NeuralabError) as as_two:
        load_series(split)
    assert str(as_two.value) == str(as_one.value)  # what one timestamp column with the same hours gives
    assert "all in the hour from 2023-10-29T02:00:00" in str(as_two.value)
    assert "local clocks repeat as summer time ends (in Europe/Berlin" in str(as_two.value)
    merged = load_series(split, duplicates="mean")
    assert merged.report.frequency == "h" and len(merged) == 239  # hours, the two 02:00 merged; not 10 days
    assert merged.report.dates.startswith("dates and times from columns 'Datum' and 'Time'")
    # quarter hours (02:45, then 02:00 again) under `Uhrzeit`: the same
    quarters = meter(tmp_path / "q.csv", berlin_hours("2023-10-28 12:00", 96, "15min"), "Uhrzeit")
    with pytest.raises(NeuralabError, match=r"4 duplicate timestamps, all in the hour from 2023-10-29T02:00:00"):
        load_series(quarters)
    # times that go back at another hour are still no times of day (as a run's durations are not)
    back = ["Datum;Time;Verbrauch"] + [f"0{1 + i // 2}.05.2023;{t};{i}" for i, t in
                                       enumerate(["10:00", "11:00", "12:00", "12:00", "08:00", "09:00"])]
    (tmp_path / "back.csv").write_text("\n".join(back) + "\n")
    assert len(load_series(tmp_path / "back.csv", "Verbrauch", duplicates="mean")) == 3


def monthly(path, times):
    rng = np.random.default_rng(0)
    path.write_text("date,sales\n" + "".join(f"{t:%Y-%m-%d},{100 + 10 * np.sin(i / 2) + rng.normal():.2f}\n"
                                            for i, t in enumerate(times)))
    return path


def days(times) -> list[str]:
    return [str(pd.Timestamp(t).date()) for t in times]


def test_months_on_a_fixed_day_are_monthly_and_their_future_keeps_the_day(tmp_path):
    """A month on the 15th was "irregular", and its future drifted by the median 31 days: 10-16,
    11-16, 12-17. The 30th falls on 28 February and comes back in March."""
    for first, count, expected in (
            ("2000-01-15", 200, ["2016-08-15", "2016-09-15", "2016-10-15", "2016-11-15", "2016-12-15"]),
            ("2000-01-28", 121, ["2010-01-28", "2010-02-28", "2010-03-28", "2010-04-28", "2010-05-28"]),
            ("2001-01-30", 12, ["2001-12-30", "2002-01-30", "2002-02-28", "2002-03-30", "2002-04-30"])):
        times = [pd.Timestamp(first) + pd.DateOffset(months=k) for k in range(count)]
        s = load_series(monthly(tmp_path / f"{first}.csv", times))
        day = pd.Timestamp(first).day
        assert s.report.frequency == f"monthly on day {day}" and s.report.gaps == 0
        assert days(s.times[-1:]) + days(future_times(s.times, 4, s.report.frequency)) == expected
    # quarters on the 15th, two of them missing: counted on that grid, and filled where asked
    quarters = [pd.Timestamp("2010-02-15") + pd.DateOffset(months=3 * k) for k in range(40) if k not in (7, 20)]
    s = load_series(monthly(tmp_path / "q15.csv", quarters))
    assert s.report.frequency == "every 3 months on day 15" and s.report.gaps == 2
    assert s.report.gap_examples == ["2011-11-15", "2015-02-15"]
    filled = load_series(tmp_path / "q15.csv", gaps="fill", missing="interpolate")
    assert len(filled) == 40 and days(future_times(filled.times, 2, "every 3 months on day 15")) == \
        ["2020-02-15", "2020-05-15"]
    # twice a month (pandas' SMS: the 1st and the 15th) goes on from the 15th to the next 1st
    twice = load_series(monthly(tmp_path / "sms.csv", pd.date_range("2020-01-01", periods=120, freq="SMS")))
    assert twice.report.frequency == "SMS-15"
    assert days(future_times(twice.times, 3, twice.report.frequency)) == ["2025-01-01", "2025-01-15", "2025-02-01"]


def test_a_forecast_of_months_on_the_15th_dates_its_future_on_the_15th(tmp_path):
    times = [pd.Timestamp("2000-01-15") + pd.DateOffset(months=k) for k in range(60)]
    data = monthly(tmp_path / "month15.csv", times)
    config = ForecastConfig(data=str(data), windows=WindowConfig(lookback=8, horizon=3),
                            model=ModelConfig("lstm", hidden=[4]),
                            train=series_train_config(epochs=1, device="cpu", seed=0), backtest_folds=1)
    run = run_forecast(config, out=tmp_path / "run", verbose=False).run_dir
    future = pd.read_csv(run / "forecast.csv", dtype=str).query("split == 'future'")
    assert [t[:10] for t in future["time"]] == ["2005-01-15", "2005-02-15", "2005-03-15"]
    # new rows with two months gone from the window: named on the run's grid, and the future kept on the 15th
    table = pd.read_csv(data).drop([52, 55])
    table.to_csv(tmp_path / "holes.csv", index=False)
    with pytest.warns(UserWarning, match=r"2 missing timestamps on the monthly on day 15 grid .*2004-05-15"):
        forecast = predict_run(run, tmp_path / "holes.csv")
    assert days(forecast["time"]) == ["2005-01-15", "2005-02-15", "2005-03-15"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rows without a hole: not a word
        predict_run(run, data)


def test_one_mistyped_date_among_german_ones_is_named_by_its_own_line(tmp_path):
    """Line 21 (20.01.20222, or an ISO date) was not named: 13.01.2022 on line 14 was, a good date."""
    for odd in ("20.01.20222", "2022-01-20"):
        rows = [f"{d:%d.%m.%Y};{i}" for i, d in enumerate(pd.date_range("2022-01-01", periods=40))]
        rows[19] = f"{odd};19"
        path = tmp_path / "bad_date.csv"
        path.write_text("Datum;Wert\n" + "\n".join(rows) + "\n")
        with pytest.raises(NeuralabError) as e:
            load_series(path)
        assert str(e.value) == (f"bad_date.csv: line 21: {odd!r} in column 'Datum' is not a date, unlike the dates "
                                "before it ('19.01.2022'); correct it or delete its row")


def test_an_excel_title_padded_with_separators_is_named_as_a_title(tmp_path):
    """`Umsatzbericht;;` has as many separators as the table: the title was read as the header."""
    rows = [f"{d:%d.%m.%Y};" + f"{6010.37 + i:,.2f}".replace(",", " ").replace(".", ",").replace(" ", ".") +
            f";{i % 10}" for i, d in enumerate(pd.date_range("2022-01-01", periods=200))]
    path = tmp_path / "title_de.csv"
    path.write_text("Umsatzbericht;;\nZeitraum: 01.01.2022 - 19.07.2022;;\nDatum;Umsatz;Menge\n" +
                    "\n".join(rows) + "\n", encoding="cp1252")
    with pytest.raises(NeuralabError) as e:
        load_series(path)
    assert str(e.value) == (f"{path}: the table seems to start at line 3 ('Datum;Umsatz;Menge'), below a title; "
                            "delete the 2 lines above it and give that file")
    path.write_text("Datum;Umsatz;Menge\n" + "\n".join(rows) + "\n", encoding="cp1252")
    assert load_series(path, "Umsatz").values[1, 0] == pytest.approx(6011.37)


def test_r_dates_as_row_names_say_the_dates_have_no_name(tmp_path):
    """R's write.table of a frame whose row names are its dates: the header is one name short."""
    dates = pd.date_range("2022-01-01", periods=60)
    path = tmp_path / "r.csv"
    path.write_text('"value","other"\n' + "".join(f'"{d:%Y-%m-%d}",{np.sin(i / 4):.4f},{i}\n'
                                                  for i, d in enumerate(dates)))
    with pytest.raises(NeuralabError) as e:
        load_series(path, "value")
    assert str(e.value) == (f"{path}: the header (line 1) names 2 columns and the rows hold 3, the first of them "
                            "dates ('2022-01-01', ...): that column, a frame's row names as R's write.table writes "
                            "them, has no name; start the header with one ('date,\"value\",\"other\"'), or write the "
                            "file with row.names=FALSE (the dates as a column of their own)")
    path.write_text(path.read_text().replace('"value"', 'date,"value"', 1))  # as the message says
    assert len(load_series(path, "value")) == 60
