"""`neuralab forecast`, `neuralab forecast predict` and `neuralab rnn` from the command line."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from neuralab.cli import main


pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def csv(tmp_path, rows: int = 120, name: str = "series.csv", **edits) -> str:
    t = np.arange(rows)
    frame = pd.DataFrame({"day": pd.date_range("2021-01-01", periods=rows).strftime("%Y-%m-%d"),
                          "load": 50 + 10 * np.sin(2 * np.pi * t / 7) + t * 0.1, "temp": 10 + t % 5})
    for (row, column), value in edits.get("cells", {}).items():
        frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value
    if "order" in edits:
        frame = frame.iloc[edits["order"]]
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return str(path)


def error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("neuralab: error: ") and "\n" not in err and "Traceback" not in err
    return err


SMALL = ["--target", "load", "--date-column", "day", "--lookback", "7", "--model", "rnn", "--hidden", "4",
         "--epochs", "1", "--backtest-folds", "2", "--quiet"]


def test_forecast_csv_then_predict(tmp_path, capsys):
    data = csv(tmp_path)
    run = tmp_path / "run"
    assert main(["forecast", "--data", data, *SMALL, "--features", "temp", "--horizon", "2", "--out", str(run)]) == 0
    out = capsys.readouterr().out
    assert "the best baseline" in out and str(run) in out
    results = json.loads((run / "results.json").read_text())
    assert results["headline"]["network"] == "rnn" and results["windows"]["test"] > 0
    assert main(["forecast", "predict", str(run), "--csv", csv(tmp_path, rows=30, name="new.csv")]) == 0
    printed = capsys.readouterr().out
    assert "2021-01-31" in printed and "2021-02-01" in printed and "load" in printed
    assert main(["forecast", "predict", str(run), "--csv", data, "--output", str(tmp_path / "f.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "f.csv")) == 2
    # the run is kept unless --overwrite
    assert "already holds a run" in error(capsys, ["forecast", "--data", data, *SMALL, "--out", str(run)])
    # new data shorter than the lookback
    short = csv(tmp_path, rows=5, name="short.csv")
    assert "5 rows; this model needs the last" in error(capsys, ["forecast", "predict", str(run), "--csv", short])
    # a file that is not there is named by the option that gave it
    missing = str(tmp_path / "nope.csv")
    assert error(capsys, ["forecast", "predict", str(run), "--csv", missing]).startswith(f"neuralab: error: --csv {missing}:")


def test_a_forecast_run_with_edited_files_is_refused_in_one_line(tmp_path, capsys):
    """A run may come from anyone: model.json's sizes are checked against the weights before the
    network is built (a hidden size of a billion would ask for terabytes), and damaged fields
    are named."""
    import shutil

    data = csv(tmp_path)
    run = tmp_path / "run"
    assert main(["forecast", "--data", data, *SMALL, "--out", str(run)]) == 0
    capsys.readouterr()
    new = csv(tmp_path, rows=30, name="new.csv")

    def edited(name, file, change):
        copy = tmp_path / name
        shutil.copytree(run, copy)
        (copy / file).write_text(json.dumps(change(json.loads((copy / file).read_text()))))
        return copy

    cases = {
        "no-windows": ("model.json", lambda m: {k: v for k, v in m.items() if k != "windows"}, "field 'windows' is 'missing'"),
        "huge": ("model.json", lambda m: {**m, "model": {**m["model"], "hidden": [10**9]}},
                 "is (4,) in the weights but (1000000000,) in model.json's network"),
        "unknown": ("model.json", lambda m: {**m, "model": {**m["model"], "layers": 3}}, "unexpected keyword argument 'layers'"),
        "network": ("model.json", lambda m: {**m, "network": "x"}, "field 'network' is 'x'"),
        "config": ("config.json", lambda r: {**r, "config": [1]}, "config.json: not a config neuralab wrote"),
    }
    for name, (file, change, words) in cases.items():
        copy = edited(name, file, change)
        command = ["report", str(copy)] if file == "config.json" else ["forecast", "predict", str(copy), "--csv", new]
        err = error(capsys, command)
        assert words in err and str(copy) in err, (name, err)


@pytest.mark.parametrize("edits, message", [
    ({"cells": {(5, "load"): "n/a?"}}, "line 7: 'n/a?' in column 'load' is not a number"),
    ({"cells": {(5, "load"): ""}}, "1 missing values (column 'load' has 1, first at 2021-01-06; empty cells and marks such as NA or '-' "
                                     "count as missing, and where '-' means zero, write 0); pass --missing"),
    ({"cells": {(5, "load"): "1e300"}}, "line 7: '1e+300' in column 'load' is not a finite number"),
    ({"cells": {(5, "day"): "2021-01-05"}}, "1 duplicate timestamps, first 2021-01-05 (lines 6, 7)"),
    ({"cells": {(5, "day"): "someday"}}, "line 7: 'someday' in column 'day' is not a date"),
])
def test_bad_csv_cells_exit_2_with_one_line(tmp_path, capsys, edits, message):
    err = error(capsys, ["forecast", "--data", csv(tmp_path, **edits), *SMALL, "--out", str(tmp_path / "r")])
    assert message in err
    assert not (tmp_path / "r").exists()  # nothing written for bad input


def test_unsorted_csv_and_missing_policy_are_accepted(tmp_path, capsys):
    order = list(range(60, 120)) + list(range(60))
    data = csv(tmp_path, order=order, cells={(3, "load"): ""})
    assert main(["forecast", "--data", data, *SMALL, "--missing", "interpolate", "--out", str(tmp_path / "r")]) == 0
    series = json.loads((tmp_path / "r" / "config.json").read_text())["data"]["series"]
    assert series["unsorted"] > 0 and series["missing"]["load"] == 1 and series["filled"] == 1


def test_a_users_spreadsheet_export_is_refused_with_what_to_do_in_flags(tmp_path, capsys):
    days = pd.date_range("2021-01-01", periods=100)
    excel = tmp_path / "verbrauch.csv"
    excel.write_text("Datum;Verbrauch kWh\n" + "".join(f"{d:%d.%m.%Y};1.{500 + i},25\n" for i, d in enumerate(days))
                     + "Total;123.456,00\n")
    assert error(capsys, ["forecast", "--data", str(excel), "--out", str(tmp_path / "r")]).endswith(
        "verbrauch.csv: line 102 ('Total') in column 'Datum' is not a date: a summary row at the end of the file; "
        "delete it")
    prices = tmp_path / "nasdaq.csv"
    prices.write_text("Date,Close/Last,Volume\n" + "".join(f"{d:%m/%d/%Y},${100 + i}.50,{2_840_007 + i}\n"
                                                           for i, d in enumerate(days)))
    assert error(capsys, ["forecast", "--data", str(prices), "--out", str(tmp_path / "r")]).endswith(
        "nasdaq.csv: column 'Close/Last' carries a currency sign ('$100.50' on line 2), so it is not numeric, and the "
        "only numeric column is 'Volume'; write the numbers without the sign, or give 'Volume' as --target to "
        "forecast it")
    assert not (tmp_path / "r").exists()


def test_series_too_short_and_other_usage_errors(tmp_path, capsys):
    short = csv(tmp_path, rows=20)
    assert "20 rows is fewer than --lookback 60 + --horizon 1" in error(
        capsys, ["forecast", "--data", short, "--target", "load", "--date-column", "day"])
    assert "leave no train window" in error(capsys, ["forecast", "--data", csv(tmp_path, rows=10, name="b.csv"), *SMALL,
                                                     "--out", str(tmp_path / "r")])
    assert "not a built-in series; the built-in ones are sp500, nasdaq, seattle-weather" in error(capsys, ["forecast", "--data", "dow30"])
    assert "--target Open: no such column in" in error(capsys, ["forecast", "--data", short, "--target", "Open",
                                                     "--date-column", "day"])
    assert "not a run directory" in error(capsys, ["forecast", "predict", str(tmp_path), "--csv", short])
    with pytest.raises(SystemExit):
        main(["forecast", "--model", "transformer"])


def test_log_return_target_on_sp500_runs(tmp_path, capsys):
    run = tmp_path / "sp"
    argv = ["forecast", "--data", "sp500", "--target", "Close", "--lookback", "10", "--target-transform",
            "log-return", "--model", "gru", "--hidden", "4", "--epochs", "1", "--stride", "5", "--test-fraction", "0.05",
            "--val-fraction", "0.05", "--baselines", "drift", "--out", str(run), "--quiet"]
    assert main(argv) == 0
    results = json.loads((run / "results.json").read_text())
    assert set(results["test"]) == {"gru", "persistence", "drift"}
    assert results["test"]["persistence"]["mae"] > 5  # index points, not returns: decoded to original units


def test_rnn_topologies_and_gradients(tmp_path, capsys):
    assert main(["rnn", "topologies"]) == 0
    out = capsys.readouterr().out
    assert "(4, 12, 3)" in out and "(4, 5, 2)" in out and "many-to-many" in out
    out_dir = tmp_path / "grad"
    assert main(["rnn", "gradients", "--steps", "12", "--hidden", "4", "--batch", "4", "--train-steps", "2",
                 "--out", str(out_dir)]) == 0
    out = capsys.readouterr().out
    assert "SimpleRNN" in out and "LSTM" in out and "11 back" in out
    assert {p.name for p in out_dir.iterdir()} == {"gradients.png", "gradients.json", "gradients.csv"}
    assert len(pd.read_csv(out_dir / "gradients.csv")) == 4 * 2 * 12


def test_cli_choices_and_defaults_are_the_librarys():
    from neuralab.cli import build_parser
    from neuralab.cli import forecast as cli
    from neuralab.data import series
    from neuralab.forecasting import baselines, models, pipeline, windows
    from neuralab.training import config as training

    forecast = build_parser()._subparsers._group_actions[0].choices["forecast"].complete()
    choices = {a.dest: tuple(a.choices) for a in forecast._actions if a.choices and a.dest != "action"}
    assert choices == {"missing": series.MISSING, "duplicates": series.DUPLICATES, "gaps": series.GAPS,
                       "target_transform": windows.TRANSFORMS, "scaler": windows.SCALERS,
                       "schedule": training.SCHEDULES,
                       "device": training.DEVICES, "recipe": models.RECIPES,
                       "optimizer": training.OPTIMIZERS, "loss": training.REGRESSION_LOSSES}
    assert next(a for a in forecast._actions if a.dest == "baselines").default == list(baselines.BASELINES)
    config = cli.config_from_args(build_parser().parse_args(["forecast"]))
    assert config == pipeline.ForecastConfig()
    w, t = pipeline.ForecastConfig().windows, models.series_train_config()  # the pipeline's: transform auto
    text = " ".join(forecast.format_help().split())
    for default in (f"input steps (default {w.lookback})", f"(default {t.epochs})", f"(default {t.batch_size})",
                    f"(default {t.lr})", f"(default {t.patience})", f"(default {w.val_fraction})",
                    f"(default {models.ModelConfig().architecture})", f"(default {w.transform})"):
        assert default in " ".join(text.split()), default


@pytest.mark.parametrize("argv, message", [
    # one error from each library module a forecast passes through, named by the flag that sets it
    (["--data", "dow30"], "--data dow30: no such file and not a built-in series"),
    (["--calendar", "week"], "--calendar week: choose one of dayofyear, dayofweek, month, hour"),
    (["--date-column", "when"], "--date-column when: no such column in series.csv"),
    (["--lookback", "200"], "series.csv: 120 rows is fewer than --lookback 200 + --horizon 1"),
    (["--season", "9"], "--season 9: must be between 1 and --lookback (7)"),
    (["--baselines", "drift,arima"], "--baselines arima: choose from persistence, seasonal-naive"),
    (["--dropout", "1.5"], "--dropout 1.5: must be a number in [0, 1)"),
    (["--init", "glorot"], "--init glorot: choose keras or torch"),
    (["--val-fraction", "0.5", "--test-fraction", "0.5"], "--val-fraction 0.5 and --test-fraction 0.5: need"),
])
def test_library_errors_name_the_flag(tmp_path, capsys, argv, message):
    err = error(capsys, ["forecast", "--data", csv(tmp_path), *SMALL, *argv, "--out", str(tmp_path / "r")])
    assert err.startswith(f"neuralab: error: {message}"), err
    assert not (tmp_path / "r").exists()


def test_value_errors_name_the_flag_and_the_value(tmp_path, capsys):
    data = csv(tmp_path, cells={(5, "load"): -5.0})
    err = error(capsys, ["forecast", "--data", data, *SMALL, "--target-transform", "log-return"])
    assert err == ("neuralab: error: --target-transform log-return: column 'load' has values <= 0; "
                   "use --target-transform 'diff'")
    err = error(capsys, ["forecast", "--data", data, *SMALL, "--device", "mps"])
    assert err == "neuralab: error: --device mps: Apple's Metal backend is not available here; use --device cpu or auto"
    # the command's bound is the library's own (GradientConfig.check): 2 steps at least
    assert error(capsys, ["rnn", "gradients", "--steps", "1"]) == "neuralab: error: --steps 1: must be at least 2"
    taken = tmp_path / "a-file"
    taken.write_text("not a folder")
    err = error(capsys, ["rnn", "gradients", "--steps", "5", "--train-steps", "2", "--out", str(taken)])
    assert err == f"neuralab: error: --out {taken}: cannot make the folder (File exists); give a folder to write into"


def test_terminal_prints_the_whole_table_and_never_headlines_a_losing_network(tmp_path, capsys):
    rng = np.random.default_rng(0)
    y = np.zeros(400)
    for t in range(2, 400):  # an AR(2) process: linear AR is the right model, and there is no exact season
        y[t] = 1.6 * y[t - 1] - 0.8 * y[t - 2] + rng.normal()
    frame = pd.DataFrame({"Time": pd.date_range("2021-01-01", periods=400, freq="h").strftime("%Y-%m-%d %H:%M"),
                          "Load": 50 + y})
    path = tmp_path / "sine.csv"
    frame.to_csv(path, index=False)
    run = tmp_path / "run"
    assert main(["forecast", "--data", str(path), "--lookback", "20", "--model", "rnn", "--hidden", "2",
                 "--recipe", "plain", "--epochs", "1", "--backtest-folds", "2", "--out", str(run)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("loading sine.csv: 400 rows x 2 columns")
    table = out[out.index("forecaster "):].splitlines()
    assert table[0].split()[:4] == ["forecaster", "MAE", "RMSE", "MASE"] and "backtest" in table[0]
    names = [line.split()[0] for line in table[1:7]]
    assert sorted(names) == sorted(["rnn", "persistence", "seasonal-naive", "drift", "moving-average", "linear-ar"])
    assert all("±" in line for line in table[1:7])                     # the backtest spread, every forecaster
    verdict = next(line for line in table if "best forecaster" in line)
    assert verdict.startswith("linear-ar is the best forecaster") and "rnn is the best" not in out
    assert "ranks" in verdict and "% worse than linear-ar" in verdict
    assert "intervals: 80% covered" in out


def test_raw_csvs_as_people_have_them(tmp_path, capsys):
    t = np.arange(150)
    lines = ["Datum;Temperatur;Tag"] + [
        f"{d.strftime('%d/%m/%Y')};{20 + 5 * np.sin(v / 6):.2f};{d.day}".replace(".", ",")
        for d, v in zip(pd.date_range("2012-01-01", periods=150), t)]
    path = tmp_path / "de.csv"
    path.write_text("\n".join(lines) + "\n")
    small = ["--lookback", "7", "--model", "rnn", "--hidden", "2", "--epochs", "1", "--backtest-folds", "1"]
    assert main(["forecast", "--data", str(path), *small, "--target", "temperatur", "--out", str(tmp_path / "r0")]) == 0
    assert "dates read day first" in capsys.readouterr().out  # 13/01/2012 only reads day first: said, not refused
    assert main(["forecast", "--data", str(path), *small, "--target", "TEMPERATUR", "--date-format", "%d/%m/%Y",
                 "--out", str(tmp_path / "r1")]) == 0
    out = capsys.readouterr().out
    assert "semicolon-separated with decimal commas" in out
    record = json.loads((tmp_path / "r1" / "config.json").read_text())
    assert record["data"]["series"]["rows"] == 150 and record["config"]["target"] == "Temperatur"
    flat = tmp_path / "flat.csv"
    pd.DataFrame({"date": pd.date_range("2020-01-01", periods=100).strftime("%Y-%m-%d"), "v": 3.0}).to_csv(flat,
                                                                                                         index=False)
    assert main(["forecast", "--data", str(flat), *small, "--out", str(tmp_path / "r2")]) == 0
    out = capsys.readouterr().out
    assert "The target is constant (3)" in out and "worse" not in out.split("The target is constant")[1]
    results = (tmp_path / "r2" / "results.json").read_text()
    assert "NaN" not in results and "Infinity" not in results


def test_series_column_and_where_from_the_command_line(tmp_path, capsys):
    rows = []
    for station, shift in (("north", 0.0), ("south", 5.0), ("east", 2.0)):
        for i, d in enumerate(pd.date_range("2021-01-01", periods=120, freq="h")):
            rows.append({"station": station, "time_hour": d.strftime("%Y-%m-%d %H:%M"), "day": d.day,
                         "temp": 10 + shift + 3 * np.sin(2 * np.pi * i / 24)})
    path = tmp_path / "stations.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    small = ["--target", "temp", "--lookback", "12", "--model", "rnn", "--hidden", "2", "--epochs", "1",
             "--backtest-folds", "1", "--quiet"]
    err = error(capsys, ["forecast", "--data", str(path), *small, "--out", str(tmp_path / "r0")])
    assert "duplicate timestamps" in err and "series" in err and "where" in err
    assert main(["forecast", "--data", str(path), *small, "--series-column", "station",
                 "--out", str(tmp_path / "all")]) == 0
    results = json.loads((tmp_path / "all" / "results.json").read_text())
    assert set(results["series"]) == {"north", "south", "east"}
    assert main(["forecast", "--data", str(path), *small, "--where", "station=south", "--out", str(tmp_path / "s")]) == 0
    config = json.loads((tmp_path / "s" / "config.json").read_text())
    assert config["data"]["series"]["rows"] == 120 and config["config"]["where"] == "station=south"
    assert config["data"]["series"]["start"] == "2021-01-01T00:00:00"  # time_hour, not the integer `day`, is the date
    capsys.readouterr()
    # predict picks the run's series where the file holds several, and takes a file of that series alone
    assert main(["forecast", "predict", str(tmp_path / "s"), "--csv", str(path)]) == 0
    several = capsys.readouterr().out
    south = tmp_path / "south.csv"
    frame = pd.read_csv(path)
    frame[frame.station == "south"].drop(columns="station").to_csv(south, index=False)
    assert main(["forecast", "predict", str(tmp_path / "s"), "--csv", str(south)]) == 0
    assert capsys.readouterr().out == several
    frame[frame.station != "south"].to_csv(tmp_path / "others.csv", index=False)
    err = error(capsys, ["forecast", "predict", str(tmp_path / "s"), "--csv", str(tmp_path / "others.csv")])
    assert err == (f"neuralab: error: {tmp_path / 'others.csv'}: the run was trained on the series station=south: no "
                   "row has station = 'south'; its values include north, east; give a file with that series' rows")


def test_sizes_that_cannot_fit_in_memory_are_refused_by_name_before_anything_is_allocated(tmp_path, capsys,
                                                                                         monkeypatch):
    from neuralab.data import tables

    data = csv(tmp_path)
    # 10^16 parameters: the allocator's RuntimeError came out as a traceback
    err = error(capsys, ["forecast", "--data", data, *SMALL, "--hidden", "100000000", "--out", str(tmp_path / "h")])
    assert err.startswith("neuralab: error: --hidden 100000000: 10,000,000,400,000,017 parameters") and "GiB to train" in err
    # a lookback of 8,000 on a long minute series: two 8,001 x 8,001 Gram matrices, whatever the rows
    minutes = pd.DataFrame({"time": pd.date_range("2021-01-01", periods=20_000, freq="min").strftime("%Y-%m-%d %H:%M"),
                            "load": np.sin(np.arange(20_000) / 60)})
    minutes.to_csv(tmp_path / "minutes.csv", index=False)
    monkeypatch.setattr(tables, "available_memory", lambda: 2 << 30)
    err = error(capsys, ["forecast", "--data", str(tmp_path / "minutes.csv"), "--lookback", "8000", "--stride", "1000",
                         "--model", "lstm", "--hidden", "4", "--epochs", "1", "--out", str(tmp_path / "l")])
    assert err.startswith("neuralab: error: --lookback 8000: ") and "8,001 x 8,001 normal equations" in err
    assert not (tmp_path / "l").exists()


def test_a_negative_gradient_clip_is_refused(tmp_path, capsys):
    from neuralab.forecasting.pipeline import ForecastConfig
    from neuralab.forecasting.models import series_train_config
    from neuralab.errors import ParameterError

    err = error(capsys, ["forecast", "--data", csv(tmp_path), *SMALL, "--grad-clip", "-1"])
    assert err.startswith("neuralab: error: --grad-clip -1.0: must be 0 (off)"), err
    with pytest.raises(ParameterError, match="grad_clip=-1"):
        ForecastConfig(train=series_train_config(grad_clip=-1)).check()
    err = error(capsys, ["forecast", "--data", csv(tmp_path), *SMALL, "--grad-clip", "nan"])
    assert err.startswith("neuralab: error: --grad-clip nan: must be 0 (off)"), err


def test_predict_names_only_what_predict_accepts(tmp_path, capsys):
    data = csv(tmp_path)
    run = tmp_path / "run"
    assert main(["forecast", "--data", data, *SMALL, "--out", str(run)]) == 0
    capsys.readouterr()
    dups = csv(tmp_path, name="dups.csv", order=[*range(120), 10])  # the 11th day twice
    err = error(capsys, ["forecast", "predict", str(run), "--csv", dups])
    assert "duplicate timestamps" in err and "--duplicates first, last or mean" in err
    assert "--series-column" not in err and "--where" not in err
    assert main(["forecast", "predict", str(run), "--csv", dups, "--duplicates", "last"]) == 0
    capsys.readouterr()
    other = tmp_path / "other.csv"
    pd.read_csv(data).rename(columns={"load": "price"}).to_csv(other, index=False)
    err = error(capsys, ["forecast", "predict", str(run), "--csv", str(other)])
    assert err.startswith(f"neuralab: error: {other}: the run was trained on column 'load': no such column in other.csv")
    assert "--target" not in err


def test_a_folder_given_as_data_is_called_a_folder(tmp_path, capsys):
    err = error(capsys, ["forecast", "--data", str(tmp_path), *SMALL])
    assert err == f"neuralab: error: --data {tmp_path}: is a folder; give a CSV file (or a built-in series)"
