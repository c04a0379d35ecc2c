"""New rows for a run on business days: a week of them, Monday to Friday, is too few rows for
the run's lookback, and says so; their frequency, daily without a weekend among them, is not
what is wrong with them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neuralab import ForecastConfig, predict_run, run_forecast
from neuralab.errors import NeuralabError, ParameterError
from neuralab.forecasting.config import WindowConfig


@pytest.fixture(scope="module")
def prices(tmp_path_factory):
    """Two years of a share's closing prices on business days, as a broker's export has them."""
    folder = tmp_path_factory.mktemp("prices")
    days = pd.bdate_range("2021-01-04", periods=500)
    close = 100 * np.exp(np.cumsum(np.random.default_rng(7).normal(0.0003, 0.01, len(days))))
    frame = pd.DataFrame({"Date": days.strftime("%Y-%m-%d"), "Close": close.round(2)})
    frame.to_csv(folder / "prices.csv", index=False)
    c = ForecastConfig(data=str(folder / "prices.csv"), target="Close", windows=WindowConfig(lookback=15))
    c.train.epochs, c.train.threads = 1, 1
    run_forecast(c, out=folder / "run", verbose=False)
    return folder, frame


def test_a_week_of_new_rows_is_refused_for_its_length_not_its_frequency(prices):
    folder, frame = prices
    week = frame.tail(5)  # Monday to Friday
    assert list(pd.to_datetime(week["Date"]).dt.dayofweek) == [0, 1, 2, 3, 4]
    week.to_csv(folder / "week.csv", index=False)
    with pytest.raises(NeuralabError) as e:
        predict_run(folder / "run", folder / "week.csv")
    said = str(e.value)
    assert "frequency" not in said and "15" in said and "5 rows" in said, said


def test_enough_new_rows_forecast_and_other_frequencies_are_still_refused(prices):
    folder, frame = prices
    frame.tail(30).to_csv(folder / "recent.csv", index=False)
    assert len(predict_run(folder / "run", folder / "recent.csv")) == 1
    weekly = frame.iloc[::5].tail(30)
    weekly.to_csv(folder / "weekly.csv", index=False)
    with pytest.raises(ParameterError, match="the run was trained on rows of frequency B"):
        predict_run(folder / "run", folder / "weekly.csv")
