"""Faults a user of `neuralab forecast` and of neuralab.forecasting runs into, on stretches of
the real S&P 500 closes and Seattle's weather: each is refused in one line naming the
parameter or the file, and leaves no half-written run behind."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from neuralab.cli import main
from neuralab.data.series import load_series
from neuralab.data.tables import available_memory
from neuralab.errors import NeuralabError, ParameterError
from neuralab.forecasting.baselines import build_baselines
from neuralab.forecasting.models import ModelConfig, series_train_config
from neuralab.forecasting.finished import predict_run
from neuralab.forecasting.pipeline import ForecastConfig, refuse_oversized_run, run_forecast
from neuralab.forecasting.windows import WindowConfig


pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def closes(path: Path, rows: slice = slice(0, 150), times: float = 1.0) -> Path:
    """The S&P 500's daily closes of ``rows`` as a user's CSV, in units ``times`` the index points."""
    s = load_series("sp500", "Close")
    frame = pd.DataFrame({"Date": s.times[rows].strftime("%Y-%m-%d"), "Close": s.values[rows, 0] * times})
    frame.to_csv(path, index=False)
    return path


def config(data, **changes) -> ForecastConfig:
    train = series_train_config(**{"epochs": 1, "device": "cpu", "seed": 0, **changes.pop("train", {})})
    return ForecastConfig(data=str(data), windows=changes.pop("windows", WindowConfig(lookback=5, transform="none")),
                          model=changes.pop("model", ModelConfig("lstm", hidden=[4])), train=train,
                          backtest_folds=1, **changes)


def test_huge_prices_unscaled_are_refused_naming_the_scaler(tmp_path):
    # 1e30 x the index: the float32 network squares each window's changes, which overflows
    data = closes(tmp_path / "prices.csv", times=1e30)
    windows = WindowConfig(lookback=5, transform="none", scaler="none")
    with pytest.raises(ParameterError, match="prices.csv: column 'Close' reaches .* use scaler standard") as e:
        run_forecast(config(data, windows=windows), out=tmp_path / "run", verbose=False)
    assert e.value.parameter == "scaler" and not (tmp_path / "run").exists()


def test_huge_prices_unscaled_with_the_automatic_transform_exit_2_in_one_line(tmp_path, capsys):
    data = closes(tmp_path / "prices.csv", times=1e30)
    code = main(["forecast", "--data", str(data), "--scaler", "none", "--lookback", "5", "--epochs", "1",
                 "--model", "lstm", "--hidden", "4", "--quiet", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("neuralab: error: --scaler none: ")
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("trained")
    return run_forecast(config(closes(folder / "prices.csv")), out=folder / "run", verbose=False).run_dir


def test_predicting_from_values_far_outside_the_training_span_is_refused(trained, tmp_path):
    closes(tmp_path / "recent.csv", slice(150, 170))
    assert predict_run(trained, tmp_path / "recent.csv")["Close"].between(1000, 2000).all()
    closes(tmp_path / "wrong-unit.csv", slice(150, 170), times=1e32)  # else its forecast came back as inf
    with pytest.raises(NeuralabError, match="wrong-unit.csv: column 'Close' reaches .* times the spread"):
        predict_run(trained, tmp_path / "wrong-unit.csv")


@pytest.mark.parametrize("into_run", [False, True])
def test_a_prediction_never_replaces_its_input_or_the_runs_files(trained, tmp_path, capsys, into_run):
    recent = closes(tmp_path / "recent.csv", slice(150, 170))
    output = str(trained / "forecast.csv" if into_run else recent)
    kept = {p: p.read_bytes() for p in (recent, trained / "forecast.csv")}
    code = main(["forecast", "predict", str(trained), "--csv", str(recent), "--output", output])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith(f"neuralab: error: --output {output}: ")
    assert {p: p.read_bytes() for p in kept} == kept


def test_a_network_that_diverges_is_refused_naming_lr_and_leaves_no_run(tmp_path, capsys):
    data = closes(tmp_path / "prices.csv")
    code = main(["forecast", "--data", str(data), "--recipe", "plain", "--lr", "1e30", "--grad-clip", "0",
                 "--target-transform", "none", "--lookback", "5", "--epochs", "2", "--quiet",
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("neuralab: error: --lr 1e+30: training diverged") and "--grad-clip 1" in err
    assert not (tmp_path / "run").exists()
    (tmp_path / "mine").mkdir()  # a folder the user made stays, empty
    with pytest.raises(ParameterError, match="training diverged"):
        run_forecast(config(data, model=ModelConfig("lstm-stacked", recipe="plain"),
                            train={"lr": 1e30, "grad_clip": 0.0, "epochs": 2}), out=tmp_path / "mine", verbose=False)
    assert list((tmp_path / "mine").iterdir()) == []


def test_a_residual_network_that_diverges_keeps_its_linear_start(tmp_path):
    data = closes(tmp_path / "prices.csv")
    result = run_forecast(config(data, model=ModelConfig("lstm-stacked"), train={"lr": 1e30, "grad_clip": 0.0}),
                          out=tmp_path / "run", verbose=False)
    assert result.results["kept_linear_start"] is True
    assert result.test["lstm-stacked"]["mae"] < 2 * result.test["persistence"]["mae"]
    assert "its linear start" in result.headline["sentence"]


def test_a_path_object_as_data_is_recorded_as_its_text(tmp_path):
    data = closes(tmp_path / "prices.csv")
    run = run_forecast(replace(config(data), data=data), out=tmp_path / "run", verbose=False)
    record = json.loads((run.run_dir / "config.json").read_text())
    assert record["config"]["data"] == str(data) and record["data"]["path"] == str(data.resolve())


@pytest.mark.parametrize("changes, parameter", [
    ({"windows": WindowConfig(lookback="60")}, "lookback"),
    ({"windows": WindowConfig(lookback=5.5)}, "lookback"),
    ({"windows": WindowConfig(horizon=True)}, "horizon"),
    ({"windows": {"lookback": 30}}, "windows"),
    ({"season": 7.5}, "season"),
    ({"backtest_folds": 1.5}, "backtest_folds"),
    ({"model": ModelConfig("lstm", hidden="64")}, "hidden"),
    ({"model": ModelConfig("lstm", hidden=[64.0])}, "hidden"),
])
def test_settings_of_the_wrong_type_are_refused_by_name(changes, parameter):
    with pytest.raises(ParameterError) as e:
        ForecastConfig(**changes).check()
    assert e.value.parameter == parameter


def test_a_name_given_where_a_list_is_expected_is_refused_whole():
    with pytest.raises(ParameterError, match=r"features='temp_min': give a list of names, e.g. \['temp_min'\]"):
        load_series("seattle-weather", "temp_max", features="temp_min")
    with pytest.raises(ParameterError, match=r"calendar='month': give a list"):
        load_series("seattle-weather", "temp_max", calendar="month")
    with pytest.raises(ParameterError, match=r"baselines='drift': give a list"):
        build_baselines("drift")


def test_a_horizon_too_long_for_memory_names_the_horizon():
    if available_memory() is None:
        pytest.skip("this system does not say how much memory is free")
    long = ForecastConfig(windows=WindowConfig(lookback=5, horizon=10**12))
    with pytest.raises(ParameterError, match="use a shorter horizon") as e:
        refuse_oversized_run(long)
    assert e.value.parameter == "horizon"
    wide = ForecastConfig(windows=WindowConfig(lookback=5), model=ModelConfig("lstm", hidden=[10**8]))
    with pytest.raises(ParameterError, match="use smaller sizes") as e:
        refuse_oversized_run(wide)
    assert e.value.parameter == "hidden"


def test_a_column_of_words_is_refused_naming_the_option_that_chose_it(capsys):
    # Seattle's `weather` holds words (drizzle, rain, sun): nothing in the file to fix
    with pytest.raises(ParameterError, match=r"holds text \('drizzle' on line 2 of seattle-weather\)") as e:
        load_series("seattle-weather", "temp_max", features=["weather"])
    assert e.value.parameter == "features"
    assert main(["forecast", "--data", "seattle-weather", "--target", "weather"]) == 2
    assert capsys.readouterr().err.startswith("neuralab: error: --target weather: holds text")


def test_numpy_numbers_in_the_configs_are_taken_as_pythons_as_in_trainconfig():
    """np.arange's numbers, as a sweep over lookbacks gives them: the same rule as TrainConfig's
    (training.config.check_types), so config.json can hold them."""
    import numpy as np

    config = ForecastConfig(windows=WindowConfig(lookback=np.arange(30, 31)[0], val_fraction=np.float32(0.25)),
                            backtest_folds=np.int64(2), season=np.int32(7))
    config.check()
    assert json.dumps([config.windows.lookback, config.windows.val_fraction, config.backtest_folds, config.season])
    assert (type(config.windows.lookback), type(config.backtest_folds), type(config.season)) == (int, int, int)
    with pytest.raises(ParameterError, match="season"):
        replace(config, season="7").check()


def test_a_test_span_past_the_training_range_gets_advice_naming_flags_on_the_command_line(tmp_path, capsys):
    """A rising series whose test span lies above every level trained on: the verdict's advice
    says so and offers to model the changes, naming --target-transform on the command line and
    `transform` in Python, and the other advice names flags too."""
    t = np.arange(300)
    visits = 100 + 0.5 * t + 3 * np.sin(t * 0.9) + np.random.default_rng(0).normal(0, 0.5, t.size)
    data = tmp_path / "visits.csv"
    pd.DataFrame({"day": pd.date_range("2022-01-01", periods=t.size).strftime("%Y-%m-%d"),
                  "visits": visits}).to_csv(data, index=False)
    assert main(["forecast", "--data", str(data), "--target", "visits", "--recipe", "plain", "--target-transform",
                 "none", "--lookback", "10", "--model", "rnn", "--hidden", "4", "--epochs", "1",
                 "--backtest-folds", "1", "--threads", "1", "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    advice = next(line for line in out.splitlines() if "outside the range of the training span" in line)
    assert "(--target-transform log-return for prices, diff otherwise)" in advice and "`" not in advice
    # its lookback of 10 covers the season of 7 the sine gives it: no advice about the lookback
    assert "related measurements as --features" in advice and "--calendar" in advice and "lookback" not in advice
    head = json.loads((tmp_path / "run" / "results.json").read_text())["headline"]
    assert head["test_outside_training_range"] > 0.1 and "`transform` log-return" in head["advice"]

    plain = config(data, target="visits", windows=WindowConfig(lookback=10, transform="none"),
                   model=ModelConfig("rnn", hidden=[4], recipe="plain"))
    run_forecast(plain, out=tmp_path / "python", verbose=True)
    assert "model the changes instead (transform log-return for prices, diff otherwise)" in capsys.readouterr().out
    # the residual recipe forecasts from each window's last value: no advice about the range
    residual = run_forecast(replace(plain, model=ModelConfig("rnn", hidden=[4])), out=tmp_path / "residual",
                            verbose=False)
    assert "outside the range" not in residual.headline["advice"]


def test_a_forecast_result_and_a_loaded_forecaster_show_what_the_run_is(tmp_path):
    """A notebook cell ending in the result shows the verdict and each forecaster's test error,
    best first, and the report's figures; a loaded forecaster shows the settings it was trained
    with (it showed 30 epochs, the defaults, for a run of 1)."""
    from neuralab.forecasting.finished import load_forecaster

    result = run_forecast(config(closes(tmp_path / "prices.csv")), out=tmp_path / "run", verbose=False)
    shown = repr(result).splitlines()
    assert shown[0] == f"ForecastResult {result.run_dir}: 1 epoch, {result.seconds:.1f} s of training"
    assert shown[1] == result.headline["sentence"].replace("`", "")
    listed = [line.split()[0] for line in shown[2:-1]]
    assert listed == result.headline["ranking"] and len(listed) == len(result.test) >= 5
    assert sum(line.endswith("<- network") for line in shown) == 1 and len(repr(result)) < 2000
    assert result._repr_html_().count("<img") == 2
    assert "epochs=1," in repr(load_forecaster(result.run_dir))
