"""The verdict names the best forecaster and ranks the network against the best baseline;
advice fits the kind of series; a constant target is said to be constant."""

from __future__ import annotations

import numpy as np
import pytest

from neuralab.data.series import load_series
from neuralab.forecasting.verdict import character, table, verdict

SCORES = {  # the case: on hourly temperatures linear AR was 2.85x better than the LSTM
    "lstm-stacked": {"mae": 2.85, "rmse": 3.6, "mase": 2.9},
    "persistence": {"mae": 9.7, "rmse": 12.0, "mase": 9.8},
    "linear-ar": {"mae": 1.0, "rmse": 1.3, "mase": 1.01},
    "drift": {"mae": 10.1, "rmse": 12.5, "mase": 10.2},
}


def test_a_run_where_linear_ar_wins_never_headlines_the_network():
    v = verdict(SCORES, "lstm-stacked")
    assert v["best"] == v["best_baseline"] == "linear-ar" and v["outcome"] == "baseline"
    assert v["network_rank"] == 2 and v["ratio_to_best_baseline"] == pytest.approx(2.85)
    assert v["sentence"].startswith("linear-ar is the best forecaster")
    assert "185.0% worse than linear-ar" in v["sentence"]
    assert "lstm-stacked is the best" not in v["sentence"] and "beats persistence" not in v["sentence"]
    assert "Against persistence alone it beats it (70.6% better)" in v["sentence"]  # said second, not as a headline


def test_network_best_and_tie():
    won = verdict({**SCORES, "lstm-stacked": {"mae": 0.9, "rmse": 1.2, "mase": 0.9}}, "lstm-stacked")
    assert won["outcome"] == "network" and won["best"] == "lstm-stacked" and won["best_baseline"] == "linear-ar"
    assert won["sentence"].startswith("lstm-stacked is the best forecaster") and "10.0% better" in won["sentence"]
    tie = verdict({**SCORES, "lstm-stacked": {"mae": 0.996, "rmse": 1.3, "mase": 1.0}}, "lstm-stacked")
    assert tie["outcome"] == "tie" and "ties with the best baseline, linear-ar" in tie["sentence"]
    pooled = verdict(SCORES, "lstm-stacked", metric="mase")  # several series: ranked by MASE
    assert pooled["metric"] == "mase" and "MASE 1.010" in pooled["sentence"]


def test_constant_target_says_so_instead_of_a_percentage():
    flat = {"lstm": {"mae": 0.2085, "rmse": 0.3, "mase": 0.2085}, "persistence": {"mae": 0.0, "rmse": 0.0, "mase": 0.0}}
    v = verdict(flat, "lstm", kind=character(np.full(300, 7.0), "v", 60))
    assert v["outcome"] == "constant" and "The target is constant (7)" in v["sentence"]
    assert "%" not in v["sentence"] and "worse" not in v["sentence"]


def test_advice_fits_the_kind_of_series():
    prices = character(load_series("sp500").values[:3500, 0], "Close", 60)
    assert prices["kind"] == "random-walk" and prices["prices"]
    t = np.arange(3000)
    hourly = 10 + 5 * np.sin(2 * np.pi * t / 24) + np.random.default_rng(0).normal(0, 0.5, len(t))
    seasonal = character(hourly, "temp", 60)
    assert seasonal == {"kind": "seasonal", "period": 24}
    on_prices = verdict(SCORES, "lstm-stacked", kind=prices)["advice"]
    on_weather = verdict(SCORES, "lstm-stacked", kind=seasonal)["advice"]
    assert "random walk" in on_prices and "season" not in on_prices and "calendar" not in on_prices
    assert "season of 24 steps" in on_weather and "random walk" not in on_weather and "prices" not in on_weather
    assert "`features`" in on_weather and "`calendar`" in on_weather
    # what the run already gives the network is not advised again
    given = verdict(SCORES, "lstm-stacked", kind=seasonal, given=("features", "calendar"))["advice"]
    assert given.endswith("Give the network more to work with: a `lookback` that covers at least one season.")
    partly = verdict(SCORES, "lstm-stacked", given=("features",))["advice"]
    assert partly == "Give the network more to work with: date encodings as `calendar`, or a longer `lookback`."


def test_terminal_table_holds_every_forecaster_and_the_backtest_spread():
    backtest = {n: {"mae_mean": m["mae"], "mae_std": 0.1} for n, m in SCORES.items()}
    text = table(SCORES, backtest, "lstm-stacked").splitlines()
    assert text[0].split()[:4] == ["forecaster", "MAE", "RMSE", "MASE"]
    assert [line.split()[0] for line in text[1:]] == ["linear-ar", "lstm-stacked", "persistence", "drift"]
    assert "<- network" in text[2] and "2.85 ± 0.1" in text[2]


def test_terminal_table_says_what_the_backtest_is_and_when_seasonal_naive_is_persistence(tmp_path):
    """Without a refit the backtest's folds cut the test span again, which read as earlier spans; a
    seasonal naive forecast that found no season equalled persistence to every digit unexplained."""
    from neuralab.forecasting.backtest import rolling_origin, summarize
    from neuralab.forecasting.baselines import Persistence, SeasonalNaive
    from neuralab.forecasting.windows import WindowConfig, prepare

    walk = load_series("sp500")
    p = prepare(walk, WindowConfig(lookback=10))
    fitted = [f.fit(p.train, p.val) for f in (Persistence(), SeasonalNaive())]
    test = {f.name: {"mae": 1.0, "rmse": 1.0, "mase": 1.0} for f in fitted}
    described = {f.name: f.describe() for f in fitted}
    once = table(test, summarize(rolling_origin(p, fitted, 3)), "persistence", forecasters=described)
    assert "backtest: the test span cut into folds, each forecaster as fitted once (not earlier spans)" in once
    assert once.splitlines()[-1] == "no season found: seasonal-naive is persistence"
    refit = table(test, summarize(rolling_origin(p, fitted, 2, refit=True)), "persistence",
                  forecasters={**described, "seasonal-naive": "seasonal-naive (period 5, detected)"})
    assert "backtest:" not in refit and "no season" not in refit


def test_terminal_table_columns_hold_a_long_network_name():
    """A user's module, "torch:lstm_fc.py:Forecaster", pushed its row's figures past the header's."""
    long = "torch:lstm_fc.py:Forecaster"
    scores = {long if n == "lstm-stacked" else n: m for n, m in SCORES.items()}
    text = table(scores, {}, long).splitlines()
    ends = {line.index(f"{scores[name]['mae']:.4g}") + len(f"{scores[name]['mae']:.4g}")
            for line, name in zip(text[1:], ["linear-ar", long, "persistence", "drift"])}
    assert ends == {text[0].index("MAE") + len("MAE")}, text
    assert text[2].startswith(long + " ")


def test_a_network_that_misses_an_exact_baseline_loses_instead_of_tying():
    """A straight line: drift forecasts it with error 0; an MAE of 140.6 is no tie with that."""
    line = {"lstm": {"mae": 140.6, "rmse": 150.0, "mase": 70.3}, "drift": {"mae": 0.0, "rmse": 0.0, "mase": 0.0},
            "persistence": {"mae": 2.0, "rmse": 2.0, "mase": 1.0}}
    v = verdict(line, "lstm")
    assert v["outcome"] == "baseline" and v["best"] == "drift"
    assert "ties" not in v["sentence"].split(" Against")[0] and "drift is exact there (MAE 0)" in v["sentence"]
    both = verdict({**line, "lstm": {"mae": 0.0, "rmse": 0.0, "mase": 0.0}}, "lstm")
    assert both["outcome"] == "tie"  # exact and exact: a tie indeed


def test_a_straight_line_is_not_called_a_random_walk():
    y = 2.0 * np.arange(120) + 3
    kind = character(y, "value", 60)
    assert kind == {"kind": "linear", "step": pytest.approx(2.0)}
    advice = verdict({"lstm": {"mae": 140.6}, "drift": {"mae": 0.0}}, "lstm", kind=kind)["advice"]
    assert "straight line" in advice and "random walk" not in advice and "drift extrapolates it exactly" in advice
    noisy = y + np.random.default_rng(0).normal(0, 0.01, len(y))  # changes that vary are judged as before
    assert character(noisy, "value", 60)["kind"] != "linear"
