"""Windows and splits: shapes, no leakage, scaler fitted on train only, exact inversion."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neuralab.data.series import load_series
from neuralab.errors import NeuralabError
from neuralab.forecasting.windows import Scaler, WindowConfig, last_window, minimum_rows, prepare


def series(values, start="2020-01-01", features: dict | None = None):
    index = pd.date_range(start, periods=len(values), freq="D", name="date")
    frame = pd.DataFrame({"y": np.asarray(values, dtype=float), **(features or {})}, index=index)
    return load_series(frame, "y", list(features or {}))


@pytest.mark.parametrize("horizon, stride, transform", [(1, 1, "none"), (5, 1, "diff"), (3, 2, "log-return")])
def test_every_training_target_precedes_every_val_and_test_target(horizon, stride, transform):
    s = series(np.exp(np.linspace(0, 1, 300)))
    p = prepare(s, WindowConfig(lookback=20, horizon=horizon, stride=stride, transform=transform))
    train, val, test = p.train, p.val, p.test
    assert train.rows.max() < val.rows.min() <= val.rows.max() < test.rows.min()
    assert train.times.max() < val.times.min() and val.times.max() < test.times.min()
    assert train.rows.max() < p.boundaries[0] <= val.rows.min()  # training targets stay before the cut
    # inputs come strictly before their targets, and a window's targets are consecutive rows
    for w in (train, val, test):
        assert (np.diff(w.rows, axis=1) == 1).all()
        assert w.x.shape == (len(w), 20, 1) and w.y.shape == (len(w), horizon)
    assert sum(p.counts().values()) <= len(p.split)


def test_windows_hold_the_right_values():
    s = series(np.arange(100.0))
    p = prepare(s, WindowConfig(lookback=5, horizon=2, scaler="none"))
    w = p.all
    assert w.x[0, :, 0].tolist() == [0, 1, 2, 3, 4] and w.y[0].tolist() == [5, 6]
    assert w.past[3].tolist() == [3, 4, 5, 6, 7] and w.future[3].tolist() == [8, 9]
    assert w.rows[3].tolist() == [8, 9]
    assert pd.Timestamp(w.times[0, 0]) == pd.Timestamp("2020-01-06")


def test_scaler_sees_the_training_rows_only():
    values = np.concatenate([np.full(70, 10.0), np.full(30, 1000.0)]) + np.arange(100) * 0.01
    p = prepare(series(values), WindowConfig(lookback=5, val_fraction=0.15, test_fraction=0.15))
    assert p.boundaries == (70, 85)
    assert p.scaler.center[0] == pytest.approx(values[:70].mean())
    assert p.scaler.scale[0] == pytest.approx(values[:70].std())


@pytest.mark.parametrize("transform", ["none", "diff", "log-return"])
@pytest.mark.parametrize("scaler", ["standard", "minmax", "none"])
def test_decode_inverts_scaling_and_transform_exactly(transform, scaler):
    rng = np.random.default_rng(0)
    prices = 100 * np.exp(np.cumsum(0.01 * rng.standard_normal(200)))
    p = prepare(series(prices), WindowConfig(lookback=10, horizon=4, transform=transform, scaler=scaler))
    for w in (p.train, p.test):
        np.testing.assert_allclose(w.decode(w.y.astype(np.float64)), w.future, rtol=1e-5)


def test_scaler_round_trip_and_constant_columns():
    x = np.array([[1.0, 5.0], [3.0, 5.0], [5.0, 5.0]])
    s = Scaler.fit("standard", x)
    np.testing.assert_allclose(s.transform(x)[:, 0], [-1.2247449, 0, 1.2247449], rtol=1e-6)
    assert s.scale[1] == 1.0  # a constant column is centred, not divided by zero
    np.testing.assert_allclose(s.inverse(s.transform(x)[:, 0]), x[:, 0])
    assert Scaler(**s.to_dict()) == s


def test_features_ride_along_and_only_the_target_is_transformed():
    s = series(np.arange(1.0, 51.0), features={"f": np.arange(50.0) * 2})
    p = prepare(s, WindowConfig(lookback=4, transform="diff", scaler="none"))
    w = p.all
    assert w.x.shape[2] == 2
    assert (w.x[:, :, 0] == 1).all()                   # the differences of 1, 2, 3, ...
    assert w.x[0, :, 1].tolist() == [2, 4, 6, 8]       # feature levels from the second row on


def test_too_short_series_are_clear_errors():
    # the true minimum at once: 61 rows would only meet the next refusal, "need at least 87 rows"
    least = minimum_rows(WindowConfig(lookback=60))
    with pytest.raises(NeuralabError, match=rf"50 rows is fewer than lookback 60 \+ horizon 1; .*at least {least} rows"):
        prepare(series(np.arange(50.0)), WindowConfig(lookback=60))
    need = minimum_rows(WindowConfig(lookback=20, horizon=3))
    prepare(series(np.arange(float(need))), WindowConfig(lookback=20, horizon=3))
    with pytest.raises(NeuralabError, match=f"leave no .* window .* need at least {need} rows"):
        prepare(series(np.arange(float(need - 1))), WindowConfig(lookback=20, horizon=3))


def test_log_return_needs_positive_values_and_config_is_checked():
    with pytest.raises(NeuralabError, match="values <= 0; use transform 'diff'"):
        prepare(series(np.linspace(-1, 1, 100)), WindowConfig(lookback=5, transform="log-return"))
    with pytest.raises(NeuralabError, match="transform='pct'"):
        WindowConfig(transform="pct").check()
    with pytest.raises(NeuralabError, match="lookback=0"):
        WindowConfig(lookback=0).check()
    with pytest.raises(NeuralabError, match="needs a concrete transform"):
        prepare(series(np.arange(1.0, 100.0)), WindowConfig(lookback=5, transform="auto"))


def test_windows_are_views_of_one_source_not_copies():
    s = series(np.arange(1000.0), features={"f": np.arange(1000.0) * 2})
    p = prepare(s, WindowConfig(lookback=30, horizon=4))
    for w in (p.all, p.train, p.val, p.test):
        for view in (w.x, w.y, w.past, w.future):
            assert np.shares_memory(view, w.source.scaled) or np.shares_memory(view, w.source.levels)
            assert not view.flags.writeable
    assert p.train.x.base is not None and p.all.x.nbytes > 25 * p.all.source.scaled.nbytes  # a copy: 29x
    blocks = list(p.test.batches(size=50))
    assert sum(len(b) for b in blocks) == len(p.test) and np.shares_memory(blocks[-1].x, p.test.source.scaled)
    np.testing.assert_array_equal(np.concatenate([b.future for b in blocks]), p.test.future)
    picked = p.all.take(np.array([3, 7, 8]))  # not evenly spaced: a copy, same values
    assert picked.x[1, 0, 0] == p.all.x[7, 0, 0] and picked.rows[:, 0].tolist() == p.all.rows[[3, 7, 8], 0].tolist()


def test_last_window_forecasts_past_the_end_on_the_grid():
    s = series(np.arange(30.0))
    p = prepare(s, WindowConfig(lookback=5, horizon=3))
    w = last_window(s, p.config, p.scaler)
    assert w.past[0].tolist() == [25, 26, 27, 28, 29] and np.isnan(w.future).all()
    assert [str(pd.Timestamp(t).date()) for t in w.times[0]] == ["2020-01-31", "2020-02-01", "2020-02-02"]
    business = load_series("sp500")
    tail = last_window(business, WindowConfig(lookback=5, horizon=2), Scaler.fit("none", business.values))
    assert [str(pd.Timestamp(t).date()) for t in tail.times[0]] == ["2019-01-01", "2019-01-02"]
