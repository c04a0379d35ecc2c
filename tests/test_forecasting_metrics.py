"""Metric formulas on numbers worked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from neuralab.forecasting import metrics

ACTUAL = np.array([[1.0, 2.0], [4.0, 0.0]])
PRED = np.array([[2.0, 2.0], [1.0, 1.0]])  # errors 1, 0, -3, 1


def test_mae_rmse():
    assert metrics.mae(ACTUAL, PRED) == pytest.approx(5 / 4)
    assert metrics.rmse(ACTUAL, PRED) == pytest.approx(math.sqrt(11 / 4))


def test_mape_skips_zero_actuals():
    # |1-2|/1, |2-2|/2, |4-1|/4; the zero actual is left out
    assert metrics.mape(ACTUAL, PRED) == pytest.approx(100 * (1 + 0 + 0.75) / 3)
    assert math.isnan(metrics.mape([0.0], [1.0]))


def test_smape():
    # 2|a-p|/(|a|+|p|): 2/3, 0, 6/5, 2/1
    assert metrics.smape(ACTUAL, PRED) == pytest.approx(100 * (2 / 3 + 0 + 6 / 5 + 2) / 4)
    assert metrics.smape([0.0], [0.0]) == 0.0


def test_mase_and_naive_scale():
    train = np.array([1.0, 3.0, 2.0, 6.0])  # one-step changes 2, 1, 4: scale 7/3
    assert metrics.naive_scale(train) == pytest.approx(7 / 3)
    assert metrics.naive_scale(train, period=2) == pytest.approx((1 + 3) / 2)
    assert metrics.mase(ACTUAL, PRED, 7 / 3) == pytest.approx((5 / 4) / (7 / 3))
    assert set(metrics.evaluate(ACTUAL, PRED, 1.0)) == set(metrics.METRICS)


def test_by_step_and_percent_better():
    assert metrics.by_step(ACTUAL, PRED) == [pytest.approx(2.0), pytest.approx(0.5)]
    assert metrics.percent_better(8.0, 10.0) == pytest.approx(20.0)
    assert metrics.percent_better(12.0, 10.0) == pytest.approx(-20.0)
