"""A run of one's own module that it cannot rebuild (built with arguments: model.json's source
has file null) says the way on that works, and following it works: the library's messages name
the Python call with the module given again (`resume_forecast(RUN, model=LSTMForecaster(...))`),
for a forecaster as for a classifier, where they said "start it again, with `overwrite`"; the
command line, which has no flag that passes a module, names the Python call that does what it
was asked, where it said "as --model"."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import digits_folder
from torch import nn

import neuralab
from neuralab import ForecastConfig, resume_forecast, run_forecast
from neuralab.cli import main
from neuralab.errors import NeuralabError
from neuralab.forecasting.config import WindowConfig
from neuralab.runs import InterruptedInTheWay
from neuralab.training import ClassifierConfig, TrainConfig, train_classifier


class LSTMForecaster(nn.Module):
    """A tutorial's forecaster: an LSTM, its last step's state to the horizon."""

    def __init__(self, n_in: int = 1, hidden: int = 8, horizon: int = 1):
        super().__init__()
        self.lstm = nn.LSTM(n_in, hidden, batch_first=True)
        self.head = nn.Linear(hidden, horizon)

    def forward(self, x):  # (B, L, C) -> (B, H)
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


class MLP(nn.Module):
    """A digits classifier whose width is an argument."""

    def __init__(self, hidden: int = 32):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))

    def forward(self, x):  # (B, 1, 8, 8) -> (B, 10)
        return self.body(x)


@pytest.fixture(scope="module")
def load_csv(tmp_path_factory) -> Path:
    """Four months of a daily electricity load with a weekly cycle and a trend."""
    path = tmp_path_factory.mktemp("load") / "load.csv"
    days = np.arange(np.datetime64("2021-01-01"), np.datetime64("2021-05-01"))
    t = np.arange(len(days))
    load = 50 + 10 * np.sin(2 * np.pi * t / 7) + 0.1 * t + np.random.default_rng(0).normal(0, 1, len(t))
    path.write_text("day,load\n" + "".join(f"{d},{v:.4f}\n" for d, v in zip(days, load)))
    return path


def config(csv: Path, epochs: int) -> ForecastConfig:
    c = ForecastConfig(data=str(csv), target="load", windows=WindowConfig(lookback=14))
    c.train.epochs, c.train.threads = epochs, 1
    return c


class CtrlC:
    """Ctrl-C as the first epoch ends."""

    def on_epoch_end(self, trainer, record):
        raise KeyboardInterrupt


def followed(said: str, **modules):
    """The Python call a message names, run as the user would: with the module built again
    (``Net(...)``: its arguments filled in; ``Net()``: as printed)."""
    call = re.search(r"(neuralab\.[\w.]+\(.*?, model=(\w+)\((\.\.\.)?\)\))", said)
    assert call, said
    module = modules[call[2]]
    function, arguments = call[1].split("(", 1)
    *path, name = function.split(".")
    target = __import__(".".join(path), fromlist=[name])
    given = f"{call[2]}({call[3] or ''})"
    return eval(f"target.{name}({arguments.replace(given, 'module')}",
                {"target": target, "module": module})


def test_an_interrupted_forecast_of_a_module_object_names_the_resume_that_continues_it(load_csv, tmp_path, capsys):
    run = tmp_path / "cut"
    torch.manual_seed(3)
    with pytest.raises(KeyboardInterrupt) as stopped:
        run_forecast(config(load_csv, 3), out=run, verbose=False, model=LSTMForecaster(hidden=6), callbacks=[CtrlC()])
    call = f"neuralab.resume_forecast({str(run)!r}, model=LSTMForecaster(...))"
    assert str(stopped.value).endswith(f"; `{call}` continues it")  # was "start it again, with `overwrite`"
    with pytest.raises(InterruptedInTheWay, match=re.escape(f"which `{call}` continues")):
        run_forecast(config(load_csv, 3), out=run, verbose=False, model=LSTMForecaster(hidden=6))
    with pytest.raises(NeuralabError) as unfinished:
        neuralab.predict_run(run, load_csv, model=LSTMForecaster(hidden=6))
    assert str(unfinished.value).endswith(f"; `{call}` finishes it, then use it")
    # and the command line, which cannot resume it, leaves the library's call as it is
    assert main(["forecast", "predict", str(run), "--csv", str(load_csv)]) == 2
    assert capsys.readouterr().err.strip().endswith(f"; `{call}` finishes it, then use it")
    result = followed(str(unfinished.value), LSTMForecaster=LSTMForecaster(hidden=6))
    assert result.run_dir == run and (run / "results.json").is_file() and len(result.history) == 3


@pytest.fixture(scope="module")
def forecast_run(load_csv, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "own"
    torch.manual_seed(3)
    run_forecast(config(load_csv, 1), out=run, verbose=False, model=LSTMForecaster(hidden=6))
    assert json.loads((run / "model.json").read_text())["source"]["file"] is None
    return run


def refusal(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    said = capsys.readouterr().err.strip()
    assert said.count("\n") == 0 and "--model" not in said and " as model" not in said, said
    return said


def test_forecast_predict_names_the_python_call_with_the_module_and_following_it_forecasts(forecast_run, load_csv,
                                                                                           capsys):
    said = refusal(capsys, ["forecast", "predict", str(forecast_run), "--csv", str(load_csv)])
    call = f"neuralab.predict_run({str(forecast_run)!r}, {str(load_csv)!r}, model=LSTMForecaster(...))"
    assert said.endswith(f"it can only be used from Python, with the module given again: {call} (docs/runs.md)")
    frame = followed(said, LSTMForecaster=LSTMForecaster(hidden=6))
    future = json.loads((forecast_run / "results.json").read_text())["future"]
    np.testing.assert_allclose(frame["load"].to_numpy(), future["forecast"], rtol=1e-6)


def test_forecast_report_and_export_name_their_python_calls(forecast_run, tmp_path, capsys):
    (forecast_run / "report.html").unlink()
    said = refusal(capsys, ["report", str(forecast_run)])
    assert said.endswith("its report can only be written from Python, with the module given again: "
                         f"neuralab.forecasting.finished.write_report({str(forecast_run)!r}, "
                         "model=LSTMForecaster(...)) (docs/runs.md)")
    assert followed(said, LSTMForecaster=LSTMForecaster(hidden=6)) == forecast_run / "report.html"
    out = tmp_path / "own.onnx"
    said = refusal(capsys, ["export", str(forecast_run), "--onnx", "--out", str(out)])
    assert said.endswith(f"neuralab.forecasting.onnx.export_onnx({str(forecast_run)!r}, {str(out)!r}, "
                         "model=LSTMForecaster(...)) (docs/runs.md)")


def test_forecast_resume_names_the_python_resume(load_csv, tmp_path, capsys):
    run = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        run_forecast(config(load_csv, 2), out=run, verbose=False, model=LSTMForecaster(hidden=6), callbacks=[CtrlC()])
    said = refusal(capsys, ["forecast", "--resume", str(run)])
    assert said.endswith(f"it can only be resumed from Python, with the module given again: "
                         f"neuralab.resume_forecast({str(run)!r}, model=LSTMForecaster(...)) (docs/runs.md)")
    assert resume_forecast(run, verbose=False, model=LSTMForecaster(hidden=6)).run_dir == run


def test_a_classifiers_predict_report_and_export_name_their_python_calls(tmp_path, capsys):
    digits = digits_folder(tmp_path / "digits", 100)
    run = tmp_path / "mlp"
    train_classifier(ClassifierConfig(data=str(digits), train=TrainConfig(epochs=1, batch_size=32, threads=1)),
                     out=run, verbose=False, model=MLP(16))
    picture = next((digits / "3").iterdir())
    said = refusal(capsys, ["predict", str(run), str(picture)])
    assert said.endswith(f"it can only be used from Python, with the module given again: "
                         f"neuralab.load_classifier({str(run)!r}, model=MLP(...)) (docs/runs.md)")
    assert followed(said, MLP=MLP(16)).classes == [str(d) for d in range(10)]
    said = refusal(capsys, ["report", str(run)])
    assert said.endswith(f"neuralab.training.evaluate.write_report({str(run)!r}, model=MLP(...)) (docs/runs.md)")
    said = refusal(capsys, ["export", str(run), "--onnx"])
    assert said.endswith(f"neuralab.training.export.export_onnx({str(run)!r}, model=MLP(...)) (docs/runs.md)")
