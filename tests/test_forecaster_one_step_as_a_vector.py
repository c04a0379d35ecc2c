"""A forecaster of one's own that forecasts one step ahead as (N,) (the tutorials' `.squeeze(-1)`)
trains, forecasts and exports as one giving (N, 1): the shape is unambiguous for horizon 1."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from neuralab import ForecastConfig, predict_run, run_forecast
from neuralab.errors import NeuralabError
from neuralab.forecasting.config import WindowConfig


class Squeezed(nn.Module):
    """A stacked LSTM whose head's one output is squeezed away: (B, L, 1) -> (B,)."""

    def __init__(self, horizon: int = 1):
        super().__init__()
        self.lstm = nn.LSTM(1, 8, num_layers=2, batch_first=True)
        self.head = nn.Linear(8, horizon)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1]).squeeze(-1)


@pytest.fixture(scope="module")
def sales(tmp_path_factory) -> Path:
    """Five months of a shop's daily sales: a weekly cycle, a slow rise and noise."""
    path = tmp_path_factory.mktemp("squeezed") / "sales.csv"
    days = np.arange(np.datetime64("2022-01-01"), np.datetime64("2022-06-01"))
    t = np.arange(len(days))
    sales = 200 + 30 * np.sin(2 * np.pi * t / 7) + 0.5 * t + np.random.default_rng(1).normal(0, 5, len(t))
    path.write_text("date,sales\n" + "".join(f"{d},{v:.2f}\n" for d, v in zip(days, sales)))
    return path


def config(csv: Path, horizon: int = 1) -> ForecastConfig:
    c = ForecastConfig(data=str(csv), target="sales", windows=WindowConfig(lookback=14, horizon=horizon))
    c.train.epochs, c.train.threads = 1, 1
    return c


def test_a_one_step_forecaster_giving_n_values_trains_and_forecasts_as_the_run_did(sales, tmp_path):
    torch.manual_seed(0)
    run = tmp_path / "squeezed"
    run_forecast(config(sales), out=run, verbose=False, model=Squeezed())
    future = json.loads((run / "results.json").read_text())["future"]
    forecast = predict_run(run, sales, trust_code=True)  # the run keeps this file's class as its model.py
    np.testing.assert_allclose(forecast["sales"].to_numpy(), future["forecast"], rtol=1e-6)
    assert len(future["forecast"]) == 1


def test_several_steps_ahead_a_squeezed_output_is_still_refused(sales, tmp_path):
    with pytest.raises(NeuralabError, match=r"the data needs \(N, 3\)"):
        run_forecast(config(sales, horizon=3), out=tmp_path / "three", verbose=False, model=Squeezed(horizon=1))
