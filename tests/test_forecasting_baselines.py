"""Each baseline on a series whose right answer is known, through the shared interface."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neuralab.data.series import load_series
from neuralab.errors import NeuralabError
from neuralab.forecasting.backtest import rolling_origin, summarize
from neuralab.forecasting.baselines import (BASELINES, Drift, LinearAR, MovingAverage, Persistence, SeasonalNaive,
                                            build_baselines, detect_period, training_values)
from neuralab.forecasting.windows import WindowConfig, prepare


def prepared(values, lookback=12, horizon=3, **kw):
    frame = pd.DataFrame({"y": np.asarray(values, dtype=float)},
                         index=pd.date_range("2020-01-01", periods=len(values), name="date"))
    return prepare(load_series(frame, "y"), WindowConfig(lookback=lookback, horizon=horizon, **kw))


def test_persistence_repeats_the_last_value():
    p = prepared(np.arange(100.0))
    pred = Persistence().fit(p.train).predict(p.test)
    np.testing.assert_array_equal(pred, np.repeat(p.test.past[:, -1:], 3, axis=1))
    np.testing.assert_allclose(p.test.future - pred, [[1, 2, 3]] * len(p.test))  # a line rises by 1 a step


def test_drift_is_exact_on_a_straight_line():
    p = prepared(5 + 0.5 * np.arange(200.0))
    np.testing.assert_allclose(Drift().fit(p.train).predict(p.test), p.test.future)


def test_seasonal_naive_is_exact_on_a_periodic_series_and_detects_the_period():
    pattern = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0])
    p = prepared(np.tile(pattern, 40), lookback=14, horizon=10)
    detected = SeasonalNaive().fit(p.train)
    assert detected.period_ == 7 and "detected" in detected.describe()
    np.testing.assert_allclose(detected.predict(p.test), p.test.future)
    np.testing.assert_allclose(SeasonalNaive(7).fit(p.train).predict(p.test), p.test.future)
    with pytest.raises(NeuralabError, match=r"season=30: longer than lookback \(14\)"):
        SeasonalNaive(30).fit(p.train)


def test_period_detection_finds_nothing_in_a_random_walk():
    rng = np.random.default_rng(0)
    assert detect_period(np.cumsum(rng.standard_normal(1000)), 60) == 1
    assert detect_period(np.sin(2 * np.pi * np.arange(500) / 12) + 0.3 * rng.standard_normal(500), 60) == 12


def test_a_season_as_long_as_the_lookback_is_found():
    """Weekend visitors in a daily series with a lookback of 7 (a monthly one with 12): the peak
    at the last lag tested was never judged, for want of the lag after it, and seasonal-naive fell
    back to persistence."""
    rng = np.random.default_rng(11)
    days = pd.date_range("2021-01-01", periods=400)
    visitors = 200 + 40 * (days.day_of_week >= 5) + rng.normal(0, 5, 400)
    assert detect_period(visitors, 7) == 7
    weekly = SeasonalNaive().fit(prepared(visitors, lookback=7, horizon=1).train)
    assert weekly.period_ == 7 and "detected" in weekly.describe()
    months = np.arange(240)
    assert detect_period(10 + 5 * np.sin(2 * np.pi * months / 12) + rng.normal(0, 1, 240), 12) == 12


def test_moving_average_on_a_constant_and_an_alternating_series():
    p = prepared(np.full(100, 7.0))
    np.testing.assert_allclose(MovingAverage(3).fit(p.train).predict(p.test), 7.0)
    alternating = prepared(np.tile([0.0, 10.0], 60), lookback=10, horizon=1)
    ma = MovingAverage().fit(alternating.train)
    assert ma.window_ % 2 == 0  # an even window averages to the mean 5, the best constant forecast
    np.testing.assert_allclose(ma.predict(alternating.test), 5.0)


def test_linear_ar_recovers_an_ar2_process():
    rng = np.random.default_rng(1)
    y = np.zeros(3000)
    for t in range(2, len(y)):
        y[t] = 0.6 * y[t - 1] - 0.3 * y[t - 2] + rng.standard_normal()
    p = prepared(y, lookback=4, horizon=1, scaler="none")
    ar = LinearAR(alpha=0.0).fit(p.train)
    np.testing.assert_allclose(ar.coef_[-3:-1, 0], [-0.3, 0.6], atol=0.05)  # weights of lags 2 and 1
    noiseless = prepared(np.sin(np.arange(300) / 5), lookback=4, horizon=2)  # a sine obeys an exact AR(2)
    np.testing.assert_allclose(LinearAR(alpha=0.0).fit(noiseless.train).predict(noiseless.test),
                               noiseless.test.future, atol=1e-5)
    # fitted batch by batch (the normal equations summed): the same coefficients as in one go
    from neuralab.forecasting.windows import Windows
    one_go = LinearAR(alpha=0.0).fit(p.train).coef_
    small = Windows.batches
    try:
        Windows.batches = lambda self, size=65_536: small(self, size=97)
        np.testing.assert_allclose(LinearAR(alpha=0.0).fit(p.train).coef_, one_go, rtol=1e-8)
    finally:
        Windows.batches = small



def test_linear_ar_on_a_near_unit_root_series_ties_plain_least_squares():
    # Minute readings: a random walk under a daily cycle. The ridge must shrink towards
    # persistence, not towards the training mean the walk has long left.
    rng = np.random.default_rng(0)
    t = np.arange(4000)
    y = 50 + np.cumsum(rng.normal(0, 0.05, len(t))) + 10 * np.sin(2 * np.pi * t / 1440)
    frame = pd.DataFrame({"power": y}, index=pd.date_range("2024-01-01", periods=len(t), freq="min", name="time"))
    p = prepare(load_series(frame, "power"), WindowConfig(lookback=30, horizon=1))
    design = [np.column_stack([w.x.reshape(len(w), -1), np.ones(len(w))]).astype(np.float64) for w in (p.train, p.test)]
    plain = np.linalg.lstsq(design[0], p.train.y.astype(np.float64), rcond=None)[0]
    least_squares = np.abs(p.test.decode(design[1] @ plain) - p.test.future).mean()
    ar = LinearAR().fit(p.train)
    assert ar.score(p.test) == pytest.approx(least_squares, rel=0.01)
    assert ar.score(p.test) < 0.9 * Persistence().fit(p.train).score(p.test)


def test_every_baseline_shares_the_interface():
    p = prepared(np.sin(np.arange(300) / 4) + np.arange(300) / 50)
    for b in build_baselines():
        pred = b.fit(p.train, p.val).predict(p.test)
        assert pred.shape == p.test.future.shape and np.isfinite(pred).all()
        assert b.score(p.test) >= 0 and b.describe().startswith(b.name)
        assert type(b.clone()) is type(b)
        with pytest.raises(NeuralabError, match="call fit before predict"):
            b.clone().predict(p.test)
    assert [b.name for b in build_baselines(["drift", "linear-ar"])] == ["persistence", "drift", "linear-ar"]
    with pytest.raises(NeuralabError, match="baselines='arima'"):
        build_baselines(["arima"])
    assert set(BASELINES) == {"persistence", "seasonal-naive", "drift", "moving-average", "linear-ar"}


def test_training_values_rebuild_the_training_span():
    p = prepared(np.arange(100.0), lookback=5, horizon=2, stride=3)
    values = training_values(p.train)
    assert values[0] == 0 and (np.diff(values) > 0).all() and values[-1] < p.boundaries[0]


@pytest.mark.parametrize("refit", [False, True])
def test_rolling_origin_backtest(refit):
    # folds of about 30 windows of 2 steps: 15 that share no target, enough to judge each
    p = prepared(5 + 0.5 * np.arange(600.0), lookback=10, horizon=2)
    records = rolling_origin(p, [Persistence().fit(p.train), Drift().fit(p.train)], folds=3, refit=refit)
    assert [r["fold"] for r in records] == [1, 2, 3] and sum(r["windows"] for r in records) == len(p.test)
    assert all(r["metrics"]["drift"]["mae"] < 1e-9 for r in records)
    assert all(r["metrics"]["persistence"]["mae"] == pytest.approx(0.75) for r in records)  # 0.5 and 1.0 behind
    starts = [r["start"] for r in records]
    assert starts == sorted(starts)
    summary = summarize(records)
    assert summary["drift"]["folds_beating_persistence"] == 3 and summary["persistence"]["mae_std"] < 1e-9
