"""Forecasts of several series at once: a series constant up to float rounding is constant,
a constant series is left out of the judgement series by series as it is of the pooled
one, predicting refuses a series the run never saw, and the error by horizon step pools
series in MASE, not in their different units."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from neuralab.cli import main
from neuralab.data.series import load_series
from neuralab.forecasting.verdict import character
from neuralab.forecasting.windows import WindowConfig, prepare

N = 400
ROUNDED = 0.1 + 0.2  # 0.30000000000000004: 0.3 as a sum of floats


pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def rounding_constant(n: int = N) -> np.ndarray:
    """0.3 throughout, a few rows of it written as a sum of floats."""
    y = np.full(n, 0.3)
    y[::37] = ROUNDED
    return y


def series() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(N)
    return {"walk": 100 + np.cumsum(rng.normal(size=N)),  # units of about 1
            "load": 5_000 + 2_000 * np.sin(2 * np.pi * t / 7) + rng.normal(0, 300, N),  # thousands
            "flat": np.full(N, 5.0),
            "rounded": rounding_constant()}


def write_series(path, values: dict[str, np.ndarray]):
    dates = pd.date_range("2020-01-01", periods=N).strftime("%Y-%m-%d")
    pd.concat([pd.DataFrame({"date": dates, "id": name, "value": v}) for name, v in values.items()]
              ).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("many")
    data = write_series(folder / "many.csv", series())
    assert "0.30000000000000004" in data.read_text()  # the rounding survives the file
    assert main(["forecast", "--data", str(data), "--target", "value", "--series-column", "id", "--lookback", "14",
                 "--model", "lstm", "--hidden", "8", "--epochs", "1", "--backtest-folds", "2", "--threads", "1",
                 "--out", str(folder / "run")]) == 0
    return folder / "run"


def results(run) -> dict:
    return json.loads((run / "results.json").read_text())


def test_a_series_constant_up_to_float_rounding_has_no_mase_and_is_constant():
    values = rounding_constant()
    frame = pd.DataFrame({"y": values}, index=pd.date_range("2020-01-01", periods=N, name="date"))
    prepared = prepare(load_series(frame, "y"), WindowConfig(lookback=14, horizon=1))
    assert np.ptp(prepared.levels) > 0  # not exactly constant
    assert prepared.mase_scale is None
    assert character(values[:prepared.boundaries[0]], "y", 14)["kind"] == "constant"


def test_a_rounding_constant_series_is_left_out_of_the_pooled_verdict_by_name(run):
    r = results(run)
    assert r["series"]["rounded"]["mase_scale"] is None and r["series"]["rounded"]["kind"]["kind"] == "constant"
    assert r["backtest_summary"]["lstm"]["left_out"] == ["flat", "rounded"]
    # the pooled MASE of the other series, not a MAE divided by a rounding error
    assert all(m["mase"] < 100 for m in r["test"].values())
    assert "constant over their training span: flat, rounded." in r["headline"]["sentence"]


def test_a_constant_series_is_left_out_series_by_series(run):
    r = results(run)
    head = r["headline"]["sentence"]
    for name in ("flat", "rounded"):
        one = r["series"][name]
        assert one["versus_persistence"] == "left out" and one["network_rank"] is None
        assert one["sentence"].startswith("Left out: constant over its training span")
    judged = head.split("Series by series, against persistence, it ")[1].split(".")[0]
    assert "flat" not in judged and "rounded" not in judged and "walk" in judged and "load" in judged
    page = (run / "report.html").read_text()
    assert page.count("left out: constant over its training span") == 2


def test_predicting_a_series_the_run_never_saw_is_refused_by_name(run, tmp_path, capsys):
    known = write_series(tmp_path / "known.csv", {"walk": series()["walk"]})
    assert main(["forecast", "predict", str(run), "--csv", str(known)]) == 0
    capsys.readouterr()
    values = series()
    values["newcomer"] = values.pop("load")
    new = write_series(tmp_path / "new.csv", values)
    assert main(["forecast", "predict", str(run), "--csv", str(new)]) == 2
    out, err = capsys.readouterr()
    assert err.strip().count("\n") == 0 and "Traceback" not in err
    assert f"--csv {new}: series 'newcomer' is not one the run was trained on" in err
    assert "the run knows 'flat', 'load', 'rounded', 'walk'" in err


def test_error_by_step_of_several_series_is_in_mase_weighted_by_windows(run):
    r = results(run)
    assert "by_step_mae" not in r
    forecast = pd.read_csv(run / "forecast.csv").query("split == 'test'")
    scales = {name: one["mase_scale"] for name, one in r["series"].items() if one["mase_scale"]}
    assert set(scales) == {"walk", "load"}
    rows = forecast[forecast["series"].isin(list(scales))]
    scale = rows["series"].map(scales)
    for name, steps in r["by_step_mase"].items():
        # every test window of a series with a scale counts once, its error over that scale
        expected = ((rows[name] - rows["actual"]).abs() / scale).groupby(rows["step"]).mean()
        np.testing.assert_allclose(steps, expected.to_numpy(), rtol=1e-9)
        assert steps[0] == pytest.approx(r["test"][name]["mase"], rel=1e-9)  # horizon 1: the pooled MASE


def test_series_over_the_same_dates_share_the_spans_the_report_shows(run):
    r = results(run)
    assert all(one["spans"] == r["spans"] for one in r["series"].values()) and r["first_series"] == "flat"
    page = (run / "report.html").read_text()
    assert "are of the first series, flat, of 4" in page and "Every series has these target spans." in page
