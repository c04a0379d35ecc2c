"""Forecast verdicts say no more than the numbers hold: a winner only beyond the noise of
the paired per-window gain, float-rounding ties as ties, random walks recognised, a
multi-series report that agrees with itself, and undefined metrics said as n/a."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from neuralab.data.series import load_series
from neuralab.forecasting import metrics
from neuralab.forecasting.backtest import rolling_origin, summarize
from neuralab.forecasting.baselines import Drift, Persistence
from neuralab.forecasting.models import ModelConfig, series_train_config
from neuralab.forecasting.pipeline import ForecastConfig, run_forecast
from neuralab.forecasting.verdict import character, verdict
from neuralab.forecasting.windows import WindowConfig, prepare


pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def ar1(n: int, phi: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = np.zeros(n)
    for t in range(1, n):
        y[t] = phi * y[t - 1] + rng.normal()
    return y


def judged(actual: np.ndarray, forecasts: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """Test metrics and per-window errors of one-step forecasts, as the pipeline hands them over."""
    test = {n: metrics.evaluate(actual, p, 1.0) for n, p in forecasts.items()}
    errors = {n: metrics.window_errors(actual[:, None], p[:, None]) for n, p in forecasts.items()}
    return test, errors


def test_a_gain_within_the_noise_is_a_tie_and_a_real_one_is_named():
    # The review's case: an AR(1) of 200 rows, the last 30 the test span, where a forecaster a few
    # percent better than persistence over 30 windows is well within the noise.
    y = ar1(200, 0.6, seed=4)
    actual, last = y[170:], y[169:-1]
    noisy = 0.6 * last + np.random.default_rng(1).normal(0, 0.9, 30)  # the right model, badly estimated
    test, errors = judged(actual, {"lstm": noisy, "persistence": last, "drift": last + (y[169] - y[0]) / 169})
    pct = metrics.percent_better(test["lstm"]["mae"], test["persistence"]["mae"])
    gain = metrics.paired_gain(errors["persistence"], errors["lstm"])
    assert abs(pct) > 1 and abs(gain["gain"]) < 2 * gain["standard_error"]  # the old 1% margin called this
    v = verdict(test, "lstm", errors=errors)
    assert v["outcome"] == "tie" and "no clear difference" in v["sentence"]
    assert "± " in v["sentence"] and "over 30 windows" in v["sentence"] and "hindsight" in v["sentence"]
    # the same model on 2,000 test windows: the gain is real and said so
    y = ar1(4000, 0.6, seed=5)
    actual, last = y[2000:], y[1999:-1]
    test, errors = judged(actual, {"lstm": 0.6 * last, "persistence": last, "drift": last})
    v = verdict(test, "lstm", errors=errors)
    assert v["outcome"] == "network" and v["sentence"].startswith("lstm is the best forecaster")


def test_a_handful_of_test_windows_judges_nothing_and_few_need_students_t():
    """A random walk whose 2 test windows' gains came out equal: a standard error of ~0, and the
    verdict said "beats" persistence. Fewer than MIN_WINDOWS windows are too few to judge; a few
    more are judged by Student's t for their count, not by 2 standard errors."""
    from scipy import stats

    y = 100 + np.cumsum(np.random.default_rng(7).normal(size=60))
    actual, last = y[-2:], y[-3:-1]
    test, errors = judged(actual, {"lstm": last + 0.6 * np.sign(actual - last), "persistence": last,
                                   "drift": last + (y[-3] - y[0]) / (len(y) - 3)})
    gain = metrics.paired_gain(errors["persistence"], errors["lstm"])
    assert gain["gain"] > 1e6 * gain["standard_error"]  # equal gains: "beats" under any multiple of the SE
    v = verdict(test, "lstm", errors=errors)
    assert v["outcome"] == "too-short" and not v["clearly_beats_persistence"]
    assert v["sentence"].startswith(f"The test span is too short to judge: 2 test windows, and a better or worse "
                                    f"takes at least {metrics.MIN_WINDOWS}.")
    assert "a longer series, a larger `test_fraction`, or a smaller `horizon` or `stride`." in v["sentence"] \
        and "lookback" not in v["sentence"] and "beats" not in v["sentence"]
    for n in (2, 3, 10, 25, 31, 45, 200):  # the table and its expansion, against scipy's quantile
        assert metrics.critical(n) == pytest.approx(max(metrics.SIGNIFICANCE, stats.t.ppf(0.975, n - 1)), abs=1e-3)
    # 12 windows whose gain lies 2.1 standard errors out: beyond 2, within t's 2.20 for 11 degrees of freedom
    d = np.random.default_rng(0).normal(size=12)
    d = (d - d.mean()) / d.std(ddof=1) * np.sqrt(12)  # a standard error of exactly 1
    few = metrics.paired_gain(5 + 2.1 + d, np.full(12, 5.0))
    assert few["standard_error"] == pytest.approx(1) and metrics.difference(few) == 0
    assert "(2.2 SE) over 12 windows" in metrics.gain_words(few)
    assert metrics.difference(metrics.paired_gain(5 + 2.3 + d, np.full(12, 5.0))) == 1


def test_overlapping_windows_widen_the_standard_error():
    # Horizon 5 with stride 1: neighbouring windows share four targets, so their gains move together
    rng = np.random.default_rng(0)
    shared = np.convolve(rng.normal(size=600), np.ones(5) / 5, mode="valid")  # a gain correlated over 5 windows
    plain = metrics.paired_gain(shared + 1, np.ones_like(shared))
    hac = metrics.paired_gain(shared + 1, np.ones_like(shared), lag=4)
    assert hac["gain"] == pytest.approx(plain["gain"]) and hac["standard_error"] > 1.8 * plain["standard_error"]


def random_walk_gains(horizon: int, windows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-window MAE of two forecasts equally good on a random walk (the last value + 1 and - 1)
    over ``windows`` windows of ``horizon`` steps, stride 1: any "clear" difference is false."""
    y = np.cumsum(np.random.default_rng(seed).normal(size=windows + horizon + 1))
    ahead = np.lib.stride_tricks.sliding_window_view(y[1:], horizon)[:windows]
    last = y[:windows, None]
    return np.abs(ahead - last - 1).mean(1), np.abs(ahead - last + 1).mean(1)


def test_overlapping_windows_name_no_false_winner_beyond_the_promised_rate():
    """Horizon 7 over 114 windows said "clearly better" 11% of the time between two equal
    forecasts (horizon 100 over 21 windows: 91%), where 2 standard errors promise 5%: a
    Newey-West standard error over a bandwidth of H windows is biased low. With fixed-b critical
    values over a wider bandwidth it stays near 5%, and a span of few horizons is too short."""
    lag = metrics.shared_target_lag(7, 1)
    false = [metrics.difference(metrics.paired_gain(*random_walk_gains(7, 114, seed), lag)) != 0
             for seed in range(400)]
    assert np.mean(false) < 0.08
    far = metrics.paired_gain(*random_walk_gains(100, 21, 0), metrics.shared_target_lag(100, 1))
    assert metrics.too_few(far) and metrics.difference(far) == 0
    assert metrics.independent_windows(far) == pytest.approx(0.21)
    # horizon 1 shares no target: Student's t as before
    assert metrics.critical(114, 0) == metrics.critical(114)
    # the fixed-b value against its own distribution: the mean of white noise over its Bartlett
    # standard error with bandwidth b * n
    n, lag = 300, 29  # b = 0.3
    gains = [metrics.paired_gain(row, np.zeros(n), lag) for row in np.random.default_rng(1).normal(size=(2000, n))]
    t = [abs(g["gain"]) / g["standard_error"] for g in gains]
    assert metrics.bandwidth(lag) == 0.3 * n
    assert metrics.critical(n, lag) == pytest.approx(np.quantile(t, 0.95), rel=0.05)


def test_a_test_span_of_few_horizons_is_too_short_to_judge():
    # Horizon 100 over 21 windows: the windows share targets and span a fifth of one horizon
    reference, errors = random_walk_gains(100, 21, 3)
    test = {"lstm": {"mae": float(errors.mean())}, "persistence": {"mae": float(reference.mean())}}
    v = verdict(test, "lstm", errors={"lstm": errors, "persistence": reference}, lag=99)
    assert v["outcome"] == "too-short" and not v["clearly_beats_persistence"]
    assert v["sentence"].startswith("The test span is too short to judge: 21 test windows that share targets, "
                                    f"worth 0.21 that share none, and a better or worse takes at least "
                                    f"{metrics.MIN_WINDOWS}.")
    assert "a longer series, a larger `test_fraction`, or a smaller `horizon`." in v["sentence"]


def test_float_rounding_ties_share_a_rank_and_win_no_folds():
    y = np.cumsum(np.random.default_rng(2).normal(size=300))
    frame = pd.DataFrame({"y": y}, index=pd.date_range("2020-01-01", periods=len(y), name="date"))
    p = prepare(load_series(frame, "y"), WindowConfig(lookback=10, horizon=1))
    persistence, copy = Persistence().fit(p.train), Persistence().fit(p.train)
    copy.name = "network"
    copy.predict = lambda w: Persistence.predict(persistence, w) * (1 - 1e-12)  # the same forecast, rounded apart
    records = rolling_origin(p, [persistence, copy], folds=4)
    summary = summarize(records)
    assert summary["network"]["folds_beating_persistence"] == 0 and summary["network"]["folds_tied_with_persistence"] == 4
    test = {n: records[0]["metrics"][n] for n in ("network", "persistence")}
    test["drift"] = {"mae": 10 * test["persistence"]["mae"]}
    v = verdict(test, "network")
    assert v["ranks"]["network"] == v["ranks"]["persistence"] == 1 and v["network_rank"] == 1


def test_backtest_mean_weights_folds_by_their_windows():
    values = 5 + np.sin(np.arange(230) / 3) + 0.01 * np.arange(230) ** 1.5
    frame = pd.DataFrame({"y": values}, index=pd.date_range("2020-01-01", periods=len(values), name="date"))
    p = prepare(load_series(frame, "y"), WindowConfig(lookback=10, horizon=1))
    forecasters = [Persistence().fit(p.train), Drift().fit(p.train)]
    records = rolling_origin(p, forecasters, folds=4)
    assert len({r["windows"] for r in records}) > 1  # folds of unequal size
    overall = metrics.mae(p.test.future, forecasters[0].predict(p.test))
    assert summarize(records)["persistence"]["mae_mean"] == pytest.approx(overall)


def test_random_walks_are_recognised_whatever_their_length_and_stationary_series_are_not():
    walks = [np.cumsum(np.random.default_rng(s).normal(size=420)) for s in range(60)]
    found = sum(character(w, "value", 60)["kind"] == "random-walk" for w in walks)
    assert found >= 48  # ~5% are rejected by each of the two 5% tests
    stationary = [ar1(420, 0.8, seed) + 50 for seed in range(60)]
    assert sum(character(s, "value", 60)["kind"] == "random-walk" for s in stationary) <= 6


def test_seasonal_advice_asks_for_a_longer_lookback_only_when_it_is_shorter_than_the_season():
    scores = {"lstm": {"mae": 2.0}, "persistence": {"mae": 3.0}, "linear-ar": {"mae": 1.0}}
    season = {"kind": "seasonal", "period": 24}
    covers = verdict(scores, "lstm", kind=season, lookback=48)["advice"]
    short = verdict(scores, "lstm", kind=season, lookback=12)["advice"]
    assert "season of 24 steps" in covers and "lookback" not in covers
    assert "a `lookback` that covers at least one season" in short


def test_seasonal_advice_claims_no_win_the_table_refutes():
    """"forecasters that see it do best" was printed where seasonal-naive ranked last in the table above it."""
    scores = {"lstm": {"mae": 2.0}, "persistence": {"mae": 3.0}, "linear-ar": {"mae": 1.0},
              "seasonal-naive": {"mae": 4.0}}
    v = verdict(scores, "lstm", kind={"kind": "seasonal", "period": 12}, lookback=24)
    assert v["ranking"][-1] == "seasonal-naive"
    assert "season of 12 steps" in v["advice"] and "do best" not in v["advice"] and "best" not in v["advice"]


def test_mase_of_a_constant_training_span_is_undefined_and_mape_with_many_zeros_is_na():
    values = np.r_[np.full(200, 3.0), 3.0 + 0.5 * np.arange(100)]  # constant, then a ramp in the test span
    frame = pd.DataFrame({"y": values}, index=pd.date_range("2020-01-01", periods=len(values), name="date"))
    p = prepare(load_series(frame, "y"), WindowConfig(lookback=10, horizon=1, val_fraction=0.1, test_fraction=0.25))
    assert p.mase_scale is None
    scores = metrics.evaluate(p.test.future, Persistence().fit(p.train).predict(p.test), p.mase_scale)
    assert scores["mase"] is None and scores["mae"] == pytest.approx(0.5)
    rain = np.where(np.random.default_rng(0).random(200) < 0.4, 0.0, 3.0)  # 40% dry days
    assert np.isnan(metrics.evaluate(rain, rain + 1, 1.0)["mape"]) and metrics.zeros(rain) > 40
    few = np.r_[0.0, np.full(99, 2.0)]
    assert metrics.evaluate(few, few + 1, 1.0)["mape"] == pytest.approx(50.0)


def _config(path, **kw) -> ForecastConfig:
    return ForecastConfig(data=str(path), target="value", windows=WindowConfig(lookback=14, transform="diff"),
                          model=ModelConfig("lstm", hidden=[8]), train=series_train_config(epochs=1, device="cpu"),
                          **kw)


def test_a_network_that_kept_persistence_ties_with_it_everywhere(tmp_path):
    y = 100 + np.cumsum(np.random.default_rng(7).normal(size=420))
    frame = pd.DataFrame({"date": pd.date_range("2020-01-01", periods=len(y)).strftime("%Y-%m-%d"), "value": y})
    frame.to_csv(tmp_path / "walk.csv", index=False)
    result = run_forecast(_config(tmp_path / "walk.csv", baselines=["persistence", "drift", "linear-ar"]),
                          out=tmp_path / "run", verbose=False)
    results, head = result.results, result.headline
    assert head["kind"]["kind"] == "random-walk"
    assert results["kept_linear_start"] and results["linear_start"] == "no change"  # persistence, on changes
    assert head["ranks"]["lstm"] == head["ranks"]["persistence"]
    assert results["backtest_summary"]["lstm"]["folds_beating_persistence"] == 0
    assert not head["beats_persistence"] and not head["clearly_beats_persistence"]
    page = (tmp_path / "run" / "report.html").read_text()
    assert "curves are of the training that was discarded" in page and "Best epoch 0" not in page
    n = results["intervals"]["coverage"]["80"]["targets"]
    assert n == results["test_targets"] and f"of the {n:,} test targets" in page
    assert "sub-spans of the test span" in page
    stored = json.loads((tmp_path / "run" / "results.json").read_text())
    assert stored["headline"]["sentence"] == head["sentence"]


def test_a_series_too_short_to_judge_is_said_so_in_its_row_backtest_and_report_not_tied(tmp_path):
    """Two random walks, one of 60 rows: 9 test windows, folds of 2 or 3. Its verdict said too
    short to judge, while its versus_persistence said "ties with" and its folds counted as tied."""
    rng = np.random.default_rng(5)
    frames = [pd.DataFrame({"date": pd.date_range("2020-01-01", periods=n).strftime("%Y-%m-%d"), "id": name,
                            "value": 100 + np.cumsum(rng.normal(size=n))}) for name, n in (("long", 400), ("short", 60))]
    pd.concat(frames).to_csv(tmp_path / "two.csv", index=False)
    result = run_forecast(_config(tmp_path / "two.csv", series_column="id", backtest_folds=4), out=tmp_path / "run",
                          verbose=False)
    short = result.results["series"]["short"]
    assert short["outcome"] == "too-short" and short["versus_persistence"] == "too short to judge"
    folds = short["backtest_summary"]["lstm"]
    assert folds["folds_too_short"] == folds["folds"] == 4 and folds["folds_tied_with_persistence"] == 0
    assert result.results["series"]["long"]["backtest_summary"]["lstm"]["folds_too_short"] == 0
    assert "Too short to judge against persistence, fewer than 10 test windows: short." in result.headline["sentence"]
    assert "on long" in result.headline["sentence"] and "short" not in result.headline["sentence"].split("Too short")[0]
    page = (tmp_path / "run" / "report.html").read_text()
    assert "<td>too short to judge</td><td>The test span is too short to judge" in page
    assert "folds beating persistence (beyond the paired gain&#x27;s noise: 2 SE, Student&#x27;s t or fixed-b, on 10 " \
        "windows that share no target or more)" in page and "beyond 2 SE of" not in page
    # the pooled folds: short's 4 neither won nor tied
    assert re.search(r"<tr class=hl><td>lstm</td>(<td>[^<]*</td>){2}<td>0 of 8 \(\d tied, 4 too short to judge\)", page)


def test_a_multi_series_report_judges_each_series_in_its_own_units(tmp_path):
    rng = np.random.default_rng(3)
    t = np.arange(400)
    big = 1000 * (50 + 10 * np.sin(2 * np.pi * t / 7) + rng.normal(0, 1, len(t)))  # weekly, in thousands
    small = 100 + np.cumsum(rng.normal(size=len(t)))                               # a random walk
    dates = pd.date_range("2020-01-01", periods=len(t)).strftime("%Y-%m-%d")
    pd.concat([pd.DataFrame({"date": dates, "id": name, "value": v}) for name, v in (("big", big), ("small", small))]
              ).to_csv(tmp_path / "multi.csv", index=False)
    result = run_forecast(_config(tmp_path / "multi.csv", series_column="id", backtest_folds=3),
                          out=tmp_path / "run", verbose=False)
    results, head = result.results, result.headline
    series = results["series"]
    assert series["big"]["kind"]["kind"] == "seasonal" and series["small"]["kind"]["kind"] == "random-walk"
    assert "The series differ in kind" in head["advice"]
    assert "Series by series, against persistence" in head["sentence"]
    summary = results["backtest_summary"]["lstm"]
    assert summary["metric"] == "mase" and summary["folds"] == 6 and "mae_mean" not in summary  # no pooled units
    assert series["small"]["backtest_summary"]["lstm"]["folds"] == 3
    assert "big:" in results["forecasters"]["seasonal-naive"] and "small:" in results["forecasters"]["seasonal-naive"]
    page = (tmp_path / "run" / "report.html").read_text()
    assert "Series by series" in page and "6 folds over 2 series" in page and "0 folds" not in page
    # the "vs persistence" column is by the verdict's MASE, as the verdict's own percentage is
    pct = metrics.percent_better(results["test"]["lstm"]["mase"], results["test"]["persistence"]["mase"])
    assert f"{abs(pct):.1f}% {'better' if pct > 0 else 'worse'}" in page


def test_a_report_too_short_to_judge_shows_its_verdict_in_neither_colour(tmp_path):
    """The report painted a verdict that judged nothing orange, as if the network had lost."""
    y = 100 + np.cumsum(np.random.default_rng(5).normal(size=60))
    frame = pd.DataFrame({"date": pd.date_range("2020-01-01", periods=len(y)).strftime("%Y-%m-%d"), "value": y})
    frame.to_csv(tmp_path / "short.csv", index=False)
    result = run_forecast(_config(tmp_path / "short.csv"), out=tmp_path / "run", verbose=False)
    assert result.headline["outcome"] == "too-short"
    page = (tmp_path / "run" / "report.html").read_text()
    assert '<p class="verdict">The test span is too short to judge' in page and 'class="verdict bad"' not in page
