"""`neuralab export FORECAST_RUN --onnx`: a model.onnx that onnxruntime alone runs on rows as
the CSV holds them and that forecasts in the target's units, as `neuralab forecast predict` does
(real S&P 500 and Seattle weather, tiny networks, one epoch)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from neuralab.cli import main
from neuralab.data.series import load_series
from neuralab.errors import NeuralabError
from neuralab.forecasting.models import ModelConfig, series_train_config
from neuralab.forecasting.finished import predict_run
from neuralab.forecasting.pipeline import ForecastConfig, run_forecast
from neuralab.forecasting.windows import WindowConfig

ort = pytest.importorskip("onnxruntime", reason="pip install 'neuralab[export]'")


pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def forecast(tmp_path, data="seattle-weather", target="temp_max", features=(), transform="diff", recipe="residual",
             **settings):
    config = ForecastConfig(data=data, target=target, features=list(features),
                            windows=WindowConfig(lookback=6, horizon=3, transform=transform),
                            model=ModelConfig("lstm", hidden=[4], recipe=recipe),
                            train=series_train_config(epochs=1, device="cpu", seed=1), baselines=["persistence"],
                            backtest_folds=1, **settings)
    return run_forecast(config, out=tmp_path / "run", verbose=False).run_dir


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def assert_forecasts_like_predict(run, frame, tmp_path, ends=(-1, -40, -900)):
    """onnxruntime on one batch of windows ending at ``ends`` gives what `forecast predict` gives
    on the CSV cut at each of those rows, in the target's units."""
    onnx = session(run / "model.onnx")
    props = onnx.get_modelmeta().custom_metadata_map
    columns, rows = json.loads(props["columns"]), int(props["rows"])
    values = frame[columns].to_numpy(np.float32)
    windows = np.stack([values[len(values) + end + 1 - rows:len(values) + end + 1] for end in ends])
    got = onnx.run(None, {"windows": windows})[0]
    meta = json.loads((run / "model.json").read_text())
    for i, end in enumerate(ends):
        csv = tmp_path / f"until{end}.csv"
        frame.iloc[:len(frame) + end + 1].to_csv(csv)
        want = predict_run(run, csv)[meta["target"]].to_numpy()
        np.testing.assert_allclose(got[i], want, rtol=1e-5, atol=1e-5)
    return props


@pytest.mark.parametrize("data, target, features, transform, recipe", [
    ("sp500", "Close", (), "log-return", "residual"),
    ("sp500", "Close", (), "none", "plain"),
    ("seattle-weather", "temp_max", ("precipitation", "wind"), "diff", "plain"),
    ("seattle-weather", "temp_max", ("temp_min",), "none", "residual"),
])
def test_the_exported_file_alone_forecasts_as_neuralab_does(tmp_path, capsys, data, target, features, transform,
                                                             recipe):
    run = forecast(tmp_path, data, target, features, transform, recipe)
    assert main(["export", str(run), "--onnx"]) == 0
    assert "onnxruntime matches neuralab's forecasts" in capsys.readouterr().out
    frame = load_series(data, target=target, features=list(features)).frame
    props = assert_forecasts_like_predict(run, frame, tmp_path)
    rows = 6 + (transform != "none")  # a difference or return needs the row before the window
    assert json.loads(props["columns"]) == [target, *features]
    assert (props["target"], props["transform"], props["lookback"], props["horizon"], props["rows"]) == \
        (target, transform, "6", "3", str(rows))
    assert f"the last {rows} rows" in props["windows"] and "in its units" in props["forecast"]


def test_date_encodings_are_inputs_the_metadata_says_how_to_make(tmp_path):
    from neuralab.data.series import add_calendar
    from neuralab.forecasting.onnx import export_onnx

    run = forecast(tmp_path, features=("temp_min",), calendar=["dayofyear"])
    export_onnx(run)
    csv = load_series("seattle-weather", target="temp_max", features=["temp_min"]).frame
    props = session(run / "model.onnx").get_modelmeta().custom_metadata_map
    assert "add_calendar" in props["windows"] and json.loads(props["calendar"]) == ["dayofyear"]
    frame, added = add_calendar(csv, json.loads(props["calendar"]))
    assert json.loads(props["columns"]) == ["temp_max", "temp_min", *added]
    assert_forecasts_like_predict(run, frame, tmp_path)


def test_a_keras_lstm_forecaster_exports(tmp_path, capsys):
    (tmp_path / "lstm.py").write_text("import keras\nmodel = keras.Sequential([keras.Input((6, 1)), "
                                      "keras.layers.LSTM(4), keras.layers.Dense(3)])\n")
    assert main(["forecast", "--model", str(tmp_path / "lstm.py"), "--data", "seattle-weather", "--target", "temp_max",
                 "--lookback", "6", "--horizon", "3", "--target-transform", "diff", "--epochs", "1",
                 "--baselines", "persistence", "--backtest-folds", "1", "--out", str(tmp_path / "run"),
                 "--quiet"]) == 0
    assert main(["export", str(tmp_path / "run"), "--onnx"]) == 0, capsys.readouterr().err
    assert_forecasts_like_predict(tmp_path / "run", load_series("seattle-weather", target="temp_max").frame, tmp_path)


TORCH_FORECASTER = """
import torch
from torch import nn


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(1, 4, batch_first=True)
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        return self.head(self.gru(x)[0][:, -1])


class Flat(nn.Module):  # its reshape keeps the traced batch size as a constant
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(6, 3)

    def forward(self, x):
        return self.dense(x.reshape(int(x.shape[0]), 6))
"""


def user_run(tmp_path, name):
    (tmp_path / "nets.py").write_text(TORCH_FORECASTER)
    assert main(["forecast", "--model", f"{tmp_path / 'nets.py'}:{name}", "--data", "seattle-weather", "--target",
                 "temp_max", "--lookback", "6", "--horizon", "3", "--target-transform", "none", "--epochs", "1",
                 "--baselines", "persistence", "--backtest-folds", "1", "--out", str(tmp_path / name), "--quiet"]) == 0
    return tmp_path / name


def test_a_pytorch_forecaster_exports_only_with_trust_code(tmp_path, capsys):
    run = user_run(tmp_path, "Small")
    capsys.readouterr()
    assert main(["export", str(run), "--onnx"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--trust-code" in err and not (run / "model.onnx").exists()
    assert main(["export", str(run), "--onnx", "--trust-code"]) == 0
    assert_forecasts_like_predict_trusted(run, tmp_path)


def assert_forecasts_like_predict_trusted(run, tmp_path):
    frame = load_series("seattle-weather", target="temp_max").frame
    x = frame[["temp_max"]].to_numpy(np.float32)[-6:][None]
    csv = tmp_path / "recent.csv"
    frame.tail(30).to_csv(csv)
    want = predict_run(run, csv, trust_code=True)["temp_max"].to_numpy()
    np.testing.assert_allclose(session(run / "model.onnx").run(None, {"windows": x})[0][0], want, rtol=1e-5)


def test_what_cannot_be_exported_is_refused_in_one_line_writing_nothing(tmp_path, capsys):
    run = user_run(tmp_path, "Flat")
    capsys.readouterr()
    assert main(["export", str(run), "--onnx", "--trust-code"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "batches of 7 only, not of 1" in err and "nothing written" in err, err
    assert not (run / "model.onnx").exists()


def test_a_run_on_several_series_is_refused(tmp_path, capsys):
    weather = load_series("seattle-weather", features=["temp_min"]).frame.iloc[-300:]
    long = pd.concat([pd.DataFrame({"station": name, "date": weather.index.strftime("%Y-%m-%d"),
                                    "temp": weather[column].to_numpy()})
                      for name, column in [("MAX", "temp_max"), ("MIN", "temp_min")]])
    long.to_csv(tmp_path / "stations.csv", index=False)
    run = forecast(tmp_path, str(tmp_path / "stations.csv"), "temp", series_column="station")
    assert main(["export", str(run), "--onnx"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "trained on 2 series" in err and "one series" in err, err
    # the flag that picks one series when training, pasted as printed; Python names its parameter
    assert "--where station=MAX" in err, err
    from neuralab.forecasting.onnx import export_onnx
    with pytest.raises(NeuralabError, match="with where station=MAX in training"):
        export_onnx(run)
    assert not (run / "model.onnx").exists()


def test_a_forecaster_run_keras_fit_wrote_is_refused_as_before(tmp_path, capsys):
    # RunLogger first: it brings Keras up on PyTorch
    from neuralab.training import RunLogger

    keras = pytest.importorskip("keras", reason="Keras 3 is not installed (pip install neuralab[keras])")

    temps = load_series("seattle-weather", target="temp_max").frame["temp_max"].to_numpy(np.float32)[:200]
    x, y = np.stack([temps[i:i + 6] for i in range(150)])[..., None], temps[6:156, None]
    model = keras.Sequential([keras.Input((6, 1)), keras.layers.LSTM(4), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, epochs=1, verbose=0, callbacks=[RunLogger(out=tmp_path / "fit", data="seattle-weather temp_max")])
    capsys.readouterr()
    assert main(["export", str(tmp_path / "fit"), "--onnx"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Keras's fit wrote this run" in err and "scaling" in err, err
    assert not (tmp_path / "fit" / "model.onnx").exists()


def test_the_check_against_neuralab_refuses_a_graph_that_differs_and_keeps_the_earlier_file(tmp_path, monkeypatch):
    from neuralab.forecasting.onnx import export_onnx

    run = forecast(tmp_path, "sp500", "Close", transform="log-return")
    earlier, _ = export_onnx(run)
    good = earlier.read_bytes()
    real_run = ort.InferenceSession.run

    def off_by_a_tenth(self, *args, **kwargs):  # of an index point near 4,000: 2.5e-5 of the forecast
        return [out + 0.1 for out in real_run(self, *args, **kwargs)]

    monkeypatch.setattr(ort.InferenceSession, "run", off_by_a_tenth)
    with pytest.raises(NeuralabError, match="ONNX forecasts differ from neuralab's by 1.00e-01"):
        export_onnx(run)
    assert earlier.read_bytes() == good


@pytest.mark.parametrize("rtol", [0, -1.0, float("nan"), float("inf"), True])
def test_a_tolerance_no_graph_meets_is_refused_naming_it_before_the_export(tmp_path, rtol):
    """It ran the export, then blamed the graph: 'differ ... (> 0.00e+00, rtol 0)'."""
    from neuralab.errors import ParameterError
    from neuralab.forecasting.onnx import export_onnx

    run = forecast(tmp_path)
    with pytest.raises(ParameterError, match=r"^rtol=.*: must be a number above 0 .* relative to the largest forecast"):
        export_onnx(run, rtol=rtol)
    assert not list(run.glob("*.onnx*"))


def test_a_level_far_above_the_series_changes_is_refused_naming_float32(tmp_path, capsys):
    """Seattle's highs on top of a billion: float32 rounds the level to steps of 64, which the
    check let through as within 1e-5 of the largest forecast, and the file forecast no signal."""
    frame = load_series("seattle-weather", target="temp_max").frame[["temp_max"]].iloc[:300]
    (frame + 1e9).to_csv(tmp_path / "high.csv")
    run = forecast(tmp_path, str(tmp_path / "high.csv"), "temp_max", transform="none")
    assert main(["export", str(run), "--onnx"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the graph takes and gives float32, which at its level (1e+09) holds steps of 64" \
        in err and "mean one-step change of temp_max" in err and "predict_run" in err, err
    assert not (run / "model.onnx").exists()


def test_a_high_level_series_whose_changes_float32_still_holds_is_exported(tmp_path):
    """A cumulative meter near 250,000 kWh rising by about 0.4 an hour: float32 holds it to
    0.016, a few percent of its changes and of any forecast's error, and the graph was refused
    as differing by more than 1% of the mean one-step change."""
    hours = pd.date_range("2010-01-01", periods=1500, freq="h")
    rises = np.abs(np.random.default_rng(2).normal(0, 0.5, len(hours)))
    pd.DataFrame({"Date": hours, "kwh": 2.5e5 + np.cumsum(rises)}).to_csv(tmp_path / "meter.csv", index=False)
    from neuralab.forecasting.onnx import export_onnx

    run = forecast(tmp_path, str(tmp_path / "meter.csv"), "kwh")
    path, diff = export_onnx(run)
    assert path.exists() and diff < 0.1 * rises.mean(), diff  # float32's rounding, well below an hour's rise


def test_a_flat_series_that_steps_once_is_exported_as_float32_holds_it(tmp_path):
    """A tank held at 100,000 litres for a month, then topped up by 3: its mean one-step change
    over all hours (0.002) is below float32's step at its level (0.008), and the graph was
    refused for differing by a fraction of that step, though float32 holds the rise of 3."""
    hours = pd.date_range("2024-01-01", periods=1500, freq="h")
    litres = np.where(np.arange(len(hours)) < 750, 1e5, 1e5 + 3.0)
    pd.DataFrame({"date": hours, "level": litres}).to_csv(tmp_path / "tank.csv", index=False)
    from neuralab.forecasting.onnx import export_onnx

    run = forecast(tmp_path, str(tmp_path / "tank.csv"), "level", transform="none")
    path, diff = export_onnx(run)
    assert path.exists() and diff <= np.spacing(np.float32(1e5 + 3.0)), diff  # within float32's step at the level


def test_the_run_s_data_changed_since_is_refused(tmp_path, capsys):
    frame = load_series("seattle-weather", target="temp_max").frame[["temp_max"]]
    frame.to_csv(tmp_path / "weather.csv")
    run = forecast(tmp_path, str(tmp_path / "weather.csv"))
    frame.iloc[:-10].to_csv(tmp_path / "weather.csv")
    assert main(["export", str(run), "--onnx"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "changed since the run started" in err and "put it back" in err, err
    assert not (run / "model.onnx").exists()


def test_the_classifiers_export_function_names_the_forecasters(tmp_path):
    from neuralab.files import write_json
    from neuralab.forecasting.onnx import export_onnx as export_forecaster
    from neuralab.training.export import export_onnx

    write_json(tmp_path / "forecast" / "config.json", {"kind": "forecaster", "config": {}})
    with pytest.raises(NeuralabError, match="a forecaster run; export it with neuralab.forecasting.onnx.export_onnx"):
        export_onnx(tmp_path / "forecast")
    write_json(tmp_path / "classifier" / "config.json", {"kind": "image-classifier", "config": {}})
    with pytest.raises(NeuralabError, match="an image-classifier run .* not a forecaster run"):
        export_forecaster(tmp_path / "classifier")
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["config.json", "config.json"]


def test_a_run_whose_model_json_lacks_a_window_setting_exports_as_predict_reads_it(tmp_path, capsys):
    """An older run's model.json without `windows.transform`: `forecast predict` takes the
    default (none), and so does the export, where it ended in a KeyError traceback."""
    import json

    run = forecast(tmp_path, transform="none")
    meta = json.loads((run / "model.json").read_text())
    del meta["windows"]["transform"]
    (run / "model.json").write_text(json.dumps(meta))
    assert main(["export", str(run), "--onnx"]) == 0, capsys.readouterr().err
    props = session(run / "model.onnx").get_modelmeta().custom_metadata_map
    assert props["transform"] == "none" and props["lookback"] == "6"
