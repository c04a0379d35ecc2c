"""Adaptive conformal intervals: they cover about their level on a test span whose errors
drift away from the validation span's, and use no error that was not yet known."""

from __future__ import annotations

import numpy as np
import pytest

from neuralab.data.series import load_series
from neuralab.forecasting.baselines import LinearAR
from neuralab.forecasting.intervals import coverage, rolling
from neuralab.forecasting.windows import WindowConfig, prepare


@pytest.mark.parametrize("horizon", [1, 7])
def test_intervals_cover_their_level_on_real_weather(horizon):
    p = prepare(load_series("seattle-weather"), WindowConfig(lookback=60, horizon=horizon))
    ar = LinearAR().fit(p.train)
    val, test = ar.predict(p.val), ar.predict(p.test)
    iv = rolling(p.val.future - val, p.test.future, test)
    cov = coverage([iv])
    assert cov["80"]["coverage"] == pytest.approx(0.80, abs=0.05)
    assert cov["95"]["coverage"] == pytest.approx(0.95, abs=0.05)
    assert len(cov["95"]["by_step"]) == horizon
    lower80, upper80 = iv.test[0.8]
    lower95, upper95 = iv.test[0.95]
    assert (lower95 <= lower80).mean() > 0.9 and (upper80 <= upper95).mean() > 0.9  # mostly nested
    assert set(iv.future) == {0.8, 0.95} and iv.future[0.8].shape == (horizon,)


def test_an_interval_never_uses_an_error_not_yet_known():
    rng = np.random.default_rng(0)
    val_errors = rng.normal(0, 1, (200, 3))
    actual = rng.normal(0, 1, (50, 3))
    pred = np.zeros((50, 3))
    base = rolling(val_errors, actual, pred)
    spoiled = actual.copy()
    spoiled[40:] = 1000.0  # huge errors late in the test span
    late = rolling(val_errors, spoiled, pred)
    for level in (0.8, 0.95):  # windows 0..40 (their targets known before window 40's end) are unchanged
        np.testing.assert_array_equal(late.test[level][0][:42], base.test[level][0][:42])
        assert (late.test[level][1][44:] > base.test[level][1][44:]).any()  # misses widen the later ones
