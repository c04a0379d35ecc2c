"""Runs made before the date rules of 0c9b536 read their data as they were made: settings a new
run refuses (a calendar encoding constant for the series' frequency, the target given as a
feature) do not stop them predicting or writing their report, and new rows with UTC offsets are
read by the rule the run's own data was read with (recorded in model.json; none recorded: the
old rule, one offset kept as written)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from neuralab.forecasting.models import ModelConfig, series_train_config
from neuralab.forecasting.finished import predict_run, write_report
from neuralab.forecasting.pipeline import ForecastConfig, run_forecast
from neuralab.forecasting.windows import WindowConfig

pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def config(data: Path, **settings) -> ForecastConfig:
    return ForecastConfig(data=str(data), windows=WindowConfig(lookback=12, horizon=3, transform="none"),
                          model=ModelConfig("lstm", hidden=[8]),
                          train=series_train_config(epochs=1, device="cpu", seed=0), backtest_folds=2, **settings)


def edit(path: Path, change) -> None:
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))


def test_a_stored_run_with_a_constant_calendar_and_its_target_as_a_feature_still_predicts_and_reports(tmp_path):
    """As the code before 0c9b536 wrote such a run: weekly rows with calendar dayofweek, and the
    target among the features (dropped unsaid then); no option of predict can change either."""
    weeks = pd.date_range("2017-01-01", periods=200, freq="W-SUN")
    path = tmp_path / "weekly.csv"
    path.write_text("week,visits\n" + "".join(f"{t:%Y-%m-%d},{100 + 10 * np.sin(i / 8):.3f}\n"
                                              for i, t in enumerate(weeks)))
    run = run_forecast(config(path, calendar=["month"]), out=tmp_path / "run", verbose=False).run_dir

    def old_model(meta):
        meta["calendar"] = ["dayofweek"]
        meta["columns"] = [c.replace("month", "dayofweek") for c in meta["columns"]]

    def old_config(record):
        record["config"]["calendar"] = ["dayofweek"]
        record["config"]["features"] = ["Visits"]

    edit(run / "model.json", old_model)
    edit(run / "config.json", old_config)
    recent = tmp_path / "recent.csv"
    recent.write_text("".join(path.read_text().splitlines(keepends=True)[:1] +
                              path.read_text().splitlines(keepends=True)[-20:]))  # a short window, too
    for csv in (path, recent):
        forecast = predict_run(run, csv)
        assert list(forecast["time"].dt.day_of_week) == [6, 6, 6] and forecast["visits"].notna().all()
    assert write_report(run).is_file()


def hourly(path: Path, offsets: bool, rows: slice = slice(None)) -> Path:
    """Hours of November in Central Europe, with their fixed offset (+01:00) or as local clock times."""
    times = pd.date_range("2023-11-01", periods=24 * 30, freq="h")[rows]
    rng = np.random.default_rng(0)
    values = 100 + 10 * np.sin(2 * np.pi * times.hour / 24) + rng.normal(size=len(times))
    path.write_text("date,value\n" + "".join(f"{t.isoformat()}{'+01:00' if offsets else ''},{v:.3f}\n"
                                            for t, v in zip(times, values)))
    return path


def test_a_run_without_a_recorded_offset_rule_reads_new_fixed_offset_hours_as_before(tmp_path):
    """Before 0c9b536 one offset throughout was kept (+01:00), its hours the file's; such a run's
    hour encodings were learned on them, and new rows must give the same ones, not UTC's."""
    run = run_forecast(config(hourly(tmp_path / "train.csv", offsets=True), calendar=["hour"]),
                       out=tmp_path / "run", verbose=False).run_dir
    assert json.loads((run / "model.json").read_text())["series"]["offsets"] == "local-dates"
    new = hourly(tmp_path / "new.csv", offsets=True, rows=slice(-100, None))
    local = hourly(tmp_path / "local.csv", offsets=False, rows=slice(-100, None))
    now = predict_run(run, new)
    assert str(now["time"].dt.tz) == "UTC" and now["time"].iloc[0] == pd.Timestamp("2023-11-30 23:00", tz="UTC")

    edit(run / "model.json", lambda meta: meta["series"].pop("offsets"))  # as the code before wrote it
    before = predict_run(run, new)
    assert [t.isoformat() for t in before["time"][:2]] == ["2023-12-01T00:00:00+01:00", "2023-12-01T01:00:00+01:00"]
    # the hours the run learned: those of the file's clock, as local times without offsets give them
    np.testing.assert_allclose(before["value"], predict_run(run, local)["value"], rtol=1e-6)
    assert not np.allclose(before["value"], now["value"], rtol=1e-6)
