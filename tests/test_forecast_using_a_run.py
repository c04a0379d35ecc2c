"""Using a forecaster run on new data, on the S&P 500's monthly closes and Seattle's weather:
a run that did not finish is refused with the way to finish it; new rows of another frequency
are refused and holes in the window warned of; times read with UTC offsets keep them in every
file the run writes; a Series from load_series is taken as its frame."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from neuralab.cli import main
from neuralab.data.series import load_series
from neuralab.errors import NeuralabError, ParameterError
from neuralab.forecasting.models import ModelConfig, series_train_config
from neuralab.forecasting.finished import RunNotFinished, predict_run, write_report
from neuralab.forecasting.pipeline import ForecastConfig, resume_forecast, run_forecast
from neuralab.forecasting.windows import WindowConfig
from neuralab.runs import Interrupted

pytestmark = pytest.mark.usefixtures("one_cpu_thread")

LOOKBACK = 12


def monthly_closes(path: Path, rows: slice = slice(None), dates: str = "MS") -> Path:
    """The S&P 500's last close of each month, dated the first of the month (``dates`` MS), or
    the same values dated day after day (``dates`` D), as a user's CSV."""
    s = load_series("sp500", "Close")
    months = s.frame["Close"].resample("MS").last().dropna().iloc[rows]
    times = months.index if dates == "MS" else pd.date_range(months.index[0], periods=len(months), freq=dates)
    pd.DataFrame({"Date": times.strftime("%Y-%m-%d"), "Close": months.to_numpy()}).to_csv(path, index=False)
    return path


def config(data, epochs: int = 1) -> ForecastConfig:
    return ForecastConfig(data=str(data), windows=WindowConfig(lookback=LOOKBACK, transform="none"),
                          model=ModelConfig("lstm", hidden=[8]),
                          train=series_train_config(epochs=epochs, device="cpu", seed=0), backtest_folds=2)


@pytest.fixture(scope="module")
def monthly(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("monthly")
    return run_forecast(config(monthly_closes(folder / "closes.csv")), out=folder / "run", verbose=False).run_dir


# --- a run that did not finish --------------------------------------------------------

def test_an_interrupted_forecaster_is_refused_by_predict_and_export_naming_the_resume(tmp_path, capsys,
                                                                                        cut_in_epoch_2):
    csv = monthly_closes(tmp_path / "closes.csv")
    whole_again = cut_in_epoch_2()
    with pytest.raises(Interrupted):
        run_forecast(config(csv, epochs=2), out=tmp_path / "cut", verbose=False)
    whole_again()
    run = tmp_path / "cut"
    assert (run / "model.safetensors").is_file()  # epoch 1's weights, which the finished run may not keep

    with pytest.raises(RunNotFinished, match=rf"^{run}: the run did not finish \(no results.json\); .*"
                                             rf"`neuralab.resume_forecast\('{run}'\)` finishes it"):
        predict_run(run, csv)
    from neuralab.forecasting.onnx import export_onnx

    with pytest.raises(RunNotFinished, match=r"`neuralab.resume_forecast\("):
        export_onnx(run)

    # the command line names its own command, never the Python call
    with pytest.raises(RunNotFinished, match=r"`neuralab.resume_forecast\("):
        write_report(run)
    for command in (["forecast", "predict", str(run), "--csv", str(csv)], ["export", str(run), "--onnx"],
                    ["report", str(run)]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"neuralab: error: {run}: the run did not finish") and err.count("\n") == 1
        assert f"`neuralab forecast --resume {run}` finishes it" in err and "resume_forecast" not in err
    assert not (run / "model.onnx").exists()

    resume_forecast(run, verbose=False)
    assert len(predict_run(run, csv)) == 1  # finished: used


# --- new rows that do not fit the run -------------------------------------------------

def test_new_rows_of_another_frequency_are_refused_naming_both(monthly, tmp_path, capsys):
    daily = monthly_closes(tmp_path / "daily.csv", slice(-40, None), dates="D")  # the same closes, dated daily
    with pytest.raises(ParameterError, match="has rows of frequency D, and the run was trained on rows of "
                                             "frequency MS; give rows of frequency MS") as e:
        predict_run(monthly, daily)
    assert e.value.parameter == "csv"
    assert main(["forecast", "predict", str(monthly), "--csv", str(daily)]) == 2
    assert capsys.readouterr().err.startswith(f"neuralab: error: --csv {daily}: has rows of frequency D, and the run")


def test_new_rows_of_a_day_first_run_are_read_day_first_where_every_day_is_12_or_less(tmp_path, capsys):
    """A run read 31/01/2000 day first; new rows dated 01/03 to 12/03 fit month first as well,
    which they were read by: monthly rows, refused as another frequency ("resample the data")."""
    closes = pd.read_csv(monthly_closes(tmp_path / "closes.csv", slice(0, 120), dates="D"), parse_dates=["Date"])
    day_first = closes.assign(Date=closes["Date"].dt.strftime("%d/%m/%Y"))
    day_first.to_csv(tmp_path / "eu.csv", index=False)
    run = run_forecast(config(tmp_path / "eu.csv"), out=tmp_path / "run", verbose=False).run_dir
    recorded = json.loads((run / "model.json").read_text())["series"]
    assert recorded["day_first"] is True and recorded["date_format"] is None
    recent = pd.DataFrame({"Date": pd.date_range("2021-03-01", periods=LOOKBACK).strftime("%d/%m/%Y"),
                           "Close": closes["Close"].iloc[-LOOKBACK:].to_numpy()})
    recent.to_csv(tmp_path / "recent.csv", index=False)
    forecast = predict_run(run, tmp_path / "recent.csv")
    assert forecast["time"].iloc[0] == pd.Timestamp("2021-03-13")
    assert forecast.equals(predict_run(run, tmp_path / "recent.csv", date_format="%d/%m/%Y"))
    assert main(["forecast", "predict", str(run), "--csv", str(tmp_path / "recent.csv")]) == 0
    assert "2021-03-13" in capsys.readouterr().out
    # the run's order is no format: the same rows as another export writes them (ISO) read as written
    recent.assign(Date=pd.date_range("2021-03-01", periods=LOOKBACK).strftime("%Y-%m-%d")).to_csv(
        tmp_path / "iso.csv", index=False)
    assert predict_run(run, tmp_path / "iso.csv").equals(forecast)
    # a format given stays strict, and says so
    with pytest.raises(NeuralabError, match=r"'2021-03-01' in column 'Date' is not a date \(date_format is"):
        predict_run(run, tmp_path / "iso.csv", date_format="%d/%m/%Y")
    # a run recorded before it kept no order: its new rows read month first, which the refusal says, and how to
    # read them day first, not "resample the data"
    meta = json.loads((run / "model.json").read_text())
    del meta["series"]["day_first"]
    (run / "model.json").write_text(json.dumps(meta))
    assert main(["forecast", "predict", str(run), "--csv", str(tmp_path / "recent.csv")]) == 2
    err = capsys.readouterr().err
    assert "and the run was trained on rows of frequency D; its dates read month first (01/03/2021 = 2021-01-03)" \
        in err and "give --date-format %d/%m/%Y if the day comes first" in err and "resample" not in err, err


def test_new_rows_in_a_day_first_runs_own_format_with_a_zone_name_are_read_as_its_own(tmp_path):
    """Dates written with a zone's name (31/01/2000 10:00 CET), read day first: new rows in the
    run's own format, their days all 12 or less, are read day first, not refused."""
    closes = pd.read_csv(monthly_closes(tmp_path / "closes.csv", slice(0, 120), dates="D"), parse_dates=["Date"])
    closes.assign(Date=closes["Date"].dt.strftime("%d/%m/%Y 10:00 CET")).to_csv(tmp_path / "cet.csv", index=False)
    run = run_forecast(config(tmp_path / "cet.csv"), out=tmp_path / "run", verbose=False).run_dir
    recent = pd.DataFrame({"Date": pd.date_range("2021-03-01", periods=LOOKBACK).strftime("%d/%m/%Y 10:00 CET"),
                           "Close": closes["Close"].iloc[-LOOKBACK:].to_numpy()})
    recent.to_csv(tmp_path / "recent.csv", index=False)
    forecast = predict_run(run, tmp_path / "recent.csv")
    assert forecast["time"].iloc[0] == pd.Timestamp("2021-03-13 09:00", tz="UTC")  # 10:00 at UTC+01:00


def test_missing_months_in_the_window_are_warned_of_with_their_count_and_dates(monthly, tmp_path):
    whole = pd.read_csv(monthly_closes(tmp_path / "recent.csv", slice(-40, None)))
    holes = whole.drop(whole.index[-9:-4])  # five months gone from the last twelve rows
    holes.to_csv(tmp_path / "holes.csv", index=False)
    gone = ", ".join(whole["Date"].iloc[-9:-6])
    with pytest.warns(UserWarning, match=rf"^holes.csv: in the last {LOOKBACK} rows, which the forecast reads: 5 "
                                         rf"missing timestamps on the MS grid \(largest gap \d+ days, e\.g\. {gone}\): "
                                         r"kept as they are \(one row = one step\)$"):
        predict_run(monthly, tmp_path / "holes.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # rows without a hole: not a word
        predict_run(monthly, tmp_path / "recent.csv")


def test_a_series_from_load_series_forecasts_as_its_file_does(monthly, tmp_path):
    csv = monthly_closes(tmp_path / "recent.csv", slice(-40, None))
    assert predict_run(monthly, load_series(csv)).equals(predict_run(monthly, csv))


# --- times with UTC offsets -----------------------------------------------------------

def berlin_hourly(path: Path) -> Path:
    """Seattle's daily highs and lows as hourly temperatures (a day's cycle between them), stamped
    in Berlin's local time with its offset across the end of summer time (02:00 twice)."""
    s = load_series("seattle-weather", "temp_max", features=["temp_min"])
    days = s.frame.iloc[:20]
    hours = pd.date_range("2023-10-20", periods=24 * len(days), freq="h", tz="Europe/Berlin")
    high, low = np.repeat(days["temp_max"].to_numpy(), 24), np.repeat(days["temp_min"].to_numpy(), 24)
    temp = (high + low) / 2 + (high - low) / 2 * np.sin(2 * np.pi * (hours.hour - 9) / 24)
    pd.DataFrame({"time": hours.map(lambda t: t.isoformat()), "temp": temp.round(2)}).to_csv(path, index=False)
    return path


def test_forecast_csv_and_the_web_app_keep_the_offset_of_times_read_with_one(tmp_path):
    from neuralab.web.forecast import forecast_view

    csv = berlin_hourly(tmp_path / "berlin.csv")
    assert "2023-10-29T02:00:00+02:00" in csv.read_text() and "2023-10-29T02:00:00+01:00" in csv.read_text()
    run = run_forecast(config(csv), out=tmp_path / "runs" / "berlin", verbose=False).run_dir
    table = pd.read_csv(run / "forecast.csv", dtype=str)
    future = table[table["split"] == "future"]
    results = json.loads((run / "results.json").read_text())
    assert future["time"].tolist() == results["future"]["times"] == ["2023-11-08 22:00:00+00:00"]
    assert future["origin"].tolist() == ["2023-11-08 21:00:00+00:00"]  # the last row, 22:00+01:00
    assert table["time"].str.endswith("+00:00").all() and table["origin"].str.endswith("+00:00").all()
    assert forecast_view(tmp_path / "runs", "berlin")["future"]["time"] == ["2023-11-08 22:00:00+00:00"]


def test_forecast_csv_of_times_without_offsets_is_written_as_before(monthly):
    future = pd.read_csv(monthly / "forecast.csv", dtype=str).query("split == 'future'")
    assert future[["origin", "time"]].to_numpy().tolist() == [["2018-12-01 00:00:00", "2019-01-01 00:00:00"]]


def test_a_series_the_run_does_not_have_is_named_in_a_line_of_bounded_length(monthly):
    from neuralab.errors import NeuralabError
    from neuralab.forecasting.forecast_csv import read_forecast_csv

    with pytest.raises(NeuralabError) as e:  # the web app's query string may be of any length
        read_forecast_csv(monthly / "forecast.csv", series="x" * 100_000)
    assert str(e.value) == ("series='" + "x" * 37 + "'...: the run forecast one series, so there is none to choose by "
                            "name; give no series")


def test_holes_are_counted_without_laying_a_grid_of_millions_for_one_mistyped_year():
    from neuralab.data.series import calendar_holes

    minutes = pd.DatetimeIndex(["2023-01-01 00:00", "2023-01-01 00:01", "2030-01-01 00:02"])  # 2030 for 2023
    holes = calendar_holes(minutes, "min")
    assert holes.gaps == 3_682_080 and holes.gap_examples == ["2023-01-01T00:02:00"]
    months = pd.DatetimeIndex(["2023-01-01", "2023-02-01", "2023-04-01"])  # a calendar step: months
    assert calendar_holes(months, "MS").gap_examples == ["2023-03-01"]
    assert calendar_holes(months[:2], "MS") is None
    off_the_hours = pd.DatetimeIndex(["2023-01-01 00:00", "2023-01-01 00:01", "2030-01-01 00:00"])
    assert calendar_holes(off_the_hours, "h") is None  # rows that lie on no hourly grid have no holes on it
