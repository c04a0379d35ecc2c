"""What the forecasting modules share has one owner: how far apart windows share targets
(the significance test's lag and the intervals' delay), which forecaster is the reference,
and which metrics a forecaster scores by."""

from __future__ import annotations

import numpy as np
import pytest

from neuralab.data.series import load_series
from neuralab.errors import ParameterError
from neuralab.forecasting import backtest, baselines, metrics, report, verdict
from neuralab.forecasting.backtest import rolling_origin
from neuralab.forecasting.baselines import REFERENCE, Drift, LinearAR, Persistence, build_baselines
from neuralab.forecasting.intervals import rolling
from neuralab.forecasting.metrics import shared_target_lag
from neuralab.forecasting.windows import WindowConfig, prepare


@pytest.fixture(scope="module")
def weather():
    """Daily Seattle weather, a week ahead, a window every third day: windows 1 and 2 apart
    share targets, 3 apart do not."""
    return prepare(load_series("seattle-weather"), WindowConfig(lookback=30, horizon=7, stride=3))


def farthest_sharing(windows) -> int:
    """From the windows' own target rows: the most windows apart two can be and share a row."""
    rows = windows.rows
    return max(k for k in range(len(rows)) if rows[k, 0] <= rows[0, -1])


@pytest.mark.parametrize("horizon, stride", [(1, 1), (7, 1), (7, 3), (7, 7), (24, 5), (3, 10)])
def test_the_lag_is_how_far_apart_windows_share_targets(horizon, stride):
    p = prepare(load_series("seattle-weather"), WindowConfig(lookback=30, horizon=horizon, stride=stride))
    assert shared_target_lag(horizon, stride) == farthest_sharing(p.test)


def test_the_backtest_judges_its_folds_with_that_lag(weather):
    records = rolling_origin(weather, build_baselines(["drift"]), folds=2, refit=True)
    lags = {g["lag"] for r in records for g in r["versus"].values()}
    assert lags == {farthest_sharing(weather.test)} == {2}


def test_an_interval_waits_until_every_target_of_an_earlier_window_is_known(weather):
    ar = LinearAR().fit(weather.train)
    pred = ar.predict(weather.test)
    actual = weather.test.future
    val_errors = weather.val.future - ar.predict(weather.val)
    spoiled = actual.copy()
    spoiled[40:] += 1000.0  # window 40 onwards missed by far
    # only the 5 most recent known errors count, so the first huge one shows at once
    base, late = (rolling(val_errors, a, pred, window=5, stride=3) for a in (actual, spoiled))
    lower, upper = base.test[0.95]
    late_lower, late_upper = late.test[0.95]
    # window 40's last target is known 3 windows later (7 days, 3 days apart): window 43 sees it, 42 does not
    np.testing.assert_array_equal(late_upper[:43], upper[:43])
    assert (late_upper[43] - pred[43] > 500).all() and (upper[43] - pred[43] < 500).all()


def test_persistence_is_the_one_reference_every_judgement_names():
    assert REFERENCE == Persistence.name == "persistence"
    assert backtest.REFERENCE is report.REFERENCE is verdict.REFERENCE is baselines.REFERENCE
    assert [b.name for b in build_baselines(["drift", "linear-ar"])] == [REFERENCE, "drift", "linear-ar"]
    # a verdict whose best baseline is another still says how the network fares against the reference
    rng = np.random.default_rng(0)
    actual = rng.normal(0, 1, 300).cumsum()
    forecasts = {"lstm": actual + rng.normal(0, 0.5, 300), Drift.name: actual + rng.normal(0, 0.3, 300),
                 REFERENCE: actual + rng.normal(0, 2.0, 300)}
    test = {n: metrics.evaluate(actual, p, 1.0) for n, p in forecasts.items()}
    errors = {n: metrics.window_errors(actual[:, None], p[:, None]) for n, p in forecasts.items()}
    v = verdict.verdict(test, "lstm", errors=errors)
    assert v["best_baseline"] == "drift" and v["clearly_beats_persistence"]
    assert f"Against {REFERENCE} alone it beats it" in v["sentence"]


def test_a_forecaster_scores_by_every_metric_but_mase_and_names_the_parameter_otherwise(weather):
    ar = LinearAR().fit(weather.train)
    for metric in ("mae", "rmse", "mape", "smape"):
        assert ar.score(weather.test, metric) == pytest.approx(
            metrics.evaluate(weather.test.future, ar.predict(weather.test), weather.mase_scale)[metric])
    for wrong in ("mase", "MAE", "r2"):
        with pytest.raises(ParameterError) as e:
            ar.score(weather.test, wrong)
        assert e.value.parameter == "metric" and "choose from mae, rmse, mape, smape" in str(e.value)
    assert "metrics.mase" in str(e.value)
