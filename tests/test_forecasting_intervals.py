"""Conformal intervals: calibrated on one span, they cover about their level on the next."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neuralab.data.series import load_series
from neuralab.forecasting.baselines import LinearAR
from neuralab.forecasting.intervals import Conformal, window_scale
from neuralab.forecasting.windows import WindowConfig, prepare


def test_intervals_cover_their_level_on_the_test_span():
    rng = np.random.default_rng(0)
    y = np.zeros(6000)
    for t in range(1, len(y)):  # an AR(1) around a daily cycle: errors of a fitted AR are exchangeable
        y[t] = 0.8 * y[t - 1] + rng.normal()
    y += 5 * np.sin(2 * np.pi * np.arange(len(y)) / 24)
    frame = pd.DataFrame({"y": y}, index=pd.date_range("2020-01-01", periods=len(y), freq="h"))
    p = prepare(load_series(frame, "y"), WindowConfig(lookback=30, horizon=3))
    ar = LinearAR().fit(p.train)
    conformal = Conformal.calibrate([(p.val, ar.predict(p.val), 0.01)])
    assert conformal.calibration == len(p.val) and set(conformal.quantiles) == {0.8, 0.95}
    assert (conformal.quantiles[0.95] > conformal.quantiles[0.8]).all()
    coverage = conformal.coverage([(p.test, ar.predict(p.test), 0.01)])
    assert coverage["80"]["coverage"] == pytest.approx(0.8, abs=0.04)
    assert coverage["95"]["coverage"] == pytest.approx(0.95, abs=0.03)
    assert len(coverage["95"]["by_step"]) == 3
    lower, upper = conformal.bounds(p.test, ar.predict(p.test), 0.01)[0.8]
    width = window_scale(p.test, 0.01)[:, None] * conformal.quantiles[0.8]
    np.testing.assert_allclose(upper - lower, 2 * width)
    assert Conformal.calibrate([]) is None
