"""A short real training run on the real Seattle weather data, checked file by file."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from neuralab.errors import ParameterError
from neuralab.forecasting.models import ModelConfig, series_train_config
from neuralab.forecasting.finished import load_forecaster, predict_run
from neuralab.forecasting.pipeline import ForecastConfig, run_forecast
from neuralab.forecasting.windows import WindowConfig
from neuralab.runs import Run


pytestmark = pytest.mark.usefixtures("one_cpu_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    config = ForecastConfig(
        data="seattle-weather", target="temp_max", features=["temp_min"], calendar=["dayofyear"],
        windows=WindowConfig(lookback=14, horizon=3, transform="auto"),
        model=ModelConfig("lstm", hidden=[8]),
        train=series_train_config(epochs=2, device="cpu", seed=3),
        backtest_folds=3)
    given = json.dumps(asdict(config), sort_keys=True)
    out = tmp_path_factory.mktemp("forecast") / "run"
    result = run_forecast(config, out=out, verbose=False)
    assert json.dumps(asdict(config), sort_keys=True) == given  # the caller's config is left as it was
    return result, config


def test_run_directory_holds_everything(run):
    result, _ = run
    d = result.run_dir
    for name in ("config.json", "model.json", "model.safetensors", "metrics.jsonl", "forecast.csv",
                 "results.json", "report.html", "plots/series.png", "plots/forecast.png",
                 "plots/error_by_step.png", "plots/learning_curves.png", "checkpoints/last.safetensors"):
        assert (d / name).is_file(), name
    record = json.loads((d / "config.json").read_text())
    assert record["kind"] == "forecaster" and record["seed"] == 3
    assert record["config"]["windows"]["lookback"] == 14 and record["config"]["model"]["architecture"] == "lstm"
    assert {"torch", "device", "numpy", "threads"} <= set(record["environment"])
    assert record["data"]["builtin"]["source"].startswith("vega_datasets")
    assert record["data"]["series"]["rows"] == 1461
    meta = json.loads((d / "model.json").read_text())
    assert meta["columns"] == ["temp_max", "temp_min", "dayofyear_sin", "dayofyear_cos"]
    assert meta["features"] == ["temp_min"] and meta["calendar"] == ["dayofyear"]
    assert meta["model"]["recipe"] == "residual" and meta["windows"]["transform"] != "auto"
    assert meta["scaler"]["kind"] == "standard" and len(meta["scaler"]["center"]) == 4
    assert meta["windows"]["horizon"] == 3
    assert len(Run(d).metrics()) == 2


def test_results_judge_the_network_against_the_best_baseline(run):
    result, _ = run
    text = (result.run_dir / "results.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    results = json.loads(text)
    head = results["headline"]
    assert head["network"] == "lstm"
    assert head["persistence_mae"] == pytest.approx(results["test"]["persistence"]["mae"])
    pct = 100 * (head["persistence_mae"] - head["network_mae"]) / head["persistence_mae"]
    assert head["percent_better"] == pytest.approx(pct)
    baselines = {n: m["mae"] for n, m in results["test"].items() if n != "lstm"}
    assert head["best_baseline"] == min(baselines, key=baselines.get)
    assert head["best"] == min(results["test"], key=lambda n: results["test"][n]["mae"])
    assert head["ratio_to_best_baseline"] == pytest.approx(results["test"]["lstm"]["mae"] / min(baselines.values()))
    assert head["ranking"][head["network_rank"] - 1] == "lstm" and head["best"] in head["sentence"]
    cov = results["intervals"]["coverage"]
    assert set(cov) == {"80", "95"} and all(0 <= c["coverage"] <= 1 and len(c["by_step"]) == 3 for c in cov.values())
    # the transform was chosen on the validation span, and the choice is recorded
    chosen = results["transform"]
    assert chosen["chosen_on"] == "validation" and set(chosen["validation_mae"]) == {"none", "diff"}  # some <= 0 °C
    assert chosen["used"] == min(chosen["validation_mae"], key=chosen["validation_mae"].get) or \
        chosen["validation_mae"][chosen["used"]] <= 1.005 * min(chosen["validation_mae"].values())
    record = json.loads((result.run_dir / "config.json").read_text())
    assert record["config"]["windows"]["transform"] == chosen["used"] and record["config"]["target"] == "temp_max"
    assert set(results["test"]) == {"lstm", "persistence", "seasonal-naive", "drift", "moving-average", "linear-ar"}
    assert all(len(v) == 3 for v in results["by_step_mae"].values())
    assert len(results["backtest"]) == 3 and results["windows"]["test"] > 0
    # temperatures in degrees C: a plausible persistence error, in original units
    assert 1.5 < results["test"]["persistence"]["mae"] < 5


def test_the_results_say_which_forecast_the_network_reports(run):
    result, _ = run
    results = json.loads((result.run_dir / "results.json").read_text())
    head, gain = results["headline"], results["validation_gain"]
    assert gain["windows"] == results["windows"]["val"] and gain["noise"] == 2.0
    beyond_noise = gain["gain"] > gain["noise"] * gain["standard_error"]
    assert results["kept_linear_start"] is (not beyond_noise)
    if results["kept_linear_start"]:
        assert head["network_forecast"] == f"its linear start ({results['linear_start']})"
        assert "its linear start" in head["sentence"] and results["best_epoch"] == 0
    else:
        assert head["network_forecast"] == "trained" and "linear start" not in head["sentence"]


def test_the_runs_listing_shows_the_ratio_to_the_best_baseline(run):
    from neuralab.run_list import describe

    result, _ = run
    head = json.loads((result.run_dir / "results.json").read_text())["headline"]
    row = describe(Run(result.run_dir))
    assert row.metric["name"] == "test MAE" and row.metric["value"] == pytest.approx(head["network_mae"])
    assert row.metric["note"] == f"{head['ratio_to_best_baseline']:.3f} x the best baseline's MAE ({head['best_baseline']})"
    assert "persistence" not in row.metric["note"] or head["best_baseline"] == "persistence"


def test_the_web_view_carries_the_intervals_it_draws(run):
    from neuralab.web.forecast import forecast_view

    result, _ = run
    results = json.loads((result.run_dir / "results.json").read_text())
    v = forecast_view(result.run_dir.parent, result.run_dir.name)
    assert v["intervals"]["forecaster"] == "lstm" and v["intervals"]["levels"] == ["80", "95"]
    assert v["intervals"]["coverage"] == {k: c["coverage"] for k, c in results["intervals"]["coverage"].items()}
    frame = pd.read_csv(result.run_dir / "forecast.csv")
    for step, data in v["steps"].items():
        rows = frame[(frame.split == "test") & (frame.step == int(step))]
        for k in ("80", "95"):
            np.testing.assert_allclose(data[f"lower_{k}"], rows[f"lower_{k}"])
            assert all(lo <= f <= up for lo, f, up in zip(data[f"lower_{k}"], data["lstm"], data[f"upper_{k}"]))
        assert all(a <= b for a, b in zip(data["upper_80"], data["upper_95"]))  # the 95% band holds the 80% one
    ratios = {s["name"]: s["vs_best_baseline"] for s in v["scores"]}
    assert ratios["lstm"] == pytest.approx(results["headline"]["ratio_to_best_baseline"])
    assert min(r for n, r in ratios.items() if n != "lstm") == pytest.approx(1.0)


def test_forecast_csv_lines_up_with_actual_values(run, tmp_path):
    result, _ = run
    frame = pd.read_csv(result.run_dir / "forecast.csv", parse_dates=["origin", "time"])
    test = frame[frame.split == "test"]
    assert list(frame.columns[:5]) == ["split", "origin", "time", "step", "actual"]
    assert {"lower_80", "upper_80", "lower_95", "upper_95"} <= set(frame.columns)
    assert (frame["lower_80"] <= frame["lstm"]).all() and (frame["lstm"] <= frame["upper_80"]).all()
    assert ((frame["lower_95"] <= frame["lower_80"]) & (frame["upper_80"] <= frame["upper_95"])).mean() > 0.9
    assert frame[frame.split == "future"][["lower_95", "upper_95"]].notna().all().all()
    weather = pd.read_csv(__import__("neuralab.data.tables", fromlist=["x"]).builtin_path("seattle-weather").open("rb"),
                          compression="gzip", parse_dates=["date"]).set_index("date")
    np.testing.assert_allclose(test["actual"], weather.loc[test["time"], "temp_max"].to_numpy(), rtol=1e-5)
    step1 = test[test.step == 1]
    np.testing.assert_allclose(step1["persistence"], weather.loc[step1["origin"], "temp_max"].to_numpy(), rtol=1e-5)
    assert (test["time"] > test["origin"]).all()
    future = frame[frame.split == "future"]
    assert len(future) == 3 and str(future["time"].iloc[0].date()) == "2016-01-01"


def test_report_says_first_which_forecaster_is_best(run):
    result, _ = run
    html = (result.run_dir / "report.html").read_text()
    first = html.index('<p class="verdict')
    assert first < html.index("<table") and first < html.index("<img")
    verdict = html[first:html.index("</p>", first)]
    head = result.headline
    assert head["best_baseline"] in verdict and "MAE" in verdict and "%" in verdict
    assert html.count("data:image/png;base64,") == 4
    assert "Rolling-origin backtest" in html and "learning curves" in html.lower()


def test_predict_from_new_data_matches_the_runs_own_forecast(run, tmp_path):
    result, _ = run
    with __import__("neuralab.data.tables", fromlist=["x"]).builtin_path("seattle-weather").open("rb") as f:
        weather = pd.read_csv(f, compression="gzip")
    csv = tmp_path / "recent.csv"
    weather.tail(40).to_csv(csv, index=False)
    forecast = predict_run(result.run_dir, csv)
    stored = pd.read_csv(result.run_dir / "forecast.csv")
    future = stored[stored.split == "future"]
    np.testing.assert_allclose(forecast["temp_max"], future["lstm"], rtol=1e-4)
    assert [str(t.date()) for t in forecast["time"]] == ["2016-01-01", "2016-01-02", "2016-01-03"]
    model = load_forecaster(result.run_dir)
    assert model.meta["windows"]["lookback"] == 14 and not model.network.training
    for new_rows in (weather.tail(40), weather["temp_max"].to_numpy()):  # what a notebook hands over first
        with pytest.raises(ParameterError, match=r"^windows=.*use predict_run\(run, data\)"):
            model.predict(new_rows)


def test_one_network_across_several_series_with_metrics_per_series(tmp_path):
    from neuralab.data.series import load_series

    weather = load_series("seattle-weather", features=["temp_min"]).frame.iloc[-400:]
    long = pd.concat([pd.DataFrame({"Station": name, "date": weather.index.strftime("%Y-%m-%d"),
                                    "temp": weather[column].to_numpy()})
                      for name, column in [("MAX", "temp_max"), ("MIN", "temp_min")]])
    path = tmp_path / "stations.csv"
    long.sample(frac=1, random_state=0).to_csv(path, index=False)  # shuffled, as exports sometimes are
    config = ForecastConfig(data=str(path), target="temp", series_column="station",
                            windows=WindowConfig(lookback=10, transform="auto"), model=ModelConfig("gru", hidden=[4]),
                            train=series_train_config(epochs=1, device="cpu"), backtest_folds=2)
    result = run_forecast(config, out=tmp_path / "run", verbose=False)
    results = result.results
    assert set(results["series"]) == {"MAX", "MIN"} and results["series_column"] == "station"  # as given
    assert results["headline"]["metric"] == "mase"
    for name in ("MAX", "MIN"):  # baselines fitted per series; MASE overall is the mean of theirs
        assert set(results["series"][name]["test"]) == set(results["test"])
    mean_mase = np.mean([results["series"][n]["test"]["persistence"]["mase"] for n in ("MAX", "MIN")])
    assert results["test"]["persistence"]["mase"] == pytest.approx(mean_mase)
    frame = pd.read_csv(tmp_path / "run" / "forecast.csv")
    assert frame.columns[0] == "series" and set(frame["series"]) == {"MAX", "MIN"}
    step = frame[(frame.split == "test") & (frame.series == "MIN")]
    np.testing.assert_allclose(step["actual"].to_numpy()[-5:], weather["temp_min"].to_numpy()[-5:], rtol=1e-5)
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert set(meta["scalers"]) == {"MAX", "MIN"} and meta["series_column"] == "station"
    from neuralab.run_list import describe

    row = describe(Run(tmp_path / "run"))  # the listing ranks by the verdict's metric too
    assert row.metric["name"] == "test MASE" and row.metric["value"] == pytest.approx(results["test"]["gru"]["mase"])
    assert "best baseline's MASE" in row.metric["note"]
    ahead = predict_run(tmp_path / "run", path)
    assert list(ahead["series"]) == ["MAX", "MIN"] and (ahead["time"] == pd.Timestamp("2016-01-01")).all()
    np.testing.assert_allclose(ahead["temp"], frame[frame.split == "future"]["gru"], rtol=1e-4)
    one = run_forecast(replace_config(config, series_column=None, where="station=MIN"), out=tmp_path / "one",
                       verbose=False)
    assert "series" not in one.results and one.results["windows"]["test"] * 2 == results["windows"]["test"]


def replace_config(config, **changes):
    from dataclasses import replace

    return replace(config, **changes)


def _without_pictures(page: str) -> str:
    return re.sub(r'src="data:image/png;base64,[^"]*"', 'src=""', page)


def test_report_is_written_again_from_the_run_directory(run, tmp_path, capsys):
    """`neuralab report` draws the same page from results.json, forecast.csv, the model and
    the series as the run drew from its objects: the same tables and texts, the same figures."""
    from PIL import Image

    from neuralab.cli import main

    result, _ = run
    copy = tmp_path / "copy"
    shutil.copytree(result.run_dir, copy)
    (copy / "report.html").unlink()
    shutil.rmtree(copy / "plots")
    assert main(["report", str(copy)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {copy / 'report.html'}"
    first, again = (result.run_dir / "report.html").read_text(), (copy / "report.html").read_text()
    assert _without_pictures(again) == _without_pictures(first)
    assert again.count("data:image/png;base64,") == 4 and "<script" not in again
    for name in ("series", "forecast", "error_by_step", "learning_curves"):
        drawn, redrawn = (np.asarray(Image.open(d / "plots" / f"{name}.png").convert("L"), dtype=float)
                          for d in (result.run_dir, copy))
        assert drawn.shape == redrawn.shape, name
        assert (np.abs(drawn - redrawn) > 32).mean() < 0.002, name  # forecast.csv keeps 6 digits


def test_a_full_disk_stops_the_forecast_report_in_one_line(run, tmp_path, monkeypatch, capsys):
    import contextlib
    import errno
    import os

    from neuralab.cli import main
    from neuralab.reports import plots

    result, _ = run
    copy = tmp_path / "copy"
    shutil.copytree(result.run_dir, copy)
    results = (copy / "results.json").read_bytes()
    real = plots.atomic_write  # the figure saver's writer: the disk fills up at the second picture

    @contextlib.contextmanager
    def full(path, mode="w"):
        if Path(path).name == "forecast.png":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        with real(path, mode) as f:
            yield f

    monkeypatch.setattr(plots, "atomic_write", full)
    assert main(["report", str(copy)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0] and f"`neuralab report {copy}`" in err[0]
    assert (copy / "results.json").read_bytes() == results and load_forecaster(copy).meta["horizon"] == 3


def test_report_refuses_a_series_that_changed_since_the_run(run, tmp_path, capsys):
    from neuralab.cli import main

    result, _ = run
    copy = tmp_path / "copy"
    shutil.copytree(result.run_dir, copy)
    csv = tmp_path / "weather.csv"
    csv.write_text("date,temp_max\n2012-01-01,12.8\n")
    record = json.loads((copy / "config.json").read_text())
    record["data"].update(path=str(csv), sha256="0" * 64)  # as a CSV run records its file
    (copy / "config.json").write_text(json.dumps(record))
    assert main(["report", str(copy)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(csv) in err[0] and "changed since the run" in err[0]
    assert main(["report", str(copy), "--data-dir", str(tmp_path)]) == 2
    assert "--data-dir" in capsys.readouterr().err


def test_forecast_csv_keeps_every_digit_of_a_large_level(tmp_path):
    """A random walk around 12,345,678 moving by about 1: six significant digits would round every
    value to 1.23457e+07, so the MAE recomputed from forecast.csv came out 0 beside results.json's."""
    rng = np.random.default_rng(1)
    days = pd.date_range("2022-01-01", periods=150).strftime("%Y-%m-%d")
    pd.DataFrame({"date": days, "level": 12_345_678 + np.cumsum(rng.normal(0, 1, 150))}).to_csv(
        tmp_path / "big.csv", index=False)
    config = ForecastConfig(data=str(tmp_path / "big.csv"), windows=WindowConfig(lookback=5, transform="none"),
                            model=ModelConfig("lstm", hidden=[4]), train=series_train_config(epochs=1, device="cpu"),
                            backtest_folds=1)
    result = run_forecast(config, out=tmp_path / "run", verbose=False)
    test = pd.read_csv(tmp_path / "run" / "forecast.csv").query("split == 'test'")
    for name in ("persistence", "lstm"):
        mae = float(np.abs(test[name] - test["actual"]).mean())
        assert mae == pytest.approx(result.test[name]["mae"], rel=1e-9) and mae > 0.1


def test_a_dataframe_as_a_runs_data_is_refused_before_anything_is_written(tmp_path):
    """A run reads its data again (resume, the report): a DataFrame cannot be; load_series takes it."""
    from neuralab.errors import ParameterError
    from neuralab.forecasting.pipeline import ForecastConfig, run_forecast

    frame = pd.DataFrame({"date": pd.date_range("2020-01-01", periods=200), "value": np.arange(200.0)})
    with pytest.raises(ParameterError, match="df.to_csv") as e:
        run_forecast(ForecastConfig(data=frame), out=tmp_path / "run", verbose=False)
    assert e.value.parameter == "data" and not (tmp_path / "run").exists()


def test_a_network_without_a_linear_path_is_not_given_the_levels_of_a_series_that_leaves_its_range(tmp_path, capsys):
    from neuralab.data.series import load_series
    from neuralab.forecasting.pipeline import choose_transform

    rng = np.random.default_rng(0)
    steps = np.arange(1500)
    sales = 100 + 0.08 * steps + 5 * np.sin(steps * 2 * np.pi / 7) + np.cumsum(rng.normal(0, 0.5, len(steps)))
    path = tmp_path / "sales.csv"
    pd.DataFrame({"date": pd.date_range("2018-01-01", periods=len(steps), freq="D"), "sales": sales}).to_csv(
        path, index=False)
    config = ForecastConfig(data=str(path), windows=WindowConfig(lookback=60, horizon=1, transform="auto"))
    many = [load_series(path)]
    # the linear probe extrapolates the trend on the levels as well as on the changes...
    chosen, errors = choose_transform(many, config)
    assert chosen == "none" and set(errors) == {"none", "diff", "log-return"}
    # ...which a plain network, whose scaled outputs stay near the levels it saw, cannot
    chosen, errors = choose_transform(many, config, linear_path=False)
    assert chosen == "diff" and set(errors) == {"diff", "log-return"}
    plain = ForecastConfig(data=str(path), model=ModelConfig("lstm", hidden=[4], recipe="plain"),
                           windows=WindowConfig(lookback=60, horizon=1, transform="auto"),
                           train=series_train_config(epochs=1, device="cpu", seed=0), backtest_folds=1)
    result = run_forecast(plain, out=tmp_path / "run")
    line = next(t for t in capsys.readouterr().out.splitlines() if "transform" in t)
    assert re.fullmatch(r"  transform diff \(chosen on the validation span: diff [\d.]+, log-return [\d.]+\); none "
                        r"left out: \d+% of the validation values lie outside the training span's range, which a "
                        r"network without a linear path cannot reach on the levels", line), line
    assert json.loads((result.run_dir / "results.json").read_text())["transform"]["used"] == "diff"


def _monthly_sales(path: Path, months: int = 240) -> Path:
    rng = np.random.default_rng(0)
    t = np.arange(months)
    pd.DataFrame({"date": pd.date_range("2000-01-01", periods=months, freq="MS"),
                  "sales": 100 + 0.5 * t + 10 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 1, months)}).to_csv(
        path, index=False)
    return path


@pytest.mark.parametrize("transform", ["auto", "none"])
def test_a_lookback_of_one_forecasts_with_the_residual_recipe(tmp_path, transform):
    """A window of one value shows no step to scale by: its departures stay in model space's
    units, where the mean of no steps made every forecast NaN (the auto transform's probe, then
    the verdict, failed)."""
    config = ForecastConfig(data=str(_monthly_sales(tmp_path / "monthly.csv")),
                            windows=WindowConfig(lookback=1, transform=transform),
                            model=ModelConfig("lstm", hidden=[4]), train=series_train_config(epochs=1, device="cpu"),
                            backtest_folds=1)
    result = run_forecast(config, out=tmp_path / "run", verbose=False)
    assert np.isfinite(result.test["lstm"]["mae"]) and result.headline["network_rank"] >= 1
    assert (result.run_dir / "results.json").is_file()


def test_forecasts_that_are_not_finite_stop_the_run_as_a_divergence(tmp_path, monkeypatch):
    """Finite weights whose forecasts overflow: refused naming `lr`, the run's folder emptied, not
    a KeyError from the verdict behind a half-written run."""
    from neuralab.forecasting.models import NetworkForecaster
    from neuralab.training.config import Diverged

    predict = NetworkForecaster.predict
    monkeypatch.setattr(NetworkForecaster, "predict", lambda self, w: predict(self, w) * np.inf)
    config = ForecastConfig(data=str(_monthly_sales(tmp_path / "monthly.csv")),
                            windows=WindowConfig(lookback=12, transform="none"),
                            model=ModelConfig("lstm", hidden=[4]), train=series_train_config(epochs=1, device="cpu"),
                            backtest_folds=1)
    with pytest.raises(Diverged, match="forecasts on the test span are not finite"):
        run_forecast(config, out=tmp_path / "run", verbose=False)
    assert not (tmp_path / "run").exists()


def test_the_auto_transform_passes_over_a_probe_that_forecasts_nothing_finite(tmp_path, monkeypatch):
    from neuralab.data.series import load_series
    from neuralab.forecasting.models import NetworkForecaster
    from neuralab.forecasting.pipeline import choose_transform

    path = _monthly_sales(tmp_path / "monthly.csv")
    errors = iter([[float("nan")], [1.0], [2.0]])
    monkeypatch.setattr(NetworkForecaster, "linear_errors", lambda self, train, val: next(errors))
    chosen, seen = choose_transform([load_series(path)], ForecastConfig(data=str(path)))
    assert chosen == "diff" and np.isnan(seen["none"])


def test_the_fewest_rows_a_refusal_names_under_the_auto_transform_are_enough(tmp_path, capsys):
    """The auto transform weighs the levels first, whose refusal named their fewest rows; the changes,
    a row short at that length, then refused it one row higher. A candidate that does not fit is passed over."""
    from neuralab.errors import NeuralabError
    from neuralab.forecasting.windows import minimum_rows

    rng = np.random.default_rng(0)
    need = minimum_rows(WindowConfig(lookback=60))

    def config(rows: int) -> ForecastConfig:
        path = tmp_path / f"daily{rows}.csv"
        pd.DataFrame({"date": pd.date_range("2020-01-01", periods=rows).strftime("%Y-%m-%d"),
                      "v": np.cumsum(rng.normal(0, 1, rows))}).to_csv(path, index=False)
        return ForecastConfig(data=str(path), windows=WindowConfig(lookback=60, transform="auto"),
                              model=ModelConfig("lstm", hidden=[4]), train=series_train_config(epochs=1, device="cpu"),
                              backtest_folds=1)

    with pytest.raises(NeuralabError, match=rf"40 rows is fewer .*at least {need} rows"):
        run_forecast(config(40), out=tmp_path / "short", verbose=False)
    capsys.readouterr()
    result = run_forecast(config(need), out=tmp_path / "run")
    assert result.results["transform"]["used"] == "none" and result.results["windows"]["test"] >= 1
    # the changes were never weighed: the header and results.json say so, and why
    why = f"daily{need}.csv has {need} rows, fewer than the {need + 1} it needs (a change costs the first row)"
    assert result.results["transform"]["passed_over"] == {"diff": why} and set(
        result.results["transform"]["validation_mae"]) == {"none"}
    header = next(t for t in capsys.readouterr().out.splitlines() if t.startswith("  transform"))
    assert header.endswith(f"; diff passed over: {why}"), header


def test_the_epoch_lines_are_said_to_be_of_the_scaled_target(tmp_path, capsys):
    """The network trains on the scaled target, so its epochs' MAE is not in the data's units, as every
    score after training is: the header says so right above the epoch lines."""
    config = ForecastConfig(data="seattle-weather", target="temp_max", windows=WindowConfig(lookback=14, horizon=1),
                            model=ModelConfig("lstm", hidden=[4]), train=series_train_config(epochs=1, device="cpu"),
                            backtest_folds=1)
    result = run_forecast(config, out=tmp_path / "run")
    lines = capsys.readouterr().out.splitlines()
    first = next(i for i, t in enumerate(lines) if t.startswith("epoch 1/1 "))
    assert lines[first - 1] == ("per epoch: loss and MAE of the scaled target the network trains on; the scores after "
                                "training are in the data's units")
    # the epoch line's val_mae and results.json's validation MAE (°C) are figures in other units
    epoch_mae = float(re.search(r"val_mae ([\d.]+)", lines[first]).group(1))
    assert epoch_mae < 0.5 * result.results["val"][result.results["headline"]["network"]]["mae"]


def test_the_epoch_lines_of_an_unscaled_target_are_in_the_datas_units_and_said_as_such(tmp_path, capsys):
    """Under --scaler none and no transform the network trains on the target in its units: the header
    and `neuralab runs` said its figures were of the scaled target, beside a val_mae equal to the
    validation MAE in degrees."""
    from neuralab import run_list

    config = ForecastConfig(data="seattle-weather", target="temp_max",
                            windows=WindowConfig(lookback=14, horizon=1, scaler="none", transform="none"),
                            model=ModelConfig("lstm", hidden=[4]), train=series_train_config(epochs=1, device="cpu"),
                            backtest_folds=1)
    run_forecast(config, out=tmp_path / "run")
    out = capsys.readouterr().out
    assert "per epoch" not in out and "scaled target" not in out
    (tmp_path / "run" / "results.json").unlink()  # as a run stopped after its epochs
    row = run_list.describe(Run(tmp_path / "run"), "run")
    assert row.metric["name"] == "val mae" and row.metric["note"] == "best so far"
    diffed = WindowConfig(lookback=14, horizon=1, scaler="none", transform="diff")
    assert run_list.trained_on(diffed) == "of the target's change" and run_list.trained_on(WindowConfig()) == \
        run_list.SCALED
    from neuralab.reports.forecast import _loss_label  # the report's learning curves said "MSE (scaled)"

    assert _loss_label(Run(tmp_path / "run").record["config"]) == "MSE"
    assert _loss_label({"train": {"loss": "huber"}, "windows": {"scaler": "standard"}}) == "HUBER of the scaled target"
