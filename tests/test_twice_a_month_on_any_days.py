"""Twice a month on two days other than pandas' pairs (the 10th and the 25th) was "irregular", and
its future dates drifted by the median step: 01-09, 01-24, 02-08."""

from __future__ import annotations

import numpy as np
import pandas as pd

from neuralab.data.series import calendar_holes, load_series
from neuralab.forecasting.windows import future_times


def twice(path, days: tuple[int, int], months: int, skip=()):
    """A series on ``days`` of every month (the later one the month's last where it is shorter)."""
    times = [t for k, first in enumerate(pd.date_range("2010-01-01", periods=months, freq="MS"))
             for t in (first + pd.Timedelta(days=days[0] - 1),
                       min(first + pd.Timedelta(days=days[1] - 1), first + pd.offsets.MonthEnd(0)))]
    times = [t for k, t in enumerate(times) if k not in skip]
    values = 100 + 10 * np.sin(np.arange(len(times)) / 3)
    path.write_text("date,sales\n" + "".join(f"{t:%Y-%m-%d},{v:.3f}\n" for t, v in zip(times, values)))


def days(times) -> list[str]:
    return [str(pd.Timestamp(t).date()) for t in times]


def test_twice_a_month_on_the_10th_and_25th_keeps_its_days(tmp_path):
    twice(tmp_path / "s.csv", (10, 25), 60)
    s = load_series(tmp_path / "s.csv")
    assert s.report.frequency == "twice a month on days 10 and 25" and s.report.gaps == 0
    assert days(future_times(s.times, 3, s.report.frequency)) == ["2015-01-10", "2015-01-25", "2015-02-10"]


def test_twice_a_month_on_the_30th_falls_on_february_28_and_counts_its_gaps(tmp_path):
    twice(tmp_path / "s.csv", (5, 30), 14, skip=(6, 9))  # 2010-04-05 and 2010-05-30 missing
    s = load_series(tmp_path / "s.csv")
    assert s.report.frequency == "twice a month on days 5 and 30"
    assert s.report.gaps == 2 and s.report.gap_examples == ["2010-04-05", "2010-05-30"]
    assert days(future_times(s.times[:3], 3, s.report.frequency)) == ["2010-02-28", "2010-03-05", "2010-03-30"]
    holes = calendar_holes(s.times[-10:], s.report.frequency)
    assert holes is None  # the last rows have no hole
    filled = load_series(tmp_path / "s.csv", gaps="fill", missing="interpolate")
    assert len(filled) == 28 and "2010-02-28" in days(filled.times)


def test_a_forecast_of_the_10th_and_25th_is_dated_on_those_days(tmp_path):
    from neuralab.forecasting.finished import predict_run
    from neuralab.forecasting.models import ModelConfig, series_train_config
    from neuralab.forecasting.pipeline import ForecastConfig, run_forecast
    from neuralab.forecasting.windows import WindowConfig
    from neuralab.training.device import cpu_threads

    twice(tmp_path / "s.csv", (10, 25), 30)
    config = ForecastConfig(data=str(tmp_path / "s.csv"), windows=WindowConfig(lookback=8, horizon=3),
                            model=ModelConfig("lstm", hidden=[4]),
                            train=series_train_config(epochs=1, device="cpu", seed=0), backtest_folds=1)
    with cpu_threads(1):
        run = run_forecast(config, out=tmp_path / "run", verbose=False).run_dir
        forecast = predict_run(run, tmp_path / "s.csv")
    assert days(forecast["time"]) == ["2012-07-10", "2012-07-25", "2012-08-10"]
