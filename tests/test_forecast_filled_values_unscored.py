"""Values neuralab filled itself (`gaps` fill with a `missing` policy) are no actuals: a test
window whose target was filled, or whose last input was interpolated from its target or a
later observation, is scored for no forecaster, and the run says how many were left out."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from neuralab.data.series import load_series
from neuralab.errors import NeuralabError
from neuralab.forecasting.models import ModelConfig, series_train_config
from neuralab.forecasting.pipeline import ForecastConfig, run_forecast
from neuralab.forecasting.windows import AHEAD, FILLED, WindowConfig, prepare, unscored


pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def walk_with_gaps(path, days: int = 400, kept: float = 0.6, seed: int = 0):
    """A daily random walk with 40% of its days missing from the file, as a logger's export."""
    rng = np.random.default_rng(seed)
    values = 100 + np.cumsum(rng.normal(0, 1, days))
    keep = np.r_[True, rng.random(days - 2) < kept, True]
    dates = pd.date_range("2020-01-01", periods=days)
    pd.DataFrame({"date": dates[keep].strftime("%Y-%m-%d"), "v": values[keep].round(4)}).to_csv(path, index=False)
    return path, pd.Series(values, index=dates), keep


def test_test_windows_on_filled_values_are_scored_for_no_forecaster(tmp_path):
    path, truth, keep = walk_with_gaps(tmp_path / "rw_gaps.csv")
    config = ForecastConfig(data=str(path), gaps="fill", missing="interpolate",
                            windows=WindowConfig(lookback=10, transform="none"), model=ModelConfig("lstm", hidden=[4]),
                            train=series_train_config(epochs=1, device="cpu"), backtest_folds=2)
    result = run_forecast(config, out=tmp_path / "run", verbose=False)
    test = pd.read_csv(tmp_path / "run" / "forecast.csv", parse_dates=["time"]).query("split == 'test'")
    real = pd.Series(keep, index=truth.index)
    # every scored target is an observation, and the one before it too (no input interpolated from it)
    assert real[test["time"]].all() and real[test["time"] - pd.Timedelta(days=1)].all()
    assert test["actual"].to_numpy() == pytest.approx(truth[test["time"]].to_numpy(), abs=1e-4)
    persistence = float(np.abs(test["persistence"] - test["actual"]).mean())
    assert persistence == pytest.approx(result.test["persistence"]["mae"], rel=1e-9)
    left = result.results["test_left_out"]
    prepared = prepare(load_series(path, gaps="fill", missing="interpolate"), WindowConfig(lookback=10))
    all_test = int((np.asarray(prepared.all.rows)[:, 0] >= prepared.boundaries[1]).sum())
    assert left["filled_target"] > 0 and left["interpolated_from_later"] > 0
    assert left["filled_target"] + left["interpolated_from_later"] + len(test) == all_test
    assert f"Left out of every forecaster's score: {all_test - len(test)} of {all_test} test windows" in \
        result.headline["sentence"]
    # as the library names the policy (`missing` interpolate) and as the CLI does (--missing interpolate)
    assert "whose target was filled by `missing` interpolate and " in result.headline["sentence"]
    assert "whose last input was interpolated by `missing` interpolate from the target" in result.headline["sentence"]
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["test_left_out"] == left
    val = saved["val_left_out"]
    assert val == {"filled_target": int((prepared.split == unscored("val", FILLED)).sum()),
                   "interpolated_from_later": int((prepared.split == unscored("val", AHEAD)).sum())}
    assert val["filled_target"] > 0 and saved["windows"]["val"] == len(prepared.val)
    # the same windows for every forecaster and the backtest's folds
    assert {m["mae"] is not None for m in result.test.values()} == {True}
    assert sum(f["windows"] for f in result.backtest) == len(test)


def test_validation_windows_on_filled_values_are_left_out_and_training_windows_kept(tmp_path):
    path, _, keep = walk_with_gaps(tmp_path / "rw_gaps.csv")
    series = load_series(path, gaps="fill", missing="interpolate")
    p = prepare(series, WindowConfig(lookback=10, transform="none"))
    rows = np.asarray(p.val.rows)
    # early stopping, the intervals and the transform's choice see observed targets after observed inputs only
    assert len(p.val) and keep[rows].all() and keep[rows[:, 0] - 1].all()
    assert (p.split == unscored("val", FILLED)).sum() and (p.split == unscored("val", AHEAD)).sum()
    # training still learns from the filled rows: every window the split gives it
    train = np.asarray(p.train.rows)
    assert not keep[train].all() and len(p.train) == (p.split == "train").sum()


def test_a_gapless_series_keeps_every_window_and_scores_as_without_a_missing_policy(tmp_path):
    path, _, _ = walk_with_gaps(tmp_path / "full.csv", kept=1.1)
    scored = []
    for missing in ("error", "ffill", "interpolate"):
        config = ForecastConfig(data=str(path), missing=missing, windows=WindowConfig(lookback=10, transform="none"),
                                model=ModelConfig("lstm", hidden=[4]), train=series_train_config(epochs=1, device="cpu"),
                                backtest_folds=2)
        result = run_forecast(config, out=tmp_path / missing, verbose=False)
        scored.append((result.results["windows"], result.test, result.results["val"]))
        assert result.results["test_left_out"] == result.results["val_left_out"] == \
            {"filled_target": 0, "interpolated_from_later": 0}
        assert "Left out of" not in result.headline["sentence"]
    assert scored[0] == scored[1] == scored[2]


def test_a_horizon_that_spans_a_weekly_gap_is_refused_naming_the_horizon_and_the_policy(tmp_path):
    rng = np.random.default_rng(2)
    dates = pd.date_range("2020-01-01", periods=420)
    weekdays = dates.dayofweek != 6  # a logger that is off on Sundays
    pd.DataFrame({"date": dates[weekdays].strftime("%Y-%m-%d"),
                  "v": np.cumsum(rng.normal(size=420))[weekdays].round(4)}).to_csv(tmp_path / "no_sundays.csv",
                                                                                   index=False)
    with pytest.raises(NeuralabError, match=r"filled by missing ffill: every window of horizon 7 holds one.*"
                                            r"use a horizon of at most 6"):
        prepare(load_series(tmp_path / "no_sundays.csv", gaps="fill", missing="ffill"),
                WindowConfig(lookback=10, horizon=7))
    with pytest.raises(NeuralabError, match=r"or last input was filled by missing interpolate.*at most 5"):
        prepare(load_series(tmp_path / "no_sundays.csv", gaps="fill", missing="interpolate"),
                WindowConfig(lookback=10, horizon=7))
    # the horizon the refusal offers is scored
    assert len(prepare(load_series(tmp_path / "no_sundays.csv", gaps="fill", missing="ffill"),
                       WindowConfig(lookback=10, horizon=6)).test)


def test_a_test_span_left_with_no_observation_is_refused_in_one_line(tmp_path):
    rng = np.random.default_rng(1)
    dates = pd.date_range("2020-01-01", periods=300)
    keep = np.r_[np.ones(250, bool), np.zeros(49, bool), True]  # the last 50 days: one observation
    pd.DataFrame({"date": dates[keep].strftime("%Y-%m-%d"), "v": np.cumsum(rng.normal(size=300))[keep]}).to_csv(
        tmp_path / "tail.csv", index=False)
    with pytest.raises(NeuralabError, match="every test window.s target or last input was filled by missing interpolate: nothing"):
        prepare(load_series(tmp_path / "tail.csv", gaps="fill", missing="interpolate"), WindowConfig(lookback=10))


def test_an_outage_over_the_whole_validation_span_is_refused_not_trained_without_validation(tmp_path):
    """Every validation window left out: the run went on with no early stopping, no transform
    chosen and no intervals, and said only that the windows were left out."""
    rng = np.random.default_rng(4)
    dates = pd.date_range("2020-01-01", periods=400)
    keep = np.ones(400, bool)
    keep[250:350] = False  # the logger was down over what the validation span would be
    path = tmp_path / "outage.csv"
    pd.DataFrame({"date": dates[keep].strftime("%Y-%m-%d"),
                  "v": (100 + np.cumsum(rng.normal(0, 1, 400)))[keep].round(4)}).to_csv(path, index=False)
    series = load_series(path, gaps="fill", missing="interpolate")
    with pytest.raises(NeuralabError, match=r"outage.csv: every validation window's target or last input was filled "
                                            r"by missing interpolate, so nothing could validate the network on it \(validation takes windows of every "
                                            r"series\); "):
        prepare(series, WindowConfig(lookback=10, transform="none"))


def test_windows_left_out_of_validation_alone_are_said_with_their_reasons(tmp_path):
    """It said "Left out of validation too, for the same reasons", with no reasons said before it."""
    rng = np.random.default_rng(4)
    dates = pd.date_range("2020-01-01", periods=400)
    keep = np.ones(400, bool)
    keep[300:312] = False  # a short outage inside the validation span only
    path = tmp_path / "outage.csv"
    pd.DataFrame({"date": dates[keep].strftime("%Y-%m-%d"),
                  "v": (100 + np.cumsum(rng.normal(0, 1, 400)))[keep].round(4)}).to_csv(path, index=False)
    config = ForecastConfig(data=str(path), gaps="fill", missing="interpolate",
                            windows=WindowConfig(lookback=10, transform="none"), model=ModelConfig("lstm", hidden=[4]),
                            train=series_train_config(epochs=1, device="cpu"), backtest_folds=2)
    result = run_forecast(config, out=tmp_path / "run", verbose=False)
    left = result.results["val_left_out"]
    assert result.results["test_left_out"] == {"filled_target": 0, "interpolated_from_later": 0} and left["filled_target"]
    assert (f"Left out of validation: {sum(left.values())} of " in result.headline["sentence"]
            and f"windows, {left['filled_target']} whose target was filled by" in result.headline["sentence"]
            and "too" not in result.headline["sentence"].split("Left out of validation")[1])
