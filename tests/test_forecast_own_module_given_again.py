"""A forecaster of one's own module that the run cannot rebuild (built with arguments: model.json's
source has file null) is used again the way the refusals and docs/runs.md say: the module given
again as `model` to load_forecaster, predict_run, write_report, export_onnx and resume_forecast,
and the run's model.safetensors loaded into the bare module with checkpoint.load_weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from neuralab import ForecastConfig, load_forecaster, predict_run, resume_forecast, run_forecast
from neuralab.errors import NeuralabError
from neuralab.forecasting.config import WindowConfig
from neuralab.training.checkpoint import load_tensors, load_weights


class LSTMForecaster(nn.Module):
    """The usual forecaster of a tutorial: stacked LSTM, the last step's state to the horizon."""

    def __init__(self, n_in: int = 1, hidden: int = 8, horizon: int = 1):
        super().__init__()
        self.lstm = nn.LSTM(n_in, hidden, num_layers=2, batch_first=True)
        self.head = nn.Linear(hidden, horizon)

    def forward(self, x):  # (B, L, C) -> (B, H)
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


@pytest.fixture(scope="module")
def load_csv(tmp_path_factory) -> Path:
    """Four months of a daily electricity load with a weekly cycle and a trend, and the day's temperature."""
    path = tmp_path_factory.mktemp("own-forecaster") / "load.csv"
    days = np.arange(np.datetime64("2021-01-01"), np.datetime64("2021-05-01"))
    t = np.arange(len(days))
    noise = np.random.default_rng(0).normal(0, 1, len(t))
    load = 50 + 10 * np.sin(2 * np.pi * t / 7) + 0.1 * t + noise
    temp = 10 + 5 * np.cos(2 * np.pi * t / 30) + 0.5 * noise
    path.write_text("day,load,temp\n" + "".join(f"{d},{a:.4f},{b:.3f}\n" for d, a, b in zip(days, load, temp)))
    return path


def config(csv: Path, epochs: int = 2) -> ForecastConfig:
    c = ForecastConfig(data=str(csv), target="load", features=["temp"], windows=WindowConfig(lookback=14))
    c.train.epochs, c.train.threads = epochs, 1
    return c


def made() -> LSTMForecaster:
    torch.manual_seed(3)
    return LSTMForecaster(n_in=2)


@pytest.fixture(scope="module")
def finished(load_csv, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "own"
    run_forecast(config(load_csv), out=run, verbose=False, model=made())
    assert json.loads((run / "model.json").read_text())["source"]["file"] is None
    return run


def test_the_runs_weights_load_into_the_bare_module_with_load_weights(finished):
    mine = LSTMForecaster(n_in=2)
    load_weights(finished / "model.safetensors", mine)  # the message the run's code gave: it failed on `net.`
    stored, _ = load_tensors(finished / "model.safetensors")
    assert sorted(mine.state_dict()) == sorted(k.removeprefix("net.") for k in stored)
    assert all(torch.equal(v, stored["net." + k]) for k, v in mine.state_dict().items())
    # docs/runs.md's snippet without neuralab
    other = LSTMForecaster(n_in=2)
    other.load_state_dict({k.removeprefix("net."): v for k, v in load_file(finished / "model.safetensors").items()})
    x = torch.randn(5, 14, 2)
    with torch.no_grad():
        assert torch.equal(other.eval()(x), mine.eval()(x))
    with pytest.raises(NeuralabError, match=r"weights do not fit the model .*lstm"):
        load_weights(finished / "model.safetensors", LSTMForecaster(n_in=2, hidden=4))


def test_without_model_the_refusal_says_to_pass_it_and_doing_so_forecasts_as_the_run_did(finished, load_csv):
    for use in (lambda **k: load_forecaster(finished, **k), lambda **k: predict_run(finished, load_csv, **k)):
        with pytest.raises(NeuralabError) as e:
            use()
        said = str(e.value)
        assert "\n" not in said and "passing the module it was trained with, built the same way" in said
        assert said.endswith("as model") and "load_weights" not in said
    mine = LSTMForecaster(n_in=2)
    forecast = predict_run(finished, load_csv, model=mine)
    future = json.loads((finished / "results.json").read_text())["future"]
    # the same rows the run forecast beyond its data: the same forecast, from the module given
    np.testing.assert_allclose(forecast["load"].to_numpy(), future["forecast"], rtol=1e-6)
    stored, _ = load_tensors(finished / "model.safetensors")
    assert all(torch.equal(v, stored["net." + k]) for k, v in mine.state_dict().items())  # loaded in place
    assert load_forecaster(finished, model=LSTMForecaster(n_in=2)).describe().startswith("torch:object:LSTMForecaster")


def test_report_and_onnx_of_the_run_take_the_module_too(finished):
    from neuralab.forecasting.finished import write_report

    (finished / "report.html").unlink()
    assert write_report(finished, model=LSTMForecaster(n_in=2)) == finished / "report.html"
    pytest.importorskip("onnxruntime", reason="pip install 'neuralab[export]'")
    from neuralab.forecasting.onnx import export_onnx

    onnx, diff = export_onnx(finished, out=finished.parent / "own.onnx", model=LSTMForecaster(n_in=2))
    assert onnx.stat().st_size > 0 and diff < 1e-4


def test_a_module_unlike_the_runs_is_refused_in_one_line_before_anything_is_loaded(finished):
    for model, message in [
            (LSTMForecaster(n_in=2, hidden=4), r"tensor 'head\.weight' is \(1, 8\) in the weights but \(1, 4\) in the "
                                               "model given; give the module the run was trained with"),
            (LSTMForecaster, "model is a type; give the torch.nn.Module object")]:
        kept = {k: v.clone() for k, v in model.state_dict().items()} if isinstance(model, nn.Module) else {}
        with pytest.raises(NeuralabError, match=message) as e:
            load_forecaster(finished, model=model)
        assert "\n" not in str(e.value)
        assert all(torch.equal(v, model.state_dict()[k]) for k, v in kept.items())


def test_a_run_that_rebuilds_its_network_refuses_a_module(load_csv, tmp_path):
    c = config(load_csv, epochs=1)
    c.model.hidden = [4]
    run_forecast(c, out=tmp_path / "zoo", verbose=False)
    with pytest.raises(NeuralabError, match="rebuilds its network as the built-in lstm-stacked; leave out model"):
        load_forecaster(tmp_path / "zoo", model=LSTMForecaster(n_in=2))


class CtrlC:
    """Ctrl-C as the first epoch ends."""

    def on_epoch_end(self, trainer, record):
        raise KeyboardInterrupt


def test_an_interrupted_run_resumes_with_the_module_given_again_bit_for_bit(load_csv, tmp_path):
    whole = run_forecast(config(load_csv, epochs=3), out=tmp_path / "whole", verbose=False, model=made())
    with pytest.raises(KeyboardInterrupt):
        run_forecast(config(load_csv, epochs=3), out=tmp_path / "cut", verbose=False, model=made(), callbacks=[CtrlC()])
    with pytest.raises(NeuralabError, match="passing the module it was trained with, .* as model$"):
        resume_forecast(tmp_path / "cut", verbose=False)
    with pytest.raises(NeuralabError, match=r"last\.safetensors: tensor 'head\.weight' is \(1, 8\) in the weights "
                                         r"but \(1, 4\) in the model given"):
        resume_forecast(tmp_path / "cut", verbose=False, model=LSTMForecaster(n_in=2, hidden=4))
    resumed = resume_forecast(tmp_path / "cut", verbose=False, model=LSTMForecaster(n_in=2))  # other first weights
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in whole.history]
    a, b = (load_file(run / "model.safetensors") for run in (whole.run_dir, resumed.run_dir))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.test == whole.test


class LazyHead(LSTMForecaster):
    """The tutorial's forecaster with an nn.LazyLinear head, whose inputs the first batch sets."""

    def __init__(self, n_in: int = 1, hidden: int = 8, horizon: int = 1):
        super().__init__(n_in, hidden, horizon)
        self.head = nn.LazyLinear(horizon)


def test_a_module_with_lazy_layers_given_again_resumes_and_loads(load_csv, tmp_path):
    """Its shapes were compared before its lazy head had any: torch's "Can't access the shape of an
    uninitialized parameter". One pass on the run's windows sets them up first."""
    with pytest.raises(KeyboardInterrupt):
        run_forecast(config(load_csv), out=tmp_path / "cut", verbose=False, model=LazyHead(n_in=2),
                     callbacks=[CtrlC()])
    resumed = resume_forecast(tmp_path / "cut", verbose=False, model=LazyHead(n_in=2))
    assert [r["epoch"] for r in resumed.history] == [1, 2]
    mine = LazyHead(n_in=2)
    load_forecaster(tmp_path / "cut", model=mine)
    stored, _ = load_tensors(tmp_path / "cut" / "model.safetensors")
    assert all(torch.equal(v, stored["net." + k]) for k, v in mine.state_dict().items())  # loaded in place
