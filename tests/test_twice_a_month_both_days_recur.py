"""Twice a month is a grid only where both of its days recur: a monthly series with one extra row
(a revision on the 10th of a series on the 25th) was read as "twice a month on days 10 and 25" with
58 invented half-month holes, and forecast in half months; while a twice-a-month series missing one
whole month (an outage) was "irregular", its future dates drifting by the median step."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neuralab.data.series import load_series
from neuralab.forecasting.windows import future_times

MONTHS = pd.period_range("2010-01", periods=60, freq="M")


def on(day: int, months=MONTHS) -> list[pd.Timestamp]:
    return [m.to_timestamp() + pd.Timedelta(days=day - 1) for m in months]


def write(path, times) -> None:
    times = sorted(times)
    values = 100 + np.cumsum(np.random.default_rng(0).normal(size=len(times)))
    path.write_text("date,sales\n" + "".join(f"{t:%Y-%m-%d},{v:.3f}\n" for t, v in zip(times, values)))


def days(times) -> list[str]:
    return [str(pd.Timestamp(t).date()) for t in times]


@pytest.mark.parametrize("times", [
    on(25) + [pd.Timestamp("2012-06-10")],  # monthly on the 25th, one extra reading on the 10th
    on(25) + [pd.Timestamp("2012-06-03")],
    on(15) + [pd.Timestamp("2012-06-01")],  # pandas' SMS-15 days
    on(10, MONTHS[:30]) + on(25, MONTHS[29:]),  # the reporting day moved from the 10th to the 25th
], ids=["extra-10th", "extra-3rd", "extra-1st-sms", "day-moved"])
def test_a_monthly_series_with_one_month_of_two_rows_is_no_twice_a_month_grid(tmp_path, times):
    write(tmp_path / "s.csv", times)
    s = load_series(tmp_path / "s.csv")
    assert s.report.frequency == "irregular" and s.report.gaps == 0
    assert len(load_series(tmp_path / "s.csv", gaps="fill", missing="interpolate")) == len(times)  # nothing invented


def test_twice_a_month_with_a_few_rows_missing_stays_twice_a_month(tmp_path):
    times = sorted(on(10) + on(25))
    write(tmp_path / "s.csv", [t for k, t in enumerate(times) if k not in (11, 12, 40, 77)])  # no whole month
    s = load_series(tmp_path / "s.csv")
    assert s.report.frequency == "twice a month on days 10 and 25" and s.report.gaps == 4


@pytest.mark.parametrize("pair, frequency", [((10, 25), "twice a month on days 10 and 25"), ((1, 15), "SMS-15")])
def test_twice_a_month_missing_one_whole_month_keeps_its_grid(tmp_path, pair, frequency):
    times = [t for t in on(pair[0]) + on(pair[1]) if t.strftime("%Y-%m") != "2011-03"]
    write(tmp_path / "s.csv", times)
    s = load_series(tmp_path / "s.csv")
    assert s.report.frequency == frequency
    assert s.report.gaps == 2 and s.report.gap_examples == [f"2011-03-{pair[0]:02d}", f"2011-03-{pair[1]:02d}"]
    assert len(load_series(tmp_path / "s.csv", gaps="fill", missing="interpolate")) == 120
    assert days(future_times(s.times, 3, s.report.frequency)) == [
        f"2015-01-{pair[0]:02d}", f"2015-01-{pair[1]:02d}", f"2015-02-{pair[0]:02d}"]
