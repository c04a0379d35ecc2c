"""A forecast of several series over different dates: results.json holds each series' own
target spans and interval coverage, the top-level spans say whose they are, and the report
says which series its figures draw and that the spans differ."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from neuralab.cli import main
from neuralab.data.series import load_series
from neuralab.forecasting import finished, pipeline
from neuralab.forecasting.windows import WindowConfig, prepare

STARTS = {"INDEX": ("2020-01-01", 300), "TEMP": ("2021-03-01", 260)}  # later and shorter


pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def frames() -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(5)
    out = {}
    for name, (start, n) in STARTS.items():
        t = np.arange(n)
        values = (5_000 + np.cumsum(rng.normal(0, 40, n)) if name == "INDEX"
                  else 15 + 8 * np.sin(2 * np.pi * t / 365) + rng.normal(0, 2, n))
        out[name] = pd.DataFrame({"date": pd.date_range(start, periods=n).strftime("%Y-%m-%d"), "value": values})
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("spans")
    data = folder / "two.csv"
    pd.concat([f.assign(id=name) for name, f in frames().items()]).to_csv(data, index=False)
    assert main(["forecast", "--data", str(data), "--target", "value", "--series-column", "id", "--lookback", "14",
                 "--horizon", "2", "--model", "lstm", "--hidden", "4", "--epochs", "1", "--backtest-folds", "1",
                 "--threads", "1", "--out", str(folder / "run")]) == 0
    return folder / "run"


def results(run) -> dict:
    return json.loads((run / "results.json").read_text())


def alone(name: str, transform: str) -> dict[str, list[str]]:
    """The spans of the series prepared on its own, as a run on it alone records them."""
    f = frames()[name]
    series = load_series(f.set_index(pd.DatetimeIndex(f["date"], name="date"))[["value"]], "value")
    return pipeline.span_dates(prepare(series, WindowConfig(lookback=14, horizon=2, transform=transform)))


def test_each_series_records_its_own_spans(run):
    r = results(run)
    test = pd.read_csv(run / "forecast.csv").query("split == 'test'")
    for name in STARTS:
        own = r["series"][name]["spans"]
        assert own == alone(name, r["transform"]["used"])
        rows = test[test["series"] == name]["time"]
        assert own["test"] == [rows.min()[:10], rows.max()[:10]]  # the dates its test forecasts are made for
    assert r["series"]["TEMP"]["spans"]["train"][0] >= "2021-03"  # not INDEX's 2020
    # the top-level spans keep their meaning for readers of one series, and say whose they are
    assert r["first_series"] == "INDEX" and r["spans"] == r["series"]["INDEX"]["spans"]


def test_each_series_records_its_own_interval_coverage(run):
    r = results(run)
    test = pd.read_csv(run / "forecast.csv").query("split == 'test'")
    for name in STARTS:
        rows = test[test["series"] == name]
        for level in ("80", "95"):
            inside = (rows[f"lower_{level}"] <= rows["actual"]) & (rows["actual"] <= rows[f"upper_{level}"])
            own = r["series"][name]["intervals"]["coverage"][level]
            assert own["targets"] == len(rows) and own["coverage"] == pytest.approx(inside.mean())
            by_step = inside.groupby(rows["step"]).mean().to_numpy()
            np.testing.assert_allclose(own["by_step"], by_step)
    pooled = r["intervals"]["coverage"]["80"]
    assert pooled["targets"] == len(test)  # the top level counts every series' targets


def test_the_report_names_the_series_it_draws_and_that_the_spans_differ(run):
    r = results(run)
    temp = r["series"]["TEMP"]["spans"]
    said = f"TEMP: train {temp['train'][0]} .. {temp['train'][1]}, val {temp['val'][0]} .. {temp['val'][1]}, " \
           f"test {temp['test'][0]} .. {temp['test'][1]}"
    page = (run / "report.html").read_text()
    assert "its target spans and the data&#x27;s description are of the first series, INDEX, of 2" in page
    assert "The series&#x27; target spans differ (" in page and said in page
    assert "<title>Forecast: INDEX value (first of 2 series), horizon" in page
    # drawn again from results.json (its keys sorted), the report says the same
    finished.write_report(run)
    assert said in (run / "report.html").read_text()
