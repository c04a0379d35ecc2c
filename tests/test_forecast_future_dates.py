"""Forecast dates past the data on the loader's calendar (MS, ME, QS), and times with UTC
offsets read by one rule for a run's data and for new data."""

import numpy as np
import pandas as pd

from neuralab.data.series import load_series
from neuralab.forecasting.windows import Scaler, WindowConfig, last_window


def future(series, horizon):
    window = last_window(series, WindowConfig(lookback=6, horizon=horizon), Scaler.fit("none", series.values))
    return [pd.Timestamp(t) for t in window.times[0][-horizon:]]


def test_monthly_month_end_and_quarterly_futures_keep_their_calendar_day(tmp_path):
    rng = np.random.default_rng(0)
    for freq, fmt, sep, expected in (
            ("MS", "%Y-%m", ",", ["2020-01-01", "2020-02-01", "2020-03-01", "2020-04-01", "2020-12-01"]),
            ("ME", "%d.%m.%Y", ";", ["2020-01-31", "2020-02-29", "2020-03-31", "2020-04-30", "2020-12-31"]),
            ("QS", "%Y-%m-%d", ",", ["2010-01-01", "2010-04-01", "2010-07-01", "2010-10-01", "2012-10-01"])):
        end = "2009-10-01" if freq == "QS" else "2019-12-31"
        times = pd.date_range(end=end, periods=120, freq=freq)
        path = tmp_path / f"{freq}.csv"
        path.write_text(f"month{sep}passengers\n" + "".join(
            f"{t.strftime(fmt)}{sep}{100 + 10 * np.sin(i / 2) + rng.normal():.2f}\n" for i, t in enumerate(times)))
        s = load_series(path)
        assert s.report.frequency.startswith(freq)
        got = future(s, 12)
        assert [str(got[i].date()) for i in (0, 1, 2, 3, 11)] == expected


def test_business_days_still_skip_weekends(tmp_path):
    times = pd.bdate_range("2020-06-01", "2020-10-02")
    path = tmp_path / "stock.csv"
    path.write_text("Date,Close\n" + "".join(f"{t:%Y-%m-%d},{100 + i * 0.1:.2f}\n" for i, t in enumerate(times)))
    got = future(load_series(path), 3)
    assert [str(t.date()) for t in got] == ["2020-10-05", "2020-10-06", "2020-10-07"]


def test_daily_times_at_local_midnight_with_offsets_keep_their_local_dates(tmp_path):
    """pandas writes a Europe/Berlin daily series as 2021-01-01T00:00:00+01:00: the days are
    the file's days, on a daily grid, their weekdays the file's (not 23:00 UTC the day before)."""
    times = pd.date_range("2021-01-01", periods=1000, freq="D", tz="Europe/Berlin")
    path = tmp_path / "daily_tz.csv"
    path.write_text("date,temp\n" + "".join(f"{t.isoformat()},{10 + np.sin(i / 9):.3f}\n"
                                           for i, t in enumerate(times)))
    s = load_series(path, calendar=["dayofweek"])
    assert s.report.frequency == "D" and s.report.gaps == 0
    assert (s.report.start, s.report.end) == ("2021-01-01", "2023-09-27")
    assert list(s.times.day_of_week[:3]) == [4, 5, 6]  # Friday 1 January 2021
    assert "local dates" in s.report.dates
    assert str(future(s, 1)[0].date()) == "2023-09-28"


def test_new_data_with_one_offset_is_read_on_the_time_line_of_a_file_that_crossed_a_clock_change(tmp_path):
    """A run's hourly file crossing summer time is read in UTC; new rows of the same instants
    written with one offset (+02:00), or in UTC, must give the same times and hour encodings."""
    times = pd.date_range("2023-10-01", "2023-11-05", freq="h", tz="Europe/Berlin")
    load = [f"{500 + 50 * np.sin(2 * np.pi * t.hour / 24):.2f}" for t in times]
    whole = tmp_path / "hourly_tz.csv"
    whole.write_text("time,load\n" + "".join(f"{t.isoformat()},{v}\n" for t, v in zip(times, load)))
    summer = [(t, v) for t, v in zip(times, load) if t < pd.Timestamp("2023-10-28", tz="Europe/Berlin")][-100:]
    local = tmp_path / "recent.csv"
    local.write_text("time,load\n" + "".join(f"{t.isoformat()},{v}\n" for t, v in summer))
    utc = tmp_path / "recent_utc.csv"
    utc.write_text("time,load\n" + "".join(f"{t.tz_convert('UTC').isoformat()},{v}\n" for t, v in summer))
    run = load_series(whole, calendar=["hour"])
    a, b = load_series(local, calendar=["hour"]), load_series(utc, calendar=["hour"])
    assert str(run.times.tz) == str(a.times.tz) == "UTC"
    assert (a.times == b.times).all()
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.values[:24], run.values[run.times.get_loc(a.times[0]):][:24])
