"""Each interface names its own way on after an interrupt, and only one that works: a forecast of
a module object, whose run keeps no code, is told to resume with the module given again;
`neuralab import` into a folder holding an interrupted run names the command line's resume, as
train does."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from helpers import digits_folder
from torch import nn

from neuralab.cli import main
from neuralab.errors import ParameterError
from neuralab.forecasting import pipeline
from neuralab.forecasting.models import ModelConfig, series_train_config
from neuralab.forecasting.windows import WindowConfig
from neuralab.runs import Interrupted, Run, Status

KERAS_FILE = Path(__file__).parent / "data" / "keras" / "graph_tfk2.keras"


pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def pressed(*args, **kwargs):
    raise KeyboardInterrupt


class Last(nn.Module):
    """A forecaster of the window's values through one linear layer: (N, lookback, 1) -> (N, 2).
    Built with an argument, it is no class the run can call again: the run keeps no code."""

    def __init__(self, lookback: int):
        super().__init__()
        self.out = nn.Linear(lookback, 2)

    def forward(self, x):
        return self.out(x[..., 0])


def test_a_forecast_of_a_module_object_is_told_to_resume_with_the_module_given_again(tmp_path, monkeypatch):
    """The run keeps no code: `resume_forecast(RUN)` alone fails, so the words name its `model`
    (they said to start again, with `overwrite`, before resume_forecast took one)."""
    config = pipeline.ForecastConfig(data="seattle-weather", target="temp_max", backtest_folds=2,
                                     windows=WindowConfig(lookback=14, horizon=2), model=ModelConfig("lstm"),
                                     train=series_train_config(epochs=1, device="cpu"))
    run = tmp_path / "run"
    torch.manual_seed(0)
    with monkeypatch.context() as m:
        m.setattr(pipeline, "rolling_origin", pressed)  # after the network's fit, before results.json
        with pytest.raises(KeyboardInterrupt) as cut:
            pipeline.run_forecast(config, out=run, verbose=False, model=Last(14))
    said = str(cut.value)
    assert isinstance(cut.value, Interrupted) and Run(run).status() is Status.INTERRUPTED
    call = f"`neuralab.resume_forecast({str(run)!r}, model=Last(...))`"
    assert said.endswith(f"; {call} continues it"), said
    with pytest.raises(ParameterError, match=f"holds an interrupted run, which {re.escape(call)} continues"):
        pipeline.run_forecast(config, out=run, verbose=False, model=Last(14))
    assert pipeline.resume_forecast(run, verbose=False, model=Last(14)).run_dir == run
    assert Run(run).status() is Status.FINISHED


def test_import_into_a_folder_of_an_interrupted_run_names_the_command_lines_resume(tmp_path, monkeypatch, capsys):
    from neuralab.training.trainer import Trainer

    pytest.importorskip("h5py")
    run = tmp_path / "run"
    digits = digits_folder(tmp_path / "digits", 200)
    with monkeypatch.context() as m:
        m.setattr(Trainer, "predict", pressed)  # the test pass: an interrupted run, every epoch done
        assert main(["train", "--model", "mlp", "--data", str(digits), "--epochs", "1", "--threads", "1", "--quiet",
                     "--out", str(run)]) == 130
    capsys.readouterr()
    assert main(["import", str(KERAS_FILE), "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"`neuralab train --resume {run}`" in err and "--overwrite" in err, err
    assert "resume_classifier" not in err and Run(run).status() is Status.INTERRUPTED
