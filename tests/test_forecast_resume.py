"""An interrupted forecasting run goes on from its last checkpoint and ends as the run would
have ended without the interruption (real Seattle weather, small LSTM and GRU networks)."""

from __future__ import annotations

import json

import pytest

from neuralab.cli import main
from neuralab.errors import NeuralabError
from neuralab.forecasting.models import ModelConfig, series_train_config
from neuralab.forecasting.pipeline import ForecastConfig, resume_forecast, run_forecast
from neuralab.forecasting.windows import WindowConfig
from neuralab.runs import Interrupted, Run, Status
from neuralab.training.checkpoint import load_tensors


pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def config(data="seattle-weather", **train) -> ForecastConfig:
    return ForecastConfig(data=data, target="temp_max", windows=WindowConfig(lookback=14, horizon=2, transform="auto"),
                          model=ModelConfig("lstm", hidden=[8]),
                          train=series_train_config(**{"epochs": 3, "device": "cpu", "seed": 3, **train}),
                          backtest_folds=2)


def test_an_interrupted_forecast_resumed_ends_like_an_uninterrupted_one(tmp_path, cut_in_epoch_2):
    whole_again = cut_in_epoch_2()
    with pytest.raises(Interrupted):
        run_forecast(config(), out=tmp_path / "cut", verbose=False)
    assert Run.open(tmp_path / "cut").status() is Status.INTERRUPTED
    whole_again()
    whole = run_forecast(config(), out=tmp_path / "whole", verbose=False)
    before = (tmp_path / "cut" / "config.json").read_text()
    resumed = resume_forecast(tmp_path / "cut", verbose=False)

    a, _ = load_tensors(whole.run_dir / "checkpoints" / "last.safetensors")
    b, _ = load_tensors(resumed.run_dir / "checkpoints" / "last.safetensors")
    assert [k for k in a if not k.startswith("rng.") and not (a[k] == b[k]).all()] == []
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in whole.history] and len(whole.history) == 3
    assert resumed.test == whole.test and resumed.headline["sentence"] == whole.headline["sentence"]
    assert (tmp_path / "cut" / "forecast.csv").read_text() == (tmp_path / "whole" / "forecast.csv").read_text()
    # the record of how it was made stays; the resume adds the session it ran in
    after = json.loads((tmp_path / "cut" / "config.json").read_text())
    assert len(after.pop("sessions")) == 1 and after == {k: v for k, v in json.loads(before).items() if k != "sessions"}
    assert Run.open(tmp_path / "cut").status() is Status.FINISHED
    with pytest.raises(NeuralabError, match="the run is finished .*nothing to resume"):
        resume_forecast(tmp_path / "cut", verbose=False)


def test_a_forecast_on_a_csv_that_changed_is_not_resumed(tmp_path, cut_in_epoch_2):
    from neuralab.data.series import load_series

    whole_again = cut_in_epoch_2()
    s = load_series("seattle-weather", "temp_max")
    csv = tmp_path / "temps.csv"
    csv.write_text("date,temp_max\n" + "\n".join(f"{t},{v}" for t, v in zip(s.times, s.values[:, 0])) + "\n")
    with pytest.raises(Interrupted):
        run_forecast(config(str(csv)), out=tmp_path / "run", verbose=False)
    whole_again()
    csv.write_text(csv.read_text() + "2016-01-01,12.0\n")
    with pytest.raises(NeuralabError, match=rf"{csv}: changed since the run started"):
        resume_forecast(tmp_path / "run", verbose=False)


TORCH_FORECASTER = """
from torch import nn


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(1, 8, batch_first=True)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        return self.head(self.gru(x)[0][:, -1])
"""


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_command_resumes_a_run_of_pytorch_code_only_with_trust_and_its_own_settings(
        tmp_path, capsys, cut_in_epoch_2):
    whole_again = cut_in_epoch_2()
    (tmp_path / "small.py").write_text(TORCH_FORECASTER)
    run = tmp_path / "run"
    code, _, err = cli(capsys, "forecast", "--model", f"{tmp_path / 'small.py'}:Small", "--data", "seattle-weather",
                       "--target", "temp_max", "--lookback", "14", "--horizon", "2", "--epochs", "3",
                       "--backtest-folds", "1", "--threads", "1", "--out", run, "--quiet")
    assert code == 130 and f"`neuralab forecast --resume {run} --trust-code` continues it" in err
    whole_again()
    code, _, err = cli(capsys, "forecast", "--resume", run, "--epochs", "5")
    assert code == 2 and "--epochs" in err and "does not apply to --resume" in err and "Traceback" not in err
    code, _, err = cli(capsys, "forecast", "--resume", run)
    assert code == 2 and "--trust-code" in err and len(err.strip().splitlines()) == 1
    code, out, err = cli(capsys, "forecast", "--resume", run, "--trust-code", "--quiet")
    assert code == 0, err
    results = json.loads((run / "results.json").read_text())
    assert "torch:small.py:Small" in results["test"]
    assert [r["epoch"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())] == [1, 2, 3]


def test_a_resumed_forecast_that_diverges_keeps_its_run_and_says_a_new_run_must_lower_lr(tmp_path, cut_in_epoch_2,
                                                                                          monkeypatch):
    """The plain recipe has no linear start to fall back on: a resume that diverges is refused, and
    "lower it" alone would ask for what a resume refuses (it keeps the run's settings)."""
    import math

    from neuralab.training.config import Diverged
    from neuralab.training.trainer import Trainer

    plain = replace_model(config(), recipe="plain")
    restore = cut_in_epoch_2()
    with pytest.raises(Interrupted):
        run_forecast(plain, out=tmp_path / "run", verbose=False)
    restore()
    original = Trainer._train_epoch

    def overflowing(self, *args):  # epoch 2 goes to infinity, as a too-high rate makes it
        record = original(self, *args)
        return {**record, "loss": math.inf} if args[-2] == 2 else record

    monkeypatch.setattr(Trainer, "_train_epoch", overflowing)
    with pytest.raises(Diverged) as e:
        resume_forecast(tmp_path / "run", verbose=False)
    assert e.value.parameter == "lr" and e.value.epoch == 2
    assert str(e.value).endswith(f"the run keeps its last finite epoch ({tmp_path / 'run'}); start a new run with "
                                 "a lower one")
    assert Run.open(tmp_path / "run").status() is Status.INTERRUPTED


def replace_model(forecast: ForecastConfig, **model) -> ForecastConfig:
    from dataclasses import replace

    return replace(forecast, model=replace(forecast.model, **model))
