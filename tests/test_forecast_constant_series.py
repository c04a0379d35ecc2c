"""Series constant over their training span have no MASE: a run where every series is so
ends with a verdict that ranks nothing, one such series among several is left out of the
pooled MASE by name, and "beats persistence" is judged by the measure the verdict ranks by."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from neuralab.cli import main
from neuralab.data.series import load_series
from neuralab.forecasting import metrics
from neuralab.forecasting.backtest import rolling_origin, summarize
from neuralab.forecasting.baselines import Drift, Persistence
from neuralab.forecasting.models import ModelConfig, series_train_config
from neuralab.forecasting.pipeline import ForecastConfig, run_forecast
from neuralab.forecasting.verdict import verdict
from neuralab.forecasting.windows import WindowConfig, prepare


pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def flat_then_ramp(level: float, n: int = 400, flat: int = 300) -> np.ndarray:
    """Constant over the training span, then rising by half a unit a day."""
    return np.r_[np.full(flat, level), level + 0.5 * np.arange(n - flat)]


def random_walk(n: int = 400, seed: int = 0) -> np.ndarray:
    return 100 + np.cumsum(np.random.default_rng(seed).normal(size=n))


def write_series(path, **series: np.ndarray):
    """One CSV, one row per series and day, the series named in column "id"."""
    dates = pd.date_range("2020-01-01", periods=len(next(iter(series.values())))).strftime("%Y-%m-%d")
    pd.concat([pd.DataFrame({"date": dates, "id": name, "value": v}) for name, v in series.items()]
              ).to_csv(path, index=False)
    return path


def one(values: np.ndarray, lookback: int = 14):
    frame = pd.DataFrame({"y": values}, index=pd.date_range("2020-01-01", periods=len(values), name="date"))
    return prepare(load_series(frame, "y"), WindowConfig(lookback=lookback, horizon=1))


def test_a_run_whose_every_series_is_constant_over_training_says_it_cannot_rank(tmp_path, capsys):
    data = write_series(tmp_path / "flat.csv", a=flat_then_ramp(3.0), b=flat_then_ramp(7.0) ** 2)
    assert main(["forecast", "--data", str(data), "--target", "value", "--series-column", "id", "--lookback", "14",
                 "--model", "lstm", "--hidden", "8", "--epochs", "1", "--backtest-folds", "2", "--threads", "1",
                 "--out", str(tmp_path / "run")]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert "Cannot rank: every series is constant over its training span" in out
    assert "MASE pools the series that have one; left out, constant over the training span: a, b" in out
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    head = results["headline"]
    assert head["outcome"] == "constant" and head["ranked"] is False and head["network_rank"] is None
    assert results["test"][head["best"]]["mae"] == min(m["mae"] for m in results["test"].values())  # named only
    assert "warnings" not in results  # no NaN stored as null: the backtest's mean is undefined, and says why
    summary = results["backtest_summary"]["lstm"]
    assert summary["mase_mean"] is None and summary["left_out"] == ["a", "b"]
    page = (tmp_path / "run" / "report.html").read_text()
    assert "Nothing is ranked: no forecaster has a MASE" in page and "Cannot rank" in page
    assert "Best on the test span" not in page and "leaving out a, b" in page


def test_the_quiet_verdict_on_a_constant_series_names_the_option_to_change(tmp_path, capsys):
    """--quiet printed the library's wording, "Choose another `target`.", not the command line's."""
    data = tmp_path / "const.csv"
    pd.DataFrame({"date": pd.date_range("2020-01-01", periods=300).strftime("%Y-%m-%d"),
                  "value": np.full(300, 5.0)}).to_csv(data, index=False)
    assert main(["forecast", "--data", str(data), "--lookback", "14", "--model", "lstm", "--hidden", "4",
                 "--epochs", "1", "--backtest-folds", "1", "--threads", "1", "--quiet",
                 "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "The target is constant (5)" in out and "Choose another --target." in out and "`" not in out


def test_one_constant_series_is_left_out_of_the_pooled_backtest_mase_by_name():
    flat, walk = one(flat_then_ramp(3.0)), one(random_walk())
    forecasters = [Persistence().fit(flat.train), Drift().fit(flat.train)]
    folds = {k: rolling_origin(p, forecasters, folds=3) for k, p in (("flat", flat), ("walk", walk))}
    for k, records in folds.items():
        for r in records:
            r["series"] = k  # two frames loaded alone share one name: tell them apart here
    pooled = summarize(folds["flat"] + folds["walk"], "mase")
    alone = summarize(folds["walk"], "mase")
    for name in ("persistence", "drift"):
        assert np.isfinite(pooled[name]["mase_mean"])
        assert pooled[name]["mase_mean"] == pytest.approx(alone[name]["mase_mean"])
        assert pooled[name]["mase_std"] == pytest.approx(alone[name]["mase_std"])
        assert pooled[name]["left_out"] == ["flat"] and pooled[name]["folds"] == 6
        assert "left_out" not in alone[name]


def test_a_run_with_one_constant_series_ranks_the_others_and_says_which_was_left_out(tmp_path):
    data = write_series(tmp_path / "mixed.csv", a=flat_then_ramp(3.0), c=random_walk())
    config = ForecastConfig(data=str(data), target="value", series_column="id", backtest_folds=2,
                            windows=WindowConfig(lookback=14), model=ModelConfig("lstm", hidden=[8]),
                            train=series_train_config(epochs=1, device="cpu"))
    result = run_forecast(config, out=tmp_path / "run", verbose=True)
    results, head = result.results, result.headline
    assert results["series"]["a"]["mase_scale"] is None and results["series"]["c"]["mase_scale"] is not None
    # the kind the first series has is not the pooled verdict: c has a MASE, and it ranks
    assert head["outcome"] != "constant" and "The target is constant" not in head["sentence"]
    assert head["network_rank"] >= 1 and "MASE" in head["sentence"]
    assert head["kind"]["kind"] != "constant"  # a tie of kinds goes to the series that are ranked
    # persistence judged by the pooled MASE, the headline's percent too: not MAE summed over units
    net, ref = results["test"]["lstm"]["mase"], results["test"]["persistence"]["mase"]
    assert head["percent_better"] == pytest.approx(100 * (ref - net) / ref)
    assert head["beats_persistence"] == (net < ref and not metrics.tied(net, ref))
    summary = results["backtest_summary"]["lstm"]
    assert np.isfinite(summary["mase_mean"]) and summary["left_out"] == ["a"]
    c = results["series"]["c"]["backtest_summary"]["lstm"]  # c's folds alone, by MAE: same windows, same weights
    assert summary["mase_mean"] == pytest.approx(c["mae_mean"] / results["series"]["c"]["mase_scale"])
    assert "warnings" not in results
    page = (tmp_path / "run" / "report.html").read_text()
    assert "MASE pools the series that have one, leaving out a, constant over its training span" in page


def _pooled(parts: list[tuple[dict, int]], names) -> dict[str, dict]:
    """Series' test metrics pooled as a run on several series pools them: MAE over all
    windows (one-step: one target each), MASE weighted by windows."""
    total = sum(n for _, n in parts)
    return {f: {"mae": sum(m[f]["mae"] * n for m, n in parts) / total,
                "mase": sum(m[f]["mase"] * n for m, n in parts) / total} for f in names}


def test_beats_persistence_is_judged_by_the_pooled_mase_as_the_verdict_is():
    """A rising series in tens of thousands where drift gains a little, and a random walk of
    a few units where it loses clearly: MAE over both says drift wins (the large units
    outweigh), MASE says it loses; "beats persistence" must agree with the verdict."""
    rng = np.random.default_rng(3)
    big = 50_000 + np.cumsum(60 + 100 * rng.normal(size=600))
    small = 20 + np.cumsum(rng.normal(size=600))
    parts = []
    for values in (big, small):
        p = one(values, lookback=5)
        scores = {f.name: metrics.evaluate(p.test.future, f.fit(p.train).predict(p.test), p.mase_scale)
                  for f in (Persistence(), Drift())}
        parts.append((scores, len(p.test)))
    test = _pooled(parts, ("persistence", "drift"))
    assert test["drift"]["mae"] < test["persistence"]["mae"]    # the premise: pooled units favour drift
    assert test["drift"]["mase"] > test["persistence"]["mase"]  # ... and the scale-free measure does not
    v = verdict(test, "drift", metric="mase")
    assert v["beats_persistence"] is False and v["outcome"] != "network"

    # one series: by its MAE, as before, and a forecast equal to persistence's up to rounding does not beat it
    for scores, _ in parts:
        mae, ref = scores["drift"]["mae"], scores["persistence"]["mae"]
        assert verdict(scores, "drift")["beats_persistence"] is (mae < ref and not metrics.tied(mae, ref))
    same = {"persistence": {"mae": 0.8105}, "lstm": {"mae": 0.8105 * (1 - 1e-9)}}
    assert verdict(same, "lstm")["beats_persistence"] is False

