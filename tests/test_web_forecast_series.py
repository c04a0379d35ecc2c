"""The forecast page of a run on several series, through Starlette's test client: the series
chosen brings its own scores, verdict and spans, and a figure pooled over every series is
labelled pooled; a run on one series is shown as before."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from neuralab.cli import main
from neuralab.forecasting.metrics import percent_better
from neuralab.web import create_app

N = 300
SMALL = ["--target", "value", "--lookback", "14", "--epochs", "1", "--hidden", "8", "--backtest-folds", "2",
         "--threads", "1"]


def write_series(path, frames: dict[str, pd.DataFrame]):
    pd.concat([f.assign(id=name) for name, f in frames.items()]).to_csv(path, index=False)
    return path


def frame(start: str, values: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"date": pd.date_range(start, periods=len(values)).strftime("%Y-%m-%d"), "value": values})


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """runs/ with a run on two series of very different scales (an index in thousands that walks,
    a temperature in degrees over a later span), and a run on the temperature alone."""
    folder = tmp_path_factory.mktemp("series")
    rng = np.random.default_rng(3)
    t = np.arange(N)
    index = frame("2020-01-01", 5_000 + np.cumsum(rng.normal(0, 40, N)))
    temp = frame("2021-03-01", 15 + 8 * np.sin(2 * np.pi * t / 365) + rng.normal(0, 2, N))
    two = write_series(folder / "two.csv", {"INDEX": index, "TEMP": temp})
    assert main(["forecast", "--data", str(two), *SMALL, "--series-column", "id",
                 "--out", str(folder / "runs" / "two")]) == 0
    one = folder / "temp.csv"
    temp.to_csv(one, index=False)
    assert main(["forecast", "--data", str(one), *SMALL, "--out", str(folder / "runs" / "one")]) == 0
    return folder / "runs"


@pytest.fixture(scope="module")
def client(root):
    with TestClient(create_app(root), base_url="http://127.0.0.1") as c:
        yield c


def results(root, run) -> dict:
    return json.loads((root / run / "results.json").read_text())


def view(client, run, series=None) -> dict:
    r = client.get("/api/forecast", params={"run": run, **({"series": series} if series else {})})
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("series", ["INDEX", "TEMP"])
def test_a_chosen_series_brings_its_own_scores_and_verdict(root, client, series):
    saved = results(root, "two")
    own = saved["series"][series]
    v = view(client, "two", series)
    assert v["series"] == v["scores_of"] == series
    # each forecaster's figures are the series' own, in its units, best first by MAE as its verdict ranks
    assert {s["name"]: {k: s[k] for k in own["test"][s["name"]]} for s in v["scores"]} == own["test"]
    maes = [s["mae"] for s in v["scores"]]
    assert maes == sorted(maes)
    persistence = own["test"]["persistence"]["mae"]
    for s in v["scores"]:
        assert s["vs_persistence"] == pytest.approx(percent_better(s["mae"], persistence))
        # the pooled figure, labelled pooled, is the one the run's verdict ranks by
        assert s["pooled"]["metric"] == saved["headline"]["metric"] == "mase"
        assert s["pooled"]["score"] == pytest.approx(saved["test"][s["name"]]["mase"])
    assert v["series_verdict"]["sentence"] == own["sentence"] and v["headline"]["sentence"] == saved["headline"]["sentence"]
    assert v["series_verdict"]["versus_persistence"] == own["versus_persistence"]
    assert v["series_verdict"]["best"] == own["best"]


def test_the_pooled_percent_better_than_persistence_follows_the_verdicts_measure(root, client):
    head = results(root, "two")["headline"]
    network = next(s for s in view(client, "two")["scores"] if s["network"])
    # pooled MAE adds index points to degrees; the verdict, and its percent_better, is by MASE
    assert network["pooled"]["vs_persistence"] == pytest.approx(head["percent_better"])


def test_a_series_other_than_the_first_shows_its_own_spans_and_no_plot_of_the_first(root, client):
    saved = results(root, "two")
    first = view(client, "two")
    assert first["series"] == "INDEX" and first["spans"] == saved["spans"] == saved["series"]["INDEX"]["spans"]
    assert "series" in first["plots"]
    temp = view(client, "two", "TEMP")
    times = [t for step in temp["steps"].values() for t in step["time"]]
    assert temp["spans"] == saved["series"]["TEMP"]["spans"]
    assert set(temp["spans"]) == {"train", "val", "test"} and temp["spans"]["test"] == [min(times)[:10], max(times)[:10]]
    assert temp["spans"]["train"][0] >= "2021"  # TEMP's own, later dates, not INDEX's
    assert "series" not in temp["plots"] and "forecast" not in temp["plots"]
    assert "error_by_step" in temp["plots"]  # pooled over every series, and labelled so on the page


@pytest.mark.parametrize("series", ["INDEX", "TEMP"])
def test_a_chosen_series_shows_its_own_interval_coverage(root, client, series):
    own = results(root, "two")["series"][series]["intervals"]["coverage"]
    v = view(client, "two", series)
    assert v["intervals"]["coverage"] == {k: c["coverage"] for k, c in own.items()}
    assert v["intervals"]["pooled"] is False and v["intervals"]["levels"] == ["80", "95"]


def test_a_run_recorded_before_each_series_spans_and_coverage_falls_back_to_the_pooled_ones(root, client):
    path = root / "two" / "results.json"
    original = path.read_text()
    saved = json.loads(original)
    for one in saved["series"].values():
        del one["spans"], one["intervals"]
    path.write_text(json.dumps(saved))
    try:
        first, temp = view(client, "two"), view(client, "two", "TEMP")
    finally:
        path.write_text(original)
    assert first["spans"] == saved["spans"]  # the first series' own
    times = [t for step in temp["steps"].values() for t in step["time"]]
    assert temp["spans"] == {"test": [min(times)[:10], max(times)[:10]]}  # all forecast.csv tells of another
    for v in (first, temp):
        assert v["intervals"]["pooled"] is True
        assert v["intervals"]["coverage"] == {k: c["coverage"] for k, c in saved["intervals"]["coverage"].items()}


def test_a_run_on_one_series_is_shown_as_before(root, client):
    saved = results(root, "one")
    v = view(client, "one")
    assert v["series"] == "" and v["all_series"] == []
    assert "scores_of" not in v and "series_verdict" not in v
    assert all("pooled" not in s for s in v["scores"])
    assert {s["name"]: {k: s[k] for k in saved["test"][s["name"]]} for s in v["scores"]} == saved["test"]
    persistence = saved["headline"]["persistence_mae"]
    for s in v["scores"]:
        assert s["vs_persistence"] == pytest.approx(percent_better(s["mae"], persistence))
    assert v["spans"] == saved["spans"] and "series" in v["plots"]
    assert v["intervals"]["pooled"] is False


def test_an_edited_results_without_a_series_figures_keeps_the_pooled_table(root, client):
    path = root / "two" / "results.json"
    original = path.read_text()
    saved = json.loads(original)
    del saved["series"]["TEMP"]["test"]
    path.write_text(json.dumps(saved))
    try:
        v = view(client, "two", "TEMP")
    finally:
        path.write_text(original)
    assert v["scores_of"] == "" and {s["name"] for s in v["scores"]} == set(saved["test"])
    assert all("pooled" not in s for s in v["scores"])
